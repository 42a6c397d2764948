"""The virtual tree: the one table that lists every path the daemon serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lxcfs_py.context import Request
from lxcfs_py.files import cpu_sysfs, cpuinfo, diskstats, loadavg, meminfo, slabinfo, stat, swaps, uptime

Render = Callable[[Request], bytes]


@dataclass(frozen=True)
class VirtualFile:
    render: Render
    mode: int = 0o444  # the host file's (the mount has default_permissions: the kernel enforces it)


@dataclass(frozen=True)
class Passthrough:
    """A host directory mirrored read-only, with per-caller name filtering.

    `host_dir` is relative to the sys root; `visible(req, name)` hides
    entries of the top directory (e.g. cpuN the container may not use).
    """

    host_dir: str
    visible: Callable[[Request, str], bool]


FILES: dict[str, VirtualFile] = {
    "proc/cpuinfo": VirtualFile(cpuinfo.render),
    "proc/diskstats": VirtualFile(diskstats.render),
    "proc/loadavg": VirtualFile(loadavg.render),
    "proc/meminfo": VirtualFile(meminfo.render),
    "proc/stat": VirtualFile(stat.render),
    "proc/swaps": VirtualFile(swaps.render),
    "proc/uptime": VirtualFile(uptime.render),
    "proc/slabinfo": VirtualFile(slabinfo.render, 0o400),  # the host's slab caches: root only
    "sys/devices/system/cpu/online": VirtualFile(cpu_sysfs.render_online),
    "sys/devices/system/cpu/possible": VirtualFile(cpu_sysfs.render_possible),
    "sys/devices/system/cpu/present": VirtualFile(cpu_sysfs.render_present),
}

PASSTHROUGH: dict[str, Passthrough] = {
    "sys/devices/system/cpu": Passthrough("devices/system/cpu", cpu_sysfs.entry_visible),
}


def directories() -> set[str]:
    """Every directory implied by the table ('' is the mount root)."""
    dirs = {""}
    for path in [*FILES, *PASSTHROUGH]:
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return dirs | set(PASSTHROUGH)
