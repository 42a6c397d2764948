"""Signals as LXCFS has them (USR1 reloads, USR2 switches virtualization), and none else takes the mount down."""

from __future__ import annotations

import os
import signal

import pytest

from tests.live import daemons
from tests.live.daemons import workers_of
from tests.live.cgroups import memory_cgroups, run_in_container_like

MiB = 1 << 20
# every signal whose default would end or stop the daemon, and a few harmless ones, that an operator,
# a terminal or a service manager may send
OTHER_SIGNALS = ("SIGALRM", "SIGWINCH", "SIGPIPE", "SIGQUIT", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGTSTP",
                 "SIGTTIN", "SIGTTOU", "SIGXCPU", "SIGXFSZ", "SIGURG", "SIGCONT", "SIGCHLD")


def host_memtotal_kb() -> str:
    with open("/proc/meminfo") as f:
        return f.readline().split()[1]


# one process, and several (--workers): a switch reaches every process that serves
WORKERS = pytest.mark.parametrize("workers", [1, 3], ids=["1-process", "3-processes"])
# reads enough for every process of the pool to answer some (the kernel hands requests to any)
MANY_FIRST_LINES = "print(sorted({{open({path!r}).readline().split()[1] for _ in range(60)}}))"


@WORKERS
def test_sigusr2_switches_between_the_containers_values_and_the_hosts(start_daemon, workers):
    daemon = start_daemon(["--workers", str(workers)])
    code = MANY_FIRST_LINES.format(path=f"{daemon.mountpoint}/proc/meminfo")
    with memory_cgroups(100 * MiB) as cgroup:
        assert run_in_container_like(cgroup, code).strip() == "['102400']"
        daemon.process.send_signal(signal.SIGUSR2)
        assert daemons.wait_for(lambda: "Switched into non-virtualization mode" in daemon.log(), 10), daemon.log()
        assert run_in_container_like(cgroup, code).strip() == f"['{host_memtotal_kb()}']"
        daemon.process.send_signal(signal.SIGUSR2)
        assert daemons.wait_for(lambda: "Switched into virtualization mode" in daemon.log(), 10), daemon.log()
        assert run_in_container_like(cgroup, code).strip() == "['102400']"
    assert daemon.process.poll() is None


@WORKERS
def test_no_other_signal_takes_the_mount_down(start_daemon, workers):
    daemon = start_daemon(["--workers", str(workers)])
    code = MANY_FIRST_LINES.format(path=f"{daemon.mountpoint}/proc/meminfo")
    assert daemons.wait_for(lambda: len(workers_of(daemon)) == workers - 1, 15)
    with memory_cgroups(100 * MiB) as cgroup:
        for name in OTHER_SIGNALS:
            # to every process, as `systemctl kill -s NAME` sends it
            for pid in [daemon.process.pid, *workers_of(daemon)]:
                os.kill(pid, getattr(signal, name))
            # a caught signal is handled by the loop a moment later; a read after that proves it survived
            # (SIGALRM is the daemon's own timer, never logged: see lxcfs_py/deadline.py)
            assert daemons.wait_for(lambda: name != "SIGQUIT" or f"{name} received" in daemon.log(), 10), daemon.log()
            assert run_in_container_like(cgroup, code).strip() == "['102400']", f"after {name}: {daemon.log()}"
            assert daemon.process.poll() is None, f"{name} ended the daemon: {daemon.log()}"
            assert len(workers_of(daemon)) == workers - 1, f"{name} ended a worker: {daemon.log()}"
    state = open(f"/proc/{daemon.process.pid}/stat").read().rpartition(")")[2].split()[0]
    assert state in "RS", f"the daemon is in state {state} (stopped?)"
