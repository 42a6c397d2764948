"""What a file handler gets: where to read from, the daemon's flags, and who asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxcfs_py.cgroups.base import Cgroup
    from lxcfs_py.files.counters import Floors
    from lxcfs_py.files.cpuview import CpuViews
    from lxcfs_py.sampler import LoadSampler


@dataclass(frozen=True)
class Roots:
    """Filesystem roots the daemon reads; tests point them at fixture trees."""

    proc: str = "/proc"
    cgroup: str = "/sys/fs/cgroup"
    sys: str = "/sys"


@dataclass(frozen=True)
class Options:
    """Daemon flags that change what files show (lxcfs-compatible)."""

    swap: bool = True  # -u/--disable-swap turns it off
    cfs: bool = False  # --enable-cfs: CPU count from the CFS quota
    loadavg: bool = False  # -l/--enable-loadavg


@dataclass
class Request:
    """One read of one virtual file by one caller."""

    roots: Roots
    opts: Options
    cgroup: Cgroup | None  # None: the caller is on the host and sees host values
    init_pid: int  # pid (in the daemon's namespace) of the caller's pid-namespace init
    sampler: LoadSampler | None = field(default=None)
    # the daemon's state (in this process, or shared by its workers: shared_state.py)
    views: CpuViews | None = None  # --enable-cfs counters kept between reads
    floors: Floors | None = None  # the highest counters shown (files/counters.py)
    memo: dict = field(default_factory=dict)  # values several handlers need once per request

    def proc(self, *parts: str) -> str:
        return "/".join((self.roots.proc, *parts))
