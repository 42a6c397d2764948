"""Real cgroups (v1 or v2, whichever the kernel runs) and pid namespaces for tests that need no Docker.

Tests name limits the v1 way ("memory.limit_in_bytes", "cpu.cfs_quota_us", ...); on a v2 kernel they are
written as their v2 equivalents (memory.max, memory.swap.max, cpu.max, ...) in one unified hierarchy. A v2
name given as such is written as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager

from tests.live.daemons import scaled

CGROUP_ROOT = "/sys/fs/cgroup"
MEMORY_ROOT = f"{CGROUP_ROOT}/memory"


def unified() -> bool:
    """cgroup v2: the unified hierarchy at the root with controllers in it (a hybrid host's is empty)."""
    try:
        with open(f"{CGROUP_ROOT}/cgroup.controllers") as f:
            return bool(f.read().split())
    except FileNotFoundError:
        return False


V2 = unified()


def hierarchy(controller: str) -> str:
    """Where `controller`'s cgroups live: its own v1 hierarchy, or the one v2 hierarchy."""
    return CGROUP_ROOT if V2 else f"{CGROUP_ROOT}/{controller}"


def procs_file(cgroup: str, controller: str = "memory") -> str:
    """The cgroup.procs a process writes its pid to, to join `cgroup`."""
    return f"{hierarchy(controller)}{cgroup}/cgroup.procs"


def v2_files(files: dict[str, str]) -> dict[str, str]:
    """v1 limit files as their v2 equivalents. v1's memsw limit is memory plus swap, v2's swap.max swap
    alone; v1 sets a CFS quota in two files, v2 in one "quota period" line."""
    files = dict(files)
    out = {}
    if "memory.limit_in_bytes" in files:
        out["memory.max"] = files.pop("memory.limit_in_bytes")
    if "memory.memsw.limit_in_bytes" in files:
        out["memory.swap.max"] = str(int(files.pop("memory.memsw.limit_in_bytes")) - int(out["memory.max"]))
    if "cpu.cfs_quota_us" in files or "cpu.cfs_period_us" in files:
        quota = files.pop("cpu.cfs_quota_us", "-1")
        period = files.pop("cpu.cfs_period_us", "100000")
        out["cpu.max"] = f"{'max' if int(quota) < 0 else quota} {period}"
    files.pop("cpuset.mems", None)  # v2 inherits the parent's memory nodes
    return {**out, **files}


def _enable_controllers(path: str) -> None:
    """v2: a cgroup's children get only the controllers enabled in its cgroup.subtree_control."""
    with open(f"{path}/cgroup.controllers") as f:
        available = f.read().split()
    with open(f"{path}/cgroup.subtree_control", "w") as f:
        f.write(" ".join(f"+{name}" for name in available))


@contextmanager
def nested_cgroups(controller: str, *levels: dict[str, str], names: tuple[str, ...] = ()):
    """Nested cgroups /lxcfs-py-test-<id>/c1/c2... of `controller` (v2: of every controller), one per
    level, each level's files written as given. `names` replaces the default names (e.g. a systemd-style
    "x.slice", "y.scope"). Yields the innermost cgroup's path (relative to the hierarchy root)."""
    root = hierarchy(controller)
    names = names or (f"lxcfs-py-test-{uuid.uuid4().hex[:8]}", *(f"c{depth}" for depth in range(1, len(levels))))
    path = ""
    created = []
    try:
        for name, files in zip(names, levels):
            if V2 and created:
                _enable_controllers(root + path)
            path = f"{path}/{name}"
            os.mkdir(root + path)
            created.append(path)
            for file, value in (v2_files(files) if V2 else files).items():
                with open(f"{root}{path}/{file}", "w") as f:
                    f.write(value)
        yield path
    finally:
        for directory in reversed(created):
            _remove(root, directory)


def memory_cgroups(*limits: int | None):
    """Nested memory cgroups, one per limit (None: no limit); yields the innermost one's path."""
    return nested_cgroups("memory", *({} if limit is None else {"memory.limit_in_bytes": str(limit)}
                                      for limit in limits))


def _remove(root: str, directory: str) -> None:
    """Move stragglers to the root, then remove the (empty) cgroup."""
    try:
        for pid in open(f"{root}{directory}/cgroup.procs").read().split():
            try:
                with open(f"{root}/cgroup.procs", "w") as f:
                    f.write(pid)
            except OSError:
                pass
        os.rmdir(root + directory)
    except FileNotFoundError:
        pass


def join(cgroup: str, controller: str = "memory") -> None:
    """Move the calling process into `cgroup` (a preexec_fn for container-like children)."""
    with open(procs_file(cgroup, controller), "w") as f:
        f.write(str(os.getpid()))


def run_in_container_like(cgroup: str, code: str, timeout: float = 60, controller: str = "memory") -> str:
    """Run Python `code` as pid 1 of a new pid namespace inside `controller` cgroup `cgroup`.

    That is what lxcfs-py keys its view on, so no Docker is needed. `timeout` is scaled.
    """
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        preexec_fn=lambda: join(cgroup, controller), capture_output=True, text=True, timeout=scaled(timeout),
    )
    if result.returncode != 0:
        raise RuntimeError(f"namespace process failed ({result.returncode}): {result.stderr}")
    return result.stdout


@contextmanager
def namespace_process(setup: str = "true", root: str | None = None):
    """A container-like process: its own mount and pid namespace (`unshare -m -p -f`),
    where the shell command `setup` runs first (bind mounts, say), and then, with
    `root`, it chroots there. Yields the pid of a process in that namespace."""
    chroot = f"os.chroot({root!r}); os.chdir('/'); " if root else ""
    code = (f"import os, subprocess, time; subprocess.run(['sh', '-ec', {setup!r}], check=True); {chroot}"
            "print('ready', flush=True); time.sleep(600)")
    process = subprocess.Popen(["unshare", "-m", "-p", "-f", "--kill-child", sys.executable, "-c", code],
                               stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout.readline() != "ready\n":
            raise RuntimeError(f"namespace process failed to start (setup: {setup})")
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as f:
            yield int(f.read().split()[0])  # pid 1 of the new pid namespace
    finally:
        process.kill()
        process.wait()
