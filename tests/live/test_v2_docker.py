"""Docker on a cgroup-v2 kernel (the guest of scripts/test-v2.sh): its dockerd (cgroupfs driver: no systemd
in the guest) runs a container with lxcfs-py's runtime, and the collection's lxcfs_container module starts
a container with the view bound; skipped on v1."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.live import adhoc
from tests.live.cgroups import V2
from tests.live.containers import IMAGE
from tests.live.daemons import scaled
from tests.live.dockerd import registered_runtimes

pytestmark = pytest.mark.skipif(not V2, reason="needs a cgroup v2 kernel (scripts/test-v2.sh boots one)")


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


def memory_line(free: str) -> list[str]:
    return next(line.split() for line in free.splitlines() if line.startswith("Mem:"))


def test_dockerd_runs_on_cgroup_v2_with_the_cgroupfs_driver(docker):
    assert run("docker", "info", "-f", "{{.CgroupVersion}} {{.CgroupDriver}}").split() == ["2", "cgroupfs"]


def test_docker_run_with_the_lxcfs_runtime_shows_the_memory_limit(docker, start_daemon, tmp_path):
    daemon = start_daemon()
    runtime = tmp_path / "lxcfs-py-runc"
    log = tmp_path / "lxcfs-py-runc.log"
    # --lxcfs-timens auto: the guest runs Debian 12's 6.1, on which runc cannot start threads in a pending
    # time namespace ("pthread_create failed: Invalid argument"); auto must see that and go without one
    runtime.write_text(f'#!/bin/sh\nexec {sys.executable} -m lxcfs_py.runtime --lxcfs-timens auto '
                       f'--lxcfs-mountpoint {daemon.mountpoint} "$@" 2>>{log}\n')
    runtime.chmod(0o755)
    with registered_runtimes({"lxcfs": {"path": str(runtime)}}):
        result = subprocess.run(["docker", "run", "--rm", "--runtime", "lxcfs", "-m", "200m", IMAGE, "free", "-h"],
                                capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result.stderr + (log.read_text() if log.exists() else "")
    assert memory_line(result.stdout)[1] == "200Mi", result.stdout


@pytest.fixture
def container_name(docker):
    name = f"lxcfs-py-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=scaled(60))


def test_the_lxcfs_container_module_starts_a_container_that_sees_its_limit(start_daemon, container_name):
    if not os.path.exists(adhoc.ANSIBLE):
        pytest.skip("ansible is not installed in the test virtualenv")
    mountpoint = start_daemon().mountpoint
    spec = {"name": container_name, "image": IMAGE, "command": ["sleep", "infinity"], "memory": "200m",
            "lxcfs_mountpoint": mountpoint}
    result, out = adhoc.run_module("lxcfs_py.fleet.lxcfs_container", spec)
    assert result["_status"] == "CHANGED" and result["container"]["status"] == "running", out
    assert memory_line(run("docker", "exec", container_name, "free", "-b"))[1] == str(200 * 1024 * 1024)
