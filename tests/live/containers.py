"""Run commands in real Docker containers with a mount's files bound over /proc."""

from __future__ import annotations

import subprocess

from lxcfs_py.bind_mounts import bind_mounts

IMAGE = "lxcfs-py/workload:bookworm"


def bind_flags(mountpoint: str | None) -> list[str]:
    if mountpoint is None:
        return []
    flags = []
    for source, target in bind_mounts(mountpoint):
        flags += ["-v", f"{source}:{target}:ro"]
    return flags


def docker_run(mountpoint: str | None, limits: list[str], script: str, timeout: float = 120) -> str:
    """Output of `bash -c script` in a fresh container; raises on failure."""
    command = ["docker", "run", "--rm", *limits, *bind_flags(mountpoint), IMAGE, "bash", "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
