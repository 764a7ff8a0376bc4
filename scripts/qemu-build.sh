#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds QEMU with the project's vhost-blk device (tools/qemu/patches/) on
# Debian's own qemu source (scripts/qemu-version.mk):
#
#   build/qemu/dl/                        the source package (apt-get source)
#   build/qemu/src/                       extracted + patched source
#   build/qemu/build/                     meson/ninja tree (x86_64-softmmu only)
#   build/qemu/bin/qemu-system-x86_64     the result
#   build/qemu/build.log                  everything the build printed
#
# Nothing is done when the stamp (source version, patches, this script)
# matches and the binary exists.  When the patches change the source is
# extracted afresh, never patched twice.  See tools/qemu/README.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# QEMU_PKGVER from scripts/qemu-version.mk unless the environment sets it (?=).
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/: "${\1:=\2}"/p' "$top/scripts/qemu-version.mk")"
build=${BUILD:-$top/build}
jobs=${JOBS:-$(nproc)}
force=0

usage() {
	echo "usage: $0 [-j JOBS] [--force]   (env: BUILD=$build QEMU_PKGVER=$QEMU_PKGVER)"
	exit "${1:-0}"
}
die() { echo "qemu-build: $*" >&2; exit 1; }
log() { echo "qemu-build: $*"; }

while (($#)); do
	case $1 in
	-j) jobs=${2:?}; shift ;;
	-j*) jobs=${1#-j} ;;
	--force) force=1 ;;
	-h|--help) usage ;;
	*) usage 2 ;;
	esac
	shift
done

qd=$build/qemu
dl=$qd/dl
src=$qd/src
obj=$qd/build
bin=$qd/bin/qemu-system-x86_64
blog=$qd/build.log
patches=()
while IFS= read -r p; do patches+=("$p"); done < <(ls "$top"/tools/qemu/patches/*.patch 2>/dev/null | sort)

stamp=$({
	echo "qemu $QEMU_PKGVER"
	for p in "${patches[@]}"; do echo "== ${p##*/}"; cat "$p"; done
	cat "$0"
} | sha256sum | cut -d' ' -f1)

if ((!force)) && [ -x "$bin" ] && [ -d "$qd/share/qemu" ] && [ -f "$qd/stamp" ] &&
	[ "$(cat "$qd/stamp")" = "$stamp" ]; then
	log "up to date: $bin ($QEMU_PKGVER + ${#patches[@]} patches)"
	exit 0
fi

mkdir -p "$qd"
: >"$blog"
fail() {
	echo "qemu-build: $* (log: $blog)" >&2
	tail -30 "$blog" >&2
	exit 1
}
t0=$(date +%s)

# Build dependencies (scripts/setup.sh installs them too).
need=(meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev libaio-dev
      libcap-ng-dev libattr1-dev flex bison dpkg-dev pkg-config python3 rsync xz-utils)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

# A deb-src entry for the suites that may carry $QEMU_PKGVER, written next to
# the machine's own deb entries (same mirror), in a file of our own.
srcfile=/etc/apt/sources.list.d/vhost-blk-qemu-src.sources
apt_updated=0
apt_update() {
	((apt_updated)) && return 0
	log "apt-get update"
	apt-get update -qq >>"$blog" 2>&1 || fail "apt-get update failed"
	apt_updated=1
}
have_deb_src() {
	grep -qs '^deb-src .*bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
	grep -qsE '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources
}
if ! have_deb_src; then
	((EUID == 0)) || die "no deb-src entry for bookworm: add one (as root) for apt-get source"
	mirror=$(sed -n 's/^URIs: *\(.*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
		grep -v security | head -1)
	secmirror=$(sed -n 's/^URIs: *\(.*debian-security\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
		head -1)
	cat >"$srcfile.tmp" <<SRC
