"""SharedState between real processes: what worker processes, each on its own clone of the FUSE
connection, see of each other's open files, budgets, floors and loads."""

import errno
import json
import os

import pytest

from lxcfs_py.caller import CallerResolver
from lxcfs_py.context import Options
from lxcfs_py.files import stat
from lxcfs_py.files.cpuview import CpuView, Usage
from lxcfs_py.fuse_ops import LxcfsOperations
from lxcfs_py.sampler import Load, LoadSampler
from lxcfs_py.shared_state import SharedState
from lxcfs_py.state import DaemonState
from tests.fixtures import trees
from tests.unit.test_fuse_ops import CONTAINER, HOST, fuse_errno, lookup, memtotal, open_file, run, set_memory_limit
from tests.unit.test_shm import in_child
from tests.unit.test_state import OTHER


def worker(fake, state, opts=Options()) -> LxcfsOperations:
    resolver = CallerResolver(fake.roots.proc, fake.factory, host_pidns=fake.namespaces["host"])
    return LxcfsOperations(fake.roots, opts, resolver, state=state, reuse_window=0.0)


def attached(fake, main: SharedState, opts=Options()) -> LxcfsOperations:
    """Another worker: its own Operations on the main process's arena, found by its fd."""
    return worker(fake, SharedState.attach(os.dup(main.fd)), opts)


def test_a_file_opened_at_one_worker_is_read_rewound_and_released_at_another(fake_rw):
    main = SharedState.create()
    first = worker(fake_rw, main)
    fh = open_file(first, "proc/meminfo")
    snapshot = first.state.file(fh).content
    set_memory_limit(fake_rw, "/docker/abc", 256 * trees.MiB)  # the numbers change after the open

    def other_worker():
        ops = attached(fake_rw, main)
        pieces = [run(ops.read, fh, off, 100) for off in range(0, len(snapshot), 100)]
        rewound = run(ops.read, fh, 0, 1 << 20)
        return b"".join(pieces), rewound

    pieces, rewound = in_child(other_worker)
    assert pieces == snapshot  # one consistent file, opened elsewhere
    assert memtotal(snapshot) == b"MemTotal:         524288 kB"
    assert memtotal(rewound) == b"MemTotal:         262144 kB"  # the rewind renders afresh
    assert first.state.file(fh).content == rewound  # and the fresh snapshot is everyone's
    assert in_child(lambda: run(attached(fake_rw, main).release, fh)) is None
    assert fuse_errno(first.read, fh, 0, 10) == errno.EBADF
    assert fuse_errno(first.release, fh) == errno.EBADF
    assert main.held() == {}


def test_a_listing_opened_at_one_worker_is_read_and_released_at_another(fake):
    main = SharedState.create()
    first = worker(fake, main)
    listing = run(first.opendir, lookup(first, "sys/devices/system/cpu"), CONTAINER)
    entries = first.state.dir_entries(listing)

    def other_worker():
        ops = attached(fake, main)
        names = ops.state.dir_entries(listing)
        run(ops.releasedir, listing)
        return names

    assert in_child(other_worker) == entries and ("cpu1", lookup(first, "sys/devices/system/cpu/cpu1")) in entries
    assert first.state.dir_entries(listing) is None
    assert fuse_errno(first.releasedir, listing) == errno.EBADF


def test_budgets_count_the_handles_of_all_workers(fake):
    main = SharedState.create(max_handles=5)
    first = worker(fake, main)
    held = [open_file(first, "proc/meminfo") for _ in range(3)]

    def other_worker():
        ops = attached(fake, main)
        mine = [open_file(ops, "proc/meminfo") for _ in range(2)]
        refused = fuse_errno(ops.open, lookup(ops, "proc/meminfo"), os.O_RDONLY, CONTAINER)
        open_file(ops, "proc/meminfo", OTHER)  # another container is not held back
        return mine, refused

    theirs, refused = in_child(other_worker)
    assert refused == errno.EMFILE
    assert fuse_errno(first.open, lookup(first, "proc/meminfo"), os.O_RDONLY, CONTAINER) == errno.EMFILE
    run(first.release, theirs[0])  # a handle the other worker opened frees room here
    held.append(open_file(first, "proc/meminfo"))
    counts = {owner: handles for owner, (handles, _) in main.held().items()}
    assert sorted(counts.values()) == [1, 5]  # container abc: 5; container def: the one the other opened


