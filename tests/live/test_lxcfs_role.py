"""Role lxcfs_py.fleet.lxcfs on this machine: flags from -e, and the wheel build on the controller.

The role runs from a copy of this checkout's source (-e lxcfs_source_dir), with a
scratch prefix, mountpoint and wheel cache; check mode where nothing needs to run.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys

import pytest

from tests.ansible_cores import playbook_executables
from tests.live.daemons import scaled

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "tests", "live", "playbooks", "lxcfs_role.yml")
NOT_SOURCE = shutil.ignore_patterns(".venv*", ".git", "collections", "tests", "*.egg-info", "__pycache__", "molecule",
                                    "benchmarks", "build", ".pytest_cache", ".ansible")
COMPILE_ERROR = "lxcfs-py test: this extension does not compile"


@pytest.fixture
def scratch(tmp_path):
    """A source copy and the role's paths in tmp_path."""
    shutil.copytree(REPO, tmp_path / "src", ignore=NOT_SOURCE)
    return tmp_path


def role(scratch, *more, check=False, executable=os.path.join(REPO, ".venv", "bin", "ansible-playbook")):
    argv = [executable, PLAYBOOK, "-e", f"lxcfs_source_dir={scratch / 'src'}", "-e", f"lxcfs_prefix={scratch / 'opt'}",
            "-e", f"lxcfs_mountpoint={scratch / 'mnt'}", "-e", f"lxcfs_pidfile={scratch / 'pid'}",
            "-e", f"lxcfs_log_file={scratch / 'log'}", "-e", f"lxcfs_controller_cache={scratch / 'cache'}", *more]
    if check:
        argv += ["--check", "--diff"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=scaled(900),
                            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    # ansible may fold long messages at the terminal's width: compare words, not lines
    result.output = " ".join((result.stdout + result.stderr).split())
    return result


def written_into(source):
    """What a build left in the source tree."""
    return [p for p in ("build", "dist") if (source / p).exists()] + glob.glob(str(source / "*.egg-info"))


@pytest.mark.parametrize("executable", playbook_executables())
def test_flags_given_as_extra_var_strings_are_booleans(scratch, executable):
    """`-e lxcfs_enable_cfs=false` is the string "false": it must turn the flag off, not on."""
    result = role(scratch, "-e", "lxcfs_enable_cfs=false", "-e", "lxcfs_disable_swap=no",
                  "-e", "lxcfs_enable_loadavg=true", check=True, executable=executable)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # the daemon's wanted command line, from lxcfs_daemon's diff
    assert '"--enable-loadavg"' in result.stdout, result.stdout[-3000:]
    assert '"--enable-cfs"' not in result.stdout and '"--disable-swap"' not in result.stdout, result.stdout[-3000:]
    # check mode installs nothing, but the wheels are built (from a copy of the source)
    assert not (scratch / "opt").exists()
    assert written_into(scratch / "src") == []
    wheels = glob.glob(str(scratch / "cache" / "wheels-*" / "lxcfs_py-*.whl"))
    assert len(wheels) == 1, os.listdir(scratch / "cache")
    assert not glob.glob(str(scratch / "cache" / ".build-*"))


def test_a_failing_build_fails_the_play_on_the_controller(scratch):
    """A dependency that does not compile: pip's error, on the controller, every run; nothing cached or copied."""
    broken = scratch / "broken-ext"
    broken.mkdir()
    (broken / "broken.c").write_text(f'#error "{COMPILE_ERROR}"\n')
    (broken / "setup.py").write_text("from setuptools import Extension, setup\n"
                                     "setup(name='broken-ext', version='1.0', "
                                     "ext_modules=[Extension('broken', ['broken.c'])])\n")
    pyproject = scratch / "src" / "pyproject.toml"
    text = pyproject.read_text()
    assert 'dependencies = ["pyfuse3' in text
    pyproject.write_text(text.replace('dependencies = [', f'dependencies = ["broken-ext @ file://{broken}", ', 1))

    for _ in range(2):  # the failure is not remembered as a finished build
        result = role(scratch)
        assert result.returncode != 0
        assert "Build lxcfs-py and its dependencies as wheels on the controller" in result.output
        assert COMPILE_ERROR in result.output, result.output[-4000:]
        assert "building the wheels failed" in result.output, result.output[-4000:]
        assert not glob.glob(str(scratch / "cache" / "wheels-*")) and not glob.glob(str(scratch / "cache" / ".build-*"))
        assert not (scratch / "opt" / "wheels").exists()  # the target got nothing
        assert written_into(scratch / "src") == []


def test_a_target_of_another_architecture_is_refused(scratch):
    """Same Python version, other CPU: the controller's wheels would not load there."""
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    python = scratch / "python-other-arch"
    python.write_text(f"#!/bin/sh\n# a Python reporting another machine; only -c CODE\n"
                      f"exec {sys.executable} -c \"import platform, sys; platform.machine = lambda: '{other}'; "
                      "exec(sys.argv[1])\" \"$2\"\n")
    python.chmod(0o755)
    result = role(scratch, "-e", f"lxcfs_python={python}", check=True)
    assert result.returncode != 0
    assert f"-{other} but the controller builds wheels with Python" in result.output, result.output[-3000:]
    assert f"-{platform.machine()}" in result.output and "CPU architecture must match" in result.output
