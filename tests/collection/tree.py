"""The collection as Galaxy users get it: built with ansible-galaxy, installed from the tarball alone.

ansible-test wants the collection at .../ansible_collections/lxcfs_py/fleet: the
installed tree is that, plus the collection's own tests/sanity and tests/unit/plugins
(the tarball leaves tests/ out). The repository's collections/ link (for ansible.cfg
and Molecule) is never in it.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION_TESTS = ("tests/sanity", "tests/unit/plugins")
# ansible-test downloads this bootstrap, which cannot be fetched offline
GET_PIP_STAND_IN = '''"""Offline stand-in for get-pip.py (tests/collection/tree.py): ensurepip, then pip install ARGS."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
'''


def run(argv, **kwargs):
    # the tools run ansible-doc and friends by name: this venv's first
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", **kwargs.pop("env", {})}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=kwargs.pop("timeout", 1800), env=env,
                            **kwargs)
    result.output = result.stdout + result.stderr
    return result


def build(source, out):
    """The tarball `ansible-galaxy collection build` makes from `source`."""
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    result = run([galaxy, "collection", "build", "--force", "--output-path", str(out)], cwd=str(source))
    assert result.returncode == 0, result.output
    return glob.glob(os.path.join(str(out), "lxcfs_py-fleet-*.tar.gz"))[0]


def install(tarball, root, with_tests=True):
    """`root`/ansible_collections/lxcfs_py/fleet from the tarball alone, with the collection's tests added."""
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    result = run([galaxy, "collection", "install", "--force", "--no-deps", "-p", str(root), tarball], cwd=str(root))
    assert result.returncode == 0, result.output
    tree = os.path.join(str(root), "ansible_collections", "lxcfs_py", "fleet")
    for path in COLLECTION_TESTS if with_tests else ():
        if os.path.isdir(os.path.join(REPO, path)):
            shutil.copytree(os.path.join(REPO, path), os.path.join(tree, path),
                            ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def provide_get_pip(ansible_test):
    """Stand-ins for the get-pip bootstraps this ansible-test would download (a real one is kept)."""
    package = os.path.join(os.path.dirname(os.path.dirname(ansible_test)), "lib")
    sources = glob.glob(os.path.join(package, "python3*", "site-packages", "ansible_test", "_internal",
                                     "python_requirements.py"))
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    for source in sources:
        with open(source) as f:
            for version in re.findall(r"pip='([0-9.]+)'", f.read()):
                path = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
                if not os.path.exists(path):
                    with open(path, "w") as out:
                        out.write(GET_PIP_STAND_IN)
