"""A time namespace whose clocks start at 0, for lxcfs-py-runc (Linux >= 5.6, time_namespaces(7)).

In a time namespace with a CLOCK_BOOTTIME offset of -B, the kernel shows
/proc/uptime, /proc/stat btime and every /proc/<pid>/stat starttime relative to
B: so `ps` (etimes = uptime - starttime/HZ) measures from the same zero as
lxcfs-py's /proc/uptime, the container's age. CLOCK_MONOTONIC gets its own
current value as offset too, as on a freshly booted machine: both start near 0
and monotonic <= boottime still holds.

unshare(CLONE_NEWTIME) moves only the caller's future children (and, from
Linux 5.17, the caller itself at its next execve) into the new namespace, and
its offsets can be written only until then: so the wrapper unshares, writes
them, and execs the runtime, whose container inherits the namespace.
"""

import os

CLONE_NEWTIME = 0x80
NSEC_PER_SEC = 1_000_000_000
OFFSETS_FILE = "/proc/self/timens_offsets"


class TimensError(Exception):
    """One line: why the time namespace could not be set up."""


def supported(proc="/proc"):
    """Whether this kernel has time namespaces."""
    return os.path.exists(os.path.join(proc, "self", "ns", "time"))


def usable(proc="/proc"):
    """Whether a process can give its children a new time namespace and still start threads.

    The wrapper unshares one and then execs runc, which starts threads at once.
    Before Linux 6.3 (Debian 12 runs 6.1) a process whose children's time
    namespace is pending may not clone with CLONE_VM: runc aborts with
    "pthread_create failed: Invalid argument". So ask the kernel, in a child.
    """
    if not supported(proc):
        return False
    pid = os.fork()
    if pid == 0:  # the child: unshare, start one thread, report by exit status
        code = 1
        try:
            import threading

            ctypes, libc = _libc()
            if libc.unshare(CLONE_NEWTIME) == 0:
                thread = threading.Thread(target=lambda: None)
                thread.start()
                thread.join()
                code = 0
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status) == 0


def offsets_text(boottime_ns, monotonic_ns):
    """What to write to timens_offsets so both clocks read ~0 now: '<clock> <secs> <nanosecs>' lines.

    The kernel wants nanosecs in [0, 1e9), so -1.25 s is written as -2 s + 0.75 s.
    """
    lines = []
    for clock, now_ns in (("boottime", boottime_ns), ("monotonic", monotonic_ns)):
        secs, nanosecs = divmod(-now_ns, NSEC_PER_SEC)
        lines.append(f"{clock} {secs} {nanosecs}\n")
    return "".join(lines)


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def unshare_zeroed():
    """Give this process's future children (and its next execve) a time namespace starting at 0."""
    import time

    ctypes, libc = _libc()
    if libc.unshare(CLONE_NEWTIME) != 0:
        err = ctypes.get_errno()
        raise TimensError(f"cannot create a time namespace: {os.strerror(err)}")
    text = offsets_text(time.clock_gettime_ns(time.CLOCK_BOOTTIME), time.clock_gettime_ns(time.CLOCK_MONOTONIC))
    try:
        with open(OFFSETS_FILE, "w") as f:
            f.write(text)
    except OSError as err:
        raise TimensError(f"cannot set the time namespace's offsets ({OFFSETS_FILE}): {err.strerror}") from None


def join(pid):
    """Enter the time namespace of process `pid` (this process and its children); no-op if already in it.

    Returns True when it switched. setns on a time namespace needs a single-threaded caller.
    """
    theirs = f"/proc/{pid}/ns/time"
    try:
        if os.stat(theirs).st_ino == os.stat("/proc/self/ns/time").st_ino:
            return False
        fd = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise TimensError(f"cannot open the time namespace of pid {pid}: {err.strerror}") from None
    try:
        ctypes, libc = _libc()
        if libc.setns(fd, CLONE_NEWTIME) != 0:
            raise TimensError(f"cannot join the time namespace of pid {pid}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return True
