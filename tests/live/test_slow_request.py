"""One container's request held in the kernel does not stall another container's reads."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import textwrap

import pytest

from tests.fixtures import trees
from tests.live import daemons
from tests.live.cgroups import join, memory_cgroups, run_in_container_like
from tests.live.test_crash_in_flight import blocked_opening_a_fifo

# Each of the other container's open + read + close: the bound, scaled for slow machines; and
# the worst single read allowed on a machine busy with other work (a stalled loop never answers at all)
TYPICAL_READ = daemons.scaled(0.05)
WORST_READ = daemons.scaled(1.0)
READING_FOR = 1.0  # seconds: many times the reuse window, so the other container's files are rendered afresh


@pytest.mark.parametrize("workers", [1, 2], ids=["1-process", "2-processes"])
def test_a_held_request_does_not_stall_another_container(tmp_path, workers):
    with memory_cgroups(None) as held, memory_cgroups(None) as other:
        # the daemon reads cgroup files from a fixture tree in which the held container's memory.stat
        # is a FIFO: rendering its meminfo waits there, in the kernel, until the test writes it
        root = str(tmp_path / "cgroup")
        trees.write_cgroup_v1(root, "/", trees.Cg())
        trees.write_cgroup_v1(root, held, trees.Cg(limit=100 * trees.MiB))
        trees.write_cgroup_v1(root, other, trees.Cg(limit=200 * trees.MiB))
        memory_stat = f"{root}/memory{held}/memory.stat"
        os.unlink(memory_stat)
        os.mkfifo(memory_stat)
        mountpoint = str(tmp_path / "mnt")
        daemon = daemons.start(daemons.LXCFS_PY, mountpoint, ["--no-remount", "--cgroup-root", root,
                                                              "--workers", str(workers)], log_dir=str(tmp_path))
        reader = None
        try:
            meminfo = f"{mountpoint}/proc/meminfo"
            reader = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "cat", meminfo],
                                      preexec_fn=lambda: join(held), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            assert daemons.wait_for(lambda: any(blocked_opening_a_fifo(pid) for pid in
                                                daemons.serving_pids(daemon.process.pid)), 20), daemon.log()

            latencies = json.loads(run_in_container_like(other, textwrap.dedent(f"""
                import json, time
                latencies = []
                end = time.monotonic() + {READING_FOR}
                while time.monotonic() < end:
                    start = time.monotonic()
                    with open("{meminfo}", "rb") as f:
                        first = f.readline()
                    latencies.append(time.monotonic() - start)
                    assert first.split()[1] == b"204800", first
                print(json.dumps(latencies))
            """), timeout=daemons.scaled(60)))
            print(f"{len(latencies)} reads, median {statistics.median(latencies) * 1e3:.1f} ms, "
                  f"worst {max(latencies) * 1e3:.1f} ms, while the other container's read was held")
            assert reader.poll() is None, "the held read did not stay held"
            assert statistics.median(latencies) < TYPICAL_READ
            assert max(latencies) < WORST_READ

            # released, the held read completes with its own numbers
            with open(memory_stat, "w") as fifo:
                fifo.write(trees.memstat_v1(trees.MEMSTAT))
            out, err = reader.communicate(timeout=daemons.scaled(10))
            assert reader.returncode == 0, err
            assert out.splitlines()[0].split()[1] == "102400", out
        finally:
            if reader is not None and reader.poll() is None:
                release = os.open(memory_stat, os.O_WRONLY | os.O_NONBLOCK)  # the daemon waits for a writer
                os.close(release)
                reader.kill()
                reader.wait()
            daemon.stop()
