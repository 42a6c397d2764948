"""Caller pid -> its pid namespace's init -> that init's cgroup (spec §10)."""

import os
import shutil

import pytest

from lxcfs_py import caller as caller_mod
from lxcfs_py.caller import CallerGone, CallerResolver, find_init, parse_proc_cgroup, pidns_inode
from tests.fixtures.trees import proc_cgroup, write


def resolver(fake) -> CallerResolver:
    return CallerResolver(fake.roots.proc, fake.factory, host_pidns=fake.namespaces["host"])


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


def test_cgroup_reread_after_refresh_interval(fake_rw, monkeypatch):
    r = resolver(fake_rw)
    now = [100.0]
    monkeypatch.setattr(caller_mod.time, "monotonic", lambda: now[0])
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
