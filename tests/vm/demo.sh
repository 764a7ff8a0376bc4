#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The main job: a disk served by vhost_blk.ko doing real, verified I/O.
# Runs inside the test VM (tests/vm/run.sh demo), backends already set up.
set -e
io=$BUILD/cmake/tools/vblk-io/vblk-io
echo "== vhost-blk demo: kernel $(uname -r), backend $VBLK_NULLB"
echo "== 1. 2 queues, each on its own vhost worker: write a pattern through /dev/vhost-blk, read it back through the module and with O_DIRECT from the disk"
$io --backend "$VBLK_NULLB" --queues 2 --workers 2 --rw verify --size 67108864
echo "== 2. 4 KiB random reads, 2 queues, each on its own vhost worker, queue depth 32, 5 s"
$io --backend "$VBLK_NULLB" --queues 2 --workers 2 --depth 32 --bs 4096 --rw randread --seconds 5
echo "== 3. 4 KiB random writes on the 4 KiB-sector disk, 5 s"
$io --backend "$VBLK_NULLB_4K" --queues 2 --workers 2 --depth 32 --bs 4096 --rw randwrite --seconds 5
echo "== done"
