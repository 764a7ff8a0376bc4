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
want_migrate=$(arg e2e.migrate)

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

# The control sector at 1000 MiB: the host writes "CMD WORD" there
# (vhost_user_blk.sh) to move this guest on.
CTL=2048000	# 512-byte sectors: 1000 MiB
sector() { dd if=/dev/vda bs=512 skip=$1 count=1 iflag=direct 2>/dev/null | tr -d '\0\n'; }

# I/O while the host changes workers and the vq->worker map: rounds until
# the host writes "CMD workers-done", then one more (at most 40 rounds).
# Each round on the other CPU, so on the other queue: the host's status
# check wants I/O on both, and two rounds are the least this loop does.
echo "E2E: stress start"
bad=0 last=0 r=0
while [ $last = 0 ] && [ $r -lt 40 ]; do
	r=$((r + 1))
	[ "$(sector $CTL)" = "CMD workers-done" ] && last=1
	cpu=$((1 << (r % 2)))
	dd if=/dev/urandom of=/tmp/r bs=64k count=16 2>/dev/null
	s=$(md5sum < /tmp/r)
	off=$((r * 64))
	taskset $cpu dd if=/tmp/r of=/dev/vda bs=64k seek=$off conv=fsync 2>/dev/null || bad=1
	echo 3 > /proc/sys/vm/drop_caches
	t=$(taskset $cpu dd if=/dev/vda bs=64k skip=$off count=16 2>/dev/null | md5sum)
	[ "$s" = "$t" ] || { bad=1; echo "E2E: round $r mismatch"; }
	[ $last = 1 ] || sleep 1
done
[ $last = 1 ] || { bad=1; echo "E2E: stress: no command from the host after $r rounds"; }
echo "E2E: stress end ($r rounds)"
check stress_readback $bad "rounds=$r"

# Live migration (e2e.migrate=1; vhost_user_blk.sh): the host prefilled
# 500-504 MiB (written here) and 600-616 MiB (read here) with random data,
# migrates this VM to a second QEMU on a second serve while the loops run,
# then writes "CMD migrated" to the control sector at 1000 MiB.
#   writers: one per queue (pinned to its CPU), 64 KiB of fresh data per
#     round onto the next of 32 chunks, O_DIRECT + fsync, read back; at the
#     end every chunk is compared with the last data written to it.
#   reader: one 256 KiB region a second through the page cache, so the
#     device writes guest pages while memory is being migrated; at the end
#     the cached pages (not read again) must match the device: only the
#     dirty log the kernel marks can have brought them over.
MIGW=8000	# 64 KiB blocks: 500 MiB
MIGR=2400	# 256 KiB blocks: 600 MiB
NR=64
md5() { md5sum | cut -d' ' -f1; }
mig_writer() {	# mig_writer ID
	r=0
	while [ ! -e /tmp/stop ]; do
		c=$((r % 32))
		off=$((MIGW + $1 * 32 + c))
		dd if=/dev/urandom of=/tmp/w$1 bs=64k count=1 2>/dev/null
		s=$(md5 < /tmp/w$1)
		echo "$s" > /tmp/mw.$1.$c
		dd if=/tmp/w$1 of=/dev/vda bs=64k seek=$off conv=notrunc,fsync oflag=direct 2>/dev/null &&
			[ "$(dd if=/dev/vda bs=64k skip=$off count=1 iflag=direct 2>/dev/null | md5)" = "$s" ] ||
			{ echo "E2E: migration writer $1 round $r: chunk $c wrong"; : > /tmp/mbad; }
		r=$((r + 1))
	done
	echo "E2E: migration writer $1: $r rounds"
}
mig_reader() {
	k=0
	while [ ! -e /tmp/stop ] && [ $k -lt $NR ]; do
		dd if=/dev/vda of=/dev/null bs=256k skip=$((MIGR + k)) count=1 2>/dev/null
		k=$((k + 1))
		echo $k > /tmp/mread
		sleep 1
	done
}
if [ "$want_migrate" = 1 ]; then
	k=0
	while [ $k -lt $NR ]; do
		dd if=/dev/vda bs=256k skip=$((MIGR + k)) count=1 iflag=direct 2>/dev/null | md5 > /tmp/mr.$k
		k=$((k + 1))
	done
	echo 3 > /proc/sys/vm/drop_caches
	rm -f /tmp/stop /tmp/mbad
	mig_writer 0 &
	p0=$!
	taskset -p 1 $p0 > /dev/null
	mig_writer 1 &
	p1=$!
	taskset -p 2 $p1 > /dev/null
	mig_reader &
	p2=$!
	echo "E2E: migration start"
	i=0
	while [ "$(sector $CTL)" != "CMD migrated" ] && [ $i -lt 1200 ]; do sleep 0.5; i=$((i + 1)); done
	[ $i -lt 1200 ]; check migration_command $? ""
	: > /tmp/stop
	wait $p0 $p1 $p2
	bad=0
	[ -e /tmp/mbad ] && bad=1
	n=0
	for id in 0 1; do
		c=0
		while [ $c -lt 32 ]; do
			if [ -e /tmp/mw.$id.$c ]; then
				t=$(dd if=/dev/vda bs=64k skip=$((MIGW + id * 32 + c)) count=1 iflag=direct 2>/dev/null | md5)
				[ "$t" = "$(cat /tmp/mw.$id.$c)" ] || { bad=1; echo "E2E: migration chunk $id.$c differs"; }
				n=$((n + 1))
			fi
			c=$((c + 1))
		done
	done
	check migration_writes $bad "chunks=$n"
	bad=0
	nread=$(cat /tmp/mread 2>/dev/null || echo 0)
	k=0
	while [ $k -lt $nread ]; do
		t=$(dd if=/dev/vda bs=256k skip=$((MIGR + k)) count=1 2>/dev/null | md5)
		[ "$t" = "$(cat /tmp/mr.$k)" ] || { bad=1; echo "E2E: migration region $k differs in the page cache"; }
		k=$((k + 1))
	done
	[ $nread -gt 0 ] || bad=1
	check migration_page_cache $bad "regions=$nread"
	echo "E2E: migration checks done"
