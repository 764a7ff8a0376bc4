#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Everything CI runs (make check): unit tests, then the in-VM suites.
# The last line is "N passed, N failed"; the exit status is 0 only if
# nothing failed.  A VM-level failure (dmesg warnings, rmmod failure, crash,
# timeout) counts as one failed test of its own.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/\1="\2"/p' "$top/scripts/kernel-version.mk")"
build=$top/build
while (($#)); do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--kver) KVER=$2; shift 2 ;;
	*) echo "check.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

passed=0 failed=0 skipped=0
failures=()
retried=()

# 1. GoogleTest unit tests (ctest).
out=$(cd "$build/cmake" && ctest --output-on-failure 2>&1)
echo "$out"
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' <<<"$out" | tail -1)
if [ -n "$summary" ]; then
	nfail=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")
	ntotal=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
	passed=$((passed + ntotal - nfail))
	failed=$((failed + nfail))
	((nfail)) && failures+=("unit: $nfail ctest test(s)")
else
	failed=$((failed + 1))
	failures+=("unit: ctest did not run")
fi

# The same GoogleTest binaries built with ASan+UBSan, any report fatal (make
# sanitize), each run once (~7 s; under ctest, one process per test, 190 s).
gtest_suite() {	# gtest_suite NAME BINARY...
	local name=$1 bin out rc ran nfail start=$SECONDS
	shift
	echo "=== unit suite: $name"
	for bin in "$@"; do
		out=$("$bin" --gtest_brief=1 2>&1)
		rc=$?
		echo "$out"
		ran=$(sed -nE 's/^\[==========\] ([0-9]+) tests? from .* ran\..*/\1/p' <<<"$out")
		nfail=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below:.*/\1/p' <<<"$out")
		nfail=${nfail:-0}
		if [ -z "$ran" ]; then
			# A sanitizer report ends the run before gtest's summary.
			failed=$((failed + 1))
			failures+=("$name: $(basename "$bin") exited with status $rc before its summary")
			continue
		fi
		passed=$((passed + ran - nfail))
		failed=$((failed + nfail))
		((nfail)) && failures+=("$name: $nfail test(s) of $(basename "$bin")")
		if ((rc != 0 && nfail == 0)); then
			failed=$((failed + 1))
			failures+=("$name: $(basename "$bin") exited with status $rc")
		fi
	done
	echo "=== unit suite: $name: $((SECONDS - start)) s"
}
gtest_suite unit-asan "$build/cmake-sanitize/tests/unit/vblk_unit_tests" \
	"$build/cmake-sanitize/tools/vhost-blkctl/tests/vhost_blkctl_tests"

# Counts a KTAP log's test lines into the totals; sets notok.
count_ktap() {	# count_ktap NAME LOG
	local okn skip
	okn=$(grep -cE '^ok [0-9]+' "$2")
	skip=$(grep -cE '^ok [0-9]+ .*# SKIP' "$2")
	notok=$(grep -cE '^not ok [0-9]+' "$2")
	passed=$((passed + okn - skip))
	skipped=$((skipped + skip))
	failed=$((failed + notok))
	((notok)) && failures+=("$1: $notok test(s): $(grep -E '^not ok' "$2" | sed -E 's/^not ok [0-9]+ //; s/ # .*//' | paste -sd ';')")
}

# 2. Host-side KTAP suites.  libvirt checks the documented domain XML and
# that its QEMU argv for the disk is what the e2e runs (~3-9 s, no VM).
host_suite() {	# host_suite NAME SCRIPT [ARGS]: exit 4 is a whole-suite SKIP
	local name=$1 log rc notok
	shift
	log=$(mktemp)
	echo "=== host suite: $name"
	bash "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	count_ktap "$name" "$log"
	if ((rc == 4)); then
		skipped=$((skipped + 1))
	elif ((rc != 0 && notok == 0)); then
		failed=$((failed + 1))
		failures+=("$name: exit status $rc without a failing test line")
	fi
	rm -f "$log"
}
host_suite libvirt "$top/tests/libvirt/domxml.sh"
# libFuzzer on what a vhost-user frontend sends to serve (make sanitize):
# the seed corpus, then FUZZ_SECONDS (default 30) of mutations.
host_suite fuzz "$top/scripts/fuzz.sh" --build "$build" --seconds "${FUZZ_SECONDS:-30}"
# make install's and dkms's module build for the pinned kernel from the files
# dkms.conf lists, and vhost-header.sh's refusals (one module build, ~20 s on
# an idle 2-core machine; nothing is loaded on the host).
host_suite install-host "$top/tests/install/host_build.sh" --build "$build" --kver "$KVER"
# The packaged systemd unit: systemd-analyze verify and security (~1 s).
host_suite systemd-unit "$top/tests/install/unit_verify.sh" --build "$build"

# 3. In-VM suites: KTAP streams, judged per test line plus the VM verdict.
# The EFLAGS of a nested guest's oops that no x86 CPU can produce (a
# reserved bit set: 3, 5, 15, 22-63, or bit 1 clear), in the consoles the
# e2e suite saved under run.sh's results directory.  Such a value is pushed
# by the emulating CPU, not made by a device: the TCG-inside-TCG corruption
# of issue 11 (garbage EFLAGS in every one of its nested crashes).
nested_tcg_corruption() {
	local dir f v
	dir=$(sed -n 's/^run.sh: results in //p' "$1" | tail -1)
	[ -n "$dir" ] || return 1
	for f in "$dir"/e2e/guest*.log; do
		[ -f "$f" ] || continue
		for v in $(grep -ao 'EFLAGS: [0-9a-f]*' "$f" | awk '{print $2}'); do
			if (( (0x$v & ~0x3f7fd7) != 0 || (0x$v & 2) == 0 )); then
				echo "$f: EFLAGS $v"
				return 0
			fi
		done
	done
	return 1
}

# The VM's own kernel died before the suite started, with vhost_blk not
# loaded: the stock kernel's boot under TCG (an "Oops: int3" in
# sched_clock_cpu at 2 s, while the kernel patches its text, twice in
# several hundred boots here).  Prints the Oops line.
boot_crash() {
	local dir console
	dir=$(sed -n 's/^run.sh: results in //p' "$1" | tail -1)
	console=$dir/console.log
	[ -n "$dir" ] && [ -f "$console" ] || return 1
	! grep -q '=== SUITE START ===' "$console" || return 1
	! grep -a 'Modules linked in:' "$console" | grep -q vhost_blk || return 1
	grep -ao -m1 -E '(Oops|Kernel panic).*' "$console" | tr -d '\r'
}

# Either of the two above, said in one line.
emulator_crash() {
	local why
	if why=$(boot_crash "$1"); then
		echo "the VM's kernel died before the suite started, vhost_blk not loaded: $why"
	elif why=$(nested_tcg_corruption "$1"); then
		echo "the nested guest crashed with impossible registers, nested TCG corruption (issue 11): $why"
	else
		return 1
	fi
}

vm_suite() {
	local name=$1 log rc notok why
	shift
	log=$(mktemp)
	echo "=== vm suite: $name"
	bash "$top/tests/vm/run.sh" --build "$build" --kver "$KVER" "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# A nested guest killed by the emulator (above), or the VM's kernel
	# dying in its boot before vhost_blk is loaded, says nothing about
	# vhost-blk: run the suite once more and judge that run.  A second
	# such crash, or any other failure, fails as usual.
	if ((rc != 0)) && why=$(emulator_crash "$log"); then
		echo "# $name: $why: not a vhost-blk result; running $name again"
		retried+=("$name ($why)")
		bash "$top/tests/vm/run.sh" --build "$build" --kver "$KVER" "$@" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	fi
	count_ktap "$name" "$log"
	if ((rc != 0)); then
		# The suite's own failures are counted above; anything else
		# (dmesg, rmmod, crash, timeout) is a failure of its own.
		# (run.sh's last line, "FAIL: suite X in Ns", is the verdict,
		# not a reason.)
		reasons=$(grep 'run.sh: FAIL:' "$log" | grep -v 'exited with status' |
			  grep -vE 'run.sh: FAIL: suite [^ ]+ in [0-9]+s')
		if [ -n "$reasons" ]; then
			failed=$((failed + 1))
			failures+=("$name: $(head -1 <<<"$reasons")")
		elif ((notok == 0)); then
			failed=$((failed + 1))
			failures+=("$name: failed without a failing test line")
		fi
	fi
	rm -f "$log"
}
vm_suite selftests selftests
# The installed module in the VM: misc 10:247, its aliases, modules.devname,
# and the load on first open of /dev/vhost-blk after rmmod (one VM boot).
vm_suite install --timeout 300 script tests/install/module_install.sh
# make deb's packages installed in the VM (overlayfs root): DKMS builds the
# module there, modprobe, serve under a NOTIFY_SOCKET, dpkg -r.
vm_suite packages --module overlay --timeout 1500 script tests/install/packages.sh
# vhost-blkctl serving an unmodified nested QEMU guest (make e2e).
vm_suite e2e --timeout 1200 --nested-tcg script tests/e2e/vhost_user_blk.sh
# The project's QEMU device vhost-blk-pci (make qemu, make e2e-pci) is not
# built or run here: in the fresh-clone run of 2026-11-27 its nested guest
# died of a double fault in its first boot (issue 11's note), and building
# QEMU (~6 min) only to prove the series compiles does not fit CI's time
# next to the packaging, sanitizer and install suites.
# Every benchmark target once, briefly: the benchmark itself must work
# (numbers are make bench's job; nothing here judges them).
vm_suite bench-smoke --timeout 900 script tests/bench/matrix.sh --quick --runs 1 --warmup 0
# The same suites on the KASAN/lockdep/kmemleak kernel (make debug-kernel).
dbg=$build/kernel/$KVER-debug
if [ -f "$dbg/vmlinuz" ]; then
	vm_suite selftests-debug --kernel-dir "$dbg" --timeout 2400 selftests
else
	failed=$((failed + 1))
	failures+=("debug kernel missing: $dbg (make debug-kernel)")
fi

echo
((skipped)) && echo "$skipped skipped"
for r in "${retried[@]}"; do echo "RETRIED (emulator crash): $r"; done
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
((failed == 0))
