"""Node 2, the broken host (no /dev/fuse): lxcfs-py could not start there, and the
rollout stopped on it before the engine was reconfigured."""

import json

testinfra_hosts = ["ansible://lxcfs-py-mol-fleet-2"]


def test_fuse_is_withheld(host):
    assert not host.file("/dev/fuse").exists


def test_lxcfs_py_did_not_start(host):
    # the role got as far as installing it and its unit...
    assert host.file("/opt/lxcfs-py/venv/bin/lxcfs-py").exists
    assert host.file("/etc/systemd/system/lxcfs-py.service").exists
    # ...but the service never came up (systemd retries it until its start
    # limit, so it is "activating" or "failed"), and there is no mount
    state = host.check_output("systemctl show lxcfs-py.service -p ActiveState --value")
    assert state in ("activating", "failed")
    assert not host.mount_point("/var/lib/lxcfs").exists
    journal = host.check_output("journalctl -u lxcfs-py.service --no-pager -o cat")
    assert "cannot mount FUSE on /var/lib/lxcfs" in journal


def test_docker_was_not_reconfigured(host):
    assert not host.file("/usr/local/bin/lxcfs-runc").exists
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert "lxcfs" not in runtimes
    assert host.run("docker container inspect lxcfs-py-canary").rc != 0
