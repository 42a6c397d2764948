"""The container paths that lxcfs-py's files are bind-mounted over, derived
from the table of served files (served_files).

Shared by the daemon (`lxcfs-py mounts`), the OCI runtime wrapper and the
Ansible module (plugins/module_utils/_lxcfs_mounts.py is a link to this file,
and module_utils/served_files.py one to the table, hence the relative import),
so it imports nothing else and runs on any Python 3.
"""

from .served_files import PASSTHROUGH_DIRS, SERVED_FILES

DEFAULT_MOUNTPOINT = "/var/lib/lxcfs"


def bound_paths():
    """Paths under the mount that are bound, in order: every passthrough directory whole (its
    virtual files, e.g. cpu/online, come with it) and every served file outside them."""
    files = [path for path in SERVED_FILES if not any(path.startswith(d + "/") for d in PASSTHROUGH_DIRS)]
    return sorted(files) + sorted(PASSTHROUGH_DIRS)


def targets():
    """Paths inside the container, e.g. '/proc/meminfo'."""
    return ["/" + path for path in bound_paths()]


def bind_mounts(mountpoint=DEFAULT_MOUNTPOINT):
    """(host source, container target) pairs for a daemon mounted at `mountpoint`."""
    mountpoint = mountpoint.rstrip("/")
    return [(mountpoint + target, target) for target in targets()]
