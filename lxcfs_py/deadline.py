"""Work done right on the FUSE loop, given up when the kernel keeps it waiting.

Renders run on the loop (offload.py): on small VMs handing one to a thread
and back costs more than rendering meminfo. But a render can wait in the
kernel (memory.stat under memory pressure, a cgroup being torn down), and on
the loop that wait would hold every container's requests. So `within()` runs
it under a timer; when the timer fires while the work waits in one of the
reads registered here (fsread's), that read raises TooSlow and the caller
redoes the work elsewhere (offload.Renders: in a thread).

TooSlow is raised only inside a registered read, where a read error could
come anyway, never in the middle of the work's own bookkeeping: the timer
fires again shortly until the work reaches a read or ends.

The timer is SIGALRM's (ITIMER_REAL), the daemon's own signal while it serves
(signals.TIMER); with workers, fuse_wait's guard against a lost read race
uses the same timer, across its read of /dev/fuse only, which `within()`
restores.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, TypeVar

SIGNAL = signal.SIGALRM
RETRY = 0.001  # seconds until the timer fires again when it found the work between reads

T = TypeVar("T")


class TooSlow(BaseException):
    """The work waited in the kernel past its budget. A BaseException, so that no `except OSError`
    or `except Exception` on the way mistakes it for a failed read."""


_reads: set = set()  # code objects of the functions in which TooSlow may be raised
_installed = False
_active = False


def interruptible(function):
    """Register `function` (which does blocking reads and nothing that needs undoing) as a place for TooSlow."""
    _reads.add(function.__code__)
    return function


def _on_timer(signum, frame) -> None:
    if not _active:
        return  # fuse_wait's race guard: the interrupted read is what it wanted
    if frame is not None and frame.f_code in _reads:
        raise TooSlow()
    signal.setitimer(signal.ITIMER_REAL, RETRY)


def install():
    """Take SIGALRM for the timer (main thread only); returns the undo."""
    global _installed
    saved = signal.signal(SIGNAL, _on_timer)
    _installed = True

    def undo():
        global _installed
        _installed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(SIGNAL, saved)

    return undo


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`, or TooSlow once it has waited in a registered read past `seconds` (only when installed,
    on the main thread: elsewhere it just runs)."""
    global _active
    if not _installed or _active or threading.current_thread() is not threading.main_thread():
        return work()
    previous = signal.setitimer(signal.ITIMER_REAL, seconds)[0]
    _active = True
    try:
        return work()
    finally:
        _active = False
        signal.setitimer(signal.ITIMER_REAL, previous)
