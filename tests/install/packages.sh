#!/bin/sh
# The Debian packages (make deb) installed as an admin installs them:
# dpkg -i of vhost-blk-dkms and vhost-blkctl, DKMS building the module for
# the running kernel from its headers, modprobe loading that build, and
# vhost-blkctl serve from the package under a service manager's
# NOTIFY_SOCKET; then dpkg -r and DKMS's tree is clean again.
#
# Runs INSIDE the test VM (tests/vm/run.sh --module overlay ... script
# tests/install/packages.sh), with vhost_blk loaded by init.  The VM's root
# is the host's, read-only over 9p: dpkg gets an overlayfs root whose lower
# layer is that 9p root and whose upper layer is a tmpfs, and runs chrooted
# in it; nothing reaches the host.  vhost.h comes from VHOST_SRC=$BUILD/ksrc
# (the kernel's exact source as setup.sh extracted it): unpacking it from
# linux-source-6.12's tarball under TCG would take minutes.  Output is KTAP.
#
# Exit status: 0 all passed, 1 a check failed, 4 a prerequisite is missing.
set -u
kver=$(uname -r)
debs=${BUILD:-/nonexistent}/deb
ko=${REPO:-/nonexistent}/kernel/vhost_blk.ko
backend=${VBLK_NULLB:-/dev/nullb0}

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1${2:+ # $2}"; }
t() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1" "${3:-}"; fi; }
elapsed() { echo "# $1: $(($(date +%s) - $2)) s"; }

echo "TAP version 13"
echo "1..17"
dkms_deb=$(ls "$debs"/vhost-blk-dkms_*_all.deb 2>/dev/null | head -1)
ctl_deb=$(ls "$debs"/vhost-blkctl_*.deb 2>/dev/null | head -1)
for x in "$dkms_deb" "$ctl_deb" "$ko" "$backend" /sys/module/vhost_blk /sys/module/overlay; do
	[ -e "$x" ] || { echo "# SKIP missing prerequisite ${x:-a .deb in $debs (make deb)}"; exit 4; }
done
ver=$(TMPDIR=/run /usr/bin/dpkg-deb -f "$dkms_deb" Version)

# 1. A writable root: overlayfs, 9p below, tmpfs above.
top=$(mktemp -d /run/pkgroot.XXXXXX)
mkdir "$top/upper" "$top/work" "$top/root"
mount -t tmpfs -o size=1G pkgroot "$top/upper" && mkdir "$top/upper/u" "$top/upper/w" &&
	mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper/u,workdir=$top/upper/w" "$top/root"
t "overlay_root_over_9p_mounts" $?
root=$top/root
if [ ! -d "$root/usr/bin" ]; then
	echo "# no writable root, the remaining tests cannot run"
	exit 1
fi
mount -t proc proc "$root/proc" || echo "# mount proc failed"
mount -t sysfs sys "$root/sys" || echo "# mount sys failed"
mount --bind /dev "$root/dev" || echo "# mount dev failed"
mount -t tmpfs run "$root/run"
mount -t tmpfs tmp "$root/tmp"
# The repository and the build dir (the .debs, ksrc, the NOTIFY_SOCKET
# listener) may lie below /tmp or /run, which the new root just got empty
# tmpfs for (a fresh clone in /tmp did): bind them back at the same paths.
binds=
for d in "$REPO" "$BUILD"; do
	[ -d "$root$d" ] && continue
	mkdir -p "$root$d" && mount --bind "$d" "$root$d" && binds="$root$d $binds"
done
# What udev would provide: bash's process substitution needs /dev/fd.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
# The suite's shell is init's busybox, which prefers its own applets (a
# busybox "dpkg" and "chroot"): the root's own chroot and env, by path.
in_root() { /usr/sbin/chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
cleanup() {
	for m in $binds; do umount "$m"; done
	for m in tmp run dev sys proc "lib/modules/$kver/kernel"; do umount "$root/$m"; done
	umount "$root" && umount "$top/upper" && rm -rf "$top"
	# Whatever happened, leave a vhost_blk loaded for init's rmmod check.
	[ -e /sys/module/vhost_blk ] || insmod "$ko"
}
# Nothing needs the manual page index here; rebuilding it costs minutes.
rm -f "$root/var/lib/man-db/auto-update"
# DKMS's depmod (at install and at removal) reads every module of the tree:
# a whole linux-image's 4230 files over 9p under TCG took minutes each time.
# The tree it sees holds the running kernel's vhost core (vhost_blk's
# dependencies, from the image tests/vm/run.sh boots) and what DKMS adds.
kmods=$root/lib/modules/$kver/kernel
vcore=$BUILD/kernel/$kver/modules/kernel/drivers/vhost
mkdir -p "$kmods" && mount -t tmpfs kmods "$kmods" -o size=16M &&
	mkdir -p "$kmods/drivers/vhost" &&
	cp "$vcore"/vhost.ko* "$vcore"/vhost_iotlb.ko* "$kmods/drivers/vhost/"
t "module_tree_holds_the_vhost_core" $?

# 2-3. dpkg -i: DKMS builds and installs the module for this kernel.
start=$(date +%s)
in_root VHOST_SRC="$BUILD/ksrc" dpkg -i "$dkms_deb" "$ctl_deb" > "$top/dpkg-i.log" 2>&1
rc=$?
elapsed "dpkg -i (DKMS build)" "$start"
if [ $rc != 0 ]; then
	sed 's/^/# /' "$top/dpkg-i.log" | tail -30
fi
t "dpkg_installs_both_packages" $rc
status=$(in_root dkms status -m vhost-blk -v "$ver" -k "$kver" 2>&1)
echo "$status" | grep -q ": installed"
t "dkms_built_and_installed_module_for_$kver" $? "$status"

# 4. What vhost-blkctl ships, where Debian expects it.
missing=
for f in /usr/sbin/vhost-blkctl /lib/systemd/system/vhost-blkctl@.service \
	/etc/vhost-blk/example.conf /usr/lib/udev/rules.d/60-vhost-blk.rules \
	/usr/share/man/man8/vhost-blkctl.8.gz \
	/usr/share/bash-completion/completions/vhost-blkctl \
	/usr/share/doc/vhost-blkctl/examples/modules-load.d/vhost-blk.conf \
	/usr/share/doc/vhost-blkctl/examples/modprobe.d/vhost-blk.conf \
	"/usr/src/vhost-blk-$ver/dkms.conf"; do
	[ -e "$root$f" ] || missing="$missing $f"
done
[ -z "$missing" ]
t "packages_ship_cli_unit_udev_man_completion_examples" $? "missing:$missing"

# 5-6. modprobe loads DKMS's build, not the one init loaded.
rmmod vhost_blk
in_root modprobe vhost_blk
t "modprobe_loads_vhost_blk" $?
file=$(in_root modinfo -n vhost_blk 2>&1)
case $file in
"/lib/modules/$kver/updates/dkms/"*)
	[ "$(cat /sys/module/vhost_blk/srcversion 2>/dev/null)" = \
	  "$(in_root modinfo -F srcversion vhost_blk)" ] ;;
*) false ;;
esac
t "loaded_module_is_dkms_build" $? "$file"

