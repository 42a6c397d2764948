"""Heal containers whose bind mounts point at an earlier, dead lxcfs-py mount.

When the daemon dies, every container's /proc/meminfo (and the rest) is a
bind of the dead FUSE connection and fails with ENOTCONN until the container
restarts. A new daemon can re-bind each such file from its fresh mount: clone
the file's mount with open_tree(OPEN_TREE_CLONE) here, then in a forked,
single-threaded child enter the container's mount namespace, detach the
stale bind and move the clone onto the same path. Nothing in the container
needs shared mount propagation, and the container keeps running.

A bind is touched only when it is of a mount recorded for this mountpoint
(device and unique source, see heal_records) and, looked up through the
container's own root, really is dead (ENOTCONN) and is that very mount (mount
id): the kernel reuses device numbers, so another daemon's live mount may
carry a recorded one.
"""

from __future__ import annotations

import os
import posixpath
import select
from dataclasses import dataclass

from lxcfs_py import heal_records, kernel_mounts
from lxcfs_py.fsread import read_text


@dataclass(frozen=True)
class Namespace:
    """A container's mount namespace and root, opened at scan time: a pid reused
    later cannot send the heal into another process's namespace."""

    pid: int  # the process scanned (for people: it may be gone by now)
    ns_fd: int
    root_fd: int
    container: str  # a name for people: the process's cgroup

    def close(self) -> None:
        os.close(self.ns_fd)
        os.close(self.root_fd)


@dataclass(frozen=True)
class StaleBind:
    namespace: Namespace
    mount_id: int  # the bind's id in the container's mountinfo
    target: str  # the path inside the container, e.g. /proc/meminfo
    fs_path: str  # the path inside our tree, e.g. /proc/meminfo

    @property
    def pid(self) -> int:
        return self.namespace.pid

    @property
    def container(self) -> str:
        return self.namespace.container


def _container_name(proc_root: str, pid: int) -> str:
    try:
        for line in read_text(f"{proc_root}/{pid}/cgroup").splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[1] in ("memory", ""):
                return parts[2]
    except OSError:
        pass
    return "?"


def candidates(mounts: list[dict], earlier: set[tuple[str, str]]) -> list[dict]:
    """The visible binds (the last mount at each path) of the `earlier` mounts."""
    top = {m["target"]: m for m in mounts}
    return [m for m in top.values() if kernel_mounts.is_ours(m) and heal_records.identity(m) in earlier]


