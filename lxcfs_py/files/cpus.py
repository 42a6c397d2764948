"""Which CPUs a container may use, shared by cpuinfo, stat and the sysfs cpu directory."""

from __future__ import annotations

import math

from lxcfs_py.context import Request
from lxcfs_py.host import online_cpus


def cpuset(req: Request) -> list[int]:
    """The container's CPUs (host numbering); the host's online CPUs if unknown."""
    if "cpuset" not in req.memo:
        own = req.cgroup.cpuset() if req.cgroup is not None else None
        req.memo["cpuset"] = own if own else _online(req)
    return req.memo["cpuset"]


def _online(req: Request) -> list[int]:
    """The host's online CPUs, read once per request."""
    if "online" not in req.memo:
        req.memo["online"] = online_cpus(req.roots.sys)
    return req.memo["online"]


def _cfs_quota(req: Request) -> tuple[int | None, int] | None:
    """The cgroup's (quota, period), read once per request; None when unreadable."""
    if "cfs_quota" not in req.memo:
        try:
            req.memo["cfs_quota"] = req.cgroup.cfs_quota()
        except (OSError, ValueError):
            req.memo["cfs_quota"] = None
    return req.memo["cfs_quota"]


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
    found = _cfs_quota(req)
    return 0 if found is None else quota_cpus(*found, len(cpuset(req)), len(_online(req)))


def exact_cpus(req: Request) -> float:
    """The quota as a fraction of CPUs (0.0: no quota)."""
    found = _cfs_quota(req)
    if found is None or found[0] is None or found[1] <= 0:
        return 0.0
    quota, period = found
    return min(quota / period, float(len(_online(req))))


def visible(req: Request) -> list[int]:
    """The CPUs shown to the container: its cpuset, cut to the quota with --enable-cfs."""
    cpus = cpuset(req)
    limit = max_cpus(req)
    return cpus[:limit] if limit else cpus
