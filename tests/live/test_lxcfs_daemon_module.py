"""lxcfs_py.fleet.lxcfs_daemon run for real against this machine: a real
background daemon, and the pidfiles a host can be left with (one naming a
reused pid, one naming a daemon that exited but was never reaped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lxcfs_py import mounts
from tests.live import adhoc, daemons

MODULE = "lxcfs_py.fleet.lxcfs_daemon"
LXCFS_PY = os.path.join(os.path.dirname(adhoc.ANSIBLE), "lxcfs-py")


def process_state(pid):
    """The state letter of /proc/PID/stat, or "gone"."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.fixture
def paths(tmp_path):
    """The module's paths, in a scratch directory; whatever runs there is stopped afterwards."""
    args = {"mountpoint": str(tmp_path / "mnt"), "pidfile": str(tmp_path / "pid"),
            "log_file": str(tmp_path / "log"), "executable": LXCFS_PY, "timeout": 10}
    yield args
    adhoc.run_module(MODULE, {**args, "state": "stopped"})
    daemons.ensure_free(args["mountpoint"])


def test_start_is_idempotent_and_stop_unmounts(paths):
    started, _ = adhoc.run_module(MODULE, paths)
    assert started["changed"] and started["mount"] == "live", started
    with open(os.path.join(paths["mountpoint"], "proc", "meminfo")) as f:
        assert f.readline().startswith("MemTotal:")
    again, _ = adhoc.run_module(MODULE, paths)
    assert not again["changed"] and again["pid"] == started["pid"], again
    stopped, _ = adhoc.run_module(MODULE, {**paths, "state": "stopped"})
    assert stopped["changed"] and stopped["mount"] == "free" and stopped["pid"] is None, stopped
    assert process_state(started["pid"]) in ("gone", "Z")  # exited (a zombie until its reaper collects it)


def test_a_pidfile_naming_another_process_signals_nothing(paths):
    # the daemon's pid was reused by an unrelated process after a crash
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        with open(paths["pidfile"], "w") as f:
            f.write("%d\n" % bystander.pid)
        result, output = adhoc.run_module(MODULE, {**paths, "state": "stopped"})
        assert result["_status"] == "SUCCESS" and not result["changed"], output
        assert bystander.poll() is None, "the module signalled a process that is not lxcfs-py"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_daemon_that_exited_unreaped_counts_as_stopped(paths):
    # in a container whose PID 1 never reaps, an exited daemon stays a zombie:
    # here the test is its parent and does not reap it until the module is done
    # (the daemon's interpreter and command line: it passes every check the module makes)
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "-m", "lxcfs_py",
                               "-p", paths["pidfile"]])
    try:
        with open(paths["pidfile"], "w") as f:
            f.write("%d\n" % daemon.pid)
        result, output = adhoc.run_module(MODULE, {**paths, "state": "stopped"})
        assert result["_status"] == "CHANGED" and result["pid"] is None, output
        assert process_state(daemon.pid) == "Z"  # exited, never reaped
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGKILL)
        daemon.wait()


def test_stopped_unmounts_a_dead_daemons_mount(paths, tmp_path):
    crashed = daemons.start(daemons.LXCFS_PY, paths["mountpoint"], log_dir=str(tmp_path))
    daemons.crash(crashed)
    assert mounts.state(paths["mountpoint"]) == "stale"
    result, output = adhoc.run_module(MODULE, {**paths, "state": "stopped"})
    assert result["_status"] == "CHANGED" and result["mount"] == "free", output
    assert not os.path.ismount(paths["mountpoint"])


def test_reloaded_hands_over_and_restarts_for_new_flags(paths):
    started, _ = adhoc.run_module(MODULE, paths)
    reloaded, output = adhoc.run_module(MODULE, {**paths, "state": "reloaded"})
    assert reloaded["changed"] and reloaded["pid"] == started["pid"], output  # same process, re-executed
    # a re-executed daemon keeps its flags: new ones need a new process
    flagged, output = adhoc.run_module(MODULE, {**paths, "state": "reloaded", "args": ["--enable-cfs"]})
    assert flagged["changed"] and flagged["pid"] != started["pid"], output
    assert "--enable-cfs" in flagged["cmdline"] and flagged["mount"] == "live", output


def test_started_from_a_trapped_directory_runs_only_the_installed_code(paths, tmp_path):
    """Ansible's working directory holds an lxcfs_py package: neither the daemon, its heal step nor a reload runs it."""
    marker = tmp_path / "marker"
    package = tmp_path / "trap" / "lxcfs_py"
    package.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "cli.py"):
        (package / name).write_text("open(%r, 'a').write('imported\\n')\n" % str(marker))
    started, output = adhoc.run_module(MODULE, paths, cwd=package.parent)
    assert started["mount"] == "live", output
    assert os.readlink("/proc/%d/cwd" % started["pid"]) == "/"
    reloaded, output = adhoc.run_module(MODULE, {**paths, "state": "reloaded"}, cwd=package.parent)
    assert reloaded["pid"] == started["pid"] and reloaded["mount"] == "live", output
    assert not marker.exists(), "code from Ansible's working directory ran as root"


def test_a_process_forging_the_daemons_command_line_in_another_pid_namespace_is_not_signalled(paths):
    # a container's process: the daemon's interpreter and command line, but its own pid namespace
    forger = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c",
                               "import time; time.sleep(300)", "-m", "lxcfs_py", "-p", paths["pidfile"],
                               "--log-file", paths["log_file"], paths["mountpoint"]])
    try:
        assert daemons.wait_for(lambda: children(forger.pid), 10)
        host_pid = children(forger.pid)[0]
        assert daemons.wait_for(lambda: b"lxcfs_py" in open("/proc/%d/cmdline" % host_pid, "rb").read(), 10)
        with open(paths["pidfile"], "w") as f:
            f.write("%d\n" % host_pid)
        result, output = adhoc.run_module(MODULE, {**paths, "state": "stopped"})
        assert result["_status"] == "SUCCESS" and result["pid"] is None, output
        assert process_state(host_pid) not in ("gone", "Z"), "the module signalled a forged daemon"
    finally:
        forger.kill()
        forger.wait()


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []
