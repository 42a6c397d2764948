"""FuseWait between requests: sleeps in poll() itself, yet leaves trio its turns (lxcfs_py/fuse_wait.py).

A pipe stands in for /dev/fuse: a thread writes one byte per "request", the
task that waits through FuseWait reads it, as pyfuse3 does after the wait.
"""

import os
import threading
import time

import trio

from lxcfs_py import fuse_wait

GAP = 0.001  # between two requests: far longer than the spin, far shorter than any yield interval


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
