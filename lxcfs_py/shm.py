"""A store that several processes share: blobs by id and keyed records, on one memfd.

The first process creates the arena (a sparse memfd: only pages in use cost
memory) and passes its fd to the workers it starts; each attaches to it. All
bookkeeping -- free lists, id slots, hash tables -- lives in the shared pages,
so any process frees what another allocated. Every access, reads included,
happens under `locked()`: a lock between this process's threads and an flock
between processes (the flock is taken on this process's own open file
description, since a description inherited from the creator is shared and
would not exclude anyone). flock and funlock are system calls, full memory
barriers on x86 and arm64 alike.

Blob ids carry a generation: once a blob is freed, its id (and any forged
id) gives None, never another blob's bytes.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Iterator
from typing import Callable

DEFAULT_SIZE = 256 << 20
MAGIC = 0x6C786366732D7368  # "lxcfs-sh"
PAGE = 4096
MIN_SHIFT = 6  # the smallest size class: 64 bytes
CLASSES = 40
MAX_SLOTS = 1 << 20  # blobs alive at once
WORDS = 16  # small integers the users of the arena keep here (SharedState's epoch, ...)
MAX_TABLES = 16  # tables and regions
RELEASE_FROM = 16 * PAGE  # a freed chunk this large gives its pages back to the kernel

# header: magic, size, bump, slots used, free slot head, then the free lists, words and tables
HEADER = struct.Struct("<QQQII")
FREE_HEADS = HEADER.size
WORDS_AT = FREE_HEADS + 8 * CLASSES
TABLES_AT = WORDS_AT + 8 * WORDS
TABLE_DIR = struct.Struct("<16sQQ")  # name, offset, capacity
SLOTS_AT = PAGE
SLOT = struct.Struct("<IIQQ")  # generation (odd: alive), size class, length, offset (free: next free slot)
HEAP_AT = SLOTS_AT + MAX_SLOTS * SLOT.size
U64 = struct.Struct("<Q")
U32 = struct.Struct("<I")
SLOTS_HEAD = struct.Struct("<II")  # slots used, first free slot + 1

# a table of records: header, then its buckets (entry index + 1), then its entries
TABLE = struct.Struct("<IIIIII")  # count, used, free head, oldest, newest, buckets
ENTRY = struct.Struct("<IIIIQ")  # chain next, older, newer, hash, blob id (key length, key, value)
KEY_LEN = struct.Struct("<I")

ARENAS: weakref.WeakSet = weakref.WeakSet()  # to give each a lock of its own in a forked child


def size_class(length: int) -> int:
    return max(0, (max(length, 1) - 1).bit_length() - MIN_SHIFT)


class Arena:
    def __init__(self, fd: int, size: int):
        self.fd = -1  # until mapped: nothing to close
        self.mem = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # the arena as aligned 64-bit words: one word is read or written in one access, so a reader
        # without the lock sees its old or its new value, never a mix (see shared_files.py)
        self.words = memoryview(self.mem).cast("Q")
        self.fd = fd
        self.size = size
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.lock_fd = -1
        self.own_lock_fd()
        self.tables: dict[str, Records] = {}
        ARENAS.add(self)

    @classmethod
    def create(cls, size: int = DEFAULT_SIZE) -> Arena:
        """A new arena of `size` bytes (virtual: pages cost memory once written); pass `.fd` to a child."""
        if size < HEAP_AT + PAGE:
            raise ValueError(f"an arena needs at least {HEAP_AT + PAGE} bytes, not {size}")
        # close-on-exec: a re-exec must not carry it (with its pages) along; workers get it by pass_fds
        fd = os.memfd_create("lxcfs-py-shared", os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        arena = cls(fd, size)
        HEADER.pack_into(arena.mem, 0, MAGIC, size, HEAP_AT, 0, 0)
        return arena

    @classmethod
    def attach(cls, fd: int) -> Arena:
        """The arena another process created, from the fd it passed down."""
        size = os.fstat(fd).st_size
        arena = cls(fd, size)
        magic, recorded = HEADER.unpack_from(arena.mem, 0)[:2]
        if magic != MAGIC or recorded != size:
            arena.words.release()
            arena.mem.close()
            os.close(arena.lock_fd)
            arena.fd = -1  # the caller's fd: not ours to close
            raise ValueError(f"fd {fd} is not an lxcfs-py shared arena")
        return arena

    def own_lock_fd(self) -> None:
        """An open file description of this process's own, for flock to exclude other processes."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
        self.lock_fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDWR | os.O_CLOEXEC)

    def after_fork(self) -> None:
        self.thread_lock = threading.RLock()  # another thread may have held it at the fork
        self.depth = 0
        if self.fd >= 0:  # not closed
            self.own_lock_fd()

    def close(self) -> None:
        """Detach this process (the other processes keep the arena)."""
        if self.fd >= 0:
            self.words.release()
            self.mem.close()
            os.close(self.lock_fd)
            os.close(self.fd)
            self.fd = self.lock_fd = -1

    def __del__(self):
        self.close()

    def locked(self) -> Arena:
        """`with arena.locked():` excludes every other thread of every process attached; nests."""
        return self

    def __enter__(self) -> Arena:
        self.thread_lock.acquire()
        if self.depth == 0:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            except BaseException:
                self.thread_lock.release()
                raise
        self.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        self.thread_lock.release()

    # -- words --------------------------------------------------------------------
    def word(self, index: int) -> int:
        with self.locked():
            return U64.unpack_from(self.mem, WORDS_AT + 8 * index)[0]

    def peek(self, index: int) -> int:
        """A word read without the lock: for a flag that only flips (an aligned word is never torn)."""
        return U64.unpack_from(self.mem, WORDS_AT + 8 * index)[0]

    def set_word(self, index: int, value: int) -> None:
        with self.locked():
            U64.pack_into(self.mem, WORDS_AT + 8 * index, value)

    def heap_top(self) -> int:
        """How far into the arena chunks were ever handed out (freed ones are reused below it)."""
        with self.locked():
            return U64.unpack_from(self.mem, 16)[0]

    # -- chunks -------------------------------------------------------------------
    def alloc(self, length: int) -> tuple[int, int]:
        """(offset, size class) of a chunk for `length` bytes. Lock held."""
        cls = size_class(length)
        head_at = FREE_HEADS + 8 * cls
        offset = U64.unpack_from(self.mem, head_at)[0]
        if offset:
            U64.pack_into(self.mem, head_at, U64.unpack_from(self.mem, offset)[0])
            return offset, cls
        chunk = 1 << (cls + MIN_SHIFT)
        bump = U64.unpack_from(self.mem, 16)[0]
        align = min(chunk, PAGE)
        offset = (bump + align - 1) // align * align
        if offset + chunk > self.size:
            raise OSError(errno.ENOMEM, f"the shared arena ({self.size >> 20} MiB) is full: no room for "
                                        f"{length} bytes more; restart the daemon with fewer open files")
        U64.pack_into(self.mem, 16, offset + chunk)
        return offset, cls

    def reserve(self, length: int) -> int:
        """Page-aligned room that is never freed (a table). Lock held."""
        bump = U64.unpack_from(self.mem, 16)[0]
        offset = (bump + PAGE - 1) // PAGE * PAGE
        if offset + length > self.size:
            raise OSError(errno.ENOMEM, f"the shared arena ({self.size >> 20} MiB) has no room for a table of "
                                        f"{length} bytes")
        U64.pack_into(self.mem, 16, offset + length)
        return offset

    def release(self, offset: int, cls: int) -> None:
        chunk = 1 << (cls + MIN_SHIFT)
        if chunk >= RELEASE_FROM:
            self.mem.madvise(mmap.MADV_REMOVE, offset, chunk)  # its pages back to the kernel
        head_at = FREE_HEADS + 8 * cls
        U64.pack_into(self.mem, offset, U64.unpack_from(self.mem, head_at)[0])
        U64.pack_into(self.mem, head_at, offset)

    # -- blobs --------------------------------------------------------------------
    def slot_of(self, blob: int) -> tuple[int, int, int, int, int] | None:
        """(slot, generation, class, length, offset) of a live blob, else None. Lock held."""
        index = (blob & 0xFFFFFFFF) - 1
        if not 0 <= index < U32.unpack_from(self.mem, 24)[0]:
            return None
        generation, cls, length, offset = SLOT.unpack_from(self.mem, SLOTS_AT + SLOT.size * index)
        if generation != blob >> 32 or not generation & 1:
            return None
        return index, generation, cls, length, offset

    def put(self, data: bytes) -> int:
        """Store `data`; its id."""
        with self:
            return self.store(data)

    def get(self, blob: int) -> bytes | None:
        with self:
            return self.read(blob)

    def replace(self, blob: int, data: bytes) -> bool:
        """Give `blob` new bytes (same id); False if it is not alive."""
        with self:
            return self.rewrite(blob, data)

    def free(self, blob: int) -> bool:
        with self:
            return self.drop(blob)

    # the same with the lock held (Records calls these)
    def store(self, data: bytes) -> int:
        offset, cls = self.alloc(len(data))
        used, free = SLOTS_HEAD.unpack_from(self.mem, 24)
        if free:
            index = free - 1
            generation, next_free = SLOT.unpack_from(self.mem, SLOTS_AT + SLOT.size * index)[::3]
            U32.pack_into(self.mem, 28, next_free)
        elif used < MAX_SLOTS:
            index, generation = used, 0
            U32.pack_into(self.mem, 24, used + 1)
        else:
            self.release(offset, cls)
            raise OSError(errno.ENOMEM, f"the shared arena holds {MAX_SLOTS} blobs, its most")
        generation = (generation + 1) & 0xFFFFFFFF or 1  # odd: alive
        self.mem[offset:offset + len(data)] = data
        SLOT.pack_into(self.mem, SLOTS_AT + SLOT.size * index, generation, cls, len(data), offset)
        return generation << 32 | (index + 1)

    def read(self, blob: int) -> bytes | None:
        found = self.slot_of(blob)
        if found is None:
            return None
        return self.mem[found[4]:found[4] + found[3]]

    def rewrite(self, blob: int, data: bytes) -> bool:
        found = self.slot_of(blob)
        if found is None:
            return False
        index, generation, cls, offset = found[0], found[1], found[2], found[4]
        if size_class(len(data)) != cls:
            new_offset, new_cls = self.alloc(len(data))
            self.release(offset, cls)
            offset, cls = new_offset, new_cls
        self.mem[offset:offset + len(data)] = data
        SLOT.pack_into(self.mem, SLOTS_AT + SLOT.size * index, generation, cls, len(data), offset)
        return True

    def drop(self, blob: int) -> bool:
        found = self.slot_of(blob)
        if found is None:
            return False
        index, generation, cls, offset = found[0], found[1], found[2], found[4]
        self.release(offset, cls)
        free = U32.unpack_from(self.mem, 28)[0]
        # an even generation: free; the next put of this slot makes a new odd one
        SLOT.pack_into(self.mem, SLOTS_AT + SLOT.size * index, (generation + 1) & 0xFFFFFFFF, 0, 0, free)
        U32.pack_into(self.mem, 28, index + 1)
        return True

    # -- keyed records ------------------------------------------------------------
    def records(self, name: str, capacity: int, evict: bool = True) -> Records:
        """The table `name` (made on first use, by whichever process comes first)."""
        table = self.tables.get(name)
        if table is None:
            offset, made_capacity = self.named(name, capacity, lambda count: Records.make(self, count))
            table = self.tables[name] = Records(self, name, offset, made_capacity, evict)
        return table

    def region(self, name: str, length: int) -> int:
        """The offset of `length` page-aligned zeroed bytes named `name`, made on first use; never freed."""
        return self.named(name, length, self.reserve)[0]

    def named(self, name: str, size: int, make: Callable[[int], int]) -> tuple[int, int]:
        """(offset, size) of what is registered as `name`; made by `make` if nobody made it yet."""
        encoded = name.encode()
        with self.locked():
            for index in range(MAX_TABLES):
                at = TABLES_AT + TABLE_DIR.size * index
                found, offset, made_size = TABLE_DIR.unpack_from(self.mem, at)
                if found.rstrip(b"\0") == encoded:
                    return offset, made_size
                if not offset:
                    offset = make(size)
                    TABLE_DIR.pack_into(self.mem, at, encoded, offset, size)
                    return offset, size
        raise ValueError(f"the shared arena has room for {MAX_TABLES} tables")


