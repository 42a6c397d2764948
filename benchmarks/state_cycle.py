"""µs per open + read + release of a meminfo-sized snapshot in each state store (state.py, shared_state.py).

    .venv/bin/python benchmarks/state_cycle.py [CYCLES]

One cycle: add_file, file (as a read finds its handle), release_file. The
shared store's file() in a process other than the opener also rebuilds the
Handle once (revive); that is not counted here: the opener reads its own file.
"""

from __future__ import annotations

import sys
import time

from lxcfs_py.shared_state import SharedState
from lxcfs_py.state import DaemonState, Handle

CONTENT = b"x" * 1500  # /proc/meminfo is about 1.5 KB
OWNER = (("cpuset", "/docker/abc"), ("memory", "/docker/abc"))


def per_cycle(state, cycles: int) -> float:
    handle = Handle("proc/meminfo", None, "/proc/meminfo", None, OWNER)
    start = time.perf_counter()
    for _ in range(cycles):
        fh = state.add_file(handle, CONTENT)
        state.file(fh)
        state.release_file(fh)
    return (time.perf_counter() - start) / cycles * 1e6


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    for name, make in (("DaemonState", DaemonState), ("SharedState", SharedState.create)):
        best = min(per_cycle(make(), cycles) for _ in range(5))
        print(f"{name:12} {best:6.2f} µs per add_file + file + release_file (best of 5 x {cycles})")


if __name__ == "__main__":
    main()
