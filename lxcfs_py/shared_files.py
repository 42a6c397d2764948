"""SharedState's open files and per-container budgets as fixed tables in the arena (shm.py).

Open files: a table of slots addressed by the handle number itself. A new
file gets fh = epoch << 32 | counter with the counter advanced to a free
slot (counter mod SLOTS); the slot keeps the whole fh, so a stale or forged
number, or one of another epoch, finds a slot holding another number: None,
never another file's content. Numbers inherited at a handover keep their
values: one whose slot is taken goes to any free slot, found through a small
side table.

A slot's fh and snapshot id are single words: a reader without the lock sees
each whole, and a process reading a file whose snapshot it already holds
(fh and snapshot id unchanged) needs no lock at all. Every change happens
under the lock.

Budgets: a slot per container (its key, handles, bytes), found by key once
per process and then by index; a file's slot names its container's slot, so
a release needs no lookup. A container's slot is kept when it holds nothing
(a container opens again soon) and given back when the table runs full.
"""

from __future__ import annotations

import errno
import struct

from lxcfs_py.shm import Arena
from lxcfs_py.state_format import COUNTER_BITS, COUNTER_MASK

SLOTS = 1 << 18  # open files of all containers together (each container: state.MAX_HANDLES)
FILE_SLOT = struct.Struct("<QQIIQ")  # fh (0: free), snapshot blob, container slot, read once, content bytes
WORDS_PER_SLOT = FILE_SLOT.size // 8
READ_ONCE_AT = 20  # byte of FILE_SLOT
SNAPSHOT = struct.Struct("<I")  # metadata length; then metadata, content
MAX_OWNERS = 1 << 16
OWNER_SLOT = struct.Struct("<Qqq")  # key blob (0: free), handles, bytes; a free one: next free + 1 in handles
U32 = struct.Struct("<I")


class FileSlots:
    """Lock held for every method but `find` and `read_once`."""

    def __init__(self, arena: Arena, words: dict[str, int]):
        self.arena = arena
        self.mem = arena.mem
        self.words = arena.words
        self.at = arena.region("file_slots", FILE_SLOT.size * SLOTS)
        self.first_word = self.at // 8
        self.side = arena.records("inherited_files", SLOTS, evict=False)
        self.word = words  # the arena words this table keeps: epoch, counter, wrapped, inherited

    def fh_at(self, slot: int) -> int:
        return self.words[self.first_word + WORDS_PER_SLOT * slot]

    def blob_at(self, slot: int) -> int:
        return self.words[self.first_word + WORDS_PER_SLOT * slot + 1]

    def owner_at(self, slot: int) -> int:
        return U32.unpack_from(self.mem, self.at + FILE_SLOT.size * slot + 16)[0]

    def read_once(self, slot: int, mark: bool = False) -> bool:
        """Whether the file in `slot` was read; `mark`: it is now (one byte, 0 -> 1 only: no lock needed)."""
        at = self.at + FILE_SLOT.size * slot + READ_ONCE_AT
        was = bool(self.mem[at])
        if mark and not was:
            self.mem[at] = 1
        return was

    def find(self, fh: int) -> int:
        """The slot of the file numbered `fh`, or -1. The lock is taken only for an inherited number."""
        slot = fh & (SLOTS - 1)
        if self.words[self.first_word + WORDS_PER_SLOT * slot] == fh and fh:
            return slot
        if not self.words[self.word["inherited"]]:
            return -1
        with self.arena:
            found = self.side.get(fh.to_bytes(8, "little"))
            slot = U32.unpack(found)[0] if found is not None else -1
            return slot if slot >= 0 and self.fh_at(slot) == fh else -1

    def content_size(self, slot: int) -> int:
        return self.words[self.first_word + WORDS_PER_SLOT * slot + 3]

    def put(self, slot: int, fh: int, blob: int, owner: int, read_once: bool, size: int) -> None:
        FILE_SLOT.pack_into(self.mem, self.at + FILE_SLOT.size * slot, fh, blob, owner, read_once, size)

    def set_blob(self, slot: int, blob: int, size: int) -> None:
        at = self.first_word + WORDS_PER_SLOT * slot
        self.words[at + 1], self.words[at + 3] = blob, size

    def new(self, taken) -> tuple[int, int]:
        """(slot, fh) for a new file; `taken(fh)`: whether a listing has that number."""
        epoch, counter = self.words[self.word["epoch"]], self.words[self.word["counter"]]
        for attempts in range(2 * SLOTS):
            counter = (counter + 1) & COUNTER_MASK
            if not counter:
                self.words[self.word["wrapped"]] = 1  # from now on a number may still be in use
                continue
            fh = epoch << COUNTER_BITS | counter
            if self.fh_at(counter & (SLOTS - 1)):
                continue
            if self.words[self.word["wrapped"]] and (taken(fh) or self.find(fh) >= 0):
                continue
            self.words[self.word["counter"]] = counter
            return counter & (SLOTS - 1), fh
        raise OSError(errno.ENOMEM, f"the daemon holds {SLOTS} open files, its most: close some")

    def adopt(self, fh: int) -> int:
        """A slot for an inherited number: its own if free, else any free one, noted in the side table."""
        slot = fh & (SLOTS - 1)
        if not self.fh_at(slot):
            return slot
        for other in range(SLOTS):
            if not self.fh_at(other) and other != slot:
                self.side.put(fh.to_bytes(8, "little"), U32.pack(other))
                self.words[self.word["inherited"]] = len(self.side)
                return other
        raise OSError(errno.ENOMEM, f"the daemon holds {SLOTS} open files, its most: close some")

    def clear(self, slot: int, fh: int) -> None:
        self.put(slot, 0, 0, 0, False, 0)
        if slot != fh & (SLOTS - 1) and self.side.delete(fh.to_bytes(8, "little")):
            self.words[self.word["inherited"]] = len(self.side)

    def used(self) -> list[int]:
        """Every slot holding a file."""
        return [slot for slot in range(SLOTS) if self.fh_at(slot)]


