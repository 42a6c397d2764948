"""/sys/devices/system/cpu: online, possible and present list the container's CPUs,
and only its cpuN directories are visible, so lscpu, glibc and nproc agree."""

from __future__ import annotations

import re

from lxcfs_py.context import Request
from lxcfs_py.files import cpus
from lxcfs_py.fsread import format_cpu_list, read_bytes

CPU_DIR = re.compile(r"cpu(\d+)")


def render_list(req: Request, name: str) -> bytes:
    if req.cgroup is None:
        return read_bytes(f"{req.roots.sys}/devices/system/cpu/{name}")
    limit = cpus.max_cpus(req)
    # --enable-cfs: LXCFS numbers the quota's CPUs from 0
    shown = range(limit) if limit else cpus.cpuset(req)
    return (format_cpu_list(shown) + "\n").encode()


def render_online(req: Request) -> bytes:
    return render_list(req, "online")


def render_possible(req: Request) -> bytes:
    return render_list(req, "possible")


def render_present(req: Request) -> bytes:
    return render_list(req, "present")


def entry_visible(req: Request, name: str) -> bool:
    match = CPU_DIR.fullmatch(name)
    if match is None or req.cgroup is None:
        return True
    return int(match.group(1)) in cpus.visible(req)