def _open_namespace(proc_root: str, pid: int) -> tuple[Namespace, list[dict]] | None:
    """pid's namespace, root and mounts, or None if it exited meanwhile (the pid may be another's now)."""
    pidfd = os.pidfd_open(pid)
    try:
        ns_fd = os.open(f"{proc_root}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            root_fd = kernel_mounts.open_root(pid, proc_root)
        except OSError:
            os.close(ns_fd)
            raise
        namespace = Namespace(pid, ns_fd, root_fd, _container_name(proc_root, pid))
        try:
            mounts = kernel_mounts.read_mountinfo(pid, proc_root)
        except OSError:
            namespace.close()
            raise
        # the pidfd turns readable when the process exits: still running, it was the one behind /proc/<pid>
        if select.select([pidfd], [], [], 0)[0]:
            namespace.close()
            return None
        return namespace, mounts
    finally:
        os.close(pidfd)


def verified_dead(namespace: Namespace, mount_id: int, target: str) -> bool:
    """`target`, looked up in the container's root (its symlinks stay inside), is the
    mount `mount_id` and its daemon is gone."""
    try:
        fd = kernel_mounts.open_in_root(namespace.root_fd, target, os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return kernel_mounts.fd_mount_id(fd) == mount_id and kernel_mounts.is_dead(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def _other_namespaces(proc_root: str):
    """(pid, mounts) of one process in each mount namespace but ours."""
    seen = {os.readlink(f"{proc_root}/self/ns/mnt")}
    for name in sorted(os.listdir(proc_root), key=lambda n: int(n) if n.isdigit() else 0):
        if not name.isdigit():
            continue
        try:
            ns = os.readlink(f"{proc_root}/{name}/ns/mnt")
            if ns in seen:
                continue
            seen.add(ns)
            mounts = kernel_mounts.read_mountinfo(int(name), proc_root)
        except OSError:
            continue  # exited, or a kernel thread
        yield int(name), mounts


def _bound(mounts: list[dict], entries: set[tuple[str, str]], mountpoint: str | None = None) -> set[tuple[str, str]]:
    """Which of `entries` are mounted (bound) in `mounts`, leaving out the mount at `mountpoint`."""
    ours = [m for m in mounts if kernel_mounts.is_ours(m) and m["target"] != mountpoint]
    return {heal_records.identity(m) for m in ours} & entries


def find_stale(proc_root: str, mountpoint: str, record_dir: str = heal_records.RECORD_DIR,
               prune: bool = False) -> list[StaleBind]:
    """Containers' dead binds of earlier mounts at `mountpoint`, one mount namespace at a time.
    Close them with release(). With `prune`, forget the earlier mounts no longer bound anywhere."""
    live = kernel_mounts.live_mount(mountpoint, proc_root)
    earlier = set(heal_records.recorded(mountpoint, record_dir)) - ({heal_records.identity(live)} if live else set())
    if not earlier:
        return []
    bound = _bound(kernel_mounts.read_mountinfo("self", proc_root), earlier, mountpoint)
    stale = []
    for pid, mounts in _other_namespaces(proc_root):
        bound |= _bound(mounts, earlier)
        if not candidates(mounts, earlier):
            continue
        try:
            opened = _open_namespace(proc_root, pid)
        except OSError:
            continue
        if opened is None:
            continue
        namespace, mounts = opened
        found = [StaleBind(namespace, m["id"], m["target"], m["root"]) for m in candidates(mounts, earlier)
                 if verified_dead(namespace, m["id"], m["target"])]
        if found:
            stale += found
        else:
            namespace.close()
    if prune and earlier - bound:
        heal_records.remove(mountpoint, earlier - bound, record_dir)
    return stale


def forget_on_unmount(proc_root: str, mountpoint: str, log, record_dir: str = heal_records.RECORD_DIR) -> None:
    """Before a clean unmount: drop this mount's record unless containers still bind it
    (they will need healing by a successor). Never raises."""
    try:
        live = kernel_mounts.live_mount(mountpoint, proc_root)
        if live is None:
            return
        entry = {heal_records.identity(live)}
        if _bound(kernel_mounts.read_mountinfo("self", proc_root), entry, mountpoint) or any(
                _bound(mounts, entry) for _, mounts in _other_namespaces(proc_root)):
            return
        heal_records.remove(mountpoint, entry, record_dir)
    except OSError as err:
        log.warning("cannot remove this mount from the heal records (%s): %s", record_dir, err)


def release(stale: list[StaleBind]) -> None:
    for namespace in {s.namespace for s in stale}:
        namespace.close()


def _replace_in_namespace(stale: StaleBind, clone_fd: int) -> None:
    """In a forked child: enter the namespace, detach the dead bind, attach the clone."""
    parent, name = posixpath.split(stale.target)
    dir_fd = kernel_mounts.open_in_root(stale.namespace.root_fd, parent, os.O_PATH | os.O_DIRECTORY)
    try:
        _in_child(stale.namespace.ns_fd, dir_fd, name, clone_fd)
    finally:
        os.close(dir_fd)


def _in_child(ns_fd: int, dir_fd: int, name: str, clone_fd: int) -> None:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # single-threaded here, as setns(CLONE_NEWNS) requires
        try:
            os.close(read_end)
            kernel_mounts.enter_mount_namespace(ns_fd)
            os.fchdir(dir_fd)
            kernel_mounts.unmount_here(name)
            kernel_mounts.attach(clone_fd, dir_fd, name)
            os._exit(0)
        except BaseException as err:  # noqa: BLE001 - report, never return into the parent's code
            os.write(write_end, str(err).encode()[:500])
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        message = report.read().decode()
    _, status = os.waitpid(child, 0)
    if status != 0:
        raise OSError(message or f"helper exited with status {status}")


def heal(stale: StaleBind, mountpoint: str) -> bool:
    """Re-bind one dead bind from the live mount; False when it is no longer the dead bind scanned."""
    if not verified_dead(stale.namespace, stale.mount_id, stale.target):
        return False
    clone_fd = kernel_mounts.clone_read_only(mountpoint.rstrip("/") + stale.fs_path)
    try:
        _replace_in_namespace(stale, clone_fd)
    finally:
        os.close(clone_fd)
    return True


def remount(mountpoint: str, dry_run: bool = False, proc_root: str = "/proc", out=print,
            record_dir: str = heal_records.RECORD_DIR) -> int:
    """Heal every stale bind; print one line each. Returns how many could not be healed."""
    try:
        found = find_stale(proc_root, mountpoint, record_dir, prune=not dry_run)
    except heal_records.RecordDirError as err:
        out(f"not healing: {err}")
        return 1
    failures = 0
    try:
        for stale in found:
            where = f"pid {stale.pid} ({stale.container}): {stale.target}"
            if dry_run:
                out(f"{where}: stale, would re-bind from {mountpoint}{stale.fs_path}")
                continue
            try:
                healed = heal(stale, mountpoint)
            except OSError as err:
                failures += 1
                out(f"{where}: not healed: {err}")
            else:
                out(f"{where}: healed" if healed else f"{where}: changed since the scan, left alone")
    finally:
        release(found)
    return failures
