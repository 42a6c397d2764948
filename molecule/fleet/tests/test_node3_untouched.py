"""Node 3, after the broken node: a good host (it has /dev/fuse) that the
stopped rollout never reached. Nothing of lxcfs-py is there."""

import json

testinfra_hosts = ["ansible://lxcfs-py-mol-fleet-3"]


def test_it_could_have_run_lxcfs_py(host):
    assert host.run("test -c /dev/fuse").rc == 0


def test_lxcfs_py_is_not_installed(host):
    assert not host.file("/opt/lxcfs-py").exists
    assert not host.file("/etc/systemd/system/lxcfs-py.service").exists
    assert not host.mount_point("/var/lib/lxcfs").exists
    assert not host.file("/var/lib/lxcfs").exists


def test_docker_is_as_the_image_left_it(host):
    assert not host.file("/usr/local/bin/lxcfs-runc").exists
    daemon_json = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon_json == {"exec-opts": ["native.cgroupdriver=systemd"], "storage-driver": "overlay2"}
    assert not [f for f in host.file("/etc/docker").listdir() if f.startswith("daemon.json.")]  # no backup
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert "lxcfs" not in runtimes
    assert host.run("docker container inspect lxcfs-py-canary").rc != 0
