#!/usr/bin/env bash
# Run Molecule (from the repo's .venv) on this machine's dockerd, with the node
# image built first (cached). Arguments go to molecule, e.g.
#     scripts/molecule.sh test -s default
#     scripts/molecule.sh test -s fleet
#     scripts/molecule.sh test -s pouch    (builds pouch first: scripts/build-pouch.sh)
#     scripts/molecule.sh converge -s default; scripts/molecule.sh login -s default
#     scripts/molecule.sh --core 2.17 test -s default
#                          (the playbooks run with .venv-core-2.17's ansible-core,
#                          made by scripts/install-deps.sh; Molecule stays .venv's)
# Needs what scripts/install-deps.sh installs and a running dockerd
# (scripts/start-dockerd.sh); scripts/test.sh does both.
#
# Leaves nothing behind after `molecule test` (its destroy step removes the
# nodes with their /var/lib/docker volumes). On top of that, this script
# removes what may survive an interrupted run: node containers of the
# scenarios (named lxcfs-py-mol-*), the empty blkio `system.slice`
# cgroup that the nodes' systemd creates at the top of this (systemd-less)
# host's blkio hierarchy, and empty cgroups named lxcfs-py-mol-* (the pouch
# node's containers).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_PREFIX=lxcfs-py-mol-

die() { echo "molecule.sh: error: $*" >&2; exit 1; }
log() { echo "molecule.sh: $*"; }

core_venv=
if [[ ${1:-} == --core ]]; then
    [[ -n ${2:-} ]] || die "--core needs a version, e.g. --core 2.17"
    core_venv="$REPO/.venv-core-$2"
    [[ -x $core_venv/bin/ansible-playbook ]] || die "no $core_venv (scripts/install-deps.sh makes the lowest core's)"
    shift 2
fi

[[ $EUID -eq 0 ]] || die "must run as root (nodes need devices and cgroups)"
[[ -x $REPO/.venv/bin/molecule ]] || die "no molecule in $REPO/.venv (run scripts/install-deps.sh)"
timeout 10 docker info >/dev/null 2>&1 || die "docker is not running (run scripts/start-dockerd.sh)"

# molecule runs ansible-config, ansible-playbook and pytest from PATH
export PATH="$REPO/.venv/bin:$PATH"
if [[ -n $core_venv ]]; then
    # that core's ansible commands first, and only them (the verifier's pytest with
    # testinfra stays .venv's); the collections Molecule's driver and the scenarios use
    # (community.docker, ansible.posix) come from .venv's ansible package
    core_bin="$(mktemp -d /tmp/lxcfs-py-molecule-core.XXXXXX)"
    trap 'rm -rf "$core_bin"' EXIT
    ln -s "$core_venv"/bin/ansible* "$core_bin/"
    export PATH="$core_bin:$PATH"
    LXCFS_PY_EXTRA_COLLECTIONS="$("$REPO/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    [[ -d $LXCFS_PY_EXTRA_COLLECTIONS/ansible_collections/community/docker ]] \
        || die "no community.docker in $REPO/.venv (pyproject's test extra has the ansible package)"
    export LXCFS_PY_EXTRA_COLLECTIONS
    log "playbooks run with $("$core_venv/bin/ansible-playbook" --version | sed -n 1p)"
fi
if [[ ! -t 1 ]]; then
    export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
fi

bash "$REPO/scripts/build-images.sh" node
# the pouch scenario's node gets pouchd and pouch built from source (cached)
if [[ " $* " == *" -s pouch "* || " $* " == *" --scenario-name pouch "* ]]; then
    bash "$REPO/scripts/build-pouch.sh"
fi

# Cgroups that exist now are not ours to remove.
own_cgroups=()
if [[ ! -d /run/systemd/system ]]; then
    for h in /sys/fs/cgroup/*/; do
        [[ -d ${h}system.slice ]] || own_cgroups+=("${h}system.slice")
    done
fi

cleanup() {
    local rc=$? c d
    [[ -z ${core_bin:-} ]] || rm -rf "$core_bin"
    # only after a whole `test` (or `destroy`): other commands keep nodes on purpose
    if [[ " $* " == *" test "* || " $* " == *" destroy "* ]]; then
        for c in $(docker ps -aq --filter "name=^$NODE_PREFIX" --filter label=owner=molecule); do
            log "removing leftover node $(docker inspect -f '{{.Name}}' "$c")"
            docker rm -f -v "$c" >/dev/null || true
        done
        # cgroup parents named after the nodes (the pouch node's pouchd uses one)
        for d in /sys/fs/cgroup/*/"$NODE_PREFIX"*/; do
            [[ -d $d ]] && own_cgroups+=("${d%/}")
        done
        for d in "${own_cgroups[@]}"; do
            # rmdir only: a cgroup with processes or children in use stays
            [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
    fi
    return "$rc"
}
trap 'cleanup "$@"' EXIT
trap 'exit 130' INT TERM

cd "$REPO"
t0=$SECONDS
rc=0
molecule "$@" || rc=$?
log "molecule $* exited $rc after $((SECONDS - t0))s"
exit "$rc"
