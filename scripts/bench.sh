#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: the benchmark matrix (tests/bench/matrix.sh) in the test VM,
# then the report: build/bench/{results.json,table.md,iops-by-depth.png}.
#   bench.sh [--build DIR] [--kver KVER] [-- matrix.sh args]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
eval "$(sed -n 's/^\([A-Z_]*\) ?= \(.*\)$/\1="\2"/p' "$top/scripts/kernel-version.mk")"
build=$top/build
while (($#)); do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--kver) KVER=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
bash "$top/tests/vm/run.sh" --build "$build" --kver "$KVER" --timeout 1500 \
	script tests/bench/matrix.sh "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
dir=$(sed -n 's/^run.sh: results in //p' "$log" | tail -1)
[ -n "$dir" ] && [ -s "$dir/bench.jsonl" ] || { echo "bench.sh: no results" >&2; exit 1; }
# Debian's python3 (python3-matplotlib), not whatever python3 is first in PATH.
/usr/bin/python3 "$top/scripts/bench-report.py" "$dir" "$build/bench"
cp "$dir/bench.jsonl" "$dir/bench-env.json" "$build/bench/"
echo "bench.sh: $build/bench/results.json, table.md, iops-by-depth.png (raw cells: $dir)"
exit $rc
