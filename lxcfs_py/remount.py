"""Heal containers whose bind mounts point at an earlier, dead lxcfs-py mount.

When the daemon dies, every container's /proc/meminfo (and the rest) is a
bind of the dead FUSE connection and fails with ENOTCONN until the container
restarts. A new daemon can re-bind each such file from its fresh mount: clone
the file's mount with open_tree(OPEN_TREE_CLONE) here, then in a forked,
single-threaded child enter the container's mount namespace, detach the
stale bind and move the clone onto the same path. Nothing in the container
needs shared mount propagation, and the container keeps running.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass

from lxcfs_py.fsread import read_text

FSNAME = "lxcfs-py"  # our mounts' source in mountinfo (the fsname= mount option)
FSTYPE = "fuse.lxcfs"

# x86-64 syscall numbers (the generic table, shared by arm64 for these)
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


@dataclass(frozen=True)
class StaleBind:
    pid: int  # a process in the container's mount namespace
    target: str  # the path inside the container, e.g. /proc/meminfo
    fs_path: str  # the path inside our tree, e.g. /proc/meminfo
    container: str  # a name for people: the process's cgroup


def parse_mountinfo(text: str) -> list[dict[str, str]]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append({"device": fields[2], "root": _unescape(fields[3]), "target": _unescape(fields[4]),
                       "fstype": tail[0], "source": tail[1]})
    return mounts


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def current_device(proc_root: str, mountpoint: str) -> str | None:
    """major:minor of the live mount at `mountpoint` in our own namespace."""
    live = [m["device"] for m in parse_mountinfo(read_text(f"{proc_root}/self/mountinfo"))
            if m["target"] == mountpoint and m["fstype"] == FSTYPE and m["source"] == FSNAME]
    return live[-1] if live else None  # the last one mounted there is the one in use


def _container_name(proc_root: str, pid: int) -> str:
    try:
        for line in read_text(f"{proc_root}/{pid}/cgroup").splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[1] in ("memory", ""):
                return parts[2]
    except OSError:
        pass
    return "?"


RECORD_DIR = "/run/lxcfs-py"
RECORD_KEEP = 8


def _record_path(mountpoint: str, record_dir: str) -> str:
    name = hashlib.sha1(mountpoint.encode()).hexdigest()[:16]
    return f"{record_dir}/{name}.devices"


def recorded_devices(mountpoint: str, record_dir: str = RECORD_DIR) -> list[str]:
    """The devices (major:minor) of the earlier mounts made at `mountpoint` on this boot."""
    try:
        with open(_record_path(mountpoint, record_dir)) as f:
            return f.read().split()
    except OSError:
        return []


def record_device(proc_root: str, mountpoint: str, record_dir: str = RECORD_DIR) -> None:
    """Remember the live mount's device, so a successor heals exactly its binds."""
    device = current_device(proc_root, mountpoint)
    if device is None:
        return
    devices = [d for d in recorded_devices(mountpoint, record_dir) if d != device][-(RECORD_KEEP - 1):] + [device]
    os.makedirs(record_dir, exist_ok=True)
    tmp = _record_path(mountpoint, record_dir) + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(devices) + "\n")
    os.replace(tmp, _record_path(mountpoint, record_dir))


def find_stale(proc_root: str, mountpoint: str, record_dir: str = RECORD_DIR) -> list[StaleBind]:
    """Containers' binds of earlier mounts at `mountpoint` (their daemons are gone), one
    mount namespace at a time. Binds of other daemons' mounts (a node running its own
    lxcfs-py) are never touched: only the devices recorded for this mountpoint count."""
    live = current_device(proc_root, mountpoint)
    earlier = set(recorded_devices(mountpoint, record_dir)) - {live}
    if not earlier:
        return []
    own_ns = os.readlink(f"{proc_root}/self/ns/mnt")
    seen = {own_ns}
    stale = []
    for name in sorted(os.listdir(proc_root), key=lambda n: int(n) if n.isdigit() else 0):
        if not name.isdigit():
            continue
        try:
            ns = os.readlink(f"{proc_root}/{name}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            mounts = parse_mountinfo(read_text(f"{proc_root}/{name}/mountinfo"))
        except OSError:
            continue  # exited, or a kernel thread
        for mount in mounts:
            if mount["fstype"] == FSTYPE and mount["source"] == FSNAME and mount["device"] in earlier:
                stale.append(StaleBind(int(name), mount["target"], mount["root"], _container_name(proc_root, int(name))))
    return stale


def _clone(path: str) -> int:
    """A detached, read-only copy of the mount at `path` (not attached anywhere yet)."""
    fd = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
                f"open_tree {path}")
    attr = MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    # best effort: the files refuse writes anyway
    _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
    return fd


def _replace_in_namespace(pid: int, clone_fd: int, target: str) -> None:
    """In a forked child: enter pid's mount namespace, detach the stale bind, attach the clone."""
    ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # single-threaded here, as setns(CLONE_NEWNS) requires
        try:
            os.close(read_end)
            _check(_libc.setns(ns_fd, CLONE_NEWNS), "setns")
            _check(_libc.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")
            _check(_libc.syscall(SYS_MOVE_MOUNT, clone_fd, b"", AT_FDCWD, os.fsencode(target),
                                 MOVE_MOUNT_F_EMPTY_PATH), f"move_mount {target}")
            os._exit(0)
        except BaseException as err:  # noqa: BLE001 - report, never return into the parent's code
            os.write(write_end, str(err).encode()[:500])
            os._exit(1)
    os.close(write_end)
    os.close(ns_fd)
    with os.fdopen(read_end, "rb") as report:
        message = report.read().decode()
    _, status = os.waitpid(child, 0)
    if status != 0:
        raise OSError(message or f"helper exited with status {status}")


def heal(stale: StaleBind, mountpoint: str) -> None:
    clone_fd = _clone(mountpoint.rstrip("/") + stale.fs_path)
    try:
        _replace_in_namespace(stale.pid, clone_fd, stale.target)
    finally:
        os.close(clone_fd)


def remount(mountpoint: str, dry_run: bool = False, proc_root: str = "/proc", out=print,
            record_dir: str = RECORD_DIR) -> int:
    """Heal every stale bind; print one line each. Returns how many could not be healed."""
    failures = 0
    for stale in find_stale(proc_root, mountpoint, record_dir):
        where = f"pid {stale.pid} ({stale.container}): {stale.target}"
        if dry_run:
            out(f"{where}: stale, would re-bind from {mountpoint}{stale.fs_path}")
            continue
        try:
            heal(stale, mountpoint)
        except OSError as err:
            failures += 1
            out(f"{where}: not healed: {err}")
        else:
            out(f"{where}: healed")
    return failures
