"""/proc/cpuinfo: the container's CPUs only, renumbered from 0 (spec §2)."""

import re

import pytest

from lxcfs_py.context import Options
from lxcfs_py.files import cpuinfo, cpus
from tests.fixtures.trees import HOST_CPUINFO, cpuinfo_block


def blocks(text: str) -> list[tuple[str, str]]:
    """(processor, core id) of every block."""
    return re.findall(r"processor\t: (\d+)\n(?:.*\n)*?core id\t\t: (\d+)", text)


@pytest.mark.parametrize("cgroup, cfs, expected", [
    ("/docker/abc", False, [("0", "1"), ("1", "3")]),  # cpuset 1,3
    ("/docker/abc", True, [("0", "1"), ("1", "3")]),  # no quota: the cpuset alone decides
    ("/docker/cfs", False, [("0", "0"), ("1", "1"), ("2", "2"), ("3", "3")]),  # quota ignored without the flag
    ("/docker/cfs", True, [("0", "0"), ("1", "1")]),  # quota 150000/100000 -> ceil(1.5) = 2 CPUs
    ("/docker/half", True, [("0", "1")]),  # quota 0.5 CPU of cpuset 1,3 -> the first one
])
def test_processors_shown(fake, cgroup, cfs, expected):
    text = cpuinfo.render(fake.req(cgroup, Options(cfs=cfs))).decode()
    assert blocks(text) == expected


def test_blocks_are_the_hosts_but_for_the_processor_line(fake):
    text = cpuinfo.render(fake.req("/docker/abc")).decode()
    expected = (cpuinfo_block(1).replace("processor\t: 1", "processor\t: 0")
                + cpuinfo_block(3).replace("processor\t: 3", "processor\t: 1"))
    assert text == expected
    assert "apicid\t\t: 3\n" in text  # topology fields are kept as they are


def test_host_caller_sees_the_host_file(fake):
    assert cpuinfo.render(fake.req(None)).decode() == HOST_CPUINFO


@pytest.mark.parametrize("allowed, limit, shown", [
    ({0, 1, 2, 3}, 0, 4),
    ({2}, 0, 1),
    ({0, 1, 2, 3}, 3, 3),
    (set(), 0, 0),
])
def test_render_text(allowed, limit, shown):
    text = cpuinfo.render_text(HOST_CPUINFO, allowed, limit)
    assert [int(n) for n, _ in blocks(text)] == list(range(shown))


S390 = """\
vendor_id       : IBM/S390
# processors    : 4
bogomips per cpu: 3033.00
max thread id   : 0
features\t: esan3 zarch stfle msa ldisp eimm dfp edat etf3eh highgprs te sie
processor 0: version = FF,  identification = 0133E8,  machine = 2964
processor 1: version = FF,  identification = 0133E8,  machine = 2964
processor 2: version = FF,  identification = 0133E8,  machine = 2964
processor 3: version = FF,  identification = 0133E8,  machine = 2964

cpu number      : 0
"""


def test_s390_layout():
    text = cpuinfo.render_text(S390, {1, 3}, 0)
    assert text.splitlines()[:2] == ["vendor_id       : IBM/S390", "# processors    : 2"]
    assert [line for line in text.splitlines() if line.startswith("processor")] == [
        "processor 0: version = FF,  identification = 0133E8,  machine = 2964",
        "processor 1: version = FF,  identification = 0133E8,  machine = 2964",
    ]
    assert "features\t: esan3" in text


@pytest.mark.parametrize("quota, period, nr_cpuset, nr_host, shown", [
    (None, 100000, 2, 4, 2),  # no quota: the cpuset
    (150000, 100000, 4, 4, 2),  # rounded up
    (100000, 100000, 4, 4, 1),
    (1, 100000, 4, 4, 1),
    (150000, 100000, 1, 4, 1),  # a smaller cpuset wins
    (800000, 100000, 0, 4, 4),  # never more than the host has
    (800000, 100000, 6, 4, 4),
    (150000, 0, 3, 4, 3),  # no period: no quota
])
def test_quota_cpus(quota, period, nr_cpuset, nr_host, shown):
    assert cpus.quota_cpus(quota, period, nr_cpuset, nr_host) == shown
