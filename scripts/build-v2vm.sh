#!/usr/bin/env bash
# Build the cgroup-v2 test guest that scripts/test-v2.sh boots under QEMU: this
# host runs cgroup v1, so a real v2 kernel comes as a guest. Debian's own
# kernel (linux-image-amd64), a busybox initramfs and an ext4 root image
# debootstrapped from the apt mirror, with python3, Debian's lxcfs (the
# differential test's reference), docker.io and python3-docker, fuse3, procps, util-linux, and a
# venv /opt/lxcfs-py with the project's dependencies installed here at native
# speed (pip in the emulated guest takes minutes). The checkout itself is not
# in the image: test-v2.sh shares it over 9p, the venv finds it through a .pth.
#
# Usage: build-v2vm.sh      (prints the cache dir's files when done)
# Cache: /var/cache/lxcfs-py/v2vm/. The image carries the hash of its recipe
# (this script, the guest's init scripts, the dependency list); a changed
# recipe rebuilds it, reusing the debootstrapped tree when the package list is
# the same. LXCFS_PY_REBUILD=1 starts from scratch.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GUEST_FILES="$REPO/scripts/v2vm"
CACHE=/var/cache/lxcfs-py/v2vm
SUITE=bookworm
REBUILD="${LXCFS_PY_REBUILD:-0}"
GUEST_PACKAGES=(python3 python3-venv lxcfs fuse3 docker.io procps util-linux iproute2 kmod
    busybox-static ca-certificates iptables python3-docker)
# what the live tests import in the guest (the daemon's own dependencies, pytest, and
# ansible-core to run the collection's lxcfs_container module on python3-docker)
PY_REQUIREMENTS=("pyfuse3>=3.2" "trio>=0.22" "pytest>=7" "docker>=5" "ansible-core>=2.17,<2.20")
VENV=/opt/lxcfs-py
# modules the initramfs loads to reach the root disk (their dependencies come along)
BOOT_MODULES=(virtio_pci virtio_blk ext4)
# driver trees a headless test guest never loads: a smaller image, a faster build
UNUSED_MODULES=(sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband
    drivers/staging drivers/iio drivers/hid drivers/input drivers/usb drivers/bluetooth
    net/bluetooth net/wireless net/mac80211 drivers/scsi drivers/mtd drivers/isdn)
IMAGE_SIZE=4G
# the container image the guest's dockerd runs (no registry there): saved from the host's dockerd
WORKLOAD_IMAGE=lxcfs-py/workload:$SUITE
WORKLOAD_SAVED=/var/cache/lxcfs-py/images/workload-$SUITE.image.tar

die() { echo "build-v2vm: error: $*" >&2; exit 1; }
log() { echo "build-v2vm: [+$((SECONDS - START))s] $*"; }
START=$SECONDS

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"

