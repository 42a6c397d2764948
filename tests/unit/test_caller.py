"""Caller pid -> its pid namespace's init -> that init's cgroup (spec §10)."""

import errno
import os
import shutil
import signal
import subprocess

import pytest

from lxcfs_py import caller as caller_mod
from lxcfs_py.host import CLK_TCK
from lxcfs_py.caller import (
    SCAN_BURST, SCAN_RATE, CallerGone, CallerResolver, PidfdPins, ScanRefused, StartTimePins, find_init,
    parse_proc_cgroup, pidns_inode, pins_for,
)
from tests.fixtures.trees import Proc, proc_cgroup, proc_stat_line, proc_status, write


def resolver(fake, **kwargs) -> CallerResolver:
    return CallerResolver(fake.roots.proc, fake.factory, host_pidns=fake.namespaces["host"], **kwargs)


@pytest.mark.parametrize("text, paths", [
    ("0::/docker/abc\n", {"": "/docker/abc"}),
    ("11:cpuset:/docker/abc\n4:cpu,cpuacct:/docker/x\n1:name=systemd:/user.slice\n0::/\n",
     {"cpuset": "/docker/abc", "cpu": "/docker/x", "cpuacct": "/docker/x", "systemd": "/user.slice", "": "/"}),
    ("0::/path:with:colons\n", {"": "/path:with:colons"}),
    ("garbage\n\n3:memory\n", {}),
    ("", {}),
])
def test_parse_proc_cgroup(text, paths):
    assert parse_proc_cgroup(text) == paths


@pytest.mark.parametrize("pid, init", [
    (1000, 1000),  # the init itself
    (1001, 1000),  # its child: found by walking up the parents
    (1002, 1000),  # entered with setns (parent outside the namespace): found by a scan
    (2000, 2000),
])
def test_find_init(fake, pid, init):
    ns = pidns_inode(fake.roots.proc, pid)
    assert find_init(fake.roots.proc, pid, ns) == init


def test_namespace_inodes_are_shared_within_a_namespace(fake):
    inode = {pid: pidns_inode(fake.roots.proc, pid) for pid in (1, 900, 1000, 1001, 1002, 2000)}
    assert inode[1] == inode[900] == fake.namespaces["host"]
    assert inode[1000] == inode[1001] == inode[1002] == fake.namespaces["c1"]
    assert inode[2000] == fake.namespaces["c2"] != inode[1000]


@pytest.mark.parametrize("pid", [1, 900])
def test_host_processes_get_no_cgroup(fake, pid):
    c = resolver(fake).resolve(pid)
    assert (c.init_pid, c.cgroup) == (1, None)


@pytest.mark.parametrize("pid", [1000, 1001, 1002])
def test_container_processes_get_their_inits_cgroup(fake, pid):
    c = resolver(fake).resolve(pid)
    assert c.init_pid == 1000
    assert c.cgroup.version == fake.version
    assert c.cgroup.dir("memory") == fake.cg_dirs("/docker/abc")[0]


def test_systemd_container_init_scope_is_pruned(fake):
    c = resolver(fake).resolve(2000)
    assert c.init_pid == 2000
    assert c.cgroup.dir("memory") == fake.cg_dirs("/docker/def")[0]


def test_unknown_pid(fake):
    with pytest.raises(CallerGone):
        resolver(fake).resolve(4242)


def test_cached_per_namespace(fake):
    r = resolver(fake)
    assert r.resolve(1001) is r.resolve(1002)


def test_cache_dropped_when_the_init_exits(fake_rw):
    r = resolver(fake_rw)
    r.resolve(1001)
    shutil.rmtree(f"{fake_rw.roots.proc}/1000")
    with pytest.raises(CallerGone):  # no init left in the namespace
        r.resolve(1001)


