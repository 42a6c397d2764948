# -*- coding: utf-8 -*-
# Copyright: lxcfs-py developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The plugin unit tests run by `ansible-test units` in the installed collection and by
pytest from a checkout, where `collections/` links the repository in as the collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

from ansible.module_utils import basic

CHECKOUT_COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "collections")
if os.path.isdir(CHECKOUT_COLLECTIONS) and CHECKOUT_COLLECTIONS not in sys.path:
    sys.path.insert(0, CHECKOUT_COLLECTIONS)

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
except ImportError:  # ansible-core 2.17 and 2.18 read the arguments from basic._ANSIBLE_ARGS
    import contextlib

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


@pytest.fixture
def run_main(capsys):
    """run_main(main, args) runs a module's main() and returns what it reported (its JSON)."""
    def run(main, args):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                main()
        return json.loads(capsys.readouterr().out)
    return run
