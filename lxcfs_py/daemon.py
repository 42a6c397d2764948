"""Lifecycle: prepare the mountpoint, mount, serve, unmount on a signal."""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass, field

import pyfuse3
import trio

from lxcfs_py import mounts
from lxcfs_py.caller import CallerResolver
from lxcfs_py.cgroups.detect import CgroupFactory
from lxcfs_py.context import Options, Roots
from lxcfs_py.fuse_ops import LxcfsOperations
from lxcfs_py.sampler import LoadSampler

log = logging.getLogger("lxcfs_py")


@dataclass
class DaemonConfig:
    mountpoint: str
    opts: Options = field(default_factory=Options)
    roots: Roots = field(default_factory=Roots)
    pidfile: str | None = None
    fuse_options: list[str] = field(default_factory=list)


def fuse_options(extra: list[str]) -> set[str]:
    # allow_other: containers' processes are not the daemon's user
    base = {"allow_other", "default_permissions", "fsname=lxcfs-py", "subtype=lxcfs"}
    for group in extra:
        base.update(o for o in group.split(",") if o)
    return base


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def _write_pidfile(path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


async def _serve(sampler: LoadSampler | None) -> None:
    async with trio.open_nursery() as nursery:

        async def stop_on_signal():
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("%s received: unmounting", signal.Signals(signum).name)
                    sd_notify("STOPPING=1")
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop_on_signal)
        if sampler is not None:
            nursery.start_soon(sampler.run)
        # One worker: every handler is synchronous (it never awaits), so more
        # workers add no concurrency, only a lock hand-off and a task switch
        # between them on every request.
        await pyfuse3.main(min_tasks=1, max_tasks=1)
        nursery.cancel_scope.cancel()


def run(config: DaemonConfig, on_mounted=None) -> None:
    """Mount and serve until SIGTERM/SIGINT or an external unmount.

    Raises mounts.MountError with a one-line reason when it cannot start.
    """
    mounts.prepare(config.mountpoint, log)
    factory = CgroupFactory(config.roots.cgroup)
    sampler = LoadSampler(config.roots, factory) if config.opts.loadavg else None
    ops = LxcfsOperations(config.roots, config.opts, CallerResolver(config.roots.proc, factory), sampler)
    try:
        pyfuse3.init(ops, config.mountpoint, fuse_options(config.fuse_options))
    except RuntimeError as err:
        raise mounts.MountError(f"cannot mount FUSE on {config.mountpoint}: {err} (is /dev/fuse usable?)") from None
    try:
        if config.pidfile:
            _write_pidfile(config.pidfile)
        if on_mounted is not None:
            on_mounted()
        log.info("serving %s (cgroup %s, %s)", config.mountpoint, factory.version_label(), config.opts)
        sd_notify("READY=1")
        trio.run(_serve, sampler)
    finally:
        pyfuse3.close(unmount=True)
        if config.pidfile:
            try:
                os.unlink(config.pidfile)
            except FileNotFoundError:
                pass
        log.info("unmounted %s", config.mountpoint)
