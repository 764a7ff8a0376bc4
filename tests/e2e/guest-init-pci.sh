#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the nested guest of vhost_blk_pci.sh: an unmodified Linux with the
# stock virtio_blk driver on QEMU's vhost-blk-pci (QEMU owns /dev/vhost-blk).
# Every check prints "E2E-CHECK ok|fail NAME [detail]"; phases print
# "E2E: ..." lines the host synchronizes on.  Expected values come on the
# kernel command line.
#
# Disk layout (null_blk, 1 GiB, memory-backed; offsets in MiB):
#   0-512     ext4 (boot 1 makes it, boot 2 checks it)
#   600-604   pattern: the host prefills it, boot 1 overwrites it
#   640-644   I/O while the host re-maps workers (2 MiB per queue)
#   680-684   I/O across QMP stop/cont and live migration
#   1000      boot marker (which boot this is, the boot-1 pattern's md5)
#   1000+4K   control sector: the host writes "CMD WORD" to move the guest on
#
# Boot 1: size/serial/queues, prefill read, pattern write + read-back, ext4,
# marker, the 512e disk, reboot -f.  Boot 2: the first boot's data, then I/O phases on both
# queues (each loop pinned to one CPU, so to one virtqueue) until the host
# says stop, every chunk verified; finally poweroff -f.
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
want_prefill=$(arg e2e.prefill)
want_serial512=$(arg e2e.serial512)
want_e512=$(arg e2e.e512)

MARK=2048000	# 512-byte sectors: 1000 MiB
CTL=2048008
PAT=9600	# 64 KiB blocks: 600 MiB
PATN=64
IO1=10240	# 640 MiB
IO2=10880	# 680 MiB
NCH=32		# chunks of 64 KiB per queue and phase

md5() { md5sum | cut -d' ' -f1; }
rd() { dd if=/dev/vda bs=64k skip=$1 count=$2 iflag=direct 2>/dev/null | md5; }	# rd BLOCK COUNT
sector() { dd if=/dev/vda bs=512 skip=$1 count=1 iflag=direct 2>/dev/null | tr -d '\0\n'; }
put_sector() { printf '%s\n' "$2" | dd of=/dev/vda bs=512 seek=$1 count=1 conv=sync,fsync oflag=direct 2>/dev/null; }

for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "E2E: insmod $m failed"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
marker=$(sector $MARK)
case $marker in
"VBLK-E2E boot1 "*) boot=2 ;;
"VBLK-E2E boot2"*) boot=3 ;;
*) boot=1 ;;
esac
echo "E2E: booted $boot $(uname -r)"

finish() {
	if [ $fails = 0 ]; then echo "E2E-RESULT: PASS"; else echo "E2E-RESULT: FAIL ($fails)"; fi
	sync
	poweroff -f
}

[ -b /dev/vda ]; check vda_present $? "boot $boot"
size=$(cat /sys/block/vda/size 2>/dev/null)
[ "$size" = "$want_sectors" ]; check vda_size $? "sectors=$size want=$want_sectors"
serial=$(cat /sys/block/vda/serial 2>/dev/null)
[ "$serial" = "$want_serial" ]; check vda_serial $? "serial=$serial want=$want_serial"
nq=$(ls /sys/block/vda/mq 2>/dev/null | wc -l)
[ "$nq" = "$want_queues" ]; check vda_queues $? "mq=$nq want=$want_queues"

# The host waits for "E2E: ... checks done" before judging a phase.
waitcmd() {	# waitcmd WORD: until the host writes "CMD WORD" (10 min at most)
	i=0
	while [ $i -lt 1200 ]; do
		[ "$(sector $CTL)" = "CMD $1" ] && return 0
		sleep 0.5
		i=$((i + 1))
		[ $((i % 20)) = 0 ] && echo "E2E: waiting for $1 ($i)"
	done
	echo "E2E: no command $1 from the host"
	return 1
}

