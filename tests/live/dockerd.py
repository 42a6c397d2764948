"""This machine's dockerd: its runtimes, reloading it (SIGHUP, as the role does), a runtime registered for one test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

from tests.live import daemons
from tests.live.daemons import scaled

DAEMON_JSON = "/etc/docker/daemon.json"
DOCKER_PIDFILE = "/var/run/docker.pid"


def docker_runtimes() -> tuple[dict, str]:
    out = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}"],
                         capture_output=True, text=True, check=True, timeout=scaled(60)).stdout.strip()
    runtimes, default = out.rsplit("|", 1)
    return json.loads(runtimes), default


def reload_dockerd(ready=lambda runtimes, default: True, timeout: float = 30) -> None:
    """SIGHUP the pidfile's dockerd (no systemd here) and wait for `ready(runtimes, default)`."""
    with open(DOCKER_PIDFILE) as f:
        pid = int(f.read().strip())
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "dockerd"
    os.kill(pid, signal.SIGHUP)
    reloaded = daemons.wait_for(lambda: ready(*docker_runtimes()), timeout, 0.3)
    assert reloaded, f"dockerd did not reload: {docker_runtimes()}"


def _load(raw: bytes | None) -> dict:
    return json.loads(raw) if raw and raw.strip() else {}


def _without_empty_runtimes(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "runtimes" or value}


def _write(config: dict) -> bytes:
    data = json.dumps(config, indent=2).encode()
    with open(DAEMON_JSON, "wb") as f:
        f.write(data)
    return data


@contextlib.contextmanager
def registered_runtimes(runtimes: dict):
    """dockerd knows `runtimes` ({name: {"path": ...}}) inside the block; daemon.json is put back byte for byte.

    Only our names are added to (and removed from) whatever daemon.json holds, so a
    runtime another test registered meanwhile survives; the original bytes come back
    only if nobody else changed the file in between.
    """
    try:
        with open(DAEMON_JSON, "rb") as f:
            saved = f.read()
    except FileNotFoundError:
        saved = None
    config = _load(saved)
    _write({**config, "runtimes": {**config.get("runtimes", {}), **runtimes}})
    reload_dockerd(lambda known, default: set(runtimes) <= set(known))
    try:
        yield
    finally:
        with open(DAEMON_JSON, "rb") as f:
            now = _load(f.read())
        now["runtimes"] = {k: v for k, v in now.get("runtimes", {}).items() if k not in runtimes}
        # keep the (maybe empty) key: dockerd resets its runtimes only when the file names it
        _write(now)
        reload_dockerd(lambda known, default: not set(runtimes) & set(known))
        if _without_empty_runtimes(now) == _without_empty_runtimes(config):
            put_back(saved)


def put_back(saved: bytes | None) -> None:
    """daemon.json as `saved` (None: no file), and dockerd reloaded with it."""
    if saved is None:
        os.unlink(DAEMON_JSON)
    else:
        with open(DAEMON_JSON, "wb") as f:
            f.write(saved)
    reload_dockerd()
