"""Differential test: lxcfs-py against Debian's lxcfs 5.0.3, read from one real container.

For every configuration both daemons are mounted with the same flags and
ONE container is started with both mount roots bound read-only at /lx-py
and /lx-ref. Both daemons find the reading container by its pid
namespace, so a read through either path gets that daemon's view of the
same container.

Every file is read three times back to back in one shell loop: ours, the
reference, ours again (py1, ref, py2). Counters that keep moving (host
CPU ticks, interrupts, the container's memory usage, ...) are then
checked by "the reference lies between our two reads, give or take a
small tolerance"; the tolerances are defined per file and per field below,
each with its reason. Everything derived from the container's limits
(MemTotal, SwapTotal, the CPU lists, processor entries, ...) and the
structure of every file (line labels, their order, the number of fields)
must match exactly.

Two rounds are taken: A right after the container starts (for the CPU view
of --enable-cfs that is the first read, which only seeds its counters, so
both daemons must show zeros), and B after the container has burnt some
CPU and written some page cache.

Intended differences NOT compared: lxcfs-py serves the host's own files to
processes of the host pid namespace (we only read from a container here),
and it virtualizes sys/devices/system/cpu/possible and present (LXCFS
passes them through).
"""

from __future__ import annotations

import base64
import difflib
import re
import subprocess
from dataclasses import dataclass, field
from typing import Callable

import pytest

from tests.live.containers import IMAGE

FILES = [
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "proc/loadavg",
    "proc/diskstats",
    "proc/swaps",
    "proc/slabinfo",
    "sys/devices/system/cpu/online",
]
TAGS = ("py1", "ref", "py2")  # read order within one round
ROOTS = {"py1": "/lx-py", "ref": "/lx-ref", "py2": "/lx-py"}


@dataclass(frozen=True)
class Config:
    name: str
    limits: list[str]  # docker run flags
    flags: list[str] = field(default_factory=list)  # flags for BOTH daemons
    memtotal_kb: int | None = None  # sanity check that we are really virtualized
    busy_seconds: float = 1.0  # CPU burnt between rounds A and B
    keep_busy: bool = False  # keep a busy loop running through round B (loadavg sampling)


MB = 1024 * 1024
CONFIGS = [
    Config("memory", ["-m", "200m"], memtotal_kb=200 * 1024),
    Config("memory-swap", ["-m", "200m", "--memory-swap", "300m"], memtotal_kb=200 * 1024),
    Config("memory-swap-u", ["-m", "200m", "--memory-swap", "300m"], ["-u"], memtotal_kb=200 * 1024),
    # this host has 2 CPUs: CPU 1 alone exercises the renumbering (cpuinfo) and physical ids (stat, online)
    Config("cpuset", ["--cpuset-cpus", "1"]),
    Config("cfs", ["--cpus", "0.5"], ["--enable-cfs"]),
    Config("cfs-cpuset", ["--cpus", "0.5", "--cpuset-cpus", "1"], ["--enable-cfs"]),
    Config("cfs-1.5", ["--cpus", "1.5"], ["--enable-cfs"]),
    Config("no-limits", []),
    # two or three 5-s loadavg samples happen while the busy loop runs
    Config("loadavg", ["-m", "200m"], ["-l"], memtotal_kb=200 * 1024, busy_seconds=11, keep_busy=True),
]


# -- running the container ----------------------------------------------------------


def reader_script(config: Config) -> str:
    """Round A, some work, round B; every read printed as '@@ round file tag ok|err base64'."""
    reads = " ".join(FILES)
    snap = f"""
snap() {{
  for f in {reads}; do
    for tag in {' '.join(TAGS)}; do
      case $tag in ref) root=/lx-ref ;; *) root=/lx-py ;; esac
      if data=$(base64 -w0 "$root/$f"); then echo "@@ $1 $f $tag ok $data"; else echo "@@ $1 $f $tag err"; fi
    done
  done
}}
"""
    if config.keep_busy:
        work = f"(while :; do :; done) & busy=$!; sleep {config.busy_seconds}"
        after = "kill $busy"
    else:
        work = f"timeout {config.busy_seconds} bash -c 'while :; do :; done' || true"
        after = "true"
    # 16 MiB of page cache, synced so Dirty does not drop mid-round
    return snap + f"snap A\n{work}\nhead -c 16M /dev/urandom > /tmp/blob; sync\nsnap B\n{after}\n"


