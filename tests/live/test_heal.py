"""Healing after a crash touches only dead binds of this mountpoint's earlier mounts (no Docker)."""

from __future__ import annotations

import os
import subprocess

import pytest

from lxcfs_py import kernel_mounts, remount
from tests.live import daemons
from tests.live.cgroups import namespace_process


def meminfo_mount(pid: int) -> dict:
    """The mount a container-like process sees at /proc/meminfo (the top one)."""
    return [m for m in kernel_mounts.read_mountinfo(pid) if m["target"] == "/proc/meminfo"][-1]


def read_meminfo(pid: int) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "head", "-1", "/proc/meminfo"], capture_output=True,
                          text=True, timeout=daemons.scaled(30))


def kill(daemon: daemons.Daemon) -> None:
    daemons.crash(daemon)


def test_a_live_mount_that_got_a_recorded_device_number_is_left_alone(start_daemon):
    """The original report: a fresh start at A re-bound a container's files from B,
    because B's mount had been given the device number of A's crashed one."""
    crashed = start_daemon(name="a")
    device = os.stat(crashed.mountpoint).st_dev
    kill(crashed)  # recorded for A, never cleanly unmounted
    daemons.ensure_free(crashed.mountpoint)  # nothing holds the dead mount now: its number is free
    other = start_daemon(name="b")
    if os.stat(other.mountpoint).st_dev != device:
        pytest.skip("the kernel gave B's mount another device number (a parallel mount took A's)")
    with namespace_process(f"mount --bind {other.mountpoint}/proc/meminfo /proc/meminfo") as pid:
        before = meminfo_mount(pid)
        fresh = start_daemon(["--no-remount"], name="a")
        # the daemon's heal step, run here to know when it is done
        heal = subprocess.run([*daemons.LXCFS_PY, "remount", fresh.mountpoint], capture_output=True, text=True)
        assert heal.returncode == 0 and heal.stdout == "", heal.stdout + heal.stderr
        after = meminfo_mount(pid)
        assert (after["id"], after["source"], after["device"]) == (before["id"], before["source"], before["device"])
        assert before["source"] == kernel_mounts.live_mount(other.mountpoint)["source"]
        assert read_meminfo(pid).stdout.startswith("MemTotal:")


def test_a_dead_bind_is_healed_from_the_fresh_mount(start_daemon):
    crashed = start_daemon(name="a")
    with namespace_process(f"mount --bind {crashed.mountpoint}/proc/meminfo /proc/meminfo") as pid:
        assert read_meminfo(pid).returncode == 0
        kill(crashed)
        assert "Transport endpoint is not connected" in read_meminfo(pid).stderr
        fresh = start_daemon(name="a")
        assert daemons.wait_for(lambda: read_meminfo(pid).returncode == 0, 30), fresh.log()
        assert meminfo_mount(pid)["source"] == kernel_mounts.live_mount(fresh.mountpoint)["source"]
        assert daemons.wait_for(lambda: "/proc/meminfo: healed" in fresh.log(), 10), fresh.log()


def test_the_heal_enters_the_namespace_opened_at_scan_time(start_daemon):
    """The process scanned exits before the heal (its pid may be anyone's by then):
    the heal still goes to the namespace scanned, never through /proc/<pid>."""
    crashed = start_daemon(name="a")
    with namespace_process(f"mount --bind {crashed.mountpoint}/proc/meminfo /proc/meminfo") as pid:
        kill(crashed)
        fresh = start_daemon(["--no-remount"], name="a")
        namespace = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        found = remount.find_stale("/proc", fresh.mountpoint)
    # (the namespace also holds its copy of the host's mount at A, dead too)
    stale = [s for s in found if os.fstat(s.namespace.ns_fd).st_ino == namespace and s.target == "/proc/meminfo"]
    try:
        assert len(stale) == 1
        assert daemons.wait_for(lambda: not os.path.exists(f"/proc/{stale[0].pid}"), 10)
        assert remount.heal(stale[0], fresh.mountpoint) is True
        # read through the namespace scanned, found from its root fd
        fd = kernel_mounts.open_in_root(stale[0].namespace.root_fd, "/proc/meminfo", os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            assert f.read(9) == b"MemTotal:"
    finally:
        remount.release(found)
