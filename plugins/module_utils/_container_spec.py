# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE)
"""Desired container spec from module parameters, and its comparison with a
running container's inspect data (Docker Engine API or pouch format).

Pure: no Docker, no files, no Ansible. Every value in a spec is normalized so
that two specs compare with ``==``: sizes in bytes, CPUs as a float derived
from nano-CPUs, cpusets as a canonical "0-2,5" string, commands as lists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex

STATES = ("started", "present", "stopped", "absent")
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
NANO = 10 ** 9
CFS_PERIOD = 100000  # microseconds, docker's and pouch's default

# fields compared for a container's configuration, in report order; a change
# of any of them means the container has to be recreated
CONFIG_FIELDS = (
    "image", "image_id", "command", "memory", "memory_swap", "cpus", "cpuset_cpus",
    "env", "labels", "restart_policy", "network_mode", "lxcfs_mounts", "enable_lxcfs", "lxcfs_view",
)
# env and labels: only the entries given are compared (the image adds others)
SUBSET_FIELDS = ("env", "labels")

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


class SpecError(ValueError):
    """A parameter is invalid; the message says which and why, in one line."""


def parse_size(value, option):
    """Bytes from an int or a string such as '200m', '1g', '512k', '1024', '1.5g'.

    Units are binary (k = 1024), like docker's --memory.
    """
    if isinstance(value, bool):
        raise SpecError("%s: %r is not a size" % (option, value))
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise SpecError(
                "%s: %r is not a valid size; use bytes or a number with a unit b, k, m, g or t "
                "(for example 200m or 1g)" % (option, value)
            )
        number, unit = match.groups()
        size = int(float(number) * _UNITS[unit.lower()])
    if size <= 0:
        raise SpecError("%s must be greater than 0 (got %r)" % (option, value))
    return size


def parse_memory_swap(value):
    """Bytes, or -1 for unlimited swap ('-1' or 'unlimited')."""
    if str(value).strip().lower() in ("-1", "unlimited"):
        return -1
    return parse_size(value, "memory_swap")


def parse_cpus(value):
    """CPUs as the float docker reports (NanoCpus / 1e9); must be > 0."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise SpecError("cpus: %r is not a number of CPUs (for example 0.5 or 2)" % (value,))
    nano = int(round(cpus * NANO))
    if cpus <= 0 or nano <= 0:
        raise SpecError("cpus must be greater than 0 (got %r)" % (value,))
    return nano / NANO


def parse_cpuset(value):
    """Canonical form of a cpuset list: '2,0-1,3' -> '0-3'."""
    text = str(value).replace(" ", "")
    if not _CPUSET.match(text):
        raise SpecError("cpuset_cpus: %r is not a CPU list (for example 0-3 or 0,2)" % (value,))
    cpus = set()
    for part in text.split(","):
        low, _sep, high = part.partition("-")
        low, high = int(low), int(high or low)
        if high < low:
            raise SpecError("cpuset_cpus: range %r runs backwards" % (part,))
        cpus.update(range(low, high + 1))
    return format_cpuset(cpus)


def format_cpuset(cpus):
    ranges = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges)


def parse_command(value):
    """A list of strings from a list or a shell-like string."""
    if isinstance(value, (list, tuple)):
        return [str(arg) for arg in value]
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as err:
            raise SpecError("command: cannot split %r: %s" % (value, err))
    raise SpecError("command must be a list of strings or a string (got %s)" % type(value).__name__)


