"""Files rendered a moment ago, reused by the same container's next opens.

Rendering is most of what an open costs (for meminfo: eleven cgroup and
/proc reads and ~50 lines of formatting). A container that opens the same
file many times a second -- agents, thread pools sizing themselves, a
benchmark -- gets the content rendered for it at most `window` seconds ago.
The kernel itself promises no fresher numbers: /proc/meminfo folds per-CPU
counters in once a second (vm.stat_interval), and cgroup memory usage is
batched per CPU. A rewinding reader (top, free -s) still renders afresh
(fuse_ops.read), and a window of 0 renders every open, as LXCFS does.

Entries are keyed by everything a render depends on (the file, the caller's
cgroup and pid-namespace init, whether virtualization is on), so content is
never shared between containers. Memory is bounded by `max_bytes`.
"""

from __future__ import annotations

import time

DEFAULT_WINDOW = 0.02
MAX_BYTES = 4 << 20


class RecentRenders:
    def __init__(self, window: float = DEFAULT_WINDOW, max_bytes: int = MAX_BYTES, clock=time.monotonic):
        self.window = window
        self.max_bytes = max_bytes
        self.clock = clock
        self.held = 0
        self._entries: dict[tuple, tuple[float, bytes]] = {}  # oldest first

    def get(self, key: tuple) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or self.clock() - entry[0] >= self.window:
            return None
        return entry[1]

    def put(self, key: tuple, content: bytes) -> None:
        if self.window <= 0 or len(content) > self.max_bytes:
            return
        now = self.clock()
        old = self._entries.pop(key, None)
        if old is not None:
            self.held -= len(old[1])
        self._entries[key] = (now, content)
        self.held += len(content)
        # drop from the oldest end: what is past its window, then what exceeds the bound
        while self._entries:
            oldest = next(iter(self._entries))
            rendered, data = self._entries[oldest]
            if now - rendered < self.window and self.held <= self.max_bytes:
                break
            del self._entries[oldest]
            self.held -= len(data)
