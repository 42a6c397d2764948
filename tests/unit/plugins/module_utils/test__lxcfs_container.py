# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""lxcfs_container's logic through a real AnsibleModule, with an engine that records
its calls: which engine calls each plan makes, that no container is created or
started without a live lxcfs mount (a warning in check mode), and the result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _lxcfs_container as container
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._engines import Engine
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_mounts import bind_mounts
from ansible_collections.lxcfs_py.fleet.tests.unit.plugins.module_utils.container_data import docker_inspect

IMAGE = "lxcfs-py/workload:bookworm"


class RecordingEngine(Engine):
    """Holds at most one container, `web`, and records every call that changes something."""

    name = "docker"
    compares_image_id = True

    def __init__(self, inspect=None, image_id="sha256:1111"):
        self.container = inspect
        self.image_id = image_id
        self.calls = []

    def inspect(self, name):
        return self.container

    def local_image_id(self, image):
        return self.image_id

    def pull(self, image):
        self.calls.append(("pull", image))
        self.image_id = "sha256:1111"

    def create(self, name, image, spec, binds):
        self.calls.append(("create", name, image, len(binds)))
        self.container = docker_inspect(running=False)

    def start(self, name):
        self.calls.append(("start", name))
        self.container = docker_inspect(running=True)

    def stop(self, name):
        self.calls.append(("stop", name))

    def remove(self, name):
        self.calls.append(("remove", name))


@pytest.fixture
def engine(monkeypatch):
    recording = RecordingEngine()
    monkeypatch.setattr(container, "engine_for", lambda module: recording)
    return recording


@pytest.fixture
def live_mount(monkeypatch):
    monkeypatch.setattr(container, "lxcfs_mount_problem", lambda mountpoint, required: None)


def run(run_main, **args):
    return run_main(container.run_module, dict({"name": "web"}, **args))


def test_a_missing_container_is_created_with_every_lxcfs_mount_and_started(run_main, engine, live_mount):
    result = run(run_main, image=IMAGE, memory="200m")
    assert result["changed"] and result["differences"] == [{"field": "state", "before": "absent", "after": "started"}]
    assert engine.calls == [("create", "web", IMAGE, len(bind_mounts())), ("start", "web")]
    assert result["container"]["status"] == "running"


def test_a_missing_image_is_pulled_first(run_main, engine, live_mount):
    engine.image_id = None
    run(run_main, image=IMAGE, state="present")
    assert engine.calls == [("pull", IMAGE), ("create", "web", IMAGE, len(bind_mounts()))]  # present: not started


def test_a_matching_container_is_left_alone(run_main, engine, live_mount):
    engine.container = docker_inspect(Memory=209715200)
    result = run(run_main, image=IMAGE, memory="200m")
    assert not result["changed"] and engine.calls == []


def test_a_newer_local_image_recreates_the_running_container(run_main, engine, live_mount):
    engine.container, engine.image_id = docker_inspect(), "sha256:2222"
    result = run(run_main, image=IMAGE)
    assert result["differences"] == [{"field": "image_id", "before": "sha256:1111", "after": "sha256:2222"}]
    assert engine.calls == [("remove", "web"), ("create", "web", IMAGE, len(bind_mounts())), ("start", "web")]


def test_a_recreated_stopped_container_stays_stopped_when_present(run_main, engine, live_mount):
    engine.container = docker_inspect(running=False, Memory=209715200)
    run(run_main, state="present", memory="300m")  # no image given: the container's own
    assert engine.calls == [("remove", "web"), ("create", "web", IMAGE, len(bind_mounts()))]


def test_an_engine_that_adds_the_lxcfs_mounts_gets_none_from_us(run_main, engine, live_mount):
    engine.adds_lxcfs_mounts = True
    run(run_main, image=IMAGE)
    assert engine.calls[0] == ("create", "web", IMAGE, 0)


@pytest.mark.parametrize("state, running, calls", [
    ("stopped", True, [("stop", "web")]),
    ("stopped", False, []),
    ("absent", True, [("remove", "web")]),
    ("started", False, [("start", "web")]),
])
def test_state_changes_of_an_existing_container(run_main, engine, live_mount, state, running, calls):
    engine.container = docker_inspect(running=running)
    assert run(run_main, state=state)["changed"] is bool(calls)
    assert engine.calls == calls


def test_an_id_prefix_is_not_the_container(run_main, engine, live_mount):
    engine.container = docker_inspect()  # named /web
    result = run(run_main, name="abc", state="absent")
    assert not result["changed"] and result["container"] == {} and engine.calls == []


def test_no_container_is_started_without_a_live_lxcfs_mount(run_main, engine, tmp_path):
    result = run(run_main, image=IMAGE, lxcfs_mountpoint=str(tmp_path))
    assert result["failed"] and not result["changed"] and engine.calls == []
    assert result["msg"].startswith("lxcfs mount at %s is not live: %s is not a mount point" % (tmp_path, tmp_path))
    assert result["msg"].endswith("No container was created or started.")


def test_check_mode_warns_about_the_mount_and_reports_the_change(run_main, engine, tmp_path):
    result = run(run_main, image=IMAGE, lxcfs_mountpoint=str(tmp_path), _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] and not result.get("failed") and engine.calls == []
    assert "is not a mount point" in json.dumps(result["warnings"])  # ansible-core 2.19 makes them dicts
    assert result["diff"]["before"] == {"state": "absent"} and result["diff"]["after"]["state"] == "started"


def test_stopping_and_removing_need_no_mount(run_main, engine, tmp_path):
    engine.container = docker_inspect()
    assert run(run_main, state="stopped", lxcfs_mountpoint=str(tmp_path / "gone"))["changed"]
    assert engine.calls == [("stop", "web")]


@pytest.mark.parametrize("args, message", [
    (dict(), "image is required to create container web, which does not exist"),
    (dict(image=IMAGE, memory="200x"), "memory: '200x' is not a valid size; use bytes or a number with a unit "
                                       "b, k, m, g or t (for example 200m or 1g)"),
])
def test_failures_say_what_is_wrong(run_main, engine, live_mount, args, message):
    result = run(run_main, **args)
    assert result["failed"] and result["msg"] == message and engine.calls == []
