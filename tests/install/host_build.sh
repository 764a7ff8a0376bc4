#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Host side of the install checks (nothing is loaded): the files dkms.conf
# says the vhost-blk-dkms package ships, copied alone into a fresh tree as
# /usr/src/vhost-blk-<version>/ would hold them, build and install the module
# for the pinned kernel through make install-module (the path make install
# and dkms take), and scripts/vhost-header.sh refuses a kernel source of
# another version and a kernel before 6.12 with its message.  Output is KTAP.
#
#   host_build.sh [--build DIR] [--kver KVER]
#
# The vhost.h comes from VHOST_SRC=BUILD/ksrc (the pinned kernel's source
# files scripts/setup.sh extracted), so no 30 s linux-source extraction here.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/\1="\2"/p' "$top/scripts/kernel-version.mk")"
build=$top/build
while (($#)); do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--kver) KVER=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--kver KVER]" >&2; exit 2 ;;
	esac
done

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1${2:+ # $2}"; }
t() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1" "${3:-}"; fi; }

echo "TAP version 13"
echo "1..7"
ksrc=$build/ksrc
for x in "$ksrc/Makefile" "$ksrc/drivers/vhost/vhost.h" "/lib/modules/$KVER/build"; do
	[ -e "$x" ] || { echo "# SKIP missing prerequisite $x (make setup)"; exit 4; }
done
tmp=$(mktemp -d /tmp/vhost-blk-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# 1. The package's file list, from dkms.conf's header, is enough to build.
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")
src=$tmp/usr/src/vhost-blk-$version
files=$(sed -n '/^# \/usr\/src\/vhost-blk-/,/^# and depends/{/^#   /s/^#   //p}' "$top/dkms.conf")
mkdir -p "$src"
(cd "$top" && for f in $files; do
	case $f in *.mod.c) continue ;; esac
	install -D -m 0644 "$f" "$src/$f" || exit 1
done)
t "dkms_conf_file_list_copies" $? "$files"

# 2-3. make install-module for the pinned kernel, into DESTDIR.
root=$tmp/root
log=$tmp/build.log
make -C "$src" install-module KVER="$KVER" VHOST_SRC="$ksrc" DESTDIR="$root" >"$log" 2>&1
rc=$?
((rc == 0)) || sed 's/^/# /' "$log" | tail -20
# (.ko.xz where the kernel compresses its modules, as Debian's does.)
ko=$(ls "$root/lib/modules/$KVER/updates/"vhost_blk.ko* 2>/dev/null | head -1)
[ $rc = 0 ] && [ -n "$ko" ]
t "install_module_builds_into_updates" $? "make exited $rc"
info=$(modinfo -F vermagic "$ko" 2>&1 | cut -d' ' -f1; modinfo -F version "$ko" 2>&1
       modinfo -F alias "$ko" 2>&1 | sort)
[ "$info" = "$(printf '%s\n' "$KVER" "$version" char-major-10-247 devname:vhost-blk)" ]
t "installed_module_has_kernel_version_and_aliases" $? "$(echo $info)"

# 4-6. vhost-header.sh refuses what would build a mismatched module.
fake=$tmp/linux-other
mkdir -p "$fake/drivers/vhost"
cp "$ksrc/drivers/vhost/vhost.h" "$fake/drivers/vhost/"
sed 's/^SUBLEVEL = .*/SUBLEVEL = 999/' "$ksrc/Makefile" > "$fake/Makefile"
msg=$(VHOST_SRC=$fake bash "$top/scripts/vhost-header.sh" "$KVER" "$tmp/h1" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $msg == *"is Linux "*".999, kernel $KVER is Linux "* ]] && [ ! -e "$tmp/h1/drivers/vhost/vhost.h" ]
t "vhost_src_of_other_version_is_refused" $? "rc $rc: $msg"

# linux-source of another Debian version than the kernel's package: a
# dpkg-query in front of the real one reports it so.
mkdir -p "$tmp/bin"
cat > "$tmp/bin/dpkg-query" <<'STUB'
#!/bin/sh
case "$*" in
*'Status-Abbrev'*linux-source-*) echo "ii 0.0.1-1" ;;
*) exec /usr/bin/dpkg-query "$@" ;;
esac
STUB
chmod +x "$tmp/bin/dpkg-query"
msg=$(PATH=$tmp/bin:$PATH bash "$top/scripts/vhost-header.sh" "$KVER" "$tmp/h2" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $msg == *"is 0.0.1-1 but kernel $KVER is "*"apt-get install linux-source-"* ]]
t "linux_source_of_other_version_is_refused" $? "rc $rc: $msg"

msg=$(bash "$top/scripts/vhost-header.sh" 6.11.0-1-amd64 "$tmp/h3" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $msg == *"older than 6.12"* ]]
t "kernel_before_6_12_is_refused" $? "rc $rc: $msg"
# 7. dkms skips (not fails) kernels before 6.12: dkms.conf read as dkms
# reads it (sourced) and its regex applied as dkms applies it (bash =~).
re=$(set +u; . "$top/dkms.conf"; printf '%s' "$BUILD_EXCLUSIVE_KERNEL")
bad=
for k in "$KVER" 6.12.0 6.18.44-amd64 7.0.1; do [[ $k =~ $re ]] || bad+=" $k"; done
for k in 6.11.9-amd64 6.1.0-13-amd64 5.19.0; do [[ $k =~ $re ]] && bad+=" $k"; done
[ -n "$re" ] && [ -z "$bad" ]
t "dkms_build_exclusive_kernel_is_6_12_and_later" $? "regex '$re' wrong for:$bad"
((failed == 0))
