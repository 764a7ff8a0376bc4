#!/usr/bin/env bash
# The systemd unit as the vhost-blkctl package installs it, checked on the
# host without a running systemd: systemd-analyze verify (unit syntax, every
# directive known, ExecStart= executable, dependencies resolvable) and
# systemd-analyze security (the hardening the unit promises) in a root made
# of the package's files plus the host's system units.  KTAP.
#
#   unit_verify.sh [--build DIR]
#
# Exit status: 0 all passed, 1 a check failed, 4 a prerequisite is missing.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
while (($#)); do
	case "$1" in
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR]" >&2; exit 2 ;;
	esac
done

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1${2:+ # $2}"; }
t() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1" "${3:-}"; fi; }

echo "TAP version 13"
echo "1..4"
deb=$(ls "$build"/deb/vhost-blkctl_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "# SKIP no vhost-blkctl .deb in $build/deb (make deb)"; exit 4; }
command -v systemd-analyze >/dev/null || { echo "# SKIP no systemd-analyze"; exit 4; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
unit=$root/lib/systemd/system/vhost-blkctl@.service
# The targets and slices the unit's dependencies name.
cp -an /lib/systemd/system/. "$root/lib/systemd/system/"

# 1. The packaged unit is the tree's.
cmp -s "$unit" "$top/systemd/vhost-blkctl@.service"
t "packaged_unit_is_systemd_vhost_blkctl@.service" $?

# 2. systemd-analyze verify: exit 0 and not a word (unknown directives are
# only warnings).
out=$(systemd-analyze verify --man=no --root="$root" vhost-blkctl@disk0.service 2>&1)
rc=$?
[ $rc = 0 ] && [ -z "$out" ]
t "systemd_analyze_verify_is_silent" $? "rc $rc: $(echo "$out" | head -3 | paste -sd' ')"

# 3. Readiness through sd_notify, the runtime directory, the config file.
props=$(grep -E '^(Type|EnvironmentFile|RuntimeDirectory|ReadWritePaths)=' "$unit" | sort | paste -sd' ')
[ "$props" = "EnvironmentFile=/etc/vhost-blk/%i.conf ReadWritePaths=/run/vhost-blk RuntimeDirectory=vhost-blk/%i Type=notify" ]
t "unit_is_type_notify_reading_etc_vhost_blk_conf" $? "$props"

# 4. The hardening, as systemd rates it (exposure 0.0 safe .. 10.0 unsafe).
sec=$(systemd-analyze security --offline=yes --root="$root" vhost-blkctl@disk0.service 2>&1 |
	sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
echo "# systemd-analyze security: exposure ${sec:-unknown}"
[ -n "$sec" ] && awk -v s="$sec" 'BEGIN { exit !(s <= 3.0) }'
t "hardening_exposure_at_most_3.0" $? "exposure ${sec:-unknown}"
[ $failed = 0 ]
