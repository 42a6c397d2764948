#!/usr/bin/env bash
# Build the Docker images used by lxcfs-py integration tests, without any image
# registry: debootstrap a Debian rootfs from the apt mirror, tar it, and
# `docker import` it.
#
# Usage: build-images.sh [IMAGE...]     (default: workload)
#   workload  lxcfs-py/workload:bookworm  minimal bookworm with procps + util-linux
#   programs  lxcfs-py/programs:bookworm  the workload plus python3-psutil, nodejs, sysstat
#   node      lxcfs-py/node:bookworm      systemd-booting bookworm "host" for the
#             Molecule scenarios (docker.io, fuse3, python3...), plus the workload
#             image saved as $CACHE/workload-bookworm.image.tar (`docker save`)
#             for the nodes' own dockerd to `docker load`
#
# Caching (safe to rerun): if the docker image exists nothing is done; else if
# its `docker save` (NAME-bookworm.image.tar) is under $CACHE it is loaded; else if
# the rootfs tarball exists under $CACHE it is just imported; else debootstrap.
# Set LXCFS_PY_REBUILD=1 to ignore both caches.
set -euo pipefail

CACHE=/var/cache/lxcfs-py/images
SUITE=bookworm
REBUILD="${LXCFS_PY_REBUILD:-0}"

die() { echo "build-images: error: $*" >&2; exit 1; }
log() { echo "build-images: $*"; }

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"

