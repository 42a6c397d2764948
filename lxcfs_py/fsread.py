"""Small, fast readers for /proc and cgroup files.

os.open/os.read skip the buffered-IO objects that open() builds; these
files are read on every FUSE request, so that matters.
"""

import os

_CHUNK = 65536


def read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # A short read is not EOF: seq_file /proc files (slabinfo, diskstats,
        # cpuinfo with many CPUs) return about one page per read().
        parts = []
        while data := os.read(fd, _CHUNK):
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8", "replace")


def read_int(path: str) -> int | None:
    """An integer file; None when it says 'max' (cgroup v2 for unlimited)."""
    text = read_text(path).split()
    if not text or text[0] == "max":
        return None
    return int(text[0])


def read_keyed(path: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat) -> dict; bad lines are skipped."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        start = int(lo)
        cpus.update(range(start, int(hi) + 1 if hi else start + 1))
    return sorted(cpus)


def format_cpu_list(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    ranges: list[str] = []
    cpus = sorted(set(cpus))
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        ranges.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(ranges)
