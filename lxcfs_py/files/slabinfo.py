"""/proc/slabinfo: the cgroup's own slab caches where the kernel keeps them (v1)."""

from lxcfs_py.context import Request
from lxcfs_py.fsread import read_bytes


def render(req: Request) -> bytes:
    own = req.cgroup.slabinfo() if req.cgroup is not None else None
    # An empty memory.kmem.slabinfo (v1 on kernels >= 5.9, where the kernel no
    # longer fills it) makes LXCFS's fdopen_cached() fail, so it falls back
    # to the host's file; so do we.
    return own.encode() if own else read_bytes(req.proc("slabinfo"))
