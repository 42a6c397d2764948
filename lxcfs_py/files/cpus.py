"""Which CPUs a container may use, shared by cpuinfo, stat and the sysfs cpu directory."""

from __future__ import annotations

import math

from lxcfs_py.context import Request
from lxcfs_py.host import online_cpus


def cpuset(req: Request) -> list[int]:
    """The container's CPUs (host numbering); the host's online CPUs if unknown."""
    if "cpuset" not in req.memo:
        own = req.cgroup.cpuset() if req.cgroup is not None else None
        req.memo["cpuset"] = own if own else online_cpus(req.roots.sys)
    return req.memo["cpuset"]


def quota_cpus(quota: int | None, period: int, nr_cpuset: int, nr_host: int) -> int:
    """CPUs a CFS quota is worth, rounded up and bounded (0: no quota)."""
    if quota is None or period <= 0:
        return nr_cpuset
    count = min(math.ceil(quota / period), nr_host)
    return nr_cpuset if 0 < nr_cpuset < count else count


def max_cpus(req: Request) -> int:
    """With --enable-cfs, how many CPUs the container is shown (0: no view)."""
    if not req.opts.cfs or req.cgroup is None:
        return 0
    if "max_cpus" not in req.memo:
        try:
            quota, period = req.cgroup.cfs_quota()
        except (OSError, ValueError):
            req.memo["max_cpus"] = 0
        else:
            req.memo["max_cpus"] = quota_cpus(quota, period, len(cpuset(req)), len(online_cpus(req.roots.sys)))
    return req.memo["max_cpus"]


def exact_cpus(req: Request) -> float:
    """The quota as a fraction of CPUs (0.0: no quota)."""
    try:
        quota, period = req.cgroup.cfs_quota()
    except (OSError, ValueError):
        return 0.0
    if quota is None or period <= 0:
        return 0.0
    return min(quota / period, float(len(online_cpus(req.roots.sys))))


def visible(req: Request) -> list[int]:
    """The CPUs shown to the container: its cpuset, cut to the quota with --enable-cfs."""
    cpus = cpuset(req)
    limit = max_cpus(req)
    return cpus[:limit] if limit else cpus
