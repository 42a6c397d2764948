"""/proc/uptime: the age of the container's init and its idle time (spec §4)."""

import pytest

from lxcfs_py.files import uptime
from lxcfs_py.host import starttime_ticks
from tests.fixtures.trees import HOST_UPTIME


def test_container_uptime_from_init_start(fake):
    # host up 1000.50 s, init (pid 1000) started 500 s after boot; the container
    # used 11 s of CPU (v1 cpuacct.usage, v2 cpu.stat usage_usec)
    assert uptime.render(fake.req("/docker/abc", init_pid=1000)) == b"500.50 489.50\n"


def test_container_without_cpu_time(fake):
    # /docker/def used no CPU: idle == age; its init is pid 2000, started at 600 s
    assert uptime.render(fake.req("/docker/def", init_pid=2000)) == b"400.50 400.50\n"


def test_host_caller_sees_the_host_file(fake):
    assert uptime.render(fake.req(None)).decode() == HOST_UPTIME


@pytest.mark.parametrize("host, start_ticks, busy_ns, expected", [
    (1000.5, 50000, 11 * 10**9, "500.50 489.50\n"),
    (1000.5, 50000, None, "500.50 500.50\n"),  # no CPU time known
    (1000.5, 50000, 900 * 10**9, "500.50 500.50\n"),  # busier than old: idle = age
    (100.0, 50000, 0, "0.00 0.00\n"),  # started "after" now (clock skew): never negative
])
def test_render_text(host, start_ticks, busy_ns, expected):
    assert uptime.render_text(host, start_ticks, busy_ns, hz=100) == expected


def test_starttime_with_spaces_and_parens_in_the_command_name():
    line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0\n"
    assert starttime_ticks(line) == 12345
