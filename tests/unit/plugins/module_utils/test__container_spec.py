# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""lxcfs_container's pure logic: parameter parsing, spec comparison, planning and diffs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest

from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _container_spec as cs
from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _engines as engines
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_mounts import bind_mounts
from ansible_collections.lxcfs_py.fleet.tests.unit.plugins.module_utils.container_data import (
    MIB,
    MOUNTS,
    TARGETS,
    docker_inspect,
    params,
)


# --- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("200m", 200 * MIB), ("200M", 200 * MIB), ("200mb", 200 * MIB), ("200MiB", 200 * MIB),
    ("1g", 1024 * MIB), ("1.5g", 1536 * MIB), ("512k", 512 * 1024), ("1024", 1024), ("1024b", 1024),
    (209715200, 209715200), ("1t", 1024 ** 4), (" 64m ", 64 * MIB),
])
def test_parse_size(value, expected):
    assert cs.parse_size(value, "memory") == expected


@pytest.mark.parametrize("value", ["12x", "m", "", "-5m", "1.2.3g", "ten", "0", 0, True])
def test_parse_size_rejects(value):
    with pytest.raises(cs.SpecError) as err:
        cs.parse_size(value, "memory")
    assert str(err.value).startswith("memory")


def test_bad_memory_message_is_one_clear_line():
    with pytest.raises(cs.SpecError) as err:
        cs.desired_spec(params(memory="200x"), MOUNTS)
    assert str(err.value) == ("memory: '200x' is not a valid size; use bytes or a number with a unit "
                              "b, k, m, g or t (for example 200m or 1g)")


@pytest.mark.parametrize("value, expected", [("-1", -1), ("unlimited", -1), ("1g", 1024 * MIB)])
def test_parse_memory_swap(value, expected):
    assert cs.parse_memory_swap(value) == expected


def test_memory_swap_rules():
    with pytest.raises(cs.SpecError, match="memory_swap needs memory"):
        cs.desired_spec(params(memory_swap="1g"), MOUNTS)
    with pytest.raises(cs.SpecError, match="must be at least memory"):
        cs.desired_spec(params(memory="1g", memory_swap="512m"), MOUNTS)
    assert cs.desired_spec(params(memory="1g", memory_swap="-1"), MOUNTS)["memory_swap"] == -1


