"""The restart state: handle epochs, per-container budgets, and a handover that any version can read."""

import errno
import json
import logging
import os
import stat
from types import SimpleNamespace

import pyfuse3
import pytest

from lxcfs_py.caller import CallerResolver
from lxcfs_py.context import Options
from lxcfs_py.files.cpuview import CpuView, Usage
from lxcfs_py.fuse_ops import LxcfsOperations
from lxcfs_py.sampler import Load
from lxcfs_py.shared_state import SharedState
from lxcfs_py.state import DaemonState
from lxcfs_py.state_format import FIELDS
from tests.unit.test_fuse_ops import CONTAINER, HOST, fuse_errno, lookup, open_file, read_whole, run

OTHER = SimpleNamespace(pid=2000, uid=0, gid=0)  # the init of container "def"
PASSTHROUGH = "sys/devices/system/cpu/kernel_max"


KINDS = ["in-process", "shared"]


@pytest.fixture(params=KINDS)
def kind(request):
    """Each test runs on both stores: one process's DaemonState and the workers' SharedState."""
    return request.param


def store(kind: str, **limits):
    return DaemonState(**limits) if kind == "in-process" else SharedState.create(**limits)


def operations(fake, state=None, opts=Options(), kind="in-process") -> LxcfsOperations:
    resolver = CallerResolver(fake.roots.proc, fake.factory, host_pidns=fake.namespaces["host"])
    return LxcfsOperations(fake.roots, opts, resolver, state=state if state is not None else store(kind))


def handover(old: LxcfsOperations, fake, kind="in-process") -> LxcfsOperations:
    new = operations(fake, kind=kind)
    new.state.load(old.state.export(), new.revive)
    return new


def memtotal(data: bytes) -> bytes:
    return data.split(b"\n")[0]


# -- handle numbers carry the process's epoch -------------------------------------------
@pytest.mark.parametrize("old_kind, new_kind", [(a, b) for a in KINDS for b in KINDS])
def test_a_planned_handover_keeps_open_files_and_listings(fake, old_kind, new_kind):
    old = operations(fake, kind=old_kind)
    files = {open_file(old, "proc/meminfo"): CONTAINER, open_file(old, "proc/meminfo", OTHER): OTHER}
    expected = {fh: run(old.read, fh, 0, 10) for fh in files}
    listing = run(old.opendir, lookup(old, "sys/devices/system/cpu"), CONTAINER)
    new = handover(old, fake, new_kind)
    for fh in files:
        assert run(new.read, fh, 10, 1 << 20) == old.state.file(fh).content[10:]  # the same snapshot
        assert run(new.read, fh, 0, 10) == expected[fh]  # refreshed: still its own container's numbers
    assert new.state.dir_entries(listing) == old.state.dir_entries(listing)
    later = open_file(new, "proc/meminfo")
    assert later not in files and later != listing  # new numbers never collide with inherited ones
    for fh in files:
        run(new.release, fh)
    run(new.releasedir, listing)


def test_after_a_crash_old_handle_numbers_are_refused_not_served(fake, kind):
    crashed = operations(fake, kind=kind)
    container_files = [open_file(crashed, "proc/meminfo") for _ in range(3)]
    listing = run(crashed.opendir, lookup(crashed, "sys/devices/system/cpu"), CONTAINER)
    adopter = operations(fake, kind=kind)  # adopted the connection from the fd store: no state
    other_files = [open_file(adopter, "proc/meminfo", OTHER) for _ in range(len(container_files) + 1)]
    other_listing = run(adopter.opendir, lookup(adopter, "sys/devices/system/cpu"), OTHER)
    for fh in container_files:
        assert fuse_errno(adopter.read, fh, 0, 4096) == errno.EBADF
        assert fuse_errno(adopter.release, fh) == errno.EBADF
    assert fuse_errno(adopter.readdir, listing, 0, None) == errno.EBADF
    assert fuse_errno(adopter.releasedir, listing) == errno.EBADF
    for fh in other_files:  # the adopter's own are served
        assert memtotal(run(adopter.read, fh, 0, 4096)) == memtotal(read_whole(adopter, "proc/meminfo", OTHER))
    run(adopter.releasedir, other_listing)


def test_handle_numbers_carry_the_epoch(kind):
    state = DaemonState(epoch=7) if kind == "in-process" else SharedState.create(epoch=7)
    assert state.add_dir([("", 0)], None) >> 32 == 7
    assert store(kind).epoch != store(kind).epoch  # random per fresh start (equal once in 2**32)


