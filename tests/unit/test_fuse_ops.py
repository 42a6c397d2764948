"""The pyfuse3 adapter driven directly (no mount): handles, offsets, errnos.

pyfuse3.RequestContext cannot be built outside a FUSE request, so a stand-in
with .pid/.uid/.gid plays the caller. Each handler runs in trio like pyfuse3 runs
it (renders go to a thread: offload.py).
"""

import errno
import os
import shutil
import stat
from types import SimpleNamespace

import outcome
import pyfuse3
import pytest
import trio

from lxcfs_py.caller import CallerGone, CallerResolver
from lxcfs_py.context import Options
from lxcfs_py.fuse_ops import LxcfsOperations, inode_of
from lxcfs_py.registry import FILES, VirtualFile
from tests.fixtures import trees

CONTAINER = SimpleNamespace(pid=1001, uid=0, gid=0)  # a process of /docker/abc
HOST = SimpleNamespace(pid=900, uid=0, gid=0)


def operations(fake, opts=Options(), reuse_window=0.0) -> LxcfsOperations:
    """Every open renders afresh unless a test asks for reuse (recent.py)."""
    resolver = CallerResolver(fake.roots.proc, fake.factory, host_pidns=fake.namespaces["host"])
    return LxcfsOperations(fake.roots, opts, resolver, reuse_window=reuse_window)


def run(method, *args):
    """Run one handler in trio, with the task that answers renders done in threads, as in the daemon."""
    async def handle():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(method.__self__.renders.deliver_forever)
            result = await outcome.acapture(method, *args)
            nursery.cancel_scope.cancel()
        return result

    return trio.run(handle).unwrap()


def fuse_errno(method, *args) -> int:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        run(method, *args)
    return caught.value.errno


def lookup(ops, path, ctx=CONTAINER) -> int:
    inode = pyfuse3.ROOT_INODE
    for name in path.split("/"):
        inode = run(ops.lookup, inode, name.encode(), ctx).st_ino
    return inode


def open_file(ops, path, ctx=CONTAINER) -> int:
    return run(ops.open, lookup(ops, path, ctx), os.O_RDONLY, ctx).fh


def read_whole(ops, path, ctx=CONTAINER) -> bytes:
    fh = open_file(ops, path, ctx)
    data = run(ops.read, fh, 0, 1 << 20)
    run(ops.release, fh)
    return data


READABLE = [*FILES, "sys/devices/system/cpu/cpu1/online", "sys/devices/system/cpu/kernel_max"]


@pytest.mark.parametrize("path", READABLE)
def test_one_byte_reads_reassemble_one_whole_read(fake, path):
    ops = operations(fake)
    whole = read_whole(ops, path)
    assert whole
    fh = open_file(ops, path)

    async def one_byte_reads():
        return [await ops.read(fh, off, 1) for off in range(len(whole) + 2)]

    pieces = trio.run(one_byte_reads)
    assert b"".join(pieces) == whole
    assert pieces[-2:] == [b"", b""]  # past the end: nothing


def test_what_a_container_reads(fake):
    ops = operations(fake)
    assert read_whole(ops, "proc/meminfo").startswith(b"MemTotal:         524288 kB\n")
    assert read_whole(ops, "sys/devices/system/cpu/online") == b"1,3\n"
    assert read_whole(ops, "proc/meminfo", HOST).decode() == trees.HOST_MEMINFO


def test_reads_after_the_first_continue_the_snapshot(fake_rw):
    ops = operations(fake_rw)
    usage = fake_rw.cg_file("/docker/abc", "memory.usage_in_bytes" if fake_rw.version == 1 else "memory.current")
    fh = open_file(ops, "proc/meminfo")
    start = run(ops.read, fh, 0, 40)
    trees.write(usage, f"{200 * trees.MiB}\n")
    rest = run(ops.read, fh, 40, 1 << 20)
    assert b"MemFree:          421888 kB\n" in start + rest  # 512 - 100 MiB: the snapshot
    again = run(ops.read, fh, 0, 1 << 20)  # a rewinding reader (top, free -s) gets fresh numbers
    assert b"MemFree:          319488 kB\n" in again  # 512 - 200 MiB
    assert run(ops.read, fh, 40, 1 << 20) == again[40:]


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC,
                                   os.O_RDONLY | os.O_CREAT])