# 7. The device opens.
( : <>/dev/vhost-blk )
t "dev_vhost_blk_opens" $?
in_root vhost-blkctl info > "$top/info" 2>&1
t "packaged_vhost_blkctl_info_succeeds" $? "$(tr '\n' ' ' < "$top/info")"

# 9-14. serve under a NOTIFY_SOCKET: READY=1 only once both sockets accept,
# the socket's owner, group and mode as asked, STOPPING=1 and status 0.
sock=/run/vu/disk0.sock
mkdir -p "$root/run/vu"
in_root python3 "$REPO/tests/install/notify_listener.py" --timeout 60 \
	--expect "$sock" --expect /run/vhost-blk/disk0.sock -- \
	vhost-blkctl serve --backend "$backend" --socket "$sock" --name disk0 \
	--socket-owner nobody --socket-group nogroup --socket-mode 0640 \
	> "$top/serve" 2>"$top/serve-log" &
wait $!
sed 's/^/# /' "$top/serve" "$top/serve-log"
grep -qx "ready=1" "$top/serve"
t "serve_sends_ready" $?
grep -qx "connect $sock=ok" "$top/serve"
t "vhost_user_socket_accepts_at_ready" $?
grep -qx "connect /run/vhost-blk/disk0.sock=ok" "$top/serve"
t "control_socket_accepts_at_ready" $?
grep -qx "stopping=1" "$top/serve" && grep -qx "exit=0" "$top/serve"
t "serve_sends_stopping_and_exits_0" $?
grep -q "^status=serving $backend on $sock" "$top/serve"
t "ready_carries_status" $?
grep -qx "stat $sock=65534:65534 640" "$top/serve"
t "socket_owner_group_mode_as_configured" $? "$(grep "^stat $sock=" "$top/serve")"

# 15-16. dpkg -r: DKMS removes the module from its tree and the kernel's.
start=$(date +%s)
in_root dpkg -r vhost-blkctl vhost-blk-dkms > "$top/dpkg-r.log" 2>&1
rc=$?
elapsed "dpkg -r" "$start"
[ $rc = 0 ] || sed 's/^/# /' "$top/dpkg-r.log" | tail -20
t "dpkg_removes_both_packages" $rc
left=$(cd "$root" && ls -d "var/lib/dkms/vhost-blk" "usr/src/vhost-blk-$ver" \
	"lib/modules/$kver/updates/dkms/vhost_blk.ko"* 2>/dev/null)
[ -z "$left" ]
t "dkms_tree_and_module_removed" $? "left: $left"

cleanup
[ $failed = 0 ]
