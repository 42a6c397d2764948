"""lxcfs_py.fleet.lxcfs_container run for real: `ansible localhost -m ...` from
the repo root (its ansible.cfg resolves the collection from this checkout),
on Debian's /usr/bin/python3, against this machine's dockerd and a live
lxcfs-py mount."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.live import adhoc, daemons
from tests.live.adhoc import ANSIBLE, PYTHON, REPO
from tests.live.cgroups import namespace_process
from tests.live.containers import IMAGE
from tests.live.daemons import scaled

MIB = 1024 * 1024
MODULE = "lxcfs_py.fleet.lxcfs_container"
MOUNT_HINT = "Start lxcfs-py there first"


@pytest.fixture(scope="module", autouse=True)
def target_python():
    if not os.path.exists(ANSIBLE):
        pytest.skip("ansible is not installed in the test virtualenv")
    probe = subprocess.run([PYTHON, "-c", "import docker"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("%s has no Docker SDK: apt-get install python3-docker" % PYTHON)


@pytest.fixture
def names(docker):
    """new() -> a unique container name; every container named is removed afterwards."""
    made = []

    def new():
        made.append("lxcfs-py-test-%s" % uuid.uuid4().hex[:10])
        return made[-1]

    yield new
    for name in made:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def run_module(args, check=False, diff=False):
    return adhoc.run_module(MODULE, args, check=check, diff=diff)


def container_exists(name):
    return subprocess.run(["docker", "inspect", name], capture_output=True).returncode == 0


def container_id(name):
    return subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True,
                          check=True).stdout.strip()


def mem_total(name):
    """`free -b` total inside the container."""
    out = subprocess.run(["docker", "exec", name, "free", "-b"], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("Mem:")))


def spec(name, mountpoint, **extra):
    args = {"name": name, "image": IMAGE, "command": ["sleep", "infinity"], "memory": "200m",
            "lxcfs_mountpoint": mountpoint}
    args.update(extra)
    return args


def test_create_idempotent_check_diff_recreate_absent(start_daemon, names):
    mountpoint = start_daemon().mountpoint
    name = names()

    result, out = run_module(spec(name, mountpoint))
    assert result["_status"] == "CHANGED", out
    assert result["changed"] is True
    assert result["differences"] == [{"field": "state", "before": "absent", "after": "started"}]
    container = result["container"]
    assert container["name"] == name and container["status"] == "running"
    lxcfs = [m for m in container["mounts"] if m["source"].startswith(mountpoint + "/")]
    assert len(lxcfs) == 9 and all(m["read_only"] for m in lxcfs)
    assert {m["destination"] for m in lxcfs} >= {"/proc/meminfo", "/proc/cpuinfo", "/sys/devices/system/cpu"}
    assert mem_total(name) == 209715200
    first_id = container_id(name)

    result, out = run_module(spec(name, mountpoint))
    assert result["changed"] is False and result["differences"] == [], out
    assert container_id(name) == first_id

    # check mode: reports the change, touches nothing
    result, out = run_module(spec(name, mountpoint, memory="300m", cpus=1), check=True, diff=True)
    assert result["changed"] is True, out
    fields = {d["field"]: d for d in result["differences"]}
    assert set(fields) == {"memory", "cpus"}
    assert fields["memory"]["before"] == 209715200 and fields["memory"]["after"] == 314572800
    assert container_id(name) == first_id and mem_total(name) == 209715200
    # diff mode: before/after of the compared fields
    assert "--- before" in out and "+++ after" in out
    assert '-    "memory": 209715200' in out and '+    "memory": 314572800' in out

    result, out = run_module(spec(name, mountpoint, memory="300m"), diff=True)
    assert result["changed"] is True and [d["field"] for d in result["differences"]] == ["memory"], out
    assert '+    "memory": 314572800' in out
    assert container_id(name) != first_id
    assert result["container"]["id"] == container_id(name)
    assert mem_total(name) == 314572800

    result, out = run_module(spec(name, mountpoint, memory="300m"))
    assert result["changed"] is False, out

    result, out = run_module({"name": name, "state": "absent"}, check=True)
    assert result["changed"] is True and container_exists(name), out
    result, out = run_module({"name": name, "state": "absent"})
    assert result["changed"] is True, out
    assert not container_exists(name)
    result, out = run_module({"name": name, "state": "absent"})
    assert result["changed"] is False, out


def test_check_mode_creates_nothing(start_daemon, names):
    mountpoint = start_daemon().mountpoint
    name = names()
    result, out = run_module(spec(name, mountpoint), check=True, diff=True)
    assert result["changed"] is True and result["container"] == {}, out
    assert '-    "state": "absent"' in out and '+    "state": "started"' in out
    assert not container_exists(name)


def test_present_creates_without_starting_then_started_starts(start_daemon, names):
    mountpoint = start_daemon().mountpoint
    name = names()
    result, out = run_module(spec(name, mountpoint, state="present"))
    assert result["changed"] is True and result["container"]["status"] == "created", out
    result, out = run_module(spec(name, mountpoint, state="present"))
    assert result["changed"] is False, out
    result, out = run_module(spec(name, mountpoint))
    assert result["changed"] is True and result["differences"] == [
        {"field": "state", "before": "stopped", "after": "started"}], out
    assert result["container"]["status"] == "running"
    assert mem_total(name) == 209715200


def test_missing_mount_fails_clearly_and_creates_nothing(docker, names, tmp_path):
    name = names()
    for mountpoint in (str(tmp_path), str(tmp_path / "does-not-exist")):
        result, out = run_module(spec(name, mountpoint))
        assert result["_status"] == "FAILED!", out
        assert result["msg"].startswith("lxcfs mount at %s is not live: " % mountpoint), out
        assert MOUNT_HINT in result["msg"] and "lxcfs_py.fleet.lxcfs" in result["msg"]
        assert "No container was created or started." in result["msg"]
        assert not container_exists(name)


def test_missing_mount_is_a_warning_in_check_mode(docker, names, tmp_path):
    name = names()
    result, out = run_module(spec(name, str(tmp_path)), check=True)
    assert result["_status"] == "CHANGED", out
    assert MOUNT_HINT in " ".join(out.split())  # the warning (ansible may fold it)
    assert not container_exists(name)


def test_stale_mount_fails_clearly_and_creates_nothing(start_daemon, names):
    daemon = start_daemon()
    daemons.crash(daemon)  # SIGKILL: the FUSE mount stays, dead
    name = names()
    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["_status"] == "FAILED!", out
    assert "stale FUSE mount" in result["msg"] and "Transport endpoint is not connected" in result["msg"]
    assert MOUNT_HINT in result["msg"]
    assert not container_exists(name)


def test_stop_and_remove_work_without_the_mount(start_daemon, names):
    daemon = start_daemon()
    name = names()
    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["changed"] is True, out
    daemon.stop()

    result, out = run_module({"name": name, "state": "stopped", "lxcfs_mountpoint": daemon.mountpoint})
    assert result["changed"] is True and result["container"]["status"] == "exited", out
    result, out = run_module({"name": name, "state": "stopped", "lxcfs_mountpoint": daemon.mountpoint})
    assert result["changed"] is False, out
    # starting it again needs the mount
    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["_status"] == "FAILED!" and MOUNT_HINT in result["msg"], out
    assert result["container"]["status"] == "exited"
    result, out = run_module({"name": name, "state": "absent", "lxcfs_mountpoint": daemon.mountpoint})
    assert result["changed"] is True and not container_exists(name), out


def test_restarted_daemon_recreates_a_container_left_with_a_dead_view(start_daemon, names):
    daemon = start_daemon(name="restarted")
    name = names()
    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["changed"] is True, out
    daemon.stop()
    # same mountpoint, new FUSE connection; without healing, the container's view stays dead
    daemon = start_daemon(["--no-remount"], name="restarted")
    failed = subprocess.run(["docker", "exec", name, "cat", "/proc/meminfo"], capture_output=True, text=True)
    assert failed.returncode != 0 and "Transport endpoint is not connected" in failed.stderr

    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["changed"] is True, out
    assert result["differences"] == [{"field": "lxcfs_view", "before": "stale", "after": "live"}]
    assert mem_total(name) == 209715200
    result, out = run_module(spec(name, daemon.mountpoint))
    assert result["changed"] is False, out


@pytest.mark.parametrize("extra, message", [
    ({"memory": "200x"}, "memory: '200x' is not a valid size"),
    ({"cpus": 0}, "cpus must be greater than 0"),
    ({"cpus": -1.5}, "cpus must be greater than 0"),
    ({"image": None}, "image is required to create container"),
    ({"memory_swap": "100m"}, "memory_swap (100m) must be at least memory (200m)"),
    ({"cpuset_cpus": "0-"}, "cpuset_cpus: '0-' is not a CPU list"),
])
def test_invalid_parameters_fail_with_one_message(start_daemon, names, extra, message):
    mountpoint = start_daemon().mountpoint
    name = names()
    args = spec(name, mountpoint, **extra)
    args = {key: value for key, value in args.items() if value is not None}
    result, out = run_module(args)
    assert result["_status"] == "FAILED!", out
    assert result["msg"].startswith(message), result["msg"]
    assert not container_exists(name)


def test_missing_image_that_cannot_be_pulled_fails_and_creates_nothing(start_daemon, names):
    mountpoint = start_daemon().mountpoint
    name = names()
    result, out = run_module(spec(name, mountpoint, image="lxcfs-py/no-such-image:never"))
    assert result["_status"] == "FAILED!", out
    assert result["msg"].startswith("docker: pulling lxcfs-py/no-such-image:never failed"), result["msg"]
    assert not container_exists(name)


PLAYBOOK = """\
- name: lxcfs_container from a playbook
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    container:
      name: {name}
      image: {image}
      command: sleep infinity
      memory: 200m
      memory_swap: 400m
      cpus: 1
      cpuset_cpus: "0"
      env:
        GREETING: hello
        WORKERS: 2
      labels:
        owner: lxcfs-py-test
      restart_policy: "no"
      lxcfs_mountpoint: {mountpoint}
  tasks:
    - name: Create
      lxcfs_py.fleet.lxcfs_container: "{{{{ container }}}}"
      register: first
    - name: Again
      lxcfs_py.fleet.lxcfs_container: "{{{{ container }}}}"
      register: second
    - name: Restart policy changed
      lxcfs_py.fleet.lxcfs_container: "{{{{ container | combine({{'restart_policy': 'unless-stopped'}}) }}}}"
      register: third
    - name: Check
      ansible.builtin.assert:
        that:
          - first is changed
          - second is not changed
          - third is changed
          - third.differences | map(attribute='field') | list == ['restart_policy']
          - third.differences[0].before == 'no'
    - name: Remove
      lxcfs_py.fleet.lxcfs_container:
        name: {name}
        state: absent
