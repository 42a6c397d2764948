"""/proc/stat: only the container's CPUs, with its own CPU time where cgroups tell it."""

from __future__ import annotations

import re

from lxcfs_py.cgroups.base import CpuTime
from lxcfs_py.context import Request
from lxcfs_py.files import cpus
from lxcfs_py.files.counters import never_backwards
from lxcfs_py.files.cpuview import CpuView, CpuViews, Usage
from lxcfs_py.files.uptime import init_start_ticks
from lxcfs_py.fsread import read_bytes
from lxcfs_py.host import CLK_TCK

CPU_LINE = re.compile(r"cpu(\d+) ")


def ticks(ns: int, hz: int = CLK_TCK) -> int:
    return int(ns / 1e9 * hz)


def _fields(line: str) -> list[int] | None:
    parts = line.split()[1:11]
    if len(parts) != 10 or not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def _cpu_usage(times: dict[int, CpuTime], cpu: int, host: list[int]) -> Usage:
    """The container's user/system ticks on `cpu`; the rest of the host's time is idle to it."""
    user, system = ticks(times[cpu].user), ticks(times[cpu].system)
    all_used = sum(host) - host[3]
    idle = host[3] + (all_used - user - system) if all_used >= user + system else host[3]
    return Usage(user, system, idle)


def render_text(host_text: str, allowed: set[int], times: dict[int, CpuTime] | None) -> str:
    """Host CPU lines of `allowed` CPUs (physical numbers, as LXCFS 5.0 prints them)."""
    lines = host_text.splitlines(keepends=True)[1:]  # the host's total line is recomputed
    sums = [0] * 10
    body: list[str] = []
    for line in lines:
        match = CPU_LINE.match(line)
        if not match:
            body.append(line)
            continue
        cpu = int(match.group(1))
        if cpu not in allowed:
            continue
        host = _fields(line)
        if host is None or times is None or cpu not in times:
            body.append(line)
            if host is not None:
                sums = [a + b for a, b in zip(sums, host)]
            continue
        usage = _cpu_usage(times, cpu, host)
        body.append(f"cpu{cpu} {usage.user} 0 {usage.system} {usage.idle} 0 0 0 0 0 0\n")
        sums[0] += usage.user
        sums[2] += usage.system
        sums[3] += usage.idle
    return "cpu  " + " ".join(map(str, sums)) + "\n" + "".join(body)


def render_view_text(host_text: str, allowed: set[int], times: dict[int, CpuTime], view: CpuView,
                     max_cpus: int, exact: float) -> str:
    """--enable-cfs: CPUs renumbered from 0, time folded onto the first `max_cpus`."""
    lines = host_text.splitlines(keepends=True)[1:]
    current: dict[int, Usage] = {}
    online: list[int] = []
    counted = 0
    rest_from = len(lines)
    for index, line in enumerate(lines):
        match = CPU_LINE.match(line)
        if not match:
            rest_from = index
            break
        cpu = int(match.group(1))
        if cpu not in times:
            continue
        counted += 1
        host = _fields(line)
        if cpu in allowed:
            online.append(cpu)
            if host is not None:
                current[cpu] = _cpu_usage(times, cpu, host)
    shown = view.update(current, online, min(max_cpus, counted) if max_cpus else counted, counted, exact)
    total = [sum(u.user for u in shown), sum(u.system for u in shown), view.last_idle_sum]
    out = [f"cpu  {total[0]} 0 {total[1]} {total[2]} 0 0 0 0 0 0\n"]
    out += [f"cpu{i} {u.user} 0 {u.system} {u.idle} 0 0 0 0 0 0\n" for i, u in enumerate(shown)]
    return "".join(out + lines[rest_from:])


def as_the_container_saw_it(text: str, floors, key: str, start_ticks: int, hz: int = CLK_TCK) -> str:
    """CPU counters never below what this container was shown before (see counters.py), and btime the
    container's start, as its uptime is its init's age (psutil's boot_time(), `uptime -s`)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        label, _, rest = line.partition(" ")
        if label.startswith("cpu"):
            numbers = rest.split()
            if not all(n.isdigit() for n in numbers):
                continue
            values = never_backwards(floors, key, label, [int(n) for n in numbers])
            spacing = rest[: len(rest) - len(rest.lstrip(" "))]
            lines[index] = f"{label} {spacing}{' '.join(map(str, values))}\n"
        elif label == "btime" and rest.strip().isdigit():
            lines[index] = f"btime {int(rest) + start_ticks // hz}\n"
    return "".join(lines)


def render(req: Request) -> bytes:
    host = read_bytes(req.proc("stat"))
    if req.cgroup is None:
        return host
    allowed = set(cpus.cpuset(req))
    times = req.cgroup.cpu_times()
    if req.opts.cfs and times is not None:
        views = req.views if req.views is not None else CpuViews()  # none kept: every read is a first read
        max_cpus, exact = cpus.max_cpus(req), cpus.exact_cpus(req)
        with views.view(req.cgroup.dir("cpuset") or "") as view:  # a shared view stays locked meanwhile
            text = render_view_text(host.decode(), allowed, times, view, max_cpus, exact)
    else:
        # no per-CPU times to fold (v2, or v1 without cpuacct): the host's lines of the CPUs shown
        text = render_text(host.decode(), set(cpus.visible(req)), times)
    key = req.cgroup.dir(req.cgroup.cpu_controller) or ""
    return as_the_container_saw_it(text, req.floors, key, init_start_ticks(req)).encode()
