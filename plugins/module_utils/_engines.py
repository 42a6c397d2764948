# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE)
"""Container engines behind one small interface, and host-side lxcfs checks.

An engine inspects, creates, starts, stops and removes containers by name:

- DockerEngine talks to dockerd through the Docker SDK for Python (Engine API,
  SDK 5.x and 7.x) and bind-mounts every lxcfs file itself (read-only).
- PouchEngine runs the ``pouch`` CLI with ``--enableLxcfs``; pouchd adds the
  lxcfs bind mounts (it has to run with ``--enable-lxcfs``).

Both return inspect data in the Engine API shape (Config, HostConfig, State,
Mounts), which _container_spec.current_spec() reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import traceback

from ansible_collections.lxcfs_py.fleet.plugins.module_utils._container_spec import CFS_PERIOD, NANO
from ansible_collections.lxcfs_py.fleet.plugins.module_utils._kernel_mounts import (
    mount_state,
    read_regular_in_root,
)

try:
    import docker
    from docker.errors import DockerException, NotFound
    from docker.utils import parse_repository_tag

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the target host
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class NotFound(DockerException):
        pass


class EngineError(Exception):
    """An engine call failed; the message is meant for the user."""


# --- host-side checks ----------------------------------------------------------


def lxcfs_mount_problem(mountpoint, required_files):
    """None when `mountpoint` is a live lxcfs mount serving `required_files`
    (host paths), else a one-line reason."""
    meminfo = os.path.join(mountpoint, "proc", "meminfo")
    try:
        state = mount_state(mountpoint)
        if state == "free":
            if not os.path.lexists(mountpoint):
                return "%s does not exist (no lxcfs-py daemon is mounted there)" % mountpoint
            return "%s is not a mount point (no lxcfs-py daemon is mounted there)" % mountpoint
        if state == "stale":
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        # a read, not only a listing: the file must be served
        with open(meminfo, "rb") as f:
            f.read(64)
    except OSError as err:
        if err.errno == errno.ENOTCONN:
            return ("%s is a stale FUSE mount of a dead lxcfs-py daemon (reading %s: %s)"
                    % (mountpoint, meminfo, os.strerror(err.errno)))
        return "cannot read %s: %s" % (err.filename or meminfo, os.strerror(err.errno))
    missing = [path for path in required_files if not os.path.exists(path)]
    if missing:
        return ("the filesystem mounted at %s does not serve %s (is it lxcfs-py or lxcfs?)"
                % (mountpoint, ", ".join(missing)))
    return None


def lxcfs_view(pid):
    """'stale' when the container with init `pid` sees a dead FUSE connection
    through its /proc/meminfo bind mount (its daemon was restarted after the
    container started), 'live' when the read works, None when unknown.

    Looked up inside the container's own root (its symlinks cannot lead to a
    host file) and read only when it is a regular file (a FIFO cannot hang us)."""
    if not pid:
        return None
    try:
        data = read_regular_in_root(pid, "/proc/meminfo", 64)
    except OSError as err:
        return "stale" if err.errno == errno.ENOTCONN else None
    return None if data is None else "live"


def summarize(inspect):
    """The module's `container` return value from inspect data."""
    if not inspect:
        return {}
    state = inspect.get("State") or {}
    mounts = []
    for mount in inspect.get("Mounts") or []:
        mounts.append({
            "source": mount.get("Source"),
            "destination": mount.get("Destination"),
            "read_only": not mount.get("RW", True),
        })
    return {
        "id": inspect.get("Id") or inspect.get("ID"),
        "name": (inspect.get("Name") or "").lstrip("/"),
        "image": (inspect.get("Config") or {}).get("Image"),
        "status": state.get("Status") or ("running" if state.get("Running") else "stopped"),
        "pid": state.get("Pid") or None,
        "mounts": mounts,
    }


def cpu_quota(cpus):
    """CFS quota (microseconds per CFS_PERIOD) for a number of CPUs."""
    return int(round(cpus * CFS_PERIOD))


# --- engines -------------------------------------------------------------------


class Engine(object):
    """What the module needs from a container engine."""

    name = None
    # the engine sets the lxcfs bind mounts up itself (pouch) or we do (docker)
    adds_lxcfs_mounts = False
    # local_image_id() returns ids comparable with the container's "Image"
    compares_image_id = False
    # containers run on this host, so /proc/<pid> is theirs
    local = True

    def inspect(self, name):
        """Inspect data of container `name`, or None when there is none."""
        raise NotImplementedError

    def local_image_id(self, image):
        """The image's id when it is present locally, else None."""
        raise NotImplementedError

    def pull(self, image):
        raise NotImplementedError

    def create(self, name, image, spec, binds):
        """Create (not start) a container from a desired spec; `binds` are
        'source:target:ro' strings."""
        raise NotImplementedError

    def start(self, name):
        raise NotImplementedError

    def stop(self, name):
        raise NotImplementedError

    def remove(self, name):
        raise NotImplementedError