def run_container(py_root: str, ref_root: str, config: Config) -> dict[tuple[str, str], dict[str, str | None]]:
    """{(round, file): {tag: text or None if the read failed}}."""
    command = ["docker", "run", "--rm", *config.limits, "-v", f"{py_root}:/lx-py:ro", "-v", f"{ref_root}:/lx-ref:ro",
               IMAGE, "bash", "-c", reader_script(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command[:-1])} failed: {result.stderr}"
    reads: dict[tuple[str, str], dict[str, str | None]] = {}
    for line in result.stdout.splitlines():
        if not line.startswith("@@ "):
            continue
        _, rnd, path, tag, status, *data = line.split(" ")
        text = base64.b64decode(data[0]).decode() if status == "ok" and data else ("" if status == "ok" else None)
        reads.setdefault((rnd, path), {})[tag] = text
    return reads


# -- tolerances ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tol:
    """How far the reference may be from our two reads.

    exact: py1 == ref == py2. Otherwise the reference must lie in
    [min(py1, py2) - slack, max(py1, py2) + slack] with slack = abs + rel * value.
    """

    abs: float = 0
    rel: float = 0.0
    exact: bool = False


EXACT = Tol(exact=True)
BRACKET = Tol()  # monotonic counter: our two reads bracket the reference's read


# Each rule: (file, line label or None for "any label", field index or None for "any field") -> Tol.
ToleranceFn = Callable[[str, int, Config], Tol]

MEMINFO_EXACT = {
    # derived from the limits (host has no swap, so SwapFree is exact too) or constant in LXCFS's output
    "MemTotal:", "SwapTotal:", "SwapFree:", "Buffers:", "SwapCached:", "Slab:", "SReclaimable:", "SUnreclaim:",
    "AnonHugePages:", "ShmemHugePages:", "ShmemPmdMapped:",
}
MEMINFO_CONTAINER = {
    # from the container's memory.usage_in_bytes / memory.stat: every read forks a subshell and base64
    # inside the container, whose pages (a few hundred kB) come and go between two reads.
    "MemFree:", "MemAvailable:", "Cached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):",
    "Active(file):", "Inactive(file):", "Unevictable:", "Dirty:", "Writeback:", "AnonPages:", "Mapped:", "Shmem:",
}


def meminfo_tol(label: str, index: int, config: Config) -> Tol:
    if label in MEMINFO_EXACT:
        return EXACT
    if label in MEMINFO_CONTAINER:
        return Tol(abs=1024)  # kB, see MEMINFO_CONTAINER
    # every other line is the host's own value passed through (KernelStack, PageTables, Committed_AS, ...):
    # any process starting or exiting on the host (docker, the reads themselves) moves these by up to a
    # few MiB between two reads; constant lines (CommitLimit, Hugepagesize, DirectMap*) stay equal anyway.
    return Tol(abs=8192)


def cpuinfo_tol(label: str, index: int, config: Config) -> Tol:
    if label == "cpu MHz:":
        return Tol(rel=0.05)  # frequency sampled per read on hosts with cpufreq
    return EXACT


STAT_CPU = re.compile(r"cpu\d*$")


def stat_tol(label: str, index: int, config: Config) -> Tol:
    if STAT_CPU.match(label):
        # monotonic per-CPU ticks (USER_HZ=100): host idle/iowait, the container's cpuacct time or, with
        # --enable-cfs, the view accumulated since the first read. A few ticks of slack for the view's
        # redistribution and partial-CPU idle cut, which depend on the instant of each read.
        return Tol(abs=5)
    if label == "btime":
        return EXACT
    if label in ("procs_running", "procs_blocked"):
        return Tol(abs=4)  # host-wide instantaneous task counts, not monotonic
    return BRACKET  # intr, ctxt, processes, softirq: monotonic host counters


def uptime_tol(label: str, index: int, config: Config) -> Tol:
    # seconds, printed with 2 decimals: the container's age and age minus its CPU time, both
    # monotonic at the scale of our reads; 0.1 s covers rounding and read jitter.
    return Tol(abs=0.1)


