#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The benchmark matrix, run INSIDE the test VM (make bench:
# tests/vm/run.sh ... script tests/bench/matrix.sh).  Every cell is one
# vblk-bench run (the project's userspace virtio-blk driver, the same
# workload code for every virtio target) against
#   raw        the block device itself, io_uring + O_DIRECT (the limit)
#   kernel     /dev/vhost-blk, driven directly (vhost_blk.ko)
#   qsd        qemu-storage-daemon --export vhost-user-blk (aio=io_uring,
#              cache.direct=on, one iothread), over its socket
#   blkctl     vhost-blkctl serve over its socket (data path: vhost_blk.ko)
#   kernel-poll, qsd-poll  queue depth 1 with busy polling (see below)
#   kernel-colo  queue depth 1, the worker on the driver's CPU (no polling)
#   kernel-pollc, kernel-wpollc  kernel-poll and kernel-wpoll with
#                vhost_blk.polled_completions=Y (--poll only), each run
#                right after the cell without it
#   kernel-wpoll every depth, 1 queue: only the worker busy polls (adaptive
#                window, ceiling $BENCH_POLL_US), the driver sleeps on its
#                call eventfd as a guest without poll queues does
# on two backends: null_blk with memory_backed=0 (no data: pure overhead)
# and brd.  Workloads: 4 KiB randread/randwrite at queue depth 1, 32, 128
# per queue; 1 queue, 2 queues on 1 worker, 2 queues on 2 workers.
# One JSON line per cell goes to /run/results/bench.jsonl; the host makes
# the report (scripts/bench-report.py).
#
#   matrix.sh [--seconds S] [--runs N] [--warmup S] [--quick | --wce | --512e | --file | --poll]
#
# --poll: only the polling comparison, both backends, both directions,
# 1 queue: raw, kernel and kernel-wpoll at every depth, kernel-poll,
# kernel-pollc and kernel-colo at depth 1.
#
# Write cache cells (in the full matrix, or alone with --wce): durable
# 4 KiB random writes on null_blk with a volatile cache (memory_backed=1,
# cache_size=64 MiB), once with FUA support (fua=1) and once without (the
# block layer then turns each FUA write into write + flush):
#   kernel-wb        write-back, plain writes (not durable: the reference)
#   kernel-wt-fua    write-through (VHOST_BLK_SET_WRITE_CACHE): every write FUA
#   kernel-wb-flush  write-back, each write followed by a guest FLUSH
#                    (vblk-bench --flush-after-write; one I/O = the pair)
#
# 512e cells (in the full matrix, or alone with --512e): null_blk with 4 KiB
# blocks and no memory (nullbench4k), 1 queue, randread and randwrite at
# depth 1 and 32:
#   kernel-4k          the guest uses the backend's 4 KiB blocks, 4 KiB I/O
#   kernel-512e-4k     512-byte guest blocks (VHOST_BLK_SET_BLOCK_SIZE),
#                      4 KiB aligned I/O: what the overlap tracking costs
#   kernel-512e-512    512-byte guest blocks, 512-byte I/O: every request
#                      a read-modify-write (reads: a bounced block read)
#   kernel-512n-512    the same 512-byte I/O on a 512-byte-block disk
#                      (nullbench): what the emulation costs over native
#
# File backend cells (in the full matrix, or alone with --file): one raw
# image of 128 MiB, written in full first, on ext4 ($VBLK_EXT4_DIR: a loop
# device over tmpfs in the VM), 1 queue, randread and randwrite at depth 1
# and 32, served four ways:
#   raw-file     io_uring + O_DIRECT on the image file (the limit)
#   kernel-file  /dev/vhost-blk with the image file as its backend (file.c)
#   kernel-loop  /dev/vhost-blk on a loop device over the image
#                (losetup --direct-io=on): what an admin had to do before
#   raw-loop     io_uring + O_DIRECT on that loop device
#
# --quick: one backend (null_blk), depth 1 and 32, randread only: a smoke
# run of every target.
set -u
seconds=${BENCH_SECONDS:-1}
runs=${BENCH_RUNS:-3}
warmup=${BENCH_WARMUP:-1}
poll=${BENCH_POLL_US:-200}
pollc=/sys/module/vhost_blk/parameters/polled_completions
quick=0 wce_only=0 e512_only=0 file_only=0 poll_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	--wce) wce_only=1; shift ;;
	--512e) e512_only=1; shift ;;
	--file) file_only=1; shift ;;
	--poll) poll_only=1; shift ;;
	*) echo "usage: $0 [--seconds S] [--runs N] [--warmup S] [--quick | --wce | --512e | --file | --poll]" >&2; exit 2 ;;
	esac
