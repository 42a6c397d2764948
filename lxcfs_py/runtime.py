"""lxcfs-py-runc: an OCI runtime that is runc plus lxcfs-py's bind mounts.

containerd's shim (and so Docker, via `"runtimes"` in daemon.json) calls a
runtime exactly like runc:

    lxcfs-py-runc [--lxcfs-mountpoint DIR] [--lxcfs-runc PATH] [--lxcfs-timeout S] [--lxcfs-timens auto|on|off] \
        <runc global options> <command> <command options> <container id>

On `create` (and `run`, `restore`) the bundle's config.json gets a read-only bind mount
for every lxcfs-py file the spec does not already mount (the one list in
lxcfs_py.bind_mounts), after a check that the lxcfs-py mount is live; then the
real runc is exec'd with runc's arguments unchanged. Every other command
(start, state, kill, delete, exec, features, ...) execs runc at once.

Time namespace (lxcfs_py.timens): on `create`/`run` of a container with its own
PID namespace, the wrapper unshares a time namespace whose CLOCK_BOOTTIME and
CLOCK_MONOTONIC start at 0, then execs runc, which (like every runtime that does
not manage time namespaces itself) hands it down to the container. The kernel
then shows the container's processes start times, /proc/uptime and btime
relative to that zero, so `ps` agrees with lxcfs-py's uptime. Every other
command on a container (start, state, exec, kill, ...) runs in its init's time
namespace. auto (the default): when the kernel has
time namespaces (5.6) and the spec does not ask for one itself.

Options may also come from the environment (LXCFS_PY_MOUNTPOINT, LXCFS_PY_RUNC,
LXCFS_PY_TIMEOUT, LXCFS_PY_TIMENS); command-line options win.

Kept cheap: nothing but os and sys is imported before the command is known.
"""

import os
import sys

from lxcfs_py.bind_mounts import DEFAULT_MOUNTPOINT, bind_mounts

PROG = "lxcfs-py-runc"
DEFAULT_RUNC = "runc"
DEFAULT_TIMEOUT = 5.0
BIND_OPTIONS = ("rbind", "ro")
CREATE_COMMANDS = ("create", "run", "restore")  # the commands that make a container from a bundle

# runc's global options that take a value (urfave/cli: -x or --x, "X v" or "X=v")
_RUNC_GLOBAL_WITH_VALUE = {"log", "log-format", "root", "criu", "rootless"}
# options of `runc create` / `run` / `restore` that take a value
_CREATE_WITH_VALUE = {"bundle", "b", "console-socket", "pid-file", "preserve-fds", "image-path", "work-path",
                      "manage-cgroups-mode", "empty-ns", "lsm-profile", "lsm-mount-context"}
_WRAPPER_OPTIONS = {"--lxcfs-mountpoint": "mountpoint", "--lxcfs-runc": "runc", "--lxcfs-timeout": "timeout",
                    "--lxcfs-timens": "timens"}
TIMENS_MODES = ("auto", "on", "off")


class WrapperError(Exception):
    """A one-line reason not to start the container."""


# ---------------------------------------------------------------- arguments


def split_args(argv, environ=None):
    """Split our leading --lxcfs-* options off `argv` (without argv[0]).

    Returns (options dict, runc args). Raises WrapperError on a bad option.
    """
    environ = os.environ if environ is None else environ
    options = {
        "mountpoint": environ.get("LXCFS_PY_MOUNTPOINT") or DEFAULT_MOUNTPOINT,
        "runc": environ.get("LXCFS_PY_RUNC") or DEFAULT_RUNC,
        "timeout": environ.get("LXCFS_PY_TIMEOUT") or DEFAULT_TIMEOUT,
        "timens": environ.get("LXCFS_PY_TIMENS") or "auto",
    }
    i = 0
    while i < len(argv) and argv[i].startswith("--lxcfs-"):
        name, sep, value = argv[i].partition("=")
        if name not in _WRAPPER_OPTIONS:
            raise WrapperError(f"unknown option {name}")
        if not sep:
            i += 1
            if i == len(argv):
                raise WrapperError(f"option {name} needs a value")
            value = argv[i]
        options[_WRAPPER_OPTIONS[name]] = value
        i += 1
    try:
        options["timeout"] = float(options["timeout"])
    except ValueError:
        raise WrapperError(f"--lxcfs-timeout: not a number: {options['timeout']}") from None
    if options["timens"] not in TIMENS_MODES:
        raise WrapperError(f"--lxcfs-timens must be one of {', '.join(TIMENS_MODES)}, not {options['timens']!r}")
    if not os.path.isabs(options["mountpoint"]):
        raise WrapperError(f"--lxcfs-mountpoint must be an absolute path, not {options['mountpoint']!r}")
    return options, argv[i:]


def _option_name(arg):
    """'--root=x' -> 'root', '-b' -> 'b'; None if `arg` is not an option."""
    if len(arg) < 2 or not arg.startswith("-") or arg == "--":
        return None
    return arg.lstrip("-").partition("=")[0]


