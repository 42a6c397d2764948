"""Decide v1 or v2 once at start, and build Cgroup objects for callers."""

from __future__ import annotations

import os

from lxcfs_py.cgroups.base import Cgroup
from lxcfs_py.cgroups.v1 import CgroupV1
from lxcfs_py.cgroups.v2 import CgroupV2

V1_MARKER = "memory/memory.limit_in_bytes"


def detect_version(root: str) -> int:
    """1 when the memory controller has a v1 hierarchy (legacy or hybrid), else 2."""
    if os.path.exists(f"{root}/{V1_MARKER}"):
        return 1
    if os.path.exists(f"{root}/cgroup.controllers"):
        return 2
    raise RuntimeError(f"no cgroup v1 memory hierarchy or cgroup v2 mount found under {root}")


def prune_init_scope(path: str) -> str:
    """systemd in a container moves its own init into init.scope; use the container's cgroup."""
    if path.endswith("/init.scope"):
        return path[: -len("/init.scope")] or "/"
    return path


class CgroupFactory:
    def __init__(self, root: str):
        self.root = root.rstrip("/") or "/"
        self.version = detect_version(self.root)

    def version_label(self) -> str:
        return f"v{self.version}"

    def for_paths(self, paths: dict[str, str]) -> Cgroup:
        pruned = {controller: prune_init_scope(path) for controller, path in paths.items()}
        if self.version == 1:
            return CgroupV1(self.root, pruned)
        return CgroupV2(self.root, pruned)