class DockerEngine(Engine):
    name = "docker"
    compares_image_id = True

    def __init__(self, docker_host=None, client=None):
        if client is None:
            if not HAS_DOCKER:
                raise EngineError("the Docker SDK for Python is missing")
            try:
                if docker_host:
                    client = docker.DockerClient(base_url=docker_host, version="auto")
                else:
                    client = docker.from_env(version="auto")
            except DockerException as err:
                raise EngineError("cannot connect to dockerd at %s: %s"
                                  % (docker_host or os.environ.get("DOCKER_HOST") or "the default socket", err))
        self.api = client.api
        self.local = not docker_host or docker_host.startswith("unix://")

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DockerException as err:
            raise EngineError("docker: %s failed: %s" % (what, err))

    def inspect(self, name):
        try:
            return self.api.inspect_container(name)
        except NotFound:
            return None
        except DockerException as err:
            raise EngineError("docker: inspecting container %s failed: %s" % (name, err))

    def local_image_id(self, image):
        try:
            return self.api.inspect_image(image)["Id"]
        except NotFound:
            return None
        except DockerException as err:
            raise EngineError("docker: inspecting image %s failed: %s" % (image, err))

    def pull(self, image):
        repository, tag = parse_repository_tag(image)
        self._call("pulling %s" % image, self.api.pull, repository, tag=tag or "latest")

    def create(self, name, image, spec, binds):
        restart = spec.get("restart_policy")
        host_config = self.api.create_host_config(
            binds=list(binds),
            mem_limit=spec.get("memory"),
            memswap_limit=spec.get("memory_swap"),
            nano_cpus=int(round(spec["cpus"] * NANO)) if spec.get("cpus") else None,
            cpuset_cpus=spec.get("cpuset_cpus"),
            restart_policy={"Name": restart} if restart and restart != "no" else None,
            network_mode=spec.get("network_mode"),
        )
        environment = ["%s=%s" % item for item in sorted((spec.get("env") or {}).items())]
        created = self._call(
            "creating container %s" % name, self.api.create_container,
            image, command=spec.get("command"), name=name, detach=True,
            environment=environment or None, labels=spec.get("labels") or None,
            host_config=host_config,
        )
        return created.get("Id")

    def start(self, name):
        self._call("starting container %s" % name, self.api.start, name)

    def stop(self, name):
        self._call("stopping container %s" % name, self.api.stop, name)

    def remove(self, name):
        self._call("removing container %s" % name, self.api.remove_container, name, force=True)


class PouchEngine(Engine):
    """pouch CLI; `run(argv)` returns (rc, stdout, stderr) like
    AnsibleModule.run_command."""

    name = "pouch"
    adds_lxcfs_mounts = True

    def __init__(self, run, executable="pouch", host=None):
        self.run = run
        self.base = [executable] + (["-H", host] if host else [])
        self.local = not host or host.startswith("unix://")

    def _pouch(self, what, *args):
        rc, out, err = self.run(self.base + list(args))
        if rc != 0:
            raise EngineError("pouch: %s failed (rc=%d): %s" % (what, rc, (err or out).strip()))
        return out

    @staticmethod
    def _not_found(out, err):
        text = ("%s %s" % (out, err)).lower()
        return "not found" in text or "no such" in text

    def inspect(self, name):
        rc, out, err = self.run(self.base + ["inspect", name])
        if rc != 0:
            if self._not_found(out, err):
                return None
            raise EngineError("pouch: inspecting container %s failed (rc=%d): %s" % (name, rc, (err or out).strip()))
        return parse_pouch_inspect(out)

    def local_image_id(self, image):
        rc, out, err = self.run(self.base + ["image", "inspect", image])
        if rc != 0:
            if self._not_found(out, err):
                return None
            raise EngineError("pouch: inspecting image %s failed (rc=%d): %s" % (image, rc, (err or out).strip()))
        data = parse_pouch_inspect(out) or {}
        return data.get("Id") or data.get("ID") or "present"

    def pull(self, image):
        self._pouch("pulling %s" % image, "pull", image)

    def create(self, name, image, spec, binds):
        out = self._pouch("creating container %s" % name, *pouch_create_args(name, image, spec))
        return out.strip().splitlines()[-1] if out.strip() else None

    def start(self, name):
        self._pouch("starting container %s" % name, "start", name)

    def stop(self, name):
        self._pouch("stopping container %s" % name, "stop", name)

    def remove(self, name):
        self._pouch("removing container %s" % name, "rm", "-f", name)


def parse_pouch_inspect(text):
    """One object from ``pouch inspect`` output: a JSON list (newer pouch,
    like docker) or a bare object (older pouch)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise EngineError("pouch inspect printed something that is not JSON: %r" % text[:200])
    if isinstance(data, list):
        return data[0] if data else None
    return data


def pouch_create_args(name, image, spec):
    """``pouch create`` arguments (without the executable) for a desired spec."""
    # pouch's own default oom_score_adj is -500, which runc cannot set without
    # CAP_SYS_RESOURCE (the container then fails to start); 0 is docker's default
    args = ["create", "--name", name, "--enableLxcfs", "--oom-score-adj", "0"]
    if spec.get("memory"):
        args += ["--memory", str(spec["memory"])]
    if spec.get("memory_swap"):
        args += ["--memory-swap", str(spec["memory_swap"])]
    if spec.get("cpus"):
        # this pouch CLI has no --cpus: the same limit as a CFS quota
        args += ["--cpu-period", str(CFS_PERIOD), "--cpu-quota", str(cpu_quota(spec["cpus"]))]
    if spec.get("cpuset_cpus"):
        args += ["--cpuset-cpus", spec["cpuset_cpus"]]
    for key, value in sorted((spec.get("env") or {}).items()):
        args += ["--env", "%s=%s" % (key, value)]
    for key, value in sorted((spec.get("labels") or {}).items()):
        args += ["--label", "%s=%s" % (key, value)]
    if spec.get("restart_policy"):
        args += ["--restart", spec["restart_policy"]]
    if spec.get("network_mode"):
        args += ["--net", spec["network_mode"]]
    args.append(image)
    args += list(spec.get("command") or [])
    return args


def get_engine(engine, docker_host=None, run=None, pouch_executable="pouch"):
    if engine == "pouch":
        return PouchEngine(run, executable=pouch_executable, host=docker_host)
    return DockerEngine(docker_host)
