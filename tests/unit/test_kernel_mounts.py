"""Opening a path inside a container's root, with and without openat2 (seccomp filters refuse it)."""

import errno
import os

import pytest

from lxcfs_py import kernel_mounts


@pytest.fixture(params=["openat2", "refused"])
def open_in_root(request, monkeypatch):
    if request.param == "refused":  # systemd's RestrictSUIDSGID= answers openat2 with ENOSYS
        def enosys(*args):
            raise OSError(errno.ENOSYS, "openat2: Function not implemented")
        monkeypatch.setattr(kernel_mounts, "openat2", enosys)
    return kernel_mounts.open_in_root


@pytest.fixture
def root(tmp_path):
    """A container root with proc/meminfo, an absolute symlink out of it and a symlinked directory."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 1 kB\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("not the host's\n")
    (tmp_path / "out").symlink_to("/etc/passwd")
    (tmp_path / "dirlink").symlink_to("/etc")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def read(fd) -> str:
    with open(f"/proc/self/fd/{fd}") as f:
        return f.read()


def test_a_path_in_the_root_opens(open_in_root, root):
    fd = open_in_root(root, "/proc/meminfo", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert read(fd) == "MemTotal: 1 kB\n"
    finally:
        os.close(fd)


def test_a_final_symlink_is_never_followed_out_of_the_root(open_in_root, root):
    fd = open_in_root(root, "/out", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").endswith("/out")  # the link itself, not /etc/passwd
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", ["/dirlink/passwd", "/../../../etc/passwd"], ids=["symlinked-dir", "dot-dot"])
def test_nothing_on_the_way_leads_to_the_hosts_files(open_in_root, root, path):
    try:
        fd = open_in_root(root, path, os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        return  # refused (the walk allows no symlink and no '..' on the way)
    try:
        assert read(fd) == "not the host's\n"  # openat2 resolved /etc inside the root
    finally:
        os.close(fd)
