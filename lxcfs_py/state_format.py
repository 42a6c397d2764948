"""The handover format of the daemon's state, shared by its two stores (state.py, shared_state.py).

export() writes what a successor process takes over; load() reads it back
and accepts any older or newer version: a field it cannot use costs one log
line, never the handover. Both stores write the same JSON, so a one-process
daemon and one with workers hand over to each other both ways.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Callable

from lxcfs_py.files.cpuview import CpuView, Usage
from lxcfs_py.sampler import Load

if TYPE_CHECKING:
    from lxcfs_py.state import Handle, Owner

log = logging.getLogger("lxcfs_py")

STATE_VERSION = 1
COUNTER_BITS = 32  # a handle number is epoch << 32 | counter
COUNTER_MASK = (1 << COUNTER_BITS) - 1


def owner_from_json(owner) -> Owner:
    return tuple(tuple(pair) for pair in owner) if owner is not None else None


def saved_file(fh: int, path: str, read_once: bool, content: bytes, init_pid: int | None, cgroup: dict | None,
               owner) -> dict:
    """One open file as export() writes it."""
    return {"fh": fh, "path": path, "read_once": read_once, "content": base64.b64encode(content).decode(),
            "init_pid": init_pid, "cgroup": cgroup, "owner": owner}


class StateFormat:
    """export() and load() over what a store keeps; the store provides:

    epoch, counter, paths, cpu_views, floors, loads (mappings), saved_files(),
    saved_dirs(), adopt_file(), adopt_dir(), set_dir_owner() and open_files().
    """

    epoch: int
    counter: int
    paths: dict[int, str]

    def export(self) -> bytes:
        dirs = self.saved_dirs()
        state = {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "next_fh": self.epoch << COUNTER_BITS | (self.counter + 1),
            "paths": {str(inode): path for inode, path in list(self.paths.items())},
            "handles": self.saved_files(),
            "dirs": {str(listing[0]): listing[1] for listing in dirs},
            "dir_owners": {str(listing[0]): listing[2] for listing in dirs},
            # list(): render threads (offload.py) may add a container meanwhile
            "cpu_views": {key: dataclasses.asdict(view) for key, view in list(self.cpu_views.items())},
            "floors": dict(list(self.floors.items())),
            "loads": {d: dataclasses.asdict(load) for d, load in list(self.loads.items())},
        }
        return json.dumps(state).encode()

    def load(self, data: bytes, revive: Callable[[dict], Handle | None]) -> None:
        """Take over what export() saved; `revive` turns a saved open file back into a Handle.

        Never raises: each field this daemon cannot use is logged once and left out.
        """
        try:
            saved = json.loads(data)
            if not isinstance(saved, dict):
                raise ValueError(f"a JSON {type(saved).__name__}, not an object")
        except ValueError as err:
            log.warning("handover state unreadable (%s): open files start afresh", err)
            return
        version = saved.pop("version", None)
        if version != STATE_VERSION:
            log.warning("handover state version %r (this daemon writes %d): taking the fields it knows",
                        version, STATE_VERSION)
        for name in saved.keys() - FIELDS.keys():
            log.warning("handover state field %r unknown to this daemon: ignored", name)
        for name, (read, missing) in FIELDS.items():
            if name not in saved:
                log.warning("handover state has no %r: %s", name, missing)
                continue
            try:
                read(self, saved[name], revive)
            except Exception as err:  # noqa: BLE001 - a bad field must not cost the handover
                log.warning("handover state field %r unusable (%s: %s): %s", name, type(err).__name__, err, missing)
        log.info("took over %d open files from the previous process", self.open_files())

    def read_epoch(self, value, revive) -> None:
        if not isinstance(value, int) or not 0 < value <= COUNTER_MASK:
            raise ValueError(f"not an epoch: {value!r}")
        self.epoch = value

    def read_next_fh(self, value, revive) -> None:
        if value >> COUNTER_BITS == self.epoch:
            self.counter = max(self.counter, (value & COUNTER_MASK) - 1)

    def read_paths(self, value, revive) -> None:
        self.paths.update({int(inode): str(path) for inode, path in value.items()})

    def read_handles(self, value, revive) -> None:
        dropped, first_error = 0, None
        for saved in value:
            try:
                handle = revive(saved)
                if handle is None:
                    continue  # its path is gone
                read_once = bool(saved.get("read_once"))
                handle.owner = owner_from_json(saved.get("owner", handle.owner))
                fh = int(saved["fh"])
                content = base64.b64decode(saved["content"])
            except Exception as err:  # noqa: BLE001 - drop this one file, keep the others
                dropped += 1
                first_error = first_error or f"{type(err).__name__}: {err}"
                continue
            self.adopt_file(fh, handle, content, read_once)
            if fh >> COUNTER_BITS == self.epoch:
                self.counter = max(self.counter, fh & COUNTER_MASK)
        if dropped:
            log.warning("handover state field 'handles': %d open files unreadable (%s): their readers get EBADF",
                        dropped, first_error)

    def read_dirs(self, value, revive) -> None:
        for fh, entries in value.items():
            self.adopt_dir(int(fh), [tuple(e) for e in entries])

    def read_dir_owners(self, value, revive) -> None:
        for fh, owner in value.items():
            self.set_dir_owner(int(fh), owner_from_json(owner))

    def read_cpu_views(self, value, revive) -> None:
        for key, view in value.items():
            self.cpu_views[key] = CpuView(last={int(c): Usage(**u) for c, u in view["last"].items()},
                                          view={int(c): Usage(**u) for c, u in view["view"].items()},
                                          last_idle_sum=view["last_idle_sum"])

    def read_floors(self, value, revive) -> None:
        for key, lines in value.items():
            self.floors[str(key)] = {str(label): [int(v) for v in values] for label, values in lines.items()}

    def read_loads(self, value, revive) -> None:
        self.loads.update({d: Load(**load) for d, load in value.items()})


# field -> (reader, what its absence costs); read in this order (the epoch first)
FIELDS: dict[str, tuple[Callable, str]] = {
    "epoch": (StateFormat.read_epoch, "new handles are numbered in a new epoch"),
    "next_fh": (StateFormat.read_next_fh, "new files are numbered past the inherited ones"),
    "paths": (StateFormat.read_paths, "inode numbers are mapped from the tree"),
    "handles": (StateFormat.read_handles, "files opened before get EBADF"),
    "dirs": (StateFormat.read_dirs, "directory listings opened before get EBADF"),
    "dir_owners": (StateFormat.read_dir_owners, "inherited listings are charged to the host"),
    "cpu_views": (StateFormat.read_cpu_views, "--enable-cfs CPU counters start afresh"),
    "floors": (StateFormat.read_floors, "/proc/stat counters may show a tick less than before the restart"),
    "loads": (StateFormat.read_loads, "load averages start from 0"),
}