done

bench=$BUILD/cmake/tools/vblk-bench/vblk-bench
blkctl=$BUILD/cmake/tools/vhost-blkctl/vhost-blkctl
res=/run/results
out=$res/bench.jsonl
W=/run/bench
mkdir -p $W
: > $out
export VHOST_BLKCTL_RUN_DIR=$W/run
failed=0 cells=0
T0=$(date +%s)
note() { echo "# [$(( $(date +%s) - T0 ))s] $*"; }

. "$REPO/tests/bench/backends.sh"

{
	echo "{\"kernel\": \"$(uname -r)\", \"qemu_storage_daemon\": \"$(qemu-storage-daemon --version | head -1)\","
	echo " \"cpus\": $(nproc), \"cpu_model\": \"$(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)\","
	echo " \"seconds\": $seconds, \"runs\": $runs, \"warmup\": $warmup, \"quick\": $quick}"
} > $res/bench-env.json

# cell TARGET BACKEND_NAME RW DEPTH QUEUES WORKERS [vblk-bench args...]
cell() {
	t=$1 bn=$2 rw=$3 depth=$4 q=$5 w=$6
	shift 6
	cells=$((cells + 1))
	line=$("$bench" --json --rw "$rw" --bs "${BS:-4096}" --depth "$depth" --queues "$q" \
		--seconds "$seconds" --runs "$runs" --warmup "$warmup" \
		--tag "name=$t,backend_kind=$bn,served_by_workers=$w" "$@" 2> $W/err)
	rc=$?
	if [ $rc != 0 ] || [ -z "$line" ]; then
		failed=$((failed + 1))
		echo "not ok $cells $t $bn $rw qd$depth q$q w$w # rc $rc: $(head -c 300 $W/err)"
		return
	fi
	echo "$line" >> $out
	iops=$(echo "$line" | sed -n 's/.*"median":{[^}]*"iops":\([0-9.]*\).*/\1/p')
	echo "ok $cells $t $bn $rw qd$depth q$q w$w ${iops%.*} IOPS"
}

# serve_* start a daemon and set $dpid/$sock; stop_daemon ends it.
start_qsd() {
	sock=$W/qsd.sock
	rm -f $sock
	qemu-storage-daemon \
		--blockdev driver=host_device,node-name=disk,filename=$1,cache.direct=on,aio=io_uring \
		--object iothread,id=io0 \
		--export type=vhost-user-blk,id=exp0,node-name=disk,addr.type=unix,addr.path=$sock,writable=on,num-queues=2,iothread=io0 \
		> $W/qsd.log 2>&1 &
	dpid=$!
	wait_sock
}
start_blkctl() {
	sock=$W/vbc.sock
	rm -f $sock
	"$blkctl" serve --backend "$1" --socket $sock --name bench --queues 2 --workers "$2" \
		> $W/blkctl.log 2>&1 &
	dpid=$!
	wait_sock
}
wait_sock() {
	i=0
	while [ ! -S $sock ] && [ $i -lt 100 ] && kill -0 $dpid 2>/dev/null; do
		sleep 0.1; i=$((i + 1))
	done
	[ -S $sock ] || echo "# daemon did not come up: $(tail -3 $W/*.log)"
}
stop_daemon() {
	kill -TERM $dpid 2>/dev/null
	wait $dpid 2>/dev/null
}

if [ $quick = 1 ]; then
	backends="nullbench:/dev/nullbench"
	rws=randread
	depths="1 32"