@pytest.mark.parametrize("path", ["proc/meminfo", "sys/devices/system/cpu/cpu1/online"])
def test_opening_for_writing_is_refused(fake, path, flags):
    ops = operations(fake)
    assert fuse_errno(ops.open, lookup(ops, path), flags, CONTAINER) == errno.EACCES


def test_unknown_inode_and_handle(fake):
    ops = operations(fake)
    unknown = inode_of("proc/nothing")
    assert fuse_errno(ops.getattr, unknown, CONTAINER) == errno.ENOENT
    assert fuse_errno(ops.open, unknown, os.O_RDONLY, CONTAINER) == errno.ENOENT
    assert fuse_errno(ops.opendir, unknown, CONTAINER) == errno.ENOENT
    assert fuse_errno(ops.lookup, pyfuse3.ROOT_INODE, b"nothing", CONTAINER) == errno.ENOENT
    assert fuse_errno(ops.read, 12345, 0, 10) == errno.EBADF


def test_directories_and_files_are_not_confused(fake):
    ops = operations(fake)
    assert fuse_errno(ops.open, lookup(ops, "proc"), os.O_RDONLY, CONTAINER) == errno.EISDIR
    assert fuse_errno(ops.opendir, lookup(ops, "proc/meminfo"), CONTAINER) == errno.ENOTDIR
    assert fuse_errno(ops.readlink, lookup(ops, "proc/meminfo"), CONTAINER) == errno.EINVAL


@pytest.mark.parametrize("error, code", [
    (RuntimeError("a bug"), errno.EIO),
    (ZeroDivisionError(), errno.EIO),
    (IndexError(), errno.EIO),
    (ValueError("bad number"), errno.EIO),
    (PermissionError(errno.EPERM, "no"), errno.EPERM),
    (FileNotFoundError(errno.ENOENT, "gone"), errno.ENOENT),  # also after resolving the caller afresh
    (OSError("no errno"), errno.EIO),
    (CallerGone("exited"), errno.ESRCH),
])
def test_a_failing_render_becomes_an_errno(fake, monkeypatch, error, code):
    def render(req):
        raise error

    monkeypatch.setitem(FILES, "proc/meminfo", VirtualFile(render))
    ops = operations(fake)
    assert fuse_errno(ops.open, lookup(ops, "proc/meminfo"), os.O_RDONLY, CONTAINER) == code
    assert read_whole(ops, "proc/cpuinfo")  # and the next request is served


def test_a_caller_that_is_gone(fake):
    ops = operations(fake)
    inode = lookup(ops, "proc/meminfo")
    assert fuse_errno(ops.open, inode, os.O_RDONLY, SimpleNamespace(pid=4242, uid=0, gid=0)) == errno.ESRCH


def test_a_removed_cgroup_is_resolved_afresh(fake_rw):
    ops = operations(fake_rw)
    assert read_whole(ops, "proc/meminfo").startswith(b"MemTotal:         524288 kB\n")  # cached: /docker/abc
    trees.write(f"{fake_rw.roots.proc}/1000/cgroup", trees.proc_cgroup("/docker/cfs", fake_rw.version))  # moved
    for directory in fake_rw.cg_dirs("/docker/abc"):
        shutil.rmtree(directory)
    # /docker/cfs has no limit of its own: its parent /docker's 1 GiB
    assert read_whole(ops, "proc/meminfo").startswith(b"MemTotal:        1048576 kB\n")


def reusing(fake):
    """Operations reusing renders, on a clock the test moves."""
    ops = operations(fake, reuse_window=0.02)
    clock = [0.0]
    ops.recent.clock = lambda: clock[0]
    return ops, clock


def memtotal(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0]


def set_memory_limit(fake_rw, cgroup: str, value: int) -> None:
    name = "memory.limit_in_bytes" if fake_rw.version == 1 else "memory.max"
    trees.write(fake_rw.cg_file(cgroup, name), f"{value}\n")


def test_a_container_reopening_within_the_window_gets_the_same_render(fake_rw):
    ops, clock = reusing(fake_rw)
    first = read_whole(ops, "proc/meminfo")
    set_memory_limit(fake_rw, "/docker/abc", 256 * trees.MiB)
    clock[0] += 0.019
    assert read_whole(ops, "proc/meminfo") == first
    clock[0] += 0.002  # past the window: rendered afresh
    assert memtotal(read_whole(ops, "proc/meminfo")) == b"MemTotal:         262144 kB"


