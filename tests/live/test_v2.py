"""What only a real cgroup-v2 kernel shows: limits in memory.max, memory.swap.max, cpu.max, cpuset.cpus,
CPU time in cpu.stat, I/O in io.stat, one unified hierarchy laid out as systemd does. scripts/test-v2.sh runs
these in a v2 guest; on a v1 host they are skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.live.cgroups import CGROUP_ROOT, V2, join, nested_cgroups, procs_file, run_in_container_like
from tests.live.daemons import scaled

pytestmark = pytest.mark.skipif(not V2, reason="needs a cgroup v2 kernel (scripts/test-v2.sh boots one)")

MiB = 1024 * 1024


def memory_kb(meminfo: str, label: str) -> int:
    return next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith(label + ":"))


def read_in(cgroup: str, mountpoint: str, name: str) -> str:
    return run_in_container_like(cgroup, f"print(open('{mountpoint}/{name}').read(), end='')")


# The tools a user runs, with the daemon's files bound over /proc in the container's own mount namespace.
TOOLS = """
import subprocess
root = {root!r}
binds = ' && '.join(f'mount --bind {{root}}/proc/{{name}} /proc/{{name}}' for name in ('meminfo', 'uptime', 'cpuinfo'))
script = binds + ' && free -b && echo nproc $(nproc) && cat /proc/uptime'
print(subprocess.run(['unshare', '-m', 'sh', '-ec', script], capture_output=True, text=True, check=True).stdout)
"""


def test_free_nproc_and_uptime_in_a_limited_container(start_daemon):
    daemon = start_daemon()
    limits = {"memory.max": str(200 * MiB), "cpuset.cpus": "0"}
    before = float(open("/proc/uptime").read().split()[0])
    with nested_cgroups("memory", limits) as cgroup:
        out = run_in_container_like(cgroup, TOOLS.format(root=daemon.mountpoint))
    elapsed = float(open("/proc/uptime").read().split()[0]) - before
    lines = out.strip().splitlines()
    mem = next(line.split() for line in lines if line.startswith("Mem:"))
    assert int(mem[1]) == 200 * MiB, out
    assert "nproc 1" in lines, out
    uptime = float(lines[-1].split()[0])
    # the container's init started inside this window: its uptime cannot be longer
    assert 0 <= uptime <= elapsed + 0.01, (uptime, elapsed)


@pytest.fixture
def host_swap(tmp_path_factory):
    """Swap the guest can account: a swap file on the root disk, if the kernel has none."""
    if int(open("/proc/meminfo").read().split("SwapTotal:")[1].split()[0]) > 0:
        yield
        return
    path = f"/var/tmp/lxcfs-py-swap-{uuid.uuid4().hex[:8]}"
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", "count=256", "status=none"], check=True)
    os.chmod(path, 0o600)
    subprocess.run(["mkswap", "-q", path], check=True)
    subprocess.run(["swapon", path], check=True)
    try:
        yield
    finally:
        subprocess.run(["swapoff", path], check=True)
        os.unlink(path)


def test_swap_limit_is_memory_swap_max_alone(start_daemon, host_swap):
    daemon = start_daemon()
    limits = {"memory.max": str(200 * MiB), "memory.swap.max": str(100 * MiB)}
    with nested_cgroups("memory", limits) as cgroup:
        meminfo = read_in(cgroup, daemon.mountpoint, "proc/meminfo")
    assert memory_kb(meminfo, "MemTotal") == 200 * 1024
    # v2's swap.max is swap alone (v1's memsw was memory plus swap): SwapTotal is that limit
    assert memory_kb(meminfo, "SwapTotal") == 100 * 1024, meminfo


def test_cpuset_cpus_are_the_containers_cpus(start_daemon):
    if os.cpu_count() < 2:
        pytest.skip("one CPU shows one CPU whatever the cpuset")
    daemon = start_daemon()
    with nested_cgroups("cpuset", {"cpuset.cpus": "1"}) as cgroup:
        cpuinfo = read_in(cgroup, daemon.mountpoint, "proc/cpuinfo")
        stat = read_in(cgroup, daemon.mountpoint, "proc/stat")
    assert cpuinfo.count("processor\t:") == 1, cpuinfo
    cpu_lines = [line.split()[0] for line in stat.splitlines() if line.startswith("cpu")]
    assert cpu_lines == ["cpu", "cpu1"], stat  # host CPU numbers, as LXCFS 5.0 prints them


READ_CPUS = """
root = {root!r}
cpuinfo = open(root + '/proc/cpuinfo').read().count('processor\\t:')
online = open(root + '/sys/devices/system/cpu/online').read().strip()
print(cpuinfo, online)
"""


@pytest.mark.parametrize("cpu_max, expected", [("50000 100000", "1 0"), ("150000 100000", "2 0-1"),
                                               ("max 100000", "2 0-1")])
def test_cpu_max_on_the_containers_own_cgroup_sets_the_cpus(start_daemon, cpu_max, expected):
    if os.cpu_count() < 2:
        pytest.skip("one CPU shows one CPU whatever the quota")
    daemon = start_daemon(["--enable-cfs"])
    with nested_cgroups("cpu", {"cpu.max": cpu_max}) as cgroup:
        assert run_in_container_like(cgroup, READ_CPUS.format(root=daemon.mountpoint)).strip() == expected


def test_systemd_style_slice_and_scope_take_the_tightest_limit(start_daemon):
    daemon = start_daemon(["--enable-cfs"])
    slice_ = {"memory.max": str(300 * MiB), "cpu.max": "100000 100000"}
    scope = {"memory.max": str(500 * MiB)}
    unit = uuid.uuid4().hex[:8]
    names = (f"lxcfs-py-test-{unit}.slice", f"lxcfs-py-test-{unit}-pod.slice", f"docker-{unit}.scope")
    with nested_cgroups("memory", slice_, {}, scope, names=names) as cgroup:
        assert cgroup == "/" + "/".join(names)
        meminfo = read_in(cgroup, daemon.mountpoint, "proc/meminfo")
        cpus = run_in_container_like(cgroup, READ_CPUS.format(root=daemon.mountpoint)).split()[0]
    assert memory_kb(meminfo, "MemTotal") == 300 * 1024
    assert cpus == "1"


WRITE_AND_SYNC = """
import os
fd = os.open({path!r}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, b'x' * {size})
os.fsync(fd)
os.close(fd)
"""


def disk_line(diskstats: str, device: tuple[int, int]) -> list[int]:
    for line in diskstats.splitlines():
        fields = line.split()
        if (int(fields[0]), int(fields[1])) == device:
            return [int(value) for value in fields[3:]]
    raise AssertionError(f"no line for {device} in {diskstats}")


def test_diskstats_are_the_containers_io_stat(start_daemon):
    daemon = start_daemon()
    path = f"/var/tmp/lxcfs-py-io-{uuid.uuid4().hex[:8]}"
    device = os.major(os.stat("/var/tmp").st_dev), os.minor(os.stat("/var/tmp").st_dev)
    size = 4 * MiB
    try:
        with nested_cgroups("io", {}) as cgroup:
            run_in_container_like(cgroup, WRITE_AND_SYNC.format(path=path, size=size))
            diskstats = read_in(cgroup, daemon.mountpoint, "proc/diskstats")
            io_stat = open(f"{CGROUP_ROOT}{cgroup}/io.stat").read()
    finally:
        os.unlink(path)
    written = disk_line(diskstats, device)[6]  # sectors written
    wbytes = next(int(pair.split("=")[1]) for line in io_stat.splitlines()
                  if line.startswith(f"{device[0]}:{device[1]} ") for pair in line.split() if pair.startswith("wbytes="))
    # the container's own writes, no more than its cgroup has ever written (not the host's disk totals)
    assert size // 512 <= written <= wbytes // 512, (written, io_stat)
    host_written = disk_line(open("/proc/diskstats").read(), device)[6]
    assert written < host_written


BURN = """
import resource, time
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    pass
used = resource.getrusage(resource.RUSAGE_SELF)
print(used.ru_utime + used.ru_stime)
"""


def test_uptime_idle_is_the_containers_age_less_its_cpu_stat_usage(start_daemon):
    daemon = start_daemon()
    with nested_cgroups("cpu", {}) as cgroup:
        burned = float(run_in_container_like(cgroup, BURN.format(seconds=3)))
        code = (f"import time; time.sleep(1); age, idle = map(float, open('{daemon.mountpoint}/proc/uptime')"
                ".read().split()); print(age, idle)")
        age, idle = map(float, run_in_container_like(cgroup, code).split())
        usage = int(open(f"{CGROUP_ROOT}{cgroup}/cpu.stat").read().split("usage_usec ")[1].split()[0]) / 1e6
    # the busy time the daemon took off is the cgroup's own cpu.stat usage, which includes the burn
    assert burned > 0.5
    assert idle <= age - burned + 0.02 or idle == age  # idle == age: usage above age (LXCFS's rule)
    assert age - idle <= usage + 0.02


def test_a_cgroup_removed_mid_read_is_answered(start_daemon):
    daemon = start_daemon()
    code = (f"import sys; f = open('{daemon.mountpoint}/proc/meminfo'); print(f.readline(), end='', flush=True); "
            "sys.stdin.readline(); print(f.read(), end='')")
    with nested_cgroups("memory", {"memory.max": str(64 * MiB)}, {}) as cgroup:
        reader = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
                                  preexec_fn=lambda: join(cgroup), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            first = reader.stdout.readline()
            # the container ends (its processes leave) and its cgroup goes while the file is open
            for pid in open(procs_file(cgroup)).read().split():
                open(procs_file("/"), "w").write(pid)
            os.rmdir(CGROUP_ROOT + cgroup)
            rest, _ = reader.communicate("go\n", timeout=scaled(10))
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
    assert first.split() == ["MemTotal:", str(64 * 1024), "kB"], first
    assert rest.startswith("MemFree:"), rest
    assert daemon.process.poll() is None
    assert "Traceback" not in daemon.log()
