"""--enable-cfs: the CPU count follows the tightest CFS quota on the path to the root."""

from __future__ import annotations

import os

import pytest

from tests.live.cgroups import nested_cgroups, run_in_container_like

READ_CPUS = """
import os
root = {root!r}
cpuinfo = open(root + '/proc/cpuinfo').read().count('processor\\t:')
stat = sum(1 for line in open(root + '/proc/stat') if line.startswith('cpu') and line[3].isdigit())
online = open(root + '/sys/devices/system/cpu/online').read().strip()
print(cpuinfo, stat, online)
"""


def test_a_quota_set_only_on_the_parent_cgroup_limits_the_cpus(start_daemon):
    if os.cpu_count() < 2:
        pytest.skip("one CPU shows one CPU whatever the quota")
    daemon = start_daemon(["--enable-cfs"])
    # a systemd slice / Kubernetes pod style limit: 1 CPU on the parent, none on the container's cgroup
    parent = {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}
    with nested_cgroups("cpu", parent, {}) as cgroup:
        out = run_in_container_like(cgroup, READ_CPUS.format(root=daemon.mountpoint), controller="cpu")
    assert out.split() == ["1", "1", "0"]
