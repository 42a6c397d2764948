"""No container can take the daemon's memory, or read what the host keeps from its users."""

from __future__ import annotations

import json
import os
import stat
import textwrap
import threading

import pytest

from lxcfs_py.registry import FILES
from lxcfs_py.state import MAX_HANDLES
from tests.live.cgroups import memory_cgroups, run_in_container_like

MiB = 1024 * 1024
HANDLES = 20_000
LARGEST = "proc/slabinfo"  # the largest file served on this host (25 KiB here; cpuinfo can be on many CPUs)

# Holds HANDLES handles of the largest file, one byte read from each, twice; reports
# the daemon's RSS (its /proc entry is visible: /proc is the host's) at each step.
# Two processes of the container hold half each (the hard RLIMIT_NOFILE here is 20,000).
FLOOD = """
import errno, json, os, resource, time
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for line in open("/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def hold(n):
    fds, errors, first = [], {{}}, set()
    for _ in range(n):
        try:
            fd = os.open("{path}", os.O_RDONLY)
        except OSError as err:
            errors[errno.errorcode[err.errno]] = errors.get(errno.errorcode[err.errno], 0) + 1
            continue
        fds.append(fd)
        first.add(os.read(fd, 1).decode())
    return fds, {{"opened": len(fds), "errors": errors, "first": sorted(first)}}
report = {{"start": time.time(), "rss": [rss()], "held": []}}
for _ in range(2):
    results, close_r, close_w = os.pipe(), *os.pipe()
    child = os.fork()
    if child == 0:
        fds, held = hold({n} // 2)
        os.write(results[1], json.dumps(held).encode())
        os.read(close_r, 1)
        os._exit(0)
    fds, held = hold({n} - {n} // 2)
    report["held"] += [held, json.loads(os.read(results[0], 1 << 20))]
    report["rss"].append(rss())
    os.write(close_w, b"x")
    os.waitpid(child, 0)
    for fd in fds:
        os.close(fd)
    for fd in (*results, close_r, close_w):
        os.close(fd)
    time.sleep(0.5)  # release is asynchronous: let the daemon see every close
    report["rss"].append(rss())
report["end"] = time.time()
print(json.dumps(report))
"""

# Reads its own MemTotal until a file appears; reports each read's time, duration and value.
READER = """
import json, os, time
samples = []
while not os.path.exists("{stop}"):
    began = time.time()
    first = open("{mountpoint}/proc/meminfo").readline()
    samples.append((began, time.time() - began, first.split()[1]))
    time.sleep(0.01)
print(json.dumps(samples))
"""


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_a_flood_of_handles_is_bounded_per_container_and_others_keep_reading(start_daemon, tmp_path):
    daemon = start_daemon()
    stop = tmp_path / "stop"
    with memory_cgroups(1024 * MiB) as flooder, memory_cgroups(100 * MiB) as neighbour:
        result = {}

        def neighbour_reads():
            result["samples"] = json.loads(run_in_container_like(
                neighbour, READER.format(stop=stop, mountpoint=daemon.mountpoint), timeout=180))

        reading = threading.Thread(target=neighbour_reads)
        reading.start()
        try:
            flood = FLOOD.format(n=HANDLES, pid=daemon.process.pid, path=f"{daemon.mountpoint}/{LARGEST}")
            report = json.loads(run_in_container_like(flooder, flood, timeout=180))
        finally:
            stop.touch()
            reading.join()
    samples = result["samples"]
    before, *after = report["rss"]
    growth = [(r - before) / MiB for r in after]
    print(f"daemon RSS {before / MiB:.1f} MiB before; growth held/closed/held/closed: "
          + ", ".join(f"{g:.1f}" for g in growth) + f" MiB; per process: {report['held']}")
    assert all(g <= 50 for g in growth), growth
    # the cap is what stopped it, with an errno; each handle that opened read slabinfo itself
    for both in (report["held"][:2], report["held"][2:]):
        opened = sum(held["opened"] for held in both)
        refused = sum(sum(held["errors"].values()) for held in both)
        assert 0 < opened <= MAX_HANDLES and opened + refused == HANDLES, both
        assert all(set(held["errors"]) <= {"EMFILE", "ENOMEM"} for held in both), both
        assert all(held["first"] in ([], ["s"]) for held in both), both
    # the neighbour read its own MemTotal all along, also while the flood ran
    assert {value for _, _, value in samples} == {str(100 * 1024)}
    during = [took for began, took, _ in samples if report["start"] <= began <= report["end"]]
    assert len(during) >= 10, "the neighbour's reads stalled during the flood"
    assert max(took for _, took, _ in samples) < 5.0  # generous on a busy machine: never stuck
    assert daemon.process.poll() is None


def test_a_non_root_user_cannot_read_slabinfo_but_reads_meminfo(start_daemon):
    daemon = start_daemon()
    # the mount's own directory is opened as root: pytest's directories above it are 0700
    code = textwrap.dedent(f"""
        import os
        mount = os.open("{daemon.mountpoint}", os.O_RDONLY | os.O_DIRECTORY)
        os.setgid(65534)
        os.setuid(65534)
        try:
            os.read(os.open("proc/slabinfo", os.O_RDONLY, dir_fd=mount), 4096)
            print("read")
        except PermissionError:
            print("EACCES")
        print(os.read(os.open("proc/meminfo", os.O_RDONLY, dir_fd=mount), 4096).split()[1].decode())
    """)
    with memory_cgroups(64 * MiB) as cgroup:
        assert run_in_container_like(cgroup, code).split() == ["EACCES", str(64 * 1024)]


def served_files(mountpoint: str):
    for directory, _, names in os.walk(mountpoint):
        for name in names:
            path = os.path.join(directory, name)
            yield os.path.relpath(path, mountpoint), path


@pytest.mark.parametrize("prefix", ["proc", "sys"])
def test_every_served_file_has_the_hosts_mode(start_daemon, prefix):
    daemon = start_daemon()
    compared = []
    for rel, path in served_files(f"{daemon.mountpoint}/{prefix}"):
        rel = f"{prefix}/{rel}"
        host = os.lstat(f"/{rel}")
        served = os.lstat(path)
        # read-only view: the host's write bits are dropped, nothing else differs
        assert stat.S_IMODE(served.st_mode) == stat.S_IMODE(host.st_mode) & ~0o222, rel
        compared.append(rel)
    assert {f for f in FILES if f.startswith(prefix)} <= set(compared)
