"""The collection by Ansible's own standards: its tarball, ansible-test sanity on each
ansible-core it claims, antsibull-docs and antsibull-changelog lint."""

import os
import re
import shutil
import sys
import tarfile

import pytest

from tests.ansible_cores import lowest_core_venvs, required_core
from tests.collection import tree

REPO = tree.REPO
BIN = os.path.dirname(sys.executable)
DEVELOPMENT_FILES = (".venv/", ".pytest_cache/", ".ansible/", "build/", "scripts/", "tests/", "molecule/",
                     "inventories/local/", "collections/", "ansible.cfg", "site.yml")


def tool(name):
    return shutil.which(name, path=BIN)


def needs(name):
    return pytest.mark.skipif(tool(name) is None, reason=f"{name} is not installed (pyproject's test extra has it)")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """Built from a copy of the working tree in which development leftovers lie around."""
    source = tmp_path_factory.mktemp("source") / "fleet"
    shutil.copytree(REPO, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv*", ".git", "__pycache__", ".pytest_cache", ".ansible"))
    for leftover in (".venv/bin", ".pytest_cache/v", ".ansible/tmp", "build/lib"):
        (source / leftover).mkdir(parents=True, exist_ok=True)
        (source / leftover / "leftover").write_text("x")
    return tree.build(source, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    return tree.install(tarball, tmp_path_factory.mktemp("installed"))


def test_tarball_holds_the_collection_and_no_development_files(tarball):
    with tarfile.open(tarball) as f:
        names = f.getnames()
    assert {"LICENSE", "README.md", "playbooks/site.yml", "meta/runtime.yml", "MANIFEST.json",
            "roles/lxcfs/tasks/main.yml", "roles/lxcfs/files/build_wheels.py", "plugins/modules/lxcfs_daemon.py",
            "pyproject.toml", "lxcfs_py/__init__.py"} <= set(names)
    leaked = sorted(n for n in names for d in DEVELOPMENT_FILES if n == d.rstrip("/") or n.startswith(d))
    assert leaked == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".egg-info")]


def test_license_is_apache_as_pyproject_says():
    with open(os.path.join(REPO, "LICENSE")) as f:
        assert "Apache License" in f.read(200)
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        assert 'license = { text = "Apache-2.0" }' in f.read()


@needs("ansible-playbook")
def test_site_playbook_runs_by_its_fqcn_from_the_installed_collection(installed, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(installed)))
    result = tree.run([tool("ansible-playbook"), "-i", os.path.join(REPO, "inventories", "example", "hosts.yml"),
                       "lxcfs_py.fleet.site", "--syntax-check"],
                      cwd=str(tmp_path), env={"ANSIBLE_COLLECTIONS_PATH": root})
    assert result.returncode == 0, result.output


def ansible_test_executables():
    """ansible-test of the current core and of the lowest one the collection claims."""
    lowest = required_core()
    venv = lowest_core_venvs().get(lowest)
    return [
        pytest.param(tool("ansible-test"), id="core-current", marks=needs("ansible-test")),
        pytest.param(venv and os.path.join(os.path.dirname(venv), "ansible-test"), id=f"core-{lowest}",
                     marks=pytest.mark.skipif(venv is None, reason=f"needs .venv-core-{lowest} "
                                                                   "(scripts/install-deps.sh makes it)")),
    ]


def run_ansible_test(ansible_test, command, installed):
    tree.provide_get_pip(ansible_test)
    python = "%d.%d" % sys.version_info[:2]
    result = tree.run([ansible_test, command, "--local", "--python", python], cwd=installed)
    failures = [line for line in result.output.splitlines() if line.startswith(("ERROR", "FATAL", "FAILED"))]
    assert result.returncode == 0, "\n".join(failures) or result.output[-5000:]
    return result.output


@pytest.mark.parametrize("ansible_test", ansible_test_executables())
def test_ansible_test_sanity(installed, ansible_test):
    run_ansible_test(ansible_test, "sanity", installed)


@pytest.mark.parametrize("ansible_test", ansible_test_executables())
def test_ansible_test_units_runs_the_plugin_unit_tests(installed, ansible_test):
    output = run_ansible_test(ansible_test, "units", installed)
    # one pytest run per group of tests/unit/plugins (modules, module_utils), each with tests that passed
    passed = [int(n) for n in re.findall(r"=+ (\d+) passed in", output)]
    assert len(passed) == 2 and min(passed) > 0, output[-3000:]


@needs("antsibull-docs")
def test_antsibull_docs_lint(installed):
    result = tree.run([tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], cwd=installed)
    assert result.returncode == 0, result.output


@needs("antsibull-changelog")
def test_antsibull_changelog_lint():
    result = tree.run([tool("antsibull-changelog"), "lint"], cwd=REPO)
    assert result.returncode == 0 and "ERROR" not in result.output, result.output
