"""Broken, missing or vanishing inputs: every file still renders something sensible,
or fails with OSError/ValueError, which the FUSE adapter turns into an errno.

Every scenario breaks its own copy of the container /docker/abc (/docker/s<N>,
under the same /docker parent with its 1 GiB limit); then every virtual file is
rendered for it with and without --enable-cfs, and the outputs it names checked.
"""

import os
import shutil
from dataclasses import dataclass, field
from typing import Callable

import pytest

from lxcfs_py.context import Options
from lxcfs_py.registry import FILES
from lxcfs_py.sampler import LoadSampler
from tests.fixtures import trees

HOST = "the host's file"  # expected: the host's file verbatim
# expected: the host's /proc/stat, but btime the container's start (its init started 500 s after the host)
HOST_STAT_CONTAINER_BTIME = trees.host_stat().replace("btime 1700000000", "btime 1700000500")
HOST_FILES = {"proc/meminfo": trees.HOST_MEMINFO, "proc/stat": trees.host_stat(),
              "proc/diskstats": trees.HOST_DISKSTATS, "proc/slabinfo": trees.HOST_SLABINFO,
              "proc/cpuinfo": trees.HOST_CPUINFO}

MEM_LIMIT = {1: "memory.limit_in_bytes", 2: "memory.max"}
MEM_USAGE = {1: "memory.usage_in_bytes", 2: "memory.current"}
CPU_QUOTA = {1: "cpu.cfs_quota_us", 2: "cpu.max"}
CPUSET = {1: ("cpuset.cpus", "cpuset.effective_cpus"), 2: "cpuset.cpus.effective"}
GARBAGE = "garbage \x00\xff line\nfile\ncache x\n12 34 56\n"


class ByVersion(dict):
    """Expected outputs that differ between v1 and v2: ByVersion({1: ..., 2: ...})."""


def _files(fake, cgroup, name) -> list[str]:
    """name: a file name, a tuple of them, or {version: either} (a version left out: none)."""
    if isinstance(name, dict):
        name = name.get(fake.version, ())
    names = (name,) if isinstance(name, str) else name
    return [fake.cg_file(cgroup, n) for n in names]


def rm(name):
    return lambda fake, cgroup: [os.unlink(path) for path in _files(fake, cgroup, name)]


def put(name, text):
    return lambda fake, cgroup: [trees.write(path, text) for path in _files(fake, cgroup, name)]


def every_file(text):
    def apply(fake, cgroup):
        for directory in fake.cg_dirs(cgroup):
            for name in os.listdir(directory):
                trees.write(f"{directory}/{name}", text)
    return apply


def remove_cgroup(fake, cgroup):
    for directory in fake.cg_dirs(cgroup):
        shutil.rmtree(directory)


ALL_CPUS = {"proc/cpuinfo": trees.HOST_CPUINFO, "sys/devices/system/cpu/online": "0-3\n",
            "sys/devices/system/cpu/online --enable-cfs": "0-3\n"}


@dataclass
class Scenario:
    id: str
    breakage: Callable | None = None  # (fake, cgroup) -> None, applied after the tree is built
    controllers: tuple[str, ...] | None = None  # what /proc/<pid>/cgroup lists (None: all)
    init_pid: int = 1000
    expected: dict = field(default_factory=dict)  # '<path>[ --enable-cfs]' -> output, HOST or exception


