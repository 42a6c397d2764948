#!/usr/bin/env bash
# Start a Docker daemon for lxcfs-py integration tests on a host without
# systemd (so no `systemctl start docker`). No-op if `docker info` already works.
#
# Machine notes (Debian 12 docker.io 20.10, cgroup v1 hybrid, ext4 root):
#  - dockerd starts with default networking: iptables (nf_tables backend) and
#    the docker0 bridge work, so --iptables=false / --bridge=none are NOT
#    needed. If a host lacks netfilter, try (untested here)
#    LXCFS_PY_DOCKERD_ARGS="--iptables=false --bridge=none".
#  - `docker` on PATH may be a newer CLI (/usr/local/bin/docker 28.x) than
#    the daemon (20.10, API 1.41); the CLI negotiates the API version down.
#  - overlay2 works on the ext4 root (d_type=true, native diff). We pin it
#    explicitly so a broken overlay fails loudly instead of silently falling
#    back to the very slow vfs driver. Override with LXCFS_PY_DOCKER_STORAGE.
set -euo pipefail

LOG=/var/log/lxcfs-py-dockerd.log
PIDFILE=/run/lxcfs-py-dockerd.pid
# scaled by the tests' one time factor: dockerd takes ~30 s to start in the emulated v2 guest
TIMEOUT="$(awk -v scale="${LXCFS_PY_TEST_TIME_SCALE:-1}" 'BEGIN { printf "%d", 60 * scale }')"
STORAGE="${LXCFS_PY_DOCKER_STORAGE:-overlay2}"
read -r -a EXTRA <<<"${LXCFS_PY_DOCKERD_ARGS:-}"

die() { echo "start-dockerd: error: $*" >&2; exit 1; }
log() { echo "start-dockerd: $*"; }
# Log tail without dockerd's very chatty grpc connectivity lines.
log_tail() { grep -v 'module=grpc' "$LOG" | tail -n 15 >&2 || true; }
docker_ok() { timeout 5 docker info >/dev/null 2>&1; }

[[ $EUID -eq 0 ]] || die "must run as root"
command -v dockerd >/dev/null || die "dockerd not found (run scripts/install-deps.sh)"
command -v docker >/dev/null || die "docker CLI not found (run scripts/install-deps.sh)"

if docker_ok; then
    log "docker already running"
    exit 0
fi

pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == dockerd ]]; then
    # A previous invocation started it and it is still initialising.
    log "dockerd (pid $pid) already started, waiting for it"
else
    # dockerd refuses to start if /run/docker.pid names a live process; a
    # stale one (e.g. after a VM restart) is removed by dockerd itself.
    log "starting dockerd (--storage-driver=$STORAGE${EXTRA[*]:+ ${EXTRA[*]}}), log: $LOG"
    mkdir -p "$(dirname "$LOG")"
    echo "=== $(date -Is) start-dockerd.sh" >>"$LOG"
    # setsid: own session, so the daemon survives the caller's shell/job being
    # killed. In a non-interactive script the background child is not a group
    # leader, so setsid execs in place and $! is dockerd's PID.
    setsid nohup dockerd --storage-driver="$STORAGE" "${EXTRA[@]}" \
        </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
fi

deadline=$((SECONDS + TIMEOUT))
while ((SECONDS < deadline)); do
    if docker_ok; then
        log "docker ready (dockerd pid $pid)"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$PIDFILE"
        echo "start-dockerd: dockerd (pid $pid) exited; last log lines:" >&2
        log_tail
        die "dockerd failed to start (see $LOG)"
    fi
    sleep 0.5
done
echo "start-dockerd: last log lines:" >&2
log_tail
die "docker info still failing after ${TIMEOUT}s (dockerd pid $pid still running; see $LOG)"
