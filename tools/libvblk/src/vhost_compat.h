/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Worker ioctls of Linux >= 6.5 for hosts whose <linux/vhost.h> predates
 * them (Debian 12 ships 6.1 headers).  Values from the 6.12 uapi
 * (include/uapi/linux/vhost.h, vhost_types.h).  Library-private.
 */
#pragma once

#include <linux/vhost.h>

#ifndef VHOST_NEW_WORKER
struct vhost_worker_state {
	/*
	 * For VHOST_NEW_WORKER the kernel returns the new worker's id; for
	 * VHOST_FREE_WORKER it is the id of the worker to free.
	 */
	unsigned int worker_id;
};

struct vhost_vring_worker {
	/* vring index */
	unsigned int index;
	/* the id of the vhost_worker returned from VHOST_NEW_WORKER */
	unsigned int worker_id;
};

#define VHOST_NEW_WORKER _IOR(VHOST_VIRTIO, 0x8, struct vhost_worker_state)
#define VHOST_FREE_WORKER _IOW(VHOST_VIRTIO, 0x9, struct vhost_worker_state)
#define VHOST_ATTACH_VRING_WORKER \
	_IOW(VHOST_VIRTIO, 0x15, struct vhost_vring_worker)
#define VHOST_GET_VRING_WORKER \
	_IOWR(VHOST_VIRTIO, 0x16, struct vhost_vring_worker)
#endif