SCENARIOS = [
    # the control: an unbroken copy of /docker/abc shows what /docker/abc shows
    Scenario("nothing broken", expected={
        "proc/meminfo": {"MemTotal": 524288, "MemFree": 421888, "Cached": 40960}, "proc/uptime": "500.50 489.50\n",
        "sys/devices/system/cpu/online": "1,3\n", "sys/devices/system/cpu/online --enable-cfs": "0-1\n",
        "proc/slabinfo": ByVersion({1: trees.CGROUP_SLABINFO, 2: trees.HOST_SLABINFO})}),
    Scenario("memory.stat absent", rm("memory.stat"), expected={"proc/meminfo": HOST}),
    Scenario("memory.stat garbage", put("memory.stat", GARBAGE), expected={
        "proc/meminfo": {"MemTotal": 524288, "MemFree": 421888, "Cached": 0, "MemAvailable": 421888, "Active": 0}}),
    Scenario("memory.stat empty", put("memory.stat", ""), expected={"proc/meminfo": {"MemTotal": 524288, "Cached": 0}}),
    Scenario("memory limit absent", rm(MEM_LIMIT), expected={"proc/meminfo": {"MemTotal": 1048576}}),  # the parent's
    Scenario("memory limit empty", put(MEM_LIMIT, ""), expected={"proc/meminfo": {"MemTotal": 1048576}}),
    Scenario("memory usage absent", rm(MEM_USAGE), expected={"proc/meminfo": HOST, "proc/swaps": ""}),
    Scenario("memory usage garbage", put(MEM_USAGE, "lots\n"), expected={"proc/meminfo": ValueError}),
    # as LXCFS: an unreadable v1 quota turns the CPU view off (the cpuset shows); v2's
    # unparsable cpu.max is "no quota" (the cpuset's CPUs, numbered from 0)
    Scenario("cpu quota garbage", put(CPU_QUOTA, "abc def\n"), expected={
        "sys/devices/system/cpu/online --enable-cfs": ByVersion({1: "1,3\n", 2: "0-1\n"})}),
    Scenario("cpuset garbage", put(CPUSET, "1-x,\n"), expected=ALL_CPUS),
    Scenario("cpuset empty", put(CPUSET, "\n"), expected=ALL_CPUS),
    # v1: no cpuset line in /proc/<pid>/cgroup; v2: the controller not enabled for the cgroup
    Scenario("no cpuset controller", rm({2: "cpuset.cpus.effective"}), controllers=("memory", "cpu", "cpuacct", ""),
             expected=ALL_CPUS),
    Scenario("every file garbage", every_file(GARBAGE)),
    Scenario("every file empty", every_file("")),
    # meminfo and swaps let FileNotFoundError through: the FUSE adapter then resolves the
    # caller afresh (see test_fuse_ops); the other files fall back to the host's values
    Scenario("cgroup removed after resolving", remove_cgroup, expected={
        **ALL_CPUS, "proc/meminfo": FileNotFoundError, "proc/swaps": FileNotFoundError, "proc/stat": HOST_STAT_CONTAINER_BTIME,
        "proc/diskstats": HOST, "proc/slabinfo": HOST, "proc/uptime": "500.50 500.50\n"}),
    Scenario("init exited after resolving", init_pid=4242, expected={"proc/uptime": FileNotFoundError}),
]
CONTAINERS = {s.id: f"/docker/s{n}" for n, s in enumerate(SCENARIOS)}


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def broken(request, tmp_path_factory):
    """One tree per version with every scenario applied to its own container."""
    cgroups = {path: trees.CGROUPS[path] for path in ("/", "/docker")}
    cgroups |= {path: trees.CGROUPS["/docker/abc"] for path in CONTAINERS.values()}
    fake = trees.build(tmp_path_factory.mktemp("broken"), request.param, cgroups)
    for scenario in SCENARIOS:
        if scenario.breakage is not None:
            scenario.breakage(fake, CONTAINERS[scenario.id])
    return fake


def render_all(fake, scenario):
    """{'<path>[ --enable-cfs]': output text or exception type} for every virtual file."""
    cgroup = CONTAINERS[scenario.id]
    paths = None if scenario.controllers is None else {c: cgroup for c in scenario.controllers}
    outputs = {}
    for cfs in (False, True):
        sampler = LoadSampler(fake.roots)
        for path, virtual in FILES.items():
            req = fake.req(cgroup, Options(cfs=cfs), paths=paths, init_pid=scenario.init_pid, sampler=sampler)
            key = path + (" --enable-cfs" if cfs else "")
            try:
                outputs[key] = virtual.render(req).decode()
            except (OSError, ValueError) as err:  # anything else fails the test
                outputs[key] = type(err)
    return outputs


def check(key, want, got, version):
    if isinstance(want, ByVersion):
        want = want[version]
    if want is HOST:
        assert got == HOST_FILES[key.split()[0]], key
    elif isinstance(want, type):  # an exception
        assert isinstance(got, type) and issubclass(got, want), key
    elif isinstance(want, dict):  # some meminfo lines
        values = {line.partition(":")[0]: int(line.split()[1]) for line in got.splitlines()}
        assert {k: values[k] for k in want} == want, key
    else:
        assert got == want, key


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(broken, scenario):
    outputs = render_all(broken, scenario)
    for key, want in scenario.expected.items():
        check(key, want, outputs[key], broken.version)