class OwnerSlots:
    """Handles and bytes per container, shared; lock held for every method but `handles`."""

    def __init__(self, arena: Arena, words: dict[str, int]):
        self.arena = arena
        self.mem = arena.mem
        self.words = arena.words
        self.at = arena.region("owner_slots", OWNER_SLOT.size * MAX_OWNERS)
        self.first_word = self.at // 8
        self.index = arena.records("owners", MAX_OWNERS, evict=False)  # key -> slot
        self.word = words  # used, free head
        self.known: dict[bytes, tuple[int, int]] = {}  # in this process: key -> (slot, key blob)

    def handles(self, key: bytes) -> int:
        """What the container holds, read without the lock (0 if this process does not know it yet)."""
        known = self.known.get(key)
        if known is None:
            return 0
        at = self.first_word + 3 * known[0]
        return self.words[at + 1] if self.words[at] == known[1] else 0

    def slot(self, key: bytes) -> int:
        """The container's slot, made if it has none."""
        known = self.known.get(key)
        if known is not None and self.words[self.first_word + 3 * known[0]] == known[1]:
            return known[0]
        found = self.index.get(key)
        if found is not None:
            slot = U32.unpack(found)[0]
        else:
            slot = self.new_slot()
            self.words[self.first_word + 3 * slot] = self.arena.store(key)
            self.index.put(key, U32.pack(slot))
        if len(self.known) >= MAX_OWNERS:
            self.known.clear()
        self.known[key] = (slot, self.words[self.first_word + 3 * slot])
        return slot

    def new_slot(self) -> int:
        for attempts in range(2):
            free = self.words[self.word["owners_free"]]
            if free:
                self.words[self.word["owners_free"]] = self.words[self.first_word + 3 * (free - 1) + 1]
                return free - 1
            used = self.words[self.word["owners_used"]]
            if used < MAX_OWNERS:
                self.words[self.word["owners_used"]] = used + 1
                return used
            self.give_back_idle()
        raise OSError(errno.ENOMEM, f"{MAX_OWNERS} containers hold open files of this mount, the most")

    def give_back_idle(self) -> None:
        """Free the slots of containers that hold nothing."""
        for slot in range(self.words[self.word["owners_used"]]):
            key_blob, handles, size = OWNER_SLOT.unpack_from(self.mem, self.at + OWNER_SLOT.size * slot)
            if key_blob and not handles and not size:
                self.index.delete(self.arena.read(key_blob))
                self.arena.drop(key_blob)
                OWNER_SLOT.pack_into(self.mem, self.at + OWNER_SLOT.size * slot, 0,
                                     self.words[self.word["owners_free"]], 0)
                self.words[self.word["owners_free"]] = slot + 1

    def held(self, slot: int) -> tuple[int, int]:
        return OWNER_SLOT.unpack_from(self.mem, self.at + OWNER_SLOT.size * slot)[1:]

    def set_held(self, slot: int, handles: int, size: int) -> None:
        at = self.first_word + 3 * slot
        self.words[at + 1], self.words[at + 2] = handles & 0xFFFFFFFFFFFFFFFF, size & 0xFFFFFFFFFFFFFFFF

    def key(self, slot: int) -> bytes:
        return self.arena.read(self.words[self.first_word + 3 * slot])

    def all(self) -> list[tuple[bytes, int, int]]:
        """(key, handles, bytes) of every container holding something."""
        out = []
        for slot in range(self.words[self.word["owners_used"]]):
            key_blob, handles, size = OWNER_SLOT.unpack_from(self.mem, self.at + OWNER_SLOT.size * slot)
            if key_blob and (handles or size):
                out.append((self.arena.read(key_blob), handles, size))
        return out
