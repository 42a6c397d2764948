"""Counters that never run backwards, per container, across reads, readers and planned restarts.

A container's CPU time comes from its cgroup (nanoseconds, exact) and its
idle time from the host's tick-sampled /proc/stat, so between two reads the
derived idle time can shrink by a tick or two (LXCFS shows the same);
monitoring agents turn that into negative rates. Each value shown is kept as
a floor for the next read of the same container and line.
"""

from __future__ import annotations

MAX_CONTAINERS = 4096


def never_backwards(floors, key: str, label: str, values: list[int]) -> list[int]:
    """`values` raised to what this container's line `label` last showed; remembered for next time.

    `floors`: a Floors, a shared_state.SharedFloors (worker processes), or None (nothing kept).
    """
    if floors is None:
        return values
    return floors.raise_to(key, label, values)


def raised(last: list[int] | None, values: list[int]) -> list[int]:
    if last is not None and len(last) == len(values):
        return [max(a, b) for a, b in zip(values, last)]
    return values


class Floors(dict):
    """Per container key: per line label, the highest counters shown, in this process."""

    def raise_to(self, key: str, label: str, values: list[int]) -> list[int]:
        shown = self.get(key)
        if shown is None:
            if len(self) >= MAX_CONTAINERS:
                self.pop(next(iter(self)))  # the oldest container, most likely gone
            shown = self[key] = {}
        values = shown[label] = raised(shown.get(label), values)
        return values
