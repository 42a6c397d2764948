"""What the kernel says and does about mounts, in one place: mountinfo, the
"is this mount live?" probe, and the libc mount calls (umount2, open_tree,
move_mount, mount_setattr, setns, openat2, statx).

Used by the daemon, remount, fsread, the OCI runtime wrapper and the Ansible
modules (plugins/module_utils/_kernel_mounts.py is a link to this file), so it
imports only the standard library and runs on any Python 3.
"""

import binascii
import ctypes
import errno
import os
import stat
import time

FSTYPE = "fuse.lxcfs"
# Our mounts' source in mountinfo (the fsname= option): FSNAME:<token>, unique
# per mount and shown by every bind of it, so a mount is known by more than
# its device number, which the kernel reuses. Plain FSNAME: before tokens.
FSNAME = "lxcfs-py"

# syscall numbers of the generic table (x86-64 and arm64 share these)
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7FF
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
CLONE_NEWNS = 0x00020000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result, what):
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))
    return result


# --- mountinfo -------------------------------------------------------------------


def new_fsname():
    """The source for a fresh mount: ours, and told apart from every other mount."""
    return "%s:%s" % (FSNAME, binascii.hexlify(os.urandom(8)).decode())


def is_ours(mount):
    """An lxcfs-py mount (or bind of one), by fstype and source prefix."""
    source = mount["source"]
    return mount["fstype"] == FSTYPE and (source == FSNAME or source.startswith(FSNAME + ":"))


def parse_mountinfo(text):
    """proc(5) mountinfo lines as dicts: id, device, root, target, fstype, source."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append({"id": int(fields[0]), "device": fields[2], "root": _unescape(fields[3]),
                       "target": _unescape(fields[4]), "fstype": tail[0], "source": _unescape(tail[1])})
    return mounts


def _unescape(field):
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def read_mountinfo(pid="self", proc_root="/proc"):
    with open("%s/%s/mountinfo" % (proc_root, pid), "rb") as f:
        return parse_mountinfo(f.read().decode("utf-8", "surrogateescape"))


def mounted_devices(types):
    """st_dev of every mount (in our namespace) whose fstype is one of `types`."""
    devices = set()
    for mount in read_mountinfo():
        if mount["fstype"] in types:
            major, minor = mount["device"].split(":")
            devices.add(os.makedev(int(major), int(minor)))
    return devices


def is_mounted(mountpoint):
    """From the mount table, never touching the mount (its daemon may not answer)."""
    return any(m["target"] == mountpoint for m in read_mountinfo())


def live_mount(mountpoint, proc_root="/proc"):
    """Our mount in use at `mountpoint` (the last one mounted there), or None."""
    ours = [m for m in read_mountinfo("self", proc_root) if m["target"] == mountpoint and is_ours(m)]
    return ours[-1] if ours else None


# --- the probe -------------------------------------------------------------------


# A request taken by a serving process that died before answering fails with ECONNABORTED
# (lxcfs-py's worker processes, pool.py); the connection may still be served, or about to die
# with its last process: ask again, a moment later, before deciding.
ASKS = 20
ASK_AGAIN_AFTER = 0.05


def mount_state(mountpoint):
    """'free', 'live' or 'stale' (a dead daemon's FUSE mount); other errors raise OSError."""
    for _ask in range(ASKS - 1):
        try:
            return probe(mountpoint)
        except ConnectionAbortedError:
            time.sleep(ASK_AGAIN_AFTER)
    return probe(mountpoint)


def probe(mountpoint):
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


def is_dead(fd):
    """The file behind `fd` is on a FUSE connection whose daemon is gone (ENOTCONN).

    statx with AT_STATX_FORCE_SYNC asks the filesystem, never the attribute cache
    (and FUSE answers a request for no fields without asking: ask for some).
    """
    buf = ctypes.create_string_buffer(256)
    for _ask in range(ASKS):
        if _libc.statx(fd, b"", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf) == 0:
            return False
        if ctypes.get_errno() != errno.ECONNABORTED:
            break
        time.sleep(ASK_AGAIN_AFTER)
    return ctypes.get_errno() == errno.ENOTCONN


def fd_mount_id(fd):
    """The mount id (mountinfo's first field) of the mount `fd` is on."""
    with open("/proc/self/fdinfo/%d" % fd) as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOSYS, "no mnt_id in /proc/self/fdinfo/%d" % fd)


# --- paths inside a container's root -----------------------------------------------


def openat2(dir_fd, path, flags, resolve):
    how = _OpenHow(flags=flags | os.O_CLOEXEC, mode=0, resolve=resolve)
    return _check(_libc.syscall(SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how)),
                  "openat2 %s" % path)


def open_in_root(root_fd, path, flags):
    """Open `path` as the process whose root is `root_fd` sees it: its absolute
    symlinks and '..' stay inside that root, and /proc magic links are refused."""
    try:
        return openat2(root_fd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        # seccomp filters that cannot inspect openat2's arguments refuse it with ENOSYS
        # (systemd's RestrictSUIDSGID=, older Docker profiles): walk the path ourselves
        if err.errno != errno.ENOSYS:
            raise
    return _walk_in_root(root_fd, path, flags)


def _walk_in_root(root_fd, path, flags):
    """RESOLVE_IN_ROOT by hand, and stricter: no symlink and no '..' on the way (ELOOP,
    ENOTDIR, EXDEV); a final symlink is opened itself (O_NOFOLLOW), never followed."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "'..' in %s" % path)
    current = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    try:
        for part in parts[:-1]:
            step = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = step
        return os.open(parts[-1] if parts else ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
    finally:
        os.close(current)


def open_root(pid, proc_root="/proc"):
    """An O_PATH fd of process `pid`'s root directory."""
    return os.open("%s/%d/root" % (proc_root, pid), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def read_regular_in_root(pid, path, limit):
    """Up to `limit` bytes of `path` inside process `pid`'s root, or None when it is
    not a regular file (a FIFO, a device: never opened for reading). Never follows
    the process's symlinks out of its root; raises OSError (e.g. ENOTCONN)."""
    root_fd = open_root(pid)
    try:
        path_fd = open_in_root(root_fd, path, os.O_PATH | os.O_NOFOLLOW)
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(path_fd).st_mode):
            return None
        fd = os.open("/proc/self/fd/%d" % path_fd, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(path_fd)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


# --- changing mounts ----------------------------------------------------------------


def lazy_unmount(path):
    _check(_libc.umount2(os.fsencode(path), MNT_DETACH), "umount %s" % path)


def unmount_here(name):
    """Detach the mount at `name` in the current directory, without following a symlink."""
    _check(_libc.umount2(os.fsencode(name), MNT_DETACH | UMOUNT_NOFOLLOW), "umount %s" % name)


def clone_read_only(path):
    """A detached, read-only copy of the mount at `path` (not attached anywhere yet)."""
    fd = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), OPEN_TREE_CLONE | os.O_CLOEXEC),
                "open_tree %s" % path)
    attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    # best effort: the files refuse writes anyway
    _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr))
    return fd


def attach(clone_fd, dir_fd, name):
    """Attach a detached mount at `name` in directory `dir_fd` (a final symlink is not followed)."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, clone_fd, b"", dir_fd, os.fsencode(name), MOVE_MOUNT_F_EMPTY_PATH),
           "move_mount %s" % name)


def enter_mount_namespace(ns_fd):
    """setns(CLONE_NEWNS): only in a single-threaded process (a forked child)."""
    _check(_libc.setns(ns_fd, CLONE_NEWNS), "setns")
