#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs what the project needs (idempotently) and fetches the target
# kernel: headers (installed), image + modules (extracted into build/kernel,
# never into /boot) and the matching source (a few files extracted into
# build/ksrc at build time).  The version comes from scripts/kernel-version.mk.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/\1="\2"/p' "$top/scripts/kernel-version.mk")"
build=${BUILD:-$top/build}

die() { echo "setup: $*" >&2; exit 1; }

pkgs=(build-essential cmake pkg-config qemu-system-x86 qemu-utils busybox-static
      libcli11-dev nlohmann-json3-dev libgtest-dev googletest xz-utils cpio kmod
      # make sanitize: clang with libFuzzer, ASan and UBSan
      clang-14 libclang-rt-14-dev
      perl e2fsprogs xfsprogs util-linux fio dmsetup liburing-dev python3-matplotlib
      # QEMU with the vhost-blk device (scripts/qemu-build.sh)
      meson ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev
      libaio-dev libcap-ng-dev libattr1-dev flex bison dpkg-dev rsync
      # make deb (scripts/deb.sh) and the packages' test in the VM
      debhelper dh-dkms dkms
      # virsh, virt-xml-validate and the QEMU driver: libvirt checks the
      # documented domain XML (tests/libvirt/domxml.sh); 5 packages, 1.5 MB
      libvirt-clients libvirt-daemon-driver-qemu
      "linux-headers-$KVER" "$KSRC_PKG")

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if dpkg-query -W -f='${Version}' "$KSRC_PKG" 2>/dev/null | grep -qvx "$KPKGVER"; then
	missing+=("$KSRC_PKG")
fi

if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	# All three kernel packages must exist in exactly this version.
	for p in "linux-image-$KVER" "linux-headers-$KVER" "$KSRC_PKG"; do
		apt-cache madison "$p" | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
			grep -qx "$KPKGVER" ||
			die "$p $KPKGVER is not in the apt sources: image, headers and source must match (edit scripts/kernel-version.mk)"
	done
	sel=()
	for p in "${missing[@]}"; do
		[ "$p" = "$KSRC_PKG" ] && p="$KSRC_PKG=$KPKGVER"
		sel+=("$p")
	done
	apt-get install -y -qq --no-install-recommends "${sel[@]}" >/dev/null ||
		die "apt-get install ${sel[*]} failed"
fi

[ -d "/lib/modules/$KVER/build" ] || die "/lib/modules/$KVER/build missing after installing linux-headers-$KVER"
have=$(dpkg-query -W -f='${Version}' "linux-headers-$KVER")
[ "$have" = "$KPKGVER" ] || die "linux-headers-$KVER is $have, want $KPKGVER"
have=$(dpkg-query -W -f='${Version}' "$KSRC_PKG")
[ "$have" = "$KPKGVER" ] || die "$KSRC_PKG is $have, want $KPKGVER"

# The kernel image and its modules, for the test VM.
img="$build/kernel/$KVER"
if [ ! -f "$img/vmlinuz" ] || [ ! -d "$img/modules" ]; then
	rm -rf "$img" && mkdir -p "$img/deb"
	(cd "$img/deb" && apt-get download -qq "linux-image-$KVER=$KPKGVER") ||
		die "cannot download linux-image-$KVER=$KPKGVER"
	dpkg-deb -x "$img"/deb/*.deb "$img/root"
	cp "$img/root/boot/vmlinuz-$KVER" "$img/vmlinuz"
	mv "$img/root/lib/modules/$KVER" "$img/modules"
	rm -rf "$img/root" "$img/deb"
fi

# Files from the kernel source that the out-of-tree build and checks need:
# vhost.h by the same script and checks as make install and dkms use; with
# the top Makefile build/ksrc is also a VHOST_SRC tree (tests/install/).
bash "$top/scripts/vhost-header.sh" "$KVER" "$build/ksrc" Makefile \
	scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch \
	include/uapi/linux/vhost.h include/uapi/linux/vhost_types.h ||
	die "cannot provide the kernel source files for $KVER"
echo "setup: kernel $KVER ($KPKGVER) ready in $build"
