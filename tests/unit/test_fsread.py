"""Readers of the kernel's small text formats."""

import pytest

from lxcfs_py.fsread import format_cpu_list, parse_cpu_list, read_bytes, read_int, read_keyed, read_named
from lxcfs_py.host import meminfo_value, online_cpus, uptime_seconds
from tests.fixtures.trees import HOST_MEMINFO, write


@pytest.mark.parametrize("text, cpus", [
    ("0-3\n", [0, 1, 2, 3]),
    ("1,3", [1, 3]),
    ("0,2-3,7", [0, 2, 3, 7]),
    ("5", [5]),
    ("\n", []),
    ("3,1,1-2", [1, 2, 3]),
])
def test_cpu_lists(text, cpus):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("cpus, text", [([0, 1, 2, 3], "0-3"), ([1, 3], "1,3"), ([0, 2, 3, 7], "0,2-3,7"), ([], "")])
def test_format_cpu_list(cpus, text):
    assert format_cpu_list(cpus) == text


@pytest.mark.parametrize("text", ["1-x", "a", "0-3\x00"])
def test_bad_cpu_list(text):
    with pytest.raises(ValueError):
        parse_cpu_list(text)


@pytest.mark.parametrize("content, value", [("536870912\n", 536870912), ("max\n", None), ("", None), ("-1\n", -1)])
def test_read_int(tmp_path, content, value):
    write(tmp_path / "f", content)
    assert read_int(str(tmp_path / "f")) == value


def test_read_int_garbage(tmp_path):
    write(tmp_path / "f", "lots\n")
    with pytest.raises(ValueError):
        read_int(str(tmp_path / "f"))


def test_read_keyed_skips_bad_lines(tmp_path):
    write(tmp_path / "f", "anon 4096\nfile x\n\nnokey\nshmem 12 extra\nkernel 7\n")
    assert read_keyed(str(tmp_path / "f")) == {"anon": 4096, "kernel": 7}


def test_read_bytes_larger_than_one_chunk(tmp_path):
    content = "x" * 200_000
    write(tmp_path / "f", content)
    assert read_bytes(str(tmp_path / "f")) == content.encode()


def test_host_parsers(tmp_path):
    values = [meminfo_value(HOST_MEMINFO, label) for label in ("MemTotal", "SwapTotal", "HugePages_Total", "Nope")]
    assert values == [4096000, 1048576, 0, 0]
    assert uptime_seconds("1000.50 3800.00\n") == 1000.5
    write(tmp_path / "devices/system/cpu/online", "0-1,4\n")
    assert online_cpus(str(tmp_path)) == [0, 1, 4]


def test_read_named_takes_only_the_named_keys_exactly(tmp_path):
    # total_cache must not match total_cache_extra, nor a key that merely ends the same way
    write(tmp_path / "memory.stat", "cache 1\ntotal_cache_extra 7\ntotal_cache 2\nxtotal_rss 9\ntotal_rss bad\n"
                                    "total_shmem 3")
    names = {"total_cache": "cache", "total_rss": "rss", "total_shmem": "shmem", "total_dirty": "dirty"}
    assert read_named(str(tmp_path / "memory.stat"), names) == {"cache": 2, "shmem": 3}
