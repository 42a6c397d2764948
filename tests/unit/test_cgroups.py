"""The cgroup layer: v1 and v2 files read into the same normalised values."""

import pytest

from lxcfs_py.cgroups.base import CpuTime, IoStat, limit_or_none, min_limit
from lxcfs_py.cgroups.detect import CgroupFactory, detect_version, prune_init_scope
from lxcfs_py.cgroups.v1 import CgroupV1
from lxcfs_py.cgroups.v2 import CgroupV2
from tests.fixtures.trees import GiB, MiB, SEC, V1_UNLIMITED, write


def cg(fake, path="/docker/abc"):
    return fake.factory.for_paths(fake.paths(path))


def test_detect(v1, v2, tmp_path):
    assert (detect_version(v1.roots.cgroup), detect_version(v2.roots.cgroup)) == (1, 2)
    assert isinstance(cg(v1), CgroupV1) and isinstance(cg(v2), CgroupV2)
    assert (v1.factory.version_label(), v2.factory.version_label()) == ("v1", "v2")
    with pytest.raises(RuntimeError):
        CgroupFactory(str(tmp_path))


@pytest.mark.parametrize("path, pruned", [
    ("/docker/def/init.scope", "/docker/def"),
    ("/init.scope", "/"),
    ("/docker/abc", "/docker/abc"),
    ("/docker/init.scope/x", "/docker/init.scope/x"),  # only a trailing init.scope
    ("/docker/notinit.scope", "/docker/notinit.scope"),
])
def test_prune_init_scope(path, pruned):
    assert prune_init_scope(path) == pruned


def test_factory_prunes_init_scope(fake):
    assert cg(fake, "/docker/def/init.scope").dir("memory").endswith("/docker/def")


@pytest.mark.parametrize("values, expected", [
    ([V1_UNLIMITED, 1 * GiB, 512 * MiB], 512 * MiB),
    ([V1_UNLIMITED, None], None),
    ([], None),
    ([-1, 5], 5),
])
def test_min_limit(values, expected):
    assert min_limit(values) == expected


def test_limit_or_none():
    assert (limit_or_none(V1_UNLIMITED), limit_or_none(None), limit_or_none(4096)) == (None, None, 4096)


@pytest.mark.parametrize("path, limit", [
    ("/docker/abc", 512 * MiB),
    ("/docker/unlimited", 1 * GiB),
    ("/docker/big", 1 * GiB),
    ("/lxc/huge", 16 * GiB),
    ("/lxc", None),
    ("/", None),
])
def test_memory_limit(fake, path, limit):
    assert cg(fake, path).memory_limit() == limit


def test_memory_usage_and_stat(fake):
    c = cg(fake)
    assert c.memory_usage() == 100 * MiB
    stat = c.memory_stat()
    assert stat["cache"] == 40 * MiB  # v1 total_cache (not the local "cache"), v2 "file"
    assert stat["active_anon"] == 40 * MiB  # not v1's local active_anon 4096
    assert "rss_huge" not in stat and "pgfault" not in stat


def test_memory_stat_mapped_dirty_writeback_only_on_v1(v1, v2):
    assert {k: cg(v1).memory_stat()[k] for k in ("mapped_file", "dirty", "writeback")} == {
        "mapped_file": 8 * MiB, "dirty": 4096, "writeback": 8192}
    assert not {"mapped_file", "dirty", "writeback"} & set(cg(v2).memory_stat())


@pytest.mark.parametrize("version, swap_limit, swap_usage, swappiness", [
    (1, 768 * MiB, 120 * MiB, 60),  # memsw: memory and swap together
    (2, 256 * MiB, 20 * MiB, None),  # swap alone; no swappiness in v2
])
def test_swap(trees_by_version, version, swap_limit, swap_usage, swappiness):
    c = cg(trees_by_version[version])
    assert c.swap_accounting()
    assert (c.swap_limit(), c.swap_usage(), c.swappiness()) == (swap_limit, swap_usage, swappiness)
    assert c.swap_includes_memory == (version == 1)


@pytest.mark.parametrize("path, cpus, quota", [
    ("/docker/abc", [1, 3], (None, 100000)),
    ("/docker/cfs", [0, 1, 2, 3], (150000, 100000)),
    ("/docker/half", [1, 3], (50000, 100000)),
])
def test_cpuset_and_quota(fake, path, cpus, quota):
    c = cg(fake, path)
    assert c.cpuset() == cpus
    assert c.cfs_quota() == quota


