"""Role lxcfs_py.fleet.pouch_lxcfs: the rendered pouch.service drop-in, the lxcfs
settings merged into pouchd's config file, the lxcfs-py drop-in that binds the
home, idempotence, check mode, absent.

The role runs against this machine with every path in a scratch directory and a
fake pouchd; without systemd as PID 1 it writes the files and says pouch was not
restarted. A real pouchd: molecule/pouch.
"""

import getpass
import grp
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.ansible_cores import playbook_executables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "tests", "unit", "playbooks", "pouch_lxcfs.yml")
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=os.path.join(REPO, ".venv", "bin")) or shutil.which(
    "ansible-playbook")

pytestmark = pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-playbook is not installed")


@pytest.fixture
def root(tmp_path):
    """A scratch 'root': unit dir, pouchd, config file."""
    (tmp_path / "units").mkdir()
    pouchd = tmp_path / "bin" / "pouchd"
    pouchd.parent.mkdir()
    pouchd.write_text("#!/bin/sh\nexit 0\n")
    pouchd.chmod(0o755)
    (tmp_path / "pouch").mkdir()
    (tmp_path / "lxc").mkdir()
    return tmp_path


def play(root, check=False, executable=None, **overrides):
    extra = {
        "ansible_python_interpreter": "/usr/bin/python3",
        "pouch_lxcfs_unit_dir": str(root / "units"),
        "pouch_lxcfs_pouchd_path": str(root / "bin" / "pouchd"),
        "pouch_lxcfs_config_file": str(root / "pouch" / "config.json"),
        "pouch_lxcfs_home": str(root / "lxc" / "lxcfs"),
        "pouch_lxcfs_file_owner": getpass.getuser(),
        "pouch_lxcfs_file_group": grp.getgrgid(os.getgid()).gr_name,
        **overrides,
    }
    (root / "vars.json").write_text(json.dumps(extra))
    argv = [executable or ANSIBLE_PLAYBOOK, "-i", "localhost,", PLAYBOOK, "-e", f"@{root / 'vars.json'}", "--diff"]
    if check:
        argv.append("--check")
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    # ansible may fold long messages at the terminal's width: compare words, not lines
    result.output = " ".join((result.stdout + result.stderr).split())
    return result


def recap(result):
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"), match.groups())}


def dropin(root):
    return root / "units" / "pouch.service.d" / "lxcfs-py.conf"


def config(root):
    return json.loads((root / "pouch" / "config.json").read_text())


def home_dropin(root):
    return root / "units" / "lxcfs-py.service.d" / "pouch-lxcfs-home.conf"


def exec_start(text):
    return [line for line in text.splitlines() if line.startswith("ExecStart=")]


def test_syntax_check():
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "--syntax-check", PLAYBOOK], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_renders_the_dropin_idempotently(root):
    args = ["--enable-cri=true", "--label", "team=a b", "--home-dir=/data/100%", 'say="$HOME"']
    first = play(root, pouch_lxcfs_pouchd_args=args, pouch_lxcfs_mountpoint="/srv/lxcfs/")
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first)["changed"] >= 1
    # no systemd here: no restart, but the role says what to do
    assert "was not restarted" in first.stdout and "systemd is not PID 1" in first.stdout

    text = dropin(root).read_text()
    assert exec_start(text) == [
        "ExecStart=",
        f"ExecStart={root}/bin/pouchd --enable-cri=true --label \"team=a b\" --home-dir=/data/100%% "
        r'"say=\"$$HOME\""',
    ]
    assert "[Unit]\nWants=lxcfs-py.service\nAfter=lxcfs-py.service\n" in text
    assert text.index("[Unit]") < text.index("[Service]")
    assert oct(dropin(root).stat().st_mode & 0o777) == "0o644"

    second = play(root, pouch_lxcfs_pouchd_args=args, pouch_lxcfs_mountpoint="/srv/lxcfs/")
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second)["changed"] == 0
    assert "was not restarted" not in second.stdout  # the handler runs only on a change


def test_defaults(root):
    result = play(root)
    assert result.returncode == 0, result.stdout + result.stderr
    # the lxcfs settings are in the config file, not on the command line
    assert exec_start(dropin(root).read_text())[1] == f"ExecStart={root}/bin/pouchd"
    home = root / "lxc" / "lxcfs"
    assert config(root) == {"enable-lxcfs": True, "lxcfs-home": str(home)}
    assert home.is_dir()
    # lxcfs-py's mount is bound at the home whenever lxcfs-py starts
    text = home_dropin(root).read_text()
    assert f"ExecStartPost=/bin/mount --bind /var/lib/lxcfs {home}\n" in text
    assert f"ExecStopPost=-/bin/umount -l {home}\n" in text


