"""Restarting or upgrading the daemon never breaks running containers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.live import daemons
from tests.live.containers import IMAGE, bind_flags
from tests.live.daemons import scaled

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# reads /proc/meminfo every 10 ms; counts good and failed reads, and when the last failure was
READER = r"""
ok=0; bad=0; last_bad=0
while true; do
  if head -1 /proc/meminfo 2>/dev/null | grep -q '^MemTotal: *204800 kB'; then ok=$((ok+1));
  else bad=$((bad+1)); last_bad=$(date +%s.%N); fi
  echo "$ok $bad $last_bad" > /out/count.new; mv /out/count.new /out/count
  sleep 0.01
done
"""


@dataclass
class Reader:
    container: str
    out: str  # host directory the container writes its counts to (no `docker exec` per poll)


@pytest.fixture
def reader(docker, tmp_path_factory):
    """start(mountpoint) -> Reader: a 200 MiB container reading its meminfo every 10 ms."""
    started = []

    def start(mountpoint):
        out = str(tmp_path_factory.mktemp("reader"))
        container = subprocess.run(["docker", "run", "-d", "--rm", "-m", "200m", "-v", f"{out}:/out",
                                    *bind_flags(mountpoint), IMAGE, "bash", "-c", READER],
                                   check=True, capture_output=True, text=True).stdout.strip()
        started.append(container)
        started_reader = Reader(container, out)
        daemons.wait_for(lambda: counts(started_reader)[0] > 5, 20)
        return started_reader

    yield start
    for container in started:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def counts(reader: Reader) -> tuple[int, int, float]:
    """(good reads, failed reads, time of the last failure), as the container last wrote them."""
    try:
        with open(f"{reader.out}/count") as f:
            ok, bad, last_bad = f.read().split()
    except (OSError, ValueError):
        return 0, 0, 0.0
    return int(ok), int(bad), float(last_bad)


def test_a_killed_daemon_is_replaced_and_containers_heal_within_2s(start_daemon, reader):
    first = start_daemon()
    container = reader(first.mountpoint)
    daemons.crash(first)
    assert daemons.wait_for(lambda: counts(container)[1] > 0, 10), "reads kept working with the daemon dead?"
    second = start_daemon(name=os.path.basename(first.mountpoint))
    mounted_at = time.time()
    assert daemons.wait_for(lambda: time.time() - counts(container)[2] > 0.5 and counts(container)[2] > 0, 10)
    recovery = counts(container)[2] - mounted_at
    print(f"reads healed {recovery:.2f} s after the new daemon mounted")
    assert recovery < daemons.scaled(2.0)
    assert daemons.wait_for(lambda: "healed" in second.log(), 10)
    healed = [line for line in second.log().splitlines() if line.endswith(": healed")]
    assert any("/proc/meminfo" in line for line in healed) and len(healed) >= 9, second.log()
    dry = subprocess.run([*daemons.LXCFS_PY, "remount", "--dry-run", second.mountpoint], capture_output=True,
                         text=True)
    assert dry.returncode == 0 and dry.stdout == "", dry.stdout  # nothing stale is left
    out = subprocess.run(["docker", "exec", container.container, "free", "-b"], capture_output=True, text=True).stdout
    assert "209715200" in out  # still its own limit, not the host's


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1], ids=["SIGHUP", "SIGUSR1"])
def test_five_planned_restarts_lose_no_read(start_daemon, reader, signum):
    daemon = start_daemon()
    container = reader(daemon.mountpoint)
    # a reader in the middle of a file keeps reading it across the handovers
    holder = subprocess.Popen(["docker", "exec", container.container, "bash", "-c",
                               "exec 3</proc/meminfo; read -r a <&3; sleep 6; read -r b <&3; echo \"$a|$b\""],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for handovers in range(1, 6):
        before = counts(container)[0]
        daemon.process.send_signal(signum)  # SIGUSR1: LXCFS's reload (Debian's lxcfs.service ExecReload)
        # one reload at a time: a signal sent while the last one is still checking the new code is merged into it
        assert daemons.wait_for(lambda: daemon.log().count("took over the live mount") == handovers, 30), daemon.log()
        assert daemons.wait_for(lambda: counts(container)[0] > before + 20, 20), "reads stalled"
    ok, bad, _ = counts(container)
    print(f"{ok} reads, {bad} failed across 5 planned restarts")
    assert bad == 0
    assert daemon.process.poll() is None  # the same process (pid), re-executed
    first, second = holder.communicate(timeout=scaled(30))[0].strip().split("|")
    assert first.startswith("MemTotal:") and second.startswith("MemFree:")
    assert daemon.log().count("took over the live mount") == 5


def test_an_upgrade_through_the_role_loses_no_read(tmp_path, reader):
    """The lxcfs role, run again with new code, hands the mount over (no systemd here: SIGHUP)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "collections", "tests", "*.egg-info",
                                                                 "__pycache__", "molecule", "benchmarks"))
    prefix, mountpoint = tmp_path / "opt", tmp_path / "mnt"
    extra = ["-e", f"lxcfs_source_dir={source}", "-e", f"lxcfs_prefix={prefix}", "-e", f"lxcfs_mountpoint={mountpoint}",
             "-e", f"lxcfs_pidfile={tmp_path}/pid", "-e", f"lxcfs_log_file={tmp_path}/log"]

    def role(*more):
        result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                                 "tests/live/playbooks/lxcfs_role.yml", *extra, *more], cwd=REPO,
                                capture_output=True, text=True, timeout=scaled(600))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        return result.stdout

    try:
        role()
        container = reader(str(mountpoint))
        pid = int((tmp_path / "pid").read_text())
        with open(source / "lxcfs_py" / "__init__.py", "a") as f:
            f.write("# a new release\n")
        out = role()
        assert "Reload the background lxcfs-py" in out and "changed: [localhost]" in out
        ok, bad, _ = counts(container)
        assert bad == 0 and ok > 0, (tmp_path / "log").read_text()
        assert int((tmp_path / "pid").read_text()) == pid  # handed over, not restarted
    finally:
        role("-e", "lxcfs_state=absent")
    assert not os.path.ismount(mountpoint)
