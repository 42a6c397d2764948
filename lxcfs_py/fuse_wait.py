"""The one place that reaches into pyfuse3's private wait for /dev/fuse.

pyfuse3 (3.x) starts one task per request in flight, and each task waits
for /dev/fuse through the module-level coroutine `_wait_fuse_readable`,
holding a trio.Lock so that one task at a time reads. Taking that lock
costs a pass of trio's scheduler and an epoll_wait per request. Our wait
replaces it: the task that just answered a request first spins for a few
microseconds on poll(), since a reader's open, read, read (EOF) and release
arrive back to back, and only then parks in epoll; at most one task is
parked on the fd at a time (trio allows no more), the others wait their
turn. It keeps pyfuse3's contract: return True when a request can be read
without blocking, False once the session is closing.

Nothing else in lxcfs-py touches pyfuse3's internals. The unit test
tests/unit/test_fuse_wait.py fails when an upgrade of pyfuse3 moves or
changes the hook, and pyproject.toml bounds pyfuse3 to the tested versions.
"""

from __future__ import annotations

import os
import select
import signal
import time

import pyfuse3
import trio

HOOK = "_wait_fuse_readable"
TESTED_VERSIONS = ("3.4.", "3.5.")  # pyproject.toml allows these only
# After each request, poll /dev/fuse this long for the next one before
# sleeping in epoll: catching it while still running saves a sleep and a
# wakeup (often across CPUs, the costliest part of a request). The price: up
# to this much spinning after the last request of a burst. 0 turns it off.
SPIN_SECONDS = 50e-6
# Requests served at most between passes through trio's scheduler (which runs
# the signal handler, the loadavg sampler and the replies of renders done in
# threads).
YIELD_EVERY = 64
RENDER_WAIT_MS = 5  # the longest the loop sleeps in poll() for a render or a request before trio's epoll
# With workers (pool.py) several processes read one queue: another may take the
# request poll() saw, and pyfuse3's read then blocks (holding the GIL) until the
# next one. A timer interrupts such a read (EINTR, which pyfuse3 retries through
# this wait), so the tasks and render threads of the process are never held longer.
# It is deadline.py's timer, whose handler serve.py installs.
RACE_TIMEOUT = 0.01


def fuse_fd() -> int | None:
    """The /dev/fuse fd pyfuse3 opened (it does not expose it), if there is exactly one."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "/dev/fuse":
                found.append(int(name))
        except OSError:
            continue
    return found[0] if len(found) == 1 else None


def hook_present() -> bool:
    return callable(getattr(pyfuse3, HOOK, None))


class FuseWait:
    """A drop-in for pyfuse3's `_wait_fuse_readable` on `fd` (see the module's doc).

    While it spins it also watches `wake_fd`, readable when renders done in
    threads are ready to be answered (offload.Renders): it calls `on_wake()`
    and yields, so that their tasks reply without waiting for a sleep in epoll.
    While `rendering()`, it waits in poll() instead of spinning: a spinning
    loop would keep the GIL from the render threads.
    """

    def __init__(self, fd: int, spin: float = SPIN_SECONDS, wake_fd: int | None = None, on_wake=None,
                 rendering=lambda: False, shared_queue: bool = False):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if wake_fd is not None:
            poller.register(wake_fd, select.POLLIN)
        self._poll = poller.poll
        self.fd = fd
        self.spin = spin
        self.on_wake = on_wake
        self.rendering = rendering
        self.served = 0
        self.parked_on_fd = False
        self.closing = False
        self.turns = trio.lowlevel.ParkingLot()
        self.shared_queue = shared_queue

    def close(self) -> None:
        """The session ends (pyfuse3.terminate): every wait returns False, also one that begins only now,
        which pyfuse3's notify_closing would not reach."""
        self.closing = True
        self.turns.unpark_all()

    async def __call__(self) -> bool:
        if self.closing:
            return False
        if self.shared_queue:
            interrupted = signal.setitimer(signal.ITIMER_REAL, 0)[0] == 0  # expired: we lost a race to a read
            ready = await self._wait(not interrupted)
            if ready:
                signal.setitimer(signal.ITIMER_REAL, RACE_TIMEOUT)
            return ready
        return await self._wait(True)

    async def _wait(self, may_spin: bool) -> bool:
        self.served += 1
        if may_spin and self.spin and self.served % YIELD_EVERY:
            while True:
                if self.rendering():
                    # a render thread needs the GIL: sleep in poll (which frees it) instead of spinning
                    ready = self._ready_in_poll(RENDER_WAIT_MS)
                else:
                    ready = self._ready_within(self.spin)
                if ready == self.fd:
                    return True
                if ready is None:
                    break
                self.on_wake()
                await trio.lowlevel.checkpoint()  # the tasks just woken send their replies
                if self.closing:
                    return False
        while True:
            while self.parked_on_fd and not self.closing:
                await self.turns.park()
            if self.closing:
                return False
            self.parked_on_fd = True
            try:
                await trio.lowlevel.wait_readable(self.fd)
            except trio.ClosedResourceError:  # pyfuse3.terminate()
                self.closing = True
                self.turns.unpark_all()
                return False
            finally:
                self.parked_on_fd = False
            self.turns.unpark()  # the next task takes the fd while this one serves
            if self.closing:  # terminated while this task was being woken: a read now would lose the request
                return False
            # another task may have read the request in the meantime (it spun): then
            # pyfuse3's blocking read would stall the whole loop until the next one
            if any(fd == self.fd for fd, _mask in self._poll(0)):
                return True

    def _ready_in_poll(self, milliseconds: int) -> int | None:
        events = self._poll(milliseconds)
        if not events:
            return None
        return self.fd if any(fd == self.fd for fd, _mask in events) else events[0][0]

    def _ready_within(self, seconds: float) -> int | None:
        """The fd that became readable first (/dev/fuse preferred), or None after `seconds`."""
        deadline = time.perf_counter() + seconds
        while True:
            events = self._poll(0)
            if events:
                return self.fd if any(fd == self.fd for fd, _mask in events) else events[0][0]
            if time.perf_counter() >= deadline:
                return None


def terminate() -> None:
    """End pyfuse3's loop: pyfuse3.terminate(), and our wait (if installed) returns False from now on."""
    wait = getattr(pyfuse3, HOOK, None)
    if isinstance(wait, FuseWait):
        wait.close()
    pyfuse3.terminate()


def install(fd: int | None, spin: float = SPIN_SECONDS, wake_fd: int | None = None, on_wake=None,
            rendering=lambda: False, shared_queue: bool = False):
    """Replace pyfuse3's wait with a FuseWait on `fd`; returns an undo function.

    Without the hook or the fd (pyfuse3 changed, or several /dev/fuse fds are
    open), pyfuse3's own wait stays: slower, still correct.
    """
    saved = getattr(pyfuse3, HOOK, None)
    if saved is None or fd is None:
        return lambda: None
    setattr(pyfuse3, HOOK, FuseWait(fd, spin, wake_fd, on_wake, rendering, shared_queue))

    def undo():
        setattr(pyfuse3, HOOK, saved)
        if shared_queue:
            signal.setitimer(signal.ITIMER_REAL, 0)

    return undo
