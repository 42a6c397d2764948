"""After a crash under systemd's fd store, a file opened before it never shows another container's numbers."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.live import daemons
from tests.live.cgroups import join, memory_cgroups
from tests.live.fdstore import FdStore

MiB = 1 << 20
# Holds <mount>/proc/meminfo open with its first line read; on "go", reads the rest and then rewinds
# (pread at 0, as top does): prints each outcome, the first line of the text or the errno's name.
HOLDER = r"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.read(fd, 40).decode().splitlines()[0], flush=True)
sys.stdin.readline()
for read in (lambda: os.read(fd, 65536), lambda: os.pread(fd, 65536, 0)):
    try:
        text = read().decode()
        print(text.splitlines()[0] if text else "EOF", flush=True)
    except OSError as err:
        print(errno.errorcode[err.errno], flush=True)
"""
# Opens <mount>/proc/meminfo `count` times and keeps the handles: after a restart they get the first numbers.
OPENER = r"""
import os, sys
fds = [os.open(sys.argv[1], os.O_RDONLY) for _ in range(int(sys.argv[2]))]
print(os.read(fds[0], 40).decode().splitlines()[0], flush=True)
sys.stdin.readline()
"""


def in_own_pid_namespace(cgroup: str, code: str, *args: str) -> subprocess.Popen:
    """Python `code` as pid 1 of a new pid namespace in memory cgroup `cgroup`: a container's process."""

    return subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code, *args],
                            preexec_fn=lambda: join(cgroup), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_handle_opened_before_a_crash_never_serves_another_container(tmp_path):
    store = FdStore(tmp_path)
    mountpoint = str(tmp_path / "mnt")
    meminfo = f"{mountpoint}/proc/meminfo"
    processes = []
    with memory_cgroups(100 * MiB) as small, memory_cgroups(300 * MiB) as large:
        try:
            store.start(mountpoint, ["--no-remount"])
            holder = in_own_pid_namespace(small, HOLDER, meminfo)
            processes.append(holder)
            assert holder.stdout.readline().split() == ["MemTotal:", "102400", "kB"]
            store.kill9()
            store.restart()
            # the other container opens files of the adopted connection: a daemon numbering its handles
            # afresh gives them the numbers the holder's handle had
            opener = in_own_pid_namespace(large, OPENER, meminfo, "64")
            processes.append(opener)
            assert opener.stdout.readline().split() == ["MemTotal:", "307200", "kB"]
            holder.stdin.write("go\n")
            holder.stdin.flush()
            outcomes = [holder.stdout.readline().strip() for _ in range(2)]
            print("the holder's reads after the crash:", outcomes)
            for outcome in outcomes:
                assert "307200" not in outcome, f"another container's numbers: {outcomes}"
                assert outcome.startswith("MemTotal:") and "102400" in outcome or outcome in ("EBADF", "EOF"), outcomes
            # a new open after the crash is served normally
            fresh = subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "head", "-1", meminfo],
                                   capture_output=True, text=True, timeout=daemons.scaled(30))
            assert fresh.returncode == 0, fresh.stderr
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            store.stop()
