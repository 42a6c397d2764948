"""The thin pyfuse3 adapter: inodes, file handles, errno mapping.

Every handler is wrapped so that no exception can escape into pyfuse3's
main loop (one escaping there would end the daemon and break /proc in every
container): each failure becomes an errno for that one request, logged once.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import inspect
import logging
import os
import stat
import time

import pyfuse3

from lxcfs_py.caller import Caller, CallerGone, CallerResolver
from lxcfs_py.context import Options, Request, Roots
from lxcfs_py.offload import Renders
from lxcfs_py.recent import DEFAULT_WINDOW, RecentRenders
from lxcfs_py.state import DaemonState, Handle, owner_of
from lxcfs_py.tree import Node, Tree

log = logging.getLogger("lxcfs_py")

STATIC_TIMEOUT = 3600.0  # the tree's shape never changes: let the kernel cache it
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT
MAX_LOGGED = 1000
RELEARN_EVERY = 1.0  # seconds between walks of the tree for an inode number this process has not seen


def inode_of(path: str) -> int:
    """Stable across restarts, so a new daemon serves the same inode numbers."""
    if not path:
        return pyfuse3.ROOT_INODE
    digest = hashlib.blake2b(path.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 2) | 2  # never 0 or 1


def _guarded(method):
    awaited = inspect.iscoroutinefunction(method)

    @functools.wraps(method)
    async def wrapper(self, *args):
        try:
            if awaited:
                return await method(self, *args)
            return method(self, *args)
        except pyfuse3.FUSEError:
            raise
        except CallerGone as err:
            self.log_once(method.__name__, err, logging.DEBUG)
            raise pyfuse3.FUSEError(errno.ESRCH) from None
        except OSError as err:
            self.log_once(method.__name__, err, logging.WARNING)
            raise pyfuse3.FUSEError(err.errno or errno.EIO) from None
        except Exception as err:  # noqa: BLE001 - the daemon must outlive any bug
            self.log_once(method.__name__, err, logging.ERROR, exc_info=True)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


def _refuse(code: int):
    async def refuse(self, *args):
        raise pyfuse3.FUSEError(code)

    return refuse


class LxcfsOperations(pyfuse3.Operations):
    def __init__(self, roots: Roots, opts: Options, resolver: CallerResolver, sampler=None,
                 state: DaemonState | None = None, reuse_window: float = DEFAULT_WINDOW):
        super().__init__()
        self.roots = roots
        self.opts = opts
        self.resolver = resolver
        self.sampler = sampler
        self.tree = Tree(roots)
        # open files and listings: in this process, or shared by worker processes (shared_state.py)
        self.state = state if state is not None else DaemonState()
        self.state.revive_with(self.revive)  # a file opened at another worker is rebuilt here
        self.paths = self.state.paths  # per process (never rebound), named here for the hot path
        self.renders = Renders()
        self.recent = RecentRenders(reuse_window)
        self.init_hooks: list = []  # called while FUSE_INIT is answered (handover.Adoption, pool.py)
        self._logged: set[tuple] = set()
        self._started = time.time_ns()
        self._learnt_at = -RELEARN_EVERY

    # -- helpers ----------------------------------------------------------------
    def log_once(self, op: str, err: BaseException, level: int, exc_info: bool = False) -> None:
        key = (op, type(err).__name__, str(err))
        if key in self._logged:
            return
        if len(self._logged) < MAX_LOGGED:
            self._logged.add(key)
        log.log(level, "%s failed: %s: %s", op, type(err).__name__, err, exc_info=exc_info)

    def request(self, ctx: pyfuse3.RequestContext) -> Request:
        return self._request_of(self.resolver.resolve(ctx.pid))

    def _request_of(self, caller: Caller) -> Request:
        cgroup = caller.cgroup if self.virtualize else None  # None: the host's own files
        return Request(self.roots, self.opts, cgroup, caller.init_pid, self.sampler, self.state.cpu_views,
                       self.state.floors)

    @property
    def virtualize(self) -> bool:
        """Whether callers get their own files; SIGUSR2 switches it, as in LXCFS (in the state: for every worker)."""
        return self.state.virtualize

    def toggle_virtualization(self) -> None:
        """LXCFS's SIGUSR2: serve every caller the host's files, or their own again."""
        self.state.virtualize = not self.state.virtualize
        log.warning("Switched into %svirtualization mode", "" if self.virtualize else "non-")

    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            pass
        # learnt by another process (workers: any process may look a name up, any other use the inode),
        # or new on the host (a CPU brought online): walk the tree again, at most once a second
        now = time.monotonic()
        if now - self._learnt_at >= RELEARN_EVERY:
            self.learn_all_paths()
            if inode in self.paths:
                return self.paths[inode]
        raise pyfuse3.FUSEError(errno.ENOENT)

    def _node(self, path: str) -> Node:
        node = self.tree.node(path)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _learn(self, path: str) -> int:
        """The inode of `path`, remembered for the requests that will name it."""
        inode = inode_of(path)
        self.paths[inode] = path
        return inode

    def _attrs(self, inode: int, node: Node) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = inode
        attrs.generation = 0
        timeout = 0.0 if node.per_caller else STATIC_TIMEOUT
        attrs.entry_timeout = timeout
        attrs.attr_timeout = timeout
        if node.host_stat is not None:
            host = node.host_stat
            attrs.st_mode = host.st_mode & ~0o222  # read-only view
            attrs.st_size = host.st_size
            attrs.st_mtime_ns = attrs.st_ctime_ns = attrs.st_atime_ns = host.st_mtime_ns
        else:
            attrs.st_mode = stat.S_IFDIR | 0o555 if node.kind == "dir" else stat.S_IFREG | node.virtual.mode
            attrs.st_size = 0  # like /proc: the length is known only once read
            attrs.st_mtime_ns = attrs.st_ctime_ns = attrs.st_atime_ns = self._started
        attrs.st_nlink = 2 if node.kind == "dir" else 1
        attrs.st_uid = attrs.st_gid = 0
        attrs.st_blksize = 4096
        return attrs

    # -- lookups and attributes -------------------------------------------------
    @_guarded
    def lookup(self, parent_inode, name, ctx):
        parent = self._path(parent_inode)
        name = os.fsdecode(name)
        if name == ".":
            path = parent
        elif name == "..":
            path = parent.rpartition("/")[0]
        else:
            path = f"{parent}/{name}" if parent else name
        node = self._node(path)
        if node.per_caller and not self.tree.visible(path, self.request(ctx)):
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(self._learn(path), node)

    @_guarded
    def getattr(self, inode, ctx):
        return self._attrs(inode, self._node(self._path(inode)))

    async def forget(self, inode_list):
        pass  # inodes are derived from paths; nothing to free

    @_guarded
    def readlink(self, inode, ctx):
        node = self._node(self._path(inode))
        if node.kind != "link":
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(os.readlink(node.host_path))

    # -- directories ------------------------------------------------------------
    @_guarded
    def opendir(self, inode, ctx):
        path = self._path(inode)
        if self._node(path).kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        caller = self.resolver.resolve(ctx.pid)  # every handle is charged to its caller's container
        owner = owner_of(caller.cgroup)
        self.state.admit(owner)
        req = self._request_of(caller) if self.tree.needs_caller(path) else None
        entries = []
        for name in self.tree.listdir(path, req):
            entries.append((name, self._learn(f"{path}/{name}" if path else name)))
        return self.state.add_dir([(path, 0), *entries], owner)

    @_guarded
    def readdir(self, fh, start_id, token):
        entries = self.state.dir_entries(fh)
        if entries is None:  # not ours: opened before a crash, or never
            raise pyfuse3.FUSEError(errno.EBADF)
        parent = entries[0][0]
        for index in range(start_id + 1, len(entries)):
            name, inode = entries[index]
            node = self.tree.node(f"{parent}/{name}" if parent else name)
            if node is None:
                continue  # vanished from the host since opendir
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._attrs(inode, node), index):
                break

    @_guarded
    def releasedir(self, fh):
        if not self.state.release_dir(fh):
            raise pyfuse3.FUSEError(errno.EBADF)

    # -- files ------------------------------------------------------------------
    @_guarded
    async def open(self, inode, flags, ctx):
        if flags & WRITE_FLAGS:
            raise pyfuse3.FUSEError(errno.EACCES)
        path = self._path(inode)
        node = self._node(path)
        if node.kind == "dir":
            raise pyfuse3.FUSEError(errno.EISDIR)
        # host files passed through are charged to the caller too
        handle = self.new_handle(path, node, self.resolver.resolve(ctx.pid))
        self.state.admit(handle.owner)  # before rendering: a flood past the cap costs little
        try:
            content = await self.content(handle)
        except FileNotFoundError:
            if handle.req is None:
                raise
            # the cached cgroup may be gone (moved or removed): resolve afresh once
            self.resolver.forget(ctx.pid)
            handle = self.new_handle(path, node, self.resolver.resolve(ctx.pid))
            content = await self.content(handle)
        # snapshot: reads at any offset and size agree with one whole read
        fh = self.state.add_file(handle, content)
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)

    async def content(self, handle: Handle, fresh: bool = False) -> bytes:
        """The handle's file as rendered for its caller a moment ago (recent.py), or `fresh`ly."""
        key = (handle.path, handle.owner, handle.req.init_pid if handle.req else 0, self.virtualize)
        if not fresh:
            content = self.recent.get(key)
            if content is not None:
                return content
        content = await self.renders.run(handle.owner, handle.regenerate)
        self.recent.put(key, content)
        return content

    def new_handle(self, path: str, node: Node, caller: Caller) -> Handle:
        owner = owner_of(caller.cgroup)
        if node.virtual is None:
            return Handle(path, None, node.host_path, None, owner)
        return Handle(path, node.virtual.render, None, self._request_of(caller), owner)

    def revive(self, saved: dict) -> Handle | None:
        """An open file handed over by the previous process (see DaemonState.load); None if its path is gone."""
        node = self.tree.node(saved["path"])
        if node is None:
            return None
        cgroup = saved["cgroup"]
        cg = self.resolver.factory.for_paths(cgroup) if cgroup is not None else None
        return self.new_handle(saved["path"], node, Caller(saved["init_pid"], cg, 0.0))

    def learn_all_paths(self) -> None:
        """Map every inode number the kernel may already know back to its path."""
        self._learnt_at = time.monotonic()
        for path in self.tree.all_paths():
            self.paths[inode_of(path)] = path

    def init(self):
        """pyfuse3 calls this while it handles FUSE_INIT."""
        for hook in self.init_hooks:
            hook()

    @_guarded
    async def read(self, fh, off, size):
        handle, read_before = self.state.reading(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if off == 0 and read_before:
            # a reader that rewinds (top, free -s) wants fresh numbers, as with /proc
            self.state.refresh(fh, handle, await self.content(handle, fresh=True))
        return handle.content[off : off + size]

    @_guarded
    def release(self, fh):
        if not self.state.release_file(fh):
            raise pyfuse3.FUSEError(errno.EBADF)

    @_guarded
    def statfs(self, ctx):
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_namemax = 255
        return data

    # -- the tree is read-only --------------------------------------------------
    write = _refuse(errno.EACCES)
    setattr = _refuse(errno.EROFS)
    create = _refuse(errno.EROFS)
    mknod = _refuse(errno.EROFS)
    mkdir = _refuse(errno.EROFS)
    unlink = _refuse(errno.EROFS)
    rmdir = _refuse(errno.EROFS)
    symlink = _refuse(errno.EROFS)
    rename = _refuse(errno.EROFS)
    link = _refuse(errno.EROFS)
    setxattr = _refuse(errno.EROFS)
    removexattr = _refuse(errno.EROFS)
