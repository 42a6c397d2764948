"""Verify of molecule/restart: under systemd, `systemctl restart` and `systemctl reload`
of lxcfs-py hand the live FUSE connection over (fd store, re-exec), so a container
that reads /proc/meminfo every 10 ms sees no failed read and keeps its own limit."""

import time

import pytest

IMAGE = "lxcfs-py/workload:bookworm"
NAME = "molecule-restart-reader"
READER = (
    "ok=0; bad=0; while true; do "
    "if head -1 /proc/meminfo 2>/dev/null | grep -q '^MemTotal: *204800 kB'; then ok=$((ok+1)); "
    "else bad=$((bad+1)); fi; echo \"$ok $bad\" > /tmp/count.new; mv /tmp/count.new /tmp/count; "
    "sleep 0.01; done"
)


@pytest.fixture(scope="module")
def reader(host):
    host.run("docker rm -f %s", NAME)
    host.check_output("docker run -d --name %s --runtime lxcfs -m 200m %s bash -c %s", NAME, IMAGE, READER)
    wait_for(lambda: counts(host)[0] > 10)
    yield NAME
    host.run("docker rm -f %s", NAME)


def counts(host):
    out = host.run("docker exec %s cat /tmp/count", NAME).stdout.split()
    return (int(out[0]), int(out[1])) if len(out) == 2 else (0, 0)


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def main_pid(host):
    return host.check_output("systemctl show -p MainPID --value lxcfs-py")


def restart_five_times(host, verb):
    pids = []
    for _ in range(5):
        before = counts(host)[0]
        host.check_output("systemctl %s lxcfs-py", verb)
        assert wait_for(lambda: counts(host)[0] > before + 20), f"reads stalled after systemctl {verb}"
        pids.append(main_pid(host))
    return pids


def test_restarts_lose_no_read(host, reader):
    pids = restart_five_times(host, "restart")
    ok, bad = counts(host)
    assert bad == 0 and ok > 0, f"{bad} of {ok + bad} reads failed across 5 restarts"
    assert len(set(pids)) == 5  # five new processes took the mount over
    assert host.service("lxcfs-py").is_running


def test_reloads_lose_no_read(host, reader):
    pid = main_pid(host)
    pids = restart_five_times(host, "reload")
    ok, bad = counts(host)
    assert bad == 0 and ok > 0, f"{bad} of {ok + bad} reads failed across 5 reloads"
    assert set(pids) == {pid}  # re-executed in place


def test_the_container_keeps_its_own_limit(host, reader):
    assert "209715200" in host.check_output("docker exec %s free -b", NAME)


def test_stop_unmounts_and_start_serves_again(host, reader):
    host.check_output("systemctl stop lxcfs-py")
    assert not host.mount_point("/var/lib/lxcfs").exists
    host.check_output("systemctl start lxcfs-py")
    assert host.file("/var/lib/lxcfs/proc/meminfo").exists
    # the reader's stale binds are healed by the new daemon
    assert wait_for(lambda: "209715200" in host.run("docker exec %s free -b", NAME).stdout, 10)
