"""pyfuse3 really waits for requests through the hook lxcfs_py/fuse_wait.py replaces.

If an upgrade of pyfuse3 renames the hook or stops calling it by its module
name, our wait would silently not run (or the daemon would not start): this
mounts a minimal pyfuse3 file system with FuseWait installed and checks that
serving a request went through it.
"""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, sys
    import pyfuse3, trio
    from lxcfs_py import fuse_wait

    class Root(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            attrs = pyfuse3.EntryAttributes()
            attrs.st_ino = inode
            attrs.st_mode = 0o40555
            return attrs

    mountpoint = sys.argv[1]
    pyfuse3.init(Root(), mountpoint, set())
    undo = fuse_wait.install(fuse_wait.fuse_fd())
    installed = getattr(pyfuse3, fuse_wait.HOOK)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            for _ in range(3):
                await trio.to_thread.run_sync(os.stat, mountpoint)  # requests through the mount
            pyfuse3.terminate()

    try:
        trio.run(main)
    finally:
        undo()
        pyfuse3.close(unmount=True)
    print(type(installed).__name__, installed.served)
""")


def test_pyfuse3_serves_through_our_wait(tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(mountpoint)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    kind, served = result.stdout.split()
    assert kind == "FuseWait", "pyfuse3's hook was not found: see lxcfs_py/fuse_wait.py"
    assert int(served) >= 1, "pyfuse3 no longer waits through its hook: see lxcfs_py/fuse_wait.py"
