"""/proc/uptime: the age of the container's init, and its idle time."""

from __future__ import annotations

from lxcfs_py.context import Request
from lxcfs_py.fsread import read_bytes, read_text
from lxcfs_py.host import CLK_TCK, starttime_ticks, uptime_seconds


def render_text(host_uptime: float, init_start_ticks: int, busy_ns: int | None, hz: int = CLK_TCK) -> str:
    age = max(host_uptime - init_start_ticks / hz, 0.0)
    busy = (busy_ns or 0) / 1e9
    idle = age - busy if age >= busy else age
    return f"{age:.2f} {idle:.2f}\n"


def init_start_ticks(req: Request) -> int:
    """When the container's init started, in clock ticks since the host booted."""
    return starttime_ticks(read_text(req.proc(str(req.init_pid), "stat")))


def render(req: Request) -> bytes:
    host = read_bytes(req.proc("uptime"))
    if req.cgroup is None:
        return host
    return render_text(uptime_seconds(host.decode()), init_start_ticks(req), req.cgroup.cpu_usage_total()).encode()
