#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Provides the vhost core's private header, drivers/vhost/vhost.h, for exactly
# one kernel.  vhost_blk.ko is built against it and the header is not part of
# any linux-headers package; a vhost.h from another kernel version compiles
# into a module whose struct layouts silently disagree with the running vhost
# core, so the version is checked, never guessed.
#
#   scripts/vhost-header.sh KVER OUTDIR [PATH...]
#
# Writes OUTDIR/drivers/vhost/vhost.h (plus each extra PATH of the same
# source, e.g. scripts/checkpatch.pl for the test bed) and leaves it alone if
# it already came from the same source.  Where the header comes from:
#
#   VHOST_SRC=DIR  a kernel source tree of that exact kernel (Makefile
#                  VERSION.PATCHLEVEL.SUBLEVEL equal to the kernel's headers,
#                  and include/config/kernel.release equal to KVER if the
#                  tree is configured);
#   otherwise      Debian's linux-source-X.Y package, only if its version
#                  equals the version of the linux-image-KVER/linux-headers-KVER
#                  package that owns /lib/modules/KVER.
#
# Kernels older than 6.12 are refused.  Exit status 0 on success, 1 with one
# message on stderr saying what to install otherwise.
set -euo pipefail

die() { echo "vhost-header.sh: $*" >&2; exit 1; }

(($# >= 2)) || { echo "usage: vhost-header.sh KVER OUTDIR [PATH...]" >&2; exit 2; }
kver=$1 out=$2
shift 2
extra=("$@")

# The upstream version (6.12.117) and series (6.12) of KVER.
[[ $kver =~ ^([0-9]+)\.([0-9]+)(\.([0-9]+))? ]] ||
	die "cannot read a kernel version from '$kver'"
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
series=$major.$minor
if ((major < 6 || (major == 6 && minor < 12))); then
	die "kernel $kver is older than 6.12: vhost-blk needs the vhost core of Linux 6.12 or later"
fi

kdir=/lib/modules/$kver/build
[ -f "$kdir/Makefile" ] ||
	die "no headers for kernel $kver ($kdir): install linux-headers-$kver"

# VERSION.PATCHLEVEL.SUBLEVEL from a kernel Makefile, following Debian's
# "include .../linux-headers-X-common/Makefile" indirection.
makefile_version() {
	local mk=$1 inc
	inc=$(sed -n 's/^include \(\/.*\/Makefile\)$/\1/p' "$mk" | head -1)
	[ -n "$inc" ] && [ -f "$inc" ] && mk=$inc
	awk -F' *= *' '$1 == "VERSION" { v = $2 } $1 == "PATCHLEVEL" { p = $2 }
		       $1 == "SUBLEVEL" { s = $2 }
		       END { if (v != "") printf "%s.%s.%s\n", v, p, s }' "$mk"
}

mkdir -p "$out/drivers/vhost"
stamp=$out/.vhost-header-source
if [ -n "${VHOST_SRC:-}" ]; then
	src=$(realpath -m "$VHOST_SRC")
	[ -f "$src/drivers/vhost/vhost.h" ] && [ -f "$src/Makefile" ] ||
		die "VHOST_SRC=$VHOST_SRC is not a kernel source tree (no drivers/vhost/vhost.h or Makefile)"
	want=$(makefile_version "$kdir/Makefile")
	have=$(makefile_version "$src/Makefile")
	[ -n "$want" ] || die "cannot read the kernel version from $kdir/Makefile"
	[ "$have" = "$want" ] ||
		die "VHOST_SRC=$VHOST_SRC is Linux ${have:-unknown}, kernel $kver is Linux $want: point VHOST_SRC at the source of that exact kernel"
	if [ -f "$src/include/config/kernel.release" ]; then
		rel=$(cat "$src/include/config/kernel.release")
		[ "$rel" = "$kver" ] ||
			die "VHOST_SRC=$VHOST_SRC is configured for kernel $rel, not $kver"
	fi
	id="dir $src $have ${extra[*]}"
	if [ "$(cat "$stamp" 2>/dev/null)" != "$id" ]; then
		cp "$src/drivers/vhost/vhost.h" "$out/drivers/vhost/vhost.h"
		for p in "${extra[@]}"; do
			install -D -m 0644 "$src/$p" "$out/$p"
		done
		echo "$id" > "$stamp"
	fi
	exit 0
fi

# Debian: the package owning /lib/modules/KVER (linux-image-KVER and/or
# linux-headers-KVER, which must agree) against linux-source-X.Y.
command -v dpkg-query >/dev/null ||
	die "no VHOST_SRC and no dpkg: set VHOST_SRC to the source tree of kernel $kver"
owners=$(dpkg-query -S "/lib/modules/$kver" 2>/dev/null | sed 's/: .*//; s/, /\n/g' || true)
[ -n "$owners" ] ||
	die "/lib/modules/$kver belongs to no Debian package: set VHOST_SRC to the source tree of kernel $kver"
kpkgver=
while read -r p; do
	v=$(dpkg-query -W -f='${Version}' "$p")
	[ -z "$kpkgver" ] || [ "$v" = "$kpkgver" ] ||
		die "the packages of kernel $kver disagree ($owners): $p is $v, not $kpkgver"
	kpkgver=$v
done <<<"$owners"

spkg=linux-source-$series
tarball=/usr/src/$spkg.tar.xz
sver=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$spkg" 2>/dev/null | sed -n 's/^ii *//p' || true)
[ -n "$sver" ] && [ -f "$tarball" ] ||
	die "$spkg is not installed: apt-get install $spkg=$kpkgver (or set VHOST_SRC to the source tree of kernel $kver)"
[ "$sver" = "$kpkgver" ] ||
	die "$spkg is $sver but kernel $kver is $kpkgver: apt-get install $spkg=$kpkgver (or set VHOST_SRC to the source tree of kernel $kver)"

id="deb $spkg $sver ${extra[*]}"
[ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && [ -f "$out/drivers/vhost/vhost.h" ] && exit 0
rm -f "$stamp"
tar -xJf "$tarball" -C "$out" --strip-components=1 \
	"$spkg/drivers/vhost/vhost.h" "${extra[@]/#/$spkg/}" ||
	die "cannot extract drivers/vhost/vhost.h from $tarball"
echo "$id" > "$stamp"
