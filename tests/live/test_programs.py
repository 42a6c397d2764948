"""What real programs see in a limited container: psutil, Node.js's os module, sysstat, lscpu, procps."""

from __future__ import annotations

import json
import subprocess

from tests.live import daemons
from tests.live.containers import bind_flags

LIMITS = ["-m", "200m", "--cpuset-cpus", "0"]
# one JSON line of what each program says; `sleep 1` first, so the container's age is not zero
REPORT = r"""
sleep 1
python3 -c 'import json, psutil, time
print(json.dumps({"boot": psutil.boot_time(), "now": time.time(), "total": psutil.virtual_memory().total,
                  "cpus": psutil.cpu_count()}))'
node -e 'const os = require("os");
console.log(JSON.stringify({total: os.totalmem(), cpus: os.cpus().length, uptime: os.uptime()}))'
mpstat | head -1
lscpu | grep '^CPU(s):'
free -b | awk '/^Mem:/ {print $2}'
"""


def test_real_programs_see_the_containers_limits_and_age(programs_image, start_daemon):
    daemon = start_daemon()
    out = subprocess.run(["docker", "run", "--rm", *LIMITS, *bind_flags(daemon.mountpoint), programs_image, "bash",
                          "-c", REPORT], capture_output=True, text=True, timeout=daemons.scaled(120))
    assert out.returncode == 0, out.stderr
    psutil_line, node_line, mpstat, lscpu, free = out.stdout.splitlines()
    psutil, node = json.loads(psutil_line), json.loads(node_line)
    # psutil: boot_time() is the container's start (it slept 1 s since), memory and CPUs are its own
    assert 0 <= psutil["now"] - psutil["boot"] <= 1 + daemons.scaled(2.0), psutil
    assert (psutil["total"], psutil["cpus"]) == (209715200, 1), psutil
    # Node.js: os.totalmem(), os.cpus() and os.uptime() (libuv reads /proc/meminfo, /proc/stat, /proc/uptime)
    assert (node["total"], node["cpus"]) == (209715200, 1), node
    assert 1 <= node["uptime"] <= 1 + daemons.scaled(10.0), node
    assert mpstat.endswith("(1 CPU)"), mpstat
    assert lscpu.split() == ["CPU(s):", "1"], lscpu
    assert free == "209715200"
