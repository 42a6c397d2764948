"""/proc/swaps: one virtual swap device sized by the container's swap limit."""

from __future__ import annotations

from lxcfs_py.context import Request
from lxcfs_py.files.swap import V1_UNLIMITED, SwapInfo, memory_cgroup_gone, shown_total, swap_info
from lxcfs_py.fsread import read_bytes, read_text
from lxcfs_py.host import meminfo_value

HEADER = "Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n"


def render_text(swap: SwapInfo | None, memlimit_kb: int, host_swap_total_kb: int) -> str:
    if swap is None:
        return HEADER
    total = shown_total(swap, memlimit_kb, host_swap_total_kb)
    if total <= 0:
        return HEADER
    return HEADER + f"none{' ' * 36}virtual\t\t{total}\t{swap.used_kb}\t0\n"


def render(req: Request) -> bytes:
    if req.cgroup is None:
        return read_bytes(req.proc("swaps"))
    cg = req.cgroup
    limit = cg.memory_limit()
    limit = V1_UNLIMITED if limit is None else limit
    try:
        usage = cg.memory_usage()
    except OSError:
        if memory_cgroup_gone(req):
            raise
        return b""  # LXCFS gives an empty file when the memory usage cannot be read
    swap = swap_info(req, limit, usage)
    host_swap = meminfo_value(read_text(req.proc("meminfo")), "SwapTotal")
    # LXCFS bounds the memory limit here by the host's swap only, not its RAM
    return render_text(swap, limit // 1024, host_swap).encode()
