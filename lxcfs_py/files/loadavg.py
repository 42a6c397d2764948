"""/proc/loadavg: the container's own load with -l, the host's otherwise."""

from lxcfs_py.context import Request
from lxcfs_py.fsread import read_bytes


def render(req: Request) -> bytes:
    directory = req.cgroup.pids_dir() if req.cgroup is not None and req.sampler is not None else None
    if directory is None:
        return read_bytes(req.proc("loadavg"))
    # Until the first sample LXCFS shows the container's init (host pid) as the last pid.
    return req.sampler.loadavg(directory, req.init_pid).encode()
