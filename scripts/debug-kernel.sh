#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds the debug kernel for the test VM: the target's own linux-source
# (scripts/kernel-version.mk), configured as allnoconfig + kernel-config/vm.config
# + kernel-config/debug.config (KASAN, lockdep, kmemleak, debugobjects, hung
# tasks), and vhost_blk.ko built against it.  The result has the layout of the
# stock image that scripts/setup.sh unpacks, so the VM runner takes either:
#
#   build/kernel/$KVER-debug/vmlinuz       bzImage
#   build/kernel/$KVER-debug/modules/      lib/modules/<release> (modules.dep, .ko.xz)
#   build/kernel/$KVER-debug/vhost_blk.ko  the module under test, for this kernel
#   build/kernel/$KVER-debug/release       uname -r of this kernel
#   build/kernel/$KVER-debug/config        its .config
#
# The kernel is rebuilt only when the source version, a config fragment, this
# script or the compiler changes (all hashed into a stamp); vhost_blk.ko is
# re-made every run (kbuild makes it a no-op when kernel/ is unchanged).
# See Documentation/debug-kernel.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/\1="\2"/p' "$top/scripts/kernel-version.mk")"
build=${BUILD:-$top/build}
jobs=${JOBS:-$(nproc)}
force=0

usage() {
	echo "usage: $0 [-j JOBS] [--force]   (env: BUILD=$build)"
	exit "${1:-0}"
}
die() { echo "debug-kernel: $*" >&2; exit 1; }
log() { echo "debug-kernel: $*"; }

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

dk=$build/debug-kernel
src=$dk/src
obj=$dk/obj
out=$build/kernel/$KVER-debug
frags=("$top/kernel-config/vm.config" "$top/kernel-config/debug.config")
tarball=/usr/src/$KSRC_PKG.tar.xz

# Host tools a full kernel build needs beyond what scripts/setup.sh installs.
need=(flex bison bc libelf-dev rsync xz-utils kmod)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	((EUID == 0)) || die "missing packages: ${missing[*]} (apt-get install them)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >/dev/null; } ||
		die "apt-get install ${missing[*]} failed"
fi
[ -f "$tarball" ] || die "$tarball missing: run scripts/setup.sh first"

# The stamp: everything that decides what the kernel binary is.
stamp=$({
	echo "$KSRC_PKG $KPKGVER"
	cat "${frags[@]}" "$0"
	gcc --version | head -1
} | sha256sum | cut -d' ' -f1)

elapsed() { echo $(($(date +%s) - $1)); }

# Each option a fragment sets must have that value in the final .config;
# Kconfig silently drops what a missing dependency forbids.
verify_config() {
	local cfg=$1 bad=() line opt
	while IFS= read -r line; do
		case $line in
		CONFIG_*)
			grep -qxF "$line" "$cfg" ||
				bad+=("want $line, have: $(grep -E "^(# )?${line%%=*}[= ]" "$cfg" || echo unset)")
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			! grep -q "^$opt=" "$cfg" || bad+=("want $opt off, have: $(grep "^$opt=" "$cfg")")
			;;
		esac
	done < <(cat "${frags[@]}")
	if ((${#bad[@]})); then
		printf 'debug-kernel: config mismatch: %s\n' "${bad[@]}" >&2
		return 1
	fi
}

build_kernel() {
	local t0 t
	# The source: extracted once per source package version.
	if [ ! -f "$src/.extracted-$KPKGVER" ]; then
		t0=$(date +%s)
		log "extracting $tarball"
		rm -rf "$src" "$obj" && mkdir -p "$src"
		tar -xJf "$tarball" -C "$src" --strip-components=1 ||
			die "cannot extract $tarball"
		touch "$src/.extracted-$KPKGVER"
		log "extracted in $(elapsed "$t0") s"
	fi

	t0=$(date +%s)
	mkdir -p "$obj"
	(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -n -O "$obj" "${frags[@]}") \
		>"$dk/config.log" 2>&1 || { cat "$dk/config.log" >&2; die "merge_config failed"; }
	verify_config "$obj/.config" || die "fix kernel-config/*.config (log: $dk/config.log)"
	log "configured: $(grep -c '=[ym]$' "$obj/.config") options set"

	log "building bzImage + modules with -j$jobs (log: $dk/build.log)"
	nice -n 19 make -C "$src" O="$obj" ARCH=x86_64 -j"$jobs" bzImage modules \
		>"$dk/build.log" 2>&1 || { tail -40 "$dk/build.log" >&2; die "kernel build failed"; }
	t=$(elapsed "$t0")
	log "kernel built in $t s"

	local release tmp=$out.tmp
	# --no-print-directory: under `make -C DIR debug-kernel` MAKEFLAGS has w,
	# and the directory lines would end up in the release string.
	release=$(make -s --no-print-directory -C "$src" O="$obj" ARCH=x86_64 kernelrelease)
	rm -rf "$tmp" "$dk/install" && mkdir -p "$tmp"
	nice -n 19 make -C "$src" O="$obj" ARCH=x86_64 INSTALL_MOD_PATH="$dk/install" \
		modules_install >>"$dk/build.log" 2>&1 || die "modules_install failed"
	rm -f "$dk/install/lib/modules/$release/build" "$dk/install/lib/modules/$release/source"
	mv "$dk/install/lib/modules/$release" "$tmp/modules"
	rm -rf "$dk/install"
	cp "$obj/arch/x86/boot/bzImage" "$tmp/vmlinuz"
	cp "$obj/.config" "$tmp/config"
	echo "$release" >"$tmp/release"
	echo "$t" >"$tmp/build-seconds"
	echo "$stamp" >"$tmp/stamp"
	rm -rf "$out" && mv "$tmp" "$out"
}

if ((force)) || [ ! -f "$out/stamp" ] || [ "$(cat "$out/stamp")" != "$stamp" ] ||
	[ ! -f "$src/.extracted-$KPKGVER" ] || [ ! -f "$obj/Module.symvers" ]; then
	build_kernel
else
	log "kernel $(cat "$out/release") up to date in $out"
fi

# vhost_blk.ko against this kernel, from a copy of the sources so the stock
# build in kernel/ is left alone.
t0=$(date +%s)
mod=$dk/module
mkdir -p "$mod/kernel" "$mod/include"
rsync -a --delete --exclude='*.mod.c' --include=Kbuild --include='*.[ch]' --exclude='*' \
	"$top/kernel/" "$mod/kernel/"
rsync -a --delete "$top/include/" "$mod/include/"
# kernel/Kbuild takes MODULE_VERSION from dkms.conf, its one place.
cp "$top/dkms.conf" "$mod/dkms.conf"
nice -n 19 make -C "$obj" M="$mod/kernel" VHOST_INC="$src/drivers/vhost" -j"$jobs" modules \
	>"$dk/module.log" 2>&1 || { cat "$dk/module.log" >&2; die "vhost_blk.ko build failed"; }
cmp -s "$mod/kernel/vhost_blk.ko" "$out/vhost_blk.ko" 2>/dev/null ||
	cp "$mod/kernel/vhost_blk.ko" "$out/vhost_blk.ko"
log "vhost_blk.ko ready ($(elapsed "$t0") s): $out/vhost_blk.ko"
log "kernel dir: $out (release $(cat "$out/release"))"