# Remove the debootstrap dir even on failure/interrupt. debootstrap mounts
# proc/sys inside the target; if it dies mid-way those stay mounted, so unmount
# first and never let rm cross into another filesystem.
ROOTFS=""
ROOTFS_HOOK=""
cleanup() {
    [[ -n $ROOTFS && -d $ROOTFS ]] || return 0
    awk -v r="$ROOTFS" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts \
        | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf --one-file-system "$ROOTFS"
    ROOTFS=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Strip things a test image never needs, to keep the tarball small.
slim_rootfs() {
    local r=$1
    rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
        "$r"/var/cache/apt/archives/partial/* "$r"/var/lib/apt/lists/* \
        "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
        "$r"/usr/share/locale/* "$r"/var/cache/debconf/*-old \
        "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/tmp/* "$r"/var/tmp/*
    # docker bind-mounts these at run time; don't bake the build host's in.
    : >"$r/etc/resolv.conf"
    : >"$r/etc/hostname"
}

# build_rootfs_image TAG TARBALL DEBOOTSTRAP_ARGS... -- IMPORT_CHANGES...
build_rootfs_image() {
    local tag=$1 tarball=$2; shift 2
    local dargs=() changes=()
    while (($#)) && [[ $1 != -- ]]; do dargs+=("$1"); shift; done
    (($#)) && shift
    changes=("$@")

    if [[ $REBUILD != 1 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
        log "$tag: image already present (cached), nothing to do"
        return 0
    fi
    # a `docker save` of it (by `node` below; the v2 guest has one and no network): same image ID
    local saved=${tarball%.tar}.image.tar
    if [[ $REBUILD != 1 && -s $saved ]]; then
        docker load -q -i "$saved" >/dev/null || die "$tag: docker load $saved failed"
        log "$tag: loaded from $saved"
        return 0
    fi
    if [[ $REBUILD == 1 || ! -s $tarball ]]; then
        command -v debootstrap >/dev/null || die "debootstrap not found (run scripts/install-deps.sh)"
        local mirror t0=$SECONDS
        mirror="$(find_mirror)"
        ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
        log "$tag: debootstrap $SUITE from $mirror (${dargs[*]})"
        # Log to a fixed name (overwritten each build) for post-mortems.
        debootstrap "${dargs[@]}" "$SUITE" "$ROOTFS" "$mirror" \
            >"$CACHE/debootstrap.log" 2>&1 || {
                tail -n 20 "$CACHE/debootstrap.log" >&2
                die "$tag: debootstrap failed (full log: $CACHE/debootstrap.log)"
            }
        slim_rootfs "$ROOTFS"
        # per-image changes to the rootfs (set by the image's case below)
        if [[ -n $ROOTFS_HOOK ]]; then "$ROOTFS_HOOK" "$ROOTFS"; fi
        # Write to a temp name and rename, so an interrupted run never leaves
        # a truncated tarball that later runs would trust.
        tar --numeric-owner -C "$ROOTFS" -cf "$tarball.tmp" . \
            || { rm -f "$tarball.tmp"; die "$tag: tar of rootfs failed"; }
        mv -f "$tarball.tmp" "$tarball"
        cleanup
        log "$tag: rootfs tarball $tarball ($(du -h "$tarball" | cut -f1)) built in $((SECONDS - t0))s"
    else
        log "$tag: using cached rootfs tarball $tarball"
    fi
    local c import_args=()
    for c in "${changes[@]}"; do import_args+=(--change "$c"); done
    docker import "${import_args[@]}" "$tarball" "$tag" >/dev/null \
        || die "$tag: docker import $tarball failed"
    log "$tag: imported ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
}

build_workload() {
    build_rootfs_image "lxcfs-py/workload:$SUITE" "$CACHE/workload-$SUITE.tar" \
        --variant=minbase --include=procps,util-linux \
        -- 'CMD ["/bin/bash"]' \
           'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
}

# The real programs whose view of a limited container the tests check: psutil,
# Node.js's os module, sysstat, lscpu, procps.
build_programs() {
    build_rootfs_image "lxcfs-py/programs:$SUITE" "$CACHE/programs-$SUITE.tar" \
        --variant=minbase --include=procps,util-linux,sysstat,python3-psutil,nodejs \
        -- 'CMD ["/bin/bash"]' \
           'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
}

# --- node image (Molecule) ----------------------------------------------------
# A Debian 12 "host" that boots systemd as PID 1 in a container and already has
# everything the roles install (lxcfs: fuse3, python3-venv; docker_lxcfs:
# docker.io, python3-docker; apt module: python3-apt), so converge needs no apt
# access. The apt sources stay valid (the mirror debootstrap used).
NODE_PACKAGES=(systemd systemd-sysv dbus sudo python3 python3-apt python3-venv
    python3-docker docker.io fuse3 procps iproute2 util-linux ca-certificates
    iptables kmod less)
# `docker import --change`s (20.10 takes no STOPSIGNAL here: Molecule's
# platforms set stop_signal SIGRTMIN+3, which makes systemd shut down cleanly)
NODE_CHANGES=('CMD ["/sbin/init"]' 'ENV container=docker'
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')

node_customize() {
    local r=$1
    # each node gets its own machine-id at boot (systemd makes a transient one)
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    # no consoles and no udev in a container; these only fail or wait
    local u
    for u in getty@tty1.service console-getty.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-udev-settle.service \
        systemd-modules-load.service sys-kernel-config.mount \
        sys-kernel-debug.mount sys-kernel-tracing.mount proc-sys-fs-binfmt_misc.automount \
        systemd-binfmt.service systemd-firstboot.service; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    # the node's dockerd: its containers are scopes of the node's systemd
    # (systemd cgroup driver), so their cgroups sit under the node's own, not
    # beside the outer Docker's (blkio aside: see scripts/molecule.sh); overlay2
    # on the /var/lib/docker volume. The roles merge their keys into this file.
    mkdir -p "$r/etc/docker"
    cat >"$r/etc/docker/daemon.json" <<'JSON'
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "storage-driver": "overlay2"
}
JSON
}

# A hash of what goes into the node image: a changed recipe rebuilds it.
node_recipe() {
    { echo "${NODE_PACKAGES[*]}"; echo "${NODE_CHANGES[*]}"; declare -f node_customize; } | sha256sum | cut -c1-12
}

# Drop a node image built from another recipe, and rootfs tarballs of other
# recipes (the tarball's name carries the recipe hash).
node_check_recipe() {
    local tag=$1 tarball=$2 have want f
    want="$(node_recipe)"
    if docker image inspect "$tag" >/dev/null 2>&1; then
        have="$(docker image inspect -f '{{index .Config.Labels "lxcfs-py.node-recipe"}}' "$tag")"
        if [[ $have != "$want" ]]; then
            log "$tag: built from recipe '$have', want '$want': rebuilding"
            docker image rm "$tag" >/dev/null
        fi
    fi
    for f in "$CACHE/node-$SUITE"-*.tar; do
        [[ -e $f && $f != "$tarball" ]] && rm -f "$f"
    done
    return 0
}

# save_image TAG FILE: `docker save` TAG unless FILE already holds this image ID.
save_image() {
    local tag=$1 file=$2 id
    id="$(docker image inspect -f '{{.Id}}' "$tag")"
    if [[ $REBUILD != 1 && -s $file && "$(cat "$file.id" 2>/dev/null)" == "$id" ]]; then
        log "$tag: saved image $file is current (cached)"
        return 0
    fi
    docker save -o "$file.tmp" "$tag" || { rm -f "$file.tmp"; die "docker save $tag failed"; }
    mv -f "$file.tmp" "$file"
    echo "$id" >"$file.id"
    log "$tag: saved to $file ($(du -h "$file" | cut -f1))"
}

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap)"
# Fail before a long debootstrap rather than after it.
timeout 10 docker info >/dev/null 2>&1 || die "docker is not running (run scripts/start-dockerd.sh)"
mkdir -p "$CACHE"
# Serialise concurrent runs (they would share tarball names and tags).
exec 9>"$CACHE/.lock"
flock 9

(($#)) || set -- workload
for image in "$@"; do
    case $image in
    programs)
        build_programs
        ;;
    workload)
        # Plain container for /proc-view tests: free/uptime/top (procps),
        # nproc/cat (coreutils), lscpu (util-linux). No systemd, no python.
        build_workload
        ;;
    node)
        # The image the nodes' dockerd loads (as in `workload`), and the node.
        build_workload
        save_image "lxcfs-py/workload:$SUITE" "$CACHE/workload-$SUITE.image.tar"
        node_check_recipe "lxcfs-py/node:$SUITE" "$CACHE/node-$SUITE-$(node_recipe).tar"
        ROOTFS_HOOK=node_customize
        build_rootfs_image "lxcfs-py/node:$SUITE" "$CACHE/node-$SUITE-$(node_recipe).tar" \
            --variant=minbase --include="$(IFS=,; echo "${NODE_PACKAGES[*]}")" \
            -- "${NODE_CHANGES[@]}" "LABEL lxcfs-py.node-recipe=$(node_recipe)"
        ROOTFS_HOOK=""
        ;;
    *)
        die "unknown image '$image' (known: workload, programs, node)"
        ;;
    esac
done
