"""lxcfs-py-runc: argument handling and the config.json transformation (no Docker, no runc)."""

import copy
import json
import os
import subprocess
import sys

import pytest

from lxcfs_py import runtime, timens
from lxcfs_py.bind_mounts import bind_mounts, targets

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# what Docker 20.10 puts in a bundle, trimmed
DOCKER_SPEC = {
    "ociVersion": "1.0.2-dev",
    "process": {"args": ["free", "-h"], "cwd": "/"},
    "root": {"path": "/var/lib/docker/overlay2/x/merged"},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/docker/containers/x/hosts",
         "options": ["rbind", "rprivate"]},
    ],
    "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}


def test_adds_every_bind_mount_read_only_after_the_specs_own():
    new, added = runtime.add_lxcfs_mounts(DOCKER_SPEC, "/var/lib/lxcfs")
    assert added == len(bind_mounts()) == len(targets())
    assert new["mounts"][:4] == DOCKER_SPEC["mounts"]
    assert new["mounts"][4:] == [
        {"destination": target, "type": "bind", "source": source, "options": ["rbind", "ro"]}
        for source, target in bind_mounts("/var/lib/lxcfs")
    ]
    assert {m["destination"] for m in new["mounts"][4:]} >= {"/proc/meminfo", "/sys/devices/system/cpu"}
    # everything else untouched
    assert {k: v for k, v in new.items() if k != "mounts"} == {k: v for k, v in DOCKER_SPEC.items() if k != "mounts"}


def test_is_pure():
    before = copy.deepcopy(DOCKER_SPEC)
    runtime.add_lxcfs_mounts(DOCKER_SPEC, "/var/lib/lxcfs")
    assert DOCKER_SPEC == before


def test_uses_the_mountpoint_given():
    new, _ = runtime.add_lxcfs_mounts(DOCKER_SPEC, "/run/lxcfs-test/")
    sources = [m["source"] for m in new["mounts"][4:]]
    assert sources == [source for source, _ in bind_mounts("/run/lxcfs-test")]
    assert "/run/lxcfs-test/proc/meminfo" in sources


def test_keeps_what_the_bundle_already_mounts():
    spec = copy.deepcopy(DOCKER_SPEC)
    mine = {"destination": "/proc/meminfo/", "type": "bind", "source": "/elsewhere/meminfo", "options": ["rbind"]}
    spec["mounts"].append(mine)
    spec["mounts"].append({"destination": "//sys/devices/system/cpu", "type": "bind", "source": "/x", "options": []})
    new, added = runtime.add_lxcfs_mounts(spec, "/var/lib/lxcfs")
    assert added == len(targets()) - 2
    destinations = [m["destination"] for m in new["mounts"]]
    assert destinations.count("/proc/meminfo") == 0 and destinations.count("/proc/meminfo/") == 1
    assert "/sys/devices/system/cpu" not in destinations
    assert mine in new["mounts"]


def test_idempotent():
    once, added = runtime.add_lxcfs_mounts(DOCKER_SPEC, "/var/lib/lxcfs")
    twice, again = runtime.add_lxcfs_mounts(once, "/var/lib/lxcfs")
    assert added > 0 and again == 0 and twice == once


def test_spec_without_mounts():
    new, added = runtime.add_lxcfs_mounts({"ociVersion": "1.0.2"}, "/var/lib/lxcfs")
    assert added == len(targets()) and len(new["mounts"]) == added
    new, added = runtime.add_lxcfs_mounts({"mounts": None}, "/var/lib/lxcfs")
    assert added == len(targets())


@pytest.mark.parametrize("spec", [[], {"mounts": {"a": 1}}])
def test_rejects_malformed_specs(spec):
    with pytest.raises(runtime.WrapperError):
        runtime.add_lxcfs_mounts(spec, "/var/lib/lxcfs")


# ------------------------------------------------------------ argv handling

SHIM_CREATE = ["--root", "/var/run/docker/runtime-lxcfs/moby", "--log", "/run/x/log.json", "--log-format", "json",
               "create", "--bundle", "/run/containerd/b", "--pid-file", "/run/x/init.pid", "abc123"]


def test_split_args_takes_only_leading_wrapper_options():
    options, rest = runtime.split_args(
        ["--lxcfs-mountpoint", "/m", "--lxcfs-runc=/usr/sbin/runc", "--lxcfs-timeout", "2", "--lxcfs-timens=off",
         *SHIM_CREATE], environ={})
    assert options == {"mountpoint": "/m", "runc": "/usr/sbin/runc", "timeout": 2.0, "timens": "off"}
    assert rest == SHIM_CREATE


