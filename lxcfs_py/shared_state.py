"""The daemon's state where all its worker processes find it (shm.py), as a drop-in for DaemonState.

Each worker serves its own clone of the FUSE connection and the kernel hands
any request to any worker: a file opened at one may be read, rewound or
released at another. So open files (their snapshot and what rebuilds their
Handle), listings, the per-container budgets, the CPU views, the /proc/stat
floors and the loadavg samples live in a shared arena. Handles (a render
function and its Request) cannot be shared: each process rebuilds one from
the stored metadata with `revive` and keeps it by handle number.

Open files and budgets are fixed tables (shared_files.py): one lock per open
and per release, none for a read in the process that holds the snapshot.

The main process: `SharedState.create()`, then passes `.fd` to its workers
(by pass_fds); a worker: `SharedState.attach(fd)`.
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
from lxcfs_py.shared_files import SNAPSHOT, WORDS_PER_SLOT, FileSlots, OwnerSlots
from lxcfs_py.shm import DEFAULT_SIZE, WORDS_AT, Arena, Records
from lxcfs_py.state import (MAX_HANDLES, MAX_SNAPSHOT_BYTES, ROOT_INODE, Handle, Owner, new_epoch, over_bytes,
                            over_handles)
from lxcfs_py.state_format import StateFormat, owner_from_json, saved_file

MAX_LISTINGS = 1 << 16
MAX_CACHED = 8192  # Handles rebuilt in this process
WORD_NAMES = ("epoch", "counter", "limit_handles", "limit_bytes", "wrapped", "inherited", "owners_used",
              "owners_free", "host_values")  # the arena's words
EPOCH, COUNTER, LIMIT_HANDLES, LIMIT_BYTES = range(4)
HOST_VALUES = WORD_NAMES.index("host_values")
LOAD = struct.Struct("<6q")


def fh_key(fh: int) -> bytes:
    return fh.to_bytes(8, "little")


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
        self.word_at = {name: WORDS_AT // 8 + index for index, name in enumerate(WORD_NAMES)}
        self.slots = FileSlots(arena, self.word_at)
        self.owners = OwnerSlots(arena, self.word_at)
        self.dirs = arena.records("dirs", MAX_LISTINGS, evict=False)
        self.cpu_views = SharedViews(arena)
        self.floors = SharedFloors(arena)
        self.loads = SharedRecords(arena, "loads", MAX_TRACKED, encode_load, decode_load)
        self.paths: dict[int, str] = {ROOT_INODE: ""}  # per process: each learns what its kernel requests name
        self.cache: dict[int, list] = {}  # fh -> [Handle rebuilt here, its snapshot's blob, its metadata]
        self.keys: dict[Owner, bytes] = {}  # in this process: each container's key
        self.metas: dict[tuple, bytes] = {}  # in this process: what rebuilds a Handle, by what it is made of
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

    @property
    def virtualize(self) -> bool:
        """LXCFS's SIGUSR2 switch: the main process flips it, every worker reads it per request."""
        return not self.arena.peek(HOST_VALUES)

    @virtualize.setter
    def virtualize(self, value: bool) -> None:
        self.arena.set_word(HOST_VALUES, int(not value))

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
        """A number for a listing. Lock held."""
        return self.slots.new(self.has_listing)[1]

    def has_listing(self, fh: int) -> bool:
        return self.dirs.has(fh_key(fh))

    def key_of(self, owner: Owner) -> bytes:
        key = self.keys.get(owner)
        if key is None:
            if len(self.keys) >= MAX_CACHED:
                self.keys.clear()
            key = self.keys[owner] = json.dumps(owner).encode()
        return key

    def admit(self, owner: Owner) -> None:
        """An early refusal, without the lock: add_file and add_dir check again under it."""
        if self.owners.handles(self.key_of(owner)) >= self.max_handles:
            raise over_handles(owner, self.max_handles)

    def charge(self, slot: int, handles: int, size: int, check: bool = True) -> None:
        """Count `handles` and `size` bytes more (or less) to the container in `slot`. Lock held."""
        count, total = self.owners.held(slot)
        if check and handles > 0 and count >= self.max_handles:
            raise over_handles(owner_from_json(json.loads(self.owners.key(slot))), self.max_handles)
        if check and size > 0 and total + size > self.max_bytes:
            raise over_bytes(owner_from_json(json.loads(self.owners.key(slot))), self.max_bytes)
        self.owners.set_held(slot, count + handles, total + size)

    def charge_key(self, key: bytes, handles: int, size: int, check: bool = True) -> None:
        self.charge(self.owners.slot(key), handles, size, check)

    def held(self) -> dict[Owner, tuple[int, int]]:
        with self.arena:
            return {owner_from_json(json.loads(key)): (handles, size) for key, handles, size in self.owners.all()}

    # -- open files -------------------------------------------------------------------
    def meta_of(self, handle: Handle) -> bytes:
        """handle_meta, made once per kind of handle in this process (a Request's cgroup is its owner's)."""
        req = handle.req
        kind = (handle.path, handle.owner, None if req is None else (req.init_pid, req.cgroup is None))
        meta = self.metas.get(kind)
        if meta is None:
            if len(self.metas) >= MAX_CACHED:
                self.metas.clear()
            meta = self.metas[kind] = handle_meta(handle)
        return meta

    def add_file(self, handle: Handle, content: bytes) -> int:
        key, meta = self.key_of(handle.owner), self.meta_of(handle)
        with self.arena:
            owner = self.owners.slot(key)
            self.charge(owner, 1, len(content))
            try:
                slot, fh = self.slots.new(self.has_listing)
                blob = self.arena.store(SNAPSHOT.pack(len(meta)) + meta + content)
            except OSError:
                self.charge(owner, -1, -len(content))
                raise
            self.slots.put(slot, fh, blob, owner, False, len(content))
        handle.content, handle.read_once = content, False
        self.remember(fh, [handle, blob, meta])
        return fh

    def remember(self, fh: int, cached: list) -> None:
        if len(self.cache) >= MAX_CACHED:
            self.cache.pop(next(iter(self.cache)))
        self.cache[fh] = cached

    def file(self, fh: int) -> Handle | None:
        return self.reading(fh, mark=False)[0]

    def reading(self, fh: int, mark: bool = True) -> tuple[Handle | None, bool]:
        """file() and mark_read() in one: (the handle, whether it was read before: a read at 0 is a rewind).

        The hot path of every read: without the lock when this process holds the file's current snapshot.
        """
        slots = self.slots
        slot = slots.find(fh)
        if slot < 0:
            self.cache.pop(fh, None)  # released at another worker
            return None, False
        cached = self.cache.get(fh)
        if cached is None or cached[1] != slots.words[slots.first_word + WORDS_PER_SLOT * slot + 1]:
            cached = self.fetch(fh, cached)
            if cached is None:
                return None, False
        handle = cached[0]
        handle.read_once = read_before = slots.read_once(slot, mark)
        if mark:
            handle.read_once = True
        return handle, read_before

    def fetch(self, fh: int, cached: list | None) -> list | None:
        """The file's current snapshot, copied here; the Handle rebuilt if this process has none."""
        with self.arena:
            slot = self.slots.find(fh)
            if slot < 0:
                return None
            blob = self.slots.blob_at(slot)
            value = self.arena.read(blob)
            owner = self.owners.key(self.slots.owner_at(slot))
        meta_len = SNAPSHOT.unpack_from(value)[0]
        meta, content = value[SNAPSHOT.size:SNAPSHOT.size + meta_len], value[SNAPSHOT.size + meta_len:]
        if cached is not None and cached[2] == meta:
            handle = cached[0]
        else:
            handle = self.revive(json.loads(meta)) if self.revive is not None else None
            if handle is None:
                return None  # its path is gone
            handle.owner = owner_from_json(json.loads(owner))
        handle.content = content
        cached = [handle, blob, meta]
        self.remember(fh, cached)
        return cached

    def mark_read(self, fh: int) -> None:
        slot = self.slots.find(fh)
        if slot >= 0:
            self.slots.read_once(slot, mark=True)
        cached = self.cache.get(fh)
        if cached is not None:
            cached[0].read_once = True

    def refresh(self, fh: int, handle: Handle, content: bytes) -> None:
        with self.arena:
            slot = self.slots.find(fh)
            if slot >= 0:  # else released at another worker meanwhile: nothing to keep
                old = self.slots.blob_at(slot)
                value = self.arena.read(old)
                head = SNAPSHOT.size + SNAPSHOT.unpack_from(value)[0]
                self.charge(self.slots.owner_at(slot), 0, len(content) - (len(value) - head))
                blob = self.arena.store(value[:head] + content)
                self.slots.set_blob(slot, blob, len(content))
                self.arena.drop(old)
                self.remember(fh, [handle, blob, value[SNAPSHOT.size:head]])
        handle.content = content

    def release_file(self, fh: int) -> bool:
        self.cache.pop(fh, None)
        with self.arena:
            slot = self.slots.find(fh)
            if slot < 0:
                return False
            blob = self.slots.blob_at(slot)
            self.charge(self.slots.owner_at(slot), -1, -self.slots.content_size(slot), check=False)
            self.arena.drop(blob)
            self.slots.clear(slot, fh)
            return True

    # -- directory listings -----------------------------------------------------------
    def add_dir(self, entries: list[tuple[str, int]], owner: Owner) -> int:
        key = self.key_of(owner)
        listing = json.dumps([key.decode(), entries]).encode()
        with self.arena.locked():
            self.charge_key(key, 1, 0)
            fh = self.new_fh()
            try:
                self.dirs.put(fh_key(fh), listing)
            except OSError:
                self.charge_key(key, -1, 0)
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
            self.charge_key(found[0], -1, 0)
            return True

    # -- what the handover format (state_format.py) reads and writes -------------------
    def saved_files(self) -> list[dict]:
        saved = []
        with self.arena:
            for slot in self.slots.used():
                value = self.arena.read(self.slots.blob_at(slot))
                head = SNAPSHOT.size + SNAPSHOT.unpack_from(value)[0]
                fields = json.loads(value[SNAPSHOT.size:head])
                saved.append(saved_file(self.slots.fh_at(slot), fields["path"], self.slots.read_once(slot),
                                        value[head:], fields["init_pid"], fields["cgroup"],
                                        json.loads(self.owners.key(self.slots.owner_at(slot)))))
        return sorted(saved, key=lambda file: file["fh"])  # in the order they were opened, as DaemonState

    def saved_dirs(self) -> list[tuple[int, list, Owner]]:
        saved = []
        for key, value in self.dirs.items():
            owner, entries = json.loads(value)
            saved.append((int.from_bytes(key, "little"), [tuple(entry) for entry in entries],
                          owner_from_json(json.loads(owner))))
        return saved

    def open_files(self) -> int:
        with self.arena:
            return len(self.slots.used())

    def adopt_file(self, fh: int, handle: Handle, content: bytes, read_once: bool) -> None:
        key, meta = self.key_of(handle.owner), handle_meta(handle)
        with self.arena:
            if self.slots.find(fh) >= 0:
                self.release_file(fh)  # the same number twice: the later one counts
            owner = self.owners.slot(key)
            self.charge(owner, 1, len(content), check=False)  # already held: counted, not refused
            slot = self.slots.adopt(fh)
            blob = self.arena.store(SNAPSHOT.pack(len(meta)) + meta + content)
            self.slots.put(slot, fh, blob, owner, read_once, len(content))
        handle.content, handle.read_once = content, read_once
        self.remember(fh, [handle, blob, meta])

    def adopt_dir(self, fh: int, entries: list[tuple[str, int]]) -> None:
        key = self.key_of(None)
        with self.arena.locked():
            self.dirs.put(fh_key(fh), json.dumps([key.decode(), entries]).encode())
            self.charge_key(key, 1, 0, check=False)

    def set_dir_owner(self, fh: int, owner: Owner) -> None:
        key = self.key_of(owner)
        with self.arena.locked():
            found = self.listing(fh)
            if found is not None:
                self.charge_key(found[0], -1, 0)
                self.charge_key(key, 1, 0, check=False)
                self.dirs.put(fh_key(fh), json.dumps([key.decode(), found[1]]).encode())
