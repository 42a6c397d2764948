"""Mountpoint states: free, live, or stale (a dead daemon's FUSE mount)."""

import ctypes
import os

from lxcfs_py.bind_mounts import mount_state

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class MountError(Exception):
    """A one-line, actionable reason the daemon cannot mount."""


def state(mountpoint: str) -> str:
    """'free', 'live' or 'stale'."""
    try:
        return mount_state(mountpoint)
    except OSError as err:
        raise MountError(f"cannot use mountpoint {mountpoint}: {err.strerror}") from None


def is_mounted(mountpoint: str) -> bool:
    """From the mount table, never touching the mount (its daemon may not answer)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mountpoint for line in f)


def lazy_unmount(mountpoint: str) -> None:
    if _libc.umount2(os.fsencode(mountpoint), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        raise MountError(f"cannot unmount stale mount {mountpoint}: {os.strerror(code)}")


def prepare(mountpoint: str, log) -> None:
    """Make `mountpoint` ready to mount on, or raise MountError saying why not."""
    current = state(mountpoint)
    if current == "live":
        raise MountError(
            f"{mountpoint} is already a live mount (is another lxcfs-py or lxcfs running?); "
            "stop it or choose another mountpoint"
        )
    if current == "stale":
        log.warning("%s: stale mount of a crashed daemon found; unmounting it lazily", mountpoint)
        lazy_unmount(mountpoint)
    os.makedirs(mountpoint, exist_ok=True)
    if not os.path.isdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not a directory")
