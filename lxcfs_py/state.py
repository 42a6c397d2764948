"""The daemon's restart state, in one owner: what a successor process takes over.

Open files and directory listings (numbered with this process's epoch), the
inode -> path table, the --enable-cfs CPU views and the loadavg samples.
export() writes them for a planned handover; load() reads them back and
accepts any older or newer version: a field it cannot use costs one log
line, never the handover.

It also charges every open handle to its caller's container, so that no
container can make the daemon hold unbounded memory for it.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import json
import logging
import secrets
from typing import Callable

from lxcfs_py.context import Request
from lxcfs_py.files.cpuview import CpuView, Usage
from lxcfs_py.fsread import read_bytes
from lxcfs_py.sampler import Load

log = logging.getLogger("lxcfs_py")

STATE_VERSION = 1
ROOT_INODE = 1  # pyfuse3.ROOT_INODE
COUNTER_BITS = 32  # a handle number is epoch << 32 | counter
COUNTER_MASK = (1 << COUNTER_BITS) - 1
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


class DaemonState:
    def __init__(self, epoch: int | None = None, max_handles: int = MAX_HANDLES,
                 max_bytes: int = MAX_SNAPSHOT_BYTES):
        # a fresh start picks a new epoch, so handle numbers a crashed process
        # gave out (still held by readers of a connection adopted from systemd's
        # fd store) are unknown here: EBADF, never another handle's data
        self.epoch = epoch if epoch is not None else secrets.randbits(COUNTER_BITS) or 1
        self.counter = 0
        self.max_handles = max_handles
        self.max_bytes = max_bytes
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, list[tuple[str, int]]] = {}  # fh -> [(path, 0), (name, inode)...]
        self.dir_owners: dict[int, Owner] = {}
        self.paths: dict[int, str] = {ROOT_INODE: ""}
        self.cpu_views: dict[str, CpuView] = {}
        self.floors: dict[str, dict[str, list[int]]] = {}  # per container, the highest counters shown
        self.loads: dict[str, Load] = {}
        self.held_handles: dict[Owner, int] = {}
        self.held_bytes: dict[Owner, int] = {}
        self.virtualize = True  # LXCFS's SIGUSR2 switch (a restart starts virtualized)

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
            raise OverBudget(errno.EMFILE, f"{describe(owner)} holds {self.max_handles} open files of this mount")

    def _charge(self, owner: Owner, handles: int, size: int, check: bool = True) -> None:
        held = self.held_bytes.get(owner, 0) + size
        if check and size > 0 and held > self.max_bytes:
            raise OverBudget(errno.ENOMEM, f"{describe(owner)} holds {self.max_bytes >> 20} MiB of open files' "
                                           f"snapshots")
        self.held_bytes[owner] = held
        count = self.held_handles.get(owner, 0) + handles
        if count or held:
            self.held_handles[owner] = count
        else:  # nothing held: forget the container
            del self.held_handles[owner], self.held_bytes[owner]

    def add_file(self, handle: Handle, content: bytes) -> int:
        self.admit(handle.owner)
        self._charge(handle.owner, 1, len(content))
        handle.content = content
        fh = self._new_fh()
        self.handles[fh] = handle
        return fh

    def refresh(self, handle: Handle, content: bytes) -> None:
        """Replace a handle's snapshot (a rewinding reader)."""
        self._charge(handle.owner, 0, len(content) - len(handle.content))
        handle.content = content

    def release_file(self, fh: int) -> bool:
        handle = self.handles.pop(fh, None)
        if handle is None:
            return False
        self._charge(handle.owner, -1, -len(handle.content))
        return True

    def add_dir(self, entries: list[tuple[str, int]], owner: Owner) -> int:
        self.admit(owner)
        self._charge(owner, 1, 0)
        fh = self._new_fh()
        self.dir_handles[fh] = entries
        self.dir_owners[fh] = owner
        return fh

    def release_dir(self, fh: int) -> bool:
        if self.dir_handles.pop(fh, None) is None:
            return False
        self._charge(self.dir_owners.pop(fh, None), -1, 0)
        return True

    # -- handover -------------------------------------------------------------------
    def export(self) -> bytes:
        handles = []
        for fh, handle in self.handles.items():
            req = handle.req
            handles.append({
                "fh": fh, "path": handle.path, "read_once": handle.read_once,
                "content": base64.b64encode(handle.content).decode(),
                "init_pid": req.init_pid if req else None,
                "cgroup": req.cgroup.paths if req and req.cgroup is not None else None,
                "owner": handle.owner,
            })
        state = {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "next_fh": self.epoch << COUNTER_BITS | (self.counter + 1),
            "paths": {str(inode): path for inode, path in self.paths.items()},
            "handles": handles,
            "dirs": {str(fh): entries for fh, entries in self.dir_handles.items()},
            "dir_owners": {str(fh): owner for fh, owner in self.dir_owners.items()},
            # list(): render threads (offload.py) may add a container meanwhile
            "cpu_views": {key: dataclasses.asdict(view) for key, view in list(self.cpu_views.items())},
            "floors": dict(list(self.floors.items())),
            "loads": {d: dataclasses.asdict(load) for d, load in list(self.loads.items())},
        }
        return json.dumps(state).encode()

    def load(self, data: bytes, revive: Callable[[dict], Handle | None]) -> None:
        """Take over what export() saved; `revive` turns a saved open file back into a Handle.

        Never raises: each field this daemon cannot use is logged once and left out.
        """
        try:
            saved = json.loads(data)
            if not isinstance(saved, dict):
                raise ValueError(f"a JSON {type(saved).__name__}, not an object")
        except ValueError as err:
            log.warning("handover state unreadable (%s): open files start afresh", err)
            return
        version = saved.pop("version", None)
        if version != STATE_VERSION:
            log.warning("handover state version %r (this daemon writes %d): taking the fields it knows",
                        version, STATE_VERSION)
        for name in saved.keys() - _FIELDS.keys():
            log.warning("handover state field %r unknown to this daemon: ignored", name)
        for name, (read, missing) in _FIELDS.items():
            if name not in saved:
                log.warning("handover state has no %r: %s", name, missing)
                continue
            try:
                read(self, saved[name], revive)
            except Exception as err:  # noqa: BLE001 - a bad field must not cost the handover
                log.warning("handover state field %r unusable (%s: %s): %s", name, type(err).__name__, err, missing)
        log.info("took over %d open files from the previous process", len(self.handles))

    def _read_epoch(self, value, revive) -> None:
        if not isinstance(value, int) or not 0 < value <= COUNTER_MASK:
            raise ValueError(f"not an epoch: {value!r}")
        self.epoch = value

    def _read_next_fh(self, value, revive) -> None:
        if value >> COUNTER_BITS == self.epoch:
            self.counter = max(self.counter, (value & COUNTER_MASK) - 1)

    def _read_paths(self, value, revive) -> None:
        self.paths.update({int(inode): str(path) for inode, path in value.items()})

    def _read_handles(self, value, revive) -> None:
        dropped, first_error = 0, None
        for saved in value:
            try:
                handle = revive(saved)
                if handle is None:
                    continue  # its path is gone
                handle.read_once = bool(saved.get("read_once"))
                owner = saved.get("owner", handle.owner)
                handle.owner = tuple(tuple(pair) for pair in owner) if owner is not None else None
                fh = int(saved["fh"])
                content = base64.b64decode(saved["content"])
            except Exception as err:  # noqa: BLE001 - drop this one file, keep the others
                dropped += 1
                first_error = first_error or f"{type(err).__name__}: {err}"
                continue
            self._adopt(fh, handle, content)
        if dropped:
            log.warning("handover state field 'handles': %d open files unreadable (%s): their readers get EBADF",
                        dropped, first_error)

    def _adopt(self, fh: int, handle: Handle, content: bytes) -> None:
        self._charge(handle.owner, 1, len(content), check=False)  # already held: counted, not refused
        handle.content = content
        self.handles[fh] = handle
        if fh >> COUNTER_BITS == self.epoch:
            self.counter = max(self.counter, fh & COUNTER_MASK)

    def _read_dirs(self, value, revive) -> None:
        for fh, entries in value.items():
            self.dir_handles[int(fh)] = [tuple(e) for e in entries]
            self.dir_owners.setdefault(int(fh), None)
            self._charge(None, 1, 0, check=False)

    def _read_dir_owners(self, value, revive) -> None:
        for fh, owner in value.items():
            if int(fh) in self.dir_handles:
                owner = tuple(tuple(pair) for pair in owner) if owner is not None else None
                self._charge(self.dir_owners[int(fh)], -1, 0)
                self._charge(owner, 1, 0, check=False)
                self.dir_owners[int(fh)] = owner

    def _read_cpu_views(self, value, revive) -> None:
        for key, view in value.items():
            self.cpu_views[key] = CpuView(last={int(c): Usage(**u) for c, u in view["last"].items()},
                                          view={int(c): Usage(**u) for c, u in view["view"].items()},
                                          last_idle_sum=view["last_idle_sum"])

    def _read_floors(self, value, revive) -> None:
        for key, lines in value.items():
            self.floors[str(key)] = {str(label): [int(v) for v in values] for label, values in lines.items()}

    def _read_loads(self, value, revive) -> None:
        self.loads.update({d: Load(**load) for d, load in value.items()})


# field -> (reader, what its absence costs); read in this order (the epoch first)
_FIELDS: dict[str, tuple[Callable, str]] = {
    "epoch": (DaemonState._read_epoch, "new handles are numbered in a new epoch"),
    "next_fh": (DaemonState._read_next_fh, "new files are numbered past the inherited ones"),
    "paths": (DaemonState._read_paths, "inode numbers are mapped from the tree"),
    "handles": (DaemonState._read_handles, "files opened before get EBADF"),
    "dirs": (DaemonState._read_dirs, "directory listings opened before get EBADF"),
    "dir_owners": (DaemonState._read_dir_owners, "inherited listings are charged to the host"),
    "cpu_views": (DaemonState._read_cpu_views, "--enable-cfs CPU counters start afresh"),
    "floors": (DaemonState._read_floors, "/proc/stat counters may show a tick less than before the restart"),
    "loads": (DaemonState._read_loads, "load averages start from 0"),
}
