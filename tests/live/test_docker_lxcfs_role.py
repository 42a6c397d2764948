"""Role lxcfs_py.fleet.docker_lxcfs on this machine's dockerd, with a real lxcfs-py mount.

Changes /etc/docker/daemon.json, /usr/local/bin/lxcfs-runc and dockerd's runtimes
while it runs; everything is put back afterwards (files restored, dockerd reloaded
so that it forgets the runtimes the tests registered). The role's wrapper is this
checkout's lxcfs_py.runtime (a stand-in for the venv's console script).
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from tests.ansible_cores import playbook_executables
from tests.live import daemons
from tests.live.daemons import scaled
from tests.live.dockerd import DAEMON_JSON, docker_runtimes, reload_dockerd

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "tests", "live", "playbooks", "docker_lxcfs.yml")
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
SHIM = "/usr/local/bin/lxcfs-runc"
IMAGE = "lxcfs-py/workload:bookworm"
OTHER_RUNTIME = "lxcfs-py-test-other"
# keys that must survive the merge; reloadable ones have dockerd's default values
OTHER_KEYS = {
    "log-opts": {"max-size": "10m"},
    "max-concurrent-uploads": 5,
    "runtimes": {OTHER_RUNTIME: {"path": "/usr/sbin/runc"}},
}

pytestmark = pytest.mark.skipif(not os.path.exists(ANSIBLE_PLAYBOOK), reason="needs ansible in .venv")


# ------------------------------------------------------------------ helpers


def play(extra: dict, *flags: str, state: str = "present", executable: str = ANSIBLE_PLAYBOOK,
         tmp: str | None = None, defaults: dict | None = None) -> subprocess.CompletedProcess:
    path = os.path.join(tmp or play.tmp, "vars.json")
    with open(path, "w") as f:
        json.dump({**(play.defaults if defaults is None else defaults), "docker_lxcfs_state": state, **extra}, f)
    result = subprocess.run(
        [executable, "-i", "localhost,", PLAYBOOK, "-e", "ansible_python_interpreter=/usr/bin/python3",
         "-e", f"@{path}", "--diff", *flags],
        cwd=REPO, capture_output=True, text=True, timeout=scaled(600),
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    result.output = result.stdout + result.stderr
    return result


def changed(result) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", result.stdout)
    assert match, result.output
    assert match.group(2) == "0", result.output
    return int(match.group(1))


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read(), os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def put_back(path, saved) -> None:
    if saved is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    data, mode = saved
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def docker_run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", *args], capture_output=True, text=True, timeout=scaled(120), check=check)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def machine(docker, tmp_path_factory):
    """Saves daemon.json and the shim, and puts them and dockerd's runtimes back afterwards."""
    saved = {path: read(path) for path in (DAEMON_JSON, SHIM)}
    backups = set(glob.glob(DAEMON_JSON + ".*~"))
    os.makedirs(os.path.dirname(DAEMON_JSON), exist_ok=True)
    yield tmp_path_factory.mktemp("docker-lxcfs")
    # dockerd only resets the runtimes when daemon.json names the key: clear
    # every runtime the tests registered first, then restore the original file
    with open(DAEMON_JSON, "w") as f:
        json.dump({"runtimes": {}, "default-runtime": "runc"}, f)
    reload_dockerd(lambda runtimes, default: set(runtimes) == {"runc"} and default == "runc")
    put_back(DAEMON_JSON, saved[DAEMON_JSON])
    put_back(SHIM, saved[SHIM])
    reload_dockerd()
    for backup in set(glob.glob(DAEMON_JSON + ".*~")) - backups:
        os.unlink(backup)


@pytest.fixture(scope="module")
def lxcfs(machine):
    """lxcfs-py mounted in the scratch directory; `lxcfs.restart()` after a test stopped it."""
    mountpoint = str(machine / "mnt")

    class Mount:
        daemon = None

        def restart(self):
            self.daemon = daemons.start(daemons.LXCFS_PY, mountpoint, log_dir=str(machine))

    mount = Mount()
    mount.mountpoint = mountpoint
    mount.restart()
    yield mount
    mount.daemon.stop()


