"""The re-exec's command line: the daemon runs from /, so relative paths are made absolute first."""

from lxcfs_py import cli


def absolute(argv, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return cli.absolute_argv(cli.parser(), argv)


def test_paths_become_absolute_and_flags_keep_their_order(tmp_path, monkeypatch):
    argv = ["-fp", "pid", "-o", "allow_other", "--log-file=log", "--enable-cfs", "--cgroup-root", "cg", "mnt"]
    assert absolute(argv, tmp_path, monkeypatch) == [
        "-fp", f"{tmp_path}/pid", "-o", "allow_other", f"--log-file={tmp_path}/log", "--enable-cfs",
        "--cgroup-root", f"{tmp_path}/cg", f"{tmp_path}/mnt"]


def test_attached_short_values_and_absolute_paths(tmp_path, monkeypatch):
    # absolute paths are kept exactly as given: lxcfs_daemon compares command lines
    argv = ["-ppid", "--pidfile", "/run//x.pid", "--", "/var/lib/lxcfs/"]
    assert absolute(argv, tmp_path, monkeypatch) == [f"-p{tmp_path}/pid", "--pidfile", "/run//x.pid", "--",
                                                     "/var/lib/lxcfs/"]
