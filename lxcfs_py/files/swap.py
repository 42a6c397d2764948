"""Swap as LXCFS shows it, shared by meminfo and swaps."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lxcfs_py.context import Request

# cgroup v1's 'no limit' (PAGE_COUNTER_MAX pages of 4 KiB); LXCFS does its
# arithmetic with it as a plain number, so we do too to get its results.
V1_UNLIMITED = 9223372036854771712


@dataclass(frozen=True)
class SwapInfo:
    total_kb: int | None  # None: no swap limit (the host's swap is the bound)
    used_kb: int
    swappiness: int
    plus_memory: bool  # v1: LXCFS adds the memory limit back onto the total


def memory_cgroup_gone(req: Request) -> bool:
    """The caller's memory cgroup directory no longer exists (removed, or the caller moved).

    Then handlers let FileNotFoundError through, so the FUSE adapter resolves the
    caller afresh; other unreadable memory files get LXCFS's fallback instead.
    """
    directory = req.cgroup.dir("memory")
    return directory is not None and not os.path.isdir(directory)


def swap_info(req: Request, memlimit: int, memusage: int) -> SwapInfo | None:
    """None when swap is not shown (-u, or no swap accounting)."""
    cg = req.cgroup
    if not req.opts.swap or not cg.swap_accounting():
        return None
    limit = cg.swap_limit()
    usage = cg.swap_usage()
    swappiness = cg.swappiness()
    swappiness = 1 if swappiness is None else swappiness
    if cg.swap_includes_memory:
        memsw = V1_UNLIMITED if limit is None else limit
        total = 0 if memlimit > memsw else (memsw - memlimit) // 1024
        used = 0 if memusage > usage else (usage - memusage) // 1024
        return SwapInfo(total, used, swappiness, plus_memory=True)
    return SwapInfo(None if limit is None else limit // 1024, usage // 1024, swappiness, plus_memory=False)


def shown_total(info: SwapInfo, memlimit_kb: int, host_total_kb: int) -> int:
    """The swap total to print, bounded by the host's swap."""
    total = host_total_kb if info.total_kb is None else info.total_kb
    if info.plus_memory:
        total += memlimit_kb
    total = min(total, host_total_kb)
    return info.used_kb if info.swappiness == 0 else total
