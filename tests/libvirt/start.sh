#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# libvirt starts the documented domain on a disk served by vhost-blkctl.
#
# Runs INSIDE the test VM (tests/vm/run.sh ... script tests/libvirt/start.sh),
# with vhost_blk loaded and $VBLK_NULLB set up.  Serves null_blk on a socket
# owned by group nogroup, mode 0660; virt-qemu-run (libvirt's embedded QEMU
# driver, as nobody:nogroup, so the socket's group is what lets QEMU in) runs
# Documentation/examples/libvirt-vhost-blk.xml with the socket path and a
# 256 MiB TCG guest without the pty console (the VM has no /dev/pts); the guest has no OS, so its firmware reads the boot
# sector from the served disk.  KTAP; exit 0 passed, 1 failed, 4 a
# prerequisite is missing.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
blkctl=${BUILD:-/nonexistent}/cmake/tools/vhost-blkctl/vhost-blkctl
[ "${1:-}" = --blkctl ] && blkctl=$2
W=/run/libvirt-start
NAME=vm1-disk
backend=${VBLK_NULLB:-/dev/nullb0}

n=0 failed=0
t() {	# t NAME STATUS [WHY]
	n=$((n + 1))
	if [ "$2" = 0 ]; then echo "ok $n $1"; else failed=$((failed + 1)); echo "not ok $n $1${3:+ # $3}"; fi
}
echo "TAP version 13"
for x in "$blkctl" "$backend" /usr/bin/virt-qemu-run /usr/bin/setpriv; do
	[ -e "$x" ] || { echo "1..0 # SKIP missing prerequisite $x"; exit 4; }
done
echo "1..3"
rm -rf $W
mkdir -p $W/root/etc $W/vu
chmod 755 $W $W/vu
# QEMU's output to a file: no virtlogd (libvirt-daemon) needed.
echo 'stdio_handler = "file"' > $W/root/etc/qemu.conf
chown -R nobody:nogroup $W/root
export VHOST_BLKCTL_RUN_DIR=$W/run

"$blkctl" serve --backend "$backend" --socket $W/vu/$NAME.sock --name $NAME --queues 4 \
	--socket-group nogroup --socket-mode 0660 > $W/serve.log 2>&1 &
serve_pid=$!
i=0
while [ ! -S $W/vu/$NAME.sock ] && [ $i -lt 100 ] && kill -0 $serve_pid 2>/dev/null; do
	sleep 0.1; i=$((i + 1))
done
[ "$(stat -c %G:%a $W/vu/$NAME.sock 2>/dev/null)" = nogroup:660 ]
t "serve's socket is group nogroup, mode 0660" $? "$(stat -c %U:%G:%a $W/vu/$NAME.sock 2>&1) $(tail -2 $W/serve.log)"

sed -e "s/<domain type='kvm'>/<domain type='qemu'>/" \
    -e "s|<memory unit='GiB'>4</memory>|<memory unit='MiB'>256</memory>|" \
    -e "s|path='[^']*\.sock'|path='$W/vu/$NAME.sock'|" \
    -e "/<serial type='pty'\/>/d" -e "/<console type='pty'\/>/d" \
	"$top/Documentation/examples/libvirt-vhost-blk.xml" > $W/domain.xml
/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=$W/root \
	virt-qemu-run --root $W/root $W/domain.xml > $W/virt-qemu-run.log 2>&1 &
run_pid=$!

# Connected and the firmware's reads served: up to 120 s under nested TCG.
i=0 state=
while [ $i -lt 120 ] && kill -0 $run_pid 2>/dev/null; do
	state=$("$blkctl" list 2>/dev/null | awk -v n=$NAME '$1 == n { print $2, $6 }')
	case $state in "connected "[1-9]*) break ;; esac
	sleep 1; i=$((i + 1))
done
case $state in "connected "*) rc=0 ;; *) rc=1 ;; esac
t "QEMU started by libvirt connects to serve as nobody:nogroup" $rc \
	"list: $state; $(tail -3 $W/virt-qemu-run.log | tr '\n' ' ')"
case $state in "connected "[1-9]*) rc=0 ;; *) rc=1 ;; esac
t "the guest's firmware reads through the disk (requests: ${state#* })" $rc

kill -TERM $run_pid 2>/dev/null
wait $run_pid 2>/dev/null
kill -TERM $serve_pid
wait $serve_pid
sed 's/^/# serve: /' $W/serve.log | tail -8
sed 's/^/# virt-qemu-run: /' $W/virt-qemu-run.log | tail -5
echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ $failed = 0 ]
