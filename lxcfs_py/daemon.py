"""Lifecycle: prepare the mountpoint, mount, serve, unmount on a signal."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
from dataclasses import dataclass, field

import pyfuse3
import trio

from lxcfs_py import (daemon_files, fsread, fuse_wait, handover, heal_records, kernel_mounts, mounts, recent, remount,
                      signals, systemd)
from lxcfs_py.caller import CallerResolver
from lxcfs_py.cgroups.detect import CgroupFactory
from lxcfs_py.context import Options, Roots
from lxcfs_py.fuse_ops import LxcfsOperations
from lxcfs_py.sampler import LoadSampler
from lxcfs_py.state import DaemonState

log = logging.getLogger("lxcfs_py")


@dataclass
class DaemonConfig:
    mountpoint: str
    opts: Options = field(default_factory=Options)
    roots: Roots = field(default_factory=Roots)
    pidfile: str | None = None
    fuse_options: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)  # our command line, to re-exec on SIGHUP
    handover: str | None = None  # "FUSE_FD,STATE_FD" from the process we replace
    heal: bool = True  # re-bind containers' files left on a dead mount after a fresh mount
    reuse_window: float = recent.DEFAULT_WINDOW  # seconds a render serves a container's further opens


def fuse_options(extra: list[str]) -> set[str]:
    # allow_other: containers' processes are not the daemon's user
    # fsname (unique per mount) and subtype are what healing recognises our earlier mounts by
    base = {"allow_other", "default_permissions", f"fsname={kernel_mounts.new_fsname()}",
            f"subtype={kernel_mounts.FSTYPE.removeprefix('fuse.')}"}
    for group in extra:
        base.update(o for o in group.split(",") if o)
    return base


def python_command(*args: str) -> list[str]:
    """This interpreter, isolated (-I: no PYTHONPATH, no working directory, no user site on sys.path).

    Every Python we start -- the heal step, the SIGHUP check and re-exec --
    runs as root: it must import the installed lxcfs-py, nothing else.
    """
    return [sys.executable, "-I", *args]


NEW_CODE_TIMEOUT = 60  # seconds the SIGHUP check may take to import the installed code


# pyfuse3 runs one task per request in flight; renders wait in threads (offload.py)
# while the other tasks go on serving. Bounds the requests in flight at once.
MAX_TASKS = 256
RENDER_GRACE = 1.0  # seconds renders in flight at a stop may take before their readers get EIO


async def _serve(sampler: LoadSampler | None, heal_mountpoint: str | None, wait_fd: int | None, reexec,
                 toggle, renders) -> str:
    """Serve until a signal; return why we stopped: 'stop' or 'unmounted'.

    On SIGHUP or SIGUSR1, `reexec()` replaces this process from inside the
    loop; if the new code does not load or the exec fails, serving simply
    goes on. SIGUSR2 calls `toggle()`. On a stop, the requests still waiting for a
    render (offload.Renders) get a moment to finish. See signals.py.
    """
    outcome = "unmounted"
    async with trio.open_nursery() as nursery:
        heal_scope = trio.CancelScope()
        heal_done = trio.Event()

        async def heal():
            try:
                with heal_scope:
                    await _heal(heal_mountpoint)
            except OSError as err:  # e.g. the interpreter is gone: serving matters more
                log.error("cannot re-bind containers' files from a dead mount: %s", err)
            finally:
                heal_done.set()

        async def stop_on_signal():
            nonlocal outcome
            with trio.open_signal_receiver(*signals.HANDLED) as received:
                # signals that came while we were starting were held back (see run); take them now
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.HANDLED)
                async for signum in received:
                    if signum in signals.RELOAD:
                        if not await _new_code_loads(signum):
                            continue  # keep serving with the code we have
                        heal_scope.cancel()  # its child would outlive the exec, never reaped
                        await heal_done.wait()
                        _try_reexec(reexec, signum)
                        continue  # the exec failed: still ours to serve
                    if signum in signals.TOGGLE:
                        toggle()
                        continue
                    if signum in signals.IGNORED:
                        log.info("%s received: ignored (SIGTERM stops, SIGHUP or SIGUSR1 reloads)",
                                 signals.name(signum))
                        continue
                    log.info("%s received: stopping", signals.name(signum))
                    systemd.notify("STOPPING=1")
                    outcome = "stop"
                    pyfuse3.terminate()
                    await renders.finish(RENDER_GRACE)
                    return

        nursery.start_soon(stop_on_signal)
        if sampler is not None:
            nursery.start_soon(sampler.run)
        if heal_mountpoint is not None:
            nursery.start_soon(heal)
        else:
            heal_done.set()
        nursery.start_soon(renders.deliver_forever)
        fuse_fd = wait_fd if wait_fd is not None else fuse_wait.fuse_fd()
        if fuse_fd is not None:
            renders.watch(fuse_fd)
        undo = fuse_wait.install(fuse_fd, wake_fd=renders.done_fd, on_wake=renders.deliver,
                                 rendering=renders.in_flight)
        try:
            await pyfuse3.main(min_tasks=1, max_tasks=MAX_TASKS)
        finally:
            undo()
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


def _keep_files_open(roots: Roots) -> None:
    fsread.keep_open_under([roots.proc, roots.sys, roots.cgroup], roots.proc, _max_kept_files())


def _max_kept_files() -> int:
    """How many /proc, /sys and cgroup files to keep open: a quarter of the fd limit, at most 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 4))


