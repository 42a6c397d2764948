"""Several processes serving one mount (--workers): whichever takes a request, the reader sees one daemon."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.live import daemons
from tests.live.daemons import workers_of

WORKERS = 3
PIECE = 97  # bytes per read(): a meminfo takes ~16 requests, which land on any of the processes


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def read_in_pieces(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while chunk := os.read(fd, PIECE):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def consistent_meminfo(content: bytes) -> bool:
    """Every line whole and every key once, in the kernel's order: pieces of one snapshot, not of two."""
    lines = content.decode().splitlines()
    keys = [line.partition(":")[0] for line in lines]
    return (content.endswith(b"\n") and keys[0] == "MemTotal" and len(set(keys)) == len(keys)
            and all(line.partition(":")[2].strip() for line in lines))


class Readers:
    """Threads opening and reading a file in pieces until stopped; failures counted with their errors."""

    def __init__(self, path: str, threads: int = 4):
        self.path = path
        self.ok = 0
        self.errors: list[str] = []
        self.inconsistent = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(daemons.scaled(30))

    def _loop(self):
        while not self.stopping.is_set():
            try:
                content = read_in_pieces(self.path)
            except OSError as err:
                self.errors.append(f"{err.strerror} ({time.monotonic():.3f})")
                continue
            if consistent_meminfo(content):
                self.ok += 1
            else:
                self.inconsistent += 1

    def wait_for_more(self, count: int, timeout: float = 20) -> bool:
        target = self.ok + count
        return daemons.wait_for(lambda: self.ok >= target, timeout)


@pytest.fixture
def pooled(start_daemon):
    daemon = start_daemon(["--no-remount", "--workers", str(WORKERS)])
    assert daemons.wait_for(lambda: len(workers_of(daemon)) == WORKERS - 1, 15), daemon.log()
    return daemon


def test_every_process_serves_and_every_open_file_reads_as_one_snapshot(pooled):
    pids = [pooled.process.pid, *workers_of(pooled)]
    before = {pid: cpu_ticks(pid) for pid in pids}
    with Readers(f"{pooled.mountpoint}/proc/meminfo") as readers:
        assert readers.wait_for_more(1500, 60), readers.errors[:5]
    print(f"{readers.ok} reads in pieces of {PIECE} bytes; CPU ticks per process:",
          {pid: cpu_ticks(pid) - before[pid] for pid in pids})
    assert readers.errors == [] and readers.inconsistent == 0
    # the requests of the readers were spread over the processes: every worker took its share
    assert all(cpu_ticks(pid) > before[pid] for pid in pids)


def test_a_killed_worker_costs_at_most_what_it_was_answering_and_is_replaced(pooled):
    victim = workers_of(pooled)[0]
    with Readers(f"{pooled.mountpoint}/proc/meminfo") as readers:
        assert readers.wait_for_more(100)
        os.kill(victim, signal.SIGKILL)
        assert daemons.wait_for(lambda: len(workers_of(pooled)) == WORKERS - 1 and victim not in workers_of(pooled),
                                15), pooled.log()
        assert readers.wait_for_more(300)
    # a read in flight in the killed process fails (ECONNABORTED); one per reader thread at most
    assert len(readers.errors) <= len(readers.threads), readers.errors
    assert readers.inconsistent == 0
    assert "serving worker 1" in pooled.log() or "serving worker 2" in pooled.log()


def test_planned_restarts_hand_over_every_process_and_lose_no_read(pooled):
    meminfo = f"{pooled.mountpoint}/proc/meminfo"
    held = open(meminfo, "rb", buffering=0)  # opened in some process, read on across the handovers
    first = held.read(PIECE)
    with Readers(meminfo) as readers:
        for handovers in range(1, 4):
            old_workers = workers_of(pooled)
            pooled.process.send_signal(signal.SIGHUP)
            assert daemons.wait_for(lambda: pooled.log().count("took over the live mount") == handovers, 30)
            assert daemons.wait_for(lambda: len(workers_of(pooled)) == WORKERS - 1
                                    and not set(old_workers) & set(workers_of(pooled)), 15), pooled.log()
            assert readers.wait_for_more(100), "reads stalled"
    rest = held.read()
    held.close()
    assert readers.errors == [] and readers.inconsistent == 0
    assert consistent_meminfo(first + rest)
    # each image has its own shared memory: none of an earlier one outlives the re-exec
    assert shared_arenas(pooled.process.pid) == 1


def shared_arenas(pid: int) -> int:
    """How many of the daemon's shared-memory arenas `pid` holds open (an arena may have several fds)."""
    arenas = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:lxcfs-py-shared"):
                arenas.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        except OSError:
            continue
    return len(arenas)


def test_a_stop_ends_every_process_and_unmounts(pooled):
    workers = workers_of(pooled)
    assert pooled.stop() == 0
    assert not any(daemons.alive(pid) for pid in workers)
    assert not os.path.ismount(pooled.mountpoint)


def test_a_crashed_main_process_takes_its_workers_along(pooled):
    workers = workers_of(pooled)
    pooled.process.kill()
    pooled.process.wait()
    # nothing would answer the mount's requests with their main process gone: they stop, too
    assert daemons.wait_for(lambda: not any(daemons.alive(pid) for pid in workers), 15)
