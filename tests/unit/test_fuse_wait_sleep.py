"""FuseWait between requests: sleeps in poll() itself, yet leaves trio its turns (lxcfs_py/fuse_wait.py).

A pipe stands in for /dev/fuse: a thread writes one byte per "request", the
task that waits through FuseWait reads it, as pyfuse3 does after the wait.
"""

import os
import threading
import time

import trio
import trio.testing

from lxcfs_py import fuse_wait
from lxcfs_py.offload import Renders

GAP = 0.001  # between two requests: far longer than the spin, far shorter than any yield interval
WATCHDOG = 10.0  # seconds: a wait this long means the loop was stuck


class BlockingIoWaits(trio.abc.Instrument):
    """Counts the times trio's scheduler slept in epoll (a wait with a timeout, not a pass)."""

    def __init__(self):
        self.count = 0

    def before_io_wait(self, timeout):
        if timeout > 0:
            self.count += 1


def requests_from_a_thread(fd: int, count: int, stop: threading.Event) -> threading.Thread:
    def send():
        for _ in range(count):
            if stop.is_set():
                return
            time.sleep(GAP)
            os.write(fd, b"r")

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def serve(wait, fd: int, count: int, served: list[int]):
    async def loop():
        for _ in range(count):
            assert await wait()
            os.read(fd, 1)
            served[0] += 1
    return loop


def test_between_requests_the_loop_sleeps_in_poll_not_in_trio(monkeypatch):
    monkeypatch.setattr(fuse_wait, "YIELD_SECONDS", 60.0, raising=False)  # trio never due within the test
    requests = 50
    r, w = os.pipe()
    try:
        waits = BlockingIoWaits()

        async def main():
            wait = fuse_wait.FuseWait(r)
            requests_from_a_thread(w, requests, threading.Event())
            await serve(wait, r, requests, [0])()

        trio.run(main, instruments=[waits])
    finally:
        os.close(r)
        os.close(w)
    # the first wait parks in trio (nothing served yet); every later request is caught in poll()
    assert waits.count <= 2, f"trio slept in epoll {waits.count} times for {requests} requests"


def test_trio_gets_its_turns_while_requests_keep_coming():
    requests = 5000  # 5 s or more: the stream outlasts the timer by far
    r, w = os.pipe()
    timer_fired = threading.Event()
    served, served_when_fired = [0], []
    try:
        async def main():
            wait = fuse_wait.FuseWait(r)
            requests_from_a_thread(w, requests, timer_fired)
            async with trio.open_nursery() as nursery:
                async def timer():
                    await trio.sleep(0.02)
                    served_when_fired.append(served[0])
                    timer_fired.set()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(timer)
                await serve(wait, r, requests, served)()

        trio.run(main)
    finally:
        os.close(r)
        os.close(w)
    assert served_when_fired and served_when_fired[0] < requests, "a trio timer did not fire while requests kept coming"


def test_a_render_queued_behind_its_containers_last_one_starts_while_the_loop_sleeps(monkeypatch):
    """The task whose render ends hands the container's turn to the next and then waits for a request,
    asleep in poll(): the next render must start now, not when a request or trio's pass comes."""
    monkeypatch.setattr(fuse_wait, "YIELD_SECONDS", 60.0, raising=False)  # no pass of trio's own meanwhile
    r, w = os.pipe()
    renders = Renders()
    owner = (("memory", "/one-container"),)
    first_may_end, second_rendered, watchdog_fired = threading.Event(), threading.Event(), threading.Event()

    def first():
        first_may_end.wait(WATCHDOG)
        return b"first"

    def second():
        second_rendered.set()
        os.write(w, b"rr")  # requests for the two session loops waiting
        return b"second"

    def watchdog():  # the test ends either way: no request would come otherwise
        if not second_rendered.wait(WATCHDOG):
            watchdog_fired.set()
            os.write(w, b"rr")

    try:
        async def main():
            wait = fuse_wait.FuseWait(r, wake_fd=renders.done_fd, on_wake=renders.deliver,
                                      rendering=renders.in_flight)
            renders.watch(r)
            os.write(w, b"r")
            assert await wait()  # the loop has served a request: trio's next pass is far off now
            os.read(r, 1)

            async def session_loop(render):  # as pyfuse3's: a request's render, then the wait for the next
                await renders.run(owner, render)
                assert await wait()
                os.read(r, 1)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(renders.deliver_forever)
                async with trio.open_nursery() as loops:
                    loops.start_soon(session_loop, first)
                    await trio.testing.wait_all_tasks_blocked()
                    loops.start_soon(renders.run, owner, second)  # queued behind `first`
                    await trio.testing.wait_all_tasks_blocked()
                    threading.Thread(target=watchdog, daemon=True).start()
                    first_may_end.set()
                nursery.cancel_scope.cancel()

        trio.run(main)
    finally:
        first_may_end.set()
        os.close(r)
        os.close(w)
    assert second_rendered.is_set() and not watchdog_fired.is_set(), \
        "the container's next render waited for a request while the loop slept in poll()"