def _inherited_connection(config: DaemonConfig) -> tuple[int, bytes | None] | None:
    """A live FUSE connection (and state) handed to us: by re-exec, or back from systemd's fd store."""
    if config.handover:
        fuse_fd, state_fd = (int(n) for n in config.handover.split(","))
        return fuse_fd, handover.read_fd(state_fd)
    passed = systemd.listen_fds()
    if "fuse" not in passed:
        return None
    state = handover.read_fd(passed["state"]) if "state" in passed else None
    if state is not None:
        systemd.drop_stored("state")  # a later crash must not restore this old state
    return passed["fuse"], state


def _connect(config: DaemonConfig, ops: LxcfsOperations) -> int | None:
    """Mount afresh (returns None), or adopt a handed-over connection (returns the fd libfuse reads)."""
    inherited = _inherited_connection(config)
    options = fuse_options(config.fuse_options)
    if inherited is None:
        mounts.prepare(config.mountpoint, log)
        try:
            pyfuse3.init(ops, config.mountpoint, options)
        except RuntimeError as err:
            raise mounts.MountError(f"cannot mount FUSE on {config.mountpoint}: {err} (is /dev/fuse usable?)") from None
        return None
    fuse_fd, state = inherited
    adoption = handover.Adoption(fuse_fd)
    ops.on_init = adoption.swap_in
    pyfuse3.init(ops, adoption.mountpoint, options)
    adoption.feed_init()
    ops.learn_all_paths()  # the kernel keeps using inode numbers it learnt from the old process
    if state is not None:
        ops.state.load(state, ops.revive)
    log.info("took over the live mount at %s", config.mountpoint)
    return adoption.session_fd


def _reexec(config: DaemonConfig, ops: LxcfsOperations) -> None:
    """Replace this process with a fresh one (same pid) that keeps serving the same connection.

    Returns (raising OSError) only if the exec failed; nothing is given up then.
    """
    fuse_fd = fuse_wait.fuse_fd()
    state_fd = handover.write_memfd(ops.state.export())
    for fd in (fuse_fd, state_fd):
        os.set_inheritable(fd, True)
    argv = [a for a in config.argv if not a.startswith("--handover")]
    fsread.stop_keeping()
    logging.shutdown()
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)  # held for the new image's loop
    try:
        os.execv(sys.executable, python_command("-m", "lxcfs_py", *argv, f"--handover={fuse_fd},{state_fd}"))
    finally:  # reached only when the exec failed
        os.close(state_fd)
        os.set_inheritable(fuse_fd, False)
        _keep_files_open(config.roots)


def _leave_for_systemd_restart(ops: LxcfsOperations) -> None:
    """systemd holds our connection in its fd store; hand the open files over too, then go."""
    state_fd = handover.write_memfd(ops.state.export())
    systemd.store_fd(state_fd, "state")
    log.info("restart: the mount stays; the next process takes it over")


def run(config: DaemonConfig, on_mounted=None) -> None:
    """Mount and serve until SIGTERM/SIGINT or an external unmount; re-exec on SIGHUP.

    Raises mounts.MountError or daemon_files.StartError with a one-line reason when it cannot start.
    """
    # Hold SIGTERM and friends back until the trio loop handles them: one sent
    # right after READY=1 must unmount cleanly, not kill us with the mount up.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
    if config.pidfile:
        daemon_files.check_pidfile(config.pidfile)  # fail before mounting, not after
    factory = CgroupFactory(config.roots.cgroup)
    state = DaemonState()  # what a successor takes over (see state.py)
    sampler = LoadSampler(config.roots, state.loads) if config.opts.loadavg else None
    ops = LxcfsOperations(config.roots, config.opts, CallerResolver(config.roots.proc, factory), sampler, state,
                          config.reuse_window)
    adopted_fd = _connect(config, ops)
    outcome = "stop"
    try:
        if config.pidfile:
            daemon_files.write_pidfile(config.pidfile)
        if on_mounted is not None:
            on_mounted()
        log.info("serving %s (cgroup %s, %s)", config.mountpoint, factory.version_label(), config.opts)
        if systemd.fd_store_enabled():
            systemd.store_fd(fuse_wait.fuse_fd(), "fuse")  # a restart or a crash then keeps the mount alive
        if adopted_fd is None:
            try:
                heal_records.record(config.roots.proc, config.mountpoint)
            except OSError as err:
                log.warning("cannot record this mount for a successor to heal from (%s): %s", heal_records.RECORD_DIR,
                            err)
        systemd.notify("READY=1")
        _keep_files_open(config.roots)
        heal = config.mountpoint if adopted_fd is None and config.heal else None
        outcome = trio.run(_serve, sampler, heal, adopted_fd, lambda: _reexec(config, ops), ops.toggle_virtualization,
                           ops.renders)
        if outcome == "stop" and systemd.fd_store_enabled() and systemd.restart_queued():
            _leave_for_systemd_restart(ops)
            outcome = "handed-over"
    finally:
        fsread.stop_keeping()
        if outcome != "handed-over":
            if systemd.fd_store_enabled():
                systemd.drop_stored("fuse")
            remount.forget_on_unmount(config.roots.proc, config.mountpoint, log)
            # an adopted connection was mounted by another process, so libfuse won't
            # unmount it; detach it first, as nothing answers requests any more
            if adopted_fd is not None and mounts.is_mounted(config.mountpoint):
                mounts.lazy_unmount(config.mountpoint)
            pyfuse3.close(unmount=True)
            if config.pidfile:
                try:
                    os.unlink(config.pidfile)
                except FileNotFoundError:
                    pass
            log.info("unmounted %s", config.mountpoint)
