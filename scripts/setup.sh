#!/usr/bin/env bash
# The main job on this machine (README, first command): install what is
# needed, make sure a Docker engine runs (no systemd here to start one), build
# the canary image, then roll site.yml out to this machine. Extra arguments go
# to ansible-playbook (e.g. --check --diff, -e lxcfs_enable_cfs=true).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$REPO/scripts/install-deps.sh"
bash "$REPO/scripts/start-dockerd.sh"
bash "$REPO/scripts/build-images.sh" workload

cd "$REPO"
.venv/bin/ansible-playbook -i inventories/local/hosts.yml site.yml "$@"
