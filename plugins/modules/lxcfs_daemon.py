#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lxcfs_daemon
short_description: Run the lxcfs-py daemon on a host without systemd
description:
  - Starts, stops or restarts the lxcfs-py FUSE daemon as a background process
    with a pidfile, for hosts whose PID 1 is not systemd (containers, minimal
    VMs). On systemd hosts the role C(lxcfs_py.fleet.lxcfs) uses a unit instead.
  - The daemon counts as running only when the pid in O(pidfile) is alive, runs
    the wanted command line, and its mount answers reads.
  - Only the daemon is ever signalled. The process the pidfile names must run as
    root in the module's pid and mount namespaces, run O(executable)'s
    interpreter, and have C(-m lxcfs_py) (or O(executable)) and O(pidfile) on its
    command line. A stale pidfile naming a pid since reused by another process,
    or a container's process that forges the daemon's command line, is ignored;
    a daemon that has exited but not been reaped (a zombie) counts as stopped.
  - The daemon is started from C(/); it runs from there with an isolated interpreter,
    so no code from Ansible's working directory or E(PYTHONPATH) runs as root.
  - A running daemon whose command line differs from the wanted one is
    restarted, so changed flags take effect.
version_added: "0.1.0"
author:
  - lxcfs-py developers (@lxcfs-py)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state:
    description:
      - V(started) makes sure the daemon runs with these arguments.
      - V(restarted) always restarts it, a stop and a start; readers see errors until the
        new daemon has re-bound their files, about a second.
      - V(reloaded) hands the live mount to a fresh process running the installed code
        (on SIGHUP the daemon re-executes itself, same pid); no reader sees an error. Use it
        after an upgrade. It starts the daemon when it is not running, and restarts it when
        its command line differs (a re-executed daemon keeps its flags). It always reports a change.
      - V(stopped) stops it and makes sure nothing stays mounted.
    type: str
    choices: [started, stopped, restarted, reloaded]
    default: started
  mountpoint:
    description: Where the daemon mounts its tree.
    type: path
    default: /var/lib/lxcfs
  executable:
    description: The lxcfs-py command.
    type: path
    default: /opt/lxcfs-py/venv/bin/lxcfs-py
  args:
    description: Daemon flags, for example V(--enable-cfs) or V(-l).
    type: list
    elements: str
    default: []
  pidfile:
    description: The daemon's pidfile.
    type: path
    default: /run/lxcfs-py.pid
  log_file:
    description: Where the daemon logs while in the background.
    type: path
    default: /var/log/lxcfs-py.log
  timeout:
    description: Seconds to wait for the daemon to mount or to exit.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
notes:
  - Without systemd nothing restarts the daemon after a crash or a reboot; run
    the role again (or use a supervisor) on such hosts.
"""

EXAMPLES = r"""
- name: Run lxcfs-py with CPU views from the CFS quota
  lxcfs_py.fleet.lxcfs_daemon:
    args: [--enable-cfs]

- name: Stop it
  lxcfs_py.fleet.lxcfs_daemon:
    state: stopped
"""

RETURN = r"""
pid:
  description: The daemon's pid, or null when it is not running.
  returned: always
  type: int
  sample: 4242
cmdline:
  description: The daemon's command line.
  returned: always
  type: list
  elements: str
  sample: [/opt/lxcfs-py/venv/bin/python, /opt/lxcfs-py/venv/bin/lxcfs-py, -p, /run/lxcfs-py.pid, /var/lib/lxcfs]
mount:
  description: The mountpoint's state, V(live), V(stale) or V(free).
  returned: always
  type: str
  sample: live
"""

from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_daemon import run_module


def main():
    run_module()


if __name__ == "__main__":
    main()
