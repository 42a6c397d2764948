#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxcfs_container
short_description: Run a container that sees its own limits through lxcfs-py
description:
  - Creates, starts, stops or removes a container whose C(/proc) files
    (C(meminfo), C(cpuinfo), C(stat), ...) and C(/sys/devices/system/cpu) come
    from the lxcfs-py mount on the host, so C(free), C(top) or C(nproc) in the
    container report the container's memory and CPU limits.
  - With O(engine=docker) every lxcfs bind mount is added read-only by this
    module (the list is the collection's single list of lxcfs bind mounts).
    With O(engine=pouch) the container is created with C(pouch create
    --enableLxcfs) and pouchd adds the bind mounts.
  - Before it creates or starts a container the module checks that the lxcfs
    mount is live (O(lxcfs_mountpoint) is a mount point and its
    C(proc/meminfo) can be read); if not, it fails, says what to do and starts
    nothing. O(state=stopped) and O(state=absent) work without the mount.
  - Idempotent. An existing container is compared with the options given;
    options left out are not compared. When anything differs the container is
    removed and created again. A running container whose lxcfs bind mounts
    point at a dead daemon (the daemon was restarted after the container
    started) is recreated too, because it would otherwise keep failing to
    read its C(/proc) files.
version_added: "0.1.0"
author:
  - lxcfs-py developers (@lxcfs-py)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  name:
    description: Name of the container.
    type: str
    required: true
  image:
    description:
      - Image to run, for example V(debian:bookworm). Pulled when it is not present.
      - Required to create a container. When it is left out, an existing
        container is recreated (if it has to be) from its current image.
      - A container whose image differs by name, or by id from the local image
        of that name (the tag was pulled or built again), is recreated.
    type: str
  command:
    description:
      - Command to run, instead of the image's C(CMD). A list of arguments or
        a string, which is split like a shell would (no shell runs it).
    type: raw
  state:
    description:
      - V(started) makes sure a matching container exists and runs.
      - V(present) makes sure a matching container exists; a new one is only
        created, not started, and a recreated one runs if the old one ran.
      - V(stopped) stops the container if it runs; it does not compare the
        configuration and does not create a missing container.
      - V(absent) removes the container (forcibly, with its anonymous state).
    type: str
    choices: [started, present, stopped, absent]
    default: started
  memory:
    description:
      - Memory limit in bytes, or a number with a unit V(b), V(k), V(m), V(g)
        or V(t) (binary, like docker's C(--memory)), for example V(200m) or V(1g).
      - The container's C(/proc/meminfo) C(MemTotal) shows this limit.
    type: str
  memory_swap:
    description:
      - Memory plus swap limit (docker's C(--memory-swap)), same units as
        O(memory), at least O(memory); V(-1) for unlimited swap.
      - Needs O(memory).
    type: str
  cpus:
    description:
      - CPU limit as a number of CPUs, for example V(0.5) or V(2); must be
        greater than 0. Docker gets it as C(NanoCpus), pouch as a CFS quota.
    type: float
  cpuset_cpus:
    description: CPUs the container may run on, for example V(0-1) or V(0,2).
    type: str
  env:
    description:
      - Environment variables. Only these entries are compared with an
        existing container (the image adds others).
    type: dict
  labels:
    description:
      - Labels. Only these entries are compared with an existing container.
    type: dict
  restart_policy:
    description:
      - What the engine does when the container exits.
      - Quote V("no") in YAML; unquoted it is a boolean and rejected.
    type: str
    choices: ["no", always, on-failure, unless-stopped]
  network_mode:
    description:
      - The container's network (C(--net)), for example V(none), V(host) or a network's name.
        Left out, the engine's default; a pouchd whose bridge is disabled has none, so give V(none) there.
    type: str
  engine:
    description:
      - V(docker) uses dockerd through the Docker SDK for Python.
      - V(pouch) uses the C(pouch) command; pouchd must run with
        C(--enable-lxcfs) and its lxcfs home at O(lxcfs_mountpoint).
    type: str
    choices: [docker, pouch]
    default: docker
  lxcfs_mountpoint:
    description: Where lxcfs-py is mounted on the host.
    type: path
    default: /var/lib/lxcfs
  docker_host:
    description:
      - Engine API address, for example V(unix:///run/docker.sock). By
        default the Docker SDK's (C(DOCKER_HOST) or the local socket).
      - With O(engine=pouch) it is given to C(pouch -H).
      - The lxcfs mount is checked on the host the module runs on, so the
        engine should be that host's.
    type: str
attributes:
  check_mode:
    support: full
    details:
      - In check mode a missing or stale lxcfs mount is a warning, not an
        error, so a check run of a play that would start lxcfs-py first still
        reports the container's changes.
  diff_mode:
    support: full
    details:
      - The diff shows the compared fields before and after.
  platform:
    support: full
    platforms: posix
requirements:
  - Docker SDK for Python >= 5.0 (C(python3-docker) on Debian 12) with O(engine=docker).
  - The C(pouch) command with O(engine=pouch).
notes:
  - The lxcfs bind mounts of a container point at the FUSE mount that was
    live when the container started. After lxcfs-py is restarted, running
    containers must be restarted to see the new mount; this module notices
    and recreates them when it runs with O(state=started) or O(state=present).
seealso:
  - module: lxcfs_py.fleet.lxcfs_daemon
"""

EXAMPLES = r"""
- name: A container whose free and top show 200 MiB and 1.5 CPUs
  lxcfs_py.fleet.lxcfs_container:
    name: web
    image: debian:bookworm
    command: [sleep, infinity]
    memory: 200m
    cpus: 1.5
    restart_policy: unless-stopped

- name: Same with pouch (pouchd adds the lxcfs mounts)
  lxcfs_py.fleet.lxcfs_container:
    name: web
    engine: pouch
    image: debian:bookworm
    command: sleep infinity
    memory: 200m

- name: A daemon mounted somewhere else, env and labels
  lxcfs_py.fleet.lxcfs_container:
    name: batch
    image: registry.example.com/batch:1.4
    lxcfs_mountpoint: /run/lxcfs
    memory: 1g
    memory_swap: 2g
    cpuset_cpus: "0-1"
    env:
      WORKERS: "2"
    labels:
      team: data

- name: Stop it (works without the lxcfs mount)
  lxcfs_py.fleet.lxcfs_container:
    name: batch
    state: stopped

- name: Remove it
  lxcfs_py.fleet.lxcfs_container:
    name: batch
    state: absent
"""

RETURN = r"""
container:
  description: The container after the module ran (before, in check mode); empty when there is none.
  returned: always
  type: dict
  contains:
    id:
      description: Container id.
      type: str
      sample: 3318a5225dca0a5b4b8f8d7f2d1e3b7f0e2b8c5f7a9d1e2f3a4b5c6d7e8f9a0b
    name:
      description: Container name.
      type: str
      sample: web
    image:
      description: Image the container was created from.
      type: str
      sample: debian:bookworm
    status:
      description: The engine's status, for example V(running), V(created) or V(exited).
      type: str
      sample: running
    pid:
      description: Host pid of the container's first process, null when it does not run.
      type: int
      sample: 4242
    mounts:
      description: The container's mounts.
      type: list
      elements: dict
      contains:
        source:
          description: Host path.
          type: str
          sample: /var/lib/lxcfs/proc/meminfo
        destination:
          description: Path in the container.
          type: str
          sample: /proc/meminfo
        read_only:
          description: Whether the mount is read-only.
          type: bool
          sample: true
  sample:
    id: 3318a5225dca0a5b4b8f8d7f2d1e3b7f0e2b8c5f7a9d1e2f3a4b5c6d7e8f9a0b
    name: web
    image: debian:bookworm
    status: running
    pid: 4242
    mounts:
      - source: /var/lib/lxcfs/proc/meminfo
        destination: /proc/meminfo
        read_only: true
differences:
  description:
    - What differed from the wanted container (and was changed, unless in check mode).
    - Field V(state) is the container's state (V(absent), V(started), V(stopped));
      the others are the compared options, V(image_id), V(lxcfs_mounts) (docker),
      V(enable_lxcfs) (pouch) and V(lxcfs_view) (V(stale) when the container's
      bind mounts point at a dead daemon).
  returned: always
  type: list
  elements: dict
  contains:
    field:
      description: The field.
      type: str
      sample: memory
    before:
      description: Its current value.
      type: raw
      sample: 209715200
    after:
      description: Its wanted value.
      type: raw
      sample: 314572800
  sample:
    - field: memory
      before: 209715200
      after: 314572800
"""

from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_container import run_module


def main():
    run_module()


if __name__ == "__main__":
    main()
