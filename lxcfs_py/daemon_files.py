"""The daemon's own files, pidfile and log: checked before mounting, never written through a symlink.

The daemon runs as root, so a symlink planted at one of these paths (or at
the pidfile's temporary name) must not make it write to another file.
"""

from __future__ import annotations

import os

PIDFILE_MODE = 0o644
LOG_MODE = 0o640


class StartError(Exception):
    """A one-line, actionable reason the daemon cannot start."""


def _refuse_symlink(path: str, what: str) -> None:
    if os.path.islink(path):
        raise StartError(f"refusing to write the {what} {path}: it is a symlink; remove it or choose another path")


def check_pidfile(path: str) -> None:
    """Raise StartError if the pidfile cannot be written, before anything is mounted."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise StartError(f"cannot write the pidfile {path}: directory {directory} does not exist; create it first")
    if not os.access(directory, os.W_OK):
        raise StartError(f"cannot write the pidfile {path}: directory {directory} is not writable")
    _refuse_symlink(path, "pidfile")


def write_pidfile(path: str) -> None:
    """Write our pid to a fresh file (O_EXCL|O_NOFOLLOW) and rename it over `path`."""
    _refuse_symlink(path, "pidfile")
    tmp = f"{path}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, PIDFILE_MODE)
    except FileExistsError:
        os.unlink(tmp)  # a leftover (or a planted symlink): unlink never follows it
        fd = os.open(tmp, flags, PIDFILE_MODE)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def open_log(path: str) -> int:
    """An fd appending to the log file; StartError if it cannot be opened or is a symlink."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOG_MODE)
    except OSError as err:
        if os.path.islink(path):
            raise StartError(f"refusing to log to {path}: it is a symlink; remove it or choose another path") from None
        raise StartError(f"cannot open the log file {path}: {err.strerror}") from None
