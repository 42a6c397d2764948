# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""lxcfs_daemon's logic on real processes: which one is the daemon (a pid reused by
another process, a forged command line and a zombie are not), what each state asks
for, and stopping, starting and reloading a stand-in daemon."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _lxcfs_daemon as daemon

# a stand-in daemon: writes its pid to the pidfile (argv's last word), rewrites it on SIGHUP
STAND_IN = """
import os, signal, sys, time
pidfile = sys.argv[-1]
def write(*_args):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
signal.signal(signal.SIGHUP, write if "reloads" in sys.argv else signal.SIG_IGN)
if "ignores-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
write()
while True:
    time.sleep(1)
"""
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon counts only as root")


@pytest.fixture
def params(tmp_path):
    executable = tmp_path / "lxcfs-py"
    executable.write_text("#!%s\nimport lxcfs_py\n" % sys.executable)
    executable.chmod(0o755)
    (tmp_path / "mnt").mkdir()
    return {"state": "started", "mountpoint": str(tmp_path / "mnt"), "executable": str(executable), "args": [],
            "pidfile": str(tmp_path / "pid"), "log_file": str(tmp_path / "log"), "timeout": 10}


@pytest.fixture
def stand_in(params):
    """stand_in(*flags) starts a stand-in daemon of `params` (flags: reloads, ignores-term) and returns it."""
    started = []

    def start(*flags):
        process = subprocess.Popen([sys.executable, "-c", STAND_IN, "-m", "lxcfs_py"] + list(flags)
                                   + ["-p", params["pidfile"]])
        started.append(process)
        assert daemon.wait_for(lambda: os.path.exists(params["pidfile"]), 10)
        return process
    yield start
    for process in started:
        process.kill()
        process.wait()


# --- which process is the daemon -------------------------------------------------


@needs_root
def test_a_root_process_running_lxcfs_py_with_the_pidfile_is_the_daemon(params, stand_in):
    process = stand_in()
    assert daemon.read_pid(params["pidfile"], params["executable"]) == process.pid


def test_a_pidfile_naming_another_process_names_no_daemon(params):
    with open(params["pidfile"], "w") as f:
        f.write(str(os.getpid()))  # pytest: no lxcfs-py on its command line
    assert daemon.read_pid(params["pidfile"], params["executable"]) is None


@pytest.mark.parametrize("content", ["", "not a pid", "-1"])
def test_a_pidfile_without_a_live_pid_names_no_daemon(params, content):
    with open(params["pidfile"], "w") as f:
        f.write(content)
    assert daemon.read_pid(params["pidfile"], params["executable"]) is None
    assert daemon.read_pid(params["pidfile"] + ".missing", params["executable"]) is None


@needs_root
def test_a_process_of_another_interpreter_is_not_the_daemon(params, stand_in):
    stand_in()
    with open(params["executable"], "w") as f:
        f.write("#!/bin/sh\nexec true\n")
    assert daemon.read_pid(params["pidfile"], params["executable"]) is None


@pytest.mark.parametrize("args, expected", [
    (["python", "-m", "lxcfs_py", "-p", "/run/x.pid", "/mnt"], True),
    (["python", "/opt/bin/lxcfs-py", "--pidfile=/run/x.pid", "/mnt"], True),
    (["python", "/opt/bin/lxcfs-py", "-p/run/x.pid", "/mnt"], True),
    (["python", "/opt/bin/lxcfs-py", "-p", "/run/other.pid", "/mnt"], False),
    (["python", "-m", "other", "-p", "/run/x.pid"], False),
    (["sh", "-c", "lxcfs_py -p /run/x.pid"], False),
])
def test_runs_daemon(args, expected):
    assert daemon.runs_daemon(args, "/run/x.pid", "/opt/bin/lxcfs-py") is expected


def test_a_zombie_is_not_alive():
    child = subprocess.Popen(["true"])
    try:
        assert daemon.wait_for(lambda: not daemon.alive(child.pid), 10)
        with open("/proc/%d/stat" % child.pid) as f:
            assert f.read().rpartition(")")[2].split()[0] == "Z"  # exited, not yet reaped
    finally:
        child.wait()
    assert daemon.alive(os.getpid())


@pytest.mark.parametrize("script, interpreter", [
    ("#!/usr/bin/python3 -I\n", "/usr/bin/python3"),
    ("#!/bin/sh\n'''exec' '/opt/long venv/bin/python3' \"$0\" \"$@\"\n' '''\n", "/opt/long"),
    ("#!/bin/sh\n'''exec' /opt/venv/bin/python3 \"$0\" \"$@\"\n' '''\n", "/opt/venv/bin/python3"),
])
def test_interpreter_of_a_script(tmp_path, script, interpreter):
    path = tmp_path / "lxcfs-py"
    path.write_text(script)
    assert daemon.interpreter_of(str(path)) == os.path.realpath(interpreter)


def test_interpreter_of_a_binary_is_itself(tmp_path):
    path = tmp_path / "lxcfs-py"
    path.write_bytes(b"\x7fELF")
    assert daemon.interpreter_of(str(path)) == str(path)


