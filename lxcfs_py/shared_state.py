"""The daemon's state where all its worker processes find it (shm.py), as a drop-in for DaemonState.

Each worker serves its own clone of the FUSE connection and the kernel hands
any request to any worker: a file opened at one may be read, rewound or
released at another. So open files (their snapshot and what rebuilds their
Handle), listings, the per-container budgets, the CPU views, the /proc/stat
floors and the loadavg samples live in a shared arena. Handles (a render
function and its Request) cannot be shared: each process rebuilds one from
the stored metadata with `revive` and keeps it by handle number.

The main process: `SharedState.create()`, then passes `.fd` to its workers
(inheritable); a worker: `SharedState.attach(fd)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import struct
from collections.abc import Iterator, MutableMapping
from typing import Callable

from lxcfs_py.files.counters import MAX_CONTAINERS, raised
from lxcfs_py.files.cpuview import MAX_VIEWS, CpuView, Usage
from lxcfs_py.sampler import MAX_TRACKED, Load
from lxcfs_py.shm import DEFAULT_SIZE, Arena, Records
from lxcfs_py.state import (MAX_HANDLES, MAX_SNAPSHOT_BYTES, ROOT_INODE, Handle, Owner, new_epoch, over_bytes,
                            over_handles)
from lxcfs_py.state_format import COUNTER_BITS, COUNTER_MASK, StateFormat, owner_from_json, saved_file

MAX_OPEN = 1 << 18  # open files of all containers together (each container: MAX_HANDLES)
MAX_LISTINGS = 1 << 16
MAX_OWNERS = 1 << 16
MAX_CACHED = 8192  # Handles rebuilt in this process
EPOCH, COUNTER, LIMIT_HANDLES, LIMIT_BYTES, WRAPPED = range(5)  # the arena's words
FILE = struct.Struct("<BII")  # read once, owner length, metadata length; then owner, metadata, content
HELD = struct.Struct("<qq")  # handles, bytes
LOAD = struct.Struct("<6q")


def fh_key(fh: int) -> bytes:
    return fh.to_bytes(8, "little")


def owner_key(owner: Owner) -> bytes:
    return json.dumps(owner).encode()


def encode_file(read_once: bool, owner: bytes, meta: bytes, content: bytes) -> bytes:
    return FILE.pack(read_once, len(owner), len(meta)) + owner + meta + content


def decode_file(value: bytes) -> tuple[bool, bytes, bytes, bytes]:
    """(read once, owner key, metadata, content)"""
    read_once, owner_len, meta_len = FILE.unpack_from(value)
    meta_at = FILE.size + owner_len
    return bool(read_once), value[FILE.size:meta_at], value[meta_at:meta_at + meta_len], value[meta_at + meta_len:]


def handle_meta(handle: Handle) -> bytes:
    """What `revive` needs to rebuild the handle in another process (the export's fields)."""
    req = handle.req
    return json.dumps({"path": handle.path, "init_pid": req.init_pid if req else None,
                       "cgroup": req.cgroup.paths if req and req.cgroup is not None else None}).encode()


class SharedRecords(MutableMapping):
    """A shared table (shm.Records) as a mapping of str keys; values are copies: write a change back."""

    def __init__(self, arena: Arena, name: str, capacity: int, encode: Callable, decode: Callable):
        self.arena = arena
        self.table: Records = arena.records(name, capacity)
        self.encode = encode
        self.decode = decode

    def __getitem__(self, key: str):
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return self.decode(value)

    def __setitem__(self, key: str, value) -> None:
        self.table.put(key.encode(), self.encode(value))

    def __delitem__(self, key: str) -> None:
        if not self.table.delete(key.encode()):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self):
        return [(key.decode(), self.decode(value)) for key, value in self.table.items()]

    def setdefault(self, key: str, default=None):
        with self.arena.locked():
            value = self.get(key)
            if value is None:
                self[key] = value = default
            return value


def encode_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode_view(view: CpuView) -> bytes:
    return encode_json(dataclasses.asdict(view))


def decode_view(value: bytes) -> CpuView:
    view = json.loads(value)
    return CpuView(last={int(c): Usage(**u) for c, u in view["last"].items()},
                   view={int(c): Usage(**u) for c, u in view["view"].items()},
                   last_idle_sum=view["last_idle_sum"])


def encode_load(load: Load) -> bytes:
    return LOAD.pack(*load.avenrun, load.running, load.total, load.last_pid)


def decode_load(value: bytes) -> Load:
    *avenrun, running, total, last_pid = LOAD.unpack(value)
    return Load(avenrun, running, total, last_pid)


class SharedFloors(SharedRecords):
    def __init__(self, arena: Arena):
        super().__init__(arena, "floors", MAX_CONTAINERS, encode_json, json.loads)

    def raise_to(self, key: str, label: str, values: list[int]) -> list[int]:
        """files/counters.py's Floors.raise_to, read-modified-written under the lock."""
        with self.arena.locked():
            shown = self.get(key) or {}
            values = shown[label] = raised(shown.get(label), values)
            self[key] = shown
        return values


