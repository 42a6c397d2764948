"""Verify of molecule/pouch: a real pouchd (built from PouchContainer 1.3.0's source)
under systemd with lxcfs-py and the pouch_lxcfs role, on a node whose
/etc/pouch/config.json already held other keys."""

import json
import shlex
import time
import uuid

import pytest

IMAGE = "lxcfs-py/workload:bookworm"
# pouch's default --oom-score-adj -500 cannot be set on this node (no CAP_SYS_RESOURCE)
RUN = "pouch run --rm --oom-score-adj 0 --net none"
HOME = "/var/lib/lxc/lxcfs"


def run_lxcfs(host, args, command):
    return host.check_output(f"{RUN} --enableLxcfs {args} {IMAGE} {command}")


def test_pouchd_runs_with_lxcfs_enabled_despite_its_config_file(host):
    info = host.check_output("pouch info")
    assert "LxcfsEnabled: true" in info.splitlines()
    config = json.loads(host.file("/etc/pouch/config.json").content_string)
    # the host's own keys stay, the lxcfs settings were merged in
    assert config["network-config"] == {
        "bridge-config": {"disable-bridge": True, "iptables": False, "ipforward": False}}
    assert config["cgroup-parent"] == "/lxcfs-py-mol-pouch"
    assert config["enable-lxcfs"] is True and config["lxcfs-home"] == HOME


def test_free_shows_the_memory_limit(host):
    assert "200Mi" in run_lxcfs(host, "-m 200m", "free -h").splitlines()[1].split()[1]
    assert run_lxcfs(host, "-m 200m", "free -b").splitlines()[1].split()[1] == str(200 * 1024 * 1024)


def test_cpuset_gives_one_cpu(host):
    assert run_lxcfs(host, "--cpuset-cpus 0", "nproc").strip() == "1"


def test_uptime_is_the_containers(host):
    node_uptime = float(host.file("/proc/uptime").content_string.split()[0])
    container_uptime = float(run_lxcfs(host, "", "cat /proc/uptime").split()[0])
    # the container was just started; the node's kernel has run for longer
    assert container_uptime < 60 < node_uptime


def test_without_enable_lxcfs_the_nodes_totals(host):
    node_total = host.check_output("free -b").splitlines()[1].split()[1]
    out = host.check_output(f"{RUN} -m 200m {IMAGE} free -b")
    assert out.splitlines()[1].split()[1] == node_total != str(200 * 1024 * 1024)


def test_the_container_sees_nothing_of_the_hosts_var_lib(host):
    marker = f"lxcfs-py-marker-{uuid.uuid4().hex}"
    host.check_output(f"touch /var/lib/{marker} /var/lib/lxcfs/../{marker}.2 2>/dev/null || touch /var/lib/{marker}")
    try:
        # pouch binds the home's parent at /var/lib/lxc: only the home is in it
        assert run_lxcfs(host, "", "ls -A /var/lib/lxc").split() == ["lxcfs"]
        found = run_lxcfs(host, "", f"find / -xdev -name '{marker}*'")
        assert found.strip() == ""
        found_lxc = run_lxcfs(host, "", f"find /var/lib/lxc -maxdepth 1 -name '{marker}*'")
        assert found_lxc.strip() == ""
    finally:
        host.run(f"rm -f /var/lib/{marker} /var/lib/{marker}.2")


# Counts reads that show the limit, reads that fail (bad), and reads that got EBADF (lost): a read in flight
# on a file opened before a crash (SIGKILL) gets EBADF by design, never another container's numbers
# (README, "Security model"); one reader has at most one read in flight when the daemon dies.
READER = (
    "ok=0; bad=0; lost=0; while true; do "
    "out=$(head -1 /proc/meminfo 2>&1); "
    "if [[ $out =~ ^MemTotal:\\ *204800\\ kB$ ]]; then ok=$((ok+1)); "
    "elif [[ $out == *'Bad file descriptor'* ]]; then lost=$((lost+1)); "
    "else bad=$((bad+1)); fi; echo \"$ok $bad $lost\" > /tmp/count.new; mv /tmp/count.new /tmp/count; "
    "sleep 0.01; done"
)


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def reader(host):
    name = f"molecule-pouch-reader-{uuid.uuid4().hex[:8]}"
    host.check_output(f"pouch run -d --oom-score-adj 0 --net none --enableLxcfs -m 200m --name {name} {IMAGE} "
                      f"bash -c {shlex.quote(READER)}")
    assert wait_for(lambda: counts(host, name)[0] > 10)
    yield name
    host.run(f"pouch rm -f {name}")


def counts(host, name):
    out = host.run(f"pouch exec {name} cat /tmp/count").stdout.split()
    return tuple(int(n) for n in out) if len(out) == 3 else (0, 0, 0)


@pytest.mark.parametrize("how", [
    "systemctl reload lxcfs-py",
    "systemctl restart lxcfs-py",
    # a crash: systemd restarts it and the next process takes the mount over
    "systemctl kill -s KILL lxcfs-py",
])
def test_a_pouch_container_keeps_reading(host, reader, how):
    for _ in range(3):
        before = counts(host, reader)[0]
        host.check_output(how)
        assert wait_for(lambda: counts(host, reader)[0] > before + 20), f"reads stalled after {how}"
    ok, bad, lost = counts(host, reader)
    crashes = 3 if "KILL" in how else 0  # the reader's read in flight at each crash may get EBADF
    assert bad == 0 and ok > 0 and lost <= crashes, f"{bad} failed, {lost} EBADF of {ok + bad + lost} reads across {how}"
    assert wait_for(lambda: host.service("lxcfs-py").is_running)
    # new containers still get lxcfs: the home is bound again after every start
    assert wait_for(lambda: host.run(f"mountpoint -q {HOME}").rc == 0)
    assert run_lxcfs(host, "-m 100m", "free -b").splitlines()[1].split()[1] == str(100 * 1024 * 1024)


def module(host, **args):
    """lxcfs_py.fleet.lxcfs_container with engine pouch, run on the node."""
    line = " ".join(f"{key}={value}" for key, value in args.items())
    return host.ansible("lxcfs_py.fleet.lxcfs_container",
                        f"engine=pouch network_mode=none lxcfs_mountpoint=/var/lib/lxcfs {line}",
                        check=False, become=True)


def test_the_module_manages_a_pouch_container(host):
    name = f"molecule-pouch-module-{uuid.uuid4().hex[:8]}"
    common = dict(name=name, image=IMAGE, command="'sleep infinity'")
    try:
        created = module(host, memory="100m", **common)
        assert created["changed"] and created["container"]["status"] == "running", created
        assert host.check_output(f"pouch exec {name} free -b").splitlines()[1].split()[1] == str(100 * 1024 * 1024)
        # compared with what the real `pouch inspect` says: nothing to do
        again = module(host, memory="100m", **common)
        assert not again["changed"], again
        # a new limit recreates it
        bigger = module(host, memory="150m", **common)
        assert bigger["changed"], bigger
        assert host.check_output(f"pouch exec {name} free -b").splitlines()[1].split()[1] == str(150 * 1024 * 1024)
        removed = module(host, name=name, state="absent")
        assert removed["changed"], removed
        assert host.run(f"pouch inspect {name}").rc != 0
    finally:
        host.run(f"pouch rm -f {name}")
