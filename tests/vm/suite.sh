#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs one suite command inside the test VM's chroot (started by tests/vm/init
# under setsid, so this shell leads a session of its own).  Records the
# command's exit status in RESULTS/status.tmp, then ends whatever the suite
# left running in its session and lists it in RESULTS/leftover: a leftover
# process would keep the output pipe open (the run would hang until the
# wall-clock timeout) or hold /dev/vhost-blk (rmmod would fail for the wrong
# reason).  run.sh fails a run that left processes behind.
#
#   suite.sh RESULTS CMD [ARGS...]
res=$1
shift

# Session id of a process (field 6 of /proc/PID/stat; comm may hold spaces).
sid() {
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	set -- $s
	echo "$4"
}

cd /run || exit 1
"$@" 2>&1 </dev/null
echo $? > "$res/status.tmp"

me=$(sid $$)
if [ "$me" != $$ ]; then
	echo "# suite.sh: not a session leader (sid $me), leftover processes not checked" >&2
	exit 0
fi
left=
for p in /proc/[0-9]*; do
	p=${p#/proc/}
	[ "$p" = $$ ] && continue
	[ "$(sid "$p")" = "$me" ] || continue
	left="$left $p($(cat "/proc/$p/comm" 2>/dev/null))"
done
: > "$res/leftover"
[ -n "$left" ] || exit 0
echo "$left" > "$res/leftover"
for sig in TERM KILL; do
	for p in $left; do kill -$sig "${p%%(*}" 2>/dev/null; done
	sleep 2
done
exit 0
