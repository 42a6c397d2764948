"""Parsers of the host's own /proc and /sys files (pure: text in, values out)."""

from __future__ import annotations

import os

from lxcfs_py.fsread import parse_cpu_list, read_text

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def meminfo_value(text: str, label: str) -> int:
    """One 'Label:  N kB' value of /proc/meminfo text (0 if absent), without parsing the rest."""
    start = ("\n" + text).find(f"\n{label}:")  # where the label starts in `text`
    if start < 0:
        return 0
    end = text.find("\n", start)
    fields = text[start + len(label) + 1 : end if end >= 0 else None].split()
    return int(fields[0]) if fields and fields[0].isdigit() else 0
