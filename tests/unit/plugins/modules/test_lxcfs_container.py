# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The lxcfs_container module as Ansible runs it, with engine=pouch and a `pouch` command
that knows no container: its arguments, and that it reports nothing to do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.lxcfs_py.fleet.plugins.modules.lxcfs_container import main

POUCH = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
echo 'Error: {"message":"container: web: not found"}' >&2
exit 1
"""


@pytest.fixture
def pouch(tmp_path, monkeypatch):
    """A `pouch` on PATH that answers every command with "not found"; returns the file of its calls."""
    script = tmp_path / "pouch"
    script.write_text(POUCH)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path, os.pathsep, os.environ.get("PATH", "")))
    return tmp_path / "calls"


def test_absent_when_there_is_no_container_is_no_change(run_main, pouch):
    result = run_main(main, {"name": "web", "engine": "pouch", "state": "absent"})
    assert not result["changed"] and result["container"] == {} and result["differences"] == []
    assert pouch.read_text().split() == ["inspect", "web"]


@pytest.mark.parametrize("args, words", [
    (dict(restart_policy="sometimes"), ["restart_policy", "on-failure"]),
    (dict(engine="podman"), ["engine", "pouch"]),
    (dict(cpus="many"), ["cpus", "float"]),
])
def test_bad_arguments_are_refused_before_any_engine_call(run_main, pouch, args, words):
    result = run_main(main, dict({"name": "web", "engine": "pouch"}, **args))
    assert result["failed"] and all(word in result["msg"] for word in words)
    assert not pouch.exists()
