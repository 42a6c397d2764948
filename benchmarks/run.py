"""Open + read-to-EOF + close per second, from inside a limited container.

Compares lxcfs-py, Debian's C lxcfs (mounted side by side with the same
flags) and the kernel's own /proc and /sys (the floor). One long-lived
container binds both mounts (/lx-py, /lx-ref) and a static readbench
binary; every measurement is one `docker exec readbench`, and the
implementations alternate within each round (py, ref, kernel, py, ...), so
slow drifts of the machine hit all three alike. Medians are reported.

Run as root with the venv's python, from anywhere:

    .venv/bin/python benchmarks/run.py [--rounds 5] [--duration 1] [--files meminfo,stat]

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
IMPLS = {"py": "/lx-py/", "ref": "/lx-ref/", "kernel": "/"}


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
    p.add_argument("--impls", default="py,ref,kernel", help="comma-separated subset of py,ref,kernel")
    p.add_argument("--buffer", type=int, default=65536, help="read() size in bytes (default 65536)")
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
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if not args.impls or any(i not in IMPLS for i in args.impls):
        p.error("--impls takes py, ref and/or kernel")
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
        for name, command in (("py", daemons.LXCFS_PY), ("ref", daemons.LXCFS_REF)):
            if name not in self.args.impls:
                continue
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

    def measure(self, path: str) -> dict:
        a = self.args
        command = ["docker", "exec", self.container, "/readbench", "-d", str(a.duration), "-w", str(a.warmup),
                   "-b", str(a.buffer), path]
        result = subprocess.run(command, capture_output=True, text=True, timeout=a.duration + a.warmup + 60)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        _, ops, elapsed, rate, min_bytes, max_bytes = result.stdout.split()
        return {"ops": int(ops), "elapsed": float(elapsed), "rate": float(rate),
                "min_bytes": int(min_bytes), "max_bytes": int(max_bytes)}

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
    # SIGTERM/SIGHUP clean up like Ctrl-C does
    for signum in (signal.SIGTERM, signal.SIGHUP):
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
                    sample = bench.measure(IMPLS[impl] + rel)
                    samples[name][impl].append(sample)
                    print(f"  {name:<10} round {round_ + 1}/{args.rounds} {impl:<6} {sample['rate']:>10.0f} ops/s"
                          f" ({sample['max_bytes']} bytes)", file=sys.stderr)
        return samples
    finally:
        bench.cleanup()


def median(samples: list[dict]) -> float:
    return statistics.median(s["rate"] for s in samples)


def table(samples: dict[str, dict[str, list[dict]]], impls: list[str]) -> str:
    headers = {"py": "lxcfs-py ops/s", "ref": "lxcfs C ops/s", "kernel": "kernel /proc ops/s"}
    cols = ["file", *(headers[i] for i in impls)]
    both = "py" in impls and "ref" in impls
    if both:
        cols.append("py/C")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c != "file" else "---" for c in cols) + "|"]
    for name, by_impl in samples.items():
        row = [name]
        for impl in impls:
            row.append(f"{median(by_impl[impl]):,.0f}")
        if both:
            row.append(f"{median(by_impl['py']) / median(by_impl['ref']):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


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
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "samples": samples}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
