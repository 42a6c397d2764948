"""A Galaxy user's first run: the collection installed from its tarball alone (no checkout),
`ansible-playbook lxcfs_py.fleet.site` from another directory against this machine
(connection local), on each ansible-core the collection claims.

As scripts/setup.sh does here (no systemd as PID 1): the lxcfs role runs the daemon with
the lxcfs_daemon module and docker_lxcfs reloads the running dockerd. Everything the run
leaves is scratch or put back: the role's prefix, mountpoint, pidfile, log, wheel cache
and runtime shim lie in tmp_path; the daemon is stopped, daemon.json restored and dockerd
reloaded afterwards, so later tests find the machine as before.
"""

import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from tests.ansible_cores import playbook_executables
from tests.collection import tree
from tests.live import daemons
from tests.live.dockerd import DAEMON_JSON, put_back, reload_dockerd

INVENTORY = """lxcfs_hosts:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: /usr/bin/python3
"""
CANARY_IMAGE = "lxcfs-py/workload:bookworm"  # scripts/build-images.sh workload (scripts/test.sh builds it)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("docker") is None
    or subprocess.run(["docker", "image", "inspect", CANARY_IMAGE], capture_output=True).returncode != 0,
    reason="needs root, /dev/fuse, a running dockerd and the image %s" % CANARY_IMAGE)


@pytest.fixture(scope="module")
def collections_root(tmp_path_factory):
    tarball = tree.build(tree.REPO, tmp_path_factory.mktemp("dist"))
    root = tmp_path_factory.mktemp("collections")
    tree.install(tarball, root, with_tests=False)
    return root


@pytest.fixture
def machine(tmp_path):
    """The role's paths in tmp_path; afterwards the daemon stopped and dockerd as it was."""
    saved = None
    if os.path.exists(DAEMON_JSON):
        with open(DAEMON_JSON, "rb") as f:
            saved = f.read()
    paths = {name: str(tmp_path / leaf) for name, leaf in (
        ("lxcfs_prefix", "opt"), ("lxcfs_mountpoint", "mnt"), ("lxcfs_pidfile", "pid"), ("lxcfs_log_file", "log"),
        ("lxcfs_controller_cache", "cache"), ("docker_lxcfs_shim_path", "lxcfs-runc"))}
    yield paths
    stop_daemon(paths["lxcfs_pidfile"])
    daemons.ensure_free(paths["lxcfs_mountpoint"])
    daemons.forget_heal_records(paths["lxcfs_mountpoint"])
    # dockerd resets its runtimes only when daemon.json names the key: clear them, then put the file back
    with open(DAEMON_JSON, "w") as f:
        json.dump({"runtimes": {}}, f)
    reload_dockerd(lambda runtimes, default: "lxcfs" not in runtimes)
    put_back(saved)


def stop_daemon(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    daemons.wait_for(lambda: not os.path.exists("/proc/%d" % pid), 30)


@pytest.mark.parametrize("ansible_playbook", playbook_executables())
def test_site_from_the_installed_tarball_rolls_out_to_this_machine(collections_root, machine, tmp_path,
                                                                   ansible_playbook):
    workdir = tmp_path / "elsewhere"  # not the checkout: no ansible.cfg, no collections/ link
    workdir.mkdir()
    (workdir / "hosts.yml").write_text(INVENTORY)
    canary = "lxcfs-py-site-canary-" + uuid.uuid4().hex[:8]
    extra = [arg for name, value in machine.items() for arg in ("-e", "%s=%s" % (name, value))]
    result = tree.run([ansible_playbook, "-i", "hosts.yml", "lxcfs_py.fleet.site", "-e", "lxcfs_canary_name=" + canary,
                       "-e", "docker_lxcfs_daemon_json_backup=false"] + extra, cwd=str(workdir), timeout=1200,
                      env={"ANSIBLE_COLLECTIONS_PATH": str(collections_root)})
    output = " ".join(result.output.split())  # ansible folds long lines
    assert result.returncode == 0, result.output[-6000:]
    assert "localhost: a 200 MiB container sees 209715200 bytes" in output, result.output[-6000:]
    # the daemon runs from the role's prefix, built from the tarball's own source
    assert os.path.isfile(os.path.join(machine["lxcfs_prefix"], "venv", "bin", "lxcfs-py"))
    with open(os.path.join(machine["lxcfs_mountpoint"], "proc", "meminfo")) as f:
        assert f.read().startswith("MemTotal:")
    assert subprocess.run(["docker", "inspect", canary], capture_output=True).returncode != 0  # canary removed
