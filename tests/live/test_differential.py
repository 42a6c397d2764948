"""Differential test: lxcfs-py against Debian's lxcfs 5.0.3, read from one real container.

For every configuration both daemons are mounted with the same flags and
ONE container is started with both mount roots bound read-only at /lx-py
and /lx-ref. Both daemons find the reading container by its pid
namespace, so a read through either path gets that daemon's view of the
same container.

Every file is read three times back to back (bash's builtin `read`, so
nothing is forked between the reads): ours, the reference, ours again
(py1, ref, py2). Counters that keep moving (host
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

Ours renders every open here (`--reuse-ms 0`): with the reuse window, py2
would repeat py1 and bracket nothing. The window changes when numbers are
taken, not how they are computed (tests/unit/test_fuse_ops.py covers it).

Intended differences NOT compared: lxcfs-py serves the host's own files to
processes of the host pid namespace (we only read from a container here),
and it virtualizes sys/devices/system/cpu/possible and present (LXCFS
passes them through). On cgroup v2 (scripts/test-v2.sh), also those in
V2_DIFFERENCES and the idle time of proc/uptime (README: "Where lxcfs-py
differs from LXCFS on cgroup v2"; test_v2.py checks ours).
"""

from __future__ import annotations

import difflib
import math
import re
import subprocess
from dataclasses import dataclass, field
from typing import Callable

import pytest

from tests.live.cgroups import V2
from tests.live.containers import IMAGE
from tests.live.daemons import COMPARABLE_WITH_LXCFS_REF, scaled

# loadavg first: with -l, read right after the quiet sleep, before any 5-s sample can see a reader
FILES = sorted(COMPARABLE_WITH_LXCFS_REF, key=lambda path: path != "proc/loadavg")
TAGS = ("py1", "ref", "py2")  # read order within one round: ours (/lx-py), lxcfs (/lx-ref), ours again


@dataclass(frozen=True)
class Config:
    name: str
    limits: list[str]  # docker run flags
    flags: list[str] = field(default_factory=list)  # flags for BOTH daemons
    memtotal_kb: int | None = None  # sanity check that we are really virtualized
    busy_seconds: float = 1.0  # CPU burnt between rounds A and B
    keep_busy: bool = False  # keep a busy loop running through round B (loadavg sampling)


CONFIGS = [
    Config("memory", ["-m", "200m"], memtotal_kb=200 * 1024),
    Config("memory-swap", ["-m", "200m", "--memory-swap", "300m"], memtotal_kb=200 * 1024),
    Config("memory-swap-u", ["-m", "200m", "--memory-swap", "300m"], ["-u"], memtotal_kb=200 * 1024),
    # this host has 2 CPUs: CPU 1 alone exercises the renumbering (cpuinfo) and physical ids (stat, online)
    Config("cpuset", ["--cpuset-cpus", "1"]),
    Config("cfs", ["--cpus", "0.5"], ["--enable-cfs"]),
    Config("cfs-cpuset", ["--cpus", "0.5", "--cpuset-cpus", "1"], ["--enable-cfs"]),
    Config("cfs-1.5", ["--cpus", "1.5"], ["--enable-cfs"]),
    Config("quota-without-cfs", ["--cpus", "0.5"]),  # without --enable-cfs the quota changes nothing
    Config("no-limits", []),
    # three or four 5-s loadavg samples happen while the busy loop runs (after 2 samples LXCFS's rounding
    # of the averages happens to make no visible difference, after 1 or 3..6 it does)
    Config("loadavg", ["-m", "200m"], ["-l"], memtotal_kb=200 * 1024, busy_seconds=16, keep_busy=True),
]


# -- running the container ----------------------------------------------------------