@pytest.mark.parametrize("value, expected", [(1.5, 1.5), ("2", 2.0), (0.01, 0.01), (0.3333333333, 0.333333333)])
def test_parse_cpus(value, expected):
    assert cs.parse_cpus(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", 0.0000000001, "many", None])
def test_parse_cpus_rejects(value):
    with pytest.raises(cs.SpecError, match="cpus"):
        cs.parse_cpus(value)


def test_cpus_zero_message():
    with pytest.raises(cs.SpecError) as err:
        cs.desired_spec(params(cpus=0.0), MOUNTS)
    assert str(err.value) == "cpus must be greater than 0 (got 0.0)"


@pytest.mark.parametrize("value, expected", [
    ("0-3", "0-3"), ("0,1,2,3", "0-3"), ("3,0-1,2", "0-3"), ("0,2", "0,2"), ("5", "5"), ("0-1, 4-6", "0-1,4-6"),
])
def test_parse_cpuset(value, expected):
    assert cs.parse_cpuset(value) == expected


@pytest.mark.parametrize("value", ["a", "0-", "3-1", "0;1", ""])
def test_parse_cpuset_rejects(value):
    with pytest.raises(cs.SpecError, match="cpuset_cpus"):
        cs.parse_cpuset(value)


@pytest.mark.parametrize("value, expected", [
    (["sleep", "infinity"], ["sleep", "infinity"]),
    ("sleep infinity", ["sleep", "infinity"]),
    ("bash -c 'echo a b'", ["bash", "-c", "echo a b"]),
    ([1, "x"], ["1", "x"]),
])
def test_parse_command(value, expected):
    assert cs.parse_command(value) == expected


def test_parse_command_rejects():
    with pytest.raises(cs.SpecError, match="command"):
        cs.parse_command("echo 'unterminated")
    with pytest.raises(cs.SpecError, match="command"):
        cs.parse_command({"a": 1})


@pytest.mark.parametrize("name, expected", [
    ("busybox", "busybox:latest"),
    ("docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox", "busybox:latest"),
    ("registry.example.com:5000/team/app", "registry.example.com:5000/team/app:latest"),
    ("registry.example.com:5000/team/app:1.2", "registry.example.com:5000/team/app:1.2"),
    ("debian@sha256:abcd", "debian@sha256:abcd"),
])
def test_normalize_image(name, expected):
    assert cs.normalize_image(name) == expected


# --- desired and current specs ------------------------------------------------------


def test_desired_spec_has_only_given_fields_and_always_the_mounts():
    spec = cs.desired_spec(params(), MOUNTS)
    assert set(spec) == {"image", "lxcfs_mounts"}
    assert len(spec["lxcfs_mounts"]) == len(MOUNTS)
    assert "/var/lib/lxcfs/proc/meminfo:/proc/meminfo:ro" in spec["lxcfs_mounts"]
    assert "/var/lib/lxcfs/sys/devices/system/cpu:/sys/devices/system/cpu:ro" in spec["lxcfs_mounts"]


def test_desired_spec_values():
    spec = cs.desired_spec(params(command="sleep infinity", memory="200m", cpus=1.5, cpuset_cpus="1,0",
                                  env={"A": 1, "B": True}, labels={"team": "data"}, restart_policy="always"),
                           MOUNTS)
    assert spec["command"] == ["sleep", "infinity"]
    assert spec["memory"] == 209715200
    assert spec["cpus"] == 1.5
    assert spec["cpuset_cpus"] == "0-1"
    assert spec["env"] == {"A": "1", "B": "true"}
    assert spec["labels"] == {"team": "data"}
    assert spec["restart_policy"] == "always"


def test_desired_spec_pouch_uses_enable_lxcfs_and_quota_granularity():
    spec = cs.desired_spec(params(cpus=0.3333333), MOUNTS, engine="pouch")
    assert spec["enable_lxcfs"] is True and "lxcfs_mounts" not in spec
    assert spec["cpus"] == 0.33333


def test_desired_spec_rejects_bad_env_and_restart_policy():
    with pytest.raises(cs.SpecError, match="env: A has no value"):
        cs.desired_spec(params(env={"A": None}), MOUNTS)
    with pytest.raises(cs.SpecError, match="restart_policy"):
        cs.desired_spec(params(restart_policy="sometimes"), MOUNTS)


def test_current_spec_from_docker_inspect():
    current = cs.current_spec(docker_inspect(Memory=209715200, MemorySwap=-1, NanoCpus=1500000000,
                                             CpusetCpus="0,1", RestartPolicy={"Name": "always"}), TARGETS)
    assert current["image"] == "lxcfs-py/workload:bookworm"
    assert current["image_id"] == "sha256:1111"
    assert current["command"] == ["sleep", "infinity"]
    assert current["memory"] == 209715200
    assert current["memory_swap"] == -1
    assert current["cpus"] == 1.5
    assert current["cpuset_cpus"] == "0-1"
    assert current["env"]["A"] == "1"
    assert current["labels"]["team"] == "data"
    assert current["restart_policy"] == "always"
    assert current["lxcfs_mounts"] == cs.lxcfs_mount_strings(MOUNTS)  # the volume is not an lxcfs mount


def test_current_spec_unset_values():
    current = cs.current_spec(docker_inspect(), TARGETS)
    assert current["memory"] is None and current["memory_swap"] is None
    assert current["cpus"] is None and current["cpuset_cpus"] is None
    assert current["restart_policy"] == "no"


def test_current_cpus_from_cfs_quota():
    assert cs.current_spec(docker_inspect(CpuQuota=50000, CpuPeriod=100000), TARGETS)["cpus"] == 0.5
    assert cs.current_spec(docker_inspect(CpuQuota=200000), TARGETS)["cpus"] == 2.0


def test_current_spec_pouch_names():
    inspect = docker_inspect(NanoCPUs=2000000000, EnableLxcfs=True)
    del inspect["HostConfig"]["NanoCpus"]
    current = cs.current_spec(inspect, TARGETS)
    assert current["cpus"] == 2.0 and current["enable_lxcfs"] is True


def test_pouch_quota_round_trips():
    spec = cs.desired_spec(params(cpus=0.333), MOUNTS, engine="pouch")
    quota = engines.cpu_quota(spec["cpus"])
    current = cs.current_spec(docker_inspect(CpuQuota=quota, CpuPeriod=engines.CFS_PERIOD), TARGETS)
    assert current["cpus"] == spec["cpus"]


# --- comparison and plans ------------------------------------------------------------


def test_matching_container_has_no_differences():
    spec = cs.desired_spec(params(command=["sleep", "infinity"], memory="200m", cpus=1.5, env={"A": "1"},
                                  labels={"team": "data"}, restart_policy="no"), MOUNTS)
    inspect = docker_inspect(Memory=209715200, NanoCpus=1500000000)
    current = cs.current_spec(inspect, TARGETS)
    assert cs.config_differences(spec, current) == []
    assert cs.plan("started", spec, inspect, current) == ("none", [])
    assert cs.plan("present", spec, inspect, current) == ("none", [])


def test_unset_options_are_not_compared():
    inspect = docker_inspect(Memory=209715200, NanoCpus=1500000000, RestartPolicy={"Name": "always"})
    spec = cs.desired_spec(params(image=None), MOUNTS)
    assert cs.config_differences(spec, cs.current_spec(inspect, TARGETS)) == []


@pytest.mark.parametrize("changed, field, before", [
    (dict(memory="300m"), "memory", 209715200),
    (dict(cpus=2), "cpus", 1.5),
    (dict(memory="200m", memory_swap="400m"), "memory_swap", None),
    (dict(cpuset_cpus="0"), "cpuset_cpus", None),
    (dict(command="sleep 1"), "command", ["sleep", "infinity"]),
    (dict(image="debian:bookworm"), "image", "lxcfs-py/workload:bookworm"),
    (dict(env={"A": "2"}), "env", {"A": "1"}),
    (dict(env={"NEW": "x"}), "env", {"NEW": None}),
    (dict(labels={"team": "web"}), "labels", {"team": "data"}),
    (dict(restart_policy="always"), "restart_policy", "no"),
])
def test_each_field_difference_recreates(changed, field, before):
    kwargs = dict(memory="200m", cpus=1.5)
    kwargs.update(changed)
    spec = cs.desired_spec(params(**kwargs), MOUNTS)
    inspect = docker_inspect(Memory=209715200, NanoCpus=1500000000)
    action, differences = cs.plan("started", spec, inspect, cs.current_spec(inspect, TARGETS))
    assert action == "recreate"
    assert differences == [{"field": field, "before": before, "after": spec[field]}]


def test_missing_or_rw_lxcfs_mounts_recreate():
    spec = cs.desired_spec(params(), MOUNTS)
    partial = docker_inspect(mounts=MOUNTS[:-1])
    action, differences = cs.plan("started", spec, partial, cs.current_spec(partial, TARGETS))
    assert action == "recreate" and [d["field"] for d in differences] == ["lxcfs_mounts"]

    writable = docker_inspect()
    writable["Mounts"][0]["RW"] = True
    assert cs.plan("started", spec, writable, cs.current_spec(writable, TARGETS))[0] == "recreate"

    elsewhere = cs.desired_spec(params(), bind_mounts("/run/lxcfs"))
    inspect = docker_inspect()
    assert cs.plan("started", elsewhere, inspect, cs.current_spec(inspect, TARGETS))[0] == "recreate"


def test_image_id_compared_when_known():
    spec = cs.desired_spec(params(), MOUNTS)
    inspect = docker_inspect()
    current = cs.current_spec(inspect, TARGETS)
    spec["image_id"] = "sha256:1111"
    assert cs.plan("started", spec, inspect, current)[0] == "none"
    spec["image_id"] = "sha256:2222"
    assert cs.plan("started", spec, inspect, current) == (
        "recreate", [{"field": "image_id", "before": "sha256:1111", "after": "sha256:2222"}])


def test_stale_view_recreates():
    spec = cs.desired_spec(params(), MOUNTS)
    inspect = docker_inspect()
    current = cs.current_spec(inspect, TARGETS)
    current["lxcfs_view"], spec["lxcfs_view"] = "stale", "live"
    assert cs.plan("started", spec, inspect, current) == (
        "recreate", [{"field": "lxcfs_view", "before": "stale", "after": "live"}])


def test_plans_by_state():
    spec = cs.desired_spec(params(), MOUNTS)
    running, stopped = docker_inspect(), docker_inspect(running=False)
    cur_running, cur_stopped = cs.current_spec(running, TARGETS), cs.current_spec(stopped, TARGETS)

    def state_diff(before, after):
        return [{"field": "state", "before": before, "after": after}]

    assert cs.plan("started", spec, None, {}) == ("create", state_diff("absent", "started"))
    assert cs.plan("present", spec, None, {}) == ("create", state_diff("absent", "stopped"))
    assert cs.plan("started", spec, stopped, cur_stopped) == ("start", state_diff("stopped", "started"))
    assert cs.plan("present", spec, stopped, cur_stopped) == ("none", [])
    assert cs.plan("stopped", spec, running, cur_running) == ("stop", state_diff("started", "stopped"))
    assert cs.plan("stopped", spec, stopped, cur_stopped) == ("none", [])
    assert cs.plan("stopped", spec, None, {}) == ("none", [])
    assert cs.plan("absent", spec, running, cur_running) == ("remove", state_diff("started", "absent"))
    assert cs.plan("absent", spec, None, {}) == ("none", [])


def test_stopped_and_absent_ignore_configuration():
    spec = cs.desired_spec(params(memory="1g"), MOUNTS)
    stopped = docker_inspect(running=False)
    assert cs.plan("stopped", spec, stopped, cs.current_spec(stopped, TARGETS)) == ("none", [])


def test_recreate_of_stopped_container_for_started_reports_state_too():
    spec = cs.desired_spec(params(memory="300m"), MOUNTS)
    stopped = docker_inspect(running=False, Memory=209715200)
    action, differences = cs.plan("started", spec, stopped, cs.current_spec(stopped, TARGETS))
    assert action == "recreate"
    assert [d["field"] for d in differences] == ["memory", "state"]


def test_diff_dicts():
    spec = cs.desired_spec(params(memory="300m", env={"A": "2"}), MOUNTS)
    inspect = docker_inspect(Memory=209715200)
    diff = cs.diff_dicts("started", spec, cs.current_spec(inspect, TARGETS), inspect)
    assert diff["before"]["memory"] == 209715200 and diff["after"]["memory"] == 314572800
    assert diff["before"]["env"] == {"A": "1"} and diff["after"]["env"] == {"A": "2"}
    assert diff["before"]["state"] == diff["after"]["state"] == "started"
    assert diff["before"]["lxcfs_mounts"] == diff["after"]["lxcfs_mounts"]
    assert "cpus" not in diff["after"]  # not given, not compared

    created = cs.diff_dicts("started", spec, {}, None)
    assert created["before"] == {"state": "absent"} and created["after"]["state"] == "started"
    assert cs.diff_dicts("present", spec, {}, None)["after"]["state"] == "stopped"
    assert cs.diff_dicts("absent", spec, {}, inspect) == {"before": {"state": "started"}, "after": {"state": "absent"}}
    assert cs.diff_dicts("stopped", spec, {}, inspect) == {"before": {"state": "started"}, "after": {"state": "stopped"}}
