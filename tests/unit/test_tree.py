"""The mount's tree: what each caller lists and which nodes exist."""

import pytest

from lxcfs_py.context import Options
from lxcfs_py.registry import FILES, directories
from lxcfs_py.served_files import SERVED_FILES
from lxcfs_py.tree import Tree

PROC = sorted(path.removeprefix("proc/") for path in SERVED_FILES if path.startswith("proc/"))
CPU_DIR_HOST = ["cpu0", "cpu1", "cpu2", "cpu3", "cpufreq", "kernel_max", "offline", "online", "possible", "present"]


def test_fixed_directories(fake):
    tree = Tree(fake.roots)
    req = fake.req()
    assert tree.listdir("", req) == ["proc", "sys"]
    assert tree.listdir("proc", req) == PROC
    assert tree.listdir("sys/devices", req) == ["system"]


@pytest.mark.parametrize("cgroup, cfs, cpus", [
    (None, False, ["cpu0", "cpu1", "cpu2", "cpu3"]),
    ("/docker/abc", False, ["cpu1", "cpu3"]),
    ("/docker/cfs", True, ["cpu0", "cpu1"]),
])
def test_cpu_dir_is_filtered_per_caller(fake, cgroup, cfs, cpus):
    listing = Tree(fake.roots).listdir("sys/devices/system/cpu", fake.req(cgroup, Options(cfs=cfs)))
    assert listing == sorted(cpus + [n for n in CPU_DIR_HOST if not n[3:].isdigit()])


def test_passthrough_below_the_top_is_not_filtered(fake):
    tree = Tree(fake.roots)
    req = fake.req("/docker/abc")
    assert tree.listdir("sys/devices/system/cpu/cpu0", req) == ["subsystem", "topology"]
    assert tree.visible("sys/devices/system/cpu/cpu0/topology", req)
    assert not tree.visible("sys/devices/system/cpu/cpu0", req)
    assert tree.visible("sys/devices/system/cpu/cpu1", req)
    assert tree.visible("proc/meminfo", req)


@pytest.mark.parametrize("path, kind, per_caller", [
    ("", "dir", False),
    ("proc", "dir", False),
    ("proc/meminfo", "file", False),
    ("sys/devices/system/cpu", "dir", False),
    ("sys/devices/system/cpu/online", "file", False),  # virtual, not the host's
    ("sys/devices/system/cpu/cpu2", "dir", True),
    ("sys/devices/system/cpu/kernel_max", "file", True),
    ("sys/devices/system/cpu/cpu1/online", "file", False),
    ("sys/devices/system/cpu/cpu0/subsystem", "link", False),
])
def test_nodes(fake, path, kind, per_caller):
    node = Tree(fake.roots).node(path)
    assert (node.kind, node.per_caller) == (kind, per_caller)
    assert (node.virtual is not None) == (path in FILES)


@pytest.mark.parametrize("path", ["proc/nope", "sys/devices/system/cpu/cpu9", "sys/kernel", "proc/meminfo/x"])
def test_missing_nodes(fake, path):
    assert Tree(fake.roots).node(path) is None


def test_registry_shape():
    assert directories() == {"", "proc", "sys", "sys/devices", "sys/devices/system", "sys/devices/system/cpu"}
