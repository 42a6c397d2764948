"""Renders run off the FUSE loop, so that one container's slow file never stalls another's.

A render reads cgroup and /proc files, and the kernel can take its time
producing one (memory.stat under memory pressure, a cgroup being torn
down, a host under load). On the loop, that would hold every request of
every container. Each render runs in a thread instead (the GIL is free
while the kernel works), one at a time per container: its renders never
race on its own state (never-backwards counters, the --enable-cfs view),
and a container stuck on its own files queues at most MAX_QUEUED more
before its next opens fail with EAGAIN, keeping the loop's tasks for the
others.
"""

from __future__ import annotations

import errno
from typing import Callable

import trio

from lxcfs_py.state import Owner, describe

MAX_QUEUED = 8  # one container's renders waiting behind its running one
MAX_THREADS = 64  # renders running at once, all containers together


class Lane:
    __slots__ = ("turn", "users")

    def __init__(self):
        self.turn = trio.CapacityLimiter(1)
        self.users = 0


class Renders:
    def __init__(self):
        self._lanes: dict[Owner, Lane] = {}
        self._threads = trio.CapacityLimiter(MAX_THREADS)
        self._running: set[trio.CancelScope] = set()

    async def run(self, owner: Owner, render: Callable[[], bytes]) -> bytes:
        """`render()` in a thread, after the owner's earlier renders."""
        lane = self._lanes.get(owner)
        if lane is None:
            lane = self._lanes[owner] = Lane()
        if lane.users > MAX_QUEUED:
            raise OSError(errno.EAGAIN, f"{describe(owner)} has {MAX_QUEUED} files waiting for the kernel")
        lane.users += 1
        try:
            with trio.CancelScope() as scope:
                self._running.add(scope)
                try:
                    async with lane.turn:
                        return await trio.to_thread.run_sync(render, limiter=self._threads, abandon_on_cancel=True)
                finally:
                    self._running.discard(scope)
            raise OSError(errno.EIO, "the daemon stopped while this file was being rendered")
        finally:
            lane.users -= 1
            if not lane.users:
                del self._lanes[owner]

    async def finish(self, grace: float) -> None:
        """On stop: let running renders end for up to `grace` seconds, then answer the requests
        still waiting (EIO), so that the loop can end. A successor would get them again
        (handover.ask_resend); without one, the mount is about to go anyway."""
        with trio.move_on_after(grace):
            while self._running:
                await trio.sleep(0.005)
        for scope in list(self._running):
            scope.cancel()
