"""More processes serving the one mount: each reads its own clone of the FUSE connection.

One Python process is bound to one core (the GIL). The kernel lets several
descriptors read one connection (FUSE_DEV_IOC_CLONE) and hands each request
to whichever reads first; each worker answers on its own clone what it read.
What an open leaves behind (its snapshot), the counters and the budgets live
in memory all of them share (shared_state.SharedState), so any worker serves
any request. The main process serves too, and alone owns the mount, the
signals of an operator, the handover and the loadavg sampler.

A worker that dies takes only the requests it had read (the kernel fails
them with ECONNABORTED when its clone closes); the pool starts another.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import struct
import subprocess
from typing import Callable

import trio

from lxcfs_py import signals

log = logging.getLogger("lxcfs_py")

FUSE_DEV_IOC_CLONE = 0x8004E500  # _IOR(229, 0, uint32_t)
RESPAWN_DELAY = 1.0  # seconds before replacing a worker that died: a crash loop must not spin
STOP_GRACE = 2.0  # seconds a worker may take to answer what it read before it is killed


def clone_connection(fuse_fd: int) -> int:
    """A new descriptor reading the same FUSE connection as `fuse_fd`."""
    clone = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(clone, FUSE_DEV_IOC_CLONE, struct.pack("I", fuse_fd))
    except OSError:
        os.close(clone)
        raise
    return clone


class Pool:
    """`count - 1` worker processes beside this one, kept running until stop()."""

    def __init__(self, count: int, connection: Callable[[], int | None], command: Callable[[int], list[str]],
                 shared_fds: tuple[int, ...], keep: Callable[[int, int | None], None] = lambda slot, fd: None):
        self.count = count
        # keep(slot, clone) when a worker starts, keep(slot, None) when it is gone: systemd's fd store
        # holds the clones, so that what workers killed with their main process had read is not lost
        self.keep = keep
        self.connection = connection  # -> the fd this process reads the connection on
        self.command = command  # clone fd -> the worker's command line
        self.shared_fds = shared_fds  # what every worker inherits (the shared state's memory)
        self.running: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self._nursery: trio.Nursery | None = None

    async def run(self, initialized: trio.Event) -> None:
        """Start the workers once the connection is initialized (a worker reading FUSE_INIT would break it)."""
        await initialized.wait()
        fuse_fd = self.connection()  # found once: while a worker starts, its clone is open here too
        self.connection = lambda: fuse_fd
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.start_all()
            await trio.sleep_forever()

    def start_all(self) -> None:
        self.stopping = False
        for slot in range(1, self.count):
            if slot not in self.running:
                self._nursery.start_soon(self._keep, slot)

    async def _keep(self, slot: int) -> None:
        failing = False
        while not self.stopping:
            try:
                process = await self._spawn(slot)
            except OSError as err:
                if not failing:  # once per streak: the interpreter may be gone for a while (an OS upgrade)
                    log.error("cannot start serving worker %d: %s; the other processes serve meanwhile, "
                              "retrying every %ds", slot, err.strerror or err, RESPAWN_DELAY)
                failing = True
                await trio.sleep(RESPAWN_DELAY)
                continue
            if failing:
                log.info("serving worker %d started again", slot)
                failing = False
            self.running[slot] = process
            try:
                status = await _exited(process)
            finally:
                self.running.pop(slot, None)
                self.keep(slot, None)  # what it read and never answered fails now (ECONNABORTED), never hangs
            if self.stopping:
                return
            log.error("serving worker %d (pid %d) ended (%s); starting another in %ds", slot, process.pid,
                      _describe(status), RESPAWN_DELAY)
            await trio.sleep(RESPAWN_DELAY)

    async def _spawn(self, slot: int) -> subprocess.Popen:
        fuse_fd = self.connection()
        if fuse_fd is None:
            raise OSError("the FUSE connection's descriptor is not found in this process")
        clone = clone_connection(fuse_fd)
        try:
            # started from this thread, which lives as long as the process: a worker's
            # PR_SET_PDEATHSIG follows the thread that forked it (trio's open_process forks in a
            # passing thread, whose end would stop the worker)
            # born with the signals the daemon handles blocked (the mask is inherited), so that none
            # ends it before its loop takes them (SIGALRM, SIGHUP... would, by default)
            held = signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
            try:
                process = subprocess.Popen(self.command(clone), pass_fds=(clone, *self.shared_fds),
                                           env=_worker_environment())
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
            self.keep(slot, clone)
            return process
        finally:
            os.close(clone)  # the worker has its own copy; ours would keep its requests' queue alive

    def broadcast(self, signum: int) -> None:
        for process in list(self.running.values()):
            _signal(process, signum)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """End every worker: they answer what they read, then exit; killed after `grace` seconds."""
        self.stopping = True
        self.broadcast(signal.SIGTERM)
        with trio.move_on_after(grace):
            while self.running:
                await trio.sleep(0.01)
        for process in list(self.running.values()):
            log.error("serving worker (pid %d) did not stop within %gs: killed", process.pid, grace)
            _signal(process, signal.SIGKILL)
        with trio.move_on_after(grace):
            while self.running:
                await trio.sleep(0.01)


PR_SET_PDEATHSIG = 1
# systemd talks to the main process only (NotifyAccess=main, its fd store)
MAIN_ONLY_ENVIRONMENT = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                         "WATCHDOG_PID")


def _worker_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in MAIN_ONLY_ENVIRONMENT}


def stop_with_parent(main_pid: int, signum: int) -> bool:
    """In a worker: get `signum` when the main process dies, whatever the way (a crash included).
    False if it has died already (before this could be set up)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        log.warning("cannot follow the main process's death: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == main_pid


async def _exited(process: subprocess.Popen) -> int:
    """Wait for the worker's end without blocking the loop; its exit status, reaped."""
    pidfd = os.pidfd_open(process.pid)
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return process.wait()


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    return f"signal {signal.Signals(-status).name}" if status < 0 else f"exit {status}"
