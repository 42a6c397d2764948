#!/usr/bin/env bash
# Build PouchContainer 1.3.0 (pouchd and pouch) from the source tarball, offline,
# with Debian's golang-1.19-go in GOPATH mode (its vendor/ has every dependency).
# The binaries land in $CACHE (default /var/cache/lxcfs-py/pouch), which the
# Molecule scenario `pouch` mounts into its node; a rerun with the same tarball
# and Go does nothing.
#
# Usage: build-pouch.sh            (POUCH_TARBALL overrides the tarball's path)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARBALL="${POUCH_TARBALL:-$REPO/../shared/third_party/pouch-1.3.0.tar.gz}"
CACHE="${POUCH_CACHE:-/var/cache/lxcfs-py/pouch}"
GO_ROOT=/usr/lib/go-1.19

die() { echo "build-pouch: error: $*" >&2; exit 1; }
log() { echo "build-pouch: $*"; }

[[ -f $TARBALL ]] || die "no pouch source at $TARBALL (set POUCH_TARBALL)"
[[ -x $GO_ROOT/bin/go ]] || die "no Go at $GO_ROOT (apt-get install golang-1.19-go; scripts/install-deps.sh does)"

# what the binaries are made of: a new tarball or Go rebuilds them
stamp="$(sha256sum "$TARBALL" | cut -c1-16) $("$GO_ROOT/bin/go" version)"
if [[ -x $CACHE/pouchd && -x $CACHE/pouch && "$(cat "$CACHE/stamp" 2>/dev/null)" == "$stamp" ]]; then
    log "pouch already built in $CACHE (cached), nothing to do"
    exit 0
fi

WORK="$(mktemp -d /var/tmp/build-pouch.XXXXXX)"
trap 'rm -rf --one-file-system "$WORK"' EXIT
trap 'exit 130' INT TERM

src="$WORK/gopath/src/github.com/alibaba/pouch"
mkdir -p "$src"
tar -xzf "$TARBALL" -C "$src" --strip-components=1
log "building pouch from $TARBALL (2-3 minutes)"
t0=$SECONDS
# GOFLAGS=-mod=vendor is meaningless in GOPATH mode; GOPROXY=off makes sure
# nothing is fetched
(cd "$src" && PATH="$GO_ROOT/bin:$PATH" GOPATH="$WORK/gopath" GOCACHE="$WORK/gocache" \
    GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=1 make build) >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; die "make build failed (log above)"; }
for b in pouchd pouch; do
    [[ -x $src/bin/$b ]] || die "make build made no bin/$b"
done

mkdir -p "$CACHE"
install -m 0755 "$src/bin/pouchd" "$src/bin/pouch" "$CACHE/"
echo "$stamp" >"$CACHE/stamp"
log "built pouchd and pouch into $CACHE in $((SECONDS - t0))s"
