#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the nested e2e guest (see vhost_user_blk.sh).  An unmodified
# Linux with the stock virtio_blk driver; the disk is QEMU's
# vhost-user-blk-pci served by vhost-blkctl.  Every check prints
# "E2E-CHECK ok|fail NAME [detail]"; the last line is "E2E-RESULT: PASS" or
# "E2E-RESULT: FAIL".  Expected values come on the kernel command line.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /mnt
mount -t tmpfs tmp /tmp

fails=0
check() {	# check NAME OK? DETAIL
	if [ "$2" = 0 ]; then echo "E2E-CHECK ok $1 $3"; else echo "E2E-CHECK fail $1 $3"; fails=$((fails + 1)); fi
}
arg() { sed -n "s/.*\\<$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
want_sectors=$(arg e2e.sectors)
want_serial=$(arg e2e.serial)
want_queues=$(arg e2e.queues)

for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "E2E: insmod $m failed"; done
echo "E2E: booted $(uname -r)"

i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
[ -b /dev/vda ]; check vda_present $? ""
size=$(cat /sys/block/vda/size 2>/dev/null)
[ "$size" = "$want_sectors" ]; check vda_size $? "sectors=$size want=$want_sectors"
serial=$(cat /sys/block/vda/serial 2>/dev/null)
[ "$serial" = "$want_serial" ]; check vda_serial $? "serial=$serial want=$want_serial"
nq=$(ls /sys/block/vda/mq 2>/dev/null | wc -l)
[ "$nq" = "$want_queues" ]; check vda_queues $? "mq=$nq want=$want_queues"

# A known pattern at two offsets, read back from the device (caches dropped).
dd if=/dev/urandom of=/tmp/pat bs=64k count=64 2>/dev/null
sum=$(md5sum < /tmp/pat)
dd if=/tmp/pat of=/dev/vda bs=64k seek=0 conv=fsync 2>/dev/null &&
dd if=/tmp/pat of=/dev/vda bs=64k seek=4000 conv=fsync 2>/dev/null
check pattern_write $? ""
echo 3 > /proc/sys/vm/drop_caches
a=$(dd if=/dev/vda bs=64k count=64 2>/dev/null | md5sum)
b=$(dd if=/dev/vda bs=64k skip=4000 count=64 2>/dev/null | md5sum)
[ "$a" = "$sum" ] && [ "$b" = "$sum" ]; check pattern_readback $? ""

# The write cache through the config space (CONFIG_WCE): null_blk has no
# volatile cache, so it starts write through (the writes above were FUA);
# both switches, then write back for the rest of the run (the host checks
# status shows it).
ct=/sys/block/vda/cache_type
c0=$(cat $ct 2>/dev/null)
echo "write back" > $ct && c1=$(cat $ct) && echo "write through" > $ct && c2=$(cat $ct) &&
	echo "write back" > $ct && c3=$(cat $ct)
[ "$c0" = "write through" ] && [ "$c1" = "write back" ] && [ "$c2" = "write through" ] &&
	[ "$c3" = "write back" ]
check cache_type_switch $? "$c0 -> ${c1:-} -> ${c2:-} -> ${c3:-}"

# I/O while the host changes workers and the vq->worker map.
echo "E2E: stress start"
bad=0
for r in 1 2 3 4 5 6 7 8 9 10 11 12; do
	dd if=/dev/urandom of=/tmp/r bs=64k count=16 2>/dev/null
	s=$(md5sum < /tmp/r)
	off=$((r * 64))
	dd if=/tmp/r of=/dev/vda bs=64k seek=$off conv=fsync 2>/dev/null || bad=1
	echo 3 > /proc/sys/vm/drop_caches
	t=$(dd if=/dev/vda bs=64k skip=$off count=16 2>/dev/null | md5sum)
	[ "$s" = "$t" ] || { bad=1; echo "E2E: round $r mismatch"; }
	sleep 1
done
echo "E2E: stress end"
check stress_readback $bad ""

# A filesystem on it, when the initramfs carries e2fsprogs and ext4
# (full paths: busybox has applets of the same names).
if [ -x /sbin/mke2fs ]; then
	/sbin/mke2fs -q -F -t ext4 -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda > /tmp/mkfs.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/mkfs.log
	check mkfs_ext4 $rc ""
	/sbin/e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/fsck.log
	check fsck_clean $rc ""
	if mount -t ext4 /dev/vda /mnt 2>/dev/null; then
		cp /tmp/pat /mnt/file && sync && umount /mnt && echo 3 > /proc/sys/vm/drop_caches &&
		mount -t ext4 /dev/vda /mnt && [ "$(md5sum < /mnt/file)" = "$sum" ]
		check file_readback $? ""
		umount /mnt
		/sbin/e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1
		check fsck_after_write $? ""
	else
		echo "E2E: cannot mount ext4 in the guest, file test skipped"
		check ext4_mount 1 ""
	fi
fi

if [ $fails = 0 ]; then echo "E2E-RESULT: PASS"; else echo "E2E-RESULT: FAIL ($fails)"; fi
sync
poweroff -f
