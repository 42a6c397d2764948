# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The lxcfs_daemon module's logic: which process is the daemon, what a state
asks for, and starting, stopping and reloading it (the module file holds its
documentation and calls run_module())."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _kernel_mounts
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._lxcfs_mounts import DEFAULT_MOUNTPOINT

STATES = ("started", "stopped", "restarted", "reloaded")
ARGUMENT_SPEC = dict(
    state=dict(type="str", default="started", choices=list(STATES)),
    mountpoint=dict(type="path", default=DEFAULT_MOUNTPOINT),
    executable=dict(type="path", default="/opt/lxcfs-py/venv/bin/lxcfs-py"),
    args=dict(type="list", elements="str", default=[]),
    pidfile=dict(type="path", default="/run/lxcfs-py.pid"),
    log_file=dict(type="path", default="/var/log/lxcfs-py.log"),
    timeout=dict(type="int", default=30),
)
DELETED = " (deleted)"


class DaemonError(Exception):
    """The daemon did not do what was asked; the message says what to look at."""


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
    return runs_daemon(cmdline(pid), pidfile, executable)


def runs_daemon(args, pidfile, executable):
    """The command line runs lxcfs-py (as a module or as `executable`) with `pidfile`."""
    runs_lxcfs_py = any(args[i:i + 2] == ["-m", "lxcfs_py"] for i in range(len(args))) or \
        (len(args) > 1 and os.path.realpath(args[1]) == os.path.realpath(executable))
    names_pidfile = any(arg == pidfile or arg.endswith("=" + pidfile) or arg == "-p" + pidfile for arg in args)
    return runs_lxcfs_py and names_pidfile


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


def plan(params, pid, current, mount):
    """(changed, diff) for the daemon found (`pid`, its command line `current`, the
    mountpoint's state `mount`); a state of `reloaded` or `restarted` always changes."""
    running = pid is not None and mount == "live"
    before = {"running": running, "cmdline": current}
    if params["state"] == "stopped":
        changed = pid is not None or mount != "free"
        after = {"running": False, "cmdline": []}
    elif params["state"] in ("restarted", "reloaded"):
        changed = True
        after = {"running": True, "cmdline": wanted_args(params)}
    else:
        changed = not (running and matches(current, params))
        after = {"running": True, "cmdline": wanted_args(params) if changed else current}
    return changed, {"before": before, "after": after}


def action(params, pid, current, mount):
    """How to get there from a found daemon: 'reload' (SIGHUP: only a running daemon
    with the wanted flags can take the new code that way), 'stop', or 'restart'."""
    if params["state"] == "reloaded" and pid is not None and mount == "live" and matches(current, params):
        return "reload"
    return "stop" if params["state"] == "stopped" else "restart"


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


def stop(params, pid, run_command):
    if pid is not None:
        signal_daemon(pid, signal.SIGTERM)
        if not wait_for(lambda: not alive(pid), params["timeout"]):
            raise DaemonError("lxcfs-py (pid %d) did not exit within %ds of SIGTERM; look at %s"
                              % (pid, params["timeout"], params["log_file"]))
    if mount_state(params["mountpoint"]) != "free":
        run_command(["umount", "-l", params["mountpoint"]])


def start(params, run_command):
    if not os.access(params["executable"], os.X_OK):
        raise DaemonError("%s is not an executable; install lxcfs-py first (role lxcfs_py.fleet.lxcfs)"
                          % params["executable"])
    command = [params["executable"]] + wanted_args(params)
    # the daemon forks to the background itself and exits once it has mounted; from / so
    # that nothing in Ansible's working directory can be imported
    rc, out, err = run_command(command, cwd="/")
    if rc != 0:
        raise DaemonError("lxcfs-py failed to start: %s" % (err.strip() or out.strip()))
    if not wait_for(lambda: mount_state(params["mountpoint"]) == "live", params["timeout"]):
        raise DaemonError("lxcfs-py started but %s is not serving; look at %s"
                          % (params["mountpoint"], params["log_file"]))


def reload(params, pid):
    """SIGHUP: the daemon re-executes itself on the same connection and rewrites its pidfile."""
    before = os.stat(params["pidfile"]).st_mtime_ns
    signal_daemon(pid, signal.SIGHUP)
    if not wait_for(lambda: pidfile_rewritten(params["pidfile"], before), params["timeout"]):
        raise DaemonError("lxcfs-py (pid %d) did not take over its mount within %ds of SIGHUP; look at %s"
                          % (pid, params["timeout"], params["log_file"]))


def pidfile_rewritten(pidfile, before):
    try:
        return os.stat(pidfile).st_mtime_ns != before
    except OSError:
        return False


def found(params):
    """(pid, command line, mount state) of the daemon as it is now."""
    pid = read_pid(params["pidfile"], params["executable"])
    return pid, cmdline(pid) if pid else [], mount_state(params["mountpoint"])


def apply(params, pid, current, mount, run_command):
    step = action(params, pid, current, mount)
    if step == "reload":
        reload(params, pid)
        return
    stop(params, pid, run_command)
    if step == "restart":
        start(params, run_command)


def run_module():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    pid, current, mount = found(params)
    changed, diff = plan(params, pid, current, mount)
    if changed and not module.check_mode:
        try:
            apply(params, pid, current, mount, module.run_command)
        except DaemonError as err:
            module.fail_json(msg=str(err))
        pid, current, mount = found(params)
    module.exit_json(changed=changed, pid=pid, cmdline=current, mount=mount, diff=diff)