def test_cgroup_reread_after_refresh_interval(fake_rw):
    now = [100.0]
    r = resolver(fake_rw, clock=lambda: now[0])
    assert r.resolve(1001).cgroup.dir("memory").endswith("/docker/abc")
    write(f"{fake_rw.roots.proc}/1000/cgroup", proc_cgroup("/docker/cfs", fake_rw.version))
    assert r.resolve(1001).cgroup.dir("memory").endswith("/docker/abc")  # still cached
    now[0] += caller_mod.REFRESH_SECONDS
    assert r.resolve(1001).cgroup.dir("memory").endswith("/docker/cfs")


@pytest.mark.parametrize("missing", ["1001/status", "1000/cgroup"])
def test_files_vanishing_mid_resolve(fake_rw, missing):
    os.unlink(f"{fake_rw.roots.proc}/{missing}")
    with pytest.raises(CallerGone):
        resolver(fake_rw).resolve(1001)


# -- fixture processes added or swapped by a test ------------------------------------
def put_process(fake, p: Proc) -> None:
    """/proc/<p.pid> for `p`, replacing what was there; namespace p.ns is created if new."""
    d = f"{fake.roots.proc}/{p.pid}"
    shutil.rmtree(d, ignore_errors=True)
    write(f"{d}/stat", proc_stat_line(p))
    write(f"{d}/status", proc_status(p, p.pid))
    write(f"{d}/cgroup", proc_cgroup(p.cgroup, fake.version))
    ns_file = f"{os.path.dirname(fake.roots.proc)}/ns/{p.ns}"
    if not os.path.exists(ns_file):
        write(ns_file, f"pid:[{p.ns}]\n")
    os.makedirs(f"{d}/ns")
    os.link(ns_file, f"{d}/ns/pid")


def entered_namespaces(fake, count: int) -> list[int]:
    """`count` namespaces, each with an init and a process entered with setns: the pids of the latter."""
    entered = []
    for n in range(count):
        init, member = 5000 + 2 * n, 5001 + 2 * n
        put_process(fake, Proc(init, "sh", 900, f"flood{n}", (init, 1), "/docker/cfs", 700, {init: "S"}))
        put_process(fake, Proc(member, "cat", 900, f"flood{n}", (member, 2), "/docker/cfs", 701, {member: "S"}))
        entered.append(member)
    return entered


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def counted_scans(monkeypatch):
    scans = []
    real = caller_mod.scan_for_init

    def scan(proc_root, ns):
        scans.append(ns)
        return real(proc_root, ns)

    monkeypatch.setattr(caller_mod, "scan_for_init", scan)
    return scans


# -- point 1: /proc scans are bounded ------------------------------------------------
def test_scans_are_rate_limited_and_refusals_are_eagain(fake_rw, counted_scans):
    clock = Clock()
    r = resolver(fake_rw, clock=clock)
    pids = entered_namespaces(fake_rw, SCAN_BURST + 2)
    for pid in pids[:SCAN_BURST]:
        assert r.resolve(pid).init_pid == pid - 1
    with pytest.raises(ScanRefused) as refused:
        r.resolve(pids[SCAN_BURST])
    assert refused.value.errno == errno.EAGAIN
    assert len(counted_scans) == SCAN_BURST
    # callers that need no scan are served meanwhile: by the parent walk, or from the cache
    assert r.resolve(1001).init_pid == 1000
    assert r.resolve(pids[0]).init_pid == pids[0] - 1
    clock.now += 1 / SCAN_RATE
    assert r.resolve(pids[SCAN_BURST]).init_pid == pids[SCAN_BURST] - 1
    with pytest.raises(ScanRefused):
        r.resolve(pids[SCAN_BURST + 1])
    assert len(counted_scans) == SCAN_BURST + 1