@pytest.fixture(scope="module")
def applied(machine, lxcfs):
    """daemon.json with other keys, then the role applied once; returns that run."""
    wrapper = machine / "lxcfs-py-runc"
    wrapper.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {REPO!r})\n"
                       "from lxcfs_py.runtime import main\nsys.exit(main())\n")
    wrapper.chmod(0o755)
    play.tmp = str(machine)
    play.defaults = {"docker_lxcfs_mountpoint": lxcfs.mountpoint, "docker_lxcfs_wrapper": str(wrapper)}
    with open(DAEMON_JSON, "w") as f:
        json.dump(OTHER_KEYS, f)
    reload_dockerd(lambda runtimes, default: OTHER_RUNTIME in runtimes)
    return play({})


# ------------------------------------------------------------------ tests


def test_syntax_check():
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "--syntax-check", PLAYBOOK], cwd=REPO,
                            capture_output=True, text=True, timeout=scaled(120))
    assert result.returncode == 0, result.stdout + result.stderr


def test_first_run_merges_and_reloads(applied, lxcfs):
    assert applied.returncode == 0, applied.output
    assert changed(applied) >= 2  # shim, daemon.json (+ the SIGHUP)
    with open(DAEMON_JSON) as f:
        config = json.load(f)
    assert config == {**OTHER_KEYS, "runtimes": {**OTHER_KEYS["runtimes"], "lxcfs": {"path": SHIM}}}
    runtimes, default = docker_runtimes()
    assert runtimes["lxcfs"]["path"] == SHIM and OTHER_RUNTIME in runtimes and default == "runc"
    with open(SHIM) as f:
        shim = f.read()
    assert f"--lxcfs-mountpoint {lxcfs.mountpoint} " in shim and "--lxcfs-runc /usr/sbin/runc " in shim
    assert os.stat(SHIM).st_mode & 0o777 == 0o755


def test_second_run_changes_nothing(applied):
    before = read(DAEMON_JSON)
    result = play({})
    assert result.returncode == 0, result.output
    assert changed(result) == 0
    assert read(DAEMON_JSON) == before


def test_check_mode_changes_nothing(applied):
    files = {path: (read(path), os.stat(path).st_mtime_ns) for path in (DAEMON_JSON, SHIM)}
    before = docker_runtimes()
    result = play({"docker_lxcfs_default_runtime": True, "docker_lxcfs_runc_path": "/usr/bin/runc"}, "--check")
    assert result.returncode == 0, result.output
    assert changed(result) >= 2  # would rewrite the shim and daemon.json ...
    assert '+  "default-runtime": "lxcfs",' in result.stdout  # ... and shows how
    assert {path: (read(path), os.stat(path).st_mtime_ns) for path in files} == files  # ... but does not
    assert docker_runtimes() == before
    result = play({}, "--check")
    assert result.returncode == 0 and changed(result) == 0, result.output


def test_container_sees_its_memory_limit(applied):
    human = docker_run("--runtime", "lxcfs", "-m", "200m", IMAGE, "free", "-h").stdout
    mem = next(line.split() for line in human.splitlines() if line.startswith("Mem:"))
    assert mem[1] == "200Mi", human
    exact = docker_run("--runtime", "lxcfs", "-m", "200m", IMAGE, "free", "-b").stdout
    mem = next(line.split() for line in exact.splitlines() if line.startswith("Mem:"))
    assert int(mem[1]) == 209715200, exact
    # runc is still runc: no lxcfs files without the runtime
    plain = docker_run("-m", "200m", IMAGE, "free", "-b").stdout
    assert int(next(line.split() for line in plain.splitlines() if line.startswith("Mem:"))[1]) != 209715200


def test_create_fails_clearly_without_the_mount(applied, lxcfs):
    # a dead daemon's mount (ENOTCONN) ...
    daemons.crash(lxcfs.daemon)
    stale = docker_run("--runtime", "lxcfs", IMAGE, "true", check=False)
    # ... and no mount at all
    lxcfs.daemon.stop()
    gone = docker_run("--runtime", "lxcfs", IMAGE, "true", check=False)
    lxcfs.restart()
    assert stale.returncode != 0 and gone.returncode != 0
    assert f"lxcfs-py-runc: error: lxcfs-py mount at {lxcfs.mountpoint} is stale" in stale.stderr, stale.stderr
    assert f"lxcfs-py-runc: error: lxcfs-py is not mounted at {lxcfs.mountpoint}: start the lxcfs-py daemon" \
        in gone.stderr, gone.stderr
    # and it works again once the mount is back
    assert docker_run("--runtime", "lxcfs", IMAGE, "true").returncode == 0


