#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what it needs, starts
# dockerd if none runs (and stops it again afterwards), builds the test image,
# then runs the unit and live tests, the cgroup-v2 stage (scripts/test-v2.sh)
# and the Molecule scenarios. Extra arguments go to the host's pytest.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERD_PIDFILE=/run/lxcfs-py-dockerd.pid

bash "$REPO/scripts/install-deps.sh"

if ! timeout 5 docker info >/dev/null 2>&1; then
    bash "$REPO/scripts/start-dockerd.sh"
    # we started it, so we stop it: leave the machine as we found it
    trap 'kill "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null || true' EXIT
fi
bash "$REPO/scripts/build-images.sh" workload programs

cd "$REPO"
.venv/bin/python -m pytest tests "$@"
# cgroup v2 on a real kernel (a QEMU guest, built once and cached): what only v2 shows
bash "$REPO/scripts/test-v2.sh"
# systemd nodes (Debian 12 images built here): the rollout, a stopped rollout,
# restarts, and PouchContainer (built from source, cached, by molecule.sh)
for scenario in default fleet restart pouch; do
    bash "$REPO/scripts/molecule.sh" test -s "$scenario"
done
# the rollout again with the lowest ansible-core meta/runtime.yml claims (its venv:
# scripts/install-deps.sh); the runs above use .venv's current core
LOWEST_CORE="$(sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' "$REPO/meta/runtime.yml")"
bash "$REPO/scripts/molecule.sh" --core "$LOWEST_CORE" test -s default
