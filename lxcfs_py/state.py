"""The daemon's restart state, in one owner: what a successor process takes over.

Open files and directory listings (numbered with this process's epoch), the
inode -> path table, the --enable-cfs CPU views, the /proc/stat floors and the
loadavg samples. export() and load() (state_format.py) hand them over.

It also charges every open handle to its caller's container, so that no
container can make the daemon hold unbounded memory for it.

DaemonState keeps all of it in this process; shared_state.SharedState keeps
it where several worker processes find it. Both offer the same methods: the
FUSE adapter uses those, never the stores' insides.
"""

from __future__ import annotations

import errno
import secrets

from lxcfs_py.context import Request
from lxcfs_py.files.counters import Floors
from lxcfs_py.files.cpuview import CpuViews
from lxcfs_py.fsread import read_bytes
from lxcfs_py.sampler import Load
from lxcfs_py.state_format import COUNTER_BITS, COUNTER_MASK, StateFormat, saved_file

ROOT_INODE = 1  # pyfuse3.ROOT_INODE
# Per container (and once more for all host callers together). 4096 handles
# keep thousands of concurrent readers working; the bytes bound what they pin:
# ~330 snapshots of a 25 KiB /proc/slabinfo, or 4096 of /proc/meminfo.
MAX_HANDLES = 4096
MAX_SNAPSHOT_BYTES = 8 << 20

# Whom a handle is charged to: the caller's cgroup paths, sorted; None is the host.
Owner = tuple[tuple[str, str], ...] | None


def owner_of(cgroup) -> Owner:
    return None if cgroup is None else tuple(sorted(cgroup.paths.items()))


def describe(owner: Owner) -> str:
    if owner is None:
        return "the host's callers"
    paths = dict(owner)
    return f"cgroup {paths.get('memory') or paths.get('') or next(iter(paths.values()), '?')}"


class OverBudget(OSError):
    """A container holds as much as the daemon keeps for one container."""


class Handle:
    """An open file: its content snapshot, whose it is, and how to make a fresh one."""

    __slots__ = ("content", "path", "render", "host_path", "req", "owner", "read_once")

    def __init__(self, path: str, render, host_path: str | None, req: Request | None, owner: Owner):
        self.content = b""
        self.path = path
        self.render = render  # a virtual file's render function, or None for a host file passed through
        self.host_path = host_path
        self.req = req  # whose view it renders (None: a host file passed through)
        self.owner = owner
        self.read_once = False

    def regenerate(self) -> bytes:
        if self.render is None:
            return read_bytes(self.host_path)
        req = self.req  # a fresh memo per render
        return self.render(Request(req.roots, req.opts, req.cgroup, req.init_pid, req.sampler, req.views,
                                   req.floors))


