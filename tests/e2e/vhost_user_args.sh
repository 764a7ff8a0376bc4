# SPDX-License-Identifier: GPL-2.0
# The QEMU arguments that put a guest on a disk served by `vhost-blkctl
# serve`: guest RAM shareable with the daemon (memfd, share=on), a socket
# chardev connecting to serve's vhost-user socket, and vhost-user-blk-pci on
# it with the queue count serve offers.  reconnect=1: when serve goes away
# (crash, kill -9, upgrade) QEMU retries every second and restarts the rings
# on the new serve (Documentation/admin-guide.md, "Restarting serve").  Sourced (POSIX sh) by the e2e
# (vhost_user_blk.sh), which runs them, and by the libvirt check
# (tests/libvirt/domxml.sh), which asserts that libvirt generates the same
# from Documentation/examples/libvirt-vhost-blk.xml.
#
#   vhost_user_blk_args SOCKET QUEUES MEMSIZE	(MEMSIZE as for -m: 256M)
#
# Prints the arguments on one line; paths must not contain white space.
vhost_user_blk_args() {
	echo "-object memory-backend-memfd,id=mem,size=$3,share=on -numa node,memdev=mem" \
	     "-chardev socket,id=vhu,path=$1,reconnect=1" \
	     "-device vhost-user-blk-pci,chardev=vhu,num-queues=$2"
}