def test_merge_and_default_runtime_without_dockerd(applied, machine):
    """default-runtime on and off, on a scratch daemon.json and shim, with no dockerd to reload (the pidfile names none)."""
    path, shim = machine / "daemon.json", str(machine / "lxcfs-runc")
    path.write_text('{"debug": true, "runtimes": {"lxcfs": {"path": "/old", "runtimeArgs": ["--x"]}}}')
    scratch = {"docker_lxcfs_daemon_json": str(path), "docker_lxcfs_dockerd_pidfile": str(machine / "no.pid"),
               "docker_lxcfs_daemon_json_backup": False, "docker_lxcfs_shim_path": shim}
    result = play({**scratch, "docker_lxcfs_default_runtime": True})
    assert result.returncode == 0, result.output
    assert "No dockerd runs" in result.stdout
    # the stale runtimeArgs went: the entry is replaced, not merged
    assert json.loads(path.read_text()) == {"debug": True, "default-runtime": "lxcfs",
                                            "runtimes": {"lxcfs": {"path": shim}}}
    assert os.access(shim, os.X_OK)
    result = play(scratch)  # default off again: back to runc, which dockerd's reload needs spelled out
    assert result.returncode == 0 and changed(result) == 1, result.output
    assert json.loads(path.read_text()) == {"debug": True, "default-runtime": "runc",
                                            "runtimes": {"lxcfs": {"path": shim}}}
    result = play(scratch, state="absent")
    assert result.returncode == 0, result.output
    # `runtimes` stays, empty: dockerd's reload resets only the keys the file names
    assert json.loads(path.read_text()) == {"debug": True, "default-runtime": "runc", "runtimes": {}}
    assert not os.path.exists(shim)
    # a missing daemon.json is created
    path.unlink()
    result = play(scratch)
    assert result.returncode == 0, result.output
    assert json.loads(path.read_text()) == {"runtimes": {"lxcfs": {"path": shim}}}
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_installs_no_engine_where_one_is_installed(applied, tmp_path):
    """docker.io is installed here: the engine packages are not asked for (with geerlingguy.docker, docker-ce
    is, and docker.io would fight it). Named as an unknown package, apt would fail if it were."""
    scratch = {"docker_lxcfs_daemon_json": str(tmp_path / "daemon.json"),
               "docker_lxcfs_dockerd_pidfile": str(tmp_path / "no.pid"), "docker_lxcfs_shim_path": str(tmp_path / "shim"),
               "docker_lxcfs_engine_packages": ["lxcfs-py-no-such-engine"]}
    result = play(scratch, "--check")
    assert result.returncode == 0, result.output
    # and the other way: no engine found, so the engine package is installed (in check mode: apt looks it up)
    result = play({**scratch, "docker_lxcfs_engine_installed_packages": ["lxcfs-py-no-such-installed-engine"]}, "--check")
    assert result.returncode != 0 and "lxcfs-py-no-such-engine" in result.output, result.output


def test_another_role_owns_daemon_json(applied, tmp_path):
    """docker_lxcfs_manage_daemon_json=false: daemon.json untouched, Docker not reloaded, the entry handed
    over, and dockerd checked for the runtime (here it has `lxcfs` from the first run)."""
    owned = tmp_path / "daemon.json"
    owned.write_text('{"log-driver":"json-file"}')
    before = (read(DAEMON_JSON), os.stat(DAEMON_JSON).st_mtime_ns, docker_runtimes())
    unowned = {"docker_lxcfs_manage_daemon_json": "false", "docker_lxcfs_daemon_json": str(owned)}
    result = play(unowned)
    assert result.returncode == 0, result.output
    assert changed(result) == 0
    assert owned.read_text() == '{"log-driver":"json-file"}'
    assert (read(DAEMON_JSON), os.stat(DAEMON_JSON).st_mtime_ns, docker_runtimes()) == before
    # ansible shows messages JSON-encoded: compare unescaped words
    assert f'merge {{"runtimes": {{"lxcfs": {{"path": "{SHIM}"}}}}}}' in " ".join(result.stdout.replace('\\"', '"').split())
    # a runtime dockerd does not have: the role says what the owner of daemon.json must add
    shim = str(tmp_path / "shim")
    missing = play({**unowned, "docker_lxcfs_runtime_name": "lxcfs-py-test-unowned", "docker_lxcfs_shim_path": shim,
                    "docker_lxcfs_reload_timeout": 2})
    assert missing.returncode != 0
    words = " ".join(missing.output.replace('\\"', '"').split())
    assert "dockerd does not run runtime lxcfs-py-test-unowned" in words, missing.output
    assert f'{{"runtimes": {{"lxcfs-py-test-unowned": {{"path": "{shim}"}}}}}}' in words
    assert owned.read_text() == '{"log-driver":"json-file"}'


