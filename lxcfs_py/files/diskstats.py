"""/proc/diskstats: the container's own I/O per device where its cgroup counts it."""

from __future__ import annotations

from lxcfs_py.cgroups.base import IoStat
from lxcfs_py.context import Request
from lxcfs_py.fsread import read_bytes


def render_text(host_text: str, stats: dict[tuple[int, int], IoStat]) -> str:
    """One kernel-format line per host device the container did I/O on."""
    out = []
    for line in host_text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            continue
        io = stats.get((int(fields[0]), int(fields[1])))
        if io is None or not any(vars(io).values()):
            continue
        values = [io.reads, io.reads_merged, io.read_sectors, io.read_ms, io.writes, io.writes_merged,
                  io.write_sectors, io.write_ms, 0, io.io_ms, io.weighted_ms, 0, 0, 0, 0, 0, 0]
        out.append(f"{int(fields[0]):4d} {int(fields[1]):7d} {fields[2]} " + " ".join(map(str, values)) + "\n")
    return "".join(out)


def render(req: Request) -> bytes:
    host = read_bytes(req.proc("diskstats"))
    stats = req.cgroup.io_stats() if req.cgroup is not None else None
    if stats is None:
        return host  # no per-cgroup counters (cgroup v1 on kernels >= 5.0): LXCFS shows the host's too
    return render_text(host.decode(), stats).encode()
