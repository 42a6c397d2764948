"""Per-container load averages for -l/--enable-loadavg, sampled every 5 s like the kernel."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import trio

from lxcfs_py.fsread import read_text

log = logging.getLogger("lxcfs_py")

INTERVAL = 5.0
FSHIFT = 11
FIXED_1 = 1 << FSHIFT
EXP = (1884, 2014, 2037)  # 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) in fixed point
MAX_TRACKED = 4096


@dataclass
class Load:
    avenrun: list[int] = field(default_factory=lambda: [0, 0, 0])
    running: int = 0
    total: int = 1
    last_pid: int = 0


def decay(load: int, exp: int, active: int) -> int:
    """The kernel's calc_load(), rounding up while the load rises."""
    new = load * exp + active * (FIXED_1 - exp)
    if active >= load and active > 0:
        new += FIXED_1 - 1
    return new // FIXED_1


def format_load(load: Load) -> str:
    def fixed(value: int) -> str:
        value += FIXED_1 // 200  # LXCFS (like the kernel) rounds to the nearest hundredth
        return f"{value >> FSHIFT}.{((value & (FIXED_1 - 1)) * 100) >> FSHIFT:02d}"

    return " ".join(fixed(a) for a in load.avenrun) + f" {load.running}/{load.total} {load.last_pid}\n"


def count_tasks(proc_root: str, cgroup_dir: str) -> tuple[int, int, int]:
    """(running or uninterruptible, all tasks, highest tid) in a cgroup and its children."""
    running = total = last = 0
    for directory, _, _ in os.walk(cgroup_dir):
        try:
            pids = read_text(f"{directory}/cgroup.procs").split()
        except OSError:
            continue
        for pid in pids:
            try:
                tids = os.listdir(f"{proc_root}/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                total += 1
                last = max(last, int(tid))
                try:
                    status = read_text(f"{proc_root}/{pid}/task/{tid}/status")
                except OSError:
                    continue
                state = status.partition("State:")[2].lstrip()[:1]
                if state in ("R", "D"):
                    running += 1
    return running, total, last


class LoadSampler:
    def __init__(self, roots, loads: MutableMapping[str, Load] | None = None):
        self.proc_root = roots.proc
        # the daemon's state owns them (restart state); with worker processes, a shared mapping
        # (shared_state.py) that hands out copies: a changed Load is written back
        self.loads = loads if loads is not None else {}

    def loadavg(self, cgroup_dir: str, init_pid: int) -> str:
        """Any worker's render: the container's load, tracked from now on."""
        load = self.loads.get(cgroup_dir)
        if load is None:
            if len(self.loads) >= MAX_TRACKED:
                self.loads.pop(next(iter(self.loads)), None)
            load = self.loads.setdefault(cgroup_dir, Load(last_pid=init_pid))
        return format_load(load)

    def sample(self) -> None:
        """One process samples for all."""
        for directory in list(self.loads):
            if not os.path.isdir(directory):
                self.loads.pop(directory, None)  # the container is gone
                continue
            load = self.loads.get(directory)
            if load is None:
                continue  # dropped meanwhile (for a newer container)
            load.running, load.total, load.last_pid = count_tasks(self.proc_root, directory)
            active = load.running * FIXED_1
            load.avenrun = [decay(a, e, active) for a, e in zip(load.avenrun, EXP)]
            self.loads[directory] = load

    async def run(self) -> None:
        while True:
            await trio.sleep(INTERVAL)
            try:
                # a cgroup walk can take a while on a busy host; keep FUSE requests flowing
                await trio.to_thread.run_sync(self.sample)
            except Exception:  # noqa: BLE001 - sampling must never stop serving
                log.exception("loadavg sampling failed")