else
	backends="nullbench:/dev/nullbench brd:/dev/ram0"
	rws="randread randwrite"
	depths="1 32 128"
fi

# null_blk NAME with a 64 MiB volatile write cache; FUA 1 or 0.
cache_nullb() {
	c=/sys/kernel/config/nullb/$1
	if [ ! -d $c ]; then
		mkdir $c || return 1
		echo 512 > $c/blocksize
		echo 1024 > $c/size
		echo 1 > $c/memory_backed
		echo 64 > $c/cache_size
		echo $2 > $c/fua
		echo 1 > $c/power
	fi
	i=0
	while [ ! -b /dev/$1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -b /dev/$1 ]
}

# The write cache cells (see the top), on 256 MiB of each device.
wce_cells() {
	for fua in 1 0; do
		bn=nullcache-fua$fua dev=/dev/nullwce$fua
		cache_nullb nullwce$fua $fua || { echo "# cannot create $dev"; failed=$((failed + 1)); continue; }
		note "backend $bn ($dev, write_cache $(cat /sys/block/nullwce$fua/queue/write_cache), fua $(cat /sys/block/nullwce$fua/queue/fua))"
		for d in 1 16; do
			set -- --target kernel --backend $dev --size $((256 << 20))
			cell kernel-wb $bn randwrite $d 1 1 "$@" --write-cache writeback
			cell kernel-wt-fua $bn randwrite $d 1 1 "$@" --write-cache writethrough
			cell kernel-wb-flush $bn randwrite $d 1 1 "$@" --write-cache writeback \
				--flush-after-write
		done
	done
}