def test_cpu_times(v1, v2):
    assert cg(v1).cpu_times() == {0: CpuTime(0, 0), 1: CpuTime(5 * SEC, 3 * SEC), 2: CpuTime(0, 0),
                                  3: CpuTime(2 * SEC, 1 * SEC)}
    assert cg(v2).cpu_times() is None
    assert cg(v1).cpu_usage_total() == cg(v2).cpu_usage_total() == 11 * SEC


def test_io_stats(v1, v2):
    assert cg(v1).io_stats() is None  # no CFQ blkio files on modern kernels
    assert cg(v2).io_stats() == {
        (8, 0): IoStat(reads=10, read_sectors=2048, writes=20, write_sectors=4096),
        (253, 0): IoStat(),
        (259, 0): IoStat(reads=1, read_sectors=8),
    }


def test_pids_dir_and_slabinfo(v1, v2):
    assert cg(v1).pids_dir() == f"{v1.roots.cgroup}/cpu/docker/abc"
    assert cg(v2).pids_dir() == f"{v2.roots.cgroup}/docker/abc"
    assert cg(v1).slabinfo().startswith("slabinfo - version: 2.1\n")
    assert cg(v2).slabinfo() is None


def test_v1_controller_not_in_proc_cgroup(v1):
    c = v1.factory.for_paths({"memory": "/docker/abc"})
    assert c.dir("cpuset") is None and c.ancestors("cpuset") == []
    assert c.cpuset() is None
    assert c.cpu_times() is None and c.cpu_usage_total() is None
    with pytest.raises(FileNotFoundError):
        c.cfs_quota()


def test_v2_without_a_unified_path(v2):
    c = v2.factory.for_paths({})
    assert c.dir("") is None and c.memory_limit() is None and c.cpuset() is None
    with pytest.raises(FileNotFoundError):
        c.memory_usage()


@pytest.mark.parametrize("content, quota", [
    ("max 100000\n", (None, 100000)),
    ("150000 100000\n", (150000, 100000)),
    ("150000\n", (150000, 100000)),  # no period: the kernel default
    ("-1 100000\n", (None, 100000)),
    ("0 100000\n", (None, 100000)),
    ("garbage\n", (None, 100000)),
    ("", (None, 100000)),
    ("50000 abc\n", (50000, 100000)),
])
def test_v2_cpu_max_parsing(tmp_path, content, quota):
    write(tmp_path / "c" / "cpu.max", content)
    assert CgroupV2(str(tmp_path), {"": "/c"}).cfs_quota() == quota


def test_ancestors(v1, v2):
    assert cg(v1).ancestors("memory") == [f"{v1.roots.cgroup}/memory{p}" for p in ("/docker/abc", "/docker", "")]
    assert cg(v2).ancestors("") == [f"{v2.roots.cgroup}{p}" for p in ("/docker/abc", "/docker", "")]


def _cfs_tree(root, version, quotas):
    """CFS quotas on /slice and /slice/pod (None: unlimited); returns the pod's cgroup."""
    for path, quota in zip(("/slice", "/slice/pod"), quotas):
        if version == 1:
            write(root / "cpu" / path.lstrip("/") / "cpu.cfs_quota_us", f"{quota or -1}\n")
            write(root / "cpu" / path.lstrip("/") / "cpu.cfs_period_us", "100000\n")
        else:
            write(root / path.lstrip("/") / "cpu.max", f"{quota or 'max'} 100000\n")
    return CgroupV1(str(root), {"cpu": "/slice/pod"}) if version == 1 else CgroupV2(str(root), {"": "/slice/pod"})


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("quotas, expected", [
    ((100000, None), (100000, 100000)),  # only the parent (a systemd slice) limits: it counts
    ((50000, 200000), (50000, 100000)),  # the parent is tighter
    ((300000, 150000), (150000, 100000)),  # the child is tighter
    ((None, None), (None, 100000)),
])
def test_the_tightest_quota_on_the_path_counts(tmp_path, version, quotas, expected):
    assert _cfs_tree(tmp_path, version, quotas).cfs_quota() == expected
