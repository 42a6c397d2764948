"""The virtual tree: the served files (lxcfs_py.served_files, the one list) with their handlers."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from lxcfs_py.context import Request
from lxcfs_py.served_files import PASSTHROUGH_DIRS, SERVED_FILES

Render = Callable[[Request], bytes]


@dataclass(frozen=True)
class VirtualFile:
    render: Render
    mode: int = 0o444  # the host file's (the mount has default_permissions: the kernel enforces it)


@dataclass(frozen=True)
class Passthrough:
    """A host directory mirrored read-only, with per-caller name filtering.

    `host_dir` is relative to the sys root; `visible(req, name)` hides
    entries of the top directory (e.g. cpuN the container may not use).
    """

    host_dir: str
    visible: Callable[[Request, str], bool]


def handler(module: str, function: str) -> Callable:
    """A function of a lxcfs_py.files module, named in the table."""
    return getattr(importlib.import_module(f"lxcfs_py.files.{module}"), function)


FILES: dict[str, VirtualFile] = {
    path: VirtualFile(handler(module, render), mode) for path, (module, render, mode) in SERVED_FILES.items()
}

PASSTHROUGH: dict[str, Passthrough] = {
    path: Passthrough(host_dir, handler(module, visible))
    for path, (host_dir, module, visible) in PASSTHROUGH_DIRS.items()
}


def directories() -> set[str]:
    """Every directory implied by the table ('' is the mount root)."""
    dirs = {""}
    for path in [*FILES, *PASSTHROUGH]:
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return dirs | set(PASSTHROUGH)