# The 512e cells (see the top).
e512_cells() {
	c=/sys/kernel/config/nullb/nullbench4k
	if [ ! -d $c ]; then
		mkdir $c && echo 4096 > $c/blocksize && echo 4096 > $c/size &&
			echo 0 > $c/memory_backed && echo 1 > $c/power ||
			{ echo "# cannot create nullbench4k"; failed=$((failed + 1)); return; }
	fi
	i=0
	while [ ! -b /dev/nullbench4k ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	note "backend nullbench4k (/dev/nullbench4k, 4 KiB blocks)"
	for rw in randread randwrite; do
		for d in 1 32; do
			set -- --target kernel --workers 1
			BS=4096 cell kernel-4k nullbench4k $rw $d 1 1 "$@" --backend /dev/nullbench4k
			BS=4096 cell kernel-512e-4k nullbench4k $rw $d 1 1 "$@" \
				--backend /dev/nullbench4k --block-size 512
			BS=512 cell kernel-512e-512 nullbench4k $rw $d 1 1 "$@" \
				--backend /dev/nullbench4k --block-size 512
			BS=512 cell kernel-512n-512 nullbench $rw $d 1 1 "$@" \
				--backend /dev/nullbench
		done
	done
}

# The file backend cells (see the top).
file_cells() {
	if [ -z "${VBLK_EXT4_DIR:-}" ]; then
		note "no ext4 in the VM (VBLK_EXT4_DIR): file cells skipped"
		return
	fi
	img=$VBLK_EXT4_DIR/bench.img
	rm -f $img
	# Written, not fallocated: ext4 answers reads of unwritten extents
	# with zeroes without any I/O.  util-linux losetup, not busybox's.
	if ! dd if=/dev/zero of=$img bs=1M count=128 oflag=direct 2>/dev/null ||
	   ! lo=$(/usr/sbin/losetup --direct-io=on -f --show $img); then
		echo "# cannot set up $img and its loop device"
		failed=$((failed + 1))
		rm -f $img
		return
	fi
	note "backend ext4img ($img, 128 MiB on ext4; loop $lo, direct-io $(cat /sys/block/${lo#/dev/}/loop/dio))"
	for rw in randread randwrite; do
		for d in 1 32; do
			cell raw-file ext4img $rw $d 1 - --target raw --backend $img
			cell kernel-file ext4img $rw $d 1 1 --target kernel --workers 1 --backend $img
			cell kernel-loop ext4img $rw $d 1 1 --target kernel --workers 1 --backend $lo
			cell raw-loop ext4img $rw $d 1 - --target raw --backend $lo
		done
	done
	/usr/sbin/losetup -d $lo
	rm -f $img
}

echo "TAP version 13"
if [ $file_only = 1 ]; then
	backends=
	file_cells
fi
if [ $wce_only = 1 ]; then
	backends=
	wce_cells
fi
if [ $e512_only = 1 ]; then
	backends=
	e512_cells
fi
for b in $backends; do
	bn=${b%%:*} dev=${b#*:}
	note "backend $bn ($dev)"
	for rw in $rws; do
		for d in $depths; do
			for q in 1 2; do
				[ $poll_only = 1 ] && [ $q = 2 ] && continue
				cell raw $bn $rw $d $q - --target raw --backend $dev
			done
			cell kernel $bn $rw $d 1 1 --target kernel --backend $dev --workers 1
			[ $poll_only = 1 ] ||
				cell kernel $bn $rw $d 2 1 --target kernel --backend $dev --workers 1
			[ $poll_only = 1 ] ||
				cell kernel $bn $rw $d 2 2 --target kernel --backend $dev --workers 2
			# The worker polls (adaptive window), the driver does
			# not: what polling costs and gives at each depth.
			cell kernel-wpoll $bn $rw $d 1 1 --target kernel --backend $dev --workers 1 \
				--poll-us $poll
			if [ $poll_only = 1 ]; then
				echo Y > $pollc
				cell kernel-wpollc $bn $rw $d 1 1 --target kernel --backend $dev \
					--workers 1 --poll-us $poll
				echo N > $pollc
			fi
		done
		# Low queue depth with busy polling on both sides: the worker
		# (VHOST_SET_VRING_BUSYLOOP_TIMEOUT) and the driver (a guest's
		# virtio-blk poll queues).
		cell kernel-poll $bn $rw 1 1 1 --target kernel --backend $dev --workers 1 \
			--poll-us $poll --driver-poll-us $poll
		if [ $poll_only = 1 ]; then
			echo Y > $pollc
			cell kernel-pollc $bn $rw 1 1 1 --target kernel --backend $dev --workers 1 \
				--poll-us $poll --driver-poll-us $poll
			echo N > $pollc
		fi
		# Low queue depth with the worker on the driver's CPU
		# (VHOST_BLK_GET_WORKER_TID + sched_setaffinity): no
		# cross-CPU wake-up per request.
		cell kernel-colo $bn $rw 1 1 1 --target kernel --backend $dev --workers 1 \
			--cpus 0 --worker-cpus 0
	done
	[ $poll_only = 1 ] && continue
	start_qsd $dev
	for rw in $rws; do
		for d in $depths; do
			for q in 1 2; do
				cell qsd $bn $rw $d $q 1 --target vhost-user --socket $sock --serving-pid $dpid
			done
		done
		# Its iothread polls adaptively by default (poll-max-ns); the
		# driver polls as for kernel-poll.
		cell qsd-poll $bn $rw 1 1 1 --target vhost-user --socket $sock --serving-pid $dpid \
			--driver-poll-us $poll
	done
	stop_daemon
	for w in 1 2; do
		start_blkctl $dev $w
		for rw in $rws; do
			for d in $depths; do
				if [ $w = 1 ]; then
					cell blkctl $bn $rw $d 1 1 --target vhost-user --socket $sock --serving-pid $dpid
				fi
				cell blkctl $bn $rw $d 2 $w --target vhost-user --socket $sock --serving-pid $dpid
			done
		done
		stop_daemon
	done
done
if [ $wce_only = 0 ] && [ $e512_only = 0 ] && [ $file_only = 0 ] && [ $poll_only = 0 ] &&
   [ $quick = 0 ]; then
	wce_cells
	e512_cells
	file_cells
fi
echo "1..$cells"
note "done: $cells cells, $failed failed"
cp $W/*.log $res/ 2>/dev/null
echo "# Totals: pass:$((cells - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ $failed = 0 ]
