"""The serving loop of a process (the main one, or a worker of pool.py): requests until a signal ends it."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from typing import Callable

import pyfuse3
import trio

from lxcfs_py import deadline, fuse_wait, signals, systemd
from lxcfs_py.offload import Renders
from lxcfs_py.pool import Pool
from lxcfs_py.sampler import LoadSampler

log = logging.getLogger("lxcfs_py")

NEW_CODE_TIMEOUT = 60  # seconds the SIGHUP check may take to import the installed code
# pyfuse3 runs one task per request in flight; renders wait in threads (offload.py)
# while the other tasks go on serving. Bounds the requests in flight at once.
MAX_TASKS = 256
RENDER_GRACE = 1.0  # seconds renders in flight at a stop may take before their readers get EIO


def python_command(*args: str) -> list[str]:
    """This interpreter, isolated (-I: no PYTHONPATH, no working directory, no user site on sys.path).

    Every Python we start -- the heal step, the SIGHUP check and re-exec, the
    workers -- runs as root: it must import the installed lxcfs-py, nothing else.
    """
    return [sys.executable, "-I", *args]


@dataclass
class Duties:
    """What this process does besides answering requests: the main process has them all, a worker none."""

    renders: Renders
    toggle: Callable[[], None]  # SIGUSR2 (a worker's does nothing: its main process switches them all)
    reexec: Callable[[], None] | None = None  # SIGHUP/SIGUSR1; None: a worker, whose main process reloads
    sampler: LoadSampler | None = None
    heal_mountpoint: str | None = None
    pool: Pool | None = None
    initialized: trio.Event | None = None  # set once FUSE_INIT is answered: the pool may start
    wait_fd: int | None = None  # the fd pyfuse3 reads, when it is not the one it opened


async def serve(duties: Duties) -> str:
    """Serve until a signal; return why we stopped: 'stop' or 'unmounted'.

    On SIGHUP or SIGUSR1, `reexec()` replaces this process from inside the
    loop (after the workers stopped); if the new code does not load or the
    exec fails, serving simply goes on. SIGUSR2 calls `toggle()`. On a stop,
    the requests still waiting for a render (offload.Renders) get a moment to
    finish. See signals.py.
    """
    outcome = "unmounted"
    renders, pool = duties.renders, duties.pool
    shared_queue = pool is not None or duties.reexec is None  # other processes read the connection too
    async with trio.open_nursery() as nursery:
        heal_scope = trio.CancelScope()
        heal_done = trio.Event()

        async def heal():
            try:
                with heal_scope:
                    await _heal(duties.heal_mountpoint)
            except OSError as err:  # e.g. the interpreter is gone: serving matters more
                log.error("cannot re-bind containers' files from a dead mount: %s", err)
            finally:
                heal_done.set()

        async def stop_on_signal():
            nonlocal outcome
            with trio.open_signal_receiver(*signals.RECEIVED) as received:
                # signals that came while we were starting were held back (see run); take them now
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.HANDLED)
                async for signum in received:
                    if signum in signals.RELOAD and duties.reexec is not None:
                        if not await _new_code_loads(signum):
                            continue  # keep serving with the code we have
                        heal_scope.cancel()  # its child would outlive the exec, never reaped
                        await heal_done.wait()
                        if pool is not None:
                            await pool.stop()
                        _try_reexec(duties.reexec, signum)
                        if pool is not None:
                            pool.start_all()
                        continue  # the exec failed: still ours to serve
                    if signum in signals.TOGGLE:
                        duties.toggle()  # workers follow through the shared state
                        continue
                    if signum in signals.STOP:
                        log.info("%s received: stopping", signals.name(signum))
                        systemd.notify("STOPPING=1")
                        outcome = "stop"
                        if pool is not None:
                            await pool.stop()  # this process serves meanwhile
                        fuse_wait.terminate()
                        await renders.finish(RENDER_GRACE)
                        return
                    if duties.reexec is not None:
                        log.info("%s received: ignored (SIGTERM stops, SIGHUP or SIGUSR1 reloads)",
                                 signals.name(signum))

        nursery.start_soon(stop_on_signal)
        if duties.sampler is not None:
            nursery.start_soon(duties.sampler.run)
        if duties.heal_mountpoint is not None:
            nursery.start_soon(heal)
        else:
            heal_done.set()
        if pool is not None:
            nursery.start_soon(pool.run, duties.initialized)
        nursery.start_soon(renders.deliver_forever)
        fuse_fd = duties.wait_fd if duties.wait_fd is not None else fuse_wait.fuse_fd()
        if fuse_fd is not None:
            renders.watch(fuse_fd)
        undo_timer = deadline.install()  # before the signal receiver unblocks SIGALRM
        undo = fuse_wait.install(fuse_fd, wake_fd=renders.done_fd, on_wake=renders.deliver,
                                 rendering=renders.in_flight, shared_queue=shared_queue)
        try:
            await pyfuse3.main(min_tasks=1, max_tasks=MAX_TASKS)
        finally:
            undo()
            undo_timer()
        nursery.cancel_scope.cancel()
    return outcome


async def _heal(mountpoint: str) -> None:
    """Re-bind containers' files left on a dead mount (a crash of the daemon before us)."""
    result = await trio.run_process(python_command("-m", "lxcfs_py", "remount", mountpoint), capture_stdout=True,
                                    capture_stderr=True, check=False)
    for line in (result.stdout + result.stderr).decode(errors="replace").splitlines():
        log.info("remount: %s", line)


async def _new_code_loads(signum: int) -> bool:
    """Before giving up the connection, make sure the code on disk starts (an upgrade may be broken,
    or the interpreter gone: an OS Python upgrade). Requests are served meanwhile."""
    with trio.move_on_after(NEW_CODE_TIMEOUT):
        try:
            check = await trio.run_process(python_command("-c", "import lxcfs_py.cli, lxcfs_py.daemon"),
                                           capture_stderr=True, check=False)
        except OSError as err:
            log.error("%s ignored: cannot run %s (%s); still serving with the running code", signals.name(signum),
                      sys.executable, err.strerror)
            return False
        if check.returncode != 0:
            reason = check.stderr.decode(errors="replace").strip().splitlines() or [f"exit {check.returncode}"]
            log.error("%s ignored: the installed lxcfs-py does not load (%s); still serving with the running "
                      "code", signals.name(signum), reason[-1])
            return False
        return True
    log.error("%s ignored: loading the installed lxcfs-py took over %ds; still serving", signals.name(signum),
              NEW_CODE_TIMEOUT)
    return False


def _try_reexec(reexec, signum: int) -> None:
    """Run `reexec()`; it returns only if the exec failed, which leaves us serving as before."""
    log.info("%s received: handing the mount to a fresh process", signals.name(signum))
    systemd.notify("RELOADING=1")
    try:
        reexec()
    except OSError as err:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.HANDLED)
        log.error("%s ignored: cannot re-execute %s (%s); still serving with the running code", signals.name(signum),
                  sys.executable, err.strerror)
        systemd.notify("READY=1")
