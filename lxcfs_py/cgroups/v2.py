"""cgroup v2: one unified hierarchy at <root>, the same path for every controller."""

from __future__ import annotations

import os

from lxcfs_py.cgroups.base import Cgroup, CpuTime, IoStat
from lxcfs_py.fsread import parse_cpu_list, read_int, read_keyed, read_named, read_text

SECTOR = 512

# memory.stat keys -> normalised names. file_mapped, file_dirty and
# file_writeback are left out on purpose: LXCFS matches v2 lines by prefix with
# "file" first, so it never reads them and shows Mapped, Dirty, Writeback as 0.
MEMSTAT_KEYS = {
    "file": "cache",
    "anon": "rss",
    "shmem": "shmem",
    "inactive_anon": "inactive_anon",
    "active_anon": "active_anon",
    "inactive_file": "inactive_file",
    "active_file": "active_file",
    "unevictable": "unevictable",
}


class CgroupV2(Cgroup):
    version = 2
    swap_includes_memory = False
    cpu_controller = ""

    def hierarchy_root(self, controller: str) -> str:
        return self.root

    def dir(self, controller: str) -> str | None:
        path = self.paths.get("")
        if path is None:
            return None
        return self.root + path.rstrip("/")

    def _file(self, name: str) -> str:
        directory = self.dir("")
        if directory is None:
            raise FileNotFoundError("no cgroup v2 path")
        return f"{directory}/{name}"

    def memory_limit(self) -> int | None:
        return self.min_along_path("", "memory.max")

    def memory_usage(self) -> int:
        return read_int(self._file("memory.current")) or 0

    def memory_stat(self) -> dict[str, int]:
        return read_named(self._file("memory.stat"), MEMSTAT_KEYS)

    def swap_files_exist(self) -> bool:
        return os.path.exists(self._file("memory.swap.current"))

    def swap_limit(self) -> int | None:
        return self.min_along_path("", "memory.swap.max")

    def swap_usage(self) -> int:
        return read_int(self._file("memory.swap.current")) or 0

    def swappiness(self) -> int | None:
        return None  # v2 has no per-cgroup swappiness

    def cpuset(self) -> list[int] | None:
        try:
            return parse_cpu_list(read_text(self._file("cpuset.cpus.effective")))
        except (OSError, ValueError):
            return None

    def cfs_at(self, directory: str) -> tuple[int | None, int]:
        quota, _, period = read_text(f"{directory}/cpu.max").strip().partition(" ")
        period_us = int(period) if period.isdigit() else 100000
        if quota == "max" or not quota.lstrip("-").isdigit() or int(quota) <= 0:
            return None, period_us
        return int(quota), period_us

    def cpu_times(self) -> dict[int, CpuTime] | None:
        return None  # v2's cpu.stat has no per-CPU split

    def cpu_usage_total(self) -> int | None:
        try:
            usec = read_keyed(self._file("cpu.stat")).get("usage_usec")
        except OSError:
            return None
        return None if usec is None else usec * 1000

    def io_stats(self) -> dict[tuple[int, int], IoStat] | None:
        try:
            text = read_text(self._file("io.stat"))
        except OSError:
            return None
        stats = {}
        for line in text.splitlines():
            device, *pairs = line.split()
            major, _, minor = device.partition(":")
            values = {}
            for pair in pairs:
                key, _, value = pair.partition("=")
                if value.isdigit():
                    values[key] = int(value)
            stats[(int(major), int(minor))] = IoStat(
                reads=values.get("rios", 0),
                read_sectors=values.get("rbytes", 0) // SECTOR,
                writes=values.get("wios", 0),
                write_sectors=values.get("wbytes", 0) // SECTOR,
            )
        return stats

    def pids_dir(self) -> str | None:
        return self.dir("")

    def slabinfo(self) -> str | None:
        return None  # v2 has no per-cgroup slabinfo; LXCFS shows the host's
