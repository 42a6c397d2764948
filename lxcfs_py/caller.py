"""Caller pid -> the init of its pid namespace -> that init's cgroup.

Resolving a namespace's init may scan /proc, so results are cached per pid
namespace (keyed by the namespace's inode) and re-checked cheaply on each
request: the cached init must still live in that same namespace.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

from lxcfs_py.cgroups.base import Cgroup
from lxcfs_py.cgroups.detect import CgroupFactory
from lxcfs_py.fsread import read_text

REFRESH_SECONDS = 2.0  # re-read the init's cgroup this often (it may be moved)


class CallerGone(Exception):
    """The calling process (or its namespace's init) exited mid-request."""


@dataclass
class Caller:
    init_pid: int
    cgroup: Cgroup | None  # None: a host process
    resolved_at: float


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


def find_init(proc_root: str, pid: int, ns: int) -> int:
    """The pid of the init of pid namespace `ns`, which `pid` belongs to.

    Walk up the parents while they stay in the namespace (orphans are
    reparented to the init, so this usually ends there); a process entered
    with setns (docker exec) has a parent outside, so fall back to a scan.
    """
    current = pid
    for _ in range(64):
        status = _status(proc_root, current)
        if _is_ns_init(status):
            return current
        parent = int(status.get("PPid", "0"))
        if parent <= 0:
            break
        try:
            if pidns_inode(proc_root, parent) != ns:
                break
        except OSError:
            break
        current = parent
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            if pidns_inode(proc_root, int(name)) == ns and _is_ns_init(_status(proc_root, int(name))):
                return int(name)
        except OSError:
            continue
    raise CallerGone(f"no init found for pid namespace {ns}")


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


class CallerResolver:
    def __init__(self, proc_root: str, factory: CgroupFactory, host_pidns: int | None = None):
        self.proc_root = proc_root
        self.factory = factory
        self.host_pidns = host_pidns if host_pidns is not None else pidns_inode(proc_root, os.getpid())
        self._cache: dict[int, Caller] = {}

    def resolve(self, pid: int) -> Caller:
        try:
            ns = pidns_inode(self.proc_root, pid)
        except OSError as err:
            raise CallerGone(f"caller {pid} is gone") from err
        if ns == self.host_pidns:
            return Caller(init_pid=1, cgroup=None, resolved_at=0.0)
        now = time.monotonic()
        cached = self._cache.get(ns)
        alive = cached is not None and self._still_init(cached, ns)
        if alive and now - cached.resolved_at < REFRESH_SECONDS:
            return cached
        try:
            # a refresh only re-reads the cgroup: finding the init again may
            # mean scanning all of /proc (for callers that entered with setns)
            init = cached.init_pid if alive else find_init(self.proc_root, pid, ns)
            paths = parse_proc_cgroup(read_text(f"{self.proc_root}/{init}/cgroup"))
        except OSError as err:
            raise CallerGone(f"caller {pid} exited while being resolved") from err
        caller = Caller(init_pid=init, cgroup=self.factory.for_paths(paths), resolved_at=now)
        self._cache[ns] = caller
        if len(self._cache) > 4096:  # namespaces come and go; forget the oldest
            self._cache.pop(next(iter(self._cache)))
        return caller

    def forget(self, pid: int) -> None:
        """Drop what is cached for pid's namespace (its cgroup may have moved)."""
        try:
            self._cache.pop(pidns_inode(self.proc_root, pid), None)
        except OSError:
            pass

    def _still_init(self, caller: Caller, ns: int) -> bool:
        try:
            return pidns_inode(self.proc_root, caller.init_pid) == ns
        except OSError:
            return False