def loadavg_tol(label: str, index: int, config: Config) -> Tol:
    # fields: load1 . frac, load5 . frac, load15 . frac -> parsed as floats 0..2, running 3, total 4, last pid 5
    if "-l" in config.flags:
        # per-container load: both daemons sample every 5 s, but at different instants, so one may have
        # taken one sample more: one 5-s step with one running task moves the averages by at most
        # 0.08 / 0.02 / 0.01.
        return [Tol(abs=0.1), Tol(abs=0.03), Tol(abs=0.02), Tol(abs=1), Tol(abs=2), Tol(abs=100)][index]
    # host file: the kernel updates the averages every 5 s (the bracket covers that); running and total
    # are instantaneous host counts (each read forks processes); the last pid only grows.
    return [BRACKET, BRACKET, BRACKET, Tol(abs=4), Tol(abs=20), BRACKET][index]


def diskstats_tol(label: str, index: int, config: Config) -> Tol:
    if index == 8:
        return Tol(abs=8)  # I/Os currently in flight: instantaneous, not monotonic
    return BRACKET  # all other columns are monotonic host counters


def slabinfo_tol(label: str, index: int, config: Config) -> Tol:
    # after the name: active_objs num_objs objsize objperslab pagesperslab : tunables 3x : slabdata 3x
    if index in (0, 1):
        # object counts of a host cache: forks and file opens anywhere on the host allocate and free
        # objects (task_struct, vm_area_struct, dentry, kmalloc-*) between two reads
        return Tol(abs=256, rel=0.05)
    if index in (8, 9):
        return Tol(abs=16, rel=0.05)  # active/total slabs of the same caches
    return EXACT


# -- splitting lines into a label and numbers ---------------------------------------

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def label_colon(line: str) -> str:
    """'MemTotal:     204800 kB' -> 'MemTotal:'; cpuinfo 'cpu MHz\\t\\t: 2596' -> 'cpu MHz:'."""
    head, sep, _ = line.partition(":")
    return head.strip() + sep


def label_words(count: int) -> Callable[[str], str]:
    def label(line: str) -> str:
        return " ".join(line.split()[:count])

    return label


def rest_after_label(line: str, label: str) -> str:
    if label.endswith(":"):
        return line.partition(":")[2]
    words = len(label.split())
    return re.sub(r"^\s*" + r"\S+\s+" * words, "", line) if words else line


def numbers_and_template(rest: str) -> tuple[list[float], str]:
    """Numbers of a line, and the line with each number replaced by '#' (whitespace collapsed)."""
    numbers = [float(n) for n in NUMBER.findall(rest)]
    return numbers, " ".join(NUMBER.sub("#", rest).split())


@dataclass(frozen=True)
class FileRule:
    label: Callable[[str], str]
    tol: ToleranceFn


RULES = {
    "proc/meminfo": FileRule(label_colon, meminfo_tol),
    "proc/cpuinfo": FileRule(label_colon, cpuinfo_tol),
    "proc/stat": FileRule(label_words(1), stat_tol),
    "proc/uptime": FileRule(label_words(0), uptime_tol),
    "proc/loadavg": FileRule(label_words(0), loadavg_tol),
    "proc/diskstats": FileRule(label_words(3), diskstats_tol),
    "proc/swaps": FileRule(label_words(1), lambda label, index, config: EXACT),
    "proc/slabinfo": FileRule(label_words(1), slabinfo_tol),
    "sys/devices/system/cpu/online": FileRule(label_words(0), lambda label, index, config: EXACT),
}


# -- comparing ----------------------------------------------------------------------


def short(line: str, width: int = 160) -> str:
    return line if len(line) <= width else line[:width] + f"... ({len(line)} chars)"


def side_by_side(py: str, ref: str) -> str:
    return f"    py : {short(py)!r}\n    ref: {short(ref)!r}"


def within(ref: float, a: float, b: float, tol: Tol) -> bool:
    if tol.exact:
        return a == ref == b
    slack = tol.abs + tol.rel * max(abs(a), abs(b), abs(ref))
    return min(a, b) - slack - 1e-9 <= ref <= max(a, b) + slack + 1e-9


