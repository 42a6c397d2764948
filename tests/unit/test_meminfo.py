"""/proc/meminfo as a container sees it (spec §1)."""

import os

import pytest

from lxcfs_py.context import Options
from lxcfs_py.files import meminfo
from tests.fixtures import trees
from tests.fixtures.trees import HOST_MEMINFO, HOST_MEMTOTAL_KB, HOST_SWAPTOTAL_KB


def fields(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        out[label] = int(rest.split()[0])
    return out


def read(fake, cgroup="/docker/abc", **opts) -> dict[str, int]:
    return fields(meminfo.render(fake.req(cgroup, Options(**opts))).decode())


# /docker/abc: limit 512 MiB, usage 100 MiB, memory.stat from trees.MEMSTAT
ABC = {
    "MemTotal": 524288,
    "MemFree": 524288 - 102400,
    "MemAvailable": 524288 - 102400 + 40960,  # free + cache
    "Buffers": 0,
    "Cached": 40960,
    "SwapCached": 0,
    "Active": 40960 + 16384,  # active_anon + active_file
    "Inactive": 12288 + 20480,
    "Active(anon)": 40960,
    "Inactive(anon)": 12288,
    "Active(file)": 16384,
    "Inactive(file)": 20480,
    "Unevictable": 1024,
    "AnonPages": 40960 + 12288 - 4096,  # active_anon + inactive_anon - shmem
    "Shmem": 4096,
    "Slab": 0,
    "SReclaimable": 0,
    "SUnreclaim": 0,
    "AnonHugePages": 0,  # LXCFS never sets total_rss_huge (prefix quirk)
    "ShmemHugePages": 0,
    "ShmemPmdMapped": 0,
}


def test_container_values(fake):
    got = read(fake)
    assert {k: got[k] for k in ABC} == ABC


@pytest.mark.parametrize("version, dirty, writeback, mapped", [
    (1, 4, 8, 8192),  # total_dirty, total_writeback, total_mapped_file
    (2, 0, 0, 0),  # LXCFS's v2 parser never reaches file_mapped/file_dirty/file_writeback
])
def test_dirty_writeback_mapped(trees_by_version, version, dirty, writeback, mapped):
    got = read(trees_by_version[version])
    assert (got["Dirty"], got["Writeback"], got["Mapped"]) == (dirty, writeback, mapped)


def test_line_format_and_host_lines_verbatim(fake):
    text = meminfo.render(fake.req()).decode()
    lines = text.splitlines()
    assert lines[0] == "MemTotal:         524288 kB"
    assert "Inactive(anon):    12288 kB" in lines
    # lines LXCFS does not rewrite are the host's, in the host's order
    host_lines = HOST_MEMINFO.splitlines()
    assert [line.partition(":")[0] for line in lines] == [line.partition(":")[0] for line in host_lines]
    kept = ("Mlocked:", "KReclaimable:", "VmallocTotal:", "HugePages_Total:", "Hugepagesize:", "DirectMap1G:")
    assert [line for line in lines if line.startswith(kept)] == [line for line in host_lines if line.startswith(kept)]


@pytest.mark.parametrize("cgroup, memtotal, used", [
    ("/docker/abc", 524288, 102400),  # its own 512 MiB
    ("/docker/unlimited", 1048576, 51200),  # no limit of its own: the parent /docker's 1 GiB
    ("/docker/big", 1048576, 51200),  # 4 GiB, but /docker allows only 1 GiB
    ("/lxc/huge", HOST_MEMTOTAL_KB, 51200),  # 16 GiB is more than the host has
    ("/lxc", HOST_MEMTOTAL_KB, 51200),  # unlimited all the way up
])
def test_memtotal_is_the_tightest_limit(fake, cgroup, memtotal, used):
    got = read(fake, cgroup)
    assert got["MemTotal"] == memtotal
    assert got["MemFree"] == memtotal - used


def test_usage_above_limit_gives_zero_free_not_a_negative(v1_rw):
    trees.write(v1_rw.cg_file("/docker/abc", "memory.usage_in_bytes"), f"{600 * 1024 * 1024}\n")
    got = read(v1_rw)
    assert got["MemFree"] == 0
    assert got["MemAvailable"] == 40960


def test_host_caller_sees_the_host_file(fake):
    assert meminfo.render(fake.req(None)).decode() == HOST_MEMINFO


# -- swap --------------------------------------------------------------------------
@pytest.mark.parametrize("version, cgroup, swap_total, swap_free", [
    # v1: memsw limit 768 MiB = memory 512 + swap 256 -> SwapTotal = memsw (LXCFS adds the memory back)
    (1, "/docker/abc", 786432, 786432 - 20480),
    # v2: swap.max 256 MiB is swap alone
    (2, "/docker/abc", 262144, 262144 - 20480),
    # no swap limit anywhere: the host's swap is the bound
    (1, "/lxc/noswaplimit", HOST_SWAPTOTAL_KB, HOST_SWAPTOTAL_KB - 30720),
    (2, "/lxc/noswaplimit", HOST_SWAPTOTAL_KB, HOST_SWAPTOTAL_KB - 30720),
    # swappiness 0 (v1 only): SwapTotal is what is already used, nothing free
    (1, "/docker/noswap", 10240, 0),
])
def test_swap(trees_by_version, version, cgroup, swap_total, swap_free):
    got = read(trees_by_version[version], cgroup)
    assert (got["SwapTotal"], got["SwapFree"]) == (swap_total, swap_free)


def test_disable_swap_flag(fake):
    got = read(fake, swap=False)
    assert (got["SwapTotal"], got["SwapFree"]) == (0, 0)


def test_v1_without_swap_accounting_shows_no_swap(v1_rw):
    os.unlink(f"{v1_rw.roots.cgroup}/memory/memory.memsw.limit_in_bytes")
    got = read(v1_rw)
    assert (got["SwapTotal"], got["SwapFree"]) == (0, 0)


def test_host_without_swap(fake_rw):
    text = HOST_MEMINFO.replace("SwapTotal:       1048576 kB", "SwapTotal:             0 kB")
    trees.write(f"{fake_rw.roots.proc}/meminfo", text)
    got = read(fake_rw)
    assert (got["SwapTotal"], got["SwapFree"]) == (0, 0)
