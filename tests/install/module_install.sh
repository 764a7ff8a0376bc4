#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The installed module as an admin's host sees it: a fixed misc minor, the
# aliases depmod turns into modules.alias/modules.devname, and the module
# loading on the first open of /dev/vhost-blk with nothing loaded, as
# /dev/vhost-net does.
#
# Runs INSIDE the test VM (tests/vm/run.sh ... script
# tests/install/module_install.sh), with vhost_blk loaded by init.  The VM's
# /lib/modules is the host's, read-only over 9p, so the test installs the
# module into a tmpfs modules tree (updates/, like make install, plus its
# dependencies from the image), runs the real depmod on it and mounts it over
# /lib/modules/KVER.  The kernel's request_module() runs modprobe in the
# initramfs root, which has no kmod: kernel.modprobe is pointed for the test
# at a two-line helper there that runs this chroot's /sbin/modprobe, so the
# lookup char-major-10-MINOR -> vhost_blk is kmod's own, from modules.alias.
# Everything is restored at the end, with vhost_blk loaded again (init
# unloads it).  Output is KTAP.
#
#   module_install.sh [--module PATH]
#
# Exit status: 0 all passed, 1 a check failed, 4 a prerequisite is missing.
set -u
# kmod's tools by path: the VM's suite shell is busybox, whose applets of the
# same names would otherwise run (its depmod writes no modules.devname).
depmod=/sbin/depmod modinfo=/sbin/modinfo rmmod=/sbin/rmmod insmod=/sbin/insmod
MINOR=247
ko=${REPO:-/nonexistent}/kernel/vhost_blk.ko
while [ $# -gt 0 ]; do
	case "$1" in
	--module) ko=$2; shift 2 ;;
	*) echo "usage: $0 [--module PATH]" >&2; exit 2 ;;
	esac
done
kver=$(uname -r)
image=${BUILD:-/nonexistent}/kernel/$kver/modules

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1${2:+ # $2}"; }
t() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1" "${3:-}"; fi; }

echo "TAP version 13"
echo "1..8"
for x in "$ko" "$image/kernel/drivers/vhost" /sys/module/vhost_blk /bin/kmod $depmod; do
	[ -e "$x" ] || { echo "# SKIP missing prerequisite $x"; exit 4; }
done

# 1-2. The module init loaded: /dev/vhost-blk is char 10:MINOR.
grep -qx " *$MINOR vhost-blk" /proc/misc
t "misc_minor_is_$MINOR" $? "$(grep vhost-blk /proc/misc)"
node=$(stat -c '%F %t:%T' /dev/vhost-blk 2>&1)
[ "$node" = "character special file a:$(printf %x $MINOR)" ]
t "dev_node_is_char_10_$MINOR" $? "$node"

# 3. The aliases that make it load on open, in the file init loaded.
[ "$(cat /sys/module/vhost_blk/srcversion)" = "$($modinfo -F srcversion "$ko")" ] ||
	echo "# $ko is not the loaded module"
aliases=$($modinfo -F alias "$ko" | sort | paste -sd' ')
[ "$aliases" = "char-major-10-$MINOR devname:vhost-blk" ]
t "modinfo_shows_misc_and_devname_aliases" $? "$aliases"

# 4. depmod on an installed tree: modules.devname has the static node.
tree=$(mktemp -d /run/modtree.XXXXXX)
mods=$tree/lib/modules/$kver
mkdir -p "$mods/updates" "$mods/kernel/drivers/vhost"
cp "$ko" "$mods/updates/vhost_blk.ko"
cp "$image"/kernel/drivers/vhost/vhost.ko* "$image"/kernel/drivers/vhost/vhost_iotlb.ko* \
	"$mods/kernel/drivers/vhost/"
cp "$image"/modules.order "$image"/modules.builtin "$image"/modules.builtin.modinfo "$mods/"
$depmod -b "$tree" "$kver"
devname=$(grep '^vhost_blk ' "$mods/modules.devname")
[ "$devname" = "vhost_blk vhost-blk c10:$MINOR" ]
t "depmod_writes_modules_devname_entry" $? "${devname:-no vhost_blk line}"

# The tree in place of /lib/modules/KVER, and modprobe for request_module();
# undone on any exit, with the module loaded again for init's rmmod check.
old_modprobe=$(cat /proc/sys/kernel/modprobe)
helper=/proc/1/root/bin/vblk-modprobe
cleanup() {
	echo "$old_modprobe" > /proc/sys/kernel/modprobe
	rm -f "$helper"
	umount "/lib/modules/$kver"
	rm -rf "$tree"
	[ -e /sys/module/vhost_blk ] || $insmod "$ko"
}
trap cleanup EXIT
mkdir -p "/lib/modules/$kver" 2>/dev/null
mount --bind "$mods" "/lib/modules/$kver"
printf '#!/bin/sh\nexec chroot /proc/%s/root /sbin/modprobe "$@"\n' $$ > "$helper"
chmod 0755 "$helper"
echo /bin/vblk-modprobe > /proc/sys/kernel/modprobe

# 5. Unloaded, and the node gone with it.
$rmmod vhost_blk
[ ! -e /sys/module/vhost_blk ] && [ ! -e /dev/vhost-blk ]
t "rmmod_removes_module_and_node" $?

# 6. The node as kmod static-nodes makes it from modules.devname at boot.
# (--output: its default, /dev/stdout, is not in the VM's bare devtmpfs.)
/bin/kmod static-nodes --format=tmpfiles --output="$tree/static-nodes"
line=$(grep ' /dev/vhost-blk ' "$tree/static-nodes")
set -- $line ''
[ "$1" = 'c!' ] && [ "${7:-}" = "10:$MINOR" ] && mknod -m "$3" /dev/vhost-blk c 10 $MINOR
t "static_nodes_lists_dev_vhost_blk" $? "${line:-no /dev/vhost-blk line}"

# 7-8. The first open loads the module through request_module -> modprobe.
# (A subshell: a failed redirection would end this shell.  No node, no open:
# <> would create a regular file.)
[ -c /dev/vhost-blk ] && ( : <>/dev/vhost-blk )
t "open_of_static_node_succeeds" $?
[ -e /sys/module/vhost_blk ] && grep -qx " *$MINOR vhost-blk" /proc/misc
t "open_autoloads_vhost_blk" $?
[ $failed = 0 ]
