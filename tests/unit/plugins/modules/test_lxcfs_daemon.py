# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The lxcfs_daemon module as Ansible runs it: its arguments, check mode, diff and result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lxcfs_py.fleet.plugins.modules.lxcfs_daemon import main


@pytest.fixture
def args(tmp_path):
    (tmp_path / "mnt").mkdir()
    return {"mountpoint": str(tmp_path / "mnt"), "pidfile": str(tmp_path / "pid"), "log_file": str(tmp_path / "log"),
            "executable": str(tmp_path / "lxcfs-py")}


def test_stopped_when_nothing_runs_is_no_change(run_main, args):
    result = run_main(main, dict(args, state="stopped"))
    assert not result["changed"] and result["pid"] is None and result["mount"] == "free" and result["cmdline"] == []


def test_check_mode_shows_the_command_line_it_would_start_and_starts_nothing(run_main, args):
    result = run_main(main, dict(args, args=["--enable-cfs"], _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] and result["pid"] is None and not result.get("failed")
    assert result["diff"]["after"]["cmdline"] == ["-p", args["pidfile"], "--log-file", args["log_file"], "--enable-cfs",
                                                  args["mountpoint"]]


def test_starting_without_lxcfs_py_installed_fails_with_what_to_do(run_main, args):
    result = run_main(main, args)
    assert result["failed"]
    assert result["msg"] == "%s is not an executable; install lxcfs-py first (role lxcfs_py.fleet.lxcfs)" % (
        args["executable"])


def test_an_unknown_state_is_refused(run_main, args):
    result = run_main(main, dict(args, state="running"))
    assert result["failed"] and "state" in result["msg"] and "reloaded" in result["msg"]
