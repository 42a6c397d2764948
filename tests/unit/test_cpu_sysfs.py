"""/sys/devices/system/cpu (spec §9): online/possible/present and which cpuN a caller sees."""

import pytest

from lxcfs_py.context import Options
from lxcfs_py.files import cpu_sysfs

RENDER = {"online": cpu_sysfs.render_online, "possible": cpu_sysfs.render_possible,
          "present": cpu_sysfs.render_present}


@pytest.mark.parametrize("name", sorted(RENDER))
@pytest.mark.parametrize("cgroup, cfs, expected", [
    ("/docker/abc", False, b"1,3\n"),  # the cpuset, host numbering
    ("/docker/def", False, b"2\n"),
    ("/docker/cfs", False, b"0-3\n"),
    ("/docker/cfs", True, b"0-1\n"),  # quota 1.5 CPUs: two, numbered from 0
    ("/docker/half", True, b"0\n"),  # quota 0.5 CPU
    ("/docker/abc", True, b"0-1\n"),  # --enable-cfs renumbers from 0 even without a quota
])
def test_cpu_lists(fake, name, cgroup, cfs, expected):
    assert RENDER[name](fake.req(cgroup, Options(cfs=cfs))) == expected


def test_host_caller_sees_the_host_files(fake_rw):
    with open(f"{fake_rw.roots.sys}/devices/system/cpu/possible", "w") as f:
        f.write("0-7\n")
    assert cpu_sysfs.render_possible(fake_rw.req(None)) == b"0-7\n"
    assert cpu_sysfs.render_online(fake_rw.req(None)) == b"0-3\n"


@pytest.mark.parametrize("cgroup, cfs, visible", [
    ("/docker/abc", False, {"cpu1", "cpu3"}),
    ("/docker/cfs", True, {"cpu0", "cpu1"}),
    ("/docker/half", True, {"cpu1"}),
    (None, False, {"cpu0", "cpu1", "cpu2", "cpu3"}),
])
def test_entry_visible(fake, cgroup, cfs, visible):
    req = fake.req(cgroup, Options(cfs=cfs))
    assert {f"cpu{n}" for n in range(4) if cpu_sysfs.entry_visible(req, f"cpu{n}")} == visible
    # only cpuN directories are filtered
    for name in ("cpufreq", "online", "kernel_max", "cpuidle", "cpu"):
        assert cpu_sysfs.entry_visible(req, name)
