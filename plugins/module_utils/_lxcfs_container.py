# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The lxcfs_container module's logic: what the container is and should be, whether
the lxcfs mount allows starting it, and the engine calls that get it there (the
module file holds its documentation and calls run_module())."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._container_spec import (
    RESTART_POLICIES,
    STATES,
    SpecError,
    container_state,
    current_spec,
    desired_spec,
    diff_dicts,
    lxcfs_mount_strings,
    plan,
)
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._engines import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    EngineError,
    get_engine,
    lxcfs_mount_problem,
    lxcfs_view,
    summarize,
)
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_mounts import (
    DEFAULT_MOUNTPOINT,
    bind_mounts,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    image=dict(type="str"),
    command=dict(type="raw"),
    state=dict(type="str", default="started", choices=list(STATES)),
    memory=dict(type="str"),
    memory_swap=dict(type="str"),
    cpus=dict(type="float"),
    cpuset_cpus=dict(type="str"),
    env=dict(type="dict"),
    labels=dict(type="dict"),
    restart_policy=dict(type="str", choices=list(RESTART_POLICIES)),
    network_mode=dict(type="str"),
    engine=dict(type="str", default="docker", choices=["docker", "pouch"]),
    lxcfs_mountpoint=dict(type="path", default=DEFAULT_MOUNTPOINT),
    docker_host=dict(type="str"),
)
STARTING_ACTIONS = ("create", "recreate", "start")


def mount_failure(mountpoint, problem):
    return (
        "lxcfs mount at %s is not live: %s. Start lxcfs-py there first (role lxcfs_py.fleet.lxcfs, "
        "module lxcfs_py.fleet.lxcfs_daemon, or `lxcfs-py %s`; a restarted daemon clears a stale mount "
        "itself), then run this again. No container was created or started."
        % (mountpoint, problem, mountpoint)
    )


def find_container(engine, name):
    """The engine's inspect data of the container named `name`, or None."""
    inspect = engine.inspect(name)
    if inspect is not None and summarize(inspect)["name"] != name:
        return None  # an id prefix matched, not the name
    return inspect


def compare_freshness(params, engine, inspect, desired, current):
    """Add to the specs what only a started/present container is compared by: the
    local image's id (a newer image means recreating; a missing one is pulled only
    when a container is to be created) and whether its lxcfs view is stale."""
    if params["image"] and engine.compares_image_id:
        image_id = engine.local_image_id(params["image"])
        if image_id:
            desired["image_id"] = image_id
    if engine.local and container_state(inspect) == "started":
        if lxcfs_view((inspect.get("State") or {}).get("Pid")) == "stale":
            current["lxcfs_view"] = "stale"
            desired["lxcfs_view"] = "live"


def mount_problem(engine, mountpoint, mounts):
    """Why the lxcfs mount cannot serve a container to be started, or None."""
    required = [source for source, _target in mounts]
    if engine.adds_lxcfs_mounts:
        required = []  # the engine's own lxcfs may serve fewer files; meminfo is checked anyway
    return lxcfs_mount_problem(mountpoint, required)


def converge(engine, step, params, desired, inspect, mounts):
    """Carry out the planned `step` for the container `inspect` describes."""
    name = params["name"]
    if step == "remove":
        engine.remove(name)
    elif step == "stop":
        engine.stop(name)
    elif step == "start":
        engine.start(name)
    else:
        image = params["image"] or (inspect.get("Config") or {}).get("Image")
        if engine.local_image_id(image) is None:
            engine.pull(image)
        if step == "recreate":
            engine.remove(name)
        engine.create(name, image, desired, [] if engine.adds_lxcfs_mounts else lxcfs_mount_strings(mounts))
        if params["state"] == "started" or container_state(inspect) == "started":
            engine.start(name)


def engine_for(module):
    params = module.params
    return get_engine(params["engine"], params["docker_host"], run=module.run_command)


def run(module):
    """Bring the container to the wanted state."""
    params = module.params
    state = params["state"]
    mountpoint = params["lxcfs_mountpoint"].rstrip("/") or "/"
    mounts = bind_mounts(mountpoint)
    try:
        desired = desired_spec(params, mounts, params["engine"])
    except SpecError as err:
        module.fail_json(msg=str(err))

    engine = engine_for(module)
    inspect = find_container(engine, params["name"])
    current = current_spec(inspect, [target for _source, target in mounts]) if inspect else {}
    if state in ("started", "present"):
        if inspect is None and not params["image"]:
            module.fail_json(msg="image is required to create container %s, which does not exist" % params["name"])
        compare_freshness(params, engine, inspect, desired, current)

    step, differences = plan(state, desired, inspect, current)
    result = {"changed": step != "none", "differences": differences, "container": summarize(inspect)}
    if module._diff:
        result["diff"] = diff_dicts(state, desired, current, inspect)

    problem = mount_problem(engine, mountpoint, mounts) if step in STARTING_ACTIONS else None
    if problem and not module.check_mode:
        result["changed"] = False
        module.fail_json(msg=mount_failure(mountpoint, problem), **result)
    if problem:
        module.warn(mount_failure(mountpoint, problem))
    if module.check_mode or step == "none":
        module.exit_json(**result)

    converge(engine, step, params, desired, inspect, mounts)
    result["container"] = summarize(engine.inspect(params["name"]))
    module.exit_json(**result)


def run_module():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["engine"] == "docker" and not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (Docker SDK for Python; python3-docker on Debian)"),
                         exception=DOCKER_IMPORT_ERROR)
    try:
        run(module)
    except EngineError as err:
        module.fail_json(msg=str(err), exception=traceback.format_exc())
