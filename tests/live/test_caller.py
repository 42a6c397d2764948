"""Who is asking: floods of new pid namespaces, and pids reused under the daemon's feet."""

from __future__ import annotations

import ast
import errno
import os
import statistics
import subprocess
import sys
import textwrap
import time

from lxcfs_py.caller import SCAN_BURST, SCAN_RATE, scan_for_init
from tests.live.cgroups import join, memory_cgroups, run_in_container_like
from tests.live.daemons import scaled

MiB = 1024 * 1024

# Each flooder forks a process that unshares a new pid namespace, starts its init, and
# reads meminfo from a second child: that reader's parent is outside the namespace, so the
# daemon cannot walk to the init and must scan /proc (once per namespace, as `nsenter` or
# `docker exec` into a fresh namespace would). Idle processes make every scan longer.
FLOOD = textwrap.dedent("""
    import ctypes, os, sys, time
    mountpoint, flooders, idle, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(idle):
        os.posix_spawn("/bin/sleep", ["sleep", "3600"], os.environ)
    def one_namespace():
        if libc.unshare(0x20000000) != 0:  # CLONE_NEWPID
            os._exit(100)
        init = os.fork()
        if init == 0:
            time.sleep(3600)
        reader = os.fork()
        if reader == 0:
            try:
                open(mountpoint + "/proc/meminfo", "rb").read()
                os._exit(0)
            except OSError as err:
                os._exit(err.errno)
        code = os.waitstatus_to_exitcode(os.waitpid(reader, 0)[1])
        os.kill(init, 9)
        os.waitpid(init, 0)
        os._exit(code)
    def flooder():
        end, codes = time.monotonic() + seconds, {}
        while time.monotonic() < end:
            child = os.fork()
            if child == 0:
                one_namespace()
            code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            codes[code] = codes.get(code, 0) + 1
        os.write(1, (repr(codes) + "\\n").encode())
    for _ in range(flooders):
        if os.fork() == 0:
            flooder()
            os._exit(0)
    for _ in range(flooders):
        os.wait()
""")

VICTIM = textwrap.dedent("""
    import sys, time
    path, seconds = sys.argv[1] + "/proc/meminfo", float(sys.argv[2])
    end, latencies, totals = time.monotonic() + seconds, [], set()
    while time.monotonic() < end:
        start = time.monotonic()
        with open(path, "rb") as f:
            totals.add(f.readline())
        latencies.append(time.monotonic() - start)
        time.sleep(0.01)
    print(repr((latencies, totals)))
""")


def scan_seconds() -> float:
    """How long one scan of this host's /proc takes now (the daemon's scan, run here)."""
    start = time.monotonic()
    for _ in range(5):
        assert scan_for_init("/proc", 0) is None  # no namespace has inode 0: a full scan
    return (time.monotonic() - start) / 5


def start_in_container_like(cgroup: str, code: str, *args) -> subprocess.Popen:
    """Like run_in_container_like, but in the background; killing it ends its whole namespace."""
    return subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code, *map(str, args)],
        preexec_fn=lambda: join(cgroup),
        stdout=subprocess.PIPE, text=True)


def test_a_flood_of_new_pid_namespaces_does_not_stall_other_containers(start_daemon):
    daemon = start_daemon()
    seconds, flooders, idle = 8.0, 16, 3000
    with memory_cgroups(None) as flood_cgroup, memory_cgroups(96 * MiB) as victim_cgroup:
        flood = start_in_container_like(flood_cgroup, FLOOD, daemon.mountpoint, flooders, idle, seconds)
        try:
            time.sleep(2.0)  # the idle processes are up, the flood is on
            scan = scan_seconds()
            processes = sum(name.isdigit() for name in os.listdir("/proc"))
            victim_code = f"import sys; sys.argv = ['', {daemon.mountpoint!r}, '{seconds - 3}']\n" + VICTIM
            latencies, totals = ast.literal_eval(run_in_container_like(victim_cgroup, victim_code, timeout=120))
            flood_codes = flood.communicate(timeout=scaled(120))[0]
        finally:
            flood.kill()
            flood.wait()
    codes: dict[int, int] = {}
    for line in flood_codes.splitlines():
        for code, count in ast.literal_eval(line).items():
            codes[code] = codes.get(code, 0) + count
    print(f"{processes} processes, scan {scan * 1e3:.1f} ms; flood: {codes} (exit code: count); victim: "
          f"{len(latencies)} reads, median {statistics.median(latencies) * 1e3:.1f} ms, worst {max(latencies) * 1e3:.1f} ms")
    # every flood reader got its data or EAGAIN, and only as many were scanned for as the budget allows
    assert set(codes) <= {0, errno.EAGAIN} and codes.get(errno.EAGAIN, 0) > 0
    assert codes.get(0, 0) <= SCAN_BURST + SCAN_RATE * (seconds + 1)
    assert [line.split() for line in totals] == [[b"MemTotal:", str(96 * 1024).encode(), b"kB"]]
    # The worker scans at most SCAN_BURST times back to back, then SCAN_RATE per second; refused
    # requests cost a parent walk. One read waits at most for the scans queued before it, plus
    # a generous second for a machine shared with other tests.
    assert max(latencies) < SCAN_BURST * scan + 1.0
