"""A SIGKILL under systemd's fd store while a request is in flight: the next daemon answers it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

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


@pytest.mark.parametrize("workers", [1, 3], ids=["1-process", "3-processes"])
def test_a_reader_caught_in_flight_by_a_sigkill_is_answered_by_the_next_daemon(tmp_path, workers):
    with memory_cgroups(None) as cgroup:
        # the daemon reads cgroup files from a fixture tree in which the readers' memory.stat is a FIFO:
        # rendering their meminfo blocks there until the test says so
        root = str(tmp_path / "cgroup")
        trees.write_cgroup_v1(root, "/", trees.Cg())
        trees.write_cgroup_v1(root, cgroup, trees.Cg(limit=100 * trees.MiB))
        memory_stat = f"{root}/memory{cgroup}/memory.stat"
        os.unlink(memory_stat)
        os.mkfifo(memory_stat)
        store = FdStore(tmp_path)
        mountpoint = str(tmp_path / "mnt")
        readers = []
        try:
            daemon = store.start(mountpoint, ["--no-remount", "--cgroup-root", root, "--workers", str(workers)])

            def held_in():
                return [pid for pid in daemons.serving_pids(daemon.pid) if blocked_opening_a_fifo(pid)]

            # with workers, requests land in any process: readers until one is held in a worker (which
            # the main process's SIGKILL ends too), each pid 1 of its own pid namespace in the cgroup
            while len(readers) < 20 and not set(held_in()) - {daemon.pid}:
                readers.append(subprocess.Popen(
                    ["unshare", "--pid", "--fork", "--kill-child", "cat", f"{mountpoint}/proc/meminfo"],
                    preexec_fn=lambda: join(cgroup), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                daemons.wait_for(lambda: len(held_in()) >= 1 if workers == 1 else set(held_in()) - {daemon.pid}, 2)
                if workers == 1:
                    break
            # (a render held on the serving loop moves to a thread after 5 ms (offload.py): a moment between
            # the two where no thread is held, so the check waits for it rather than looking once)
            assert daemons.wait_for(lambda: held_in() and (workers == 1 or set(held_in()) - {daemon.pid}), 2), \
                store.log()
            store.kill9()
            os.unlink(memory_stat)
            trees.write(memory_stat, trees.memstat_v1(trees.MEMSTAT))
            store.restart()
            ready_at = time.monotonic()
            for reader in readers:
                try:
                    out, err = reader.communicate(timeout=ANSWER_WITHIN)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"a reader got no answer within {ANSWER_WITHIN}s of the restart: "
                                         f"{store.log()}") from None
                assert reader.returncode == 0, err
                assert out.startswith("MemTotal:") and "102400 kB" in out.splitlines()[0], out
            print(f"{len(readers)} readers answered within {time.monotonic() - ready_at:.3f} s of the next daemon")
        finally:
            store.stop()
            for reader in readers:
                if reader.poll() is None:
                    reader.kill()
                    reader.wait()