# --- what a state asks for --------------------------------------------------------


def test_wanted_command_line_and_matching_after_a_reload(params):
    params["args"] = ["--enable-cfs"]
    wanted = ["-p", params["pidfile"], "--log-file", params["log_file"], "--enable-cfs", params["mountpoint"]]
    assert daemon.wanted_args(params) == wanted
    assert daemon.matches(["/venv/bin/python", "/venv/bin/lxcfs-py"] + wanted, params)
    assert daemon.matches(["/venv/bin/python", "-m", "lxcfs_py"] + wanted[:-1] + ["--handover=3,4"] + wanted[-1:],
                          params)
    assert not daemon.matches(["/venv/bin/python", "/venv/bin/lxcfs-py"] + wanted[:4] + wanted[-1:], params)


@pytest.mark.parametrize("state, pid, mount, flags_match, changed, step", [
    ("started", 42, "live", True, False, "restart"),
    ("started", 42, "live", False, True, "restart"),
    ("started", None, "stale", False, True, "restart"),
    ("started", 42, "stale", True, True, "restart"),
    ("stopped", None, "free", False, False, "stop"),
    ("stopped", None, "stale", False, True, "stop"),
    ("stopped", 42, "live", True, True, "stop"),
    ("restarted", 42, "live", True, True, "restart"),
    ("reloaded", 42, "live", True, True, "reload"),
    ("reloaded", 42, "live", False, True, "restart"),
    ("reloaded", None, "free", False, True, "restart"),
])
def test_plan_and_action(params, state, pid, mount, flags_match, changed, step):
    params["state"] = state
    current = ["python", "lxcfs-py"] + (daemon.wanted_args(params) if flags_match else ["-d"])
    assert daemon.plan(params, pid, current, mount)[0] is changed
    assert daemon.action(params, pid, current, mount) == step


def test_diff_shows_the_running_and_the_wanted_command_line(params):
    changed, diff = daemon.plan(params, 42, ["python", "lxcfs-py", "-d"], "live")
    assert changed
    assert diff == {"before": {"running": True, "cmdline": ["python", "lxcfs-py", "-d"]},
                    "after": {"running": True, "cmdline": daemon.wanted_args(params)}}
    params["state"] = "stopped"
    assert daemon.plan(params, None, [], "free")[1]["after"] == {"running": False, "cmdline": []}


# --- stopping, starting, reloading -------------------------------------------------


def refuse_commands(argv, **_kwargs):
    raise AssertionError("no command should run, got %r" % (argv,))


@needs_root
def test_stop_ends_the_daemon_and_leaves_a_free_mountpoint_alone(params, stand_in):
    process = stand_in()
    daemon.stop(params, process.pid, refuse_commands)
    assert process.wait(timeout=10) == -signal.SIGTERM


def test_a_daemon_that_ignores_sigterm_fails_the_stop_with_where_to_look(params, stand_in):
    process = stand_in("ignores-term")
    time.sleep(0.5)  # its handlers are set once it has written the pidfile: give it a moment more
    params["timeout"] = 1
    with pytest.raises(daemon.DaemonError) as err:
        daemon.stop(params, process.pid, refuse_commands)
    assert str(err.value) == "lxcfs-py (pid %d) did not exit within 1s of SIGTERM; look at %s" % (
        process.pid, params["log_file"])
    assert process.poll() is None


def test_reload_waits_for_the_rewritten_pidfile(params, stand_in):
    process = stand_in("reloads")
    os.utime(params["pidfile"], ns=(0, 0))  # an mtime the rewrite is sure to change
    daemon.reload(params, process.pid)
    assert os.stat(params["pidfile"]).st_mtime_ns != 0


def test_a_daemon_that_does_not_take_over_fails_the_reload(params, stand_in):
    process = stand_in()
    time.sleep(0.5)
    params["timeout"] = 1
    with pytest.raises(daemon.DaemonError, match=r"did not take over its mount within 1s of SIGHUP; look at "):
        daemon.reload(params, process.pid)


def test_start_without_the_executable_says_to_install_it(params):
    params["executable"] += ".missing"
    with pytest.raises(daemon.DaemonError) as err:
        daemon.start(params, refuse_commands)
    assert str(err.value) == "%s is not an executable; install lxcfs-py first (role lxcfs_py.fleet.lxcfs)" % (
        params["executable"])


def test_a_failed_start_reports_the_daemons_own_line(params):
    calls = []

    def run_command(argv, cwd=None):
        calls.append((argv, cwd))
        return 1, "", "lxcfs-py: error: %s is already a live mount\n" % params["mountpoint"]

    with pytest.raises(daemon.DaemonError) as err:
        daemon.start(params, run_command)
    assert str(err.value) == "lxcfs-py failed to start: lxcfs-py: error: %s is already a live mount" % (
        params["mountpoint"])
    assert calls == [([params["executable"]] + daemon.wanted_args(params), "/")]  # from /, nothing else
