"""Renders on the loop: given up when the kernel keeps them waiting, redone in a thread (deadline.py, offload.py)."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pytest
import trio

from lxcfs_py import deadline, offload
from lxcfs_py.fsread import read_bytes

BUDGET = 0.02
HELD = (("memory", "/held"),)  # owners as state.owner_of makes them
OTHER = (("memory", "/other"),)


@pytest.fixture
def timer():
    undo = deadline.install()
    yield
    undo()


RESCUE_AFTER = 3.0  # seconds: if the deadline failed, a writer frees the wait, so the test fails instead of hanging


@pytest.fixture
def fifo(tmp_path):
    """A file whose open waits in the kernel until a writer comes (as a cgroup file can under pressure)."""
    path = str(tmp_path / "memory.stat")
    os.mkfifo(path)
    done = threading.Event()

    def rescue():
        if not done.wait(RESCUE_AFTER):
            answer(path, b"rescued\n", done)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()


def answer(path: str, data: bytes, stop: threading.Event | None = None, timeout: float = 10.0) -> bool:
    """Write `data` to the FIFO once something waits to read it; False if nothing did in time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (stop and stop.is_set()):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
        except OSError:
            time.sleep(0.02)
            continue
        os.write(fd, data)
        os.close(fd)
        return True
    return False


async def in_a_thread(renders: offload.Renders) -> None:
    """Until a render runs in a thread (the loop gave it up)."""
    with trio.fail_after(5):
        while not renders.in_flight():
            await trio.sleep(0.005)


def test_a_read_that_waits_past_the_budget_is_given_up(timer, fifo):
    start = time.monotonic()
    with pytest.raises(deadline.TooSlow):
        deadline.within(BUDGET, lambda: read_bytes(fifo))
    assert time.monotonic() - start < RESCUE_AFTER


def test_work_that_computes_past_the_budget_is_not_interrupted(timer):
    def busy():
        end = time.monotonic() + 5 * BUDGET
        while time.monotonic() < end:  # the timer fires here, outside any read: it must not raise
            pass
        return "done"

    # only a read is given up (it may be the one that waits): work that computes ends where it runs
    assert deadline.within(BUDGET, busy) == "done"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left armed after the work


def test_without_the_timer_installed_work_just_runs(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    assert deadline.within(BUDGET, lambda: read_bytes(str(path))) == b"x"


def test_off_the_main_thread_work_just_runs(timer, tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    out = []
    thread = threading.Thread(target=lambda: out.append(deadline.within(BUDGET, lambda: read_bytes(str(path)))))
    thread.start()
    thread.join()
    assert out == [b"x"]


def test_a_render_kept_waiting_moves_to_a_thread_and_its_container_stays_there(timer, fifo, tmp_path, monkeypatch):
    monkeypatch.setattr(offload, "ON_LOOP_BUDGET", BUDGET)
    quick = tmp_path / "quick"
    quick.write_text("quick\n")
    threads = []

    def render_held():
        threads.append(threading.current_thread().name)
        return read_bytes(fifo)

    def render_quick():
        threads.append(threading.current_thread().name)
        return read_bytes(str(quick))

    async def main():
        renders = offload.Renders()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(renders.deliver_forever)
            held = {}

            async def held_reader():
                held["content"] = await renders.run(HELD, render_held)

            nursery.start_soon(held_reader)
            await in_a_thread(renders)
            # the loop is free: another container's render runs on it meanwhile
            assert await renders.run(OTHER, render_quick) == b"quick\n"
            assert answer(fifo, b"cache 1\n")  # the kernel answers at last
            with trio.fail_after(5):
                while "content" not in held:
                    await trio.sleep(0.01)
            assert held["content"] == b"cache 1\n"
            # the held container's next render goes straight to a thread
            assert await renders.run(HELD, render_quick) == b"quick\n"
            nursery.cancel_scope.cancel()

    trio.run(main)
    main_thread = threading.main_thread().name
    # held: tried on the loop, redone in a thread; other: on the loop; held again: in a thread
    assert threads[0] == main_thread
    assert threads[1:] and threads[-1] != main_thread
    assert main_thread in threads[1:-1]


def test_a_container_stuck_in_the_kernel_gets_eagain_past_its_queue(timer, fifo, monkeypatch):
    monkeypatch.setattr(offload, "ON_LOOP_BUDGET", BUDGET)
    outcomes = []

    async def main():
        renders = offload.Renders()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(renders.deliver_forever)

            async def open_held():
                try:
                    outcomes.append(await renders.run(HELD, lambda: read_bytes(fifo)))
                except OSError as err:
                    outcomes.append(err.errno)

            nursery.start_soon(open_held)  # given up on the loop, then held in a thread
            await in_a_thread(renders)
            for _ in range(offload.MAX_QUEUED + 2):  # queue behind it, then past the queue
                nursery.start_soon(open_held)
            with trio.fail_after(5):
                while len(outcomes) < 2:
                    await trio.sleep(0.005)
            assert outcomes == [errno.EAGAIN, errno.EAGAIN]  # at once, while the others wait
            for done in range(1, 2 + offload.MAX_QUEUED):  # the kernel answers: the held one, then each queued
                assert await trio.to_thread.run_sync(answer, fifo, b"cache 1\n")
                with trio.fail_after(5):
                    while len(outcomes) < 2 + done:  # one at a time: read before the next is written
                        await trio.sleep(0.005)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert outcomes[2:] == [b"cache 1\n"] * (1 + offload.MAX_QUEUED)
