"""Counters that never run backwards, per container, across reads, readers and planned restarts.

A container's CPU time comes from its cgroup (nanoseconds, exact) and its
idle time from the host's tick-sampled /proc/stat, so between two reads the
derived idle time can shrink by a tick or two (LXCFS shows the same);
monitoring agents turn that into negative rates. Each value shown is kept as
a floor for the next read of the same container and line.
"""

from __future__ import annotations

MAX_CONTAINERS = 4096


def never_backwards(floors: dict[str, dict[str, list[int]]] | None, key: str, label: str,
                    values: list[int]) -> list[int]:
    """`values` raised to what this container's line `label` last showed; remembered for next time."""
    if floors is None:
        return values
    shown = floors.get(key)
    if shown is None:
        if len(floors) >= MAX_CONTAINERS:
            floors.pop(next(iter(floors)))  # the oldest container, most likely gone
        shown = floors[key] = {}
    last = shown.get(label)
    if last is not None and len(last) == len(values):
        values = [max(a, b) for a, b in zip(values, last)]
    shown[label] = values
    return values
