"""What runs as root runs the installed code; reloads and start-up failures never leave a broken mount;
the pidfile and log are never written through a symlink."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from lxcfs_py import mounts
from tests.live import daemons
from tests.live.daemons import scaled

ENTRY_POINT = os.path.join(os.path.dirname(sys.executable), "lxcfs-py")  # the installed console script
ISOLATED = [sys.executable, "-I", "-m", "lxcfs_py"]


def reads(mountpoint: str) -> bool:
    with open(f"{mountpoint}/proc/meminfo") as f:
        return f.readline().startswith("MemTotal:")


def read_log(path) -> str:
    with open(path) as f:
        return f.read()


def wait_in_log(path, text: str, count: int = 1, timeout: float = 60) -> bool:
    return daemons.wait_for(lambda: read_log(path).count(text) >= count, timeout)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "ERROR" in line]


def stop(pid: int, mountpoint: str) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    daemons.wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 20)
    daemons.ensure_free(mountpoint)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


# -- 1. only the installed package runs ------------------------------------------------


@pytest.fixture
def trap(tmp_path):
    """(directory holding a booby-trapped lxcfs_py package, the marker file it writes when imported)."""
    directory, marker = tmp_path / "trap", tmp_path / "marker"
    (directory / "lxcfs_py").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "cli.py"):
        (directory / "lxcfs_py" / name).write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n")
    return directory, marker


def assert_isolated(pid: int) -> None:
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    with open(f"/proc/{pid}/status") as f:
        umask = next(line.split()[1] for line in f if line.startswith("Umask:"))
    assert int(umask, 8) & 0o022 == 0o022, umask


def reload_and_check(pid: int, mountpoint: str, log_path, marker) -> None:
    """Heal ran at start; SIGHUP re-executes; nothing imported the trap, and the mount serves."""
    os.kill(pid, signal.SIGHUP)
    assert wait_in_log(log_path, "took over the live mount"), read_log(log_path)
    assert not marker.exists(), "code from the working directory or PYTHONPATH ran"
    assert reads(mountpoint)
    assert_isolated(pid)


def test_foreground_from_a_trapped_directory_runs_only_the_installed_code(tmp_path, trap):
    directory, marker = trap
    mountpoint, log_path = str(tmp_path / "mnt"), tmp_path / "log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([ENTRY_POINT, "-f", mountpoint], cwd=directory, stdout=log, stderr=log)
    try:
        daemons.wait_mounted(mountpoint, process, str(log_path))
        reload_and_check(process.pid, mountpoint, log_path, marker)
    finally:
        daemons.Daemon(mountpoint, process, str(log_path)).stop()


def test_background_from_a_trapped_directory_runs_only_the_installed_code(tmp_path, trap):
    directory, marker = trap
    mountpoint, pidfile, log_path = str(tmp_path / "mnt"), tmp_path / "pid", tmp_path / "log"
    started = subprocess.run([ENTRY_POINT, "-p", str(pidfile), "--log-file", str(log_path), mountpoint],
                             cwd=directory, capture_output=True, text=True, timeout=scaled(60))
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        reload_and_check(pid, mountpoint, log_path, marker)
    finally:
        stop(pid, mountpoint)


def test_pythonpath_reaches_no_child_and_no_re_exec(tmp_path, trap):
    directory, marker = trap
    mountpoint, log_path = str(tmp_path / "mnt"), tmp_path / "log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([*ISOLATED, "-f", mountpoint], env={**os.environ, "PYTHONPATH": str(directory)},
                                   cwd=tmp_path, stdout=log, stderr=log)
    try:
        daemons.wait_mounted(mountpoint, process, str(log_path))
        reload_and_check(process.pid, mountpoint, log_path, marker)
    finally:
        daemons.Daemon(mountpoint, process, str(log_path)).stop()


def test_relative_paths_still_work_from_slash(tmp_path):
    """The daemon runs from /: paths given relative to where it was started are resolved first."""
    started = subprocess.run([ENTRY_POINT, "-p", "pid", "--log-file", "log", "mnt"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=scaled(60))
    assert started.returncode == 0, started.stderr
    pid, mountpoint = int((tmp_path / "pid").read_text()), str(tmp_path / "mnt")
    try:
        os.kill(pid, signal.SIGHUP)
        assert wait_in_log(tmp_path / "log", "took over the live mount"), read_log(tmp_path / "log")
        assert int((tmp_path / "pid").read_text()) == pid and reads(mountpoint)
    finally:
        stop(pid, mountpoint)
    assert not (tmp_path / "pid").exists()


# -- 2. a failed reload keeps serving --------------------------------------------------


@pytest.fixture
def own_interpreter(tmp_path):
    """A venv whose python can be removed and restored, like an OS Python upgrade does to a venv."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(os.path.join(sys.prefix, "pyvenv.cfg"), venv)
    os.symlink(os.path.join(sys.prefix, "lib"), venv / "lib")
    python = venv / "bin" / "python"
    target = os.path.realpath(sys.executable)
    os.symlink(target, python)
    return python, target


