"""Hand the live FUSE connection to a new daemon process, so no reader sees an error.

The kernel keeps the mount and queues requests while no process reads
/dev/fuse; a new process that gets the same descriptor (inherited over
exec, or back from systemd's file-descriptor store) answers them. Two
things make that work with libfuse/pyfuse3:

- libfuse answers every request with EIO until it has seen FUSE_INIT, and
  the kernel sent that to the old process. So the new session starts on one
  end of a socketpair (libfuse takes '/dev/fd/N' as an already-open
  connection), is fed a FUSE_INIT written to the other end, and while it
  handles it (Operations.init) the real descriptor is dup2'ed onto N. The
  INIT reply then goes to the kernel with a unique id it does not know, which
  it refuses with ENOENT and libfuse ignores.
- Open files, directory listings and inode numbers move with the connection:
  the old process writes its state.DaemonState to a memfd the new one reads.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct

log = logging.getLogger("lxcfs_py")

FUSE_INIT = 26
FUSE_KERNEL_VERSION = 7
FUSE_KERNEL_MINOR = 31
FUSE_ASYNC_READ = 1 << 0
FUSE_BIG_WRITES = 1 << 5
FUSE_DO_READDIRPLUS = 1 << 13
FUSE_PARALLEL_DIROPS = 1 << 18
# with it libfuse sizes its buffers (max_write) as it did for the kernel's
# real INIT; smaller buffers make every read of /dev/fuse fail with EINVAL
FUSE_MAX_PAGES = 1 << 22
BOGUS_UNIQUE = 1 << 62  # no request has it: the kernel drops the INIT reply with ENOENT
IN_HEADER = struct.Struct("=IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
INIT_IN = struct.Struct("=IIIII44x")  # major, minor, max_readahead, flags, flags2, unused
OUT_HEADER = struct.Struct("=IiQ")  # len, error (for a notification: its code), unique (0: a notification)
FUSE_NOTIFY_RESEND = 7


def fake_init() -> bytes:
    body = INIT_IN.pack(FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR, 128 * 1024,
                        FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS
                        | FUSE_MAX_PAGES, 0)
    return IN_HEADER.pack(IN_HEADER.size + len(body), FUSE_INIT, BOGUS_UNIQUE, 0, 0, 0, 0, 0, 0) + body


class Adoption:
    """Start a pyfuse3 session on a connection another process set up."""

    def __init__(self, fuse_fd: int, resend: bool = True):
        self.fuse_fd = fuse_fd
        # a worker's clone must not: it would take back what the other workers are answering
        self.resend = resend
        ours, feeder = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.session_fd = ours.detach()  # libfuse owns this number from now on
        self.feeder = feeder

    @property
    def mountpoint(self) -> str:
        """What to give pyfuse3.init instead of a directory."""
        return f"/dev/fd/{self.session_fd}"

    def feed_init(self) -> None:
        self.feeder.sendall(fake_init())

    def swap_in(self) -> None:
        """Called from Operations.init(): from now on the session reads the real connection."""
        os.dup2(self.fuse_fd, self.session_fd)
        os.close(self.fuse_fd)
        self.feeder.close()
        if self.resend:
            ask_resend(self.session_fd)


def ask_resend(fuse_fd: int) -> None:
    """Have the kernel queue again every request a process read but never answered.

    After a crash under systemd's fd store, requests the dead process had read
    would otherwise wait forever. Linux >= 6.9 (FUSE_NOTIFY_RESEND); after a
    planned handover nothing is in flight and this moves nothing.
    """
    try:
        os.write(fuse_fd, OUT_HEADER.pack(OUT_HEADER.size, FUSE_NOTIFY_RESEND, 0))
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOSYS):
            log.warning("cannot ask the kernel to resend unanswered requests: %s", err.strerror)
            return
        log.warning("this kernel cannot resend requests a crashed daemon left unanswered (FUSE_NOTIFY_RESEND, "
                    "Linux >= 6.9): readers caught in a crash wait until their container restarts")


# -- the state that moves with the connection (what it holds: state.DaemonState) --------


def write_memfd(data: bytes) -> int:
    """An inheritable memory file holding `data`, positioned at 0."""
    fd = os.memfd_create("lxcfs-py-state", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_fd(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    os.close(fd)
    return b"".join(parts)
