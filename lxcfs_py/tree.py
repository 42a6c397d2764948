"""Paths of the mount -> what they are, without any FUSE in sight."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from lxcfs_py.context import Request, Roots
from lxcfs_py.registry import FILES, PASSTHROUGH, Passthrough, VirtualFile, directories


@dataclass(frozen=True)
class Node:
    kind: str  # "dir", "file" or "link"
    virtual: VirtualFile | None = None
    host_path: str | None = None  # passthrough entries: the host file they mirror
    host_stat: os.stat_result | None = None  # ... and its lstat, taken to find the kind
    per_caller: bool = False  # whether callers may disagree on its existence


class Tree:
    def __init__(self, roots: Roots):
        self.roots = roots
        self.dirs = directories()
        self._children: dict[str, set[str]] = {d: set() for d in self.dirs}
        for path in [*FILES, *self.dirs]:
            if path:
                parent, _, name = path.rpartition("/")
                self._children[parent].add(name)
        # the nodes that never change, built once: every open asks for one
        self._fixed = {**{d: Node("dir") for d in self.dirs}, **{p: Node("file", virtual=v) for p, v in FILES.items()}}

    def _passthrough(self, path: str) -> tuple[str, Passthrough, str] | None:
        for prefix, entry in PASSTHROUGH.items():
            if path.startswith(prefix + "/"):
                return prefix, entry, path[len(prefix) + 1 :]
        return None

    def node(self, path: str) -> Node | None:
        fixed = self._fixed.get(path)
        if fixed is not None:
            return fixed
        found = self._passthrough(path)
        if found is None:
            return None
        _, entry, rel = found
        host = f"{self.roots.sys}/{entry.host_dir}/{rel}"
        try:
            st = os.lstat(host)
        except OSError:
            return None
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
        return Node(kind, host_path=host, host_stat=st, per_caller="/" not in rel)

    def visible(self, path: str, req: Request) -> bool:
        """Whether this caller may see `path` (only passthrough tops are filtered)."""
        found = self._passthrough(path)
        if found is None or "/" in found[2]:
            return True
        return found[1].visible(req, found[2])

    def listdir(self, path: str, req: Request) -> list[str]:
        names = set(self._children.get(path, ()))
        if path in PASSTHROUGH:
            entry = PASSTHROUGH[path]
            host = os.listdir(f"{self.roots.sys}/{entry.host_dir}")
            names.update(n for n in host if entry.visible(req, n))
        else:
            found = self._passthrough(path)
            if found is not None:
                names.update(os.listdir(f"{self.roots.sys}/{found[1].host_dir}/{found[2]}"))
        return sorted(names)

    def all_paths(self):
        """Every path of the tree, the host directories mirrored included."""
        yield from self.dirs
        yield from FILES
        for prefix, entry in PASSTHROUGH.items():
            host_root = f"{self.roots.sys}/{entry.host_dir}"
            for directory, subdirs, files in os.walk(host_root):
                rel = os.path.relpath(directory, host_root)
                base = prefix if rel == "." else f"{prefix}/{rel}"
                for name in subdirs + files:
                    yield f"{base}/{name}"

    def needs_caller(self, path: str) -> bool:
        """Listing or filtering this directory depends on who asks."""
        return path in PASSTHROUGH
