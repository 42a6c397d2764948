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

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _kernel_mounts


def mount_state(mountpoint):
    """'live', 'stale' (a dead daemon's mount, or one that cannot be used) or 'free'."""
    try:
        return _kernel_mounts.mount_state(mountpoint)
    except OSError:
        return "stale"


def alive(pid):
    """The process runs: a zombie has exited (its parent, e.g. a container's
    PID 1 that does not reap, has not collected it yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_pid(pidfile, executable):
    """The pid of the daemon that wrote `pidfile`, if it still runs.

    A stale pidfile may name a pid the kernel has since given to another
    process, and a container's process can forge any command line: only a
    process that is really the daemon counts, so nothing else is ever signalled."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if is_daemon(pid, pidfile, executable) else None


def is_daemon(pid, pidfile, executable):
    """Root, in our pid and mount namespaces, running the daemon's interpreter with
    lxcfs-py and `pidfile` on its command line (a zombie has no command line)."""
    proc = "/proc/%d" % pid
    try:
        for ns in ("pid", "mnt"):
            if os.readlink("%s/ns/%s" % (proc, ns)) != os.readlink("/proc/self/ns/%s" % ns):
                return False
        exe = os.readlink(proc + "/exe")
        with open(proc + "/status") as f:
            uids = next((line.split()[1:3] for line in f if line.startswith("Uid:")), None)
    except OSError:
        return False
    if exe.endswith(DELETED):
        exe = exe[: -len(DELETED)]  # the interpreter was upgraded under the running daemon
    if uids != ["0", "0"] or exe != interpreter_of(executable):
        return False
    args = cmdline(pid)
    runs_lxcfs_py = any(args[i:i + 2] == ["-m", "lxcfs_py"] for i in range(len(args))) or \
        (len(args) > 1 and os.path.realpath(args[1]) == os.path.realpath(executable))
    names_pidfile = any(arg == pidfile or arg.endswith("=" + pidfile) or arg == "-p" + pidfile for arg in args)
    return runs_lxcfs_py and names_pidfile


DELETED = " (deleted)"


def interpreter_of(executable):
    """The real path of the interpreter `executable` runs with: its #! line (also pip's
    /bin/sh form for long paths), or the executable itself."""
    try:
        with open(executable, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace").splitlines()
    except OSError:
        head = []
    if head and head[0].startswith("#!"):
        words = head[0][2:].split()
        if words[:1] == ["/bin/sh"] and len(head) > 1 and "exec' " in head[1]:
            words = head[1].split("exec' ", 1)[1].split()
        if words:
            return os.path.realpath(words[0].strip("'\""))
    return os.path.realpath(executable)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def wanted_args(params):
    return ["-p", params["pidfile"], "--log-file", params["log_file"]] + params["args"] + [params["mountpoint"]]


def matches(current, params):
    """The running command line ends with the wanted arguments (the interpreter comes first)."""
    wanted = wanted_args(params)
    # after a reload the daemon runs as `python -m lxcfs_py ... --handover=FDS`
    current = [arg for arg in current if not arg.startswith("--handover")]
    return len(current) >= len(wanted) and current[-len(wanted):] == wanted


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def signal_daemon(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited since read_pid: what waits next sees that


def stop(module, pid):
    params = module.params
    if pid is not None:
        signal_daemon(pid, signal.SIGTERM)
        if not wait_for(lambda: not alive(pid), params["timeout"]):
            module.fail_json(msg="lxcfs-py (pid %d) did not exit within %ds of SIGTERM; look at %s"
                             % (pid, params["timeout"], params["log_file"]))
    if mount_state(params["mountpoint"]) != "free":
        module.run_command(["umount", "-l", params["mountpoint"]])


def start(module):
    params = module.params
    if not os.access(params["executable"], os.X_OK):
        module.fail_json(msg="%s is not an executable; install lxcfs-py first (role lxcfs_py.fleet.lxcfs)"
                         % params["executable"])
    command = [params["executable"]] + wanted_args(params)
    # the daemon forks to the background itself and exits once it has mounted; from / so
    # that nothing in Ansible's working directory can be imported
    rc, out, err = module.run_command(command, cwd="/")
    if rc != 0:
        module.fail_json(msg="lxcfs-py failed to start: %s" % (err.strip() or out.strip()), cmd=command, rc=rc)
    if not wait_for(lambda: mount_state(params["mountpoint"]) == "live", params["timeout"]):
        module.fail_json(msg="lxcfs-py started but %s is not serving; look at %s"
                         % (params["mountpoint"], params["log_file"]))


def reload(module, pid):
    """SIGHUP: the daemon re-executes itself on the same connection and rewrites its pidfile."""
    params = module.params
    before = os.stat(params["pidfile"]).st_mtime_ns
    signal_daemon(pid, signal.SIGHUP)
    if not wait_for(lambda: _pidfile_rewritten(params["pidfile"], before), params["timeout"]):
        module.fail_json(msg="lxcfs-py (pid %d) did not take over its mount within %ds of SIGHUP; look at %s"
                         % (pid, params["timeout"], params["log_file"]))


def _pidfile_rewritten(pidfile, before):
    try:
        return os.stat(pidfile).st_mtime_ns != before
    except OSError:
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="started", choices=["started", "stopped", "restarted", "reloaded"]),
            mountpoint=dict(type="path", default="/var/lib/lxcfs"),
            executable=dict(type="path", default="/opt/lxcfs-py/venv/bin/lxcfs-py"),
            args=dict(type="list", elements="str", default=[]),
            pidfile=dict(type="path", default="/run/lxcfs-py.pid"),
            log_file=dict(type="path", default="/var/log/lxcfs-py.log"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    pid = read_pid(params["pidfile"], params["executable"])
    current = cmdline(pid) if pid else []
    state = mount_state(params["mountpoint"])
    running = pid is not None and state == "live"
    before = {"running": running, "cmdline": current}

    if params["state"] == "stopped":
        changed = pid is not None or state != "free"
        after = {"running": False, "cmdline": []}
    elif params["state"] in ("restarted", "reloaded"):
        changed = True
        after = {"running": True, "cmdline": wanted_args(params)}
    else:
        changed = not (running and matches(current, params))
        after = {"running": True, "cmdline": current if not changed else wanted_args(params)}

    if changed and not module.check_mode:
        if params["state"] == "reloaded" and running and matches(current, params):
            reload(module, pid)
        else:
            stop(module, pid)
            if params["state"] != "stopped":
                start(module)
        pid = read_pid(params["pidfile"], params["executable"])
        current = cmdline(pid) if pid else []
        state = mount_state(params["mountpoint"])

    module.exit_json(changed=changed, pid=pid, cmdline=current, mount=state,
                     diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