class DaemonState(StateFormat):
    def __init__(self, epoch: int | None = None, max_handles: int = MAX_HANDLES,
                 max_bytes: int = MAX_SNAPSHOT_BYTES):
        # a fresh start picks a new epoch, so handle numbers a crashed process
        # gave out (still held by readers of a connection adopted from systemd's
        # fd store) are unknown here: EBADF, never another handle's data
        self.epoch = epoch if epoch is not None else new_epoch()
        self.counter = 0
        self.max_handles = max_handles
        self.max_bytes = max_bytes
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, list[tuple[str, int]]] = {}  # fh -> [(path, 0), (name, inode)...]
        self.dir_owners: dict[int, Owner] = {}
        self.paths: dict[int, str] = {ROOT_INODE: ""}
        self.cpu_views = CpuViews()
        self.floors = Floors()  # per container, the highest counters shown
        self.loads: dict[str, Load] = {}
        self.held_handles: dict[Owner, int] = {}
        self.held_bytes: dict[Owner, int] = {}
        self.virtualize = True  # LXCFS's SIGUSR2 switch (a restart starts virtualized)

    def revive_with(self, revive) -> None:
        """How to rebuild a Handle from its saved form: only a store shared by processes needs it."""

    # -- handle numbers and the per-container budget ------------------------------
    def _new_fh(self) -> int:
        while True:
            self.counter = (self.counter + 1) & COUNTER_MASK
            fh = self.epoch << COUNTER_BITS | self.counter
            if self.counter and fh not in self.handles and fh not in self.dir_handles:
                return fh

    def admit(self, owner: Owner) -> None:
        """Refuse one more handle to a container that holds its maximum (before any rendering)."""
        if self.held_handles.get(owner, 0) >= self.max_handles:
            raise over_handles(owner, self.max_handles)

    def _charge(self, owner: Owner, handles: int, size: int, check: bool = True) -> None:
        held = self.held_bytes.get(owner, 0) + size
        if check and size > 0 and held > self.max_bytes:
            raise over_bytes(owner, self.max_bytes)
        self.held_bytes[owner] = held
        count = self.held_handles.get(owner, 0) + handles
        if count or held:
            self.held_handles[owner] = count
        else:  # nothing held: forget the container
            del self.held_handles[owner], self.held_bytes[owner]

    def held(self) -> dict[Owner, tuple[int, int]]:
        """Per container: (handles, snapshot bytes) it holds."""
        return {owner: (count, self.held_bytes[owner]) for owner, count in self.held_handles.items()}

    # -- open files -------------------------------------------------------------------
    def add_file(self, handle: Handle, content: bytes) -> int:
        self.admit(handle.owner)
        self._charge(handle.owner, 1, len(content))
        handle.content = content
        fh = self._new_fh()
        self.handles[fh] = handle
        return fh

    def file(self, fh: int) -> Handle | None:
        return self.handles.get(fh)

    def reading(self, fh: int) -> tuple[Handle | None, bool]:
        """file() and mark_read() in one: (the handle, whether it was read before: a read at 0 is a rewind)."""
        handle = self.handles.get(fh)
        if handle is None:
            return None, False
        read_before, handle.read_once = handle.read_once, True
        return handle, read_before

    def mark_read(self, fh: int) -> None:
        """The file's reader has read it: its next read at offset 0 is a rewind."""
        handle = self.handles.get(fh)
        if handle is not None:
            handle.read_once = True

    def refresh(self, fh: int, handle: Handle, content: bytes) -> None:
        """Replace a handle's snapshot (a rewinding reader)."""
        self._charge(handle.owner, 0, len(content) - len(handle.content))
        handle.content = content

    def release_file(self, fh: int) -> bool:
        handle = self.handles.pop(fh, None)
        if handle is None:
            return False
        self._charge(handle.owner, -1, -len(handle.content))
        return True

    # -- directory listings -----------------------------------------------------------
    def add_dir(self, entries: list[tuple[str, int]], owner: Owner) -> int:
        self.admit(owner)
        self._charge(owner, 1, 0)
        fh = self._new_fh()
        self.dir_handles[fh] = entries
        self.dir_owners[fh] = owner
        return fh

    def dir_entries(self, fh: int) -> list[tuple[str, int]] | None:
        return self.dir_handles.get(fh)

    def release_dir(self, fh: int) -> bool:
        if self.dir_handles.pop(fh, None) is None:
            return False
        self._charge(self.dir_owners.pop(fh, None), -1, 0)
        return True

    # -- what the handover format (state_format.py) reads and writes -------------------
    def saved_files(self) -> list[dict]:
        saved = []
        for fh, handle in list(self.handles.items()):
            req = handle.req
            saved.append(saved_file(fh, handle.path, handle.read_once, handle.content, req.init_pid if req else None,
                                    req.cgroup.paths if req and req.cgroup is not None else None, handle.owner))
        return saved

    def saved_dirs(self) -> list[tuple[int, list, Owner]]:
        return [(fh, entries, self.dir_owners.get(fh)) for fh, entries in list(self.dir_handles.items())]

    def open_files(self) -> int:
        return len(self.handles)

    def adopt_file(self, fh: int, handle: Handle, content: bytes, read_once: bool) -> None:
        self._charge(handle.owner, 1, len(content), check=False)  # already held: counted, not refused
        handle.content = content
        handle.read_once = read_once
        self.handles[fh] = handle

    def adopt_dir(self, fh: int, entries: list[tuple[str, int]]) -> None:
        self.dir_handles[fh] = entries
        self.dir_owners.setdefault(fh, None)
        self._charge(None, 1, 0, check=False)

    def set_dir_owner(self, fh: int, owner: Owner) -> None:
        if fh in self.dir_handles:
            self._charge(self.dir_owners[fh], -1, 0)
            self._charge(owner, 1, 0, check=False)
            self.dir_owners[fh] = owner


def new_epoch() -> int:
    return secrets.randbits(COUNTER_BITS) or 1


def over_handles(owner: Owner, limit: int) -> OverBudget:
    return OverBudget(errno.EMFILE, f"{describe(owner)} holds {limit} open files of this mount")


def over_bytes(owner: Owner, limit: int) -> OverBudget:
    return OverBudget(errno.ENOMEM, f"{describe(owner)} holds {limit >> 20} MiB of open files' snapshots")