def normalize_image(name):
    """'busybox' and 'docker.io/library/busybox:latest' are the same image."""
    if not name:
        return name
    if "@" not in name:
        last = name.rsplit("/", 1)[-1]
        if ":" not in last:
            name += ":latest"
    for prefix in ("docker.io/", "index.docker.io/", "registry.hub.docker.com/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("library/"):
        name = name[len("library/"):]
    return name


def _string_dict(value, option):
    if not isinstance(value, dict):
        raise SpecError("%s must be a dictionary" % option)
    result = {}
    for key, item in value.items():
        if item is None:
            raise SpecError("%s: %s has no value" % (option, key))
        if isinstance(item, bool):
            item = "true" if item else "false"
        result[str(key)] = str(item)
    return result


def lxcfs_mount_strings(bind_mounts):
    """['/var/lib/lxcfs/proc/meminfo:/proc/meminfo:ro', ...] from (source, target) pairs."""
    return sorted("%s:%s:ro" % (source, target) for source, target in bind_mounts)


def desired_spec(params, bind_mounts=None, engine="docker"):
    """The fields the container must have, from module parameters.

    Only parameters that were given appear (except the lxcfs mounts, which
    are always wanted). Raises SpecError for invalid values.
    """
    spec = {}
    if params.get("image"):
        spec["image"] = normalize_image(params["image"])
    if params.get("command") is not None:
        spec["command"] = parse_command(params["command"])
    if params.get("memory") is not None:
        spec["memory"] = parse_size(params["memory"], "memory")
    if params.get("memory_swap") is not None:
        if "memory" not in spec:
            raise SpecError("memory_swap needs memory: the swap limit counts memory plus swap")
        spec["memory_swap"] = parse_memory_swap(params["memory_swap"])
        if spec["memory_swap"] != -1 and spec["memory_swap"] < spec["memory"]:
            raise SpecError(
                "memory_swap (%s) must be at least memory (%s): it is memory plus swap, or -1 for unlimited"
                % (params["memory_swap"], params["memory"])
            )
    if params.get("cpus") is not None:
        spec["cpus"] = parse_cpus(params["cpus"])
        if engine == "pouch":
            # pouch gets a CFS quota per 100ms period: microsecond granularity
            spec["cpus"] = int(round(spec["cpus"] * CFS_PERIOD)) * (NANO // CFS_PERIOD) / NANO
            if not spec["cpus"]:
                raise SpecError("cpus must be at least 0.00001 with engine pouch (got %r)" % (params["cpus"],))
    if params.get("cpuset_cpus") is not None:
        spec["cpuset_cpus"] = parse_cpuset(params["cpuset_cpus"])
    if params.get("env") is not None:
        spec["env"] = _string_dict(params["env"], "env")
    if params.get("labels") is not None:
        spec["labels"] = _string_dict(params["labels"], "labels")
    if params.get("restart_policy") is not None:
        if params["restart_policy"] not in RESTART_POLICIES:
            raise SpecError("restart_policy must be one of %s" % ", ".join(RESTART_POLICIES))
        spec["restart_policy"] = params["restart_policy"]
    if params.get("network_mode") is not None:
        spec["network_mode"] = params["network_mode"]
    if engine == "pouch":
        spec["enable_lxcfs"] = True
    else:
        spec["lxcfs_mounts"] = lxcfs_mount_strings(bind_mounts or [])
    return spec


def _key_value_list(entries):
    result = {}
    for entry in entries or []:
        key, sep, value = entry.partition("=")
        result[key] = value if sep else None
    return result


def _cpus_from(host_config):
    nano = host_config.get("NanoCpus") or host_config.get("NanoCPUs") or 0
    if not nano:
        quota = host_config.get("CpuQuota") or 0
        period = host_config.get("CpuPeriod") or 0
        if quota > 0:
            nano = int(round(quota * NANO / (period or CFS_PERIOD)))
    return nano / NANO if nano else None


def current_spec(inspect, lxcfs_targets=()):
    """The compared fields of an existing container, from its inspect data.

    `inspect` is what ``docker inspect`` / the Engine API (or ``pouch
    inspect``) returns for one container; `lxcfs_targets` are the container
    paths of the lxcfs bind mounts, whose mounts are the ones compared.
    """
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    restart = (host.get("RestartPolicy") or {}).get("Name") or "no"
    targets = set(lxcfs_targets)
    mounts = []
    for mount in inspect.get("Mounts") or []:
        if mount.get("Destination") in targets:
            mode = "rw" if mount.get("RW", True) else "ro"
            mounts.append("%s:%s:%s" % (mount.get("Source"), mount.get("Destination"), mode))
    cpuset = host.get("CpusetCpus") or None
    return {
        "image": normalize_image(config.get("Image")),
        "image_id": inspect.get("Image"),
        "command": list(config.get("Cmd") or []),
        "memory": host.get("Memory") or None,
        "memory_swap": host.get("MemorySwap") or None,
        "cpus": _cpus_from(host),
        "cpuset_cpus": parse_cpuset(cpuset) if cpuset else None,
        "env": _key_value_list(config.get("Env")),
        "labels": dict(config.get("Labels") or {}),
        "restart_policy": restart,
        "network_mode": host.get("NetworkMode") or None,
        "lxcfs_mounts": sorted(mounts),
        "enable_lxcfs": bool(host.get("EnableLxcfs")),
    }


def container_state(inspect):
    """'absent', 'started' (running, also paused or restarting) or 'stopped'."""
    if inspect is None:
        return "absent"
    return "started" if (inspect.get("State") or {}).get("Running") else "stopped"


def _compared(field, desired_value, current):
    value = current.get(field)
    if field in SUBSET_FIELDS:
        value = dict((key, (value or {}).get(key)) for key in desired_value)
    return value


def config_differences(desired, current):
    """[{'field', 'before', 'after'}] for every desired field the container lacks."""
    differences = []
    for field in CONFIG_FIELDS:
        if field not in desired:
            continue
        before = _compared(field, desired[field], current)
        if before != desired[field]:
            differences.append({"field": field, "before": before, "after": desired[field]})
    return differences


def plan(state, desired, inspect, current=None):
    """What to do for the wanted `state`: (action, differences).

    action is one of 'none', 'create', 'recreate', 'start', 'stop', 'remove'.
    `current` is current_spec(inspect) (computed by the caller, which may add
    fields such as lxcfs_view). For 'present' a recreated container keeps
    running if it was running; 'stopped' and 'absent' never compare the
    configuration.
    """
    now = container_state(inspect)
    if state == "absent":
        if now == "absent":
            return "none", []
        return "remove", [{"field": "state", "before": now, "after": "absent"}]
    if state == "stopped":
        if now == "started":
            return "stop", [{"field": "state", "before": now, "after": "stopped"}]
        return "none", []
    if now == "absent":
        after = "started" if state == "started" else "stopped"
        return "create", [{"field": "state", "before": "absent", "after": after}]
    differences = config_differences(desired, current)
    if state == "started" and now != "started":
        differences.append({"field": "state", "before": now, "after": "started"})
    if any(d["field"] != "state" for d in differences):
        return "recreate", differences
    if differences:
        return "start", differences
    return "none", []


def diff_dicts(state, desired, current, inspect):
    """Ansible diff: {'before': ..., 'after': ...} over the compared fields."""
    now = container_state(inspect)
    before = {"state": now}
    if inspect is not None and state not in ("absent", "stopped"):
        for field in CONFIG_FIELDS:
            if field in desired:
                before[field] = _compared(field, desired[field], current)
    if state == "absent":
        after = {"state": "absent"}
    elif state == "stopped":
        after = {"state": "stopped" if now != "absent" else "absent"}
    else:
        after = dict((field, desired[field]) for field in CONFIG_FIELDS if field in desired)
        if state == "started" or now == "started":
            after["state"] = "started"
        else:
            after["state"] = "stopped"
    return {"before": before, "after": after}