def reader_script(config: Config) -> str:
    """Round A, some work, round B; every read printed as '@@ round file tag ok|err length', the text, '\\n'.

    The files are read with bash's builtin `read` (the whole file, up to a NUL that never comes), not with
    cat: no process is forked, so the container's memory and the host's counters do not move because of
    the reads themselves, and the three reads of a file follow each other within a millisecond or so.
    """
    reads = " ".join(FILES)
    snap = f"""
snap() {{
  for f in {reads}; do
    for tag in {' '.join(TAGS)}; do
      case $tag in ref) root=/lx-ref ;; *) root=/lx-py ;; esac
      x= status=err
      {{ IFS= read -r -d '' x; status=ok; }} 2>/dev/null < "$root/$f"
      printf '@@ %s %s %s %s %d\n%s\n' "$1" "$f" "$tag" "$status" "${{#x}}" "$x"
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
    # 16 MiB of page cache, synced so Dirty does not drop mid-round; then burn CPU (last, so that with -l
    # only the busy loop, the shell and sleep exist while the 5-s samples are taken)
    return snap + f"snap A\nhead -c 16M /dev/urandom > /tmp/blob; sync\n{work}\nsnap B\n{after}\n"


def run_container(py_root: str, ref_root: str, config: Config) -> dict[tuple[str, str], dict[str, str | None]]:
    """{(round, file): {tag: text or None if the read failed}}."""
    command = ["docker", "run", "--rm", *config.limits, "-v", f"{py_root}:/lx-py:ro", "-v", f"{ref_root}:/lx-ref:ro",
               IMAGE, "bash", "-c", reader_script(config)]
    result = subprocess.run(command, capture_output=True, timeout=scaled(120))
    assert result.returncode == 0, f"{' '.join(command[:-1])} failed: {result.stderr.decode()}"
    reads: dict[tuple[str, str], dict[str, str | None]] = {}
    out, pos = result.stdout, 0
    while (start := out.find(b"@@ ", pos)) >= 0:
        end = out.index(b"\n", start)
        _, rnd, path, tag, status, length = out[start:end].decode().split(" ")
        pos = end + 1 + int(length)
        reads.setdefault((rnd, path), {})[tag] = out[end + 1:pos].decode() if status == "ok" else None
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

    def __str__(self) -> str:
        if self.exact:
            return "must be equal"
        if self.abs == math.inf:
            return "any value"
        return f"ref within our two reads \u00b1{self.abs:g}" + (f" + {self.rel:.0%}" if self.rel else "")


EXACT = Tol(exact=True)
BRACKET = Tol()  # monotonic counter: our two reads bracket the reference's read
# Instantaneous host-wide task counts (procs_running, procs_blocked, loadavg's running/total): they are
# copied from the host, nothing in them comes from the container, and on a busy host two reads a few ms
# apart can see anything from 0 to every runnable task, so only their presence and format are compared.
ANY = Tol(abs=math.inf)


@dataclass(frozen=True)
class Where:
    """What a tolerance may depend on besides the line and field: the configuration and the round."""

    config: Config
    round: str


# (line label, index of the number in the line after its label, where) -> Tol
ToleranceFn = Callable[[str, int, Where], Tol]

MEMINFO_EXACT = {
    # derived from the limits (host has no swap, so SwapFree is exact too) or constant in LXCFS's output
    "MemTotal:", "SwapTotal:", "SwapFree:", "Buffers:", "SwapCached:", "Slab:", "SReclaimable:", "SUnreclaim:",
    "AnonHugePages:", "ShmemHugePages:", "ShmemPmdMapped:",
}
MEMINFO_CONTAINER = {
    # from the container's memory.usage_in_bytes / memory.stat. The reads fork nothing, so these are
    # normally equal; the slack is for the kernel moving pages between the LRU lists, or charging a few
    # pages to the shell, between two reads.
    "MemFree:", "MemAvailable:", "Cached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):",
    "Active(file):", "Inactive(file):", "Unevictable:", "Dirty:", "Writeback:", "AnonPages:", "Mapped:", "Shmem:",
}


# host lines the kernel keeps constant while nobody reconfigures swap, overcommit or huge pages
MEMINFO_HOST_CONSTANT = {"CommitLimit:", "VmallocTotal:", "Hugepagesize:", "HugePages_Total:"}


def meminfo_tol(label: str, index: int, at: Where) -> Tol:
    if label in MEMINFO_EXACT or label in MEMINFO_HOST_CONSTANT:
        return EXACT
    if label in MEMINFO_CONTAINER:
        return Tol(abs=256)  # kB, see MEMINFO_CONTAINER
    # every other line is a host-wide gauge passed through (KernelStack, PageTables, Committed_AS, ...):
    # nothing bounds how far any process on the host moves it between two reads (a busy machine moved
    # Committed_AS by more than 8 MiB), so only its presence and format are compared, as for ANY
    return ANY


def cpuinfo_tol(label: str, index: int, at: Where) -> Tol:
    if label == "cpu MHz:":
        return Tol(rel=0.05)  # frequency sampled per read on hosts with cpufreq
    return EXACT


STAT_CPU = re.compile(r"cpu\d*$")
IDLE = 3  # user nice system idle ...


def stat_tol(label: str, index: int, at: Where) -> Tol:
    if STAT_CPU.match(label):
        if label != "cpu" and index == IDLE and "--enable-cfs" in at.config.flags:
            # which CPU the view cuts a fractional quota's idle time from is the one with the most idle
            # ticks at the instant of each read: it can differ between two daemons read moments apart.
            # Their total, the "cpu" line, is compared.
            return ANY
        # monotonic per-CPU ticks (USER_HZ=100): host idle/iowait, the container's cpuacct time or, with
        # --enable-cfs, the view accumulated since the first read. A few ticks of slack for the view's
        # redistribution and partial-CPU idle cut, which depend on the instant of each read.
        return Tol(abs=5)
    if label == "btime":
        return ANY  # on purpose: lxcfs-py shows the container's start (test_counters.py), LXCFS the host's boot
    if label in ("procs_running", "procs_blocked"):
        return ANY
    return BRACKET  # intr, ctxt, processes, softirq: monotonic host counters


def uptime_tol(label: str, index: int, at: Where) -> Tol:
    if V2 and index == 1:
        return ANY  # on purpose: our idle is the age less cpu.stat's usage, LXCFS 5.0.3 shows idle = age on v2
    # seconds, printed with 2 decimals: the container's age and age minus its CPU time, both monotonic
    # at the scale of our reads, so the bracket covers the time between reads. 0.02 s for rounding: LXCFS
    # rounds a CLOCK_BOOTTIME age in ms, we subtract from the host's /proc/uptime, which is truncated to
    # 10 ms, so we may show 0.01 s less.
    return Tol(abs=0.02)


def loadavg_tol(label: str, index: int, at: Where) -> Tol:
    # numbers: the three averages (0..2), running tasks (3), all tasks (4), last pid (5)
    if "-l" in at.config.flags:
        if index < 3 and at.round == "B":
            # Both daemons sample every 5 s, but each at its own instants, so one may have taken one
            # sample more: compared separately by loadavg_step_problems().
            return ANY
        # Round A: nothing sampled yet (zeros, 0/1 and the container init's pid). Round B: the samples
        # all fell in the quiet `sleep` before it (loadavg is read first in a round), when the container
        # ran exactly its shell, the busy loop and sleep: same counts and same highest pid for both.
        return BRACKET
    # host file: the kernel updates the averages every 5 s (the bracket covers that); running and total
    # are instantaneous host counts; the last pid only grows.
    return [BRACKET, BRACKET, BRACKET, ANY, ANY, BRACKET][index]


def diskstats_tol(label: str, index: int, at: Where) -> Tol:
    if index == 8:
        return ANY  # I/Os currently in flight: a host gauge, not monotonic
    return BRACKET  # all other columns are monotonic host counters


def slabinfo_tol(label: str, index: int, at: Where) -> Tol:
    # after the name: active_objs num_objs objsize objperslab pagesperslab : tunables 3x : slabdata 3x
    if index in (0, 1, 8, 9):
        # object and slab counts of a host cache: forks and file opens anywhere on the host allocate and
        # free objects (task_struct, vm_area_struct, dentry, kmalloc-*) between two reads, by any amount
        return ANY
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


def lxcfs_load_steps(count: int) -> list[str]:
    """LXCFS's loadavg averages after 0..count samples with one running task (proc_loadavg.c)."""
    steps, loads = [], [0, 0, 0]
    for _ in range(count + 1):
        shown = [a + 2048 // 200 for a in loads]  # LXCFS prints avenrun + FIXED_1/200
        steps.append(" ".join(f"{a >> 11}.{((a & 2047) * 100) >> 11:02d}" for a in shown))
        loads = [(a * e + 2048 * (2048 - e) + (2047 if 2048 >= a else 0)) // 2048
                 for a, e in zip(loads, (1884, 2014, 2037))]
    return steps


def loadavg_step_problems(reads: dict[str, str]) -> list[str]:
    """-l, round B: the reference shows k >= 1 samples of one running task, we show k-1, k or k+1."""
    steps = lxcfs_load_steps(10)
    seen = {tag: " ".join(reads[tag].split()[:3]) for tag in TAGS}
    if seen["ref"] not in steps[1:]:
        return [f"lxcfs shows {seen['ref']!r}, not one of the expected steps {steps[1:]} (is the busy loop running?)"]
    k = steps.index(seen["ref"])
    return [f"{tag} shows {seen[tag]!r}, lxcfs {seen['ref']!r}: not within one 5-s sample (steps {steps[k - 1:k + 2]})"
            for tag in ("py1", "py2") if seen[tag] not in steps[k - 1:k + 2]]


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
    "proc/swaps": FileRule(label_words(1), lambda label, index, at: EXACT),
    "proc/slabinfo": FileRule(label_words(1), slabinfo_tol),
    "sys/devices/system/cpu/online": FileRule(label_words(0), lambda label, index, at: EXACT),
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


def compare_file(path: str, py1: str, ref: str, py2: str, at: Where) -> list[str]:
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
               if not within(r, a, b, rule.tol(label, i, at))]
        if bad:
            detail = ", ".join(f"field {i}: py {a:g}/{b:g} ref {r:g} (tol {rule.tol(label, i, at)})"
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


# On cgroup v2, files lxcfs-py renders differently from LXCFS 5.0.3 on purpose: not compared there.
def v2_difference(path: str, config: Config) -> str | None:
    if not V2:
        return None
    if path == "proc/diskstats":
        return "ours is the container's own I/O from io.stat, LXCFS 5.0.3 shows the host's disks on v2"
    if path == "proc/stat" and "--enable-cfs" in config.flags:
        return ("ours lists only the quota's CPUs (v2 has no per-CPU time of a cgroup), LXCFS 5.0.3 every CPU "
                "of the cpuset with the host's times")
    return None


# -- the test -----------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_same_files_as_lxcfs(docker, start_daemon, subtests, config):
    ours = start_daemon([*config.flags, "--reuse-ms", "0"])
    reference = start_daemon(config.flags, ref=True)
    reads = run_container(ours.mountpoint, reference.mountpoint, config)

    for path in FILES:
        with subtests.test(msg=path):
            if reason := v2_difference(path, config):
                pytest.skip(f"differs on cgroup v2 on purpose: {reason}")
            problems = []
            for rnd in ("A", "B"):
                got = reads.get((rnd, path), {})
                failed = [tag for tag in TAGS if got.get(tag) is None]
                if failed:
                    problems.append(f"round {rnd}: read failed for {failed}")
                    continue
                at = Where(config, rnd)
                problems += [f"round {rnd}: {p}" for p in compare_file(path, got["py1"], got["ref"], got["py2"], at)]
                if rnd == "B" and path == "proc/loadavg" and "-l" in config.flags:
                    problems += [f"round B: {p}" for p in loadavg_step_problems(got)]
                if rnd == "A" and path == "proc/stat" and "--enable-cfs" in config.flags:
                    problems += [f"round A: {p}" for p in stat_seed_problems(got)]
                # if both daemons fell back to the host's file, the comparison above proved nothing
                if path == "proc/meminfo" and config.memtotal_kb is not None:
                    if memtotal(got["ref"]) != config.memtotal_kb:
                        problems.append(f"round {rnd}: lxcfs shows MemTotal {memtotal(got['ref'])}, "
                                        f"expected {config.memtotal_kb} kB")
            assert not problems, (
                f"{path} differs from Debian's lxcfs ({config.name}: docker {' '.join(config.limits) or '-'}, "
                f"daemon flags {' '.join(config.flags) or '-'}):\n" + "\n".join(problems)
            )
