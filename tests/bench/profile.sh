#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A call-graph CPU profile of one benchmark cell, INSIDE the test VM:
#   tests/vm/run.sh script tests/bench/profile.sh [vblk-bench args...]
# e.g. ... profile.sh --target kernel --backend /dev/nullbench --depth 1
# perf samples every CPU (cpu-clock: TCG has no PMU) with call graphs while
# vblk-bench runs; the report (perf-report.txt: by symbol, flat and with
# callers) and perf.data go to the results directory.
set -u
bench=$BUILD/cmake/tools/vblk-bench/vblk-bench
res=/run/results
. "$REPO/tests/bench/backends.sh"
[ $# -gt 0 ] || set -- --target kernel --backend /dev/nullbench --depth 1
echo 0 > /proc/sys/kernel/kptr_restrict
echo -1 > /proc/sys/kernel/perf_event_paranoid
perf record -q -e cpu-clock -F 2000 -g -a -o /run/perf.data -- \
	"$bench" --seconds 5 --runs 1 --warmup 1 "$@"
rc=$?
perf report -i /run/perf.data --stdio --no-children --sort sym --percent-limit 0.7 \
	-g none > $res/perf-report.txt 2>/dev/null
perf report -i /run/perf.data --stdio --no-children --sort comm,sym --percent-limit 1.5 \
	-g caller,0.5,callee --max-stack 12 > $res/perf-callers.txt 2>/dev/null
cp /run/perf.data $res/ 2>/dev/null
head -60 $res/perf-report.txt | grep -v '^$'
exit $rc
