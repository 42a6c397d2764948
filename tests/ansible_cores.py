"""The ansible-core versions the collection claims, as `ansible-playbook` executables to run roles with.

`.venv` has the current ansible (from pyproject's test extra); scripts/install-deps.sh
adds `.venv-core-X.Y` with the lowest ansible-core that meta/runtime.yml allows.
A role test parametrized with `playbook_executables()` runs on each.
"""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CURRENT = os.path.join(REPO, ".venv", "bin", "ansible-playbook")


def lowest_core_venvs():
    """{"2.17": path of its ansible-playbook} for every .venv-core-X.Y here."""
    found = {}
    for venv in glob.glob(os.path.join(REPO, ".venv-core-*")):
        match = re.fullmatch(r"\.venv-core-(\d+\.\d+)", os.path.basename(venv))
        if match:
            found[match.group(1)] = os.path.join(venv, "bin", "ansible-playbook")
    return found


def required_core():
    """The X.Y of meta/runtime.yml's requires_ansible lower bound."""
    with open(os.path.join(REPO, "meta", "runtime.yml")) as f:
        return re.search(r"requires_ansible:\s*['\"]>=(\d+\.\d+)", f.read()).group(1)


def playbook_executables():
    """pytest params: the current ansible-playbook and the lowest claimed core's."""
    lowest = required_core()
    path = lowest_core_venvs().get(lowest, os.path.join(REPO, f".venv-core-{lowest}", "bin", "ansible-playbook"))
    return [
        pytest.param(CURRENT, id="core-current",
                     marks=pytest.mark.skipif(not os.path.exists(CURRENT), reason="needs ansible in .venv")),
        pytest.param(path, id=f"core-{lowest}",
                     marks=pytest.mark.skipif(not os.path.exists(path),
                                              reason=f"needs .venv-core-{lowest} (scripts/install-deps.sh makes it)")),
    ]
