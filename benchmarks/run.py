"""Open + read-to-EOF + close per second, from inside limited containers.

Compares lxcfs-py with Debian's C lxcfs (mounted side by side with the same
flags) and, for one reader, with the kernel's own /proc and /sys (the floor),
in several modes, each file:

  pinned  one reader in a `-m 200m --cpuset-cpus 0` container (the daemons have
          the other core to themselves);
  N       N readers at once (default 1, 2, 8 and 32), each in its own unpinned
          `-m 200m` container; their reads/s are summed.

Every container runs one readbench (benchmarks/readbench.c, built static) that
serves runs over FIFOs, so no `docker exec` start-up lands in a measurement; the
readers of a run get one wall-clock start time and measure the same window. The
implementations alternate within each round (py, ref, kernel, py, ..., each
round starting with the next one), so slow drifts of the machine hit all alike;
medians over rounds are reported, with each daemon's CPU time per
open+read+close (utime+stime of the daemon and every thread and child process,
over every read it served; steadier than reads/s when other work shares the
machine).

Run as root with the venv's python, from anywhere:

    .venv/bin/python benchmarks/run.py [--rounds 5] [--duration 1] [--files meminfo,stat] \
        [--modes pinned,1,2,8,32] [--json results.json]

A quick look: `--modes 1,8 --files meminfo --rounds 3`. All files and modes take
about 15 minutes on a 2-core machine.

Before/after a change, under the same load: check the old code out (e.g.
`git worktree add /tmp/old HEAD~1`) and add it with `--base /tmp/old`
(repeatable as `--base NAME=DIR`); each runs as one more daemon.

This is a benchmark, not a test: nothing is asserted; readbench fails
loudly (and this script with it) if any open/read/close fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import report  # noqa: E402
from tests.live import daemons  # noqa: E402
from tests.live.containers import IMAGE  # noqa: E402

SOURCE = os.path.join(REPO, "benchmarks", "readbench.c")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lxcfs-py-bench")


def short_name(path: str) -> str:
    """The name in the tables: proc/meminfo -> meminfo, sys/devices/system/cpu/online -> cpu/online."""
    return path.removeprefix("proc/").removeprefix("sys/devices/system/")


# name in the tables -> path under a mount (and under / for the kernel): every file both daemons virtualize
FILES = {short_name(path): path for path in daemons.COMPARABLE_WITH_LXCFS_REF}
CLK_TCK = os.sysconf("SC_CLK_TCK")
FIXED_IMPLS = ("py", "ref", "kernel")
DEFAULT_MODES = "pinned,1,2,8,32"


def build_readbench() -> str:
    """Compile readbench.c statically once per source version; return the binary's path."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    binary = os.path.join(CACHE, f"readbench-{digest}")
    if not os.path.exists(binary):
        os.makedirs(CACHE, exist_ok=True)
        tmp = f"{binary}.tmp{os.getpid()}"
        subprocess.run(["gcc", "-O2", "-static", "-Wall", "-Wextra", "-o", tmp, SOURCE], check=True)
        os.replace(tmp, binary)
    return binary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per file and mode (default 5)")
    p.add_argument("--duration", type=float, default=1.0, help="seconds measured per run (default 1)")
    p.add_argument("--warmup", type=float, default=0.2, help="seconds of uncounted reads before each run")
    p.add_argument("--files", default=",".join(FILES),
                   help=f"comma-separated subset of: {', '.join(FILES)}")
    p.add_argument("--modes", default=DEFAULT_MODES,
                   help=f"comma-separated: 'pinned' (one reader pinned to --pin-cpus) and numbers of unpinned "
                        f"readers at once (default {DEFAULT_MODES})")
    p.add_argument("--base", action="append", default=[], metavar="[NAME=]DIR",
                   help="also run the lxcfs_py package in DIR (e.g. a `git worktree` of the commit before a "
                        "change), as NAME (default 'base'); repeatable")
    p.add_argument("--impls", default=None,
                   help="comma-separated, in the order run each round: py, ref, kernel and the --base "
                        "names (default: all of them; kernel only in the modes with one reader)")
    p.add_argument("--buffer", type=int, default=65536, help="read() size in bytes (default 65536)")
    p.add_argument("--pause-us", type=float, default=0,
                   help="pause after each iteration (a paced reader; compare the daemons' CPU per op)")
    p.add_argument("--daemon-flag", action="append", default=[], metavar="FLAG",
                   help="extra flag for both daemons, e.g. --daemon-flag=--enable-cfs (repeatable)")
    p.add_argument("--py-flag", action="append", default=[], metavar="FLAG",
                   help="extra flag for lxcfs-py only (not --base), e.g. --py-flag=--workers=2 (repeatable)")
    p.add_argument("--enable-cfs", action="store_true", help="shorthand for --daemon-flag=--enable-cfs")
    p.add_argument("--limits", default="-m 200m", help="docker run resource flags of every reader (default '-m 200m')")
    p.add_argument("--pin-cpus", default="0", help="--cpuset-cpus of the pinned reader (default 0)")
    p.add_argument("--json", metavar="PATH", help="also write the setup, every sample and the medians here")
    p.add_argument("--hold", action="store_true",
                   help="after setup, print the containers and daemon pids and wait for Enter (for profiling)")
    args = p.parse_args(argv)
    args.files = [f.strip() for f in args.files.split(",") if f.strip()]
    unknown = [f for f in args.files if f not in FILES]
    if unknown:
        p.error(f"unknown files: {', '.join(unknown)}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m != report.PINNED and not (m.isdigit() and int(m) > 0) for m in args.modes):
        p.error("--modes takes 'pinned' and positive numbers of readers, e.g. pinned,1,2,8,32")
    bases = {}
    for spec in args.base:
        name, _, directory = spec.rpartition("=")
        name = name or "base"
        if name in FIXED_IMPLS or name in bases or not name.replace("-", "").replace("_", "").isalnum():
            p.error(f"--base {spec}: the name must be unique, alphanumeric and not py, ref or kernel")
        if not os.path.isfile(os.path.join(directory, "lxcfs_py", "__main__.py")):
            p.error(f"--base {spec}: no lxcfs_py package in {directory}")
        bases[name] = os.path.abspath(directory)
    args.base = bases
    known = ["py", *bases, "ref", "kernel"]
    args.impls = known if args.impls is None else [i.strip() for i in args.impls.split(",") if i.strip()]
    if not args.impls or any(i not in known for i in args.impls):
        p.error(f"--impls takes {', '.join(known)}")
    if args.enable_cfs:
        args.daemon_flag.append("--enable-cfs")
    return args


def impls_of_round(impls: list[str], mode: str, round_: int) -> list[str]:
    """The order of one round: rotated each round, so no implementation always goes first;
    the kernel only for one reader (it is the floor; many readers of it measure the CPUs)."""
    shown = [i for i in impls if i != "kernel" or report.readers_in(mode) == 1]
    k = round_ % len(shown)
    return shown[k:] + shown[:k]


def cpu_seconds_of_tree(pid: int) -> float:
    """utime+stime of `pid` and all its descendants (all their threads, live or exited), plus what the
    children that already ended left in their parents' cutime+cstime."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0)
        todo += children.get(current, [])
    return total / CLK_TCK


class Reader:
    """One container running `readbench -s` behind two FIFOs that this process holds open (read-write, so
    neither side's open blocks; when this process goes, readbench reads EOF and the container ends)."""

    def __init__(self, workdir: str, index: int, name: str, limits: list[str]):
        self.name, self.limits = name, limits
        self.ctl = os.path.join(workdir, f"reader{index}")
        os.mkdir(self.ctl)
        os.mkfifo(os.path.join(self.ctl, "commands"))
        os.mkfifo(os.path.join(self.ctl, "results"))
        self.commands = os.open(os.path.join(self.ctl, "commands"), os.O_RDWR)
        self.results = os.open(os.path.join(self.ctl, "results"), os.O_RDWR | os.O_NONBLOCK)
        self.pending = b""

    def start(self, volumes: list[str]) -> None:
        command = ["docker", "run", "-d", "--rm", "--name", self.name, "--network", "none", "--log-driver", "none",
                   *self.limits, *volumes, "-v", f"{self.ctl}:/ctl", IMAGE, "/readbench", "-s", "/ctl"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")

    def send(self, line: str) -> None:
        os.write(self.commands, line.encode() + b"\n")

    def line(self) -> str | None:
        """A complete result line if one has arrived."""
        try:
            self.pending += os.read(self.results, 65536)
        except BlockingIOError:
            pass
        if b"\n" not in self.pending:
            return None
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        for fd in (self.commands, self.results):
            os.close(fd)


class Bench:
    """Owns everything started, so that cleanup() can undo it whatever happened."""

    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="lxcfs-bench-")
        os.chmod(self.workdir, 0o755)
        self.daemons: dict[str, daemons.Daemon] = {}
        self.pinned: Reader | None = None
        self.unpinned: list[Reader] = []
        self.run_id = uuid.uuid4().hex[:8]

    def readers(self) -> list[Reader]:
        return ([self.pinned] if self.pinned else []) + self.unpinned

    def start(self, binary: str) -> None:
        flags = self.args.daemon_flag
        commands = {"py": daemons.LXCFS_PY, "ref": daemons.LXCFS_REF}
        for name, directory in self.args.base.items():
            # -P: no cwd first on sys.path, so PYTHONPATH decides which lxcfs_py runs
            commands[name] = ["env", f"PYTHONPATH={directory}", sys.executable, "-P", "-m", "lxcfs_py"]
        for name in self.args.impls:
            if name == "kernel":
                continue
            mountpoint = os.path.join(self.workdir, name)
            pidfile = os.path.join(self.workdir, f"{name}.pid")
            own = self.args.py_flag if name == "py" else []
            self.daemons[name] = daemons.start(commands[name], mountpoint, [*flags, *own, "-p", pidfile],
                                               log_dir=self.workdir)
        volumes = ["-v", f"{binary}:/readbench:ro"]
        for name, daemon in self.daemons.items():
            volumes += ["-v", f"{daemon.mountpoint}:/lx-{name}:ro"]
        limits = self.args.limits.split()
        if report.PINNED in self.args.modes:
            self.pinned = Reader(self.workdir, 0, f"lxcfs-bench-{self.run_id}-pinned",
                                 [*limits, "--cpuset-cpus", self.args.pin_cpus])
        most = max((report.readers_in(m) for m in self.args.modes if m != report.PINNED), default=0)
        self.unpinned = [Reader(self.workdir, i + 1, f"lxcfs-bench-{self.run_id}-{i}", limits) for i in range(most)]
        # the pool is left (every docker run finished) before an interrupt reaches cleanup()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(reader.start, volumes) for reader in self.readers()]:
                future.result()
        # every reader answers once before anything is measured
        self.run_readers(self.readers(), "/proc/uptime", duration=0.01, warmup=0, margin=0)

    def cpu_seconds(self, impl: str) -> float | None:
        daemon = self.daemons.get(impl)
        return None if daemon is None else cpu_seconds_of_tree(daemon.process.pid)

    def run_readers(self, readers: list[Reader], path: str, duration: float, warmup: float,
                    margin: float) -> list[dict]:
        """Start every reader on `path` at one wall-clock time `margin` seconds from now; their results."""
        start = time.time() + margin
        for reader in readers:
            reader.send(f"{start:.6f} {duration} {warmup} {self.args.buffer} {self.args.pause_us} {path}")
        results: list[str | None] = [None] * len(readers)
        deadline = time.monotonic() + margin + warmup + duration + daemons.scaled(60)
        while None in results:
            waiting = [r for r, line in zip(readers, results) if line is None]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no result from readbench in {', '.join(r.name for r in waiting)}: "
                                   "is the container still running (`docker ps -a`)?")
            select.select([r.results for r in waiting], [], [], 1.0)
            for i, reader in enumerate(readers):
                if results[i] is None:
                    results[i] = reader.line()
        try:
            return [report.parse_result(line) for line in results]
        except RuntimeError as err:
            raise RuntimeError(f"readbench on {path}: {err}") from None

    def measure(self, mode: str, impl: str, rel: str) -> dict:
        a = self.args
        readers = [self.pinned] if mode == report.PINNED else self.unpinned[:report.readers_in(mode)]
        path = ("/" if impl == "kernel" else f"/lx-{impl}/") + rel
        cpu_before = self.cpu_seconds(impl)
        results = self.run_readers(readers, path, a.duration, a.warmup, margin=0.05 + 0.005 * len(readers))
        cpu_after = self.cpu_seconds(impl)
        return report.combine(results, None if cpu_before is None else cpu_after - cpu_before)

    def cleanup(self) -> None:
        names = [r.name for r in self.readers()]
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        for reader in self.readers():
            reader.close()
        self.pinned, self.unpinned = None, []
        for name, daemon in list(self.daemons.items()):
            try:
                code = daemon.stop()
                # lxcfs 5 exits with 1 after a SIGTERM; ours with 0
                if code not in (0, None) and not (name == "ref" and code == 1):
                    print(f"warning: {name} daemon exited with {code}; log:\n{daemon.log()}", file=sys.stderr)
            except Exception as err:  # noqa: BLE001 - keep cleaning up the rest
                print(f"warning: stopping {name} daemon: {err}", file=sys.stderr)
            del self.daemons[name]
        shutil.rmtree(self.workdir, ignore_errors=True)


def run(args) -> dict[str, dict[str, dict[str, list[dict]]]]:
    """samples[mode][file][impl]: one sample per round."""
    binary = build_readbench()
    bench = Bench(args)
    # SIGTERM and SIGHUP clean up like Ctrl-C (SIGINT too: a background job may start with it ignored)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    try:
        bench.start(binary)
        if args.hold:
            pids = {name: d.process.pid for name, d in bench.daemons.items()}
            print(f"containers {[r.name for r in bench.readers()]}, daemon pids {pids}; press Enter to start",
                  file=sys.stderr)
            sys.stdin.readline()
        samples = {mode: {name: {impl: [] for impl in args.impls} for name in args.files} for mode in args.modes}
        for name in args.files:
            for round_ in range(args.rounds):
                for mode in args.modes:
                    for impl in impls_of_round(args.impls, mode, round_):
                        sample = bench.measure(mode, impl, FILES[name])
                        samples[mode][name][impl].append(sample)
                        cpu = sample.get("cpu_us_per_op")
                        cpu = "" if cpu is None else f", daemon {cpu:.0f} us CPU/read"
                        print(f"  {name:<10} round {round_ + 1}/{args.rounds} {report.mode_label(mode):<16} "
                              f"{impl:<6} {sample['rate']:>10.0f} reads/s ({sample['max_bytes']} bytes{cpu})",
                              file=sys.stderr)
        return samples
    finally:
        bench.cleanup()


def machine() -> dict:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    lxcfs_c = subprocess.run([*daemons.LXCFS_REF, "--version"], capture_output=True, text=True)
    commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True)
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "lxcfs_c": (lxcfs_c.stdout + lxcfs_c.stderr).strip().strip('"'), "lxcfs_py": commit.stdout.strip()}


