"""Renders run on the loop while they are quick, in threads once the kernel keeps one waiting.

A render reads cgroup and /proc files, and the kernel can take its time
producing one (memory.stat under memory pressure, a cgroup being torn
down, a host under load). On the loop, that would hold every request of
every container. But handing every render to a thread costs about as much
as the render on small VMs (two cross-CPU wakeups and the GIL passed back
and forth: 50-120 us of CPU in benchmarks/render_handoff.py, more while the
loop serves other requests; a meminfo render takes 100-300 us), and most
renders never wait. So a render runs on the loop under a deadline
(deadline.py); one that waits in the kernel past ON_LOOP_BUDGET is given up
there and redone in a worker thread, and its container's renders stay in
threads for SLOW_FOR seconds.

In threads (the GIL is free while the kernel works) a container's renders
run one at a time: they never race on its own state (never-backwards
counters, the --enable-cfs view), and a container stuck on its own files
queues at most MAX_QUEUED more before its next opens fail with EAGAIN,
keeping the loop's tasks for the others.

The hand-off is lean: a job queue to the threads, and an eventfd back that
the loop's wait for /dev/fuse (fuse_wait.FuseWait) polls along with it;
trio's own to_thread costs several times a meminfo render on small VMs.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import signal
import threading
import time
from collections import deque
from typing import Callable

import outcome
import trio

from lxcfs_py import deadline
from lxcfs_py.state import Owner, describe

MAX_QUEUED = 8  # one container's renders waiting behind its running one
MAX_THREADS = 64  # renders running at once, all containers together
WAIT_HERE = 0.002  # seconds a render is waited for without leaving the handler
ON_LOOP_BUDGET = 0.005  # seconds a render may wait in the kernel on the loop before it moves to a thread
SLOW_FOR = 10.0  # seconds a container's renders stay in threads after one was too slow for the loop
MAX_SLOW = 4096  # containers remembered as slow at once (the oldest mark goes first)


class Job:
    __slots__ = ("render", "task", "result", "abandoned")

    def __init__(self, render: Callable[[], bytes], task):
        self.render = render
        self.task = task
        self.result = None
        self.abandoned = False


class Lane:
    """One container's renders: one at a time, the rest parked in order."""

    __slots__ = ("busy", "waiting", "turns")

    def __init__(self):
        self.busy = False
        self.waiting = 0
        self.turns = trio.lowlevel.ParkingLot()


