"""Which binds the healer considers, and the records it heals from."""

import logging
import os
import stat

import pytest

from lxcfs_py import heal_records, kernel_mounts, remount

OURS_LIVE = "50 1 0:60 / /var/lib/lxcfs rw,nosuid - fuse.lxcfs lxcfs-py:aaaa rw,user_id=0"
STALE_BIND = "71 60 0:52 /proc/meminfo /proc/meminfo ro,nosuid - fuse.lxcfs lxcfs-py:dead rw,user_id=0"
# another daemon's live mount that was given the recorded device number
REUSED_DEVICE = "72 60 0:52 /proc/stat /proc/stat ro - fuse.lxcfs lxcfs-py:live rw,user_id=0"
REFERENCE_LXCFS = "73 60 0:52 /proc/uptime /proc/uptime ro - fuse.lxcfs lxcfs rw,user_id=0"
HIDDEN = "74 60 0:52 /proc/swaps /proc/swaps ro - fuse.lxcfs lxcfs-py:dead rw,user_id=0"
OVER_HIDDEN = "75 60 0:9 / /proc/swaps ro - tmpfs none rw"
log = logging.getLogger("test")


def test_parse_mountinfo_unescapes_paths():
    (mount,) = kernel_mounts.parse_mountinfo(r"1 2 0:5 / /a\040b rw - fuse.lxcfs lxcfs-py:x rw")
    assert (mount["id"], mount["target"], mount["device"], mount["fstype"], mount["source"]) == (
        1, "/a b", "0:5", "fuse.lxcfs", "lxcfs-py:x")


def test_candidates_are_known_by_device_and_unique_source():
    mounts = kernel_mounts.parse_mountinfo("\n".join([STALE_BIND, REUSED_DEVICE, REFERENCE_LXCFS, HIDDEN,
                                                      OVER_HIDDEN]))
    (found,) = remount.candidates(mounts, {("0:52", "lxcfs-py:dead")})
    assert (found["id"], found["target"]) == (71, "/proc/meminfo")


def test_fresh_mounts_get_sources_of_their_own():
    first, second = kernel_mounts.new_fsname(), kernel_mounts.new_fsname()
    assert first != second and first.startswith("lxcfs-py:")
    for source in (first, "lxcfs-py"):
        assert kernel_mounts.is_ours({"fstype": "fuse.lxcfs", "source": source})
    assert not kernel_mounts.is_ours({"fstype": "fuse.lxcfs", "source": "lxcfs"})


def fake_proc(tmp_path, line, container_lines=()):
    for pid, lines, ns in (("self", [line], "mnt:[1]"), ("100", container_lines, "mnt:[2]")):
        (tmp_path / pid / "ns").mkdir(parents=True)
        (tmp_path / pid / "mountinfo").write_text("".join(f"{entry}\n" for entry in lines))
        os.symlink(ns, tmp_path / pid / "ns" / "mnt")
    return str(tmp_path)


def test_records_keep_the_last_mounts_once_and_forget_clean_unmounts(tmp_path):
    records = str(tmp_path / "run")
    for step, device in enumerate(["0:1", "0:2", "0:1"]):
        proc = fake_proc(tmp_path / str(step), OURS_LIVE.replace("0:60", device))
        heal_records.record(proc, "/var/lib/lxcfs", records)
    assert heal_records.recorded("/var/lib/lxcfs", records) == [("0:2", "lxcfs-py:aaaa"), ("0:1", "lxcfs-py:aaaa")]
    assert heal_records.recorded("/elsewhere", records) == []
    assert stat.S_IMODE(os.stat(records).st_mode) == 0o700
    remount.forget_on_unmount(proc, "/var/lib/lxcfs", log, records)  # the live one is 0:1
    assert heal_records.recorded("/var/lib/lxcfs", records) == [("0:2", "lxcfs-py:aaaa")]
    remount.forget_on_unmount(fake_proc(tmp_path / "x", OURS_LIVE.replace("0:60", "0:2")), "/var/lib/lxcfs", log,
                              records)
    assert os.listdir(records) == []  # the empty file is removed


def test_a_mount_containers_still_bind_stays_recorded_for_a_successor(tmp_path):
    records = str(tmp_path / "run")
    bind = STALE_BIND.replace("0:52", "0:60").replace("lxcfs-py:dead", "lxcfs-py:aaaa")
    proc = fake_proc(tmp_path / "p", OURS_LIVE, [bind])
    heal_records.record(proc, "/var/lib/lxcfs", records)
    remount.forget_on_unmount(proc, "/var/lib/lxcfs", log, records)
    assert heal_records.recorded("/var/lib/lxcfs", records) == [("0:60", "lxcfs-py:aaaa")]


def test_a_heal_forgets_earlier_mounts_no_longer_bound_anywhere(tmp_path):
    records = str(tmp_path / "run")
    for device in ("0:52", "0:53"):
        heal_records.record(fake_proc(tmp_path / device, OURS_LIVE.replace("0:60", device)), "/var/lib/lxcfs",
                            records)
    # 0:52's bind is in a container (the fake one cannot be opened, so it is not healed); 0:53 is gone
    proc = fake_proc(tmp_path / "p", OURS_LIVE, [STALE_BIND.replace("lxcfs-py:dead", "lxcfs-py:aaaa")])
    assert remount.remount("/var/lib/lxcfs", proc_root=proc, out=print, record_dir=records, dry_run=True) == 0
    assert len(heal_records.recorded("/var/lib/lxcfs", records)) == 2  # a dry run changes nothing
    assert remount.remount("/var/lib/lxcfs", proc_root=proc, out=print, record_dir=records) == 0
    assert heal_records.recorded("/var/lib/lxcfs", records) == [("0:52", "lxcfs-py:aaaa")]


def test_old_records_without_a_source_still_read(tmp_path):
    records = tmp_path / "run"
    records.mkdir(mode=0o700)
    (records / heal_records._file_name("/m")).write_text("0:52\n")
    assert heal_records.recorded("/m", str(records)) == [("0:52", "lxcfs-py")]


def test_a_symlinked_record_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "run")
    proc = fake_proc(tmp_path / "p", OURS_LIVE)
    with pytest.raises(OSError, match="symlink"):
        heal_records.record(proc, "/var/lib/lxcfs", str(tmp_path / "run"))
    assert os.listdir(elsewhere) == []
    lines = []
    assert remount.remount("/var/lib/lxcfs", proc_root=proc, out=lines.append, record_dir=str(tmp_path / "run")) == 1
    assert len(lines) == 1 and "symlink" in lines[0]


def test_a_record_file_symlink_is_not_followed(tmp_path):
    records = tmp_path / "run"
    records.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    name = heal_records._file_name("/var/lib/lxcfs")
    os.symlink(victim, records / name)
    heal_records.record(fake_proc(tmp_path / "p", OURS_LIVE), "/var/lib/lxcfs", str(records))
    assert victim.read_text() == "keep\n"
    assert not os.path.islink(records / name)
    assert stat.S_IMODE(os.stat(records).st_mode) == 0o700  # tightened


def test_a_record_dir_of_another_user_is_refused(tmp_path):
    records = tmp_path / "run"
    records.mkdir(mode=0o700)
    os.chown(records, 1234, 1234)
    with pytest.raises(OSError, match="owned by uid 1234"):
        heal_records.record(fake_proc(tmp_path / "p", OURS_LIVE), "/var/lib/lxcfs", str(records))
    assert os.listdir(records) == []