fi

# Restart without loss (e2e.restart=1; vhost_user_blk.sh): the host
# prefilled 125-133 MiB with random data and kills the serving vhost-blkctl
# (-9) three times while this loop writes 8 blocks of 64 KiB a round, one
# request each (O_DIRECT + fsync), each stamped "block B round R", and
# reads the round back; QEMU reconnects to each new serve (chardev
# reconnect=1).  /tmp/img is what the region must hold.  The host writes
# "CMD restarted" to the control sector when it is done; then the whole
# region is compared once more.  A write lost, or an old one replayed after
# a newer, shows as a mismatch; a request failed by a restart as an error.
RB=2000		# 64 KiB blocks: 125 MiB
NB=128
if [ "$(arg e2e.restart)" = 1 ]; then
	dd if=/dev/vda of=/tmp/img bs=64k skip=$RB count=$NB iflag=direct 2>/dev/null
	bad=0 r=0
	echo "E2E: restart start"
	while [ $r -lt 400 ] && [ "$(sector $CTL)" != "CMD restarted" ]; do
		r=$((r + 1))
		b0=$(( (r * 8) % NB ))
		for b in $b0 $((b0 + 1)) $((b0 + 2)) $((b0 + 3)) $((b0 + 4)) $((b0 + 5)) $((b0 + 6)) $((b0 + 7)); do
			echo "block $b round $r" | dd of=/tmp/img bs=64k seek=$b conv=notrunc 2>/dev/null
			dd if=/tmp/img of=/dev/vda bs=64k skip=$b seek=$((RB + b)) count=1 \
				conv=notrunc,fsync oflag=direct 2>/dev/null ||
				{ bad=1; echo "E2E: restart round $r block $b: write failed"; }
		done
		[ "$(dd if=/dev/vda bs=64k skip=$((RB + b0)) count=8 iflag=direct 2>/dev/null | md5)" = \
		  "$(dd if=/tmp/img bs=64k skip=$b0 count=8 2>/dev/null | md5)" ] ||
			{ bad=1; echo "E2E: restart round $r: blocks $b0-$((b0 + 7)) read back wrong"; }
		echo "E2E: restart round $r"
	done
	[ "$(sector $CTL)" = "CMD restarted" ] || { bad=1; echo "E2E: restart: no command from the host"; }
	[ "$(dd if=/dev/vda bs=64k skip=$RB count=$NB iflag=direct 2>/dev/null | md5)" = "$(md5 < /tmp/img)" ] ||
		{ bad=1; echo "E2E: restart: the region differs at the end"; }
	check restart_every_block_reads_back $bad "rounds=$r"
	echo "E2E: restart checks done"
fi

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

# No I/O error in the kernel log, whatever the console's loglevel hid.
dmesg > /tmp/dmesg.txt
! grep -qiE 'I/O error|blk_update_request|virtio_blk.*(error|fail)|Buffer I/O' /tmp/dmesg.txt
rc=$?
[ $rc = 0 ] || grep -iE 'I/O error|blk_update_request|virtio_blk|Buffer I/O' /tmp/dmesg.txt | head -5
check dmesg_no_io_errors $rc ""

if [ $fails = 0 ]; then echo "E2E-RESULT: PASS"; else echo "E2E-RESULT: FAIL ($fails)"; fi
sync
poweroff -f
