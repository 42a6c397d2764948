"""The fence around pyfuse3's private wait (lxcfs_py/fuse_wait.py): versions and hook."""

import re
from importlib.metadata import version

import pyfuse3

from lxcfs_py import fuse_wait

REPO = __file__.rsplit("/tests/", 1)[0]


def test_the_installed_pyfuse3_is_a_tested_one():
    installed = version("pyfuse3")
    assert installed.startswith(fuse_wait.TESTED_VERSIONS), (
        f"pyfuse3 {installed}: check lxcfs_py/fuse_wait.py against it, then add it to TESTED_VERSIONS")


def test_pyproject_allows_only_the_tested_versions():
    with open(f"{REPO}/pyproject.toml") as f:
        bound = re.search(r'"pyfuse3([^"]*)"', f.read()).group(1)
    tested = sorted(int(v.split(".")[1]) for v in fuse_wait.TESTED_VERSIONS)
    assert bound == f">=3.{tested[0]},<3.{tested[-1] + 1}"


def test_pyfuse3_still_has_the_hook():
    assert fuse_wait.hook_present(), f"pyfuse3 has no {fuse_wait.HOOK} any more: see lxcfs_py/fuse_wait.py"
    assert callable(getattr(pyfuse3, fuse_wait.HOOK))
