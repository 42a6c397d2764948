"""The container paths that lxcfs-py's files are bind-mounted over: the one list.

Shared by the daemon (`lxcfs-py mounts`), the OCI runtime wrapper and the
Ansible module (plugins/module_utils/_lxcfs_mounts.py is a link to this
file), so it imports nothing and runs on any Python 3.
"""

PROC_FILES = ("cpuinfo", "diskstats", "loadavg", "meminfo", "slabinfo", "stat", "swaps", "uptime")
SYS_DIRS = ("sys/devices/system/cpu",)
DEFAULT_MOUNTPOINT = "/var/lib/lxcfs"


def targets():
    """Paths inside the container, e.g. '/proc/meminfo'."""
    return ["/proc/" + name for name in PROC_FILES] + ["/" + path for path in SYS_DIRS]


def bind_mounts(mountpoint=DEFAULT_MOUNTPOINT):
    """(host source, container target) pairs for a daemon mounted at `mountpoint`."""
    mountpoint = mountpoint.rstrip("/")
    return [(mountpoint + target, target) for target in targets()]
