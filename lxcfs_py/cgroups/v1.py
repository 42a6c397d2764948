"""cgroup v1: one hierarchy per controller under <root>/<controller>."""

from __future__ import annotations

import os

from lxcfs_py.cgroups.base import Cgroup, CpuTime, IoStat
from lxcfs_py.fsread import parse_cpu_list, read_int, read_named, read_text

NS_PER_SEC = 1_000_000_000

# memory.stat keys -> normalised names; the hierarchical total_* keys include
# child cgroups. total_rss_huge is left out on purpose: LXCFS's prefix match
# takes it for total_rss and never sets it, so AnonHugePages is always 0.
MEMSTAT_KEYS = {
    "total_cache": "cache",
    "total_rss": "rss",
    "total_shmem": "shmem",
    "total_mapped_file": "mapped_file",
    "total_dirty": "dirty",
    "total_writeback": "writeback",
    "total_inactive_anon": "inactive_anon",
    "total_active_anon": "active_anon",
    "total_inactive_file": "inactive_file",
    "total_active_file": "active_file",
    "total_unevictable": "unevictable",
}


class CgroupV1(Cgroup):
    version = 1
    swap_includes_memory = True  # memsw counts memory + swap together
    cpu_controller = "cpu"

    def hierarchy_root(self, controller: str) -> str:
        return f"{self.root}/{controller}"

    def dir(self, controller: str) -> str | None:
        path = self.paths.get(controller)
        if path is None:
            return None
        return self.hierarchy_root(controller) + path.rstrip("/")

    def _file(self, controller: str, name: str) -> str:
        directory = self.dir(controller)
        if directory is None:
            raise FileNotFoundError(f"no {controller} cgroup")
        return f"{directory}/{name}"

    def memory_limit(self) -> int | None:
        return self.min_along_path("memory", "memory.limit_in_bytes")

    def memory_usage(self) -> int:
        return read_int(self._file("memory", "memory.usage_in_bytes")) or 0

    def memory_stat(self) -> dict[str, int]:
        return read_named(self._file("memory", "memory.stat"), MEMSTAT_KEYS)

    def swap_files_exist(self) -> bool:
        return os.path.exists(f"{self.hierarchy_root('memory')}/memory.memsw.limit_in_bytes")

    def swap_limit(self) -> int | None:
        return self.min_along_path("memory", "memory.memsw.limit_in_bytes")

    def swap_usage(self) -> int:
        return read_int(self._file("memory", "memory.memsw.usage_in_bytes")) or 0

    def swappiness(self) -> int | None:
        try:
            return read_int(self._file("memory", "memory.swappiness"))
        except (OSError, ValueError):
            return None

    def cpuset(self) -> list[int] | None:
        for name in ("cpuset.cpus", "cpuset.effective_cpus"):  # LXCFS reads cpuset.cpus on v1
            try:
                return parse_cpu_list(read_text(self._file("cpuset", name)))
            except (OSError, ValueError):
                continue
        return None

    def cfs_at(self, directory: str) -> tuple[int | None, int]:
        quota = read_int(f"{directory}/cpu.cfs_quota_us")
        period = read_int(f"{directory}/cpu.cfs_period_us") or 0
        return (quota if quota is not None and quota > 0 else None), period

    def cpu_times(self) -> dict[int, CpuTime] | None:
        try:
            text = read_text(self._file("cpuacct", "cpuacct.usage_all"))
        except OSError:
            try:
                percpu = read_text(self._file("cpuacct", "cpuacct.usage_percpu")).split()
            except OSError:
                return None
            # no user/system split: LXCFS counts the whole time as both
            return {cpu: CpuTime(int(ns), int(ns)) for cpu, ns in enumerate(percpu)}
        times = {}
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) == 3 and fields[0].isdigit():
                times[int(fields[0])] = CpuTime(int(fields[1]), int(fields[2]))
        return times

    def cpu_usage_total(self) -> int | None:
        try:
            return read_int(self._file("cpuacct", "cpuacct.usage"))
        except (OSError, ValueError):
            return None

    def io_stats(self) -> dict[tuple[int, int], IoStat] | None:
        # The CFQ-era blkio.io_* files are gone on kernels >= 5.0; LXCFS then
        # passes the host's diskstats through, and so do we.
        return None

    def pids_dir(self) -> str | None:
        return self.dir("cpu")

    def slabinfo(self) -> str | None:
        try:
            return read_text(self._file("memory", "memory.kmem.slabinfo"))
        except OSError:
            return None
