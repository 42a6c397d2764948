"""The served files are listed once (lxcfs_py.served_files); the daemon's registry and the
bind list (for `lxcfs-py mounts`, the OCI runtime wrapper and the Ansible module) follow it."""

import ast
import os
import sys

from lxcfs_py import bind_mounts, registry, served_files
from lxcfs_py.served_files import PASSTHROUGH_DIRS, SERVED_FILES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.lxcfs_py.fleet.plugins.module_utils import _lxcfs_mounts  # noqa: E402


def under_a_bound_path(path):
    return any(path == bound or path.startswith(bound + "/") for bound in bind_mounts.bound_paths())


def test_every_served_file_reaches_the_container():
    assert [path for path in SERVED_FILES if not under_a_bound_path(path)] == []
    assert set(PASSTHROUGH_DIRS) <= set(bind_mounts.bound_paths())


def test_nothing_is_bound_that_is_not_served():
    assert set(bind_mounts.bound_paths()) <= set(SERVED_FILES) | set(PASSTHROUGH_DIRS)


def test_the_bind_list_is_the_proc_files_and_the_cpu_directory():
    proc_files = sorted("/" + path for path in SERVED_FILES if path.startswith("proc/"))
    assert bind_mounts.targets() == [*proc_files, "/sys/devices/system/cpu"]
    assert ("/var/lib/lxcfs/proc/meminfo", "/proc/meminfo") in bind_mounts.bind_mounts()


def test_the_registry_builds_every_served_file_with_its_handler_and_mode():
    assert list(registry.FILES) == list(SERVED_FILES)
    for path, (module, render, mode) in SERVED_FILES.items():
        virtual = registry.FILES[path]
        assert (virtual.render.__module__, virtual.render.__name__, virtual.mode) == (
            f"lxcfs_py.files.{module}", render, mode), path
    assert registry.FILES["proc/slabinfo"].mode == 0o400
    for path, (host_dir, module, visible) in PASSTHROUGH_DIRS.items():
        entry = registry.PASSTHROUGH[path]
        assert (entry.host_dir, entry.visible.__module__, entry.visible.__name__) == (
            host_dir, f"lxcfs_py.files.{module}", visible)


def test_the_ansible_module_gets_the_same_bind_list():
    assert _lxcfs_mounts.bind_mounts("/m") == bind_mounts.bind_mounts("/m")
    for link, target in (("_lxcfs_mounts.py", bind_mounts.__file__), ("served_files.py", served_files.__file__)):
        path = os.path.join(REPO, "plugins", "module_utils", link)
        assert os.path.islink(path) and os.path.realpath(path) == os.path.realpath(target), link


def imported_modules(module):
    with open(module.__file__) as f:
        tree = ast.parse(f.read())
    return [("." * node.level) + (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names[:1]]


def test_the_shared_files_import_nothing_but_each_other():
    """Ansible runs them on managed nodes, with whatever Python 3 is there and without lxcfs_py."""
    assert imported_modules(served_files) == []
    assert imported_modules(bind_mounts) == [".served_files"]
