"""/proc/loadavg (spec §5): host file without -l, per-container load with it."""

import shutil

import pytest

from lxcfs_py import sampler as sampling
from lxcfs_py.files import loadavg
from lxcfs_py.sampler import Load, LoadSampler, decay, format_load
from tests.fixtures.trees import HOST_LOADAVG


def test_without_the_flag_the_host_file(fake):
    assert loadavg.render(fake.req()).decode() == HOST_LOADAVG


def test_first_read_before_any_sample(fake):
    s = LoadSampler(fake.roots)
    # zero load, 0 of 1 task, and the container's init (host pid) as the last pid
    assert loadavg.render(fake.req(sampler=s, init_pid=1000)) == b"0.00 0.00 0.00 0/1 1000\n"


def test_samples_follow_the_kernel_formula(fake):
    s = LoadSampler(fake.roots)
    req = fake.req(sampler=s)
    loadavg.render(req)  # starts tracking the container
    s.sample()
    # tasks 1000 (S), 1001 (R), 1003 (S), 1002 (S): one running of four, last tid 1003
    assert loadavg.render(req) == b"0.08 0.02 0.01 1/4 1003\n"
    s.sample()
    assert loadavg.render(req) == b"0.15 0.03 0.01 1/4 1003\n"


def test_host_caller_never_tracked(fake):
    s = LoadSampler(fake.roots)
    assert loadavg.render(fake.req(None, sampler=s)).decode() == HOST_LOADAVG
    assert s.loads == {}


def test_removed_cgroup_is_forgotten(fake_rw):
    s = LoadSampler(fake_rw.roots)
    loadavg.render(fake_rw.req(sampler=s))
    for d in fake_rw.cg_dirs("/docker/abc"):
        shutil.rmtree(d)
    s.sample()
    assert s.loads == {}


@pytest.mark.parametrize("load, exp, active, expected", [
    (0, sampling.EXP[0], 2048, 164),  # spec's worked example: 164 -> "0.08"
    (164, sampling.EXP[0], 2048, 315),  # and then 315 -> "0.15"
    (315, sampling.EXP[0], 0, 289),  # decaying: no round-up
    (0, sampling.EXP[0], 0, 0),
])
def test_decay(load, exp, active, expected):
    assert decay(load, exp, active) == expected


@pytest.mark.parametrize("avenrun, expected", [
    ([164, 315, 0], "0.08 0.15 0.00 1/3 77\n"),
    ([2048 * 2 + 1024, 0, 0], "2.50 0.00 0.00 1/3 77\n"),
    ([34, 11, 2047], "0.02 0.01 1.00 1/3 77\n"),  # rounded to the nearest hundredth
])
def test_format(avenrun, expected):
    assert format_load(Load(avenrun=avenrun, running=1, total=3, last_pid=77)) == expected