def compare_file(path: str, py1: str, ref: str, py2: str, config: Config) -> list[str]:
    """Problems found (empty: the reference agrees with our two reads)."""
    rule = RULES[path]
    lines = {tag: text.splitlines() for tag, text in (("py1", py1), ("ref", ref), ("py2", py2))}
    labels = {tag: [rule.label(line) for line in text] for tag, text in lines.items()}
    if labels["py1"] != labels["ref"] or labels["py2"] != labels["ref"]:
        diff = list(difflib.unified_diff(py1.splitlines(), ref.splitlines(), "lxcfs-py", "lxcfs", lineterm="", n=1))
        cut = f"\n... ({len(diff) - 40} more diff lines)" if len(diff) > 40 else ""
        return ["structure differs (line labels / order / count):\n" + "\n".join(short(d) for d in diff[:40]) + cut]
    if py1.endswith("\n") != ref.endswith("\n"):
        return [f"trailing newline: lxcfs-py {py1.endswith(chr(10))}, lxcfs {ref.endswith(chr(10))}"]
    problems = []
    for number, (l1, lr, l2, label) in enumerate(zip(lines["py1"], lines["ref"], lines["py2"], labels["ref"]), 1):
        (n1, t1), (nr, tr), (n2, t2) = (numbers_and_template(rest_after_label(line, label)) for line in (l1, lr, l2))
        if t1 != tr or len(n1) != len(nr) or len(n2) != len(nr):
            problems.append(f"line {number} {label!r}: format differs\n" + side_by_side(l1, lr))
            continue
        bad = [(i, a, r, b) for i, (a, r, b) in enumerate(zip(n1, nr, n2))
               if not within(r, a, b, rule.tol(label, i, config))]
        if bad:
            detail = ", ".join(f"field {i}: py {a:g}/{b:g} ref {r:g} (tol {rule.tol(label, i, config)})"
                               for i, a, r, b in bad[:6])
            more = f" (+{len(bad) - 6} more fields)" if len(bad) > 6 else ""
            problems.append(f"line {number} {label!r}: {detail}{more}\n" + side_by_side(l1, lr))
        elif n1 == nr and l1 != lr:
            problems.append(f"line {number} {label!r}: same values, different formatting\n" + side_by_side(l1, lr))
    return problems


def stat_seed_problems(reads: dict[str, str | None]) -> list[str]:
    """--enable-cfs: the first read of a cgroup's /proc/stat only seeds the view, so every cpu line is zeros."""
    problems = []
    for tag in ("py1", "ref"):
        for line in (reads[tag] or "").splitlines():
            if line.split() and STAT_CPU.match(line.split()[0]) and any(int(v) for v in line.split()[1:]):
                problems.append(f"first read of {tag} is not all zeros: {line!r}")
    return problems


def memtotal(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB$", text, re.M)
    return int(match.group(1)) if match else None


# -- the test -----------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_same_files_as_lxcfs(docker, start_daemon, subtests, config):
    ours = start_daemon(config.flags)
    reference = start_daemon(config.flags, ref=True)
    reads = run_container(ours.mountpoint, reference.mountpoint, config)

    for path in FILES:
        with subtests.test(msg=path):
            problems = []
            for rnd in ("A", "B"):
                got = reads.get((rnd, path), {})
                failed = [tag for tag in TAGS if got.get(tag) is None]
                if failed:
                    problems.append(f"round {rnd}: read failed for {failed}")
                    continue
                problems += [f"round {rnd}: {p}" for p in compare_file(path, got["py1"], got["ref"], got["py2"], config)]
                if rnd == "A" and path == "proc/stat" and "--enable-cfs" in config.flags:
                    problems += [f"round A: {p}" for p in stat_seed_problems(got)]
                if path == "proc/meminfo" and config.memtotal_kb is not None:
                    if memtotal(got["ref"]) != config.memtotal_kb:  # both fell back to the host? then nothing was compared
                        problems.append(f"round {rnd}: lxcfs shows MemTotal {memtotal(got['ref'])}, "
                                        f"expected {config.memtotal_kb} kB")
            assert not problems, (
                f"{path} differs from Debian's lxcfs ({config.name}: docker {' '.join(config.limits) or '-'}, "
                f"daemon flags {' '.join(config.flags) or '-'}):\n" + "\n".join(problems)
            )
