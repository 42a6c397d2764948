# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE)
"""Build lxcfs-py and its dependencies as wheels (role lxcfs_py.fleet.lxcfs, on the controller).

usage: build_wheels.py SOURCE_DIR WHEEL_DIR

The source is copied to a scratch directory first: pip's in-tree build writes
build/ and *.egg-info/ beside the source, which is often an installed collection
that must stay as installed. WHEEL_DIR appears only once every wheel is built,
so a failed build leaves nothing behind and is tried again on the next run.
Prints "built" or "already built" last.
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import sys
import tempfile

# what pyproject.toml needs to build the package
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
SOURCE_PACKAGE = "lxcfs_py"


def copy_source(source, dest):
    os.makedirs(dest)
    shutil.copytree(os.path.join(source, SOURCE_PACKAGE), os.path.join(dest, SOURCE_PACKAGE),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in SOURCE_FILES:
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), dest)


def build(source, wheels):
    if os.path.isdir(wheels):
        return "already built"
    parent = os.path.dirname(os.path.abspath(wheels))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    # inside the cache directory, so the finished wheels move into place atomically
    scratch = tempfile.mkdtemp(prefix=".build-", dir=parent)
    try:
        copy_source(source, os.path.join(scratch, "src"))
        built = os.path.join(scratch, "wheels")
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", built, os.path.join(scratch, "src")]
        status = subprocess.call(pip, stdout=sys.stderr)
        if status != 0:
            raise SystemExit("lxcfs-py: building the wheels failed (pip exited %d, its error is above); the "
                             "controller needs gcc, pkg-config, libfuse3-dev and the Python headers" % status)
        if not any(name.startswith(SOURCE_PACKAGE + "-") for name in os.listdir(built)):
            raise SystemExit("lxcfs-py: pip built no %s wheel from %s" % (SOURCE_PACKAGE, source))
        try:
            os.rename(built, wheels)
        except OSError:
            if not os.path.isdir(wheels):  # else a parallel run finished first: same source, same wheels
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "built"


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[2])
    print(build(*argv))


if __name__ == "__main__":
    main(sys.argv[1:])
