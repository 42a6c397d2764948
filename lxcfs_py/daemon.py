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
from lxcfs_py.pool import Pool, stop_with_parent
from lxcfs_py.sampler import LoadSampler
from lxcfs_py.serve import Duties, python_command, serve
from lxcfs_py.shared_state import SharedState
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
    workers: int = 1  # processes serving requests (pool.py), this one included
    worker: str | None = None  # "CLONE_FD,SHARED_FD,MAIN_PID": this process is a worker of another (pool.py)


def fuse_options(extra: list[str]) -> set[str]:
    # allow_other: containers' processes are not the daemon's user
    # fsname (unique per mount) and subtype are what healing recognises our earlier mounts by
    base = {"allow_other", "default_permissions", f"fsname={kernel_mounts.new_fsname()}",
            f"subtype={kernel_mounts.FSTYPE.removeprefix('fuse.')}"}
    for group in extra:
        base.update(o for o in group.split(",") if o)
    return base


def _keep_files_open(roots: Roots) -> None:
    fsread.keep_open_under([roots.proc, roots.sys, roots.cgroup], roots.proc, _max_kept_files())


def _max_kept_files() -> int:
    """How many /proc, /sys and cgroup files to keep open: a quarter of the fd limit, at most 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 4))


@dataclass
class Inherited:
    """A live FUSE connection handed to us: by re-exec, or back from systemd's fd store."""

    fuse_fd: int
    state: bytes | None
    # the fd store's clones of a dead process's workers: while systemd holds them, what those workers had
    # read stays queued on them and adopting the connection has it resent (handover.ask_resend); dropped after
    stale_clones: list[str] = field(default_factory=list)


WORKER_FD = "worker-"  # systemd fd store names of the workers' clones: worker-1, worker-2...


def _inherited_connection(config: DaemonConfig) -> Inherited | None:
    if config.handover:
        fuse_fd, state_fd = (int(n) for n in config.handover.split(","))
        return Inherited(fuse_fd, handover.read_fd(state_fd))
    passed = systemd.listen_fds()
    if "fuse" not in passed:
        return None
    state = handover.read_fd(passed["state"]) if "state" in passed else None
    if state is not None:
        systemd.drop_stored("state")  # a later crash must not restore this old state
    stale = [name for name in passed if name.startswith(WORKER_FD)]
    for name in stale:
        os.close(passed[name])  # systemd's copy is what keeps their requests
    return Inherited(passed["fuse"], state, stale)


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
    adoption = handover.Adoption(inherited.fuse_fd)
    ops.init_hooks.append(adoption.swap_in)
    for name in inherited.stale_clones:
        ops.init_hooks.append(lambda name=name: systemd.drop_stored(name))  # after swap_in: resent by then
    state = inherited.state
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
    argv = argv_for_children(config)
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


def _operations(config: DaemonConfig, state) -> LxcfsOperations:
    sampler = LoadSampler(config.roots, state.loads) if config.opts.loadavg else None
    resolver = CallerResolver(config.roots.proc, CgroupFactory(config.roots.cgroup), processes=config.workers)
    return LxcfsOperations(config.roots, config.opts, resolver, sampler, state, config.reuse_window)


def argv_for_children(config: DaemonConfig) -> list[str]:
    return [a for a in config.argv if a.partition("=")[0] not in ("--handover", "--worker")]


def _pool(config: DaemonConfig, state: SharedState) -> Pool:
    def command(clone_fd: int) -> list[str]:
        return python_command("-m", "lxcfs_py", *argv_for_children(config),
                              f"--worker={clone_fd},{state.fd},{os.getpid()}")

    def keep(slot: int, clone: int | None) -> None:
        if clone is None:
            systemd.drop_stored(f"{WORKER_FD}{slot}")
        else:
            systemd.store_fd(clone, f"{WORKER_FD}{slot}")

    return Pool(config.workers, fuse_wait.fuse_fd, command, (state.fd,),
                keep if systemd.fd_store_enabled() else lambda slot, clone: None)


def run_worker(config: DaemonConfig) -> None:
    """Serve as a worker of the main process (pool.py) until it stops us; the mount is the main's."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)  # until the loop takes them
    clone_fd, shared_fd, main_pid = (int(n) for n in config.worker.split(","))
    # SIGKILL: what it read stays queued on its clone (in systemd's fd store, if used) for the next
    # main process to have resent; a graceful stop would answer a render it cannot finish with EIO
    if not stop_with_parent(main_pid, signal.SIGKILL):
        return  # the main process is gone already
    ops = _operations(config, SharedState.attach(shared_fd))
    adoption = handover.Adoption(clone_fd, resend=False)
    ops.init_hooks.append(adoption.swap_in)
    pyfuse3.init(ops, adoption.mountpoint, fuse_options(config.fuse_options))
    adoption.feed_init()
    ops.learn_all_paths()
    _keep_files_open(config.roots)
    try:
        trio.run(serve, Duties(ops.renders, lambda: None, wait_fd=adoption.session_fd))
    finally:
        fsread.stop_keeping()
        pyfuse3.close(unmount=False)


def run(config: DaemonConfig, on_mounted=None) -> None:
    """Mount and serve until SIGTERM/SIGINT or an external unmount; re-exec on SIGHUP.

    Raises mounts.MountError or daemon_files.StartError with a one-line reason when it cannot start.
    """
    # Hold SIGTERM and friends back until the trio loop handles them: one sent
    # right after READY=1 must unmount cleanly, not kill us with the mount up.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
    if config.pidfile:
        daemon_files.check_pidfile(config.pidfile)  # fail before mounting, not after
    # what a successor takes over (see state.py); with workers, in memory they share
    state = SharedState.create() if config.workers > 1 else DaemonState()
    ops = _operations(config, state)
    adopted_fd = _connect(config, ops)
    outcome = "stop"
    try:
        if config.pidfile:
            daemon_files.write_pidfile(config.pidfile)
        if on_mounted is not None:
            on_mounted()
        log.info("serving %s (cgroup %s, %s, %d processes)", config.mountpoint,
                 ops.resolver.factory.version_label(), config.opts, config.workers)
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
        initialized = trio.Event()
        ops.init_hooks.append(initialized.set)
        pool = _pool(config, state) if config.workers > 1 else None
        duties = Duties(ops.renders, ops.toggle_virtualization, lambda: _reexec(config, ops), ops.sampler,
                        config.mountpoint if adopted_fd is None and config.heal else None, pool, initialized,
                        adopted_fd)
        outcome = trio.run(serve, duties)
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
