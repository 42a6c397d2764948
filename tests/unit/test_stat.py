"""/proc/stat (spec §3). Expected tick counts assume USER_HZ = 100, as on every Linux."""

import os

import pytest

from lxcfs_py.cgroups.base import CpuTime
from lxcfs_py.context import Options
from lxcfs_py.files import stat
from lxcfs_py.files.counters import Floors
from lxcfs_py.files.cpuview import CpuViews
from lxcfs_py.host import CLK_TCK
from tests.fixtures.trees import HOST_CPU_FIELDS, HOST_STAT_TAIL, SEC, host_stat, write

pytestmark = pytest.mark.skipif(CLK_TCK != 100, reason="expected values are written for USER_HZ 100")
# a container's btime is its start: its init (pid 1000 in the fixtures) started 500 s after the host booted
CONTAINER_TAIL = HOST_STAT_TAIL.replace("btime 1700000000", "btime 1700000500")


def render(fake, cgroup="/docker/abc", views=None, **opts) -> str:
    return stat.render(fake.req(cgroup, Options(**opts), views=views)).decode()


def test_v1_container_time_on_physical_cpu_numbers(v1):
    # cpuacct.usage_all: cpu1 5 s user 3 s system, cpu3 2 s / 1 s; the rest of the
    # host's busy time on those CPUs counts as idle to the container
    assert render(v1) == (
        "cpu  700 0 400 21370 0 0 0 0 0 0\n"
        "cpu1 500 0 300 10040 0 0 0 0 0 0\n"  # idle 9000 + (1840 host busy - 800 container)
        "cpu3 200 0 100 11330 0 0 0 0 0 0\n"  # idle 10000 + (1630 - 300)
        + CONTAINER_TAIL
    )


def test_v1_usage_percpu_fallback_counts_time_as_both_user_and_system(v1_rw):
    os.unlink(v1_rw.cg_file("/docker/abc", "cpuacct.usage_all"))
    assert render(v1_rw).splitlines()[:3] == [
        "cpu  1100 0 1100 20270 0 0 0 0 0 0",
        "cpu1 800 0 800 9240 0 0 0 0 0 0",
        "cpu3 300 0 300 11030 0 0 0 0 0 0",
    ]


def test_v2_host_lines_of_the_cpuset(v2):
    # no per-CPU times on v2: the host's lines of cpu1 and cpu3, summed on top
    assert render(v2) == (
        "cpu  2100 20 1100 19000 200 0 50 0 0 0\n"
        "cpu1 1100 10 600 9000 100 0 30 0 0 0\n"
        "cpu3 1000 10 500 10000 100 0 20 0 0 0\n"
        + CONTAINER_TAIL
    )


def test_v2_enable_cfs_shows_only_the_cpus_the_quota_allows(v2):
    # /docker/cfs: cpuset 0-3, quota 1.5 CPUs -> 2 CPUs, as /proc/cpuinfo and cpu/online show; with no
    # per-CPU times to fold on v2, the host's lines of the first two
    lines = render(v2, "/docker/cfs", cfs=True).splitlines()
    assert [line.split()[0] for line in lines if line.startswith("cpu")] == ["cpu", "cpu0", "cpu1"]


def test_aggregate_line_has_two_spaces(fake):
    assert render(fake).startswith("cpu  ")


def test_host_caller_sees_the_host_file(fake):
    assert render(fake, None) == host_stat()


def test_container_time_above_host_time_keeps_host_idle():
    host = "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 10 0 10 500 0 0 0 0 0 0\n"
    text = stat.render_text(host, {0}, {0: CpuTime(5 * SEC, 5 * SEC)})
    assert text.splitlines()[1] == "cpu0 500 0 500 500 0 0 0 0 0 0"


def test_unparsable_cpu_line_is_kept_and_not_summed():
    host = "cpu  1 1 1 1 1 1 1 1 1 1\ncpu0 1 2 3\ncpu1 1 0 1 10 0 0 0 0 0 0\n"
    assert stat.render_text(host, {0, 1}, None) == (
        "cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 2 3\ncpu1 1 0 1 10 0 0 0 0 0 0\n")


# -- --enable-cfs view (v1 with cpuacct) ---------------------------------------------
def test_view_first_read_is_all_zero_on_quota_cpus(v1):
    # /docker/cfs: cpuset 0-3, quota 1.5 CPUs -> 2 CPUs shown, numbered from 0
    assert render(v1, "/docker/cfs", cfs=True) == (
        "cpu  0 0 0 0 0 0 0 0 0 0\n"
        "cpu0 0 0 0 0 0 0 0 0 0 0\n"
        "cpu1 0 0 0 0 0 0 0 0 0 0\n"
        + CONTAINER_TAIL
    )


def test_view_moves_time_from_hidden_cpus_and_trims_idle(v1_rw):
    v1, views = v1_rw, CpuViews()
    render(v1, "/docker/cfs", views, cfs=True)  # seeds the counters
    fields = {cpu: list(values) for cpu, values in HOST_CPU_FIELDS.items()}
    fields[1][3] += 200  # cpu1: 200 ticks more idle
    fields[2][0] += 100  # cpu2 (hidden): 100 ticks of the container's user time ...
    fields[2][3] += 100  # ... and 100 more idle
    write(f"{v1.roots.proc}/stat", host_stat(fields))
    write(v1.cg_file("/docker/cfs", "cpuacct.usage_all"),
          f"cpu user system\n0 0 0\n1 0 0\n2 {1 * SEC} 0\n3 0 0\n")
    # threshold = 400 ticks / 4 CPUs * 2 = 200: cpu1 takes cpu2's 100 user ticks from
    # its idle; then 0.5 of the 2 CPUs' 200 ticks (quota 1.5 of 2) is cut from idle
    assert render(v1, "/docker/cfs", views, cfs=True).splitlines()[:3] == [
        "cpu  100 0 0 50 0 0 0 0 0 0",
        "cpu0 0 0 0 0 0 0 0 0 0 0",
        "cpu1 100 0 0 50 0 0 0 0 0 0",
    ]


def test_btime_is_the_containers_start_and_the_hosts_for_the_host(v1):
    assert "btime 1700000500\n" in render(v1)
    assert "btime 1700000000\n" in stat.render(v1.req(None)).decode()


def test_no_counter_runs_backwards_for_a_container(v1_rw):
    """The host's ticks lag the cgroup's exact CPU time: the derived idle time must not shrink."""
    floors = Floors()

    def read():
        return stat.render(v1_rw.req("/docker/abc", floors=floors)).decode().splitlines()[:3]

    first = read()
    # the container burnt 1 s more on cpu1 while the host's tick-sampled busy time did not move yet
    write(v1_rw.cg_file("/docker/abc", "cpuacct.usage_all"),
          "cpu user system\n0 0 0\n1 6000000000 3000000000\n2 0 0\n3 2000000000 1000000000\n")
    second = read()
    assert second[1].split()[:2] == ["cpu1", "600"]  # the new time shows
    for before, after in zip(first, second):
        assert all(int(b) <= int(a) for b, a in zip(before.split()[1:], after.split()[1:])), (before, after)
    # without the kept floors (a fresh daemon, or the host) the idle time would have dropped
    assert int(stat.render(v1_rw.req("/docker/abc")).decode().splitlines()[1].split()[4]) < int(first[1].split()[4])