class Records:
    """Small values by key, in insertion order; bounded: the oldest goes (or ENOMEM, if not `evict`)."""

    def __init__(self, arena: Arena, name: str, offset: int, capacity: int, evict: bool):
        self.arena = arena
        self.mem = arena.mem
        self.name = name
        self.at = offset
        self.capacity = capacity
        self.evict = evict
        self.buckets = 2 * capacity
        self.entries_at = offset + TABLE.size + 4 * self.buckets

    @staticmethod
    def make(arena: Arena, capacity: int) -> int:
        offset = arena.reserve(TABLE.size + 4 * 2 * capacity + ENTRY.size * capacity)
        TABLE.pack_into(arena.mem, offset, 0, 0, 0, 0, 0, 2 * capacity)
        return offset

    def entry(self, index: int) -> list:
        return list(ENTRY.unpack_from(self.mem, self.entries_at + ENTRY.size * index))

    def set_entry(self, index: int, fields) -> None:
        ENTRY.pack_into(self.mem, self.entries_at + ENTRY.size * index, *fields)

    def bucket_at(self, key_hash: int) -> int:
        return self.at + TABLE.size + 4 * (key_hash % self.buckets)

    def find(self, key: bytes, key_hash: int) -> tuple[int, list, int, int] | None:
        """(index, entry, offset, length) of `key`'s stored blob. Lock held."""
        index = U32.unpack_from(self.mem, self.bucket_at(key_hash))[0] - 1
        size = len(key)
        while index >= 0:
            fields = self.entry(index)
            if fields[3] == key_hash:
                found = self.arena.slot_of(fields[4])
                if found is not None:
                    offset, length = found[4], found[3]
                    if U32.unpack_from(self.mem, offset)[0] == size and self.mem[offset + 4:offset + 4 + size] == key:
                        return index, fields, offset, length
            index = fields[0] - 1
        return None

    def get(self, key: bytes) -> bytes | None:
        with self.arena:
            found = self.find(key, zlib.crc32(key))
            if found is None:
                return None
            return self.mem[found[2] + 4 + len(key):found[2] + found[3]]

    def patch(self, key: bytes, at: int, data: bytes) -> bool:
        """Overwrite bytes `at` of `key`'s value in place (within its length); False if there is no `key`."""
        with self.arena:
            found = self.find(key, zlib.crc32(key))
            if found is None:
                return False
            start = found[2] + 4 + len(key) + at
            if at < 0 or start + len(data) > found[2] + found[3]:
                raise ValueError(f"{len(data)} bytes at {at} are outside the value of {key!r}")
            self.mem[start:start + len(data)] = data
            return True

    def has(self, key: bytes) -> bool:
        with self.arena:
            return self.find(key, zlib.crc32(key)) is not None

    def pop(self, key: bytes) -> bytes | None:
        """Remove `key`; its value, or None if there was none."""
        with self.arena:
            found = self.find(key, zlib.crc32(key))
            if found is None:
                return None
            value = self.mem[found[2] + 4 + len(key):found[2] + found[3]]
            self.remove(found[0])
            return value

    def put(self, key: bytes, value: bytes) -> None:
        """Insert or replace; a replaced record keeps its place in the order."""
        key_hash = zlib.crc32(key)
        stored = KEY_LEN.pack(len(key)) + key + value
        with self.arena:
            found = self.find(key, key_hash)
            if found is not None:
                self.arena.rewrite(found[1][4], stored)
                return
            count, used, free, oldest, newest = TABLE.unpack_from(self.mem, self.at)[:5]
            if count >= self.capacity:
                if not self.evict:
                    raise OSError(errno.ENOMEM, f"the shared table {self.name!r} holds {self.capacity} records, "
                                                f"its most")
                self.remove(oldest - 1)
                count, used, free, oldest, newest = TABLE.unpack_from(self.mem, self.at)[:5]
            blob = self.arena.store(stored)
            if free:
                index = free - 1
                free = self.entry(index)[0]
            else:
                index, used = used, used + 1
            bucket = self.bucket_at(key_hash)
            self.set_entry(index, (U32.unpack_from(self.mem, bucket)[0], newest, 0, key_hash, blob))
            U32.pack_into(self.mem, bucket, index + 1)
            if newest:
                self.link(newest - 1, newer=index + 1)
            TABLE.pack_into(self.mem, self.at, count + 1, used, free, oldest or index + 1, index + 1, self.buckets)

    def link(self, index: int, older: int | None = None, newer: int | None = None) -> None:
        fields = self.entry(index)
        if older is not None:
            fields[1] = older
        if newer is not None:
            fields[2] = newer
        self.set_entry(index, fields)

    def delete(self, key: bytes) -> bool:
        return self.pop(key) is not None

    def remove(self, index: int) -> None:
        """Unlink entry `index` from its chain and the order, free its blob. Lock held."""
        chain_next, older, newer, key_hash, blob = self.entry(index)
        bucket = self.bucket_at(key_hash)
        at = U32.unpack_from(self.mem, bucket)[0] - 1
        if at == index:
            U32.pack_into(self.mem, bucket, chain_next)
        else:
            while at >= 0:
                fields = self.entry(at)
                if fields[0] - 1 == index:
                    fields[0] = chain_next
                    self.set_entry(at, fields)
                    break
                at = fields[0] - 1
        count, used, free, oldest, newest = TABLE.unpack_from(self.mem, self.at)[:5]
        if older:
            self.link(older - 1, newer=newer)
        else:
            oldest = newer
        if newer:
            self.link(newer - 1, older=older)
        else:
            newest = older
        self.arena.drop(blob)
        self.set_entry(index, (free, 0, 0, 0, 0))
        TABLE.pack_into(self.mem, self.at, count - 1, used, index + 1, oldest, newest, self.buckets)

    def __len__(self) -> int:
        with self.arena:
            return TABLE.unpack_from(self.mem, self.at)[0]

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value), oldest first, as one consistent copy."""
        out = []
        with self.arena:
            index = TABLE.unpack_from(self.mem, self.at)[3] - 1
            while index >= 0:
                fields = self.entry(index)
                stored = self.arena.read(fields[4])
                length = KEY_LEN.unpack_from(stored)[0]
                out.append((stored[4:4 + length], stored[4 + length:]))
                index = fields[2] - 1
        return out

    def __iter__(self) -> Iterator[bytes]:
        return iter([pair[0] for pair in self.items()])


def reset_after_fork() -> None:
    """In a forked child, each arena gets a lock of its own: one left out would not exclude the parent."""
    for arena in list(ARENAS):
        try:
            arena.after_fork()
        except OSError:  # no fd left for it: mark it unusable rather than sharing the parent's lock
            arena.lock_fd = -1


os.register_at_fork(after_in_child=reset_after_fork)
