"""Run one of the collection's modules for real: `ansible localhost -m ...`
from the repo root (its ansible.cfg resolves the collection from this
checkout), on Debian's /usr/bin/python3, as the roles do."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.live.daemons import scaled

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
PYTHON = "/usr/bin/python3"


def run_module(module, args, check=False, diff=False, cwd=REPO):
    """(result dict, full output) of one ad-hoc run of `module`, from `cwd` (the module's working directory)."""
    command = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % PYTHON, "-m", module, "-a", json.dumps(args)]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_DEPRECATION_WARNINGS="0",
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=scaled(300))
    output = proc.stdout + proc.stderr
    marker = output.find("localhost | ")
    assert marker >= 0, output
    start = output.index("{", marker)
    result, _end = json.JSONDecoder().raw_decode(output[start:])
    result["_status"] = output[marker:start].split("|")[1].split("=>")[0].strip()
    return result, output
