"""The shared arena (shm.py) between real processes: forked ones and a freshly exec'd Python."""

import errno
import os
import pickle
import subprocess
import sys
import threading

import pytest

from lxcfs_py.shm import HEAP_AT, PAGE, Arena

SMALL = 64 << 20


def in_child(work):
    """Run `work()` in a forked process; its result (pickled back), or its failure raised here."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            try:
                data = pickle.dumps(("ok", work()))
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                data = pickle.dumps(("failed", repr(err)))
            os.write(write_end, data)
        finally:
            os._exit(0)  # never back into pytest
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    assert status == "ok", value
    return value


@pytest.fixture
def arena():
    made = Arena.create(SMALL)
    yield made
    made.close()


def test_a_blob_put_in_one_process_is_read_replaced_and_freed_in_another(arena):
    blob = arena.put(b"meminfo" * 200)
    assert in_child(lambda: arena.get(blob)) == b"meminfo" * 200
    assert in_child(lambda: arena.replace(blob, b"fresh numbers"))
    assert arena.get(blob) == b"fresh numbers"
    assert in_child(lambda: arena.free(blob))
    assert arena.get(blob) is None and not arena.free(blob) and not arena.replace(blob, b"x")


def test_a_freed_id_never_shows_the_blob_that_takes_its_place(arena):
    old = arena.put(b"container A's numbers")
    arena.free(old)
    new = arena.put(b"container B's numbers")  # the same slot and chunk, a new generation
    assert new != old and new & 0xFFFFFFFF == old & 0xFFFFFFFF
    assert arena.get(old) is None
    assert in_child(lambda: arena.get(old)) is None
    assert arena.get(new) == b"container B's numbers"
    forged = [new ^ (1 << 32), new + 1, new - 1, 0, 1 << 63 | 1, (new >> 32) << 32 | 0xFFFFFFFF]
    assert [arena.get(blob) for blob in forged] == [None] * len(forged)


def test_what_one_process_frees_another_allocates_again(arena):
    blobs = [arena.put(b"x" * 1500) for _ in range(100)]
    in_child(lambda: [arena.free(blob) for blob in blobs])
    heap_top = arena.heap_top()
    again = [arena.put(b"y" * 1500) for _ in range(100)]
    assert arena.heap_top() == heap_top  # the freed chunks, not new room
    assert {arena.get(blob) for blob in again} == {b"y" * 1500}


def test_a_full_arena_is_enomem_with_a_clear_message():
    small = Arena.create(HEAP_AT + 64 * PAGE)
    with pytest.raises(OSError) as caught:
        for _ in range(100):
            small.put(b"z" * PAGE)
    assert caught.value.errno == errno.ENOMEM and "shared arena" in str(caught.value)
    small.close()


def test_the_lock_excludes_other_processes_and_threads(arena):
    counter = arena.put((0).to_bytes(8, "little"))
    closed = [Arena.create(SMALL) for _ in range(4)]  # arenas closed before a fork must not spoil it
    for other in closed:
        other.close()

    def add(times: int) -> None:
        for _ in range(times):
            with arena.locked():
                value = int.from_bytes(arena.get(counter), "little")
                os.sched_yield()  # invite the others in: only the lock keeps them out
                arena.replace(counter, (value + 1).to_bytes(8, "little"))

    def threads_adding() -> None:
        workers = [threading.Thread(target=add, args=(200,)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            try:
                threads_adding()
            finally:
                os._exit(0)
        pids.append(pid)
    threads_adding()
    for pid in pids:
        os.waitpid(pid, 0)
    assert int.from_bytes(arena.get(counter), "little") == 4 * 3 * 200


def test_a_freshly_started_python_attaches_by_fd(arena):
    blob = arena.put(b"from the main process")
    arena.records("floors", 16).put(b"/cpu/docker/abc", b"cpu 1 2 3")
    script = ("import sys; from lxcfs_py.shm import Arena; a = Arena.attach(int(sys.argv[1])); "
              "print(a.get(int(sys.argv[2])).decode()); print(a.records('floors', 16).get(b'/cpu/docker/abc').decode());"
              "a.put(b'from the worker')")
    out = subprocess.run([sys.executable, "-I", "-c", script, str(arena.fd), str(blob)], pass_fds=[arena.fd],
                         capture_output=True, check=True, text=True).stdout
    assert out.splitlines() == ["from the main process", "cpu 1 2 3"]


def test_attaching_to_something_else_is_refused_and_leaves_its_fd(tmp_path):
    fd = os.memfd_create("not-an-arena")
    os.ftruncate(fd, SMALL)
    with pytest.raises(ValueError, match="not an lxcfs-py shared arena"):
        Arena.attach(fd)
    os.fstat(fd)  # still open
    os.close(fd)


def test_records_keep_their_order_and_drop_the_oldest_when_full(arena):
    table = arena.records("loads", 3)
    for name in ("a", "b", "c"):
        table.put(name.encode(), name.upper().encode())
    in_child(lambda: table.put(b"b", b"B2"))  # replaced in place: keeps its turn
    in_child(lambda: arena.records("loads", 3).put(b"d", b"D"))  # full: "a", the oldest, goes
    assert table.items() == [(b"b", b"B2"), (b"c", b"C"), (b"d", b"D")]
    assert table.get(b"a") is None and len(table) == 3
    assert in_child(lambda: table.delete(b"c")) and list(table) == [b"b", b"d"]


def test_records_without_eviction_refuse_when_full(arena):
    table = arena.records("files", 2, evict=False)
    table.put(b"1", b"x")
    table.put(b"2", b"y")
    with pytest.raises(OSError) as caught:
        table.put(b"3", b"z")
    assert caught.value.errno == errno.ENOMEM and "'files'" in str(caught.value)
    assert table.items() == [(b"1", b"x"), (b"2", b"y")]


def test_many_colliding_records_are_found_and_removed(arena):
    table = arena.records("dirs", 300, evict=False)
    keys = [n.to_bytes(8, "little") for n in range(300)]
    for key in keys:
        table.put(key, key * 2)
    for key in keys[::2]:
        assert table.delete(key)
    assert [table.get(key) for key in keys] == [None if n % 2 == 0 else key * 2 for n, key in enumerate(keys)]
    assert list(table) == keys[1::2]


def test_a_patch_changes_bytes_of_one_value_in_place_and_nothing_past_it(arena):
    table = arena.records("files", 4, evict=False)
    table.put(b"fh1", b"\x00snapshot")
    table.put(b"fh2", b"\x00other")
    assert in_child(lambda: table.patch(b"fh1", 0, b"\x01"))
    assert table.get(b"fh1") == b"\x01snapshot" and table.get(b"fh2") == b"\x00other"
    assert not table.patch(b"fh3", 0, b"\x01")
    with pytest.raises(ValueError):
        table.patch(b"fh2", 5, b"xx")
