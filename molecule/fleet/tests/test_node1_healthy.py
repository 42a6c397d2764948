"""Node 1, the batch before the broken node: site.yml converged it and it is healthy."""

import json

testinfra_hosts = ["ansible://lxcfs-py-mol-fleet-1"]


def test_lxcfs_py_runs_under_systemd(host):
    service = host.service("lxcfs-py")
    assert service.is_running
    assert service.is_enabled
    assert host.mount_point("/var/lib/lxcfs").filesystem.startswith("fuse")
    assert host.file("/var/lib/lxcfs/proc/meminfo").content_string.startswith("MemTotal:")


def test_docker_has_the_lxcfs_runtime(host):
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert runtimes["lxcfs"]["path"] == "/usr/local/bin/lxcfs-runc"


def test_a_limited_container_sees_its_limit(host):
    out = host.check_output("docker run --rm --runtime lxcfs -m 200m lxcfs-py/workload:bookworm free -b")
    total = next(line for line in out.splitlines() if line.startswith("Mem:")).split()[1]
    assert int(total) == 209715200


def test_the_canary_was_removed(host):
    assert host.run("docker container inspect lxcfs-py-canary").rc != 0
