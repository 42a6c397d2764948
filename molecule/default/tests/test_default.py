"""Verify of molecule/default: after site.yml, inside the node (systemd as PID 1,
its own dockerd), containers see their own limits through lxcfs-py.

Containers are launched the way users launch them: with the collection's
lxcfs_container module (run by testinfra's ansible backend against the node),
with `docker run --runtime lxcfs`, and, as the control, with plain `docker run`.
"""

import datetime
import json
import time

import pytest

IMAGE = "lxcfs-py/workload:bookworm"
MOUNTPOINT = "/var/lib/lxcfs"
SERVICE = "lxcfs-py"
PREFIX = "molecule-verify-"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def launch(host):
    """launch(name, **options): an lxcfs_container running `sleep 600`; all are removed at the end."""
    names = []

    def _launch(name, **options):
        name = PREFIX + name
        names.append(name)
        args = {"name": name, "image": IMAGE, "command": ["sleep", "600"],
                "lxcfs_mountpoint": MOUNTPOINT, **options}
        result = host.ansible("lxcfs_py.fleet.lxcfs_container", json.dumps(args), check=False)
        assert result.get("changed"), result
        return name

    yield _launch
    for name in names:
        host.ansible("lxcfs_py.fleet.lxcfs_container", json.dumps({"name": name, "state": "absent"}),
                     check=False)


def sh(host, *argv):
    """stdout of a command in the node that must succeed."""
    return host.check_output(" ".join(["%s"] * len(argv)), *argv)


def exec_in(host, name, *argv):
    return sh(host, "docker", "exec", name, *argv)


def mem_total(free_output):
    """The total of the `Mem:` line of free's output."""
    line = next(line for line in free_output.splitlines() if line.startswith("Mem:"))
    return line.split()[1]


def started_at(host, name):
    """A container's start, in seconds since the epoch."""
    started = sh(host, "docker", "inspect", "--format", "{{.State.StartedAt}}", name)
    # 2026-11-29T20:01:26.123456789Z: keep microseconds for fromisoformat
    return datetime.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00").timestamp()


def active_since(host, unit):
    """When a unit last became active (a restart moves it, a reload does not)."""
    return int(sh(host, "systemctl", "show", unit, "-P", "ActiveEnterTimestamp", "--timestamp=unix").lstrip("@"))


def node_memtotal(host):
    line = next(line for line in host.file("/proc/meminfo").content_string.splitlines()
                if line.startswith("MemTotal:"))
    return int(line.split()[1]) * 1024


# ------------------------------------------------------------------ the daemon


def test_systemd_is_pid_1(host):
    assert sh(host, "ps", "-p", "1", "-o", "comm=") == "systemd"
    assert host.file("/run/systemd/system").is_directory


def test_service_active_under_systemd(host):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled
    props = dict(line.split("=", 1) for line in sh(
        host, "systemctl", "show", SERVICE + ".service",
        "-p", "Type,ActiveState,SubState,ExecMainPID,FragmentPath").splitlines())
    assert props["Type"] == "notify"
    assert (props["ActiveState"], props["SubState"]) == ("active", "running")
    assert props["FragmentPath"] == "/etc/systemd/system/%s.service" % SERVICE
    # the main process is lxcfs-py from the role's venv, with --enable-cfs (scenario variable)
    cmdline = host.file("/proc/%s/cmdline" % props["ExecMainPID"]).content_string.split("\0")
    assert "/opt/lxcfs-py/venv/bin/lxcfs-py" in cmdline
    assert "--enable-cfs" in cmdline


def test_mount_is_live(host):
    mount = host.mount_point(MOUNTPOINT)
    assert mount.exists
    assert mount.filesystem.startswith("fuse")
    meminfo = host.file(MOUNTPOINT + "/proc/meminfo").content_string
    assert meminfo.startswith("MemTotal:")


def test_dockerd_runs_under_systemd_with_the_runtime(host):
    assert host.service("docker").is_running
    info = json.loads(sh(host, "docker", "info", "--format", "{{json .}}"))
    assert info["CgroupDriver"] == "systemd"
    assert info["Runtimes"]["lxcfs"]["path"] == "/usr/local/bin/lxcfs-runc"
    assert info["DefaultRuntime"] == "runc"


def test_the_rollout_left_a_running_container_alone(host):
    # converge started it before site.yml; the runtime was added by a reload
    # of dockerd, so neither dockerd nor the container restarted since
    state = sh(host, "docker", "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", "molecule-bystander")
    assert state == "true 0"
    lxcfs_up = active_since(host, SERVICE + ".service")
    assert active_since(host, "docker.service") < lxcfs_up
    assert started_at(host, "molecule-bystander") < lxcfs_up


# ------------------------------------------------- containers of lxcfs_container


def test_memory_200m_shows_200Mi(host, launch):
    name = launch("mem200", memory="200m")
    assert mem_total(exec_in(host, name, "free", "-h")) == "200Mi"
    assert int(mem_total(exec_in(host, name, "free", "-b"))) == 209715200


def test_cpuset_0_shows_one_cpu(host, launch):
    name = launch("cpuset0", cpuset_cpus="0")
    assert exec_in(host, name, "nproc") == "1"
    assert exec_in(host, name, "grep", "-c", "^processor", "/proc/cpuinfo") == "1"


def test_cpus_1_with_cfs_shows_one_cpu(host, launch):
    # CFS quota 1 CPU on a multi-CPU node. nproc(1) counts sched_getaffinity,
    # which no FUSE file changes (same with LXCFS); what lxcfs-py serves is
    # cpuinfo and /sys/devices/system/cpu, so glibc's count says 1.
    assert int(sh(host, "nproc")) > 1, "needs a node with more than one CPU to mean anything"
    name = launch("cpus1", cpus=1)
    assert exec_in(host, name, "grep", "-c", "^processor", "/proc/cpuinfo") == "1"
    assert exec_in(host, name, "cat", "/sys/devices/system/cpu/online") == "0"
    assert exec_in(host, name, "getconf", "_NPROCESSORS_ONLN") == "1"


def test_uptime_of_a_new_container_is_its_age(host, launch):
    name = launch("uptime")
    time.sleep(2)
    uptime = float(exec_in(host, name, "cat", "/proc/uptime").split()[0])
    now = float(sh(host, "date", "+%s.%N"))
    age = now - started_at(host, name)
    assert 0 <= uptime <= age + 3, (uptime, age)
    node_uptime = float(host.file("/proc/uptime").content_string.split()[0])
    if node_uptime > age + 30:
        assert uptime < node_uptime - 20, (uptime, node_uptime)


# ------------------------------------------------------ docker's lxcfs runtime


def docker_run_free(host, *options):
    return int(mem_total(sh(host, "docker", "run", "--rm", *options, IMAGE, "free", "-b")))


def test_runtime_lxcfs_300m(host):
    assert docker_run_free(host, "--runtime", "lxcfs", "-m", "300m") == 300 * MiB


def test_without_lxcfs_the_node_totals_show(host):
    # the control: the same limit without lxcfs's files shows the node's memory
    assert docker_run_free(host, "-m", "300m") == node_memtotal(host)
    assert node_memtotal(host) > 300 * MiB