# One I/O loop: 64 KiB of fresh random data per round onto the next chunk
# (O_DIRECT, fsync: write + flush), read back O_DIRECT and compared; the
# chunk's md5 is kept for the final pass.  Runs until /tmp/stop exists.
iowork() {	# iowork TAG ID BASE
	tag=$1 id=$2 base=$3 r=0
	while [ ! -e /tmp/stop ]; do
		c=$((r % NCH))
		off=$((base + c))
		dd if=/dev/urandom of=/tmp/w$id bs=64k count=1 2>/dev/null
		s=$(md5 < /tmp/w$id)
		echo "$s" > /tmp/$tag.$id.$c
		if ! dd if=/tmp/w$id of=/dev/vda bs=64k seek=$off conv=notrunc,fsync oflag=direct 2>/dev/null; then
			echo "E2E: $tag $id round $r: write of chunk $c failed"
			: > /tmp/bad.$tag
		elif [ "$(rd $off 1)" != "$s" ]; then
			echo "E2E: $tag $id round $r: chunk $c reads back wrong"
			: > /tmp/bad.$tag
		fi
		r=$((r + 1))
		echo "E2E: $tag $id round $r"
	done
	echo $r > /tmp/$tag.rounds.$id
}

# An I/O phase: a loop per queue, pinned to its CPU (blk-mq maps CPU n to
# queue n), until the host says WORD; then every chunk either loop wrote is
# read back and compared with the last data written to it.
io_phase() {	# io_phase TAG BASE WORD
	rm -f /tmp/stop
	iowork $1 0 $2 &
	p0=$!
	taskset -p 1 $p0 > /dev/null
	iowork $1 1 $(($2 + NCH)) &
	p1=$!
	taskset -p 2 $p1 > /dev/null
	echo "E2E: $1 start"
	waitcmd $3
	wrc=$?
	: > /tmp/stop
	wait $p0 $p1
	bad=0 n=0
	[ -e /tmp/bad.$1 ] && bad=1
	for id in 0 1; do
		c=0
		while [ $c -lt $NCH ]; do
			if [ -e /tmp/$1.$id.$c ]; then
				off=$(($2 + id * NCH + c))
				[ "$(rd $off 1)" = "$(cat /tmp/$1.$id.$c)" ] || { bad=1; echo "E2E: $1 chunk $id.$c differs"; }
				n=$((n + 1))
			fi
			c=$((c + 1))
		done
	done
	[ $wrc = 0 ] || bad=1
	check ${1}_verify $bad "chunks=$n rounds=$(cat /tmp/$1.rounds.0)+$(cat /tmp/$1.rounds.1)"
	echo "E2E: $1 region md5=$(rd $2 $((2 * NCH)))"
	echo "E2E: $1 checks done"
}

