"""Small, fast readers for /proc and cgroup files.

os.open/os.read skip the buffered-IO objects that open() builds; these
files are read on every FUSE request, so that matters.

The daemon also keeps the procfs, sysfs and cgroupfs files it reads open
(keep_open_under) and re-reads them with pread() from offset 0. Those files
generate their content afresh on every read from the start, so this returns
what a new open() would, without the path walk, open and close (about 6 of
the 7 us a small cgroup file costs).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

from lxcfs_py.deadline import interruptible
from lxcfs_py.kernel_mounts import mounted_devices

_CHUNK = 65536
_HEAD = 4096

# Filesystems whose files may be kept open: a read from offset 0 regenerates
# the content, and once a file is removed (a cgroup's rmdir) reads fail with
# ENODEV rather than return old data, so a kept fd is as good as a new open.
KEEPABLE_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2"})
# Reopen kept files this often: the longest a kept fd can follow a cgroup
# directory that was renamed (not removed), like the caller cache's refresh.
KEEP_SECONDS = 2.0
# cgroup v1 keeps the pid list of an open cgroup.procs or tasks file for up
# to a second and serves re-reads from it: those must be opened afresh.
_NOT_KEPT = ("/cgroup.procs", "/tasks")


# The two functions that block in the kernel may raise deadline.TooSlow when they keep
# a render on the FUSE loop waiting: they hold nothing their callers' try blocks do not release.
@interruptible
def _read_fd(fd: int, head: bool, pread: bool) -> bytes:
    """Read to EOF (from offset 0 with pread); with `head`, stop after a first short or complete line.

    A short read is not EOF in general: seq_file /proc files (slabinfo,
    diskstats, cpuinfo with many CPUs) return about one page per read().
    But a one-value file (memory.limit_in_bytes, cpu.cfs_quota_us) is a
    single record far shorter than a page, which proc, sysfs and cgroupfs
    return whole from the first read; `head` skips the read that would only
    confirm EOF.
    """
    data = os.pread(fd, _HEAD if head else _CHUNK, 0) if pread else os.read(fd, _HEAD if head else _CHUNK)
    if not data or (head and (len(data) < _HEAD or b"\n" in data)):
        return data
    parts = [data]
    offset = len(data)
    while data := (os.pread(fd, _CHUNK, offset) if pread else os.read(fd, _CHUNK)):
        parts.append(data)
        offset += len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


@interruptible
def _open(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _read_path(path: str, head: bool) -> bytes:
    fd = _open(path)
    try:
        return _read_fd(fd, head, pread=False)
    finally:
        os.close(fd)


class _Kept:
    """One kept fd; closed once retired and no thread reads it (never while one does:
    its number could name another file by then)."""

    __slots__ = ("fd", "opened", "users", "retired")

    def __init__(self, fd: int, opened: float):
        self.fd = fd
        self.opened = opened
        self.users = 0
        self.retired = False


class _KeptFiles:
    """Open fds of synthetic files, by path, least recently used first; shared by the
    loop and the render threads (offload.py)."""

    def __init__(self, prefixes: list[str], proc_root: str, max_kept: int):
        self.prefixes = tuple(p.rstrip("/") + "/" for p in prefixes)
        self.proc = proc_root.rstrip("/") + "/"
        self.max_kept = max_kept
        self.lock = threading.Lock()
        self.fds: OrderedDict[str, _Kept] = OrderedDict()
        self.devices = mounted_devices(KEEPABLE_FS)
        self.devices_read = time.monotonic()

    def read(self, path: str, head: bool) -> bytes:
        now = time.monotonic()
        kept = self._lease(path, now)
        if kept is not None:
            try:
                return _read_fd(kept.fd, head, pread=True)
            except OSError:
                with self.lock:  # removed, or otherwise not as good as a new open: open it again
                    if self.fds.get(path) is kept:
                        del self.fds[path]
                    self._retire(kept)
            finally:
                self._unlease(kept)
        fd = _open(path)
        try:
            data = _read_fd(fd, head, pread=False)
            keep = self._keepable(path, fd, now)
        except BaseException:
            os.close(fd)
            raise
        with self.lock:
            if keep and path not in self.fds:
                self.fds[path] = _Kept(fd, now)
                if len(self.fds) > self.max_kept:
                    self._retire(self.fds.popitem(last=False)[1])
                return data
        os.close(fd)
        return data

    def _lease(self, path: str, now: float) -> _Kept | None:
        with self.lock:
            if self.fds:
                # the least recently used file, once past its time, is closed as other reads go
                # on: a stopped container's files are not kept for long
                oldest = next(iter(self.fds))
                if oldest != path and now - self.fds[oldest].opened >= KEEP_SECONDS:
                    self._retire(self.fds.pop(oldest))
            kept = self.fds.get(path)
            if kept is None:
                return None
            if now - kept.opened >= KEEP_SECONDS:
                del self.fds[path]
                self._retire(kept)
                return None
            kept.users += 1
            self.fds.move_to_end(path)
            return kept

    def _unlease(self, kept: _Kept) -> None:
        with self.lock:
            kept.users -= 1
            if kept.retired and not kept.users:
                os.close(kept.fd)

    @staticmethod
    def _retire(kept: _Kept) -> None:
        """Under the lock."""
        kept.retired = True
        if not kept.users:
            os.close(kept.fd)

    def _keepable(self, path: str, fd: int, now: float) -> bool:
        if not path.startswith(self.prefixes) or path.endswith(_NOT_KEPT):
            return False
        if path.startswith(self.proc):
            top = path[len(self.proc):].partition("/")[0]
            if top.isdigit() or top in ("self", "thread-self"):
                return False  # a process's own files: its pid may be reused
        device = os.fstat(fd).st_dev
        if device not in self.devices and now - self.devices_read > 10.0:
            self.devices = mounted_devices(KEEPABLE_FS)  # a new cgroup hierarchy, maybe
            self.devices_read = now
        return device in self.devices

    def close(self) -> None:
        with self.lock:
            while self.fds:
                self._retire(self.fds.popitem()[1])


_kept: _KeptFiles | None = None


def keep_open_under(prefixes: list[str], proc_root: str, max_kept: int = 256) -> None:
    """From now on, keep procfs/sysfs/cgroupfs files under `prefixes` open between reads
    (not /proc/<pid>/ files)."""
    global _kept
    stop_keeping()
    _kept = _KeptFiles(prefixes, proc_root, max_kept)


def stop_keeping() -> None:
    global _kept
    if _kept is not None:
        _kept.close()
        _kept = None


def _read(path: str, head: bool) -> bytes:
    """Through the kept fds, if files are kept, else with a fresh open."""
    kept = _kept
    if kept is not None:
        return kept.read(path, head=head)
    return _read_path(path, head=head)


def read_bytes(path: str) -> bytes:
    return _read(path, head=False)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8", "replace")


def read_int(path: str) -> int | None:
    """An integer file; None when it says 'max' (cgroup v2 for unlimited)."""
    text = _read(path, head=True).split()
    if not text or text[0] == b"max":
        return None
    return int(text[0])


def read_keyed(path: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat) -> dict; bad lines are skipped."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def read_named(path: str, names: dict[str, str]) -> dict[str, int]:
    """Only the keys in `names` of a 'key value' file (memory.stat), under the names `names` gives them.

    Looking each one up costs half of parsing every line (memory.stat has 40-60,
    read on every meminfo render); a key missing or not a number is left out.
    """
    text = "\n" + read_text(path)
    out: dict[str, int] = {}
    for key, name in names.items():
        needle = _needle(key)
        start = text.find(needle)
        if start < 0:
            continue
        start += len(needle)
        end = text.find("\n", start)
        try:
            out[name] = int(text[start : end if end >= 0 else None])
        except ValueError:
            continue
    return out


_NEEDLES: dict[str, str] = {}


def _needle(key: str) -> str:
    needle = _NEEDLES.get(key)
    if needle is None:
        needle = _NEEDLES[key] = f"\n{key} "
    return needle


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        start = int(lo)
        cpus.update(range(start, int(hi) + 1 if hi else start + 1))
    return sorted(cpus)


def format_cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    ranges: list[str] = []
    cpus = sorted(set(cpus))
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        ranges.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(ranges)
