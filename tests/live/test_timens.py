"""`ps` in a container whose /proc/uptime lxcfs-py serves (issue 11, point 5), with the real dockerd.

procps computes a process's elapsed time as /proc/uptime - starttime/HZ. lxcfs-py's
uptime is the container's age, while the kernel gives starttime from the host's boot,
unless the reader is in a time namespace whose CLOCK_BOOTTIME starts at the container's
start: lxcfs-py-runc sets one up. Registers two runtimes (wrapper with and without the
time namespace) for this module only; daemon.json is put back afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from lxcfs_py import timens
from tests.live import daemons, dockerd
from tests.live.daemons import scaled

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "lxcfs-py/workload:bookworm"
HZ = os.sysconf("SC_CLK_TCK")

pytestmark = pytest.mark.skipif(not timens.supported(), reason="needs time namespaces (Linux >= 5.6)")


@pytest.fixture(scope="module")
def runtimes(docker, tmp_path_factory):
    """{"timens": name, "off": name}: lxcfs-py-runc (this checkout) over runc, with --lxcfs-timens auto / off."""
    base = tmp_path_factory.mktemp("timens")
    lxcfs = daemons.start(daemons.LXCFS_PY, str(base / "mnt"), log_dir=str(base))
    names, registered = {}, {}
    for key, mode in (("timens", "auto"), ("off", "off")):
        name = f"lxcfs-py-test-{key}-{uuid.uuid4().hex[:8]}"
        wrapper = base / name
        wrapper.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {REPO!r})\n"
                           "from lxcfs_py.runtime import main\n"
                           f"sys.exit(main(['--lxcfs-mountpoint', {str(base / 'mnt')!r}, '--lxcfs-timens', {mode!r},"
                           " *sys.argv[1:]]))\n")
        wrapper.chmod(0o755)
        names[key], registered[name] = name, {"path": str(wrapper)}
    try:
        with dockerd.registered_runtimes(registered):
            yield names
    finally:
        lxcfs.stop()


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=scaled(120))
    assert result.returncode == 0, f"docker {args}: {result.stderr}"
    return result.stdout


def host_age(pid: int) -> float:
    """Seconds since `pid` started, from the host's clocks (the reference every check compares with)."""
    with open(f"/proc/{pid}/stat") as f:
        starttime = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) - starttime / HZ


@pytest.fixture
def container(runtimes):
    """start(runtime key) -> (name, init pid on the host) of a `sleep` container, removed afterwards."""
    started = []

    def start(key):
        name = f"lxcfs-py-timens-{uuid.uuid4().hex[:12]}"
        started.append(name)
        docker("run", "-d", "--name", name, "--runtime", runtimes[key], IMAGE, "sleep", "600")
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", name))
        assert daemons.wait_for(lambda: host_age(pid) >= 3, 30), "the container did not get 3 s old"
        return name, pid

    yield start
    for name in started:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=scaled(120))


def ps_in(name: str) -> tuple[int, float]:
    """(`ps -o etimes` of pid 1, /proc/uptime) as `docker exec` sees them."""
    out = docker("exec", name, "sh", "-c", "ps -o etimes= -p 1; cut -d' ' -f1 /proc/uptime").split()
    return int(out[0]), float(out[1])


def test_ps_shows_the_containers_age_with_a_time_namespace(container):
    name, pid = container("timens")
    etimes, uptime = ps_in(name)
    age = host_age(pid)
    assert abs(uptime - age) <= daemons.scaled(2.0), (uptime, age)
    assert abs(etimes - age) <= daemons.scaled(2.0), (etimes, age)
    # `docker exec` joined the container's time namespace, whose boottime starts at the container's start
    mine, init = docker("exec", name, "sh", "-c", "cat /proc/self/timens_offsets; echo; cat /proc/1/timens_offsets").split("\n\n")
    assert mine.split() == init.split(), (mine, init)
    boottime = dict((line.split()[0], int(line.split()[1])) for line in init.strip().splitlines())["boottime"]
    assert boottime < -10, init


def test_ps_in_the_containers_own_processes(runtimes):
    """pid 1 itself (no `docker exec`): `ps` and `uptime` agree."""
    out = docker("run", "--rm", "--runtime", runtimes["timens"], IMAGE, "sh", "-c",
                 "sleep 2; ps -o etimes= -p 1; cut -d' ' -f1 /proc/uptime; uptime").split("\n")
    etimes, uptime = int(out[0]), float(out[1])
    assert abs(etimes - uptime) <= daemons.scaled(2.0), out
    assert uptime >= 2 and " up 0 min" in out[2], out


def test_without_a_time_namespace_ps_is_wrong(container):
    """What the README says: where the container's processes are not in such a namespace,
    `ps` subtracts host-boot-relative start times from the container's uptime."""
    name, pid = container("off")
    etimes, uptime = ps_in(name)
    age = host_age(pid)
    assert abs(uptime - age) <= daemons.scaled(2.0), (uptime, age)
    host_uptime_at_start = float(open("/proc/uptime").read().split()[0]) - age
    assert host_uptime_at_start > 10 and abs(etimes - age) > 10, (etimes, age)