def test_split_args_defaults_and_environment():
    options, rest = runtime.split_args(["state", "x"], environ={})
    assert options == {"mountpoint": "/var/lib/lxcfs", "runc": "runc", "timeout": 5.0, "timens": "auto"}
    assert rest == ["state", "x"]
    options, _ = runtime.split_args(["--lxcfs-runc", "/b/runc", "state", "x"],
                                    environ={"LXCFS_PY_MOUNTPOINT": "/e", "LXCFS_PY_RUNC": "/e/runc",
                                             "LXCFS_PY_TIMENS": "on"})
    assert options["mountpoint"] == "/e" and options["runc"] == "/b/runc" and options["timens"] == "on"


@pytest.mark.parametrize("argv", [["--lxcfs-bogus", "x"], ["--lxcfs-mountpoint"], ["--lxcfs-timeout=soon", "state"],
                                  ["--lxcfs-mountpoint=", "state"], ["--lxcfs-mountpoint", "var/lib/lxcfs"],
                                  ["--lxcfs-timens", "yes", "state"]])
def test_split_args_errors(argv):
    with pytest.raises(runtime.WrapperError):
        runtime.split_args(argv, environ={})


@pytest.mark.parametrize("args, command", [
    (SHIM_CREATE, "create"),
    (["--root=/r", "--systemd-cgroup", "--debug", "start", "id"], "start"),
    (["-root", "/r", "-log", "/l", "delete", "--force", "id"], "delete"),
    (["--criu", "/c", "--rootless", "auto", "run", "-d", "id"], "run"),
    (["features"], "features"),
    (["--log", "/l", "restore", "--image-path", "/i", "-b", "/b", "id"], "restore"),
    (["--version"], None),
    ([], None),
])
def test_find_command(args, command):
    index = runtime.find_command(args)
    assert (args[index] if index is not None else None) == command


@pytest.mark.parametrize("args, bundle", [
    (["--bundle", "/b", "id"], "/b"),
    (["--pid-file", "/p", "-b", "/b2", "id"], "/b2"),
    (["--console-socket=/s", "--bundle=/b3", "id"], "/b3"),
    (["--no-pivot", "id"], "."),
    (["--image-path", "/ckpt", "--work-path", "/w", "--bundle", "/b4", "id"], "/b4"),  # restore
    (["--pid-file", "--bundle", "id"], "."),  # a value is not an option
    (["id"], "."),
])
def test_find_bundle(args, bundle):
    assert runtime.find_bundle(args) == bundle


def test_container_init_pid(tmp_path):
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "state.json").write_text('{"id": "abc", "init_process_pid": 4242}')  # runc
    (tmp_path / "def").mkdir()
    (tmp_path / "def" / "status").write_text('{"pid": 77}')  # crun
    shim_exec = ["--process", "/run/x/process.json", "--detach", "--pid-file", "/run/x/p.pid", "abc"]
    assert runtime.container_init_pid(str(tmp_path), shim_exec) == 4242
    assert runtime.container_init_pid(str(tmp_path), ["--force", "def"]) == 77
    assert runtime.container_init_pid(str(tmp_path), ["ghost", "9"]) is None
    assert runtime.container_init_pid(str(tmp_path / "nowhere"), ["abc"]) is None


# ------------------------------------------------------------ the time namespace


def with_namespaces(*namespaces):
    return {**DOCKER_SPEC, "linux": {**DOCKER_SPEC["linux"], "namespaces": list(namespaces)}}


