"""The collection as its users meet it: lint, syntax, documentation."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def run(*argv):
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)


def test_ansible_lint_production_profile_is_clean():
    result = run("ansible-lint", "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_yml_syntax():
    result = run("ansible-playbook", "-i", "inventories/example/hosts.yml", "site.yml", "--syntax-check")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["lxcfs_container", "lxcfs_daemon"])
def test_module_documentation_renders(module):
    result = run("ansible-doc", f"lxcfs_py.fleet.{module}")
    assert result.returncode == 0, result.stderr
    assert "EXAMPLES" in result.stdout and "RETURN VALUES" in result.stdout


@pytest.mark.parametrize("role", ["lxcfs", "docker_lxcfs", "pouch_lxcfs"])
def test_role_argument_specs_render(role):
    result = run("ansible-doc", "-t", "role", f"lxcfs_py.fleet.{role}")
    assert result.returncode == 0, result.stderr
    assert "ENTRY POINT: *main*" in result.stdout
