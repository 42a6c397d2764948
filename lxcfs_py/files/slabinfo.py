"""/proc/slabinfo: the cgroup's own slab caches where the kernel keeps them (v1)."""

from lxcfs_py.context import Request
from lxcfs_py.fsread import read_bytes


def render(req: Request) -> bytes:
    own = req.cgroup.slabinfo() if req.cgroup is not None else None
    return own.encode() if own is not None else read_bytes(req.proc("slabinfo"))
