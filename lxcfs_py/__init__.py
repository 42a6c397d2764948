"""lxcfs-py: a FUSE filesystem that gives each container its own /proc view."""

__version__ = "0.1.0"