def start_with(python, tmp_path):
    mountpoint, log_path = str(tmp_path / "mnt"), tmp_path / "log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(python), "-I", "-m", "lxcfs_py", "-f", "--no-remount", mountpoint],
                                   cwd="/", stdout=log, stderr=log)
    daemons.wait_mounted(mountpoint, process, str(log_path))
    return daemons.Daemon(mountpoint, process, str(log_path))


def test_a_reload_without_an_interpreter_keeps_serving(tmp_path, own_interpreter):
    python, target = own_interpreter
    daemon = start_with(python, tmp_path)
    try:
        os.unlink(python)
        daemon.process.send_signal(signal.SIGHUP)
        assert daemons.wait_for(lambda: "SIGHUP ignored" in daemon.log(), 60), daemon.log()
        assert daemon.process.poll() is None and mounts.state(daemon.mountpoint) == "live"
        assert reads(daemon.mountpoint)
        # one line, and for each worker process that could not start again without the interpreter, one
        errors = error_lines(daemon.log())
        assert len([line for line in errors if "cannot start serving worker" not in line]) == 1, daemon.log()
        assert all("No such file or directory" in line for line in errors), daemon.log()
        os.symlink(target, python)  # the interpreter is back: a reload works again
        daemon.process.send_signal(signal.SIGHUP)
        assert daemons.wait_for(lambda: "took over the live mount" in daemon.log(), 60), daemon.log()
        assert daemon.process.poll() is None and reads(daemon.mountpoint)
    finally:
        daemon.stop()