packages_hash() { echo "$SUITE ${GUEST_PACKAGES[*]}" | sha256sum | cut -c1-12; }
recipe_hash() {
    { cat "${BASH_SOURCE[0]}" "$GUEST_FILES"/*; echo "${PY_REQUIREMENTS[*]}"; workload_id; } | sha256sum | cut -c1-12
}
workload_id() { docker image inspect -f '{{.Id}}' "$WORKLOAD_IMAGE" 2>/dev/null || echo none; }

# chroot with a clean environment (the host's pyenv/venv variables mean nothing there)
in_rootfs() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$ROOTFS" "$@"; }

# Unmount whatever debootstrap left mounted in the tree if it died mid-way.
unmount_below() {
    awk -v r="$1" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts \
        | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
}

kernel() {
    local pkg
    pkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
    [[ -n $pkg ]] || die "no linux-image-amd64 in apt's lists (run apt-get update)"
    KVER=${pkg#linux-image-}
    if [[ ! -s $CACHE/vmlinux-$KVER || ! -d $CACHE/kernel-$KVER ]]; then
        log "kernel $pkg"
        rm -rf "$CACHE"/kernel-* "$CACHE"/vmlinux-* "$CACHE"/linux-image-*.deb
        (cd "$CACHE" && apt-get download -q "$pkg") || die "apt-get download $pkg failed"
        dpkg -x "$CACHE/${pkg}"_*.deb "$CACHE/kernel-$KVER.tmp"
        # QEMU boots an uncompressed ELF kernel directly (PVH entry): no real-mode setup and
        # no xz decompression under emulation, seconds less per boot
        python3 - "$CACHE/kernel-$KVER.tmp/boot/vmlinuz-$KVER" "$CACHE/vmlinux-$KVER.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[data.find(b"\xfd7zXZ\x00"):])
assert elf[:4] == b"\x7fELF", "the decompressed kernel is not an ELF image"
open(sys.argv[2], "wb").write(elf)
PY
        mv "$CACHE/vmlinux-$KVER.tmp" "$CACHE/vmlinux-$KVER"
        mv "$CACHE/kernel-$KVER.tmp" "$CACHE/kernel-$KVER"
    fi
    ln -sfn "vmlinux-$KVER" "$CACHE/vmlinux"
}

debootstrap_tree() {
    local tree=$CACHE/tree-$(packages_hash)
    if [[ $REBUILD == 1 || ! -e $tree/.complete ]]; then
        unmount_below "$tree"
        rm -rf --one-file-system "$tree"
        local mirror
        mirror="$(find_mirror)"
        log "debootstrap $SUITE from $mirror (log: $CACHE/debootstrap.log)"
        debootstrap --variant=minbase --include="$(IFS=,; echo "${GUEST_PACKAGES[*]}")" \
            "$SUITE" "$tree" "$mirror" >"$CACHE/debootstrap.log" 2>&1 || {
                tail -n 20 "$CACHE/debootstrap.log" >&2
                unmount_below "$tree"
                die "debootstrap failed (full log: $CACHE/debootstrap.log)"
            }
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$tree" apt-get clean
        rm -rf "$tree"/var/lib/apt/lists/* "$tree"/usr/share/doc/* "$tree"/usr/share/man/* \
            "$tree"/usr/share/locale/*
        touch "$tree/.complete"
    else
        log "debootstrapped tree $tree (cached)"
    fi
    for old in "$CACHE"/tree-*; do [[ $old == "$tree" ]] || rm -rf --one-file-system "$old"; done
    TREE=$tree
}

# The project's Python dependencies as wheels built on this host (same Debian, same
# CPython 3.11 ABI as the guest), so the guest needs no network.
wheelhouse() {
    local python=$REPO/.venv/bin/python
    [[ -x $python ]] || die "$python missing (run scripts/install-deps.sh)"
    rm -rf "$CACHE/wheels"
    "$python" -m pip wheel -q -w "$CACHE/wheels" "${PY_REQUIREMENTS[@]}" \
        || die "pip wheel ${PY_REQUIREMENTS[*]} failed"
}

# Runs on the copy of the tree that becomes the image: modules, venv, guest config.
customize_rootfs() {
    rm -rf "$ROOTFS/lib/modules"; mkdir -p "$ROOTFS/lib/modules"
    cp -a "$CACHE/kernel-$KVER/lib/modules/$KVER" "$ROOTFS/lib/modules/"
    (cd "$ROOTFS/lib/modules/$KVER/kernel" && rm -rf "${UNUSED_MODULES[@]}")
    in_rootfs depmod "$KVER"

    log "venv $VENV: ${PY_REQUIREMENTS[*]}"
    cp -r "$CACHE/wheels" "$ROOTFS/tmp/wheels"
    in_rootfs python3 -m venv "$VENV"
    in_rootfs "$VENV/bin/pip" install -q --no-index --find-links /tmp/wheels "${PY_REQUIREMENTS[@]}" \
        || die "pip install in the guest's venv failed"
    rm -rf "$ROOTFS/tmp/wheels"
    # the checkout, shared at /work, is the lxcfs_py package the guest runs
    echo /work >"$ROOTFS$VENV/lib/python3.11/site-packages/lxcfs-py-checkout.pth"

    install -m 755 "$GUEST_FILES/guest-init" "$ROOTFS/sbin/lxcfs-py-guest-init"
    mkdir -p "$ROOTFS/etc/docker"
    # no systemd in the guest: Docker manages the cgroups itself
    echo '{"exec-opts": ["native.cgroupdriver=cgroupfs"]}' \
        >"$ROOTFS/etc/docker/daemon.json"
    if [[ "$(workload_id)" != none ]]; then
        mkdir -p "$ROOTFS$(dirname "$WORKLOAD_SAVED")"
        docker save -o "$ROOTFS$WORKLOAD_SAVED" "$WORKLOAD_IMAGE" || die "docker save $WORKLOAD_IMAGE failed"
    else
        log "no $WORKLOAD_IMAGE on this host (scripts/build-images.sh): the guest's Docker tests will fail"
    fi
    echo lxcfs-py-v2 >"$ROOTFS/etc/hostname"
    echo "127.0.0.1 localhost lxcfs-py-v2" >"$ROOTFS/etc/hosts"
}

initramfs() {
    local dir=$WORK/initramfs module
    mkdir -p "$dir"/{bin,modules,proc,sys,dev,root}
    cp "$ROOTFS/bin/busybox" "$dir/bin/busybox"
    for module in "${BOOT_MODULES[@]}" 9pnet_virtio 9p; do
        in_rootfs modprobe -S "$KVER" --show-depends "$module"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r module; do
        cp "$ROOTFS$module" "$dir/modules/"
        basename "$module"
    done >"$dir/modules.order"
    install -m 755 "$GUEST_FILES/initramfs-init" "$dir/init"
    (cd "$dir" && find . | "$ROOTFS/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$CACHE/initrd.gz.tmp"
    mv "$CACHE/initrd.gz.tmp" "$CACHE/initrd.gz"
}

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 qemu-system-x86_64; do
    command -v "$tool" >/dev/null || die "$tool not found (run scripts/install-deps.sh)"
done
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

want="$(recipe_hash)"
kernel
if [[ $REBUILD != 1 && -s $CACHE/rootfs.img && -s $CACHE/initrd.gz && "$(cat "$CACHE/rootfs.img.recipe" 2>/dev/null)" == "$want-$KVER" ]]; then
    log "guest image $CACHE/rootfs.img is current (cached, recipe $want, kernel $KVER)"
    exit 0
fi
debootstrap_tree
wheelhouse
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOTFS=$WORK/rootfs
log "copying the tree"
cp -a "$TREE" "$ROOTFS"
customize_rootfs
log "initramfs"
initramfs
log "rootfs.img ($IMAGE_SIZE sparse)"
truncate -s "$IMAGE_SIZE" "$WORK/rootfs.img"
mkfs.ext4 -q -F -L lxcfs-py-v2 -d "$ROOTFS" "$WORK/rootfs.img" || die "mkfs.ext4 -d failed"
mv "$WORK/rootfs.img" "$CACHE/rootfs.img"
echo "$want-$KVER" >"$CACHE/rootfs.img.recipe"
log "done: $CACHE/{vmlinux,initrd.gz,rootfs.img} (kernel $KVER, recipe $want)"
