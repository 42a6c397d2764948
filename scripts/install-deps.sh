#!/usr/bin/env bash
# Install host build/test dependencies for lxcfs-py and create the repo-local
# virtualenv ($REPO/.venv) with the package installed editable plus its `test`
# extra. Idempotent: apt is skipped entirely when every package is present.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
# qemu-system-x86: the cgroup-v2 guest of scripts/test-v2.sh (e2fsprogs, for its
# image, comes with every Debian); golang-1.19-go: PouchContainer (scripts/build-pouch.sh)
PKGS=(fuse3 libfuse3-dev pkg-config gcc python3-venv python3-dev docker.io
      debootstrap lxcfs procps ca-certificates python3-docker qemu-system-x86 golang-1.19-go)
POLICY_RC=/usr/sbin/policy-rc.d

die() { echo "install-deps: error: $*" >&2; exit 1; }
log() { echo "install-deps: $*"; }

[[ $EUID -eq 0 ]] || die "must run as root (apt-get install)"

# --- apt ---------------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all apt packages already installed"
else
    log "missing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh package lists only when none exist or none is younger than 1 day
    # (apt-get update is slow and this script is rerun often).
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]]; then
        log "apt lists missing or older than 1 day: apt-get update"
        apt-get update -q || die "apt-get update failed"
    fi
    # docker.io and lxcfs ship init scripts whose postinst would start a host
    # dockerd / lxcfs. We manage dockerd ourselves (scripts/start-dockerd.sh)
    # and a host lxcfs would fight with ours, so forbid service starts during
    # the install unless a policy-rc.d is already in place.
    if [[ ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        trap 'rm -f "$POLICY_RC"' EXIT
    fi
    apt-get install -y -q -o Dpkg::Options::=--force-confold "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi

# --- python venv ---------------------------------------------------------------
[[ -f $REPO/pyproject.toml ]] || die "$REPO/pyproject.toml not found"
command -v python3 >/dev/null || die "python3 not on PATH"

# Use whichever python3 is first on PATH (may be a pyenv build). Recreate the
# venv if its interpreter is gone (e.g. the base Python was removed).
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "reusing venv $VENV"
else
    log "creating venv $VENV with $(command -v python3) ($(python3 --version 2>&1))"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (python3-venv missing?)"
fi

log "pip install -e '$REPO[test]'"
"$VENV/bin/python" -m pip install -q -e "$REPO[test]" || die "pip install -e '$REPO[test]' failed"
log "done; activate with: source $VENV/bin/activate"

# --- the lowest ansible-core the collection claims -------------------------------
# meta/runtime.yml's requires_ansible lower bound, in a venv of its own: the role
# tests (tests/ansible_cores.py) and the sanity test run on it and on .venv's.
LOWEST_CORE="$(sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' "$REPO/meta/runtime.yml")"
[[ -n $LOWEST_CORE ]] || die "no requires_ansible: \">=X.Y...\" in $REPO/meta/runtime.yml"
CORE_VENV="$REPO/.venv-core-$LOWEST_CORE"
# docker: the Docker SDK that Molecule's driver (community.docker) needs on the controller
# (scripts/molecule.sh --core); pytest, pytest-xdist, pytest-mock: ansible-test units
CORE_PKGS=("ansible-core~=$LOWEST_CORE.0" docker pytest pytest-xdist pytest-mock)
if "$CORE_VENV/bin/ansible-playbook" --version 2>/dev/null | grep -q "core $LOWEST_CORE\."; then
    log "reusing $CORE_VENV"
else
    log "creating $CORE_VENV with ansible-core $LOWEST_CORE"
    rm -rf "$CORE_VENV"
    python3 -m venv "$CORE_VENV" || die "python3 -m venv $CORE_VENV failed"
fi
if ! "$CORE_VENV/bin/python" -c 'import docker, pytest, xdist, pytest_mock' 2>/dev/null; then
    "$CORE_VENV/bin/python" -m pip install -q "${CORE_PKGS[@]}" \
        || die "pip install ${CORE_PKGS[*]} into $CORE_VENV failed"
fi
