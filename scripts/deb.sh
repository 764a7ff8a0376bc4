#!/usr/bin/env bash
# make deb: the Debian packages vhost-blk-dkms and vhost-blkctl, built with
# dpkg-buildpackage from a copy of the tree (tracked and new files, not
# build/ or what .gitignore lists) in $BUILD/deb, where the .deb files land.
#
# The version is dkms.conf's PACKAGE_VERSION (the one place; kernel/Kbuild
# reads it too): debian/changelog is written here from it, and CMake's
# project(VERSION) must agree.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
out=$build/deb

die() { echo "deb.sh: $*" >&2; exit 1; }

ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")
[ -n "$ver" ] || die "no PACKAGE_VERSION in dkms.conf"
cmake_ver=$(sed -n 's/^project(vhost-blk VERSION \([^ )]*\).*/\1/p' "$top/CMakeLists.txt")
[ -z "$cmake_ver" ] || [ "$cmake_ver" = "$ver" ] ||
	die "CMakeLists.txt says version $cmake_ver, dkms.conf $ver: make them agree"

src=$out/vhost-blk-$ver
rm -rf "$out"
mkdir -p "$src"
(cd "$top" && git ls-files -co --exclude-standard) |
	rsync -a --ignore-missing-args --files-from=- "$top/" "$src/"

rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
when=$(git -C "$top" log -1 --format=%aD 2>/dev/null || date -R)
cat > "$src/debian/changelog" <<EOC
vhost-blk ($ver) unstable; urgency=medium

  * Built by make deb from $rev.

 -- vhost-blk maintainers <maintainers@users.noreply.h-seed-03add644.example>  $when
EOC

start=$SECONDS
(cd "$src" && dpkg-buildpackage -us -uc -b -j"${JOBS:-2}") > "$out/build.log" 2>&1 ||
	{ tail -40 "$out/build.log" >&2; die "dpkg-buildpackage failed (log: $out/build.log)"; }
rm -rf "$src"
ls "$out"/*.deb
echo "deb.sh: built in $((SECONDS - start))s, log $out/build.log"
