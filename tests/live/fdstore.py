"""A fake systemd fd store, to crash and restart daemons as a unit with FileDescriptorStoreMax= would.

    store = FdStore(tmp_path)
    first = store.start(mountpoint, ["--no-remount"])  # a fresh daemon; returns once it sent READY=1
    store.kill9()                                       # SIGKILL it: the stored fds keep the mount alive
    second = store.restart()                            # the next daemon, given the stored fds (LISTEN_FDS)
    store.stop()                                        # SIGTERM, drop the stored fds, nothing stays mounted

The daemon talks to an AF_UNIX datagram NOTIFY_SOCKET read here: FDSTORE=1
with FDNAME= adds a descriptor (one per name, as the daemon uses them),
FDSTOREREMOVE=1 drops one, READY=1 ends a start. The next daemon gets the
stored descriptors at 3, 4, ... with LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID set to its own pid, as systemd passes them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.live import daemons

READY_TIMEOUT = daemons.scaled(30.0)


class FdStore:
    def __init__(self, tmp_path, command: list[str] = tuple(daemons.LXCFS_PY)):
        self.command = list(command)
        self.address = str(tmp_path / "notify")
        self.log_path = str(tmp_path / "fdstore-daemons.log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.stored: dict[str, int] = {}  # FDNAME -> our copy of the descriptor
        self.messages: list[str] = []  # every notification, in order
        self.process: subprocess.Popen | None = None
        self.mountpoint: str | None = None
        self.flags: list[str] = []

    # -- the daemons -----------------------------------------------------------
    def start(self, mountpoint: str, flags: list[str] = ()) -> subprocess.Popen:
        """A fresh daemon on `mountpoint` (nothing stored is passed); returns once it is ready."""
        self.mountpoint, self.flags = mountpoint, list(flags)
        os.makedirs(mountpoint, exist_ok=True)
        return self._spawn({})

    def kill9(self) -> None:
        """SIGKILL the running daemon; what it stored stays here, so the connection stays alive."""
        self.receive(0)  # take what it stored before it died
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self) -> subprocess.Popen:
        """Start the next daemon with the stored descriptors, as systemd restarts a unit."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the previous daemon still runs: kill9() or stop() it first")
        return self._spawn(dict(self.stored))

    def stop(self) -> None:
        """SIGTERM the daemon, drop every stored descriptor, and make sure nothing stays mounted."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(daemons.scaled(30))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.receive(0)
        for fd in self.stored.values():
            os.close(fd)  # the last reference to the connection: blocked readers get an error now
        self.stored.clear()
        self.sock.close()
        if self.mountpoint is not None:
            daemons.ensure_free(self.mountpoint)
            daemons.forget_heal_records(self.mountpoint)

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def _spawn(self, passed: dict[str, int]) -> subprocess.Popen:
        names = list(passed)
        # bash moves each passed fd to 3, 4, ... and sets LISTEN_PID to its own pid, which exec keeps
        moves = " ".join(f"{3 + index}<&{passed[name]} {passed[name]}<&-" for index, name in enumerate(names))
        script = f'exec {moves}\nexport LISTEN_PID=$$\nexec "$@"' if names else 'exec "$@"'
        env = {**os.environ, "NOTIFY_SOCKET": self.address, "LXCFS_PY_FDSTORE": "1"}
        if names:
            env.update(LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names))
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", script, "lxcfs-py", *self.command, "-f", *self.flags, self.mountpoint],
                env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=list(passed.values()))
        if not self.receive(READY_TIMEOUT, until="READY=1"):
            raise RuntimeError(f"the daemon did not send READY=1 within {READY_TIMEOUT}s: {self.log()}")
        return self.process

    # -- the notify socket -----------------------------------------------------
    def receive(self, timeout: float, until: str | None = None) -> bool:
        """Handle notifications for up to `timeout` s; True once a message holds the line `until`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if timeout and remaining <= 0:
                return False
            self.sock.settimeout(remaining if timeout else 0)
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 16)
            except (BlockingIOError, TimeoutError, socket.timeout):
                return False
            lines = data.decode().splitlines()
            self.messages.append(data.decode())
            self._handle(dict(line.partition("=")[::2] for line in lines), fds)
            if until is not None and until in lines:
                return True

    def _handle(self, fields: dict[str, str], fds: list[int]) -> None:
        name = fields.get("FDNAME", "stored")
        if fields.get("FDSTORE") == "1":
            for fd in fds[:1]:
                self._drop(name)
                self.stored[name] = fd
            fds = fds[1:]
        elif fields.get("FDSTOREREMOVE") == "1":
            self._drop(name)
        for fd in fds:
            os.close(fd)

    def _drop(self, name: str) -> None:
        fd = self.stored.pop(name, None)
        if fd is not None:
            os.close(fd)
