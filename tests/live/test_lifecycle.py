"""Daemon lifecycle: mount, refuse, recover stale mounts, signals, pidfile, systemd notify."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess

from lxcfs_py import mounts
from tests.live import daemons


def test_sigterm_unmounts_and_removes_the_pidfile(start_daemon, tmp_path):
    pidfile = tmp_path / "lxcfs-py.pid"
    daemon = start_daemon(["-p", str(pidfile)])
    assert int(pidfile.read_text()) == daemon.process.pid
    assert daemon.stop() == 0
    assert not os.path.ismount(daemon.mountpoint)
    assert not pidfile.exists()


def test_a_live_mount_is_refused_with_one_clear_line(start_daemon):
    daemon = start_daemon()
    second = subprocess.run([*daemons.LXCFS_PY, "-f", daemon.mountpoint], capture_output=True, text=True,
                            timeout=daemons.scaled(30))
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "already a live mount" in lines[0], second.stderr
    assert open(f"{daemon.mountpoint}/proc/uptime").read()  # the first daemon still serves


def test_a_stale_mount_of_a_killed_daemon_is_replaced(start_daemon):
    first = start_daemon()
    daemons.crash(first)
    try:
        open(f"{first.mountpoint}/proc/meminfo").read()
        raise AssertionError("expected a stale mount")
    except OSError as err:
        assert err.errno == errno.ENOTCONN
    assert mounts.state(first.mountpoint) == "stale"
    second = start_daemon(name=os.path.basename(first.mountpoint))
    assert "stale mount" in second.log()
    assert open(f"{second.mountpoint}/proc/meminfo").read().startswith("MemTotal:")


def test_ready_is_sent_to_systemd_once_the_mount_is_live(tmp_path):
    address = str(tmp_path / "notify")
    mountpoint = str(tmp_path / "mnt")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(daemons.scaled(20))
        process = subprocess.Popen([*daemons.LXCFS_PY, "-f", mountpoint], env={**os.environ, "NOTIFY_SOCKET": address},
                                   stderr=subprocess.DEVNULL)
        daemon = daemons.Daemon(mountpoint, process, os.devnull)
        try:
            assert sock.recv(100) == b"READY=1"
            assert os.path.ismount(mountpoint)
        finally:
            daemon.stop()
        assert sock.recv(100) == b"STOPPING=1"


def test_background_mode_returns_once_mounted_and_reports_errors(tmp_path):
    mountpoint = str(tmp_path / "mnt")
    pidfile = tmp_path / "bg.pid"
    started = subprocess.run([*daemons.LXCFS_PY, "-p", str(pidfile), mountpoint], capture_output=True, text=True,
                             timeout=daemons.scaled(30))
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        assert os.path.ismount(mountpoint)
        again = subprocess.run([*daemons.LXCFS_PY, mountpoint], capture_output=True, text=True,
                               timeout=daemons.scaled(30))
        assert again.returncode == 1 and "already a live mount" in again.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
        daemons.wait_for(lambda: not pidfile.exists(), 10)
        daemons.ensure_free(mountpoint)
    assert not pidfile.exists()
    assert not os.path.ismount(mountpoint)


def test_journald_priorities_when_logging_to_the_journal(tmp_path):
    mountpoint = str(tmp_path / "mnt")
    log_path = tmp_path / "log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([*daemons.LXCFS_PY, "-f", mountpoint], stderr=log,
                                   env={**os.environ, "JOURNAL_STREAM": "8:1234"})
    daemons.wait_mounted(mountpoint, process, str(log_path))
    daemons.Daemon(mountpoint, process, str(log_path)).stop()
    lines = log_path.read_text().splitlines()
    assert lines and all(line.startswith("<6>") for line in lines), lines