def find_command(args):
    """Index of runc's command in `args` (runc's argv without argv[0]), or None."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        name = _option_name(arg)
        if name is None:
            return i
        if name in _RUNC_GLOBAL_WITH_VALUE and "=" not in arg:
            i += 1  # skip the value
        i += 1
    return None


def find_bundle(command_args):
    """The --bundle/-b of a create/run/restore command's arguments; runc's default is the cwd.

    Scans every argument rather than stopping at the first non-option, so an
    option this module does not know (restore has many) cannot hide the bundle.
    """
    i = 0
    while i < len(command_args):
        arg = command_args[i]
        if arg == "--":
            break
        name = _option_name(arg)
        if name in ("bundle", "b"):
            if "=" in arg:
                return arg.partition("=")[2]
            if i + 1 < len(command_args):
                return command_args[i + 1]
            break
        if name in _CREATE_WITH_VALUE and "=" not in arg:
            i += 1  # its value, even one that starts with '-'
        i += 1
    return "."


# ---------------------------------------------------------------- the spec


def _norm(path):
    path = os.path.normpath("/" + path) if path else "/"
    return "/" + path.lstrip("/")  # normpath keeps a leading '//'


def missing_mounts(spec, mountpoint):
    """The lxcfs-py mounts (OCI mount dicts) `spec` does not mount yet, in bind_mounts order."""
    present = {_norm(m.get("destination", "")) for m in spec.get("mounts") or [] if isinstance(m, dict)}
    return [
        {"destination": target, "type": "bind", "source": source, "options": list(BIND_OPTIONS)}
        for source, target in bind_mounts(mountpoint)
        if _norm(target) not in present
    ]


def add_lxcfs_mounts(spec, mountpoint):
    """A copy of the OCI runtime `spec` with lxcfs-py's bind mounts appended.

    Pure: `spec` is not changed. Mounts whose destination the spec already
    mounts (e.g. from `docker run -v .../proc/meminfo:/proc/meminfo`) are
    left alone. Appended after the spec's own mounts, so they land on top of
    the container's /proc and /sys. Returns (new spec, number of mounts added).
    """
    if not isinstance(spec, dict):
        raise WrapperError("config.json is not a JSON object")
    mounts = spec.get("mounts")
    if mounts is not None and not isinstance(mounts, list):
        raise WrapperError("config.json: 'mounts' is not a list")
    added = missing_mounts(spec, mountpoint)
    new = dict(spec)
    new["mounts"] = list(mounts or []) + added
    return new, len(added)


def wants_timens(spec, mode, kernel_has_timens):
    """Whether the wrapper should give the container a time namespace starting at 0.

    Not when the spec asks for a time namespace itself (the runtime sets that up,
    with the spec's offsets), nor without a PID namespace of its own: the host's
    processes started before the container's clocks' zero.
    """
    if mode == "off":
        return False
    namespaces = [n for n in ((spec.get("linux") or {}).get("namespaces") or []) if isinstance(n, dict)]
    if any(n.get("type") == "time" for n in namespaces):
        return False
    if not any(n.get("type") == "pid" and not n.get("path") for n in namespaces):
        return False
    if not kernel_has_timens:
        if mode == "on":
            raise WrapperError("--lxcfs-timens on: this kernel has no time namespaces runc can start in "
                               "(Linux >= 6.3 needed); use --lxcfs-timens auto or off")
        return False
    return True


# ---------------------------------------------------------------- the host


def check_mount(mountpoint, timeout=DEFAULT_TIMEOUT):
    """Raise WrapperError unless lxcfs-py is mounted at `mountpoint` and answers."""
    import errno
    import threading

    from lxcfs_py import kernel_mounts

    result = {}

    def probe():
        try:
            state = kernel_mounts.mount_state(mountpoint)
            if state == "free":
                missing = "" if os.path.lexists(mountpoint) else " (no such directory)"
                result["error"] = (
                    f"lxcfs-py is not mounted at {mountpoint}{missing}: "
                    "start the lxcfs-py daemon (or point --lxcfs-mountpoint at its mountpoint) before starting "
                    "containers with this runtime"
                )
                return
            if state == "stale":
                raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
            with open(os.path.join(mountpoint, "proc", "meminfo"), "rb") as f:
                if not f.read(64):
                    result["error"] = f"lxcfs-py at {mountpoint} returned an empty proc/meminfo"
        except OSError as err:
            if err.errno == errno.ENOTCONN:
                result["error"] = (
                    f"lxcfs-py mount at {mountpoint} is stale (its daemon is gone: {err.strerror}): "
                    "restart lxcfs-py before starting containers with this runtime"
                )
            else:
                result["error"] = f"lxcfs-py mount at {mountpoint} is not usable: {err.strerror or err}"

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise WrapperError(f"lxcfs-py at {mountpoint} did not answer within {timeout:g}s: is its daemon hung?")
    if "error" in result:
        raise WrapperError(result["error"])


def rewrite_config(bundle, mountpoint):
    """Add the missing mounts to BUNDLE/config.json, atomically. Returns (the spec as read, how many were added)."""
    import json

    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            spec = json.load(f)
    except OSError as err:
        raise WrapperError(f"cannot read {path}: {err.strerror}") from None
    except ValueError as err:
        raise WrapperError(f"cannot parse {path}: {err}") from None
    new, added = add_lxcfs_mounts(spec, mountpoint)
    if not added:
        return spec, 0
    tmp = f"{path}.lxcfs-py.{os.getpid()}"
    try:
        mode = os.stat(path).st_mode & 0o7777
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            json.dump(new, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WrapperError(f"cannot write {path}: {err.strerror}") from None
    return spec, added


def container_init_pid(root, command_args):
    """The init pid a runtime recorded for the container named in `command_args`, or None.

    The container id is the first argument naming a state directory under `root`:
    runc's <root>/<id>/state.json ("init_process_pid") or crun's <root>/<id>/status ("pid").
    """
    import json

    for arg in command_args:
        if arg.startswith("-") or "/" in arg or arg in (".", ".."):
            continue
        for name, key in (("state.json", "init_process_pid"), ("status", "pid")):
            try:
                with open(os.path.join(root, arg, name), "rb") as f:
                    return int(json.load(f)[key])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return None


def enter_timens(spec, mode):
    from lxcfs_py import timens

    if wants_timens(spec, mode, timens.usable()):
        try:
            timens.unshare_zeroed()
        except timens.TimensError as err:
            raise WrapperError(str(err)) from None


def join_container_timens(runc, runc_args, command):
    """Run every other command on a container in its init's time namespace, best effort.

    runc (like crun) tells its init from a reused pid by the start time it read at
    `create`, in the new namespace: it must read it there again, or it would think the
    container stopped. And `exec` must start processes in the container's namespace.
    """
    from lxcfs_py import timens

    if not timens.supported():
        return
    root = _global_value(runc_args[:command], "root") or f"/run/{os.path.basename(runc)}"
    pid = container_init_pid(root, runc_args[command + 1:])
    if pid is None:
        return
    try:
        timens.join(pid)
    except timens.TimensError:
        pass  # the init is gone: the runtime says so itself


def _global_value(head, wanted):
    """The value of runc global option `wanted` (e.g. 'root') among `head`, or None."""
    value = None
    i = 0
    while i < len(head):
        name = _option_name(head[i])
        if name in _RUNC_GLOBAL_WITH_VALUE:
            if "=" in head[i]:
                found = head[i].partition("=")[2]
            else:
                found = head[i + 1] if i + 1 < len(head) else ""
                i += 1
            if name == wanted:
                value = found
        i += 1
    return value


def _log_path(runc_args):
    """runc's --log file and whether it is JSON (containerd reads runc's errors from it)."""
    end = find_command(runc_args)
    head = runc_args[:end] if end is not None else runc_args
    return _global_value(head, "log"), _global_value(head, "log-format") or "text"


def report(message, runc_args):
    """One line on stderr, and in runc's --log file as runc would write it.

    containerd's shim turns the last error line of that file into the error
    Docker shows ("OCI runtime create failed: <message>").
    """
    line = f"{PROG}: error: {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    log, fmt = _log_path(runc_args)
    if not log:
        return
    import json
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    now = now[:-2] + ":" + now[-2:]  # RFC 3339, which containerd's decoder needs
    if fmt == "json":
        text = json.dumps({"level": "error", "msg": line, "time": now})
    else:
        text = f"time=\"{now}\" level=error msg={json.dumps(line)}"
    try:
        with open(log, "a") as f:
            f.write(text + "\n")
    except OSError:
        pass


# ---------------------------------------------------------------- main


def _exec_runc(runc, runc_args):
    try:
        if "/" in runc:
            os.execv(runc, [runc, *runc_args])
        else:
            os.execvp(runc, [runc, *runc_args])
    except OSError as err:
        raise WrapperError(f"cannot run {runc}: {err.strerror}") from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    runc_args = argv
    try:
        options, runc_args = split_args(argv)
        command = find_command(runc_args)
        verb = runc_args[command] if command is not None else None
        if verb in CREATE_COMMANDS:
            check_mount(options["mountpoint"], options["timeout"])
            spec = rewrite_config(find_bundle(runc_args[command + 1:]), options["mountpoint"])[0]
            if verb != "restore":  # CRIU restores the time namespace it dumped
                enter_timens(spec, options["timens"])
        elif verb is not None and options["timens"] != "off":
            join_container_timens(options["runc"], runc_args, command)
        _exec_runc(options["runc"], runc_args)
    except WrapperError as err:
        report(str(err), runc_args)
        return 1
    return 1  # not reached: exec replaced us


if __name__ == "__main__":
    raise SystemExit(main())
