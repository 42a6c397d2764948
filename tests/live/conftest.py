"""Live tests: real FUSE mounts, real cgroups, real dockerd (started if not running)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.live import daemons

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session", autouse=True)
def root_and_fuse():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("live tests need root and /dev/fuse")


@pytest.fixture(scope="session")
def docker():
    """dockerd running and the workload image built (both scripts are idempotent)."""
    for script in ("start-dockerd.sh", "build-images.sh"):
        subprocess.run(["bash", os.path.join(REPO, "scripts", script)], check=True)


@pytest.fixture(scope="session")
def programs_image(docker):
    """The image with the real programs the tests run (psutil, Node.js, sysstat, util-linux, procps)."""
    subprocess.run(["bash", os.path.join(REPO, "scripts", "build-images.sh"), "programs"], check=True)
    return "lxcfs-py/programs:bookworm"


@pytest.fixture
def start_daemon(tmp_path_factory):
    """start_daemon(flags, ref=False) -> Daemon; every daemon is stopped and unmounted after the test."""
    started = []
    base = tmp_path_factory.mktemp("mnt")

    def start(flags=(), ref=False, name=None):
        name = name or f"{'ref' if ref else 'py'}{len(started)}"
        command = daemons.LXCFS_PY
        if ref:
            # its own pidfile: two LXCFS instances (or one and a packaged lxcfs.service) clash on /run/lxcfs.pid
            command = [*daemons.LXCFS_REF, "--pidfile", str(base / f"{name}.pid")]
        daemon = daemons.start(command, str(base / name), list(flags), log_dir=str(base))
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    for daemon in started:
        daemons.forget_heal_records(daemon.mountpoint)