def test_merges_into_a_config_file_with_other_keys(root):
    # with any key in the file pouchd drops --enable-lxcfs from its command line:
    # the setting has to be in the file, beside the host's own keys
    other = {"network-config": {"bridge-config": {"iptables": False}}, "debug": True}
    (root / "pouch" / "config.json").write_text(json.dumps(other))
    result = play(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config(root) == {**other, "enable-lxcfs": True, "lxcfs-home": str(root / "lxc" / "lxcfs")}
    again = play(root)
    assert again.returncode == 0 and recap(again)["changed"] == 0
    # values the role owns are corrected
    (root / "pouch" / "config.json").write_text(json.dumps({**other, "enable-lxcfs": False, "lxcfs-home": "/x"}))
    assert recap(play(root))["changed"] >= 1
    assert config(root)["enable-lxcfs"] is True and config(root)["lxcfs-home"] == str(root / "lxc" / "lxcfs")


def test_refuses_a_home_whose_parent_holds_other_files(root):
    # pouch binds the home's parent into every --enableLxcfs container
    (root / "lxc" / "secret").write_text("host data")
    result = play(root)
    assert result.returncode != 0
    assert f"{root / 'lxc'} holds {root / 'lxc' / 'secret'}" in result.output
    assert not dropin(root).exists()


def test_lxcfs_binary_and_no_unit_ordering(root):
    result = play(root, pouch_lxcfs_lxcfs_bin="/opt/lxcfs-py/venv/bin/lxcfs-py", pouch_lxcfs_lxcfs_unit="",
                  pouch_lxcfs_mountpoint=str(root / "lxc" / "lxcfs"))
    assert result.returncode == 0, result.stdout + result.stderr
    text = dropin(root).read_text()
    assert "[Unit]" not in text
    assert config(root)["lxcfs"] == "/opt/lxcfs-py/venv/bin/lxcfs-py"


def test_check_mode_writes_nothing(root):
    result = play(root, check=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap(result)["changed"] >= 1
    assert "+ExecStart=" in result.stdout  # the diff shows what would be written
    assert not (root / "units" / "pouch.service.d").exists()


def test_change_is_rewritten(root):
    assert play(root).returncode == 0
    result = play(root, pouch_lxcfs_home=str(root / "lxc2" / "home"))
    assert recap(result)["changed"] >= 1
    assert config(root)["lxcfs-home"] == str(root / "lxc2" / "home")


def test_absent_removes_it(root):
    assert play(root).returncode == 0
    result = play(root, pouch_lxcfs_state="absent")
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap(result)["changed"] >= 1
    assert not (root / "units" / "pouch.service.d").exists()
    assert not home_dropin(root).exists()
    assert config(root) == {}
    again = play(root, pouch_lxcfs_state="absent")
    assert again.returncode == 0 and recap(again)["changed"] == 0


def test_absent_keeps_other_dropins(root):
    assert play(root).returncode == 0
    mine = root / "units" / "pouch.service.d" / "10-mine.conf"
    mine.write_text("[Service]\nLimitNOFILE=1048576\n")
    result = play(root, pouch_lxcfs_state="absent")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not dropin(root).exists() and mine.exists()


def test_refuses_lxcfs_flags_in_the_other_options(root):
    result = play(root, pouch_lxcfs_pouchd_args=["--lxcfs-home=/elsewhere"])
    assert result.returncode != 0 and "sets --lxcfs-home=/elsewhere" in result.output


def test_refuses_a_missing_pouchd(root):
    result = play(root, pouch_lxcfs_pouchd_path=str(root / "bin" / "nope"))
    assert result.returncode != 0 and "install PouchContainer first" in result.output


def test_argument_spec_is_enforced(root):
    result = play(root, pouch_lxcfs_state="running")
    assert result.returncode != 0 and "pouch_lxcfs_state" in result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(root):
    assert play(root, pouch_lxcfs_pouchd_args=["--label", "a b"], pouch_lxcfs_lxcfs_unit="",
                pouch_lxcfs_mountpoint=str(root / "lxc" / "lxcfs")).returncode == 0
    unit = root / "units" / "pouch.service"
    unit.write_text(f"[Unit]\nDescription=pouch\n\n[Service]\nExecStart={root}/bin/pouchd\n")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            env={**os.environ, "SYSTEMD_UNIT_PATH": f"{root / 'units'}:"}, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "pouch.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


@pytest.mark.parametrize("executable", playbook_executables())
def test_config_file_merge_on_each_core(root, executable):
    """On every ansible-core the collection claims (2.17 and 2.18 turn JSON text held in a
    variable into a dict before from_json): a config file of other keys is read and merged."""
    (root / "pouch" / "config.json").write_text(json.dumps({"debug": True}))
    result = play(root, executable=executable)
    assert result.returncode == 0, result.stdout + result.stderr
    assert config(root) == {"debug": True, "enable-lxcfs": True, "lxcfs-home": str(root / "lxc" / "lxcfs")}