def test_a_namespace_without_init_is_not_scanned_again_soon(fake_rw, counted_scans):
    clock = Clock()
    r = resolver(fake_rw, clock=clock)
    put_process(fake_rw, Proc(6001, "orphan", 900, "dying", (6001, 5), "/docker/cfs", 800, {6001: "S"}))
    for _ in range(3):
        with pytest.raises(CallerGone):
            r.resolve(6001)
    assert len(counted_scans) == 1
    clock.now += caller_mod.NOT_FOUND_SECONDS
    with pytest.raises(CallerGone):
        r.resolve(6001)
    assert len(counted_scans) == 2


def test_a_namespace_found_by_a_scan_is_not_scanned_again(fake_rw, counted_scans):
    clock = Clock()
    r = resolver(fake_rw, clock=clock)
    for _ in range(3):
        assert r.resolve(1002).init_pid == 1000
        clock.now += caller_mod.REFRESH_SECONDS  # refreshes re-read the cgroup only
    assert len(counted_scans) == 1


# -- point 2: a pid reused between the steps is never trusted --------------------------
def test_a_cached_init_whose_pid_and_namespace_inode_were_reused(fake_rw):
    """Container abc ends; a new namespace gets its inode and a process of it gets the old init's pid 1000."""
    r = resolver(fake_rw, clock=Clock())
    assert r.resolve(1001).cgroup.dir("memory").endswith("/docker/abc")
    for pid in (1000, 1001, 1002):
        shutil.rmtree(f"{fake_rw.roots.proc}/{pid}")
    # "c1" is the same ns file, hence the same inode: the freed inode number handed out again
    put_process(fake_rw, Proc(3000, "init", 900, "c1", (3000, 1), "/docker/cfs", 950, {3000: "S"}))
    put_process(fake_rw, Proc(1000, "reader", 3000, "c1", (1000, 2), "/docker/cfs", 951, {1000: "S"}))
    c = r.resolve(1000)
    assert (c.init_pid, c.cgroup.dir("memory")) == (3000, fake_rw.cg_dirs("/docker/cfs")[0])


def test_an_init_replaced_while_its_cgroup_is_read(fake_rw, monkeypatch):
    """Between the checks of init 1000 and the read of its cgroup, it exits and another container's init takes 1000."""
    real = caller_mod.read_text
    swapped = []

    def read_text(path):
        if path == f"{fake_rw.roots.proc}/1000/cgroup" and not swapped:
            swapped.append(path)
            put_process(fake_rw, Proc(1000, "init", 900, "other", (1000, 1), "/docker/cfs", 950, {1000: "S"}))
        return real(path)

    monkeypatch.setattr(caller_mod, "read_text", read_text)
    with pytest.raises(CallerGone):  # the old code served /docker/cfs, another container's cgroup
        resolver(fake_rw).resolve(1001)
    assert swapped


def test_pins_follow_processes_not_pid_numbers():
    child = subprocess.Popen(["sleep", "60"])
    pins = PidfdPins()
    pin = pins.pin(child.pid)
    try:
        assert pins.alive(pin)
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert pins.alive(pin)  # a zombie still holds its pid (and its namespace)
        child.wait()
        assert not pins.alive(pin)
    finally:
        pins.release(pin)


def test_pidfds_only_on_the_real_proc(fake):
    assert isinstance(pins_for("/proc"), PidfdPins)
    assert isinstance(pins_for(fake.roots.proc), StartTimePins)


def test_evicted_and_dead_entries_release_their_pins(fake_rw):
    released = []

    class Recording(StartTimePins):
        def release(self, pin):
            released.append(pin)

    r = resolver(fake_rw, pins=Recording(fake_rw.roots.proc), max_cached=1)
    r.resolve(1001)
    r.resolve(2000)  # evicts c1
    assert released == [(1000, 500 * CLK_TCK)]
    put_process(fake_rw, Proc(2000, "new", 1, "c2", (2000, 9), "/", 990, {2000: "S"}))
    with pytest.raises(CallerGone):  # 2000 is another process now, and c2 has no init left
        r.resolve(2000)
    assert released == [(1000, 500 * CLK_TCK), (2000, 600 * CLK_TCK)]
