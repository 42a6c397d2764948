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


def test_a_worker_is_started_with_the_daemons_flags_and_its_own_descriptors_only(tmp_path, monkeypatch):
    from lxcfs_py import daemon

    argv = absolute(["--workers", "3", "--reuse-ms", "5", "mnt", "--handover=5,6"], tmp_path, monkeypatch)
    config = daemon.DaemonConfig(mountpoint=f"{tmp_path}/mnt", argv=argv + ["--worker=7,8,9"])
    # an earlier handover's or worker's descriptors mean nothing in a new process; --workers stays
    assert daemon.argv_for_children(config) == ["--workers", "3", "--reuse-ms", "5", f"{tmp_path}/mnt"]


def test_a_count_of_workers_outside_its_range_is_refused_in_one_line(capsys):
    for bad in ("0", "-1", "many", str(cli.MAX_WORKERS + 1)):
        try:
            cli.parser().parse_args(["--workers", bad])
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"--workers {bad} accepted")
        assert "argument --workers" in capsys.readouterr().err
