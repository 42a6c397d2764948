"""A SIGKILL under systemd's fd store while a request is in flight: the next daemon answers it."""

from __future__ import annotations

import os
import subprocess
import time

from tests.fixtures import trees
from tests.live import daemons
from tests.live.cgroups import join, memory_cgroups
from tests.live.fdstore import FdStore

ANSWER_WITHIN = daemons.scaled(2.0)  # seconds after the next daemon is ready


def blocked_opening_a_fifo(pid: int) -> bool:
    """Any thread of `pid` waits in open() for a FIFO's writer."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if f.read() == "wait_for_partner":
                    return True
        except OSError:
            continue
    return False


def test_a_reader_caught_in_flight_by_a_sigkill_is_answered_by_the_next_daemon(tmp_path):
    with memory_cgroups(None) as cgroup:
        # the daemon reads cgroup files from a fixture tree in which the reader's memory.stat is a FIFO:
        # rendering its meminfo blocks there until the test says so
        root = str(tmp_path / "cgroup")
        trees.write_cgroup_v1(root, "/", trees.Cg())
        trees.write_cgroup_v1(root, cgroup, trees.Cg(limit=100 * trees.MiB))
        memory_stat = f"{root}/memory{cgroup}/memory.stat"
        os.unlink(memory_stat)
        os.mkfifo(memory_stat)
        store = FdStore(tmp_path)
        mountpoint = str(tmp_path / "mnt")
        reader = None
        try:
            daemon = store.start(mountpoint, ["--no-remount", "--cgroup-root", root])

            # pid 1 of its own pid namespace in that cgroup: a container's process, not a host caller
            reader = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "cat", f"{mountpoint}/proc/meminfo"],
                                      preexec_fn=lambda: join(cgroup), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            assert daemons.wait_for(lambda: blocked_opening_a_fifo(daemon.pid), 20), store.log()
            store.kill9()
            os.unlink(memory_stat)
            trees.write(memory_stat, trees.memstat_v1(trees.MEMSTAT))
            store.restart()
            ready_at = time.monotonic()
            try:
                out, err = reader.communicate(timeout=ANSWER_WITHIN)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the reader got no answer within {ANSWER_WITHIN}s of the restart: "
                                     f"{store.log()}") from None
            print(f"answered {time.monotonic() - ready_at:.3f} s after the next daemon was ready")
            assert reader.returncode == 0, err
            assert out.startswith("MemTotal:") and "102400 kB" in out.splitlines()[0], out
        finally:
            store.stop()
            if reader is not None and reader.poll() is None:
                reader.kill()
                reader.wait()
