"""Docker on a cgroup-v2 kernel (the guest of scripts/test-v2.sh): its own dockerd (cgroupfs driver, no
systemd in the guest) runs a container with lxcfs-py's runtime; skipped on v1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.live.cgroups import V2
from tests.live.conftest import REPO
from tests.live.daemons import scaled

pytestmark = pytest.mark.skipif(not V2, reason="needs a cgroup v2 kernel (scripts/test-v2.sh boots one)")

IMAGE = "lxcfs-py/workload:bookworm"
SAVED = "/var/cache/lxcfs-py/images/workload-bookworm.image.tar"  # put in the guest by build-v2vm.sh


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


def test_docker_run_with_the_lxcfs_runtime_shows_the_memory_limit(start_daemon, tmp_path):
    daemon = start_daemon()
    runtime = tmp_path / "lxcfs-py-runc"
    runtime.write_text(f'#!/bin/sh\nexec {sys.executable} -m lxcfs_py.runtime '
                       f'--lxcfs-mountpoint {daemon.mountpoint} "$@"\n')
    runtime.chmod(0o755)
    # the guest's disk is a throwaway snapshot: its daemon.json is ours to set
    with open("/etc/docker/daemon.json", "w") as f:
        json.dump({"exec-opts": ["native.cgroupdriver=cgroupfs"], "runtimes": {"lxcfs": {"path": str(runtime)}}}, f)
    subprocess.run(["bash", os.path.join(REPO, "scripts", "start-dockerd.sh")], check=True, timeout=scaled(60))
    assert run("docker", "info", "-f", "{{.CgroupVersion}} {{.CgroupDriver}}").split() == ["2", "cgroupfs"]
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        run("docker", "load", "-i", SAVED)
    out = run("docker", "run", "--rm", "--runtime", "lxcfs", "-m", "200m", IMAGE, "free", "-h")
    mem = next(line.split() for line in out.splitlines() if line.startswith("Mem:"))
    assert mem[1] == "200Mi", out
