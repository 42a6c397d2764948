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
    p.add_argument("--reuse-ms", type=_milliseconds, default=20, metavar="MS",
                   help="give a container's further opens of a file the content rendered for it at most MS "
                        "milliseconds ago (default 20; 0 renders every open, as LXCFS; a rewinding reader always "
                        "gets fresh numbers)")
    p.add_argument("--log-file", help="in the background, log here instead of discarding logs")
    p.add_argument("--no-remount", action="store_true",
                   help="at start, leave containers' files on a dead mount alone (see 'lxcfs-py remount')")
    p.add_argument("-o", dest="fuse_options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="extra FUSE mount options")
    p.add_argument("--version", action="version", version=f"lxcfs-py {__version__}")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="processes serving requests (default 1; see the README: not faster yet on 2 cores)")
    p.add_argument("--handover", help=argparse.SUPPRESS)  # FUSE_FD,STATE_FD from the process we replace
    p.add_argument("--worker", help=argparse.SUPPRESS)  # CLONE_FD,SHARED_FD,MAIN_PID: serve for the main process
    roots = p.add_argument_group("test roots (read fixture trees instead of the host)")
    roots.add_argument("--proc-root", default="/proc", help=argparse.SUPPRESS)
    roots.add_argument("--cgroup-root", default="/sys/fs/cgroup", help=argparse.SUPPRESS)
    roots.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    return p


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{MAX_WORKERS}")
    return value


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds from 0 to 1000")
    return value


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


# Options whose value is a path: made absolute for the re-exec, which runs from /.
PATH_OPTIONS = ("pidfile", "log_file", "proc_root", "cgroup_root", "sys_root")
# Every daemon and helper runs from /, with this umask: no file it creates is writable by others.
UMASK = 0o022
MAX_WORKERS = 256


def absolute(path: str | None) -> str | None:
    """`path` made absolute; kept as given if it is (lxcfs_daemon compares command lines)."""
    return path if not path or os.path.isabs(path) else os.path.abspath(path)


def absolute_argv(p: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`argv` with the mountpoint and every path value made absolute, keeping the order of the flags
    (lxcfs_daemon compares command lines), so a re-exec from / reads and writes the same files."""
    takes_value = {option: action.dest in PATH_OPTIONS for action in p._actions if action.nargs != 0
                   for option in action.option_strings}
    out, tokens = [], iter(argv)

    def value(is_path: bool, text: str) -> str:
        return absolute(text) if is_path else text

    for token in tokens:
        if token == "--":
            out += [token, *map(absolute, tokens)]
        elif not token.startswith("-") or token == "-":
            out.append(absolute(token))  # the mountpoint
        elif token.startswith("--"):
            name, eq, attached = token.partition("=")
            is_path = takes_value.get(name, False)
            if eq:
                out.append(f"{name}={value(is_path, attached)}")
            else:
                out.append(token)
                if name in takes_value:
                    out += [value(is_path, t) for t in [next(tokens, None)] if t is not None]
        else:  # short options, maybe bundled: -fp PIDFILE, -pPIDFILE
            out.append(token)
            for at in range(1, len(token)):
                option = "-" + token[at]
                if option in takes_value:
                    if token[at + 1:]:
                        out[-1] = token[: at + 1] + value(takes_value[option], token[at + 1:])
                    else:
                        out += [value(takes_value[option], t) for t in [next(tokens, None)] if t is not None]
                    break
    return out


def _isolate() -> None:
    """Run from / with a fixed umask, and import nothing from the directory we were started in."""
    cwd = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".", cwd)]
    os.chdir("/")
    os.umask(UMASK)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    p = parser()
    args = p.parse_args(argv)
    logs.setup(args.debug)
    # Imported late so --help and --version work without pyfuse3's native library.
    from lxcfs_py import daemon, daemon_files, mounts

    config = daemon.DaemonConfig(
        mountpoint=os.path.abspath(args.mountpoint),
        opts=Options(swap=not args.disable_swap, cfs=args.enable_cfs, loadavg=args.enable_loadavg),
        roots=Roots(proc=absolute(args.proc_root), cgroup=absolute(args.cgroup_root), sys=absolute(args.sys_root)),
        pidfile=absolute(args.pidfile),
        fuse_options=args.fuse_options,
        argv=absolute_argv(p, argv),
        handover=args.handover,
        heal=not args.no_remount,
        reuse_window=args.reuse_ms / 1000,
        workers=args.workers,
        worker=args.worker,
    )
    log_file = absolute(args.log_file)
    _isolate()
    # a handover re-exec is already the daemon, wherever it runs
    background = not (args.foreground or args.debug or args.handover or args.worker)
    log_fd = None
    if background and log_file:
        try:  # before forking: the caller sees this failure directly
            log_fd = daemon_files.open_log(log_file)
        except daemon_files.StartError as err:
            print(f"lxcfs-py: error: {err}", file=sys.stderr)
            return 1
    report = _daemonize() if background else None
    started = False

    def mounted():
        nonlocal report, started
        started = True
        if report is not None:
            os.close(report)
            report = None
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(log_fd if log_fd is not None else devnull, 2)
            for fd in {devnull, log_fd} - {None}:
                os.close(fd)

    def failed(message: str) -> int:
        if report is not None:  # the parent waiting in the foreground prints it
            os.write(report, f"lxcfs-py: error: {message}\n".encode())
        else:
            log.error("%s", message)
        return 1

    if args.worker:
        daemon.run_worker(config)
        return 0
    try:
        daemon.run(config, on_mounted=mounted)
    except (mounts.MountError, daemon_files.StartError) as err:
        return failed(str(err))
    except Exception as err:
        if started:
            raise  # not a start-up failure
        log.debug("start-up failure", exc_info=True)
        return failed(f"cannot start: {type(err).__name__}: {err}")
    return 0
