"""The daemon serves on through bad requests, odd reads, load and vanishing callers."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from lxcfs_py.served_files import SERVED_FILES
from tests.live.cgroups import join, memory_cgroups, run_in_container_like
from tests.live.daemons import scaled

MiB = 1024 * 1024


def memtotal_kb(daemon, cgroup) -> int:
    out = run_in_container_like(cgroup, f"print(open('{daemon.mountpoint}/proc/meminfo').readline())")
    return int(out.split()[1])


@pytest.mark.parametrize(
    "limits, expected_mib",
    [
        ([100 * MiB, None], 100),  # the container has no limit of its own: the parent's counts
        ([100 * MiB, 300 * MiB], 100),  # a looser own limit does not beat the parent's
        ([100 * MiB, 50 * MiB], 50),
        ([None, None, 64 * MiB], 64),
    ],
)
def test_the_tightest_limit_on_the_path_is_memtotal(start_daemon, limits, expected_mib):
    daemon = start_daemon()
    with memory_cgroups(*limits) as cgroup:
        assert memtotal_kb(daemon, cgroup) == expected_mib * 1024


def test_one_byte_reads_and_offsets_agree_with_one_snapshot(start_daemon):
    daemon = start_daemon()
    code = textwrap.dedent(f"""
        import os
        for name in {list(SERVED_FILES)!r}:
            fd = os.open("{daemon.mountpoint}/" + name, os.O_RDONLY)
            parts = []
            while chunk := os.read(fd, 1):
                parts.append(chunk)
            whole = b"".join(parts)
            # a container with no I/O yet has no diskstats lines (v2: an empty io.stat)
            assert whole.endswith(b"\\n") or name == "proc/diskstats" and not whole, name
            for off in (1, 7, len(whole) // 2, len(whole) - 1) if whole else ():
                assert os.pread(fd, 33, off) == whole[off:off + 33], (name, off)
            os.close(fd)
        print("ok")
    """)
    with memory_cgroups(256 * MiB) as cgroup:
        assert run_in_container_like(cgroup, code).strip() == "ok"
        assert memtotal_kb(daemon, cgroup) == 256 * 1024


def test_a_rewinding_reader_gets_fresh_numbers(start_daemon):
    daemon = start_daemon()
    code = textwrap.dedent(f"""
        import os
        fd = os.open("{daemon.mountpoint}/proc/meminfo", os.O_RDONLY)
        before = os.pread(fd, 65536, 0)
        data = bytearray(64 * 1024 * 1024)  # touch memory: usage rises
        for i in range(0, len(data), 4096):
            data[i] = 1
        after = os.pread(fd, 65536, 0)
        free = lambda text: int(text.split(b"MemFree:")[1].split()[0])
        print(free(before) - free(after))
    """)
    with memory_cgroups(512 * MiB) as cgroup:
        assert int(run_in_container_like(cgroup, code)) > 32 * 1024  # kB: top and free -s see it


def test_writes_and_changes_are_refused_at_once(start_daemon):
    daemon = start_daemon()
    proc = f"{daemon.mountpoint}/proc"
    attempts = {
        "open for write": (lambda: open(f"{proc}/meminfo", "w"), errno.EACCES),
        "append": (lambda: open(f"{proc}/meminfo", "a"), errno.EACCES),
        "create": (lambda: open(f"{proc}/new", "w"), errno.EROFS),
        "mkdir": (lambda: os.mkdir(f"{proc}/dir"), errno.EROFS),
        "unlink": (lambda: os.unlink(f"{proc}/meminfo"), errno.EROFS),
        "rename": (lambda: os.rename(f"{proc}/meminfo", f"{proc}/other"), errno.EROFS),
        "chmod": (lambda: os.chmod(f"{proc}/meminfo", 0o666), errno.EROFS),
        "symlink": (lambda: os.symlink("x", f"{proc}/link"), errno.EROFS),
    }
    for name, (attempt, expected) in attempts.items():
        with pytest.raises(OSError) as caught:
            attempt()
        assert caught.value.errno == expected, name
    assert open(f"{proc}/meminfo").read().startswith("MemTotal:")


def test_thousands_of_concurrent_opens(start_daemon):
    daemon = start_daemon()
    code = textwrap.dedent(f"""
        import os, resource, threading
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
        totals = []
        def worker():
            fds = [os.open("{daemon.mountpoint}/proc/meminfo", os.O_RDONLY) for _ in range(1000)]
            for fd in fds:
                totals.append(os.read(fd, 65536).split(b"\\n")[0])
                os.close(fd)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(totals), len(set(totals)), totals[0].decode())
    """)
    with memory_cgroups(128 * MiB) as cgroup:
        count, distinct, *line = run_in_container_like(cgroup, code, timeout=120).split()
    assert (count, distinct) == ("4000", "1")
    assert line == ["MemTotal:", str(128 * 1024), "kB"]
    assert daemon.process.poll() is None


def test_callers_killed_mid_request_and_removed_cgroups_do_not_hurt(start_daemon):
    daemon = start_daemon()
    reader = f"while True: open('{daemon.mountpoint}/proc/meminfo').read(); open('{daemon.mountpoint}/proc/stat').read()"
    with memory_cgroups(64 * MiB) as cgroup:
        for _ in range(20):
            process = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", reader],
                                       preexec_fn=lambda: join(cgroup))
            try:
                process.wait(scaled(0.15))  # long enough to be mid-read
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert memtotal_kb(daemon, cgroup) == 64 * 1024
    # that cgroup is gone now; a new one with the same depth is served right
    with memory_cgroups(32 * MiB) as cgroup:
        assert memtotal_kb(daemon, cgroup) == 32 * 1024
    assert daemon.process.poll() is None
    assert "Traceback" not in daemon.log()
