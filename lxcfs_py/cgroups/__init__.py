"""The one place that knows cgroup v1 from cgroup v2."""
