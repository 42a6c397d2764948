#!/usr/bin/env bash
# The cgroup-v2 stage: boots a real cgroup-v2 kernel (Debian's, under QEMU; see
# scripts/build-v2vm.sh, built first if needed) with this checkout shared at
# /work over 9p, and runs there the live tests that only a v2 kernel can show.
# The guest's output streams here; the exit code is pytest's.
#
# Usage: test-v2.sh [PYTEST ARGS...]
#   With no test path among the arguments the v2 selection below runs, with
#   them added; with one (tests/...), only what they name runs.
# Env: LXCFS_PY_TEST_TIME_SCALE  factor for every wait in the tests (default 20:
#        everything in the emulated guest is 30-40x slower than on the host)
#      LXCFS_PY_V2_MEMORY (MiB, 2048)  LXCFS_PY_V2_CPUS (2)  LXCFS_PY_V2_TIMEOUT (s, 1800)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE=/var/cache/lxcfs-py/v2vm
VENV=/opt/lxcfs-py
TIME_SCALE="${LXCFS_PY_TEST_TIME_SCALE:-20}"
TIMEOUT="${LXCFS_PY_V2_TIMEOUT:-1800}"
# What only a real v2 kernel shows (the unit tests and the version-neutral live tests are not
# repeated here): cgroup files the daemon reads only there (memory.max, memory.swap.max, cpu.max,
# cpuset.cpus.effective, cpu.stat, io.stat) in one unified hierarchy, the daemon's lifecycle on
# v2 cgroups (a stale mount replaced and dead binds healed after kill -9), then with Docker
# (cgroupfs driver): the lxcfs runtime and the lxcfs_container module, a SIGKILLed daemon
# replaced and planned restarts under a reading container, and Debian's lxcfs 5.0.3 side by
# side (memory+swap; a CFS quota). Left to the host, as they read nothing of v2 that these do
# not: the role's upgrade (the same handover through ansible-playbook, minutes here), SIGUSR1
# (the same handover as SIGHUP), the other differential configurations, the robustness tests.
V2_TESTS=(tests/live/test_v2.py tests/live/test_cfs.py
    tests/live/test_lifecycle.py::test_a_stale_mount_of_a_killed_daemon_is_replaced
    tests/live/test_heal.py::test_a_dead_bind_is_healed_from_the_fresh_mount
    tests/live/test_v2_docker.py
    tests/live/test_restart.py::test_a_killed_daemon_is_replaced_and_containers_heal_within_2s
    "tests/live/test_restart.py::test_five_planned_restarts_lose_no_read[SIGHUP]"
    "tests/live/test_differential.py::test_same_files_as_lxcfs[memory-swap]"
    "tests/live/test_differential.py::test_same_files_as_lxcfs[cfs]")

die() { echo "test-v2: error: $*" >&2; exit 1; }
log() { echo "test-v2: $*"; }

[[ $EUID -eq 0 ]] || die "must run as root (the guest image is built with debootstrap)"
# the container image the guest's Docker runs comes from this host's dockerd (the guest has no network)
if timeout 5 docker info >/dev/null 2>&1; then
    bash "$REPO/scripts/build-images.sh" workload
fi
bash "$REPO/scripts/build-v2vm.sh"

tests=("${V2_TESTS[@]}")
for arg in "$@"; do [[ $arg == tests/* ]] && tests=(); done

RUN="$(mktemp -d /tmp/lxcfs-py-v2.XXXXXX)"
QEMU_PID=""
cleanup() {
    [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$RUN/ctl"
# the command the guest's init runs in /work (the checkout); no bytecode or pytest cache
# written back into the checkout from the guest
{
    echo "export LXCFS_PY_TEST_TIME_SCALE=$TIME_SCALE PYTHONDONTWRITEBYTECODE=1"
    # dockerd's start and the image's load take minutes here: done beside the tests that need no
    # Docker (they come first); the tests' own `docker` fixture then waits for them (same scripts)
    echo "(bash scripts/start-dockerd.sh && bash scripts/build-images.sh workload) >/tmp/docker-warmup.log 2>&1 &"
    # the guest's console is a terminal; colours only if ours is one too
    [[ -t 1 ]] || echo "export PY_COLORS=0"
    printf 'exec %s/bin/python -m pytest -p no:cacheprovider' "$VENV"
    printf ' %q' "${tests[@]}" "$@"
    echo
} >"$RUN/ctl/command"
: >"$RUN/output"

# KVM only where the CPU really offers it (a /dev/kvm alone is not enough here), else TCG
if [[ -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
    accel=(-accel kvm -cpu host)
else
    accel=(-accel tcg,thread=multi,tb-size=256 -cpu max)
fi
log "booting the v2 guest (${accel[1]}), running: $(tail -n1 "$RUN/ctl/command")"
started=$SECONDS
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${accel[@]}" \
    -m "${LXCFS_PY_V2_MEMORY:-2048}" -smp "${LXCFS_PY_V2_CPUS:-2}" \
    -display none -vga none -nodefaults -no-reboot -nic none \
    -kernel "$CACHE/vmlinux" -initrd "$CACHE/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 nokaslr edd=off" \
    -drive file="$CACHE/rootfs.img",format=raw,if=virtio,snapshot=on \
    -fsdev local,id=ctl,path="$RUN/ctl",security_model=none -device virtio-9p-pci,fsdev=ctl,mount_tag=v2ctl \
    -fsdev local,id=work,path="$REPO",security_model=none -device virtio-9p-pci,fsdev=work,mount_tag=v2work \
    -device virtio-serial-pci -chardev file,id=out,path="$RUN/output" -device virtconsole,chardev=out \
    -device virtio-rng-pci -serial file:"$RUN/console" \
    </dev/null >"$RUN/qemu.log" 2>&1 &
QEMU_PID=$!
tail -n +1 -f --pid="$QEMU_PID" "$RUN/output" &
wait "$QEMU_PID" && qemu_rc=0 || qemu_rc=$?
QEMU_PID=""
wait
if [[ -s $RUN/ctl/rc ]]; then
    rc=$(cat "$RUN/ctl/rc")
else
    echo "test-v2: the guest stopped without an exit code (qemu: $qemu_rc); its console:" >&2
    cat "$RUN/qemu.log" >&2
    tail -n 40 "$RUN/console" >&2
    ((qemu_rc == 124)) && die "timed out after ${TIMEOUT}s (LXCFS_PY_V2_TIMEOUT)"
    die "the guest died (see the console above)"
fi
log "exit $rc; guest booted in $(cat "$RUN/ctl/booted" 2>/dev/null || echo '?')s, stage took $((SECONDS - started))s"
exit "$rc"
