"""Every path the daemon serves, as plain data: the one list.

The registry builds the daemon's files from it (handlers are named here, not
imported), and the bind list (lxcfs_py.bind_mounts) derives the container
paths from it. The Ansible module uses the bind list too
(plugins/module_utils/served_files.py is a link to this file), so this file
imports nothing and runs on any Python 3.
"""

# path under the mount -> (module of lxcfs_py.files, its render function, mode)
# The mode is the host file's (the mount has default_permissions: the kernel enforces it).
SERVED_FILES = {
    "proc/cpuinfo": ("cpuinfo", "render", 0o444),
    "proc/diskstats": ("diskstats", "render", 0o444),
    "proc/loadavg": ("loadavg", "render", 0o444),
    "proc/meminfo": ("meminfo", "render", 0o444),
    "proc/stat": ("stat", "render", 0o444),
    "proc/swaps": ("swaps", "render", 0o444),
    "proc/uptime": ("uptime", "render", 0o444),
    "proc/slabinfo": ("slabinfo", "render", 0o400),  # the host's slab caches: root only
    "sys/devices/system/cpu/online": ("cpu_sysfs", "render_online", 0o444),
    "sys/devices/system/cpu/possible": ("cpu_sysfs", "render_possible", 0o444),
    "sys/devices/system/cpu/present": ("cpu_sysfs", "render_present", 0o444),
}

# host directories mirrored read-only, filtered per caller at the top:
# path under the mount -> (directory under the sys root, module of lxcfs_py.files,
# its function visible(request, name) that says which top entries a caller sees)
PASSTHROUGH_DIRS = {
    "sys/devices/system/cpu": ("devices/system/cpu", "cpu_sysfs", "entry_visible"),
}
