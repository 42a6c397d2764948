"""/proc/cpuinfo: only the container's CPUs, renumbered from 0."""

from __future__ import annotations

import re

from lxcfs_py.context import Request
from lxcfs_py.files import cpus
from lxcfs_py.fsread import read_bytes

PROCESSOR = re.compile(r"processor\s*:\s*(\d+)")
S390_PROCESSOR = re.compile(r"processor (\d+):(.*)", re.S)


def render_text(host_text: str, allowed: set[int], limit: int = 0) -> str:
    """Keep the blocks of `allowed` CPUs; stop after `limit` of them (0: no limit)."""
    if host_text.startswith("vendor_id") and "IBM/S390" in host_text.partition("\n")[0]:
        return _render_s390(host_text, allowed, limit)
    out: list[str] = []
    shown = 0
    printing = False
    for line in host_text.splitlines(keepends=True):
        match = PROCESSOR.match(line)
        if match:
            if limit and shown == limit:
                break
            printing = int(match.group(1)) in allowed
            if printing:
                out.append(f"processor\t: {shown}\n")
                shown += 1
            continue
        if printing:
            out.append(line)
    return "".join(out)


def _render_s390(host_text: str, allowed: set[int], limit: int) -> str:
    """s390x lists CPUs as 'processor N: ...' lines after a shared header."""
    body: list[str] = []
    shown = 0
    for line in host_text.splitlines(keepends=True)[1:]:
        if line.startswith("# processors"):
            continue
        match = S390_PROCESSOR.match(line)
        if match:
            if int(match.group(1)) in allowed and (not limit or shown < limit):
                body.append(f"processor {shown}:{match.group(2)}")
                shown += 1
            continue
        body.append(line)
    return f"vendor_id       : IBM/S390\n# processors    : {shown}\n" + "".join(body)


def render(req: Request) -> bytes:
    host = read_bytes(req.proc("cpuinfo"))
    if req.cgroup is None:
        return host
    return render_text(host.decode(), set(cpus.cpuset(req)), cpus.max_cpus(req)).encode()
