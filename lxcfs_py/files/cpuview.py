"""LXCFS's CPU view for --enable-cfs: per-cgroup counters that accumulate between reads.

A container limited to N CPUs by its quota is shown N CPUs; time it spent
on CPUs past the first N is moved onto those N, and idle time is cut so a
fractional quota (0.5 CPU) looks half busy at most. Counters only grow, as
/proc/stat readers expect.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

MAX_VIEWS = 4096  # cgroups whose counters are kept


@dataclass
class Usage:
    user: int = 0
    system: int = 0
    idle: int = 0


@dataclass
class CpuView:
    last: dict[int, Usage] = field(default_factory=dict)  # raw usage at the previous read
    view: dict[int, Usage] = field(default_factory=dict)  # the counters shown
    last_idle_sum: int = 0

    def update(self, current: dict[int, Usage], online: list[int], max_cpus: int, cpu_count: int,
               exact: float) -> list[Usage]:
        """Fold the time since the last read into the view; return the shown CPUs in order."""
        first = next((c for c in online if c in current), None)
        if first is not None and first in self.last and current[first].user < self.last[first].user:
            self.last, self.view = {}, {}  # the cgroup was recreated: start over
        for cpu in current:
            self.last.setdefault(cpu, Usage(current[cpu].user, current[cpu].system, current[cpu].idle))
        diff: dict[int, Usage] = {}
        for cpu in online:
            now, before = current.get(cpu, Usage()), self.last.get(cpu, Usage())
            diff[cpu] = Usage(max(now.user - before.user, 0), max(now.system - before.system, 0),
                              max(now.idle - before.idle, 0))
            self.last[cpu] = Usage(before.user + diff[cpu].user, before.system + diff[cpu].system,
                                   before.idle + diff[cpu].idle)
        total_sum = sum(d.user + d.system + d.idle for d in diff.values())
        visible, surplus = online[:max_cpus], online[max_cpus:]
        user_surplus = sum(diff[c].user for c in surplus)
        system_surplus = sum(diff[c].system for c in surplus)
        threshold = total_sum // cpu_count * max_cpus if cpu_count else 0
        for cpu in visible:
            d = diff[cpu]
            if d.user + d.system >= threshold:
                continue
            user_surplus -= _absorb(d, "user", user_surplus, threshold)
            if d.user + d.system >= threshold:
                continue
            system_surplus -= _absorb(d, "system", system_surplus, threshold)
        shown: list[Usage] = []
        max_idle_cpu, max_idle = None, 0
        for cpu in visible:
            v = self.view.setdefault(cpu, Usage())
            v.user += diff[cpu].user
            v.system += diff[cpu].system
            v.idle += diff[cpu].idle
            if diff[cpu].idle > max_idle:
                max_idle_cpu, max_idle = cpu, diff[cpu].idle
            shown.append(v)
        idle_sum = sum(v.idle for v in shown)
        if exact < max_cpus and max_cpus:
            delta = int(sum(diff[c].user + diff[c].system + diff[c].idle for c in visible) * (1 - exact / max_cpus))
            idle_sum = max(idle_sum - delta, 0)
            target = self.view[max_idle_cpu if max_idle_cpu is not None else visible[0]] if visible else None
            if target is not None:
                target.idle = max(target.idle - delta, 0)
        self.last_idle_sum = idle_sum
        return shown


class CpuViews(dict):
    """Per cpuset cgroup, its view, in this process."""

    @contextlib.contextmanager
    def view(self, key: str):
        """The view of `key` (a new one the first time) to update in place."""
        view = self.get(key)
        if view is None:
            if len(self) >= MAX_VIEWS:
                self.pop(next(iter(self), None), None)  # the oldest cgroup, most likely gone
            view = self[key] = CpuView()
        yield view


def _absorb(d: Usage, name: str, surplus: int, threshold: int) -> int:
    """Move up to `surplus` ticks of idle time on this CPU into `name`; return how many."""
    room = min(threshold - d.user - d.system, d.idle)
    moved = max(min(room, surplus), 0)
    setattr(d, name, getattr(d, name) + moved)
    d.idle -= moved
    return moved
