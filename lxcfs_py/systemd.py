"""The little of systemd's protocols the daemon speaks: notify, the fd store, socket passing."""

from __future__ import annotations

import array
import logging
import os
import socket
import subprocess
import time

SD_LISTEN_FDS_START = 3
log = logging.getLogger("lxcfs_py")


def notify(message: str, fds: list[int] = ()) -> bool:
    """Send `message` (and fds) to systemd; False without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        sock.sendmsg([message.encode()], ancillary)
    return True


def fd_store_enabled() -> bool:
    """Our unit keeps the FUSE connection in systemd's fd store (FileDescriptorStoreMax=, set by the unit)."""
    return bool(os.environ.get("NOTIFY_SOCKET")) and os.environ.get("LXCFS_PY_FDSTORE") == "1"


def store_fd(fd: int, name: str) -> None:
    notify(f"FDSTORE=1\nFDNAME={name}", [fd])


def drop_stored(name: str) -> None:
    notify(f"FDSTOREREMOVE=1\nFDNAME={name}")


def listen_fds() -> dict[str, int]:
    """Descriptors systemd passed us (LISTEN_FDS), by name; consumed once."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    count = int(os.environ.get("LISTEN_FDS", "0"))
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for variable in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(variable, None)
    fds = {}
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        fds[names[index] if index < len(names) else f"fd{index}"] = fd
    return fds


def own_unit() -> str | None:
    """The .service unit we run in, from our cgroup."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                path = line.strip().split(":", 2)[-1]
                if path.endswith(".service"):
                    return path.rsplit("/", 1)[-1]
    except OSError:
        pass
    return None


def restart_queued(tries: int = 4, pause: float = 0.05) -> bool:
    """Whether systemd is restarting (not just stopping) our unit right now.

    Asked a few times: the job list has been seen empty for a moment.
    """
    for _ in range(tries):
        if _restart_job_listed():
            return True
        time.sleep(pause)
    return False


def _restart_job_listed() -> bool:
    unit = own_unit()
    if unit is None:
        return False
    try:
        result = subprocess.run(["systemctl", "list-jobs", "--no-legend", "--plain"], capture_output=True,
                                text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("cannot ask systemd whether this is a restart: %s", err)
        return False
    found = any(line.split()[1:3] in ([unit, "restart"], [unit, "try-restart"]) for line in result.stdout.splitlines())
    if not found:
        log.info("no restart job for %s (systemctl list-jobs: %r %r)", unit, result.stdout.strip(), result.stderr.strip())
    return found
