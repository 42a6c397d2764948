"""Open + read-to-EOF + close per second, from inside a limited container.

Compares lxcfs-py, Debian's C lxcfs (mounted side by side with the same
flags) and the kernel's own /proc and /sys (the floor). One long-lived
container binds both mounts (/lx-py, /lx-ref) and a static readbench
binary; every measurement is one `docker exec readbench`, and the
implementations alternate within each round (py, ref, kernel, py, ...), so
slow drifts of the machine hit all three alike. Medians are reported, with
each daemon's CPU time per open+read+close (steadier than ops/s when other
work shares the machine).

Run as root with the venv's python, from anywhere:

    .venv/bin/python benchmarks/run.py [--rounds 5] [--duration 1] [--files meminfo,stat]

Before/after a change, under the same load: check the old code out (e.g.
`git worktree add /tmp/old HEAD~1`) and add it with `--base /tmp/old`
(repeatable as `--base NAME=DIR`); each runs as one more daemon.

This is a benchmark, not a test: nothing is asserted; readbench fails
loudly (and this script with it) if any open/read/close fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.live import daemons  # noqa: E402
from tests.live.containers import IMAGE  # noqa: E402

SOURCE = os.path.join(REPO, "benchmarks", "readbench.c")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lxcfs-py-bench")

# name in the table -> path under a mount (and under / for the kernel)
FILES = {
    "cpuinfo": "proc/cpuinfo",
    "diskstats": "proc/diskstats",
    "loadavg": "proc/loadavg",
    "meminfo": "proc/meminfo",
    "stat": "proc/stat",
    "swaps": "proc/swaps",
    "uptime": "proc/uptime",
    "slabinfo": "proc/slabinfo",
    "cpu/online": "sys/devices/system/cpu/online",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
FIXED_IMPLS = ("py", "ref", "kernel")


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
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per file (default 5)")
    p.add_argument("--duration", type=float, default=1.0, help="seconds measured per run (default 1)")
    p.add_argument("--warmup", type=float, default=0.2, help="seconds of uncounted reads before each run")
    p.add_argument("--files", default=",".join(FILES),
                   help=f"comma-separated subset of: {', '.join(FILES)}")
    p.add_argument("--base", action="append", default=[], metavar="[NAME=]DIR",
                   help="also run the lxcfs_py package in DIR (e.g. a `git worktree` of the commit before a "
                        "change), as NAME (default 'base'); repeatable")
    p.add_argument("--impls", default=None,
                   help="comma-separated, in the order run each round: py, ref, kernel and the --base "
                        "names (default: all of them)")
    p.add_argument("--buffer", type=int, default=65536, help="read() size in bytes (default 65536)")
    p.add_argument("--pause-us", type=float, default=0,
                   help="pause after each iteration (a paced reader; compare the daemons' CPU per op)")
    p.add_argument("--daemon-flag", action="append", default=[], metavar="FLAG",
                   help="extra flag for both daemons, e.g. --daemon-flag=--enable-cfs (repeatable)")
    p.add_argument("--enable-cfs", action="store_true", help="shorthand for --daemon-flag=--enable-cfs")
    p.add_argument("--limits", default="-m 200m --cpuset-cpus 0",
                   help="docker run resource flags (default: '-m 200m --cpuset-cpus 0')")
    p.add_argument("--json", metavar="PATH", help="also write every sample here")
    p.add_argument("--hold", action="store_true",
                   help="after setup, print the container and daemon pids and wait for Enter (for profiling)")
    args = p.parse_args(argv)
    args.files = [f.strip() for f in args.files.split(",") if f.strip()]
    unknown = [f for f in args.files if f not in FILES]
    if unknown:
        p.error(f"unknown files: {', '.join(unknown)}")
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


class Bench:
    """Owns everything started, so that cleanup() can undo it whatever happened."""

    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="lxcfs-bench-")
        self.daemons: dict[str, daemons.Daemon] = {}
        self.container: str | None = None

    def start(self, binary: str) -> None:
        flags = self.args.daemon_flag
        commands = {"py": daemons.LXCFS_PY, "ref": daemons.LXCFS_REF}
        for name, directory in self.args.base.items():
            # -P: no cwd first on sys.path, so PYTHONPATH decides which lxcfs_py runs
            commands[name] = ["env", f"PYTHONPATH={directory}", sys.executable, "-P", "-m", "lxcfs_py"]
        for name in self.args.impls:
            if name == "kernel":
                continue
            command = commands[name]
            mountpoint = os.path.join(self.workdir, name)
            pidfile = os.path.join(self.workdir, f"{name}.pid")
            self.daemons[name] = daemons.start(command, mountpoint, [*flags, "-p", pidfile], log_dir=self.workdir)
        volumes = []
        for name, daemon in self.daemons.items():
            volumes += ["-v", f"{daemon.mountpoint}:/lx-{name}:ro"]
        volumes += ["-v", f"{binary}:/readbench:ro"]
        name = f"lxcfs-bench-{os.getpid()}"
        command = ["docker", "run", "-d", "--rm", "--name", name, *self.args.limits.split(), *volumes,
                   IMAGE, "sleep", "infinity"]
        self.container = name  # set before running, so a half-started container is removed too
        subprocess.run(command, check=True, capture_output=True, text=True)

    def cpu_seconds(self, impl: str) -> float | None:
        """CPU time the daemon serving `impl` has used (all its threads, live or exited)."""
        daemon = self.daemons.get(impl)
        if daemon is None:
            return None
        with open(f"/proc/{daemon.process.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def measure(self, impl: str, path: str) -> dict:
        a = self.args
        command = ["docker", "exec", self.container, "/readbench", "-d", str(a.duration), "-w", str(a.warmup),
                   "-b", str(a.buffer), "-p", str(a.pause_us), path]
        cpu_before = self.cpu_seconds(impl)
        result = subprocess.run(command, capture_output=True, text=True, timeout=a.duration + a.warmup + 60)
        cpu_after = self.cpu_seconds(impl)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        _, ops, elapsed, rate, min_bytes, max_bytes = result.stdout.split()
        sample = {"ops": int(ops), "elapsed": float(elapsed), "rate": float(rate),
                  "min_bytes": int(min_bytes), "max_bytes": int(max_bytes)}
        if cpu_before is not None:
            # includes the warm-up's reads: divide by the ops of both periods, estimated at the same rate
            total_ops = int(ops) * (1 + a.warmup / a.duration)
            sample["cpu_us_per_op"] = (cpu_after - cpu_before) * 1e6 / total_ops
        return sample

    def cleanup(self) -> None:
        if self.container is not None:
            subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)
            self.container = None
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


def run(args) -> dict[str, dict[str, list[dict]]]:
    binary = build_readbench()
    bench = Bench(args)
    # SIGTERM and SIGHUP clean up like Ctrl-C (SIGINT too: a background job may start with it ignored)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    try:
        bench.start(binary)
        if args.hold:
            pids = {name: d.process.pid for name, d in bench.daemons.items()}
            print(f"container {bench.container}, daemon pids {pids}; press Enter to start", file=sys.stderr)
            sys.stdin.readline()
        samples: dict[str, dict[str, list[dict]]] = {}
        for name in args.files:
            rel = FILES[name]
            samples[name] = {impl: [] for impl in args.impls}
            for round_ in range(args.rounds):
                for impl in args.impls:
                    sample = bench.measure(impl, ("/" if impl == "kernel" else f"/lx-{impl}/") + rel)
                    samples[name][impl].append(sample)
                    cpu = f", daemon {sample['cpu_us_per_op']:.0f} us CPU/op" if "cpu_us_per_op" in sample else ""
                    print(f"  {name:<10} round {round_ + 1}/{args.rounds} {impl:<6} {sample['rate']:>10.0f} ops/s"
                          f" ({sample['max_bytes']} bytes{cpu})", file=sys.stderr)
        return samples
    finally:
        bench.cleanup()


def median(samples: list[dict]) -> float:
    return statistics.median(s["rate"] for s in samples)


def label(impl: str) -> str:
    return {"py": "lxcfs-py", "ref": "lxcfs C", "kernel": "kernel /proc"}.get(impl, f"lxcfs-py ({impl})")


def table(samples: dict[str, dict[str, list[dict]]], impls: list[str]) -> str:
    cols = ["file", *(f"{label(i)} ops/s" for i in impls)]
    # py against C, and py against each --base
    ratios = [(other, "C" if other == "ref" else other) for other in impls
              if "py" in impls and other not in ("py", "kernel")]
    cols += [f"py/{name}" for _, name in ratios]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c != "file" else "---" for c in cols) + "|"]
    for name, by_impl in samples.items():
        row = [name]
        for impl in impls:
            row.append(f"{median(by_impl[impl]):,.0f}")
        for other, _ in ratios:
            row.append(f"{median(by_impl['py']) / median(by_impl[other]):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cpu_table(samples: dict[str, dict[str, list[dict]]], impls: list[str]) -> str:
    """Daemon CPU time per open+read+close: less sensitive than ops/s to other load on the machine."""
    shown = [i for i in impls if i != "kernel"]
    cols = ["file", *(f"{label(i)} us CPU/op" for i in shown)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c != "file" else "---" for c in cols) + "|"]
    for name, by_impl in samples.items():
        row = [name] + [f"{statistics.median(s['cpu_us_per_op'] for s in by_impl[i]):.0f}" for i in shown]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def size_warnings(samples: dict[str, dict[str, list[dict]]], impls: list[str]) -> list[str]:
    """Files whose size differs by more than 10% from lxcfs C's: the two are not doing the same work."""
    warnings = []
    if "ref" not in impls:
        return warnings
    for name, by_impl in samples.items():
        ref = statistics.median(s["max_bytes"] for s in by_impl["ref"])
        for impl in impls:
            if impl in ("ref", "kernel"):
                continue
            size = statistics.median(s["max_bytes"] for s in by_impl[impl])
            if abs(size - ref) > 0.1 * max(ref, 1):
                warnings.append(f"{name}: {label(impl)} returned {size:.0f} bytes, lxcfs C {ref:.0f}")
    return warnings


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
    flags = " ".join(args.daemon_flag) or "none"
    print(f"\nmedian of {args.rounds} alternating rounds of {args.duration:g} s each; container limits "
          f"'{args.limits}'; daemon flags: {flags}; {time.monotonic() - started:.0f} s in all\n")
    print(table(samples, args.impls))
    for warning in size_warnings(samples, args.impls):
        print(f"\nwarning: {warning}")
    if any(i != "kernel" for i in args.impls):
        print("\ndaemon CPU time per open+read+close (median; the daemons' utime+stime, 10 ms ticks)\n")
        print(cpu_table(samples, args.impls))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "samples": samples}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
