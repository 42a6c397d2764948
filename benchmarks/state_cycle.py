"""µs per open + read + read at EOF + release of a meminfo-sized snapshot in each state store.

    .venv/bin/python benchmarks/state_cycle.py [CYCLES]

One cycle is what the FUSE adapter (fuse_ops.py) asks of the store for one
`cat`: admit + add_file at the open, file + mark_read at the first read, file
at the read at EOF, release_file. The shared store's file() in a process
other than the opener also rebuilds the Handle once (revive); that is not
counted here: the opener reads its own file.
"""

from __future__ import annotations

import sys
import time

from lxcfs_py.shared_state import SharedState
from lxcfs_py.state import DaemonState, Handle

CONTENT = b"x" * 1500  # /proc/meminfo is about 1.5 KB
OWNER = (("cpuset", "/docker/abc"), ("memory", "/docker/abc"))


def per_cycle(state, cycles: int) -> float:
    """The cycle as fuse_ops asked for it before reading() (file + mark_read at the first read)."""
    start = time.perf_counter()
    for _ in range(cycles):
        handle = Handle("proc/meminfo", None, "/proc/meminfo", None, OWNER)  # a new one per open, as fuse_ops
        state.admit(handle.owner)
        fh = state.add_file(handle, CONTENT)
        state.file(fh)
        state.mark_read(fh)
        state.file(fh)
        state.release_file(fh)
    return (time.perf_counter() - start) / cycles * 1e6


def per_cycle_reading(state, cycles: int) -> float:
    """The cycle as fuse_ops asks for it now: reading() at each read."""
    start = time.perf_counter()
    for _ in range(cycles):
        handle = Handle("proc/meminfo", None, "/proc/meminfo", None, OWNER)
        state.admit(handle.owner)
        fh = state.add_file(handle, CONTENT)
        state.reading(fh)
        state.reading(fh)
        state.release_file(fh)
    return (time.perf_counter() - start) / cycles * 1e6


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    for name, make in (("DaemonState", DaemonState), ("SharedState", SharedState.create)):
        best = min(per_cycle(make(), cycles) for _ in range(5))
        print(f"{name:12} {best:6.2f} µs per admit + add_file + file + mark_read + file + release_file "
              f"(best of 5 x {cycles})")
        best = min(per_cycle_reading(make(), cycles) for _ in range(5))
        print(f"{name:12} {best:6.2f} µs per admit + add_file + reading + reading + release_file")


if __name__ == "__main__":
    main()
