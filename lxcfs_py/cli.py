"""Command line, compatible with lxcfs's flags."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lxcfs_py import __version__, logs
from lxcfs_py.bind_mounts import DEFAULT_MOUNTPOINT
from lxcfs_py.context import Options, Roots

log = logging.getLogger("lxcfs_py")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lxcfs-py",
        description="Mount a FUSE tree whose proc/ and sys/ files show each reading container its own limits.",
        epilog="Other commands: 'lxcfs-py mounts [MOUNTPOINT]' prints the docker -v flags for a container; "
               "'lxcfs-py remount [--dry-run] [MOUNTPOINT]' re-binds running containers' files after a crash.",
    )
    p.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT, help=f"default {DEFAULT_MOUNTPOINT}")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-d", "--debug", action="store_true", help="debug logging (implies -f)")
    p.add_argument("-s", dest="single_threaded", action="store_true", help="accepted for lxcfs compatibility")
    p.add_argument("-p", "--pidfile", help="write the daemon's pid here (removed on exit)")
    p.add_argument("-l", "--enable-loadavg", action="store_true", help="per-container /proc/loadavg")
    p.add_argument("--enable-cfs", action="store_true", help="CPU count from the CFS quota (cpuinfo, stat, online)")
    p.add_argument("-u", "--disable-swap", action="store_true", help="show no swap in meminfo and swaps")
    p.add_argument("--log-file", help="in the background, log here instead of discarding logs")
    p.add_argument("--no-remount", action="store_true",
                   help="at start, leave containers' files on a dead mount alone (see 'lxcfs-py remount')")
    p.add_argument("-o", dest="fuse_options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="extra FUSE mount options")
    p.add_argument("--version", action="version", version=f"lxcfs-py {__version__}")
    p.add_argument("--handover", help=argparse.SUPPRESS)  # FUSE_FD,STATE_FD from the process we replace
    roots = p.add_argument_group("test roots (read fixture trees instead of the host)")
    roots.add_argument("--proc-root", default="/proc", help=argparse.SUPPRESS)
    roots.add_argument("--cgroup-root", default="/sys/fs/cgroup", help=argparse.SUPPRESS)
    roots.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    return p


def _daemonize() -> int:
    """Fork to the background; the parent exits once the child has mounted.

    Returns the write end of a pipe the child reports on (nothing = mounted).
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end) as report:
            message = report.read()
        if message:
            sys.stderr.write(message)
            os._exit(1)
        os._exit(0)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    return write_end


def mounts_command(argv: list[str]) -> int:
    """`lxcfs-py mounts [MOUNTPOINT]`: the bind mounts a container needs, as docker -v flags."""
    from lxcfs_py.bind_mounts import bind_mounts

    p = argparse.ArgumentParser(prog="lxcfs-py mounts", description="Print the docker -v flags that bind a "
                                "mount's files over a container's /proc and /sys/devices/system/cpu.")
    p.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT)
    args = p.parse_args(argv)
    print(" ".join(f"-v {source}:{target}:ro" for source, target in bind_mounts(os.path.abspath(args.mountpoint))))
    return 0


def remount_command(argv: list[str]) -> int:
    """`lxcfs-py remount [--dry-run] [MOUNTPOINT]`: re-bind containers' stale files from the live mount."""
    from lxcfs_py import mounts
    from lxcfs_py.remount import remount

    p = argparse.ArgumentParser(prog="lxcfs-py remount", description="Find running containers whose bind mounts "
                                "point at a dead lxcfs-py mount and re-bind each file from the live mount at "
                                "MOUNTPOINT, without restarting them. One line per container and file.")
    p.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT)
    p.add_argument("--dry-run", action="store_true", help="only report what would be healed")
    args = p.parse_args(argv)
    mountpoint = os.path.abspath(args.mountpoint)
    try:
        if mounts.state(mountpoint) != "live":
            print(f"lxcfs-py remount: error: no live lxcfs-py mount at {mountpoint}; start the daemon first",
                  file=sys.stderr)
            return 2
    except mounts.MountError as err:
        print(f"lxcfs-py remount: error: {err}", file=sys.stderr)
        return 2
    return 1 if remount(mountpoint, dry_run=args.dry_run) else 0


SUBCOMMANDS = {"mounts": mounts_command, "remount": remount_command}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = parser().parse_args(argv)
    logs.setup(args.debug)
    # Imported late so --help and --version work without pyfuse3's native library.
    from lxcfs_py import daemon, mounts

    config = daemon.DaemonConfig(
        mountpoint=os.path.abspath(args.mountpoint),
        opts=Options(swap=not args.disable_swap, cfs=args.enable_cfs, loadavg=args.enable_loadavg),
        roots=Roots(proc=args.proc_root, cgroup=args.cgroup_root, sys=args.sys_root),
        pidfile=args.pidfile,
        fuse_options=args.fuse_options,
        argv=argv,
        handover=args.handover,
        heal=not args.no_remount,
    )
    # a handover re-exec is already the daemon, wherever it runs
    report = None if (args.foreground or args.debug or args.handover) else _daemonize()

    def mounted():
        if report is not None:
            os.close(report)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            log_fd = os.open(args.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) if args.log_file else devnull
            os.dup2(log_fd, 2)

    try:
        daemon.run(config, on_mounted=mounted)
    except mounts.MountError as err:
        if report is not None:
            os.write(report, f"lxcfs-py: error: {err}\n".encode())
        else:
            log.error("%s", err)
        return 1
    return 0
