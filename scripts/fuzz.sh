#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs the libFuzzer targets (make sanitize: build/cmake-sanitize) on their
# checked-in seed corpus, then for --seconds of mutations each.  KTAP out,
# one test per target; a crash, a sanitizer report, an undocumented
# exception or a timeout fails it, and the input that did it is kept in
# build/fuzz/<target>/ with the command that replays it.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
seconds=30
while (($#)); do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

targets=(vhost_user_fuzz)
echo "KTAP version 1"
echo "1..${#targets[@]}"
n=0 rc=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	bin=$build/cmake-sanitize/tests/fuzz/$t
	seeds=$top/tests/fuzz/corpus/${t%_fuzz}
	out=$build/fuzz/$t
	if [ ! -x "$bin" ]; then
		echo "not ok $n $t # $bin missing (make sanitize)"
		rc=1
		continue
	fi
	# New inputs go to a scratch corpus; the seeds stay as checked in.
	rm -rf "$out" && mkdir -p "$out/corpus"
	start=$SECONDS
	"$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "$seeds" \
		>"$out/log" 2>&1
	status=$?
	runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$out/log")
	if ((status == 0)); then
		echo "ok $n $t # ${runs:-?} inputs in $((SECONDS - start)) s"
	else
		sed 's/^/# /' "$out/log" | tail -40
		for a in "$out"/crash-* "$out"/timeout-* "$out"/leak-* "$out"/oom-*; do
			[ -e "$a" ] && echo "# replay: $bin $a"
		done
		echo "not ok $n $t # exit status $status after $((SECONDS - start)) s"
		rc=1
	fi
done
exit $rc
