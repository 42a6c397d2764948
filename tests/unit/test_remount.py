"""Which binds the healer touches: only those of earlier mounts at our mountpoint."""

import os

from lxcfs_py import remount

OURS_LIVE = "50 1 0:60 / /var/lib/lxcfs rw,nosuid - fuse.lxcfs lxcfs-py rw,user_id=0"
STALE_BIND = "71 60 0:52 /proc/meminfo /proc/meminfo ro,nosuid - fuse.lxcfs lxcfs-py rw,user_id=0"
OTHER_DAEMON = "72 60 0:77 /proc/stat /proc/stat ro - fuse.lxcfs lxcfs-py rw,user_id=0"
REFERENCE_LXCFS = "73 60 0:53 /proc/uptime /proc/uptime ro - fuse.lxcfs lxcfs rw,user_id=0"


def fake_proc(tmp_path, own, container):
    proc = tmp_path / "proc"
    for pid, lines, ns in (("self", own, "mnt:[1]"), ("100", container, "mnt:[2]")):
        (proc / pid / "ns").mkdir(parents=True)
        (proc / pid / "mountinfo").write_text("\n".join(lines) + "\n")
        os.symlink(ns, proc / pid / "ns" / "mnt")
        (proc / pid / "cgroup").write_text("4:memory:/docker/abc\n")
    return str(proc)


def test_parse_mountinfo_unescapes_paths():
    (mount,) = remount.parse_mountinfo(r"1 2 0:5 / /a\040b rw - fuse.lxcfs lxcfs-py rw")
    assert (mount["target"], mount["device"], mount["fstype"], mount["source"]) == ("/a b", "0:5", "fuse.lxcfs",
                                                                                      "lxcfs-py")


def test_only_recorded_earlier_devices_are_stale(tmp_path):
    proc = fake_proc(tmp_path, [OURS_LIVE], [STALE_BIND, OTHER_DAEMON, REFERENCE_LXCFS])
    records = str(tmp_path / "run")
    assert remount.find_stale(proc, "/var/lib/lxcfs", records) == []  # nothing recorded: touch nothing
    os.makedirs(records)
    with open(remount._record_path("/var/lib/lxcfs", records), "w") as f:
        f.write("0:52\n0:60\n")
    (stale,) = remount.find_stale(proc, "/var/lib/lxcfs", records)
    assert (stale.pid, stale.target, stale.fs_path, stale.container) == (100, "/proc/meminfo", "/proc/meminfo",
                                                                          "/docker/abc")


def test_record_keeps_the_last_devices_once(tmp_path):
    records = str(tmp_path / "run")
    for step, device in enumerate(["0:1", "0:2", "0:1"]):
        proc = fake_proc(tmp_path / str(step), [OURS_LIVE.replace("0:60", device)], [])
        remount.record_device(proc, "/var/lib/lxcfs", records)
    assert remount.recorded_devices("/var/lib/lxcfs", records) == ["0:2", "0:1"]
    assert remount.recorded_devices("/elsewhere", records) == []
