"""µs of wall and CPU time per render: on the loop (under deadline.within) against handed to a thread.

    .venv/bin/python benchmarks/render_handoff.py [RENDERS]

Why renders run on the serving loop (offload.py): the render here reads a
cgroup file eleven times, as a meminfo render reads eleven files, through the
daemon's kept-open fds. "thread" is offload.Renders' path for a container
marked slow: a job queue to a worker thread, an eventfd back, the GIL passed
both ways; the loop waits in poll meanwhile, as it does in the daemon when no
other request is pending (with requests pending it serves them and the
thread waits for the GIL, which costs more).
"""

from __future__ import annotations

import os
import sys
import time

import trio

from lxcfs_py import deadline, fsread, offload

READS = 11
V1_FILE, V2_FILE = "/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory.current"
FILE = V1_FILE if os.path.exists(V1_FILE) else V2_FILE
OWNER = (("memory", "/bench"),)


def render() -> bytes:
    for _ in range(READS):
        fsread.read_bytes(FILE)
    return b"x"


async def measure(renders: offload.Renders, count: int, on_loop: bool) -> tuple[float, float]:
    if not on_loop:
        renders._mark_slow(OWNER)  # pylint: disable=protected-access  # the path a slow container takes
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await renders.run(OWNER, render)
    return (time.perf_counter() - wall) / count * 1e6, (time.process_time() - cpu) / count * 1e6


async def main(count: int) -> None:
    renders = offload.Renders()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(renders.deliver_forever)
        for label, on_loop in (("loop", True), ("thread", False), ("loop", True), ("thread", False)):
            renders._slow.clear()  # pylint: disable=protected-access
            wall, cpu = await measure(renders, count, on_loop)
            print(f"{label:<7} {wall:7.1f} µs wall {cpu:7.1f} µs CPU per render of {READS} reads")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    fsread.keep_open_under(["/sys"], "/proc")
    undo = deadline.install()
    try:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
    finally:
        undo()
