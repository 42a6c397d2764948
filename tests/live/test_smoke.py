"""What a user sees in a limited container with lxcfs-py's files bound over /proc."""

from tests.live.containers import docker_run


def test_free_shows_the_memory_limit(docker, start_daemon):
    daemon = start_daemon()
    out = docker_run(daemon.mountpoint, ["-m", "200m"], "free -h; free -b")
    mem = [line.split() for line in out.splitlines() if line.startswith("Mem:")]
    assert mem[0][1] == "200Mi"
    assert mem[1][1] == str(200 * 1024 * 1024)


def test_cpu_count_follows_cpuset(docker, start_daemon):
    daemon = start_daemon()
    out = docker_run(daemon.mountpoint, ["--cpuset-cpus", "0"],
                     "nproc; getconf _NPROCESSORS_ONLN; getconf _NPROCESSORS_CONF; grep -c ^processor /proc/cpuinfo")
    assert out.split() == ["1", "1", "1", "1"]


def test_uptime_is_the_container_age(docker, start_daemon):
    daemon = start_daemon()
    out = docker_run(daemon.mountpoint, [], "sleep 2; cat /proc/uptime; uptime")
    age = float(out.split()[0])
    assert 1.5 <= age < 15, out
    assert "up 0 min" in out


def test_without_lxcfs_the_host_totals_show(docker):
    out = docker_run(None, ["-m", "200m"], "free -b")
    total = int(next(line.split()[1] for line in out.splitlines() if line.startswith("Mem:")))
    assert total > 200 * 1024 * 1024