def the_check_child(pid: int) -> int | None:
    """The child the SIGHUP check runs (python -c 'import lxcfs_py.cli ...'), once it has exec'd."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rpartition(")")[2].split()[1]) != pid:
                    continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if b"import lxcfs_py.cli" in f.read():
                    return int(name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def test_a_failed_exec_after_the_check_keeps_serving(tmp_path, own_interpreter):
    """The interpreter vanishes between the check and the exec (the check is held with SIGSTOP meanwhile)."""
    python, target = own_interpreter
    daemon = start_with(python, tmp_path)
    try:
        for attempt in range(5):  # the check may finish before the test sees it: then try again
            daemon.process.send_signal(signal.SIGHUP)
            child = []
            daemons.wait_for(lambda: child.append(the_check_child(daemon.process.pid)) or child[-1], 30, 0.001)
            if child[-1] is not None:
                try:
                    os.kill(child[-1], signal.SIGSTOP)
                except ProcessLookupError:
                    child[-1] = None
            if child[-1] is not None:
                os.unlink(python)
                os.kill(child[-1], signal.SIGCONT)
                break
            assert daemons.wait_for(lambda: daemon.log().count("took over") == attempt + 1, 60), daemon.log()
        else:
            pytest.fail("never caught the SIGHUP check running")
        assert daemons.wait_for(lambda: "cannot re-execute" in daemon.log(), 60), daemon.log()
        assert daemon.process.poll() is None and mounts.state(daemon.mountpoint) == "live"
        assert reads(daemon.mountpoint)
        # one line, and for each worker process that could not start again without the interpreter, one
        errors = error_lines(daemon.log())
        assert len([line for line in errors if "cannot start serving worker" not in line]) == 1, daemon.log()
        assert all("No such file or directory" in line for line in errors), daemon.log()
        os.symlink(target, python)
        took_over = daemon.log().count("took over the live mount")
        daemon.process.send_signal(signal.SIGHUP)
        assert daemons.wait_for(lambda: daemon.log().count("took over the live mount") > took_over, 60), daemon.log()
        assert daemon.process.poll() is None and reads(daemon.mountpoint)
    finally:
        daemon.stop()


# -- 3. a background start reports every failure ----------------------------------------


@pytest.fixture
def mountpoint(tmp_path):
    """A mountpoint for a start that should fail; whatever did start there is stopped afterwards."""
    path = str(tmp_path / "mnt")
    yield path
    for pid in processes_mentioning(path):
        stop(pid, path)
    daemons.ensure_free(path)


def assert_failed_cleanly(result, mountpoint: str, words: str) -> None:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert mounts.state(mountpoint) == "free"
    assert daemons.wait_for(lambda: not processes_mentioning(mountpoint), 10), processes_mentioning(mountpoint)


def start_in_background(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([ENTRY_POINT, *flags], capture_output=True, text=True, timeout=scaled(60))


def test_background_start_with_a_pidfile_in_a_missing_directory_fails(tmp_path, mountpoint):
    result = start_in_background("-p", str(tmp_path / "missing" / "pid"), mountpoint)
    assert_failed_cleanly(result, mountpoint, "does not exist")


def test_background_start_with_a_log_file_in_a_missing_directory_fails(tmp_path, mountpoint):
    result = start_in_background("--log-file", str(tmp_path / "missing" / "log"), mountpoint)
    assert_failed_cleanly(result, mountpoint, "log file")


def test_background_start_reports_any_failure_not_only_mount_errors(tmp_path, mountpoint):
    (tmp_path / "empty").mkdir()  # no cgroup hierarchy here: the daemon cannot start
    result = start_in_background("--cgroup-root", str(tmp_path / "empty"), mountpoint)
    assert_failed_cleanly(result, mountpoint, "no cgroup v1 memory hierarchy")


def test_background_start_on_a_live_mount_fails(start_daemon):
    daemon = start_daemon()
    result = start_in_background(daemon.mountpoint)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "already a live mount" in result.stderr
    assert [pid for pid in processes_mentioning(daemon.mountpoint)
            if pid not in daemons.serving_pids(daemon.process.pid)] == []
    assert reads(daemon.mountpoint)  # the running daemon is untouched


# -- 4. no write through a symlink ----------------------------------------------------


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


@pytest.mark.parametrize("flag, name", [("-p", "pid"), ("--log-file", "log")])
def test_a_symlinked_pidfile_or_log_is_refused(tmp_path, victim, mountpoint, flag, name):
    os.symlink(victim, tmp_path / name)
    result = start_in_background(flag, str(tmp_path / name), mountpoint)
    assert_failed_cleanly(result, mountpoint, "symlink")
    assert victim.read_text() == "precious\n"


def test_a_symlink_at_the_pidfiles_temporary_name_is_not_followed(tmp_path, victim, mountpoint):
    pidfile = tmp_path / "pid"
    os.symlink(victim, f"{pidfile}.tmp")
    result = start_in_background("-p", str(pidfile), mountpoint)
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    try:
        assert victim.read_text() == "precious\n"
        assert not os.path.islink(pidfile) and oct(os.stat(pidfile).st_mode & 0o777) == oct(0o644)
    finally:
        stop(pid, mountpoint)
