"""Caller pid -> the init of its pid namespace -> that init's cgroup.

FUSE names the calling thread by pid. The kernel keeps that thread, and so
its pid, until the request is answered (even a SIGKILLed caller waits), so
reads of /proc/<caller>/ are the caller's. Nothing keeps the init found from
there: it is pinned (a pidfd) before its files are read and confirmed alive
after, so a pid reused meanwhile is noticed, never served.

Results are cached per pid namespace (keyed by the namespace's inode). An
entry keeps its init pinned: while the init lives, so does its namespace, and
no other namespace can have that inode, so one cheap check per request
(pidfd_send_signal 0) confirms the entry.

Finding an init may scan all of /proc (a process entered with setns has a
parent outside its namespace), which blocks the single worker: scans are
rate-limited (ScanBudget), and a namespace without an init is not scanned
again for a while.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

from lxcfs_py.cgroups.base import Cgroup
from lxcfs_py.cgroups.detect import CgroupFactory
from lxcfs_py.fsread import read_text
from lxcfs_py.host import starttime_ticks

REFRESH_SECONDS = 2.0  # re-read the init's cgroup this often (it may be moved)
SCAN_RATE = 2.0  # full /proc scans per second, on average, for all callers together
SCAN_BURST = 4  # scans allowed back to back: the longest stall one flood can cause
NOT_FOUND_SECONDS = 5.0  # a namespace whose scan found no init is refused this long
MAX_CACHED = 4096  # namespaces cached (each holds one pidfd)
REAL_PROC = "/proc"


class CallerGone(Exception):
    """The calling process (or its namespace's init) exited mid-request."""


class ScanRefused(OSError):
    """Finding this caller's init needs a /proc scan and the scan budget is spent: EAGAIN, try later."""

    def __init__(self) -> None:
        super().__init__(errno.EAGAIN, "too many pid namespaces entered with setns; /proc scan refused for now")


@dataclass
class Caller:
    init_pid: int
    cgroup: Cgroup | None  # None: a host process
    resolved_at: float
    pin: Any = None  # what keeps init_pid's process identified (see *Pins)


def pidns_inode(proc_root: str, pid: int) -> int:
    path = f"{proc_root}/{pid}/ns/pid"
    try:
        # "pid:[4026531836]": the namespace's inode, for half the cost of a
        # stat() that follows the magic link into nsfs
        link = os.readlink(path)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        return os.stat(path).st_ino  # not a link (a test fixture's plain file)
    return int(link[link.index("[") + 1 : -1])


def _status(proc_root: str, pid: int) -> dict[str, str]:
    out = {}
    for line in read_text(f"{proc_root}/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _is_ns_init(status: dict[str, str]) -> bool:
    nspid = status.get("NSpid", "").split()
    return bool(nspid) and nspid[-1] == "1"


def walk_to_init(proc_root: str, pid: int, ns: int) -> int | None:
    """The init of `ns` found by walking up `pid`'s parents, or None (a parent is outside `ns`).

    Orphans are reparented to the init, so this usually ends there; a process
    entered with setns (docker exec, nsenter) has a parent outside.
    """
    current = pid
    for _ in range(64):
        status = _status(proc_root, current)
        if _is_ns_init(status):
            return current
        parent = int(status.get("PPid", "0"))
        if parent <= 0:
            return None
        try:
            if pidns_inode(proc_root, parent) != ns:
                return None
        except OSError:
            return None
        current = parent
    return None


def scan_for_init(proc_root: str, ns: int) -> int | None:
    """The init of `ns` found among all of /proc; reads a status only where the namespace matches."""
    with os.scandir(proc_root) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if pidns_inode(proc_root, int(entry.name)) == ns and _is_ns_init(_status(proc_root, int(entry.name))):
                    return int(entry.name)
            except OSError:
                continue
    return None


def find_init(proc_root: str, pid: int, ns: int) -> int:
    """The pid of the init of pid namespace `ns`, which `pid` belongs to (unbounded: tests and tools)."""
    init = walk_to_init(proc_root, pid, ns)
    if init is None:
        init = scan_for_init(proc_root, ns)
    if init is None:
        raise CallerGone(f"no init found for pid namespace {ns}")
    return init


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; the v2 line is keyed ''."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller.removeprefix("name=")] = path
    return paths


class ScanBudget:
    """A token bucket: `burst` scans back to back, then `rate` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class PidfdPins:
    """On the real /proc: a pidfd names one process whatever happens to its pid number."""

    @staticmethod
    def pin(pid: int) -> int:
        return os.pidfd_open(pid)

    @staticmethod
    def alive(fd: int) -> bool:
        """Running or not yet reaped (a zombie still holds its pid and its namespace)."""
        try:
            signal.pidfd_send_signal(fd, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists
        return True

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)


class StartTimePins:
    """For any proc root (a test's fixture tree, a kernel without pidfd): a process is its pid and start time."""

    def __init__(self, proc_root: str):
        self.proc_root = proc_root

    def pin(self, pid: int) -> tuple[int, int]:
        return pid, self._start(pid)

    def alive(self, pin: tuple[int, int]) -> bool:
        try:
            return self._start(pin[0]) == pin[1]
        except OSError:
            return False

    def release(self, pin: tuple[int, int]) -> None:
        pass

    def _start(self, pid: int) -> int:
        return starttime_ticks(read_text(f"{self.proc_root}/{pid}/stat"))


def pins_for(proc_root: str):
    if proc_root.rstrip("/") == REAL_PROC and hasattr(os, "pidfd_open"):
        return PidfdPins()
    return StartTimePins(proc_root)


def _max_cached() -> int:
    """A quarter of the fd limit, at most MAX_CACHED: each entry holds a pidfd."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CACHED
    return max(16, min(MAX_CACHED, soft // 4))


class CallerResolver:
    def __init__(self, proc_root: str, factory: CgroupFactory, host_pidns: int | None = None,
                 clock: Callable[[], float] = time.monotonic, pins=None, max_cached: int | None = None,
                 processes: int = 1):
        self.proc_root = proc_root
        self.factory = factory
        self.host_pidns = host_pidns if host_pidns is not None else pidns_inode(proc_root, os.getpid())
        self.clock = clock
        self.pins = pins if pins is not None else pins_for(proc_root)
        self.max_cached = max_cached if max_cached is not None else _max_cached()
        # the daemon's serving processes (pool.py) share the budget: each gets its part
        self.scans = ScanBudget(SCAN_RATE / processes, max(1, SCAN_BURST // processes), clock)
        self._cache: dict[int, Caller] = {}
        self._not_found: dict[int, float] = {}  # namespace -> until when it is refused

    def resolve(self, pid: int) -> Caller:
        try:
            ns = pidns_inode(self.proc_root, pid)
        except OSError as err:
            raise CallerGone(f"caller {pid} is gone") from err
        if ns == self.host_pidns:
            return Caller(init_pid=1, cgroup=None, resolved_at=0.0)
        now = self.clock()
        cached = self._cache.get(ns)
        if cached is not None:
            if not self.pins.alive(cached.pin):
                self._drop(ns)  # its init is gone: the inode may name another namespace now
            elif now - cached.resolved_at < REFRESH_SECONDS:
                return cached
            else:
                # a refresh only re-reads the cgroup: the pinned init is still the one
                return self._store(ns, self._read_cgroup(cached.init_pid, cached.pin, now))
        init = self._find_init(pid, ns, now)
        pin = self._pin(init)
        try:
            # the walk or scan read files by pid number: confirm it is the init, now that it is pinned
            if pidns_inode(self.proc_root, init) != ns or not _is_ns_init(_status(self.proc_root, init)):
                raise CallerGone(f"the init {init} of pid namespace {ns} exited while being resolved")
            caller = self._read_cgroup(init, pin, now)
        except OSError as err:
            self.pins.release(pin)
            raise CallerGone(f"the init {init} exited while being resolved") from err
        except BaseException:
            self.pins.release(pin)
            raise
        return self._store(ns, caller)

    def forget(self, pid: int) -> None:
        """Drop what is cached for pid's namespace (its cgroup may have moved)."""
        try:
            self._drop(pidns_inode(self.proc_root, pid))
        except OSError:
            pass

    def _find_init(self, pid: int, ns: int, now: float) -> int:
        """Walk first; a scan only within the budget, never again soon for a namespace without an init."""
        try:
            init = walk_to_init(self.proc_root, pid, ns)
        except OSError as err:
            raise CallerGone(f"caller {pid} exited while being resolved") from err
        if init is not None:
            return init
        if self._not_found.get(ns, 0.0) > now:
            raise CallerGone(f"no init found for pid namespace {ns} (not scanned again yet)")
        if not self.scans.take():
            raise ScanRefused()
        init = scan_for_init(self.proc_root, ns)
        if init is None:
            if len(self._not_found) >= self.max_cached:
                self._not_found = {n: t for n, t in self._not_found.items() if t > now}
            self._not_found[ns] = now + NOT_FOUND_SECONDS
            raise CallerGone(f"no init found for pid namespace {ns}")
        return init

    def _pin(self, init: int) -> Any:
        try:
            return self.pins.pin(init)
        except OSError as err:
            raise CallerGone(f"the init {init} exited while being resolved") from err

    def _read_cgroup(self, init: int, pin: Any, now: float) -> Caller:
        """The init's cgroup, trusted only if the pinned init still holds its pid after the read."""
        try:
            paths = parse_proc_cgroup(read_text(f"{self.proc_root}/{init}/cgroup"))
        except OSError as err:
            raise CallerGone(f"the init {init} exited while being resolved") from err
        if not self.pins.alive(pin):
            raise CallerGone(f"the init {init} exited while being resolved")
        return Caller(init_pid=init, cgroup=self.factory.for_paths(paths), resolved_at=now, pin=pin)

    def _store(self, ns: int, caller: Caller) -> Caller:
        self._cache[ns] = caller
        if len(self._cache) > self.max_cached:  # namespaces come and go; forget the oldest
            self._drop(next(iter(self._cache)))
        return caller

    def _drop(self, ns: int) -> None:
        caller = self._cache.pop(ns, None)
        if caller is not None:
            self.pins.release(caller.pin)
