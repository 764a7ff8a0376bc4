# SPDX-License-Identifier: GPL-2.0
# Sourced by the benchmark scripts inside the test VM: the benchmark's own
# backend, /dev/nullbench, null_blk without memory (memory_backed=0: reads
# return nothing, writes are dropped), so what is measured is the I/O path
# and not a memory copy.  4 GiB, 512-byte blocks, 2 hardware queues of 256
# tags, completions in softirq (null_blk's default irqmode).  brd
# (/dev/ram0, 256 MiB) comes from the VM runner.
nb=/sys/kernel/config/nullb/nullbench
if [ ! -d $nb ]; then
	mkdir $nb || { echo "# cannot create null_blk nullbench"; exit 4; }
	echo 512 > $nb/blocksize
	echo 4096 > $nb/size
	echo 0 > $nb/memory_backed
	echo 2 > $nb/submit_queues
	echo 256 > $nb/hw_queue_depth
	echo 1 > $nb/power
fi
i=0
while [ ! -b /dev/nullbench ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

