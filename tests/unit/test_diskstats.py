"""/proc/diskstats (spec §6): host file on v1, the container's own counters from v2 io.stat."""

from lxcfs_py.cgroups.base import IoStat
from lxcfs_py.files import diskstats
from tests.fixtures.trees import HOST_DISKSTATS, write


def test_v1_modern_kernel_passes_the_host_file(v1):
    assert diskstats.render(v1.req()).decode() == HOST_DISKSTATS


def test_v2_io_stat_in_kernel_format(v2):
    # 8:0 did 10 reads of 1 MiB and 20 writes of 2 MiB; 253:0 is all zero (skipped);
    # 259:0 is not one of the host's devices (skipped)
    assert diskstats.render(v2.req()).decode() == (
        "   8       0 sda 10 0 2048 0 20 0 4096 0 0 0 0 0 0 0 0 0 0\n")


def test_v2_no_io_yet_gives_an_empty_file(v2_rw):
    write(v2_rw.cg_file("/docker/abc", "io.stat"), "")
    assert diskstats.render(v2_rw.req()) == b""


def test_host_caller_sees_the_host_file(fake):
    assert diskstats.render(fake.req(None)).decode() == HOST_DISKSTATS


def test_render_text_keeps_the_host_order_and_names():
    stats = {(253, 0): IoStat(writes=1), (8, 1): IoStat(reads=2, read_sectors=16)}
    assert diskstats.render_text(HOST_DISKSTATS, stats) == (
        "   8       1 sda1 2 0 16 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        " 253       0 dm-0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