def setup_text(args, setup: dict, seconds: float) -> str:
    flags = " ".join(args.daemon_flag) or "none"
    if args.py_flag:
        flags += f" (lxcfs-py also {' '.join(args.py_flag)})"
    pinned = f"`{args.limits} --cpuset-cpus {args.pin_cpus}`"
    return (f"{setup['cpu']}, {setup['cores']} cores, Linux {setup['kernel']}; lxcfs-py {setup['lxcfs_py']}, "
            f"LXCFS {setup['lxcfs_c']} (C). Open + read-to-EOF + close in a loop, each reader in its own "
            f"`{args.limits}` container (pinned: {pinned}), N readers measuring the same window, their reads/s "
            f"summed; median of {args.rounds} rounds of {args.duration:g} s (after {args.warmup:g} s of warm-up), "
            f"the implementations alternating within each round; daemon flags: {flags}; "
            f"{report.duration_text(seconds)} in all.")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("run as root (FUSE mounts with allow_other, docker)", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        samples = run(args)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    seconds = time.monotonic() - started
    setup = machine()
    summary = report.summarize(samples)
    print(f"\n{setup_text(args, setup, seconds)}\n")
    if report.compared_with(args.impls):
        print(report.ratio_table(summary, args.modes, args.impls) + "\n")
    for mode in args.modes:
        print(f"{report.mode_label(mode)} (CPU: the daemon's utime+stime per read served, 10 ms ticks)\n")
        print(report.mode_table(summary[mode], args.impls) + "\n")
    for warning in report.size_warnings(samples) + report.late_warnings(samples, args.warmup):
        print(f"warning: {warning}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "setup": {**setup, "seconds": seconds}, "samples": samples,
                       "medians": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