def test_floors_never_go_backwards_across_workers(v1_rw):
    main = SharedState.create()

    def shown(floors) -> list[str]:
        return stat.render(v1_rw.req("/docker/abc", floors=floors)).decode().splitlines()[:3]

    first = in_child(lambda: shown(SharedState.attach(os.dup(main.fd)).floors))
    # the container burnt 1 s more on cpu1 while the host's tick-sampled busy time did not move yet
    trees.write(v1_rw.cg_file("/docker/abc", "cpuacct.usage_all"),
                "cpu user system\n0 0 0\n1 6000000000 3000000000\n2 0 0\n3 2000000000 1000000000\n")
    second = shown(main.floors)
    assert second[1].split()[:2] == ["cpu1", "600"]
    for before, after in zip(first, second):
        assert all(int(b) <= int(a) for b, a in zip(before.split()[1:], after.split()[1:])), (before, after)
    unkept = stat.render(v1_rw.req("/docker/abc")).decode().splitlines()[1]
    assert int(unkept.split()[4]) < int(first[1].split()[4])  # without the shared floors it would drop


def test_cpu_views_are_continued_by_any_worker(v1):
    main = SharedState.create()
    alone = DaemonState()
    for views in (main.cpu_views, alone.cpu_views):
        stat.render(v1.req("/docker/cfs", Options(cfs=True), views=views))
    in_child(lambda: stat.render(v1.req("/docker/cfs", Options(cfs=True),
                                        views=SharedState.attach(os.dup(main.fd)).cpu_views)))
    stat.render(v1.req("/docker/cfs", Options(cfs=True), views=alone.cpu_views))
    assert main.cpu_views == alone.cpu_views and len(main.cpu_views) == 1


def test_loads_sampled_in_one_process_are_what_every_worker_renders(fake):
    main = SharedState.create()
    sampler = LoadSampler(fake.roots, main.loads)

    def render_at_a_worker() -> bytes:
        state = SharedState.attach(os.dup(main.fd))
        ops = worker(fake, state, Options(loadavg=True))
        ops.sampler = LoadSampler(fake.roots, state.loads)
        fh = open_file(ops, "proc/loadavg")
        return run(ops.read, fh, 0, 100)

    assert in_child(render_at_a_worker) == b"0.00 0.00 0.00 0/1 1000\n"  # starts tracking it
    assert len(main.loads) == 1
    sampler.sample()
    sampler.sample()
    assert in_child(render_at_a_worker) == b"0.15 0.03 0.01 1/4 1003\n"


def same_operations(fake, state):
    """Opens, reads, rewinds, listings and releases, as one process's daemon would do them."""
    ops = worker(fake, state, Options(cfs=True))
    files = [open_file(ops, path, ctx) for path in ("proc/meminfo", "proc/stat", "proc/cpuinfo")
             for ctx in (CONTAINER, OTHER, HOST)]
    for fh in files[::2]:
        run(ops.read, fh, 0, 10)
    run(ops.read, files[0], 0, 10)  # a rewind
    listing = run(ops.opendir, lookup(ops, "sys/devices/system/cpu"), CONTAINER)
    run(ops.opendir, lookup(ops, "proc"), HOST)
    run(ops.release, files[1])
    run(ops.releasedir, listing)
    state.cpu_views["/cpuset/x"] = CpuView({0: Usage(1, 2, 3)}, {0: Usage(1, 2, 0)}, 4)
    state.loads["/sys/fs/cgroup/x"] = Load([1, 2, 3], 1, 2, 3)
    return ops


def test_both_stores_export_the_same_handover(fake):
    alone = same_operations(fake, DaemonState(epoch=7))
    shared = same_operations(fake, SharedState.create(epoch=7))
    exported = json.loads(shared.state.export())
    assert exported == json.loads(alone.state.export())
    assert exported["handles"] and exported["dirs"] and exported["floors"] and exported["cpu_views"]


@pytest.mark.parametrize("first, then", [(DaemonState, SharedState.create), (SharedState.create, DaemonState)])
def test_a_handover_between_the_stores_keeps_everything(fake, first, then):
    old = same_operations(fake, first(epoch=7))
    new = worker(fake, then())
    new.state.load(old.state.export(), new.revive)
    assert json.loads(new.state.export()) == json.loads(old.state.export())
    assert new.state.held() == old.state.held()


