#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# End-to-end: a nested guest on the project's QEMU device vhost-blk-pci
# (QEMU owns /dev/vhost-blk, no daemon).
#
# Runs INSIDE the test VM (tests/vm/run.sh ... script tests/e2e/vhost_blk_pci.sh),
# with vhost_blk loaded and $VBLK_NULLB (memory-backed null_blk) set up.
# Boots the patched QEMU (TCG) with -device vhost-blk-pci on null_blk,
# 2 queues on 2 workers, and a busybox initramfs (guest-init-pci.sh) that
#   boot 1: checks size, serial and queues, reads the host's prefill, writes a
#           different pattern and reads it back, mkfs.ext4 + fsck + file
#           read-back, leaves a marker and reboots (reboot -f: QEMU resets);
#   boot 2: finds the first boot's data, then runs verified I/O on both
#           queues while this script re-maps workers through
#           `vhost-blkctl workers|assign --qmp`, then across QMP stop/cont
#           and a live migration to a second QEMU; every chunk is read back.
# A second disk, logical_block_size=512 on the 4 KiB null_blk (512e, the
# kernel's read-modify-write), gets one 512-byte write in boot 1.
# At the end the host reads the guest's data straight from null_blk.
# Output is KTAP; every test line names vhost-blk-pci.
#
#   vhost_blk_pci.sh [--qemu PATH] [--blkctl PATH] [--timeout SECS]
#
# Exit status: 0 all passed, 1 a check failed, 4 a prerequisite is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
qemu=${BUILD:-/nonexistent}/qemu/bin/qemu-system-x86_64
blkctl=${BUILD:-/nonexistent}/cmake/tools/vhost-blkctl/vhost-blkctl
timeout=1500
while [ $# -gt 0 ]; do
	case "$1" in
	--qemu) qemu=$2; shift 2 ;;
	--blkctl) blkctl=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	*) echo "usage: $0 [--qemu PATH] [--blkctl PATH] [--timeout SECS]" >&2; exit 2 ;;
	esac
done