def test_absent_refuses_while_containers_use_it_then_removes_it(applied):
    name = "lxcfs-py-role-test"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=scaled(60))
    subprocess.run(["docker", "run", "-d", "--name", name, "--runtime", "lxcfs", IMAGE, "sleep", "300"],
                   check=True, capture_output=True, timeout=scaled(120))
    try:
        refused = play({}, state="absent")
        assert refused.returncode != 0
        # ansible may fold long messages at the terminal's width: compare words, not lines
        assert f"Running containers use runtime lxcfs: {name}" in " ".join(refused.output.split()), refused.output
        assert "lxcfs" in docker_runtimes()[0] and os.path.exists(SHIM)
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True, timeout=scaled(60))

    result = play({}, state="absent")
    assert result.returncode == 0, result.output
    assert changed(result) >= 2
    with open(DAEMON_JSON) as f:
        assert json.load(f) == OTHER_KEYS  # only the runtime went
    runtimes, default = docker_runtimes()
    assert "lxcfs" not in runtimes and OTHER_RUNTIME in runtimes and default == "runc"
    assert not os.path.exists(SHIM)
    unknown = docker_run("--runtime", "lxcfs", IMAGE, "true", check=False)
    assert unknown.returncode != 0 and re.search(r"(?i)unknown.*runtime.*lxcfs", unknown.stderr), unknown.stderr

    again = play({}, state="absent")
    assert again.returncode == 0 and changed(again) == 0, again.output


@pytest.mark.parametrize("executable", playbook_executables())
def test_merges_into_a_daemon_json_of_other_keys_on_each_core(tmp_path, executable):
    """{"log-driver": "json-file"} is kept and the runtime added, on every ansible-core the collection claims
    (2.17 and 2.18 turn JSON text held in a variable into a dict before from_json). A scratch daemon.json,
    shim and wrapper; the pidfile names no dockerd, so none is reloaded."""
    path, shim, wrapper = tmp_path / "daemon.json", str(tmp_path / "lxcfs-runc"), tmp_path / "lxcfs-py-runc"
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o755)
    path.write_text('{"log-driver":"json-file"}')
    scratch = {"docker_lxcfs_daemon_json": str(path), "docker_lxcfs_dockerd_pidfile": str(tmp_path / "no.pid"),
               "docker_lxcfs_daemon_json_backup": "false", "docker_lxcfs_shim_path": shim,
               "docker_lxcfs_wrapper": str(wrapper), "docker_lxcfs_mountpoint": str(tmp_path / "mnt"),
               # a string, as -e gives it: must count as false
               "docker_lxcfs_default_runtime": "false"}
    result = play({}, executable=executable, tmp=str(tmp_path), defaults=scratch)
    assert result.returncode == 0, result.output
    assert json.loads(path.read_text()) == {"log-driver": "json-file", "runtimes": {"lxcfs": {"path": shim}}}
    assert glob.glob(str(path) + ".*~") == []  # no backup: "false" is false
    again = play({}, executable=executable, tmp=str(tmp_path), defaults=scratch)
    assert again.returncode == 0 and changed(again) == 0, again.output
    result = play({}, executable=executable, tmp=str(tmp_path), defaults=scratch, state="absent")
    assert result.returncode == 0, result.output
    assert json.loads(path.read_text()) == {"log-driver": "json-file", "runtimes": {}}