def test_a_stale_or_forged_number_never_reaches_another_open_file(fake):
    from lxcfs_py.shared_files import SLOTS
    main = SharedState.create(epoch=7)
    first = worker(fake, main)
    gone = open_file(first, "proc/meminfo")
    run(first.release, gone)
    mine = open_file(first, "proc/meminfo", OTHER)  # the next number, the next slot
    theirs = open_file(first, "proc/cpuinfo")
    # the slot `mine` or `theirs` sits in, reached by another counter or another epoch
    forged = [gone, mine + SLOTS, theirs - SLOTS, (8 << 32) | (mine & 0xFFFFFFFF), (6 << 32) | (theirs & 0xFFFFFFFF),
              mine ^ (1 << 63), 0, theirs | 0xFFFFFFFF]

    def other_worker():
        ops = attached(fake, main)
        seen = [ops.state.file(fh) for fh in forged] + [ops.state.reading(fh)[0] for fh in forged]
        errors = [fuse_errno(ops.read, fh, 0, 10) for fh in forged] + [fuse_errno(ops.release, fh) for fh in forged]
        return seen, errors, run(ops.read, theirs, 0, 1 << 20)

    seen, errors, content = in_child(other_worker)
    assert seen == [None] * 2 * len(forged)
    assert errors == [errno.EBADF] * 2 * len(forged)
    assert content == first.state.file(theirs).content  # the real numbers still reach their files
    assert [first.state.file(fh) for fh in forged] == [None] * len(forged)
    assert sorted(handles for handles, _ in main.held().values()) == [1, 1]  # nothing released by a forged one


def test_a_file_released_at_one_worker_is_gone_at_the_one_that_holds_its_snapshot(fake_rw):
    main = SharedState.create()
    first = worker(fake_rw, main)
    fh = open_file(first, "proc/meminfo")
    assert run(first.read, fh, 0, 10)  # this worker now holds its snapshot
    in_child(lambda: run(attached(fake_rw, main).release, fh))
    assert first.state.file(fh) is None and first.state.reading(fh) == (None, False)
    again = open_file(first, "proc/meminfo")  # may take the slot again: under its own number
    assert again != fh and first.state.file(fh) is None and first.state.file(again) is not None


def test_a_read_at_another_worker_sees_a_rewind_elsewhere_and_a_rewind_is_told(fake_rw):
    main = SharedState.create()
    first = worker(fake_rw, main)
    fh = open_file(first, "proc/meminfo")
    assert first.state.reading(fh)[1] is False  # the first read
    assert first.state.reading(fh)[1] is True  # then a read at 0 is a rewind
    old = run(first.read, fh, 0, 1 << 20)
    set_memory_limit(fake_rw, "/docker/abc", 256 * trees.MiB)
    assert in_child(lambda: memtotal(run(attached(fake_rw, main).read, fh, 0, 1 << 20))) == \
        b"MemTotal:         262144 kB"
    assert memtotal(old) == b"MemTotal:         524288 kB"
    assert memtotal(first.state.file(fh).content) == b"MemTotal:         262144 kB"  # the other's rewind, here


def test_inherited_numbers_that_share_a_slot_are_all_kept(fake):
    from lxcfs_py.shared_files import SLOTS
    old = same_operations(fake, DaemonState(epoch=7))
    saved = json.loads(old.state.export())
    first = saved["handles"][0]
    # the same slot under other numbers: an older epoch's handle, and one past a wrap
    saved["handles"] += [dict(first, fh=(5 << 32) | (first["fh"] & 0xFFFFFFFF)), dict(first, fh=first["fh"] + SLOTS)]
    main = SharedState.create()
    new = worker(fake, main)
    new.state.load(json.dumps(saved).encode(), new.revive)
    numbers = [handle["fh"] for handle in saved["handles"]]

    def other_worker():
        ops = attached(fake, main)
        contents = [ops.state.file(fh).content for fh in numbers]  # a read at 0 of a read one re-renders
        for fh in numbers[-2:]:
            run(ops.release, fh)
        return contents

    import base64
    assert in_child(other_worker) == [base64.b64decode(handle["content"]) for handle in saved["handles"]]
    assert [new.state.file(fh) is not None for fh in numbers] == [True] * (len(numbers) - 2) + [False, False]
    fresh = [open_file(new, "proc/meminfo") for _ in range(3)]  # new numbers go around the inherited ones
    assert len(set(fresh) | set(numbers)) == len(fresh) + len(numbers)
    assert json.loads(new.state.export())["handles"][:len(numbers) - 2] == saved["handles"][:-2]