case $boot in
1)
	# The host's prefill reads back, then a different pattern replaces it.
	pre=$(rd $PAT $PATN)
	[ "$pre" = "$want_prefill" ]; check prefill_read $? "md5=$pre want=$want_prefill"
	dd if=/dev/urandom of=/tmp/pat bs=64k count=$PATN 2>/dev/null
	sum=$(md5 < /tmp/pat)
	[ "$sum" != "$pre" ]; check pattern_differs $? ""
	dd if=/tmp/pat of=/dev/vda bs=64k seek=$PAT conv=notrunc,fsync oflag=direct 2>/dev/null
	check pattern_write $? ""
	echo 3 > /proc/sys/vm/drop_caches
	a=$(rd $PAT $PATN)
	b=$(dd if=/dev/vda bs=64k skip=$PAT count=$PATN 2>/dev/null | md5)
	[ "$a" = "$sum" ] && [ "$b" = "$sum" ]; check pattern_readback $? "direct=$a cached=$b want=$sum"
	echo "E2E: pattern md5=$sum"

	# ext4 on the first 512 MiB (full paths: busybox has applets of these names).
	/sbin/mke2fs -q -F -t ext4 -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda 512M > /tmp/mkfs.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/mkfs.log
	check mkfs_ext4 $rc ""
	/sbin/e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/fsck.log
	check fsck_clean $rc ""
	rc=1
	if mount -t ext4 /dev/vda /mnt; then
		cp /tmp/pat /mnt/file && sync && umount /mnt && echo 3 > /proc/sys/vm/drop_caches &&
			mount -t ext4 /dev/vda /mnt && [ "$(md5 < /mnt/file)" = "$sum" ]
		rc=$?
		umount /mnt
	fi
	check file_readback $rc ""
	/sbin/e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/fsck.log
	check fsck_after_write $rc ""
	put_sector $MARK "VBLK-E2E boot1 $sum"
	check marker_write $? ""

	# 512e: the second disk (found by its serial) is logical_block_size=512
	# on a 4 KiB drive.  One 512-byte sector inside a 4 KiB block is
	# written; it reads back, and the rest of the first 64 KiB (the host's
	# prefill) is unchanged: the kernel's read-modify-write kept it.
	e=
	for d in /sys/block/vd*; do
		[ "$(cat $d/serial 2>/dev/null)" = "$want_serial512" ] && e=${d##*/}
	done
	lbs=$(cat /sys/block/$e/queue/logical_block_size 2>/dev/null)
	pbs=$(cat /sys/block/$e/queue/physical_block_size 2>/dev/null)
	[ -n "$e" ] && [ "$lbs" = 512 ] && [ "$pbs" = 4096 ]
	check e512_sizes $? "disk=$e lbs=$lbs pbs=$pbs"
	dd if=/dev/$e of=/tmp/e512.before bs=64k count=1 iflag=direct 2>/dev/null
	a=$(md5 < /tmp/e512.before)
	[ "$a" = "$want_e512" ]; check e512_prefill $? "md5=$a want=$want_e512"
	dd if=/dev/urandom of=/tmp/e512.sec bs=512 count=1 2>/dev/null
	dd if=/tmp/e512.sec of=/dev/$e bs=512 seek=9 count=1 conv=notrunc,fsync oflag=direct 2>/dev/null
	check e512_write $? ""
	cp /tmp/e512.before /tmp/e512.want
	dd if=/tmp/e512.sec of=/tmp/e512.want bs=512 seek=9 count=1 conv=notrunc 2>/dev/null
	w=$(md5 < /tmp/e512.want)
	b=$(dd if=/dev/$e bs=64k count=1 iflag=direct 2>/dev/null | md5)
	s9=$(dd if=/dev/$e bs=512 skip=9 count=1 iflag=direct 2>/dev/null | md5)
	[ "$b" = "$w" ] && [ "$s9" = "$(md5 < /tmp/e512.sec)" ] && [ "$w" != "$a" ]
	check e512_readback $? "64k=$b want=$w"
	echo "E2E: e512 md5=$b"
	echo "E2E: boot1 checks done ($fails failed)"
	sync
	echo "E2E: rebooting"
	reboot -f
	sleep 30
	echo "E2E: reboot -f returned"
	finish
	;;
2)
	sum=${marker#VBLK-E2E boot1 }
	a=$(rd $PAT $PATN)
	[ "$a" = "$sum" ]; check boot2_pattern $? "md5=$a want=$sum"
	/sbin/e2fsck -fn /dev/vda > /tmp/fsck.log 2>&1
	rc=$?
	[ $rc = 0 ] || tail -5 /tmp/fsck.log
	check boot2_fsck $rc ""
	rc=1
	if mount -t ext4 -o ro /dev/vda /mnt; then
		[ "$(md5 < /mnt/file)" = "$sum" ]
		rc=$?
		umount /mnt
	fi
	check boot2_file $rc ""
	put_sector $MARK "VBLK-E2E boot2"
	check marker_write2 $? ""
	echo "E2E: boot2 checks done ($fails failed)"

	io_phase io1 $IO1 io1-stop
	io_phase io2 $IO2 io2-stop
	echo "E2E: pattern md5=$(rd $PAT $PATN)"
	finish
	;;
*)
	check boot_count 1 "unexpected boot: marker '$marker'"
	finish
	;;
esac