def test_a_rewinding_reader_renders_afresh_within_the_window(fake_rw):
    ops, _ = reusing(fake_rw)
    fh = open_file(ops, "proc/meminfo")
    assert memtotal(run(ops.read, fh, 0, 1 << 20)) == b"MemTotal:         524288 kB"
    set_memory_limit(fake_rw, "/docker/abc", 256 * trees.MiB)
    assert memtotal(run(ops.read, fh, 0, 1 << 20)) == b"MemTotal:         262144 kB"
    run(ops.release, fh)
    # and the fresh render is what the container's next open gets
    assert memtotal(read_whole(ops, "proc/meminfo")) == b"MemTotal:         262144 kB"


@pytest.mark.parametrize("path", list(FILES))
def test_a_render_is_never_reused_for_another_caller(fake, path):
    ops, _ = reusing(fake)
    other = SimpleNamespace(pid=2000, uid=0, gid=0)  # container "def"
    for first, second in ((CONTAINER, other), (other, HOST), (HOST, CONTAINER)):
        fresh = operations(fake)
        assert read_whole(ops, path, first) == read_whole(fresh, path, first)
        assert read_whole(ops, path, second) == read_whole(fresh, path, second), (first, second)


@pytest.mark.parametrize("ctx, cpus", [
    (CONTAINER, ["cpu1", "cpu3"]),
    (HOST, ["cpu0", "cpu1", "cpu2", "cpu3"]),
])
def test_cpu_directory_per_caller(fake, ctx, cpus):
    ops = operations(fake)
    directory = lookup(ops, "sys/devices/system/cpu", ctx)
    fh = run(ops.opendir, directory, ctx)
    names = [name for name, _ in ops.state.dir_entries(fh)[1:]]
    assert [n for n in names if n[3:].isdigit()] == cpus
    assert "online" in names and "cpufreq" in names
    for n in range(4):
        if f"cpu{n}" in cpus:
            assert run(ops.lookup, directory, f"cpu{n}".encode(), ctx).st_mode & stat.S_IFDIR
        else:
            assert fuse_errno(ops.lookup, directory, f"cpu{n}".encode(), ctx) == errno.ENOENT
    run(ops.releasedir, fh)
    assert ops.state.dir_entries(fh) is None


def test_attributes(fake):
    ops = operations(fake)
    meminfo = run(ops.getattr, lookup(ops, "proc/meminfo"), CONTAINER)
    assert (meminfo.st_mode, meminfo.st_nlink, meminfo.st_uid) == (stat.S_IFREG | 0o444, 1, 0)
    proc = run(ops.getattr, lookup(ops, "proc"), CONTAINER)
    assert proc.st_mode == stat.S_IFDIR | 0o555
    online = run(ops.getattr, lookup(ops, "sys/devices/system/cpu/cpu1/online"), CONTAINER)
    assert stat.S_ISREG(online.st_mode) and not online.st_mode & 0o222 and online.st_size == 2
    assert run(ops.lookup, lookup(ops, "proc"), b"..", CONTAINER).st_ino == pyfuse3.ROOT_INODE
    assert run(ops.lookup, lookup(ops, "proc"), b".", CONTAINER).st_ino == lookup(ops, "proc")


def test_symlinks_pass_through(fake):
    ops = operations(fake)
    link = lookup(ops, "sys/devices/system/cpu/cpu0/subsystem", HOST)
    assert stat.S_ISLNK(run(ops.getattr, link, HOST).st_mode)
    assert run(ops.readlink, link, HOST) == b"../../../../bus/cpu"


@pytest.mark.parametrize("method, args, code", [
    ("write", (1, 0, b"x"), errno.EACCES),
    ("mkdir", (1, b"d", 0o755, CONTAINER), errno.EROFS),
    ("unlink", (1, b"proc", CONTAINER), errno.EROFS),
    ("create", (1, b"f", 0o644, os.O_WRONLY, CONTAINER), errno.EROFS),
    ("rename", (1, b"a", 1, b"b", 0, CONTAINER), errno.EROFS),
    ("setxattr", (1, b"user.x", b"1", CONTAINER), errno.EROFS),
])
def test_changes_are_refused(fake, method, args, code):
    assert fuse_errno(getattr(operations(fake), method), *args) == code


def test_statfs(fake):
    assert run(operations(fake).statfs, CONTAINER).f_bsize == 4096
