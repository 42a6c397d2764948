"""Mountpoint states: free, live, or stale (a dead daemon's FUSE mount)."""

import os

from lxcfs_py import kernel_mounts


class MountError(Exception):
    """A one-line, actionable reason the daemon cannot mount."""


def state(mountpoint: str) -> str:
    """'free', 'live' or 'stale'."""
    try:
        return kernel_mounts.mount_state(mountpoint)
    except OSError as err:
        raise MountError(f"cannot use mountpoint {mountpoint}: {err.strerror}") from None


is_mounted = kernel_mounts.is_mounted


def lazy_unmount(mountpoint: str) -> None:
    try:
        kernel_mounts.lazy_unmount(mountpoint)
    except OSError as err:
        raise MountError(f"cannot unmount stale mount {mountpoint}: {os.strerror(err.errno)}") from None


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
