"""Which mounts were made at a mountpoint on this boot: what a successor may heal from.

One file per mountpoint in RECORD_DIR (root's, 0700), one mount a line:
"<major:minor> <source>", the source being the mount's unique fsname
(kernel_mounts.new_fsname). A daemon adds its mount after mounting and removes
it when it unmounts cleanly with no container bound to it; a successor's heal
drops the mounts no longer bound anywhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from lxcfs_py import kernel_mounts

RECORD_DIR = "/run/lxcfs-py"
RECORD_KEEP = 8


class RecordDirError(OSError):
    """The record directory is not one we can trust (a symlink, or someone else's)."""


def _file_name(mountpoint: str) -> str:
    return hashlib.sha1(mountpoint.encode()).hexdigest()[:16] + ".devices"


def _open_dir(record_dir: str, create: bool) -> int | None:
    """An fd of the record directory, made root's and 0700; None when it does not exist."""
    if create:
        try:
            os.mkdir(record_dir, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(record_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RecordDirError(err.errno, f"{record_dir} is a symlink or not a directory: not using it") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        os.close(fd)
        raise RecordDirError(f"{record_dir} is owned by uid {info.st_uid}, not by us: not using it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def _read(dir_fd: int, name: str) -> list[tuple[str, str]]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return []
    except OSError as err:
        if err.errno == errno.ELOOP:
            return []  # a symlink planted in our place: not our record (replaced on the next write)
        raise
    with os.fdopen(fd) as f:
        lines = f.read().splitlines()
    # a line without a source was written before mounts had unique sources
    return [(fields[0], fields[1] if len(fields) > 1 else kernel_mounts.FSNAME) for fields in map(str.split, lines)
            if fields]


def _write(dir_fd: int, name: str, entries: list[tuple[str, str]]) -> None:
    if not entries:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        return
    tmp = f".{name}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{device} {source}\n" for device, source in entries))
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def recorded(mountpoint: str, record_dir: str = RECORD_DIR) -> list[tuple[str, str]]:
    """(device, source) of the mounts made at `mountpoint` and not cleanly unmounted, oldest first."""
    dir_fd = _open_dir(record_dir, create=False)
    if dir_fd is None:
        return []
    try:
        return _read(dir_fd, _file_name(mountpoint))
    finally:
        os.close(dir_fd)


def _update(mountpoint: str, record_dir: str, change, create: bool) -> None:
    dir_fd = _open_dir(record_dir, create)
    if dir_fd is None:
        return
    try:
        name = _file_name(mountpoint)
        _write(dir_fd, name, change(_read(dir_fd, name)))
    finally:
        os.close(dir_fd)


def identity(mount: dict) -> tuple[str, str]:
    return mount["device"], mount["source"]


def record(proc_root: str, mountpoint: str, record_dir: str = RECORD_DIR) -> None:
    """Remember the live mount at `mountpoint`, so a successor heals exactly its binds. Raises OSError."""
    mount = kernel_mounts.live_mount(mountpoint, proc_root)
    if mount is not None:
        entry = identity(mount)

        def add(entries):
            return [e for e in entries if e != entry][-(RECORD_KEEP - 1):] + [entry]

        _update(mountpoint, record_dir, add, create=True)


def remove(mountpoint: str, entries: set[tuple[str, str]], record_dir: str = RECORD_DIR) -> None:
    """Forget mounts nothing will be healed from; the file goes with its last entry."""
    _update(mountpoint, record_dir, lambda kept: [e for e in kept if e not in entries], create=False)
