"""The container paths that lxcfs-py's files are bind-mounted over: the one list.

Shared by the daemon (`lxcfs-py mounts`), the OCI runtime wrapper and the
Ansible module (plugins/module_utils/_lxcfs_mounts.py is a link to this
file), so it imports nothing and runs on any Python 3.
"""

PROC_FILES = ("cpuinfo", "diskstats", "loadavg", "meminfo", "slabinfo", "stat", "swaps", "uptime")
SYS_DIRS = ("sys/devices/system/cpu",)
DEFAULT_MOUNTPOINT = "/var/lib/lxcfs"


def mount_state(mountpoint):
    """'free', 'live' or 'stale' (a dead daemon's FUSE mount); other errors raise OSError."""
    import errno
    import os

    try:
        # os.path.ismount() says False for a dead daemon's mount (its lstat
        # fails with ENOTCONN): stat first, to tell "stale" from "not mounted"
        os.stat(mountpoint)
        if not os.path.ismount(mountpoint):
            return "free"
        # stat may be answered from the kernel's attribute cache; listing the
        # directory always reaches the daemon, so it tells a dead one
        os.listdir(mountpoint)
    except OSError as err:
        if err.errno == errno.ENOTCONN:
            return "stale"
        if err.errno == errno.ENOENT:
            return "free"
        raise
    return "live"


def targets():
    """Paths inside the container, e.g. '/proc/meminfo'."""
    return ["/proc/" + name for name in PROC_FILES] + ["/" + path for path in SYS_DIRS]


def bind_mounts(mountpoint=DEFAULT_MOUNTPOINT):
    """(host source, container target) pairs for a daemon mounted at `mountpoint`."""
    mountpoint = mountpoint.rstrip("/")
    return [(mountpoint + target, target) for target in targets()]