class SharedViews(SharedRecords):
    def __init__(self, arena: Arena):
        super().__init__(arena, "cpu_views", MAX_VIEWS, encode_view, decode_view)

    @contextlib.contextmanager
    def view(self, key: str):
        """The view of `key`, locked while it is updated, then written back."""
        with self.arena.locked():
            view = self.get(key) or CpuView()
            yield view
            self[key] = view


class SharedState(StateFormat):
    def __init__(self, arena: Arena):
        self.arena = arena
        self.files = arena.records("files", MAX_OPEN, evict=False)
        self.dirs = arena.records("dirs", MAX_LISTINGS, evict=False)
        self.owners = arena.records("held", MAX_OWNERS, evict=False)
        self.cpu_views = SharedViews(arena)
        self.floors = SharedFloors(arena)
        self.loads = SharedRecords(arena, "loads", MAX_TRACKED, encode_load, decode_load)
        self.paths: dict[int, str] = {ROOT_INODE: ""}  # per process: each learns what its kernel requests name
        self.cache: dict[int, tuple[bytes, Handle]] = {}  # fh -> (its metadata, the Handle rebuilt here)
        self.revive: Callable[[dict], Handle | None] | None = None
        self.max_handles = arena.word(LIMIT_HANDLES)  # set once, by create()
        self.max_bytes = arena.word(LIMIT_BYTES)

    @classmethod
    def create(cls, size: int = DEFAULT_SIZE, epoch: int | None = None, max_handles: int = MAX_HANDLES,
               max_bytes: int = MAX_SNAPSHOT_BYTES) -> SharedState:
        """In the main process, before the workers start."""
        arena = Arena.create(size)
        for word, value in ((EPOCH, epoch if epoch is not None else new_epoch()), (LIMIT_HANDLES, max_handles),
                            (LIMIT_BYTES, max_bytes)):
            arena.set_word(word, value)
        return cls(arena)

    @classmethod
    def attach(cls, fd: int) -> SharedState:
        """In a worker: the state the main process created (its `.fd`, inherited)."""
        return cls(Arena.attach(fd))

    @property
    def fd(self) -> int:
        return self.arena.fd

    def revive_with(self, revive: Callable[[dict], Handle | None]) -> None:
        self.revive = revive

    # the handover format's scalars, in the arena
    @property
    def epoch(self) -> int:
        return self.arena.word(EPOCH)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.arena.set_word(EPOCH, value)

    @property
    def counter(self) -> int:
        return self.arena.word(COUNTER)

    @counter.setter
    def counter(self, value: int) -> None:
        self.arena.set_word(COUNTER, value)

    # -- handle numbers and the per-container budget (across all workers) --------------
    def new_fh(self) -> int:
        """Lock held."""
        epoch, counter = self.arena.word(EPOCH), self.arena.word(COUNTER)
        while True:
            counter = (counter + 1) & COUNTER_MASK
            if not counter:
                self.arena.set_word(WRAPPED, 1)  # from now on a number may still be in use
                continue
            fh = epoch << COUNTER_BITS | counter
            if not self.arena.word(WRAPPED) or not (self.files.has(fh_key(fh)) or self.dirs.has(fh_key(fh))):
                self.arena.set_word(COUNTER, counter)
                return fh

    def admit(self, owner: Owner) -> None:
        held = self.owners.get(owner_key(owner))
        if held is not None and HELD.unpack(held)[0] >= self.max_handles:
            raise over_handles(owner, self.max_handles)

    def charge(self, key: bytes, handles: int, size: int, check: bool = True) -> None:
        """Count `handles` and `size` bytes more (or less) to the container; check: within its budget."""
        held = self.owners.get(key)
        count, total = HELD.unpack(held) if held is not None else (0, 0)
        if check and handles > 0 and count >= self.max_handles:
            raise over_handles(owner_from_json(json.loads(key)), self.max_handles)
        if check and size > 0 and total + size > self.max_bytes:
            raise over_bytes(owner_from_json(json.loads(key)), self.max_bytes)
        count, total = count + handles, total + size
        if count or total:
            self.owners.put(key, HELD.pack(count, total))
        else:  # nothing held: forget the container
            self.owners.delete(key)

    def held(self) -> dict[Owner, tuple[int, int]]:
        return {owner_from_json(json.loads(key)): HELD.unpack(value) for key, value in self.owners.items()}

    # -- open files -------------------------------------------------------------------
    def add_file(self, handle: Handle, content: bytes) -> int:
        key, meta = owner_key(handle.owner), handle_meta(handle)
        with self.arena.locked():
            self.charge(key, 1, len(content))
            fh = self.new_fh()
            try:
                self.files.put(fh_key(fh), encode_file(False, key, meta, content))
            except OSError:
                self.charge(key, -1, -len(content))
                raise
        handle.content = content
        self.remember(fh, meta, handle)
        return fh

    def remember(self, fh: int, meta: bytes, handle: Handle) -> None:
        if len(self.cache) >= MAX_CACHED:
            self.cache.pop(next(iter(self.cache)))
        self.cache[fh] = (meta, handle)

    def file(self, fh: int) -> Handle | None:
        value = self.files.get(fh_key(fh))
        if value is None:
            self.cache.pop(fh, None)  # released at another worker
            return None
        read_once, owner, meta, content = decode_file(value)
        cached = self.cache.get(fh)
        if cached is not None and cached[0] == meta:
            handle = cached[1]
        else:
            handle = self.revive(json.loads(meta)) if self.revive is not None else None
            if handle is None:
                return None  # its path is gone
            handle.owner = owner_from_json(json.loads(owner))
            self.remember(fh, meta, handle)
        handle.content = content
        handle.read_once = read_once
        return handle

    def mark_read(self, fh: int) -> None:
        self.files.patch(fh_key(fh), 0, b"\x01")  # FILE's first field: read once
        cached = self.cache.get(fh)
        if cached is not None:
            cached[1].read_once = True

    def refresh(self, fh: int, handle: Handle, content: bytes) -> None:
        with self.arena.locked():
            value = self.files.get(fh_key(fh))
            if value is not None:  # else released at another worker meanwhile: nothing to keep
                read_once, owner, meta, old = decode_file(value)
                self.charge(owner, 0, len(content) - len(old))
                self.files.put(fh_key(fh), encode_file(read_once, owner, meta, content))
        handle.content = content

    def release_file(self, fh: int) -> bool:
        self.cache.pop(fh, None)
        with self.arena.locked():
            value = self.files.pop(fh_key(fh))
            if value is None:
                return False
            owner, content = decode_file(value)[1::2]
            self.charge(owner, -1, -len(content))
            return True

    # -- directory listings -----------------------------------------------------------
    def add_dir(self, entries: list[tuple[str, int]], owner: Owner) -> int:
        key = owner_key(owner)
        listing = json.dumps([key.decode(), entries]).encode()
        with self.arena.locked():
            self.charge(key, 1, 0)
            fh = self.new_fh()
            try:
                self.dirs.put(fh_key(fh), listing)
            except OSError:
                self.charge(key, -1, 0)
                raise
            return fh

    def listing(self, fh: int) -> tuple[bytes, list[tuple[str, int]]] | None:
        value = self.dirs.get(fh_key(fh))
        if value is None:
            return None
        owner, entries = json.loads(value)
        return owner.encode(), [tuple(entry) for entry in entries]

    def dir_entries(self, fh: int) -> list[tuple[str, int]] | None:
        found = self.listing(fh)
        return None if found is None else found[1]

    def release_dir(self, fh: int) -> bool:
        with self.arena.locked():
            found = self.listing(fh)
            if found is None:
                return False
            self.dirs.delete(fh_key(fh))
            self.charge(found[0], -1, 0)
            return True

    # -- what the handover format (state_format.py) reads and writes -------------------
    def saved_files(self) -> list[dict]:
        saved = []
        for key, value in self.files.items():
            read_once, owner, meta, content = decode_file(value)
            fields = json.loads(meta)
            saved.append(saved_file(int.from_bytes(key, "little"), fields["path"], read_once, content,
                                    fields["init_pid"], fields["cgroup"], json.loads(owner)))
        return saved

    def saved_dirs(self) -> list[tuple[int, list, Owner]]:
        saved = []
        for key, value in self.dirs.items():
            owner, entries = json.loads(value)
            saved.append((int.from_bytes(key, "little"), [tuple(entry) for entry in entries],
                          owner_from_json(json.loads(owner))))
        return saved

    def open_files(self) -> int:
        return len(self.files)

    def adopt_file(self, fh: int, handle: Handle, content: bytes, read_once: bool) -> None:
        key, meta = owner_key(handle.owner), handle_meta(handle)
        with self.arena.locked():
            self.charge(key, 1, len(content), check=False)  # already held: counted, not refused
            self.files.put(fh_key(fh), encode_file(read_once, key, meta, content))
        handle.content, handle.read_once = content, read_once
        self.remember(fh, meta, handle)

    def adopt_dir(self, fh: int, entries: list[tuple[str, int]]) -> None:
        key = owner_key(None)
        with self.arena.locked():
            self.dirs.put(fh_key(fh), json.dumps([key.decode(), entries]).encode())
            self.charge(key, 1, 0, check=False)

    def set_dir_owner(self, fh: int, owner: Owner) -> None:
        key = owner_key(owner)
        with self.arena.locked():
            found = self.listing(fh)
            if found is not None:
                self.charge(found[0], -1, 0)
                self.charge(key, 1, 0, check=False)
                self.dirs.put(fh_key(fh), json.dumps([key.decode(), found[1]]).encode())
