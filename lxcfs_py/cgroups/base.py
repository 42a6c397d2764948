"""The cgroup interface every file handler reads limits and usage through.

Values are normalised here so handlers never see a v1/v2 difference:
bytes for memory, None for 'no limit', microseconds for CFS, nanoseconds
for CPU time, and v1-style names for memory.stat keys.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

from lxcfs_py.fsread import read_int

# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712
# with 4 KiB pages); anything this large is no limit at all.
UNLIMITED_THRESHOLD = 1 << 62


def limit_or_none(value: int | None) -> int | None:
    if value is None or value < 0 or value >= UNLIMITED_THRESHOLD:
        return None
    return value


def min_limit(values) -> int | None:
    limits = [v for v in (limit_or_none(v) for v in values) if v is not None]
    return min(limits) if limits else None


@dataclass(frozen=True)
class CpuTime:
    """Per-CPU time a cgroup used, in nanoseconds."""

    user: int
    system: int


@dataclass(frozen=True)
class IoStat:
    """One block device's counters for a cgroup (units as /proc/diskstats wants)."""

    reads: int = 0
    reads_merged: int = 0
    read_sectors: int = 0
    read_ms: int = 0
    writes: int = 0
    writes_merged: int = 0
    write_sectors: int = 0
    write_ms: int = 0
    io_ms: int = 0  # total time spent doing I/O
    weighted_ms: int = 0


class Cgroup(ABC):
    """A container's cgroup, as seen through one or more hierarchies."""

    version: int
    # v1's memsw limit counts memory and swap together; v2's swap.max is swap alone
    swap_includes_memory: bool

    def __init__(self, root: str, paths: dict[str, str]):
        self.root = root
        self.paths = paths
        # a Cgroup lives for one resolution of its caller (caller.py refreshes it), on every render
        # of that caller's files: what cannot change in that time is worked out once
        self._ancestors: dict[str, list[str]] = {}
        self._swap_accounting: bool | None = None

    # -- helpers shared by both versions --------------------------------------
    @abstractmethod
    def dir(self, controller: str) -> str | None:
        """Directory of this cgroup for `controller`, or None if not mounted."""

    def ancestors(self, controller: str) -> list[str]:
        """This cgroup's directory and every parent up to the hierarchy root."""
        known = self._ancestors.get(controller)
        if known is None:
            known = self._ancestors[controller] = self._walk_up(controller)
        return known

    def _walk_up(self, controller: str) -> list[str]:
        leaf = self.dir(controller)
        if leaf is None:
            return []
        top = self.hierarchy_root(controller)
        out = [leaf]
        while leaf != top and len(leaf) > len(top):
            leaf = os.path.dirname(leaf)
            out.append(leaf)
        return out

    @abstractmethod
    def hierarchy_root(self, controller: str) -> str: ...

    def min_along_path(self, controller: str, filename: str) -> int | None:
        """The tightest limit from this cgroup up to the root (limits nest)."""
        values = []
        for directory in self.ancestors(controller):
            try:
                values.append(read_int(f"{directory}/{filename}"))
            except (OSError, ValueError):
                continue
        return min_limit(values)

    # -- what handlers ask ----------------------------------------------------
    @abstractmethod
    def memory_limit(self) -> int | None: ...

    @abstractmethod
    def memory_usage(self) -> int: ...

    @abstractmethod
    def memory_stat(self) -> dict[str, int]:
        """v1-style keys without 'total_': cache, rss, shmem, active_anon, ..."""

    def swap_accounting(self) -> bool:
        """Whether the kernel accounts swap per cgroup at all (a boot-time setting)."""
        if self._swap_accounting is None:
            self._swap_accounting = self.swap_files_exist()
        return self._swap_accounting

    @abstractmethod
    def swap_files_exist(self) -> bool: ...

    @abstractmethod
    def swap_limit(self) -> int | None:
        """v1: the memory+swap limit; v2: the swap limit (see swap_includes_memory)."""

    @abstractmethod
    def swap_usage(self) -> int:
        """v1: memory+swap usage; v2: swap usage."""

    @abstractmethod
    def swappiness(self) -> int | None: ...

    @abstractmethod
    def cpuset(self) -> list[int] | None:
        """Effective CPUs of the cgroup, or None when unknown."""

    cpu_controller: str  # the controller whose directories hold the CFS files

    @abstractmethod
    def cfs_at(self, directory: str) -> tuple[int | None, int]:
        """(quota_us or None for unlimited, period_us) set in one directory of the cpu hierarchy."""

    def cfs_quota(self) -> tuple[int | None, int]:
        """The tightest (quota_us, period_us) from this cgroup up to the root: a parent's quota (a
        systemd slice's, a Kubernetes pod's) caps its children. (None, the cgroup's period) if none."""
        directories = self.ancestors(self.cpu_controller)
        if not directories:
            raise FileNotFoundError(f"no {self.cpu_controller or 'unified'} cgroup")
        quota, period = self.cfs_at(directories[0])
        for directory in directories[1:]:
            try:
                above, above_period = self.cfs_at(directory)
            except (OSError, ValueError):
                continue  # the root has no CFS files
            if above is not None and above_period > 0 and (
                    quota is None or period <= 0 or above * period < quota * above_period):
                quota, period = above, above_period
        return quota, period

    @abstractmethod
    def cpu_times(self) -> dict[int, CpuTime] | None:
        """Per-CPU usage, or None when the cgroup version has no per-CPU data."""

    @abstractmethod
    def cpu_usage_total(self) -> int | None:
        """CPU time the cgroup used in all, in nanoseconds."""

    @abstractmethod
    def io_stats(self) -> dict[tuple[int, int], IoStat] | None:
        """Per-device counters, or None when only the host's are available."""

    @abstractmethod
    def pids_dir(self) -> str | None:
        """Directory whose cgroup.procs (and children's) list the container's tasks."""

    @abstractmethod
    def slabinfo(self) -> str | None:
        """The cgroup's own slabinfo, or None when the kernel has none per cgroup."""