class Renders:
    def __init__(self):
        self._lanes: dict[Owner, Lane] = {}
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: deque[Job] = deque()
        self.done_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # readable: jobs to deliver
        self._threads = 0
        self._idle = 0
        self._lock = threading.Lock()  # guards the two counts, shared with the threads
        self._running: set[Job] = set()
        self._poller = select.poll()
        self._poller.register(self.done_fd, select.POLLIN)
        self._poll = self._poller.poll
        self._slow: dict[Owner, float] = {}  # container -> until when its renders go to threads

    def watch(self, fd: int) -> None:
        """Stop waiting for a render in the handler when `fd` (/dev/fuse) has a request."""
        self._poller.register(fd, select.POLLIN)

    # -- the loop's side ------------------------------------------------------------
    async def run(self, owner: Owner, render: Callable[[], bytes]) -> bytes:
        """`render()`, on the loop if it is quick, else in a worker thread after the owner's earlier renders."""
        if self._on_loop(owner):
            try:
                return deadline.within(ON_LOOP_BUDGET, render)
            except deadline.TooSlow:
                self._mark_slow(owner)
        lane = self._lanes.get(owner)
        if lane is None:
            lane = self._lanes[owner] = Lane()
        if lane.waiting >= MAX_QUEUED:
            raise OSError(errno.EAGAIN, f"{describe(owner)} has {MAX_QUEUED} files waiting for the kernel")
        lane.waiting += 1
        try:
            while lane.busy:
                await lane.turns.park()
            lane.busy = True
        finally:
            lane.waiting -= 1
        try:
            return await self._in_thread(render)
        finally:
            lane.busy = False
            if lane.waiting:
                lane.turns.unpark()
                # the next one runs on trio's next pass: wake the loop from its sleep in poll() (fuse_wait)
                os.eventfd_write(self.done_fd, 1)
            else:
                del self._lanes[owner]

    def _on_loop(self, owner: Owner) -> bool:
        if owner in self._lanes:
            return False  # its renders in threads go first, in order
        until = self._slow.get(owner)
        if until is None:
            return True
        if time.monotonic() < until:
            return False
        del self._slow[owner]
        return True

    def _mark_slow(self, owner: Owner) -> None:
        self._slow.pop(owner, None)
        self._slow[owner] = time.monotonic() + SLOW_FOR
        if len(self._slow) > MAX_SLOW:
            del self._slow[next(iter(self._slow))]

    async def _in_thread(self, render: Callable[[], bytes]) -> bytes:
        job = Job(render, trio.lowlevel.current_task())
        self._running.add(job)
        self._start(job)
        # Most renders take well under a millisecond: wait for this one right here, asleep in
        # poll (the thread needs the GIL), and skip two passes through trio's scheduler. A
        # request arriving meanwhile, or a render taking longer, makes it wait the trio way.
        if self._finished_here(job):
            self._running.discard(job)
            return job.result.unwrap()

        def abort(_raise_cancel):  # cancelled (a stop): the thread's result is dropped when it comes
            job.abandoned = True
            self._running.discard(job)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def _start(self, job: Job) -> None:
        with self._lock:
            spawn = self._idle == 0 and self._threads < MAX_THREADS
            if spawn:
                self._threads += 1
            else:
                self._idle -= 1 if self._idle else 0
        self._jobs.put(job)
        if spawn:
            threading.Thread(target=self._work, name="lxcfs-py-render", daemon=True).start()

    def _finished_here(self, job: Job) -> bool:
        deadline = time.monotonic() + WAIT_HERE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            events = self._poll(max(1, int(remaining * 1000)))
            if any(fd == self.done_fd for fd, _mask in events):
                self.deliver(keep=job)
            if job.result is not None:
                job.abandoned = True  # answered here: never reschedule its task
                return True
            if any(fd != self.done_fd for fd, _mask in events):
                return False  # a request waits: serve it meanwhile

    def in_flight(self) -> bool:
        return bool(self._running)

    def deliver(self, keep: Job | None = None) -> None:
        """Wake the tasks whose renders finished (on the loop, when done_fd is readable); not
        `keep`'s, whose task is not parked (it waits in _finished_here)."""
        try:
            os.eventfd_read(self.done_fd)
        except BlockingIOError:
            pass
        while self._done:
            job = self._done.popleft()
            if job is not keep and not job.abandoned:
                self._running.discard(job)
                trio.lowlevel.reschedule(job.task, job.result)

    async def deliver_forever(self) -> None:
        """For when the loop sleeps in epoll (FuseWait catches done_fd while it spins)."""
        while True:
            await trio.lowlevel.wait_readable(self.done_fd)
            self.deliver()

    async def finish(self, grace: float) -> None:
        """On stop: let running renders end for up to `grace` seconds, then answer the requests
        still waiting (EIO), so that the loop can end. A successor would get them again
        (handover.ask_resend); without one, the mount is about to go anyway."""
        with trio.move_on_after(grace):
            while self._running:
                await trio.sleep(0.005)
        for job in list(self._running):
            job.abandoned = True
            trio.lowlevel.reschedule(job.task, outcome.Error(
                OSError(errno.EIO, "the daemon stopped while this file was being rendered")))
        self._running.clear()

    # -- the threads' side ------------------------------------------------------------
    def _work(self) -> None:
        # the daemon's timer (deadline.py) must interrupt the loop's reads, never these
        signal.pthread_sigmask(signal.SIG_BLOCK, {deadline.SIGNAL})
        while True:
            job = self._jobs.get()
            job.result = outcome.capture(job.render)
            self._done.append(job)
            with self._lock:
                self._idle += 1
            os.eventfd_write(self.done_fd, 1)
