#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# libvirt checks the documented domain XML for a disk served by vhost-blkctl
# (Documentation/examples/libvirt-vhost-blk.xml): virt-xml-validate against
# libvirt's schema, then `virsh domxml-to-native qemu-argv`, whose
# vhost-user part (chardev, vhost-user-blk-pci, shared memfd RAM) must be
# what the e2e runs (tests/e2e/vhost_user_args.sh; compared by argv.py).
#
# Runs on the host, no VM: virsh uses an embedded QEMU driver
# (qemu:///embed?root=TMPDIR), so no libvirtd and no system state.  As root
# it runs as nobody: libvirt's privileged mode would want the libvirt-qemu
# user, which only libvirt-daemon-system creates.  The XML's type='kvm' is
# checked as type='qemu' (TCG): the argv of the vhost-user part is the same.
# Output is KTAP; exit 0 all passed, 1 a check failed, 4 a prerequisite is
# missing.  About 3 s (libvirt probes QEMU's capabilities once).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
xml=${1:-$top/Documentation/examples/libvirt-vhost-blk.xml}
. "$top/tests/e2e/vhost_user_args.sh"

echo "TAP version 13"
for c in virsh virt-xml-validate qemu-system-x86_64 python3; do
	if ! command -v $c >/dev/null; then
		echo "1..0 # SKIP $c missing (scripts/setup.sh installs it)"
		exit 4
	fi
done
echo "1..6"
n=0 failed=0
t() {	# t NAME STATUS [WHY]
	n=$((n + 1))
	if [ "$2" = 0 ]; then
		echo "ok $n $1"
	else
		failed=$((failed + 1))
		echo "not ok $n $1${3:+ # $3}"
	fi
}

out=$(virt-xml-validate "$xml" domain 2>&1)
t "virt-xml-validate: $(basename "$xml") is a valid domain" $? "$(tr '\n' ' ' <<<"$out")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir "$tmp/root"
sed "s/<domain type='kvm'>/<domain type='qemu'>/" "$xml" > "$tmp/domain.xml"
run=()
if [ "$(id -u)" = 0 ]; then
	chown nobody:nogroup "$tmp/root"
	run=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
"${run[@]}" env HOME="$tmp/root" virsh -q -c "qemu:///embed?root=$tmp/root" \
	domxml-to-native qemu-argv "$tmp/domain.xml" > "$tmp/argv" 2> "$tmp/err"
t "virsh domxml-to-native qemu-argv" $? "$(grep -v ': info :' "$tmp/err" | tr '\n' ' ')"

read -r sock queues mem < <(python3 "$top/tests/libvirt/argv.py" values "$xml")
e2e=$(vhost_user_blk_args "$sock" "$queues" "$mem")
echo "# e2e:     $e2e"
echo "# libvirt: $(grep -oE -- "-(chardev|device|object) [^ ]*(vhost-user|memfd|chr-vu)[^ ]*" "$tmp/argv" | paste -sd ' ')"
while read -r line; do
	case $line in
	"ok "*) t "${line#ok }" 0 ;;
	"not ok "*) name=${line#not ok }; t "${name%% # *}" 1 "${name#* # }" ;;
	*) echo "# $line" ;;
	esac
done < <(python3 "$top/tests/libvirt/argv.py" compare "$xml" "$tmp/argv" "$e2e" 2>&1)
while [ $n -lt 6 ]; do t "argv check $((n + 1))" 1 "argv.py stopped early"; done
echo "# Totals: pass:$((n - failed)) fail:$failed xfail:0 xpass:0 skip:0 error:0"
[ $failed = 0 ]
