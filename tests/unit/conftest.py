"""Fixture trees for the unit tests.

`v1`, `v2`, `fake` (= each of them in turn) and `trees_by_version` are built
once per session and shared: tests must only read them. A test that changes
files takes `v1_rw`, `v2_rw` or `fake_rw`, built fresh for it with the
cgroups in trees.SMALL only.
"""

import hashlib
import os

import pytest

from tests.fixtures import trees


def _digest(root: str) -> str:
    h = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            h.update(path.encode())
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="session")
def trees_by_version(tmp_path_factory):
    built = {v: trees.build(tmp_path_factory.mktemp(f"shared-v{v}"), v) for v in (1, 2)}
    before = {v: _digest(os.path.dirname(fake.roots.proc)) for v, fake in built.items()}
    yield built
    after = {v: _digest(os.path.dirname(fake.roots.proc)) for v, fake in built.items()}
    assert before == after, "a test changed a shared fixture tree: use the *_rw fixtures to write"


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fake(request, trees_by_version):
    return trees_by_version[request.param]


@pytest.fixture
def v1(trees_by_version):
    return trees_by_version[1]


@pytest.fixture
def v2(trees_by_version):
    return trees_by_version[2]


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fake_rw(request, tmp_path):
    return trees.build(tmp_path, request.param, trees.SMALL)


@pytest.fixture
def v1_rw(tmp_path):
    return trees.build(tmp_path, 1, trees.SMALL)


@pytest.fixture
def v2_rw(tmp_path):
    return trees.build(tmp_path, 2, trees.SMALL)
