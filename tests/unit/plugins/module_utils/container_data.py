# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Module parameters and Engine API inspect data of containers made like lxcfs_container makes them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_mounts import bind_mounts

MOUNTS = bind_mounts("/var/lib/lxcfs")
TARGETS = [target for _source, target in MOUNTS]
MIB = 1024 * 1024


def params(**kwargs):
    base = dict(image="lxcfs-py/workload:bookworm", command=None, memory=None, memory_swap=None, cpus=None,
                cpuset_cpus=None, env=None, labels=None, restart_policy=None)
    base.update(kwargs)
    return base


def docker_inspect(running=True, mounts=MOUNTS, **host):
    """Engine API inspect data of a container made like the module makes them."""
    host_config = {"Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpusetCpus": "", "RestartPolicy": {"Name": ""}}
    host_config.update(host)
    return {
        "Id": "abc123",
        "Name": "/web",
        "Image": "sha256:1111",
        "Config": {
            "Image": "lxcfs-py/workload:bookworm",
            "Cmd": ["sleep", "infinity"],
            "Env": ["PATH=/usr/local/sbin:/usr/bin", "A=1"],
            "Labels": {"team": "data", "from-image": "x"},
        },
        "HostConfig": host_config,
        "State": {"Status": "running" if running else "exited", "Running": running, "Pid": 42 if running else 0},
        "Mounts": [
            {"Type": "bind", "Source": s, "Destination": t, "Mode": "ro", "RW": False} for s, t in mounts
        ] + [{"Type": "volume", "Source": "/var/lib/docker/volumes/v", "Destination": "/data", "RW": True}],
    }