DOCKER_NAMESPACES = [{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]


def test_timens_for_a_container_with_its_own_pid_namespace():
    assert runtime.wants_timens(with_namespaces(*DOCKER_NAMESPACES), "auto", True)
    assert runtime.wants_timens(with_namespaces(*DOCKER_NAMESPACES), "on", True)


@pytest.mark.parametrize("spec, mode", [
    (with_namespaces(*DOCKER_NAMESPACES), "off"),
    (with_namespaces(*DOCKER_NAMESPACES, {"type": "time"}), "on"),  # the runtime sets up the spec's own
    (with_namespaces({"type": "mount"}, {"type": "network"}), "on"),  # docker run --pid=host
    (with_namespaces({"type": "mount"}, {"type": "pid", "path": "/proc/42/ns/pid"}), "on"),  # --pid=container:x
    (DOCKER_SPEC, "auto"),
])
def test_no_timens(spec, mode):
    assert not runtime.wants_timens(spec, mode, True)


def test_timens_on_an_old_kernel():
    assert not runtime.wants_timens(with_namespaces(*DOCKER_NAMESPACES), "auto", False)
    with pytest.raises(runtime.WrapperError, match="no time namespaces runc can start in"):
        runtime.wants_timens(with_namespaces(*DOCKER_NAMESPACES), "on", False)


@pytest.mark.parametrize("boottime_ns, monotonic_ns, text", [
    (2_614_086_602_702, 1_866_000_000_000, "boottime -2615 913397298\nmonotonic -1866 0\n"),
    (0, 5, "boottime 0 0\nmonotonic -1 999999995\n"),
])
def test_offsets_bring_both_clocks_to_zero(boottime_ns, monotonic_ns, text):
    assert timens.offsets_text(boottime_ns, monotonic_ns) == text


# ------------------------------------------------------------ the whole wrapper, with a fake runc and mount check


@pytest.fixture
def fake_runc(tmp_path):
    """A 'runc' that records its argv and the bundle's mounts."""
    record = tmp_path / "record.json"
    script = tmp_path / "runc"
    script.write_text(f"""#!{sys.executable}
import json, sys, os
args = sys.argv[1:]
mounts = None
if "--bundle" in args:
    mounts = json.load(open(os.path.join(args[args.index("--bundle") + 1], "config.json")))["mounts"]
json.dump({{"argv0": sys.argv[0], "args": args, "mounts": mounts}}, open({str(record)!r}, "w"))
""")
    script.chmod(0o755)
    return script, record


def run_wrapper(args, env=None):
    return subprocess.run([sys.executable, "-m", "lxcfs_py.runtime", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=30)


def test_other_commands_exec_runc_unchanged(fake_runc, tmp_path):
    runc, record = fake_runc
    args = ["--root", "/r", "--log", str(tmp_path / "log.json"), "--log-format", "json", "kill", "id", "9"]
    # the mountpoint does not exist: only create looks at it
    result = run_wrapper(["--lxcfs-mountpoint", str(tmp_path / "nowhere"), "--lxcfs-runc", str(runc), *args])
    assert result.returncode == 0, result.stderr
    assert json.loads(record.read_text()) == {"argv0": str(runc), "args": args, "mounts": None}


def test_create_refuses_without_a_live_mount(fake_runc, tmp_path):
    runc, record = fake_runc
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(DOCKER_SPEC))
    log = tmp_path / "log.json"
    mountpoint = tmp_path / "lxcfs"
    mountpoint.mkdir()  # a directory, but nothing mounted on it
    args = ["--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle), "id"]
    result = run_wrapper(["--lxcfs-mountpoint", str(mountpoint), "--lxcfs-runc", str(runc), *args])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"lxcfs-py is not mounted at {mountpoint}" in lines[0], result.stderr
    assert not record.exists()
    assert json.loads((bundle / "config.json").read_text()) == DOCKER_SPEC
    # containerd reads the last error of runc's json log and shows its msg
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == lines[0] and entry["time"][-6] in "+-"


def test_create_rewrites_the_bundle_then_execs_runc(fake_runc, tmp_path, monkeypatch):
    """In-process, with the mount check stubbed (a real mount is covered by the live tests)."""
    runc, record = fake_runc
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(DOCKER_SPEC))
    os.chmod(bundle / "config.json", 0o600)
    checked = []
    monkeypatch.setattr(runtime, "check_mount", lambda mountpoint, timeout: checked.append(mountpoint))
    execs = []
    monkeypatch.setattr(runtime.os, "execv", lambda path, argv: execs.append(argv))
    args = ["--root", "/r", "create", "--bundle", str(bundle), "--pid-file", "/p", "id"]
    runtime.main(["--lxcfs-mountpoint", "/m", "--lxcfs-runc", str(runc), *args])
    assert checked == ["/m"]
    assert execs == [[str(runc), *args]]
    spec = json.loads((bundle / "config.json").read_text())
    assert spec == runtime.add_lxcfs_mounts(DOCKER_SPEC, "/m")[0]
    assert os.stat(bundle / "config.json").st_mode & 0o777 == 0o600
    assert os.listdir(bundle) == ["config.json"]  # no temporary file left behind


def test_check_mount_messages(tmp_path):
    with pytest.raises(runtime.WrapperError, match="not mounted"):
        runtime.check_mount(str(tmp_path))
    with pytest.raises(runtime.WrapperError, match="not mounted"):
        runtime.check_mount(str(tmp_path / "missing"))


def test_unrunnable_runc_is_a_clear_error(tmp_path):
    result = run_wrapper(["--lxcfs-runc", str(tmp_path / "no-runc"), "state", "id"])
    assert result.returncode == 1
    assert result.stderr.strip() == f"lxcfs-py-runc: error: cannot run {tmp_path / 'no-runc'}: No such file or directory"


def test_import_stays_light():
    """Other commands exec runc at once: the module must not pull in json, threading, ..."""
    code = "import sys; import lxcfs_py.runtime; print(sorted({'json', 'threading', 'pyfuse3', 'trio'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_time_namespaces_are_probed_for_threads():
    """On this kernel the probe must agree with what runc needs: a thread started in a pending time namespace."""
    from lxcfs_py import timens

    assert timens.usable() == (timens.supported() and tuple(map(int, os.uname().release.split(".")[:2])) >= (6, 3))