# -- budgets per container -------------------------------------------------------------
def test_a_container_past_its_handles_gets_emfile_and_others_are_served(fake, kind):
    ops = operations(fake, store(kind, max_handles=5))
    held = [open_file(ops, "proc/meminfo") for _ in range(3)] + [open_file(ops, PASSTHROUGH) for _ in range(2)]
    inode = lookup(ops, "proc/meminfo")
    assert fuse_errno(ops.open, inode, os.O_RDONLY, CONTAINER) == errno.EMFILE
    assert fuse_errno(ops.open, lookup(ops, PASSTHROUGH), os.O_RDONLY, CONTAINER) == errno.EMFILE
    assert fuse_errno(ops.opendir, lookup(ops, "proc"), CONTAINER) == errno.EMFILE
    assert read_whole(ops, "proc/meminfo", OTHER) and read_whole(ops, "proc/meminfo", HOST)
    run(ops.release, held.pop())
    fh = open_file(ops, "proc/meminfo")  # a closed handle gives its room back
    assert memtotal(run(ops.read, fh, 0, 4096)) == b"MemTotal:         524288 kB"


def test_a_container_past_its_snapshot_bytes_gets_enomem(fake, kind):
    size = len(read_whole(operations(fake), "proc/cpuinfo"))
    ops = operations(fake, store(kind, max_bytes=3 * size))
    held = [open_file(ops, "proc/cpuinfo") for _ in range(3)]
    assert fuse_errno(ops.open, lookup(ops, "proc/cpuinfo"), os.O_RDONLY, CONTAINER) == errno.ENOMEM
    assert read_whole(ops, "proc/cpuinfo", OTHER)
    for fh in held:
        run(ops.release, fh)
    assert ops.state.held() == {}  # all given back


# -- modes -------------------------------------------------------------------------------
def test_slabinfo_is_root_only_like_the_hosts(fake):
    ops = operations(fake)
    assert run(ops.getattr, lookup(ops, "proc/slabinfo"), CONTAINER).st_mode == stat.S_IFREG | 0o400
    assert run(ops.getattr, lookup(ops, "proc/meminfo"), CONTAINER).st_mode == stat.S_IFREG | 0o444


# -- a handover state from any version is taken, never fatal -------------------------------
def exported(fake, kind="in-process") -> tuple[dict, LxcfsOperations, int]:
    old = operations(fake, kind=kind)
    fh = open_file(old, "proc/meminfo")
    run(old.read, fh, 0, 10)
    old.state.cpu_views["/cpuset/docker/abc"] = CpuView({0: Usage(1, 2, 3)}, {0: Usage(1, 2, 0)}, 4)
    old.state.loads["/sys/fs/cgroup/x"] = Load([1, 2, 3], 1, 2, 3)
    old.state.floors["/sys/fs/cgroup/cpu/docker/abc"] = {"cpu1": [5, 0, 3, 100, 0, 0, 0, 0, 0, 0]}
    return json.loads(old.state.export()), old, fh


def load(fake, data: bytes, caplog, kind="in-process") -> tuple[LxcfsOperations, list[str]]:
    new = operations(fake, kind=kind)
    with caplog.at_level(logging.INFO, logger="lxcfs_py"):
        new.state.load(data, new.revive)
    return new, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unknown_field_is_ignored_with_one_line(fake, caplog, kind):
    saved, old, fh = exported(fake, kind)
    saved["from_the_future"] = {"x": 1}
    new, warnings = load(fake, json.dumps(saved).encode(), caplog, kind)
    assert len(warnings) == 1 and "from_the_future" in warnings[0]
    assert run(new.read, fh, 10, 1 << 20) == old.state.file(fh).content[10:]
    assert new.state.cpu_views == old.state.cpu_views and new.state.loads == old.state.loads
    assert new.state.floors == old.state.floors  # counters shown before a restart stay floors after it


@pytest.mark.parametrize("missing", sorted(FIELDS))
def test_a_missing_field_costs_one_line_and_nothing_else(fake, caplog, missing, kind):
    saved, old, fh = exported(fake, kind)
    del saved[missing]
    new, warnings = load(fake, json.dumps(saved).encode(), caplog, kind)
    assert len(warnings) == 1 and repr(missing) in warnings[0]
    if missing not in ("handles", "epoch"):
        assert run(new.read, fh, 10, 1 << 20) == old.state.file(fh).content[10:]
    if missing != "loads":
        assert new.state.loads == old.state.loads


@pytest.mark.parametrize("field, value", [("handles", 5), ("epoch", "x"), ("paths", [1]), ("cpu_views", {"a": 1}),
                                          ("handles", [{"fh": 1}]), ("floors", {"a": {"cpu": ["x"]}})])
def test_a_bad_field_costs_one_line_and_the_rest_is_taken(fake, caplog, field, value, kind):
    saved, old, fh = exported(fake, kind)
    saved[field] = value
    new, warnings = load(fake, json.dumps(saved).encode(), caplog, kind)
    assert len(warnings) == 1 and field in warnings[0]
    assert new.state.loads == old.state.loads


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_garbage_is_one_line_and_a_fresh_start(fake, caplog, data, kind):
    new, warnings = load(fake, data, caplog, kind)
    assert len(warnings) == 1 and "unreadable" in warnings[0]
    assert new.state.open_files() == 0 and new.paths == {pyfuse3.ROOT_INODE: ""}
    assert read_whole(new, "proc/meminfo")
