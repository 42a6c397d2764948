"""/proc/swaps (spec §7): one virtual device the size of the container's swap."""

import pytest

from lxcfs_py.context import Options
from lxcfs_py.files import swaps
from tests.fixtures import trees
from tests.fixtures.trees import HOST_SWAPS

HEADER = "Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n"


def device(size: int, used: int) -> str:
    return HEADER + "none" + " " * 36 + f"virtual\t\t{size}\t{used}\t0\n"


@pytest.mark.parametrize("version, cgroup, expected", [
    (1, "/docker/abc", device(786432, 20480)),  # memsw 768 MiB
    (2, "/docker/abc", device(262144, 20480)),  # swap.max 256 MiB
    (1, "/lxc/noswaplimit", device(1048576, 30720)),  # bounded by the host's swap
    (2, "/lxc/noswaplimit", device(1048576, 30720)),
    (1, "/docker/noswap", device(10240, 10240)),  # swappiness 0: only what is used
])
def test_virtual_device(trees_by_version, version, cgroup, expected):
    fake = trees_by_version[version]
    assert swaps.render(fake.req(cgroup)).decode() == expected


def test_disable_swap_flag_shows_the_header_only(fake):
    assert swaps.render(fake.req(opts=Options(swap=False))).decode() == HEADER


def test_no_swap_on_the_host_shows_the_header_only(fake_rw):
    fake = fake_rw
    path = f"{fake.roots.proc}/meminfo"
    trees.write(path, trees.HOST_MEMINFO.replace("SwapTotal:       1048576 kB", "SwapTotal:             0 kB"))
    assert swaps.render(fake.req()).decode() == HEADER


def test_host_caller_sees_the_host_file(fake):
    assert swaps.render(fake.req(None)).decode() == HOST_SWAPS