"""


def test_playbook_with_all_options(start_daemon, names, tmp_path):
    mountpoint = start_daemon().mountpoint
    name = names()
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(name=name, image=IMAGE, mountpoint=mountpoint))
    command = [ANSIBLE + "-playbook", "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % PYTHON,
               str(playbook)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=scaled(300))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=5" in proc.stdout and "changed=3" in proc.stdout and "failed=0" in proc.stdout, proc.stdout
    assert not container_exists(name)


def lxcfs_view(pid):
    """module_utils' lxcfs_view(pid) on the target's Python, in a process of its own (it might hang)."""
    code = ("import sys; sys.path.insert(0, %r); from ansible_collections.lxcfs_py.fleet.plugins.module_utils."
            "_engines import lxcfs_view; print(lxcfs_view(%d))" % (os.path.join(REPO, "collections"), pid))
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=scaled(30), check=True).stdout.strip()


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_lxcfs_view_stays_inside_the_container_and_never_blocks(tmp_path, planted):
    """A container's /proc/meminfo that is a symlink to a host path, or a FIFO: root on
    the host must neither read the host's file nor hang."""
    host_file = tmp_path / "host-only"
    host_file.write_text("MemTotal: a host file the container must not make us read\n")
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    if planted == "symlink":
        os.symlink(str(host_file), root / "proc" / "meminfo")
    else:
        os.mkfifo(root / "proc" / "meminfo")
    with namespace_process(root=str(root)) as pid:
        assert lxcfs_view(pid) == "None"


def test_lxcfs_view_of_live_and_dead_binds(start_daemon):
    daemon = start_daemon()
    with namespace_process("mount --bind %s/proc/meminfo /proc/meminfo" % daemon.mountpoint) as pid:
        assert lxcfs_view(pid) == "live"
        daemons.crash(daemon)
        assert lxcfs_view(pid) == "stale"
