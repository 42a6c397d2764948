"""Parsers of the host's own /proc and /sys files (pure: text in, values out)."""

from __future__ import annotations

import os

from lxcfs_py.fsread import parse_cpu_list, read_text

CLK_TCK = os.sysconf("SC_CLK_TCK")


def meminfo_values(text: str) -> dict[str, int]:
    """'MemTotal:  2048 kB' lines -> {'MemTotal': 2048}."""
    values = {}
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[label] = int(fields[0])
    return values


def starttime_ticks(stat_text: str) -> int:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot).

    The command name (field 2) may hold spaces and parentheses, so count
    from the last ')'.
    """
    after_comm = stat_text.rpartition(")")[2].split()
    return int(after_comm[19])


def uptime_seconds(uptime_text: str) -> float:
    return float(uptime_text.split()[0])


def online_cpus(sys_root: str) -> list[int]:
    try:
        return parse_cpu_list(read_text(f"{sys_root}/devices/system/cpu/online"))
    except (OSError, ValueError):
        return list(range(os.cpu_count() or 1))
