"""Start and stop real FUSE daemons (ours and Debian's lxcfs) for live tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from lxcfs_py import heal_records, mounts
from lxcfs_py.served_files import SERVED_FILES

LXCFS_PY = [sys.executable, "-m", "lxcfs_py"]
# The one factor every wait in the live tests is multiplied by: 1 on a host, more where everything is
# slower (an emulated guest). Waits are bounds on what must happen, never expectations of speed.
TIME_SCALE = float(os.environ.get("LXCFS_PY_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE
LXCFS_REF = ["/usr/bin/lxcfs"]
# Served files that LXCFS 5 (C) passes through from the host where we virtualize: by design not the same.
LXCFS_REF_PASSES_THROUGH = {"sys/devices/system/cpu/possible", "sys/devices/system/cpu/present"}
# every served file that both daemons virtualize: what they are compared (and benchmarked) on
COMPARABLE_WITH_LXCFS_REF = [path for path in SERVED_FILES if path not in LXCFS_REF_PASSES_THROUGH]


@dataclass
class Daemon:
    mountpoint: str
    process: subprocess.Popen
    log_path: str

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, and make sure nothing stays mounted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        ensure_free(self.mountpoint)
        return self.process.returncode


def ensure_free(mountpoint: str) -> None:
    """Detach whatever a test left mounted at `mountpoint`."""
    if mounts.state(mountpoint) != "free":
        mounts.lazy_unmount(mountpoint)


def forget_heal_records(mountpoint: str) -> None:
    """At the end of a test: its mountpoint is never used again, so the heal records a killed
    daemon leaves behind on purpose (/run/lxcfs-py) would only pile up."""
    heal_records.remove(mountpoint, set(heal_records.recorded(mountpoint)))


def workers_of(daemon) -> list[int]:
    """The worker processes of `daemon` (its children started with --worker=)."""
    return worker_pids(daemon.process.pid)


def serving_pids(main_pid: int) -> list[int]:
    """The daemon's main process and its workers: every process that may be answering a request."""
    return [main_pid, *worker_pids(main_pid)]


def worker_pids(main_pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == main_pid and any(arg.startswith(b"--worker=") for arg in cmdline):
            found.append(int(entry))
    return sorted(found)


def alive(pid: int) -> bool:
    """`pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def crash(daemon) -> None:
    """SIGKILL the daemon's main process and wait until its workers followed it (the mount is dead then)."""
    workers = workers_of(daemon)
    daemon.process.kill()
    daemon.process.wait()
    if not wait_for(lambda: not any(alive(pid) for pid in workers), 10):
        raise AssertionError(f"workers {workers} outlived their killed main process")


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` (scaled) seconds pass (False)."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def wait_mounted(mountpoint: str, process: subprocess.Popen, log_path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path) as f:
                raise RuntimeError(f"daemon exited with {process.returncode}: {f.read()}")
        try:
            # a read, not a stat: a dead mount's attributes may still be cached
            if mounts.state(mountpoint) == "live" and open(f"{mountpoint}/proc/meminfo", "rb").read():
                return
        except (OSError, mounts.MountError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{mountpoint} was not mounted within {scaled(timeout)}s")


def start(command: list[str], mountpoint: str, flags: list[str] = (), log_dir: str = "/tmp") -> Daemon:
    try:
        os.makedirs(mountpoint, exist_ok=True)
    except FileExistsError:
        pass  # a stale mount: the daemon must cope with it
    log_path = os.path.join(log_dir, os.path.basename(mountpoint) + ".log")
    log = open(log_path, "w")
    process = subprocess.Popen([*command, "-f", *flags, mountpoint], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        wait_mounted(mountpoint, process, log_path)
    except Exception:
        Daemon(mountpoint, process, log_path).stop()
        raise
    return Daemon(mountpoint, process, log_path)
