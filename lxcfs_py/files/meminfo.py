"""/proc/meminfo: the container's memory limit as MemTotal, its usage and page cache."""

from __future__ import annotations

from dataclasses import dataclass

from lxcfs_py.context import Request
from lxcfs_py.files.swap import V1_UNLIMITED, SwapInfo, memory_cgroup_gone, shown_total, swap_info
from lxcfs_py.fsread import read_bytes
from lxcfs_py.host import meminfo_value


@dataclass(frozen=True)
class MemInputs:
    limit: int | None  # bytes; None: no limit
    usage: int  # bytes
    stat: dict[str, int]  # normalised memory.stat (bytes)
    swap: SwapInfo | None  # None: swap not shown


def collect(req: Request) -> MemInputs:
    cg = req.cgroup
    limit = cg.memory_limit()
    usage = cg.memory_usage()
    swap_limit_base = V1_UNLIMITED if limit is None else limit
    return MemInputs(limit, usage, cg.memory_stat(), swap_info(req, swap_limit_base, usage))


_PREFIXES: dict[str, str] = {}


def line(label: str, kb: int) -> str:
    prefix = _PREFIXES.get(label)
    if prefix is None:
        prefix = _PREFIXES[label] = f"{label + ':':<16}"
    return f"{prefix}{kb:8d} kB\n"


def values(host: dict[str, int], inputs: MemInputs) -> dict[str, int]:
    """The lines LXCFS rewrites, in kB; every other line is the host's."""
    host_total = host.get("MemTotal", 0)
    limit = inputs.limit // 1024 if inputs.limit else host_total
    limit = min(limit, host_total)
    usage = inputs.usage // 1024
    stat = {key: value // 1024 for key, value in inputs.stat.items()}
    get = stat.get
    free = max(limit - usage, 0)
    out = {
        "MemTotal": limit,
        "MemFree": free,
        "MemAvailable": free + get("cache", 0),
        "Buffers": 0,
        "Cached": get("cache", 0),
        "SwapCached": 0,
        "Active": (inputs.stat.get("active_anon", 0) + inputs.stat.get("active_file", 0)) // 1024,
        "Inactive": (inputs.stat.get("inactive_anon", 0) + inputs.stat.get("inactive_file", 0)) // 1024,
        "Active(anon)": get("active_anon", 0),
        "Inactive(anon)": get("inactive_anon", 0),
        "Active(file)": get("active_file", 0),
        "Inactive(file)": get("inactive_file", 0),
        "Unevictable": get("unevictable", 0),
        "Dirty": get("dirty", 0),
        "Writeback": get("writeback", 0),
        "AnonPages": max(
            inputs.stat.get("active_anon", 0) + inputs.stat.get("inactive_anon", 0) - inputs.stat.get("shmem", 0), 0
        )
        // 1024,
        "Mapped": get("mapped_file", 0),
        "Shmem": get("shmem", 0),
        "Slab": 0,
        "SReclaimable": 0,
        "SUnreclaim": 0,
        "AnonHugePages": 0,
        "ShmemHugePages": 0,
        "ShmemPmdMapped": 0,
        "SwapTotal": 0,
        "SwapFree": 0,
    }
    if inputs.swap is not None:
        total = shown_total(inputs.swap, limit, host.get("SwapTotal", 0))
        out["SwapTotal"] = total
        out["SwapFree"] = max(total - inputs.swap.used_kb, 0)
    return out


def render_text(host_text: str, inputs: MemInputs) -> str:
    # only these two host values are needed; parsing every line cost more than the rest
    host = {label: meminfo_value(host_text, label) for label in ("MemTotal", "SwapTotal")}
    replaced = values(host, inputs)
    out = []
    for host_line in host_text.splitlines(keepends=True):
        label = host_line.partition(":")[0]
        out.append(line(label, replaced[label]) if label in replaced else host_line)
    return "".join(out)


def render(req: Request) -> bytes:
    host = read_bytes(req.proc("meminfo"))
    if req.cgroup is None:
        return host
    try:
        inputs = collect(req)
    except OSError:
        if memory_cgroup_gone(req):
            raise
        return host  # e.g. the memory controller is off for this cgroup: LXCFS shows the host's
    return render_text(host.decode(), inputs).encode()