W=/run/e2e-pci
rm -rf $W
mkdir -p $W
DEV=vblk0
SERIAL=vblk-pci-e2e-01
SERIAL512=vblk-pci-e2e-512e
QUEUES=2
backend=${VBLK_NULLB:-/dev/nullb0}
backend4k=${VBLK_NULLB_4K:-/dev/nullb4k}
kver=$(uname -r)
kdir=${BUILD:-}/kernel/$kver
[ -f "$kdir/vmlinuz" ] || kdir=$(ls -d ${BUILD:-}/kernel/*-amd64 2>/dev/null | head -1)
# The layout of guest-init-pci.sh (64 KiB blocks, 512-byte sectors).
PAT=9600 PATN=64 IO1=10240 IO2=10880 NCH=32 CTL=2048008 MARK=2048000

n=0 failed=0 skipped=0
T0=$(date +%s)
ok() { n=$((n + 1)); echo "ok $n vhost-blk-pci: $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n vhost-blk-pci: $1${2:+ # $2}"; save; }
# The logs go to the run's results as they are (the VM may not live to the end).
save() {
	[ -d /run/results ] || return 0
	mkdir -p /run/results/e2e-pci
	cp $W/*.log $W/*.json $W/*.txt /run/results/e2e-pci/ 2>/dev/null
	return 0
}
skip() { n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n vhost-blk-pci: $1 # SKIP $2"; }
t() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1" "$(echo "${3:-}" | tr '\n' ' ' | cut -c1-400)"; fi; }
elapsed() { echo $(( $(date +%s) - T0 )); }
note() { echo "# [$(elapsed)s] $*"; echo "e2e-pci: $*" > /dev/kmsg 2>/dev/null; }

echo "TAP version 13"
echo "1..27"
for x in "$qemu" "$blkctl" "$kdir/vmlinuz" /bin/busybox "$backend" "$backend4k" /sbin/mke2fs \
	 /sbin/e2fsck; do
	if [ ! -e "$x" ]; then
		echo "# SKIP missing prerequisite $x"
		exit 4
	fi
done
if ! "$qemu" -L /usr/share/qemu -device help 2>/dev/null | grep -q '"vhost-blk-pci"'; then
	echo "# SKIP $qemu has no vhost-blk-pci device"
	exit 4
fi
# Data must survive for the read-back and the reboot: a memory-backed null_blk.
nb=$(basename "$(readlink -f "$backend")")
if [ -e /sys/kernel/config/nullb/$nb/memory_backed ] &&
   [ "$(cat /sys/kernel/config/nullb/$nb/memory_backed)" != 1 ]; then
	echo "# SKIP $backend is not memory-backed"
	exit 4
fi
nb4=$(basename "$(readlink -f "$backend4k")")
if [ -e /sys/kernel/config/nullb/$nb4/memory_backed ] &&
   [ "$(cat /sys/kernel/config/nullb/$nb4/memory_backed)" != 1 ]; then
	echo "# SKIP $backend4k is not memory-backed"
	exit 4
fi
dmesg_start=$(dmesg | wc -l)
qpid_a= qpid_b=
cleanup() {
	for p in $qpid_a $qpid_b; do kill -0 $p 2>/dev/null && kill $p; done
	for p in $qpid_a $qpid_b; do wait $p 2>/dev/null; done
}
trap cleanup EXIT

# --- helpers -------------------------------------------------------------------
# QMP client: qmp.py (see there).
# A failed check in python prints one line, not a traceback.
mkdir -p $W/py
cat > $W/py/sitecustomize.py <<'PY'
import sys
def hook(t, v, tb):
    print("# python: %s: %s" % (t.__name__, str(v)[:400]))
sys.excepthook = hook
PY
export PYTHONPATH=$W/py
qmp() { python3 "$here/qmp.py" "$@"; }
# vhost-blkctl on the running QEMU's disk (the admin's view).
ctl() { local sub=$1; shift; "$blkctl" $sub --qmp "$qmp_cli" --id $DEV "$@"; }
# The device's own view (of DEVICE, default the first disk).
xq() { qmp "$qmp_test" x-query-vhost-blk "{\"id\": \"${1:-$DEV}\"}"; }

deadline=$(( $(date +%s) + timeout ))
count() { local k; k=$(grep -c -- "$2" "$1" 2>/dev/null); echo "${k:-0}"; }
wait_log() {	# wait_log PATTERN [COUNT]: COUNT lines of the guest console match
	while [ "$(count "$glog" "$1")" -lt "${2:-1}" ]; do
		kill -0 $qpid 2>/dev/null || { echo "# QEMU exited: $(tail -3 $W/qemu-*.log | tr '\n' ' ')"; return 1; }
		[ "$(date +%s)" -lt $deadline ] || { echo "# timed out waiting for '$1'"; return 1; }
		grep -q 'Kernel panic' "$glog" 2>/dev/null && { echo "# guest kernel panic"; return 1; }
		sleep 0.5
	done
}
rounds() { count "$glog" "E2E: $1 $2 round"; }
wait_rounds() {	# wait_rounds TAG K: each queue's loop does K more rounds
	r0=$(( $(rounds $1 0) + $2 )) r1=$(( $(rounds $1 1) + $2 ))
	wait_log "E2E: $1 0 round" $r0 && wait_log "E2E: $1 1 round" $r1
}
# A guest check by name: 0 if it printed ok and no fail.
gcheck() {
	local c
	for c in "$@"; do
		grep -q "^E2E-CHECK ok $c\\b" "$glog" && ! grep -q "^E2E-CHECK fail $c\\b" "$glog" || return 1
	done
}
gdetail() { for c in "$@"; do grep "^E2E-CHECK [a-z]* $c\\b" "$glog"; done | tr '\n' ' '; }
cmd() {	# cmd WORD: the guest polls the control sector for "CMD WORD"
	printf 'CMD %s\n' "$1" | dd of="$backend" bs=512 seek=$CTL count=1 conv=sync,notrunc oflag=direct status=none
}
stop_pid() {	# stop_pid PID: a QEMU told to quit; killed if it is still there after 30 s
	local i=0
	while kill -0 $1 2>/dev/null && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
	kill $1 2>/dev/null
	wait $1 2>/dev/null
}
wait_sock() {	# wait_sock PATH: QEMU $qpid creates it (3 min at most)
	local i=0
	while [ ! -S "$1" ] && [ $i -lt 1800 ] && kill -0 $qpid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
	[ -S "$1" ]
}

# Per-vq request deltas between two `status --json` snapshots; every vq
# must have moved, and every worker that serves a vq.
moved() {	# moved OLD NEW
	python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
tot = lambda v: sum(v["requests"].values())
d = [tot(y) - tot(x) for x, y in zip(a["vqs"], b["vqs"])]
w = {}
for v, dv in zip(b["vqs"], d):
    w[v["worker"]] = w.get(v["worker"], 0) + dv
print("# requests per vq +%s, per worker %s" % (d, w))
assert all(x > 0 for x in d), "a vq did not move"
assert all(x > 0 for x in w.values()), "a worker did not move"
PY
}

# --- the nested guest's initramfs ------------------------------------------------
note "building the guest initramfs"
ir=$W/ir
mkdir -p $ir/bin $ir/sbin $ir/mods $ir/proc $ir/sys $ir/dev $ir/tmp $ir/mnt $ir/lib64 \
	$ir/lib/x86_64-linux-gnu
cp /bin/busybox $ir/bin/busybox
cp "$here/guest-init-pci.sh" $ir/init
chmod +x $ir/init
: > $ir/mods/order
for m in drivers/block/virtio_blk lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic \
	 lib/libcrc32c fs/ext4/ext4; do
	f=$(ls "$kdir/modules/kernel/$m.ko"* 2>/dev/null | head -1)
	[ -n "$f" ] || continue
	b=$(basename "$m")
	case $f in *.xz) xz -dc "$f" > $ir/mods/$b.ko ;; *) cp "$f" $ir/mods/$b.ko ;; esac
	echo "$b" >> $ir/mods/order
done
for p in /sbin/mke2fs /sbin/e2fsck; do
	cp "$p" $ir/sbin/
	for l in $(ldd "$p" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		cp -L "$l" "$ir$l" 2>/dev/null || { mkdir -p "$ir$(dirname "$l")"; cp -L "$l" "$ir$l"; }
	done
done
(cd $ir && find . | cpio -o -H newc --quiet | gzip -1) > $W/initrd.gz
t "guest initramfs built ($(du -k $W/initrd.gz | cut -f1) KiB)" $?

# The backend: a prefill where boot 1 writes its pattern (so a read-back
# that returned old data fails), marker and control sectors cleared.
dd if=/dev/urandom of=$W/prefill bs=64k count=$PATN status=none
prefill=$(md5sum < $W/prefill | cut -d' ' -f1)
dd if=$W/prefill of="$backend" bs=64k seek=$PAT oflag=direct conv=notrunc status=none &&
	dd if=/dev/zero of="$backend" bs=512 seek=$MARK count=16 oflag=direct conv=notrunc status=none
# The 512e disk's first 64 KiB: a prefill around the sector the guest writes.
dd if=/dev/urandom of=$W/e512pre bs=64k count=1 status=none
e512pre=$(md5sum < $W/e512pre | cut -d' ' -f1)
dd if=$W/e512pre of="$backend4k" bs=64k oflag=direct conv=notrunc status=none
size_bytes=$(blockdev --getsize64 "$backend" 2>/dev/null || stat -L -c %s "$backend")
sectors=$((size_bytes / 512))

# --- QEMU ----------------------------------------------------------------------------
# -cpu qemu64,-cx16: see vhost_user_blk.sh.  No -no-reboot: reboot -f resets the
# machine and the guest boots again on the same device.
start_qemu() {	# start_qemu TAG [ARGS...]: sets qpid, glog, qmp_cli, qmp_test
	tag=$1
	shift
	"$qemu" -L /usr/share/qemu -accel tcg,tb-size=64,thread=single -cpu qemu64,-cx16 -smp 2 -m 256M -machine q35 \
		-device vhost-blk-pci,id=$DEV,drive=$backend,num-queues=$QUEUES,num-workers=2,serial=$SERIAL \
		-device vhost-blk-pci,id=vblk1,drive=$backend4k,logical_block_size=512,serial=$SERIAL512 \
		-kernel "$kdir/vmlinuz" -initrd $W/initrd.gz \
		-append "console=ttyS0 quiet loglevel=5 panic=-1 mitigations=off e2e.sectors=$sectors e2e.serial=$SERIAL e2e.queues=$QUEUES e2e.prefill=$prefill e2e.serial512=$SERIAL512 e2e.e512=$e512pre" \
		-nographic -nodefaults -serial file:$W/guest-$tag.log -monitor none \
		-qmp unix:$W/qmp-$tag.sock,server=on,wait=off \
		-qmp unix:$W/qmpt-$tag.sock,server=on,wait=off \
		"$@" > $W/qemu-$tag.log 2>&1 &
	qpid=$!
	glog=$W/guest-$tag.log
	qmp_cli=$W/qmp-$tag.sock
	qmp_test=$W/qmpt-$tag.sock
}

note "booting the nested guest (TCG) on vhost-blk-pci"
start_qemu a
qpid_a=$qpid
wait_log "E2E: booted 1"
t "QEMU starts with -device vhost-blk-pci and the nested guest boots" $? \
	"$(tail -5 $W/qemu-a.log $glog)"
note "guest booted"

xq > $W/xq-boot1.json 2>&1
python3 - $W/xq-boot1.json "$backend" $size_bytes $SERIAL <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["id"] == "vblk0" and s["drive"] == sys.argv[2], s
assert s["size"] == int(sys.argv[3]) and s["serial"] == sys.argv[4], s
assert s["queues"] == 2 and len(s["vqs"]) == 2 and not s["read-only"], s
assert s["started"] and all(v["started"] for v in s["vqs"]), s
assert len(s["workers"]) == 2, s["workers"]
PY
t "QMP x-query-vhost-blk: started, drive, size, serial, 2 queues, 2 workers" $? "$(head -c 400 $W/xq-boot1.json)"

ctl status --json > $W/status-boot1.json 2>&1
python3 - $W/status-boot1.json "$backend" $size_bytes $SERIAL <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["backend"] == sys.argv[2] and s["size_bytes"] == int(sys.argv[3]), s
assert s["serial"] == sys.argv[4] and s["queues"] == 2, s
assert len(s["workers"]) == 2 and len({w["kernel_id"] for w in s["workers"]}) == 2, s["workers"]
assert [v["worker"] for v in s["vqs"]] == [0, 1], s["vqs"]
assert all(v["started"] for v in s["vqs"]), s["vqs"]
PY
t "vhost-blkctl status --qmp: backend, size, serial, each vq on its own worker" $? "$(head -c 400 $W/status-boot1.json)"

python3 - $W/status-boot1.json $W/xq-boot1.json <<'PY'
import json, sys
s, x = (json.load(open(p)) for p in sys.argv[1:3])
tids = [w["tid"] for w in s["workers"]]
print("# worker threads %s, CPUs %s" % (tids, [w["cpus"] for w in s["workers"]]))
assert all(isinstance(t, int) and t > 0 for t in tids) and len(set(tids)) == 2, s["workers"]
assert all(w["cpus"] for w in s["workers"]), s["workers"]
assert s["write_cache"] in ("write-back", "write-through"), s["write_cache"]
for v in s["vqs"]:
    for k in ("poll_us", "poll_hits", "poll_misses"):
        assert isinstance(v[k], int), (k, v)
assert x["backend-block-size"] == x["block-size"] == 512, x
PY
t "status --qmp names each worker's thread and CPUs, the write cache and the rings' polling" $? \
	"$(head -c 400 $W/status-boot1.json)"

wait_log "E2E: boot1 checks done"
gcheck vda_present vda_size vda_serial vda_queues
t "guest sees the disk's size, serial and 2 queues" $? "$(gdetail vda_size vda_serial vda_queues)"
gcheck prefill_read pattern_differs pattern_write pattern_readback
t "guest reads the host's prefill, writes a different pattern, reads it back" $? \
	"$(gdetail prefill_read pattern_differs pattern_write pattern_readback)"
gcheck mkfs_ext4 fsck_clean file_readback fsck_after_write
t "mkfs.ext4 + fsck + file read-back in the guest" $? \
	"$(gdetail mkfs_ext4 fsck_clean file_readback fsck_after_write)"
gcheck e512_sizes e512_prefill e512_write e512_readback
t "512e disk (logical_block_size=512 on 4 KiB): guest sees 512/4096, a 512-byte write reads back, its 4 KiB block's other sectors keep the prefill" $? \
	"$(gdetail e512_sizes e512_prefill e512_write e512_readback)"

# --- reboot ----------------------------------------------------------------------
starts1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["starts"])' $W/xq-boot1.json 2>/dev/null)
note "guest reboots"
wait_log "E2E: booted 2"
rc=$?
xq > $W/xq-boot2.json 2>&1
python3 - $W/xq-boot2.json "${starts1:-0}" <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
print("# starts: boot 1 %s, boot 2 %d" % (sys.argv[2], s["starts"]))
assert s["started"] and all(v["started"] for v in s["vqs"]), s
assert s["starts"] > int(sys.argv[2]), s
PY
[ "$(count "$glog" "E2E: booted")" = 2 ] || rc=1
t "guest reboot -f: QEMU resets, the device stops and restarts, the guest boots again" $rc \
	"$(grep 'E2E: booted' $glog | tr '\n' ' ') $(head -c 300 $W/xq-boot2.json)"
note "second boot"
wait_log "E2E: boot2 checks done"
gcheck vda_size boot2_pattern boot2_fsck boot2_file marker_write2 && [ "$(count "$glog" "E2E-CHECK ok vda_size")" = 2 ]
t "after the reboot the first boot's data is there (pattern, fsck clean, ext4 file)" $? \
	"$(gdetail vda_size boot2_pattern boot2_fsck boot2_file marker_write2)"
# Counters only while started: the guest rebooted right after its 512e
# write, and the device keeps the kernel's counters across the restart.
xq vblk1 > $W/xq-e512.json 2>&1
python3 - $W/xq-e512.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rmw = sum(v["rmw"] for v in s["vqs"])
print("# 512e: block-size %d on %d, rmw %d" % (s["block-size"], s["backend-block-size"], rmw))
assert s["block-size"] == 512 and s["backend-block-size"] == 4096, s
assert rmw > 0, s["vqs"]
PY
t "512e disk: x-query-vhost-blk says 512 on 4096 and counts the kernel's read-modify-writes" $? \
	"$(head -c 400 $W/xq-e512.json)"

# --- worker re-mapping while the guest does I/O on both queues -----------------
wait_log "E2E: io1 start"
note "guest I/O running: re-mapping workers"
ctl status --json > $W/s0.json 2>&1
wait_rounds io1 2
ctl status --json > $W/s1.json 2>&1
moved $W/s0.json $W/s1.json
t "guest I/O on both queues moves the requests of both workers" $? "$(head -c 300 $W/s1.json)"

rc=0
ctl assign --vq 1 --worker 0 --json > $W/s2.json 2>&1 || rc=1
python3 - $W/s2.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
v = s["vqs"]
assert v[1]["worker"] == 0 and v[0]["worker_id"] == v[1]["worker_id"], v
w = {x["index"]: sorted(x["vqs"]) for x in s["workers"]}
assert w[0] == [0, 1] and not any(w[i] for i in w if i != 0), s["workers"]
PY
wait_rounds io1 2 || rc=1
ctl status --json > $W/s3.json 2>&1
moved $W/s2.json $W/s3.json || rc=1
t "assign --qmp --vq 1 --worker 0 moves vq 1 live, worker 0 serves both vqs" $rc "$(head -c 300 $W/s2.json)"

rc=0
ctl assign --vq 0 --worker 1 --json > $W/s4.json 2>&1 || rc=1
python3 - $W/s4.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
v = s["vqs"]
assert v[0]["worker"] == 1 and v[1]["worker"] == 0 and v[0]["worker_id"] != v[1]["worker_id"], v
w = {x["index"]: sorted(x["vqs"]) for x in s["workers"]}
assert w[0] == [1] and w[1] == [0], s["workers"]
assert s["policy"] == "custom", s["policy"]
PY
wait_rounds io1 2 || rc=1
ctl status --json > $W/s5.json 2>&1
moved $W/s4.json $W/s5.json || rc=1
xq > $W/xq-swapped.json 2>&1
python3 - $W/xq-swapped.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert [v["worker"] for v in s["vqs"]] == [1, 0], s["vqs"]
PY
t "assign --vq 0 --worker 1: swapped map in status and x-query-vhost-blk, both workers serve I/O" $rc \
	"$(head -c 300 $W/s4.json)"

rc=0
ctl workers --count 1 --json > $W/s6.json 2>&1 || rc=1
python3 - $W/s6.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["workers"]) == 1 and {v["worker"] for v in s["vqs"]} == {0}, s
PY
wait_rounds io1 2 || rc=1
ctl workers --count 2 --json > $W/s7.json 2>&1 || rc=1
python3 - $W/s7.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["workers"]) == 2, s["workers"]
assert len({v["worker_id"] for v in s["vqs"]}) == 2, s["vqs"]
PY
wait_rounds io1 2 || rc=1
ctl status --json > $W/s8.json 2>&1
moved $W/s7.json $W/s8.json || rc=1
t "workers --qmp --count 1 then --count 2: one worker, then one per vq, I/O goes on" $rc \
	"$(head -c 200 $W/s6.json) $(head -c 200 $W/s7.json)"

# Worker placement: QEMU names the threads, vhost-blkctl places them.
rc=0
ctl workers --cpus 0 --worker 1 --json > $W/s9.json 2>&1 || rc=1
tid1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"][1]["tid"])' $W/s9.json 2>/dev/null)
python3 - $W/s9.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["workers"][1]["cpus"] == "0", s["workers"]
PY
allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$qpid/task/${tid1:-0}/status 2>/dev/null)
[ "$allowed" = 0 ] || rc=1
wait_rounds io1 2 || rc=1
ctl workers --cpus 0-1 --json > $W/s10.json 2>&1 || rc=1
python3 - $W/s10.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert [w["cpus"] for w in s["workers"]] == ["0-1", "0-1"], s["workers"]
PY
t "workers --qmp --cpus 0 --worker 1 pins that worker's QEMU thread (Cpus_allowed_list $allowed), I/O goes on, --cpus 0-1 undoes it" \
	$rc "$(head -c 300 $W/s9.json)"

ctl assign --vq 7 --worker 0 > /dev/null 2> $W/assign-bad.txt
[ $? = 5 ] && grep -q 7 $W/assign-bad.txt && ! grep -q 'has no' $W/assign-bad.txt
t "assign --qmp to a vq out of range is refused with exit status 5" $? "$(cat $W/assign-bad.txt)"

cmd io1-stop
wait_log "E2E: io1 checks done"
gcheck io1_verify
t "guest I/O under live re-mapping: every chunk written reads back" $? "$(gdetail io1_verify)"

# --- QMP stop / cont while the guest does I/O ----------------------------------------
wait_log "E2E: io2 start" && wait_rounds io2 2
note "guest I/O running: stop"
rc=0
qmp $qmp_test stop > $W/stop.json 2>&1 || rc=1
qmp $qmp_test query-status > $W/qs-stop.json 2>&1
grep -q '"status": "paused"' $W/qs-stop.json || rc=1
xq > $W/xq-stop1.json 2>&1
lines1=$(wc -l < $glog)
sleep 2	# nothing may move while stopped: the counters are compared after a while
xq > $W/xq-stop2.json 2>&1
lines2=$(wc -l < $glog)
python3 - $W/xq-stop1.json $W/xq-stop2.json <<'PY' || rc=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert not a["started"] and not any(v["started"] for v in a["vqs"]), a
assert all(v["inflight"] == 0 for v in a["vqs"] + b["vqs"]), [v["inflight"] for v in a["vqs"]]
assert [v["requests"] for v in a["vqs"]] == [v["requests"] for v in b["vqs"]], "counters moved while stopped"
PY
[ "$lines1" = "$lines2" ] || rc=1
t "QMP stop: VM paused, device stopped, nothing in flight, no progress" $rc \
	"$(cat $W/qs-stop.json) $(head -c 300 $W/xq-stop1.json) lines $lines1/$lines2"

rc=0
qmp $qmp_test cont > $W/cont.json 2>&1 || rc=1
qmp $qmp_test query-status > $W/qs-cont.json 2>&1
grep -q '"status": "running"' $W/qs-cont.json || rc=1
xq > $W/xq-cont.json 2>&1
python3 - $W/xq-cont.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["started"] and all(v["started"] for v in s["vqs"]), s
PY
wait_rounds io2 2 || rc=1
t "QMP cont: device started again, guest I/O continues" $rc "$(cat $W/qs-cont.json) $(head -c 300 $W/xq-cont.json)"

# --- live migration to a second QEMU on the same drive, I/O running -----------------
note "guest I/O running: migrating"
qmp_src=$qmp_test
start_qemu b -incoming unix:$W/mig.sock
qpid_b=$qpid
migrated=0
if ! wait_sock $qmp_test || ! wait_sock $W/mig.sock; then
	notok "live migration to a second QEMU with guest I/O running" "destination did not start: $(tail -3 $W/qemu-b.log)"
else
	qmp $qmp_src migrate-set-parameters '{"max-bandwidth": 1073741824}' > /dev/null 2>&1
	if ! qmp $qmp_src migrate "{\"uri\": \"unix:$W/mig.sock\"}" > $W/migrate.json 2>&1; then
		if grep -qi 'block\|not supported\|migrat' $W/migrate.json; then
			skip "live migration to a second QEMU with guest I/O running" "$(head -c 200 $W/migrate.json)"
		else
			notok "live migration to a second QEMU with guest I/O running" "$(cat $W/migrate.json)"
		fi
	else
		qmp $qmp_src --wait-migrate 600 > $W/migrate-done.json 2>&1
		rc=$?
		qmp $qmp_test query-status > $W/qs-dst.json 2>&1
		grep -q '"status": "running"' $W/qs-dst.json || rc=1
		qmp $qmp_src query-status > $W/qs-src.json 2>&1
		grep -q '"status": "postmigrate"' $W/qs-src.json || rc=1
		t "live migration to a second QEMU with guest I/O running" $rc \
			"$(head -c 300 $W/migrate-done.json) $(cat $W/qs-dst.json $W/qs-src.json)"
		[ $rc = 0 ] && migrated=1
	fi
fi
if [ $migrated = 1 ]; then
	qmp $qmp_src quit > /dev/null 2>&1
	stop_pid $qpid_a
	qpid_a=
	rc=0
	xq > $W/xq-dst.json 2>&1
	python3 - $W/xq-dst.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["started"] and all(v["started"] for v in s["vqs"]), s
PY
	wait_rounds io2 2 || rc=1
	ctl status --json > $W/s-dst.json 2>&1
	python3 - $W/s-dst.json <<'PY' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
tot = [sum(v["requests"].values()) for v in s["vqs"]]
print("# destination requests per vq %s" % tot)
assert all(x > 0 for x in tot), tot
PY
	t "after migration the guest's I/O runs on the destination's device" $rc \
		"$(head -c 300 $W/xq-dst.json) $(tail -2 $glog)"
else
	# The guest goes on on the source.
	[ -n "$qpid_b" ] && { qmp $qmp_test quit > /dev/null 2>&1; stop_pid $qpid_b; }
	qpid_b=
	qpid=$qpid_a glog=$W/guest-a.log qmp_cli=$W/qmp-a.sock qmp_test=$W/qmpt-a.sock
	skip "after migration the guest's I/O runs on the destination's device" "no migration"
fi

cmd io2-stop
wait_log "E2E: io2 checks done"
gcheck io2_verify
t "every chunk written across stop/cont and migration reads back in the guest" $? "$(gdetail io2_verify)"

# --- the end ----------------------------------------------------------------------
wait_log "E2E-RESULT:"
i=0
while kill -0 $qpid 2>/dev/null && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
kill -0 $qpid 2>/dev/null && { echo "# QEMU still running after the guest's poweroff"; kill $qpid; }
wait $qpid
qrc=$?
[ $migrated = 1 ] && qpid_b= || qpid_a=
cat $W/guest-*.log | grep '^E2E' | grep -v ' round ' | sed 's/^/# guest: /'
grep -q "E2E-RESULT: PASS" $glog && [ $qrc = 0 ]
t "guest checks all pass, the guest powers off, QEMU exits 0" $? \
	"qemu exit $qrc; $(cat $W/guest-*.log | grep -E 'E2E-CHECK fail|E2E-RESULT' | tr '\n' ' ')"

# Straight from null_blk: the guest's last pattern and I/O regions.
rc=0
want_pat=$(grep 'E2E: pattern md5=' $glog | tail -1 | sed 's/.*md5=//; s/\r$//')
have_pat=$(dd if="$backend" bs=64k skip=$PAT count=$PATN iflag=direct status=none | md5sum | cut -d' ' -f1)
first_pat=$(cat $W/guest-a.log | grep 'E2E: pattern md5=' | head -1 | sed 's/.*md5=//; s/\r$//')
[ -n "$want_pat" ] && [ "$want_pat" = "$have_pat" ] && [ "$first_pat" = "$have_pat" ] &&
	[ "$have_pat" != "$prefill" ] || rc=1
det="pattern host=$have_pat guest=$want_pat boot1=$first_pat"
for p in "io1 $IO1" "io2 $IO2"; do
	set -- $p
	want=$(cat $W/guest-*.log | grep "E2E: $1 region md5=" | tail -1 | sed 's/.*md5=//; s/\r$//')
	have=$(dd if="$backend" bs=64k skip=$2 count=$((2 * NCH)) iflag=direct status=none | md5sum | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$have" ] || rc=1
	det="$det $1 host=$have guest=$want"
done
want=$(cat $W/guest-a.log | grep 'E2E: e512 md5=' | tail -1 | sed 's/.*md5=//; s/\r$//')
have=$(dd if="$backend4k" bs=64k count=1 iflag=direct status=none | md5sum | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$have" ] && [ "$have" != "$e512pre" ] || rc=1
det="$det e512 host=$have guest=$want"
t "the backend holds what the guest wrote (host O_DIRECT read of null_blk)" $rc "$det"

dmesg | tail -n +$((dmesg_start + 1)) > $W/dmesg.txt
pat='WARNING:|BUG:|Oops|Call Trace|hung task|blocked for more than|KASAN|general protection fault|kernel BUG'
! grep -E "$pat" $W/dmesg.txt > $W/dmesg-bad.txt
t "no WARNING/BUG/Oops in the VM's dmesg during the run" $? "$(head -3 $W/dmesg-bad.txt)"

sed 's/^/# qemu: /' $W/qemu-*.log | tail -20
save
note "done: $failed failed"
echo "# Totals: pass:$((n - failed - skipped)) fail:$failed xfail:0 xpass:0 skip:$skipped error:0"
[ $failed = 0 ]
st=$?
trap - EXIT
cleanup
exit $st
