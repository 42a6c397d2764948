# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The engines without engines: pouch's command lines and inspect parsing (a fake pouch CLI),
summaries, and the host-side checks of the lxcfs mount (on temporary directories)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os

import pytest

from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _container_spec as cs
from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _engines as engines
from ansible_collections.lxcfs_py.fleet.tests.unit.plugins.module_utils.container_data import (
    MOUNTS,
    docker_inspect,
    params,
)


# --- engines without engines ------------------------------------------------------


def test_pouch_create_args():
    spec = cs.desired_spec(params(command="sleep infinity", memory="200m", memory_swap="-1", cpus=1.5,
                                  cpuset_cpus="0-1", env={"B": "2", "A": "1"}, labels={"team": "data"},
                                  restart_policy="always", network_mode="none"), MOUNTS, engine="pouch")
    assert engines.pouch_create_args("web", "debian:bookworm", spec) == [
        "create", "--name", "web", "--enableLxcfs", "--oom-score-adj", "0", "--memory", "209715200", "--memory-swap", "-1",
        "--cpu-period", "100000", "--cpu-quota", "150000", "--cpuset-cpus", "0-1",
        "--env", "A=1", "--env", "B=2", "--label", "team=data", "--restart", "always", "--net", "none",
        "debian:bookworm", "sleep", "infinity",
    ]
    minimal = cs.desired_spec(params(), MOUNTS, engine="pouch")
    assert engines.pouch_create_args("web", "debian", minimal) == [
        "create", "--name", "web", "--enableLxcfs", "--oom-score-adj", "0", "debian"]


class FakePouch:
    def __init__(self, replies):
        self.replies = replies
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.replies.pop(0)


def test_pouch_engine_inspect_list_object_and_missing():
    obj = docker_inspect(EnableLxcfs=True)
    run = FakePouch([(0, json.dumps([obj]), ""), (0, json.dumps(obj), ""),
                     (1, "", 'Error: {"message":"container: web: not found"}'), (1, "", "connection refused")])
    pouch = engines.PouchEngine(run, host="unix:///var/run/pouchd.sock")
    assert pouch.inspect("web")["Id"] == "abc123"
    assert pouch.inspect("web")["Id"] == "abc123"
    assert pouch.inspect("web") is None
    with pytest.raises(engines.EngineError, match="connection refused"):
        pouch.inspect("web")
    assert run.calls[0] == ["pouch", "-H", "unix:///var/run/pouchd.sock", "inspect", "web"]


def test_pouch_engine_lifecycle_commands():
    run = FakePouch([(0, "", "")] * 4 + [(0, "abc123\n", "")])
    pouch = engines.PouchEngine(run)
    pouch.start("web")
    pouch.stop("web")
    pouch.remove("web")
    pouch.pull("debian")
    assert pouch.create("web", "debian", {"enable_lxcfs": True}, []) == "abc123"
    assert [c[1:] for c in run.calls] == [["start", "web"], ["stop", "web"], ["rm", "-f", "web"], ["pull", "debian"],
                                          ["create", "--name", "web", "--enableLxcfs", "--oom-score-adj", "0", "debian"]]


def test_summarize():
    summary = engines.summarize(docker_inspect())
    assert summary["id"] == "abc123" and summary["name"] == "web" and summary["status"] == "running"
    assert summary["pid"] == 42
    assert {"source": "/var/lib/lxcfs/proc/meminfo", "destination": "/proc/meminfo", "read_only": True} \
        in summary["mounts"]
    assert engines.summarize(None) == {}


# --- host-side mount checks (on temporary directories) ------------------------------


def test_mount_problem_missing_and_plain_directory(tmp_path):
    missing = str(tmp_path / "nope")
    assert engines.lxcfs_mount_problem(missing, []) == "%s does not exist (no lxcfs-py daemon is mounted there)" % missing
    assert "is not a mount point" in engines.lxcfs_mount_problem(str(tmp_path), [])


def test_mount_problem_stale(monkeypatch, tmp_path):
    monkeypatch.setattr(engines.os.path, "ismount", lambda path: True)

    def stale_open(path, mode="r"):
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), path)

    monkeypatch.setattr(engines, "open", stale_open, raising=False)
    problem = engines.lxcfs_mount_problem(str(tmp_path), [])
    assert "stale FUSE mount" in problem and "Transport endpoint is not connected" in problem


def test_mount_problem_live_but_missing_files(monkeypatch, tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 1 kB\n")
    monkeypatch.setattr(engines.os.path, "ismount", lambda path: True)
    assert engines.lxcfs_mount_problem(str(tmp_path), [str(tmp_path / "proc" / "meminfo")]) is None
    problem = engines.lxcfs_mount_problem(str(tmp_path), [str(tmp_path / "proc" / "slabinfo")])
    assert "does not serve" in problem and "slabinfo" in problem


def test_lxcfs_view():
    assert engines.lxcfs_view(os.getpid()) == "live"
    assert engines.lxcfs_view(0) is None