# Written by vhost-blk scripts/qemu-build.sh: Debian's qemu source for the
# vhost-blk QEMU device (tools/qemu/).  Safe to delete.
Types: deb-src
URIs: ${mirror:-http://deb.debian.org/debian}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: ${secmirror:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	mv "$srcfile.tmp" "$srcfile"
	log "added $srcfile"
	apt_update
fi

if ((${#missing[@]})); then
	((EUID == 0)) || die "missing packages: ${missing[*]} (apt-get install them)"
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >>"$blog" 2>&1 ||
		{ apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >>"$blog" 2>&1; } ||
		fail "apt-get install ${missing[*]} failed"
fi

# The source package, downloaded once per version.
upver=${QEMU_PKGVER#*:}
dsc=$dl/qemu_$upver.dsc
if [ ! -f "$dsc" ] || [ ! -f "$dl/.complete-$upver" ]; then
	gone="qemu source $QEMU_PKGVER is gone from the apt sources: update scripts/qemu-version.mk"
	have_src() { apt-cache showsrc qemu 2>/dev/null | grep -cx "Version: $QEMU_PKGVER" >/dev/null; }
	if ! have_src; then
		apt_update
		have_src || die "$gone"
	fi
	rm -rf "$dl" && mkdir -p "$dl"
	log "downloading qemu source $QEMU_PKGVER"
	(cd "$dl" && apt-get source -qq --download-only "qemu=$QEMU_PKGVER") >>"$blog" 2>&1 ||
		{ tail -5 "$blog" >&2; die "$gone"; }
	[ -f "$dsc" ] || die "apt-get source did not produce $dsc"
	touch "$dl/.complete-$upver"
fi

# Extract afresh into a scratch tree and apply the series there, in order;
# then sync it into src/ by content (never patching a patched tree), so the
# files a change of the series did not touch keep their timestamps and
# ninja rebuilds only what changed.  A new source version starts over.
fresh=$qd/src.new
rm -rf "$fresh"
log "extracting $(basename "$dsc")"
dpkg-source --no-check --no-copy -x "$dsc" "$fresh" >>"$blog" 2>&1 || fail "dpkg-source -x failed"
for p in "${patches[@]}"; do
	echo "== applying ${p##*/}" >>"$blog"
	patch -d "$fresh" -p1 --batch --forward <"$p" >>"$blog" 2>&1 ||
		fail "patch ${p#$top/} does not apply to qemu $QEMU_PKGVER"
done
log "applied ${#patches[@]} patches"
if [ "$(cat "$qd/pkgver" 2>/dev/null)" != "$QEMU_PKGVER" ]; then
	rm -rf "$src" "$obj"
fi
mkdir -p "$src"
rsync -rlp --checksum --delete "$fresh/" "$src/" >>"$blog" 2>&1 || fail "rsync into $src failed"
rm -rf "$fresh"
echo "$QEMU_PKGVER" >"$qd/pkgver"

conf=(--target-list=x86_64-softmmu --without-default-features
      --disable-install-blobs --disable-docs --enable-kvm --enable-tcg
      --enable-vhost-kernel --enable-vhost-user --enable-linux-aio --enable-virtfs
      --enable-cap-ng --enable-attr --disable-debug-info)
if [ ! -f "$obj/build.ninja" ] || [ "$(cat "$obj/.vhost-blk-configure" 2>/dev/null)" != "${conf[*]}" ]; then
	rm -rf "$obj" && mkdir -p "$obj"
	log "configuring (log: $blog)"
	(cd "$obj" && "$src/configure" "${conf[@]}") >>"$blog" 2>&1 || fail "configure failed"
	echo "${conf[*]}" >"$obj/.vhost-blk-configure"
fi
log "building qemu-system-x86_64 with -j$jobs"
nice -n 19 ninja -C "$obj" -j"$jobs" qemu-system-x86_64 >>"$blog" 2>&1 || fail "build failed"
mkdir -p "$qd/bin"
install -m 0755 "$obj/qemu-system-x86_64" "$bin.tmp" && mv "$bin.tmp" "$bin"
# Firmware: QEMU is relocatable, it looks in ../share/qemu next to its
# binary.  Link Debian's firmware there (qemu-system-data, seabios,
# ipxe-qemu: Debian's --firmwarepath, in its order), so the binary boots
# q35 and pc with no -L, like /usr/bin/qemu-system-x86_64.
fw=$qd/share/qemu
rm -rf "$fw" && mkdir -p "$fw"
for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
	[ -d "$d" ] || continue
	for f in "$d"/*; do
		[ -e "$fw/${f##*/}" ] || ln -s "$f" "$fw/"
	done
done
[ -e "$fw/bios-256k.bin" ] || fail "no bios-256k.bin in /usr/share/seabios (apt-get install seabios)"
echo "$stamp" >"$qd/stamp"
t=$(($(date +%s) - t0))
echo "$t" >"$qd/build-seconds"
log "built $bin in $t s ($QEMU_PKGVER + ${#patches[@]} patches)"
