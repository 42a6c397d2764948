"""/proc/slabinfo (spec §8): v1's memory.kmem.slabinfo, else the host's."""

import os

from lxcfs_py.files import slabinfo
from tests.fixtures.trees import CGROUP_SLABINFO, HOST_SLABINFO


def test_v1_the_cgroups_own_file(v1):
    assert slabinfo.render(v1.req()).decode() == CGROUP_SLABINFO


def test_v1_without_kmem_slabinfo_falls_back_to_the_host(v1_rw):
    os.unlink(v1_rw.cg_file("/docker/abc", "memory.kmem.slabinfo"))
    assert slabinfo.render(v1_rw.req()).decode() == HOST_SLABINFO


def test_v2_the_host_file(v2):
    assert slabinfo.render(v2.req()).decode() == HOST_SLABINFO


def test_host_caller_sees_the_host_file(fake):
    assert slabinfo.render(fake.req(None)).decode() == HOST_SLABINFO


def test_v1_empty_kmem_slabinfo_falls_back_to_the_host(v1_rw):
    # kernels >= 5.9 leave memory.kmem.slabinfo empty; LXCFS then shows the host's
    with open(v1_rw.cg_file("/docker/abc", "memory.kmem.slabinfo"), "w"):
        pass
    assert slabinfo.render(v1_rw.req()).decode() == HOST_SLABINFO
