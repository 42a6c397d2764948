"""Real cgroup v1 memory cgroups and pid namespaces for tests that need no Docker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager

CGROUP_ROOT = "/sys/fs/cgroup"
MEMORY_ROOT = f"{CGROUP_ROOT}/memory"


@contextmanager
def nested_cgroups(controller: str, *levels: dict[str, str]):
    """Nested v1 cgroups /lxcfs-py-test-<id>/c1/c2... of `controller`, one per level, each level's files
    written as given. Yields the innermost cgroup's path (relative to the hierarchy root)."""
    root = f"{CGROUP_ROOT}/{controller}"
    path = f"/lxcfs-py-test-{uuid.uuid4().hex[:8]}"
    created = []
    try:
        for depth, files in enumerate(levels):
            if depth:
                path = f"{path}/c{depth}"
            os.mkdir(root + path)
            created.append(path)
            for name, value in files.items():
                with open(f"{root}{path}/{name}", "w") as f:
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


def run_in_container_like(cgroup: str, code: str, timeout: float = 60, controller: str = "memory") -> str:
    """Run Python `code` as pid 1 of a new pid namespace inside `controller` cgroup `cgroup`.

    That is what lxcfs-py keys its view on, so no Docker is needed.
    """

    def join():
        with open(f"{CGROUP_ROOT}/{controller}{cgroup}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))

    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        preexec_fn=join, capture_output=True, text=True, timeout=timeout,
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
