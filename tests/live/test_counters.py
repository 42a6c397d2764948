"""What monitoring agents read: /proc/stat counters never run backwards, and btime is the container's start."""

from __future__ import annotations

import datetime
import re
import signal
import subprocess
import threading

import pytest

from tests.live import daemons
from tests.live.containers import IMAGE, bind_flags

SAMPLES = 200
# a busy loop beside 200 reads of /proc/stat 50 ms apart, each with bash's builtin read (no fork per read)
SAMPLER = f"""
(while :; do :; done) & busy=$!
for i in $(seq {SAMPLES}); do
  IFS= read -r -d '' x < /proc/stat
  printf '%s@@\\n' "$x"
  sleep 0.05
done
kill $busy
"""


def samples(out: str) -> list[dict[str, list[int]]]:
    """Each read's counters: {'cpu': [...], 'cpu0': [...], 'intr': [first], 'ctxt': [...], ...}."""
    parsed = []
    for text in out.split("@@\n")[:-1]:
        counters = {}
        for line in text.splitlines():
            label, *numbers = line.split()
            if label.startswith("cpu") or label in ("ctxt", "processes", "btime", "intr"):
                counters[label] = [int(n) for n in numbers[:10]]
        parsed.append(counters)
    return parsed


def decreases(reads: list[dict[str, list[int]]]) -> list[str]:
    found = []
    for n, (before, after) in enumerate(zip(reads, reads[1:]), 1):
        for label in before.keys() & after.keys():
            found += [f"read {n}: {label}[{i}] {a} -> {b}" for i, (a, b) in enumerate(zip(before[label], after[label]))
                      if b < a]
    return found


@pytest.mark.parametrize("flags, limits", [([], []), (["--enable-cfs"], ["--cpus", "1"])], ids=["plain", "cfs"])
def test_no_counter_of_proc_stat_runs_backwards_across_reads_and_a_restart(docker, start_daemon, flags, limits):
    daemon = start_daemon(flags)
    container = subprocess.Popen(["docker", "run", "--rm", *limits, *bind_flags(daemon.mountpoint), IMAGE, "bash", "-c",
                                  SAMPLER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # a planned restart halfway: what the container was shown must stay a floor for the new process
    restart = threading.Timer(daemons.scaled(5.0), daemon.process.send_signal, [signal.SIGHUP])
    restart.start()
    try:
        out, err = container.communicate(timeout=daemons.scaled(120))
    finally:
        restart.cancel()
    assert container.returncode == 0, err
    reads = samples(out)
    assert len(reads) == SAMPLES and all("cpu" in r for r in reads), out[-2000:]
    assert "took over the live mount" in daemon.log(), "the restart did not happen during the reads"
    problems = decreases(reads)
    assert not problems, f"{len(problems)} decreases, e.g. " + "; ".join(problems[:10])


def test_btime_is_the_containers_start(docker, start_daemon):
    daemon = start_daemon()
    name = f"lxcfs-py-btime-{id(daemon)}"
    try:
        btime = subprocess.run(["docker", "run", "--name", name, *bind_flags(daemon.mountpoint), IMAGE, "bash", "-c",
                                "sleep 1; grep ^btime /proc/stat"], capture_output=True, text=True, check=True).stdout
        started = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", name], capture_output=True,
                                 text=True, check=True).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    # 2026-11-30T03:09:47.123456789Z: whole seconds are enough (btime is whole seconds)
    start = datetime.datetime.strptime(re.sub(r"\..*", "", started), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(int(btime.split()[1]) - start) <= 2, (btime, started)
