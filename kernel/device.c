// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the /dev/vhost-blk device, its ioctls and backend handling.
 *
 * Copyright (C) 2026 The vhost-blk authors.
 *
 * A VMM opens /dev/vhost-blk, becomes its owner, describes guest memory and
 * virtqueues with the standard vhost ioctls and attaches a block device
 * with VHOST_BLK_SET_BACKEND.  Requests are then served in the host kernel
 * by the rings' vhost workers (request.c, bio.c, completion.c).
 */
#include <linux/compat.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nospec.h>
#include <linux/rcupdate.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>
#include <linux/workqueue.h>

#include "blk.h"

/* Enough for one ring per vCPU on large guests; each ring costs ~20 KiB. */
#define VHOST_BLK_QUEUES_LIMIT	256

static unsigned int max_queues = 16;
module_param(max_queues, uint, 0644);
MODULE_PARM_DESC(max_queues,
		 "Virtqueues per /dev/vhost-blk instance (1-256, default 16)");

static bool vhost_blk_acked(struct vhost_blk *blk, unsigned int bit)
{
	struct vhost_virtqueue *vq = &blk->vqs[0].vq;
	bool ret;

	mutex_lock(&vq->mutex);
	ret = vhost_has_feature(vq, bit);
	mutex_unlock(&vq->mutex);
	return ret;
}

/* Caller holds dev.mutex. */
static int vhost_blk_attach_vq(struct vhost_blk *blk, struct vhost_blk_vq *bvq)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	int ret = 0;

	mutex_lock(&vq->mutex);
	if (vhost_vq_get_backend(vq))
		goto out_unlock;
	if (!vhost_vq_is_setup(vq)) {
		ret = -EINVAL;
		goto out_unlock;
	}

	/* A detached ring has nothing in flight: its slots can go. */
	if (bvq->nr_reqs != vq->num) {
		kvfree(bvq->reqs);
		bvq->nr_reqs = 0;
		bvq->reqs = kvcalloc(vq->num, sizeof(*bvq->reqs),
				     GFP_KERNEL_ACCOUNT);
		if (!bvq->reqs) {
			ret = -ENOMEM;
			goto out_unlock;
		}
		bvq->nr_reqs = vq->num;
	}
	if (!bvq->iov) {
		bvq->iov = kvmalloc_array(VHOST_BLK_IOV_MAX, sizeof(*bvq->iov),
					  GFP_KERNEL_ACCOUNT);
		bvq->log = kvmalloc_array(VHOST_BLK_IOV_MAX, sizeof(*bvq->log),
					  GFP_KERNEL_ACCOUNT);
		if (!bvq->iov || !bvq->log) {
			kvfree(bvq->iov);
			kvfree(bvq->log);
			bvq->iov = NULL;
			bvq->log = NULL;
			ret = -ENOMEM;
			goto out_unlock;
		}
	}
	/* The VMM has set the ring up again: a ring error is over. */
	bvq->stopped = false;
	bvq->stats.stopped = 0;
	bvq->throttled = false;
	/* Polling starts again at the ceiling, for the new guest's gaps. */
	vhost_blk_poll_ceiling(bvq);

	vhost_vq_set_backend(vq, blk->backend);
	ret = vhost_vq_init_access(vq);
	if (ret) {
		vhost_vq_set_backend(vq, NULL);
		goto out_unlock;
	}
	blk->attached++;
	mutex_unlock(&vq->mutex);

	/* Kicks that came while the ring was detached were dropped. */
	vhost_poll_queue(&vq->poll);
	return 0;

out_unlock:
	mutex_unlock(&vq->mutex);
	return ret;
}

/*
 * Stops taking requests from the ring and waits until every bio it issued
 * has ended, polling the polled ones; the finished requests stay on the
 * done list.  Returns the backend the ring had, NULL if it had none.  The
 * wait is bounded by the backend's I/O time for what is in flight: no new
 * request starts meanwhile.
 */
static struct file *vhost_blk_quiesce_vq(struct vhost_blk_vq *bvq)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct file *backend;
	unsigned int left;
	u64 start;

	mutex_lock(&vq->mutex);
	backend = vhost_vq_get_backend(vq);
	vhost_vq_set_backend(vq, NULL);
	mutex_unlock(&vq->mutex);
	if (!backend)
		return NULL;
	/*
	 * Polled requests end only when polled: reap them here, whether
	 * or not the worker's done_work still runs (a killed owner's
	 * worker is gone).  Spinning first, then sleeping between polls,
	 * as vhost_blk_reap_all() does.
	 */
	start = local_clock();
	while (atomic_read(&bvq->ending)) {
		mutex_lock(&vq->mutex);
		left = vhost_blk_reap(bvq);
		mutex_unlock(&vq->mutex);
		if (!left)
			break;
		if (local_clock() - start < VHOST_BLK_REAP_SPIN_NS)
			cond_resched();
		else
			usleep_range(20, 50);
	}
	wait_event(bvq->idle, !atomic_read(&bvq->ending));
	return backend;
}

/*
 * Stops taking requests from the ring and waits until every request it
 * took has completed.  With @report they are written to the used ring, so
 * the ring base read afterwards is exact.  Returns the backend the ring
 * had, NULL if it had none.  The wait is bounded by the backend's I/O time
 * for what is in flight: no new request starts meanwhile.
 * Caller holds dev.mutex.
 */
static struct file *vhost_blk_stop_vq(struct vhost_blk_vq *bvq, bool report)
{
	struct file *backend = vhost_blk_quiesce_vq(bvq);

	if (backend) {
		mutex_lock(&bvq->vq.mutex);
		vhost_blk_complete(bvq, report);
		mutex_unlock(&bvq->vq.mutex);
	}
	return backend;
}

/* Caller holds dev.mutex. */
static void vhost_blk_detach_vq(struct vhost_blk *blk,
				struct vhost_blk_vq *bvq, bool report)
{
	if (vhost_blk_stop_vq(bvq, report))
		blk->attached--;
}

/*
 * Completes everything in flight on every ring and holds the rings until
 * vhost_blk_resume(): what vhost-net's flush after vhost_dev_ioctl() is
 * for.  No request outlives the memory table, log or features it was taken
 * under: a new memory table does not see completions written through the
 * old one, and dirty logging covers every request that completes once it
 * is on.  Caller holds dev.mutex until vhost_blk_resume().
 */
static void vhost_blk_drain(struct vhost_blk *blk)
{
	unsigned int i;

	for (i = 0; i < blk->nvqs; i++)
		blk->vqs[i].drained = vhost_blk_stop_vq(&blk->vqs[i], true);
}

static void vhost_blk_resume(struct vhost_blk *blk)
{
	struct vhost_blk_vq *bvq;
	unsigned int i;

	for (i = 0; i < blk->nvqs; i++) {
		bvq = &blk->vqs[i];
		if (!bvq->drained)
			continue;
		mutex_lock(&bvq->vq.mutex);
		vhost_vq_set_backend(&bvq->vq, bvq->drained);
		mutex_unlock(&bvq->vq.mutex);
		bvq->drained = NULL;
		/* Kicks that came meanwhile were dropped. */
		vhost_poll_queue(&bvq->vq.poll);
	}
}

static void vhost_blk_put_backend(struct vhost_blk *blk)
{
	if (!blk->attached && blk->backend) {
		fput(blk->backend);
		blk->backend = NULL;
	}
}

static void vhost_blk_detach_all(struct vhost_blk *blk, bool report)
{
	unsigned int i;

	for (i = 0; i < blk->nvqs; i++)
		vhost_blk_detach_vq(blk, &blk->vqs[i], report);
	vhost_blk_put_backend(blk);
}

/*
 * A block device, or a regular file opened with O_DIRECT (file.c, which
 * also finds its logical block size and buffer alignment).
 */
static int vhost_blk_check_backend(struct vhost_blk *blk, struct file *file,
				   unsigned int *lbs, unsigned int *dma_mask)
{
	struct inode *inode = file_inode(file);
	bool reg = S_ISREG(inode->i_mode);
	bool ro;
	int ret;

	if (reg) {
		ret = vhost_blk_file_check(file, lbs, dma_mask);
		if (ret)
			return ret;
	} else if (!S_ISBLK(inode->i_mode)) {
		return -ENOTBLK;
	}
	if (blk->backend &&
	    (reg != blk->file ||
	     (reg ? file_inode(blk->backend) != inode :
		    file_bdev(blk->backend) != file_bdev(file))))
		return -EBUSY;
	ro = vhost_blk_acked(blk, VIRTIO_BLK_F_RO);
	if (!ro && !(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (!ro && (reg ? IS_RDONLY(inode) : bdev_read_only(file_bdev(file))))
		return -EROFS;
	return 0;
}

static long vhost_blk_set_backend(struct vhost_blk *blk,
				  struct vhost_vring_file __user *argp)
{
	struct vhost_vring_file backend;
	unsigned int first = 0, last = blk->nvqs - 1, i;
	unsigned int lbs = 0, dma_mask = 0;
	bool one = false;
	struct file *file;
	long ret;

	if (copy_from_user(&backend, argp, sizeof(backend)))
		return -EFAULT;

	if (backend.index & VHOST_BLK_BACKEND_F_VRING) {
		u32 idx = backend.index & ~VHOST_BLK_BACKEND_F_VRING;

		if (idx >= blk->nvqs)
			return -ENOBUFS;
		first = array_index_nospec(idx, blk->nvqs);
		last = first;
		one = true;
	} else if (backend.index != VHOST_BLK_BACKEND_ALL_VRINGS) {
		return -EINVAL;
	}

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;

	if (backend.fd == -1) {
		for (i = first; i <= last; i++)
			vhost_blk_detach_vq(blk, &blk->vqs[i], true);
		vhost_blk_put_backend(blk);
		goto out_unlock;
	}

	file = fget(backend.fd);
	if (!file) {
		ret = -EBADF;
		goto out_unlock;
	}
	ret = vhost_blk_check_backend(blk, file, &lbs, &dma_mask);
	if (ret)
		goto out_fput;
	if (!blk->backend) {
		blk->backend = get_file(file);
		/* Fixed until the last ring lets go of it. */
		blk->file = S_ISREG(file_inode(file)->i_mode);
		blk->file_lbs = lbs;
		blk->file_dma_mask = dma_mask;
		vhost_blk_rmw_attach(blk, file);
	}

	for (i = first; i <= last; i++) {
		ret = vhost_blk_attach_vq(blk, &blk->vqs[i]);
		/* The whole-device form skips rings the VMM did not set up. */
		if (ret == -EINVAL && !one)
			ret = 0;
		if (ret)
			break;
	}
	if (!ret && !blk->attached)
		ret = -EINVAL;
	vhost_blk_put_backend(blk);
out_fput:
	fput(file);
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_set_serial(struct vhost_blk *blk, void __user *argp)
{
	char serial[VIRTIO_BLK_ID_BYTES];
	long ret;

	if (copy_from_user(serial, argp, sizeof(serial)))
		return -EFAULT;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret) {
		spin_lock(&blk->serial_lock);
		memcpy(blk->serial, serial, sizeof(serial));
		spin_unlock(&blk->serial_lock);
	}
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * Makes every write completed so far stable: the block device's cache
 * flush, or fsync of a file backend (its data, and the metadata a later
 * read needs).  Caller holds dev.mutex.
 */
static int vhost_blk_flush_backend(struct vhost_blk *blk)
{
	if (blk->file)
		return vfs_fsync(blk->backend, 1);
	return blkdev_issue_flush(file_bdev(blk->backend));
}

/*
 * To write-through: drain, so no write taken under write-back is still in
 * flight, and flush the backend once the rings run again (their new writes
 * are FUA), so every write the guest has seen complete is stable when the
 * ioctl returns.  The flush's time is the backend's for its cache, under
 * dev.mutex as a drain is; the rings are not held meanwhile.
 */
static long vhost_blk_set_write_cache(struct vhost_blk *blk, u32 __user *argp)
{
	u32 mode;
	long ret;

	if (get_user(mode, argp))
		return -EFAULT;
	if (mode != VHOST_BLK_WRITE_CACHE_WRITETHROUGH &&
	    mode != VHOST_BLK_WRITE_CACHE_WRITEBACK)
		return -EINVAL;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;
	if (mode == VHOST_BLK_WRITE_CACHE_WRITEBACK) {
		/* Requests already taken keep their REQ_FUA. */
		WRITE_ONCE(blk->write_through, false);
		goto out_unlock;
	}
	if (blk->write_through)
		goto out_unlock;
	vhost_blk_drain(blk);
	WRITE_ONCE(blk->write_through, true);
	vhost_blk_resume(blk);
	if (blk->backend && vhost_blk_flush_backend(blk))
		ret = -EIO;
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_get_write_cache(struct vhost_blk *blk, u32 __user *argp)
{
	u32 mode = VHOST_BLK_WRITE_CACHE_WRITEBACK;
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;
	if (blk->write_through || !vhost_blk_acked(blk, VIRTIO_BLK_F_FLUSH))
		mode = VHOST_BLK_WRITE_CACHE_WRITETHROUGH;
	if (put_user(mode, argp))
		ret = -EFAULT;
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * The guest's logical block size (rmw.c): only while no ring has the
 * backend, so every request of a backend is checked against one size.
 */
static long vhost_blk_set_block_size(struct vhost_blk *blk, u32 __user *argp)
{
	u32 size;
	long ret;

	if (get_user(size, argp))
		return -EFAULT;
	if (size && (size < SECTOR_SIZE || size > SZ_4K || !is_power_of_2(size)))
		return -EINVAL;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret && blk->backend)
		ret = -EBUSY;
	if (!ret)
		blk->guest_lbs = size;
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_get_block_size(struct vhost_blk *blk, u32 __user *argp)
{
	long ret;
	u32 size;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	size = blk->guest_lbs;
	mutex_unlock(&blk->dev.mutex);
	if (!ret && put_user(size, argp))
		ret = -EFAULT;
	return ret;
}

static long vhost_blk_get_vring_stats(struct vhost_blk *blk, void __user *argp)
{
	struct vhost_blk_vring_stats st;
	struct vhost_worker *worker;
	struct vhost_blk_vq *bvq;
	u32 idx;
	long ret;

	if (get_user(idx, (u32 __user *)argp))
		return -EFAULT;
	if (idx >= blk->nvqs)
		return -ENOBUFS;
	bvq = &blk->vqs[array_index_nospec(idx, blk->nvqs)];

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;

	/*
	 * Without vq->mutex: an admin's query never waits for the data path
	 * (a bounced 64 MiB copy, a backend that discards inside
	 * submit_bio()).  The counters are naturally aligned u64s written
	 * under vq->mutex; a snapshot of a busy ring may be a few requests
	 * apart between counters.
	 */
	st = data_race(bvq->stats);
	st.index = idx;
	/* As the counters: a snapshot, written under vq->mutex. */
	st.attached = !!data_race(vhost_vq_get_backend(&bvq->vq));
	/* As the counters: a snapshot, written under vq->mutex. */
	st.inflight = data_race(bvq->inflight);
	/* As above; bvq->stats.poll_us itself stays 0, the window is here. */
	st.poll_us = data_race(bvq->poll_window);
	worker = rcu_dereference_check(bvq->vq.worker,
				       lockdep_is_held(&blk->dev.mutex));
	st.worker_id = worker ? worker->id : U32_MAX;

	if (copy_to_user(argp, &st, sizeof(st)))
		ret = -EFAULT;
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * The ring a vring ioctl names, for the owner only; dev.mutex held.  As
 * vhost_get_vq_from_user(), but on an index already copied in once.
 */
static long vhost_blk_owned_vq(struct vhost_blk *blk, u32 index,
			       struct vhost_virtqueue **vq)
{
	long ret = vhost_dev_check_owner(&blk->dev);

	if (ret)
		return ret;
	if (index >= blk->nvqs)
		return -ENOBUFS;
	*vq = &blk->vqs[array_index_nospec(index, blk->nvqs)].vq;
	return 0;
}

/*
 * VHOST_GET_VRING_BASE stops an attached ring first, as VHOST_BLK_SET_BACKEND
 * with fd -1 would: every request it took completes into the used ring, so
 * the base is exact and the ring can be set up again (SET_VRING_NUM/BASE
 * fail with EBUSY while a backend is attached).  This is the stop path of
 * VMMs that treat the device like any vhost device (QEMU's vhost_dev_stop(),
 * the published vhost-blk QEMU patch), which never detach the backend
 * themselves.  vhost-net reads the base of a running ring instead; for a
 * block device that base would be stale by the time the VMM saved it, and
 * requests taken after it would run twice on a migration destination.
 */
static long vhost_blk_get_vring_base(struct vhost_blk *blk, void __user *argp)
{
	struct vhost_vring_state s;
	struct vhost_virtqueue *vq;
	long ret;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_blk_owned_vq(blk, s.index, &vq);
	if (ret)
		goto out_unlock;
	vhost_blk_detach_vq(blk, to_bvq(vq), true);
	vhost_blk_put_backend(blk);
	/*
	 * The base of the ring just stopped, read once (no second copy of the
	 * index from user memory).  Split rings only: VHOST_BLK_FEATURES has
	 * no VIRTIO_F_RING_PACKED.
	 */
	mutex_lock(&vq->mutex);
	s.num = vq->last_avail_idx;
	mutex_unlock(&vq->mutex);
	if (copy_to_user(argp, &s, sizeof(s)))
		ret = -EFAULT;
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT, done here rather than by
 * vhost_vring_ioctl() (which does the same: the owner, the index, the
 * value under vq->mutex) so that the argument is read once and a new value
 * becomes the ring's polling ceiling, and restarts its window, under the
 * same vq->mutex: GET_VRING_STATS shows it before the ring's next request.
 * The wait for vq->mutex is one worker run: a weight of requests and at
 * most one window (VHOST_BLK_POLL_MAX_US).
 */
static long vhost_blk_set_busyloop(struct vhost_blk *blk, void __user *argp)
{
	struct vhost_vring_state s;
	struct vhost_virtqueue *vq;
	long ret;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;
	mutex_lock(&blk->dev.mutex);
	ret = vhost_blk_owned_vq(blk, s.index, &vq);
	if (ret)
		goto out_unlock;
	mutex_lock(&vq->mutex);
	vq->busyloop_timeout = s.num;
	vhost_blk_poll_ceiling(to_bvq(vq));
	mutex_unlock(&vq->mutex);
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static void vhost_blk_reset_stats(struct vhost_blk *blk)
{
	unsigned int i;

	for (i = 0; i < blk->nvqs; i++) {
		memset(&blk->vqs[i].stats, 0, sizeof(blk->vqs[i].stats));
		/*
		 * As the core's busyloop_timeout (now 0): polling is off.
		 * Without vq->mutex: the rings are detached and the workers
		 * gone (vhost_dev_reset_owner()).
		 */
		vhost_blk_poll_ceiling(&blk->vqs[i]);
	}
}

static long vhost_blk_set_features(struct vhost_blk *blk, u64 features)
{
	struct vhost_virtqueue *vq;
	unsigned int i;
	long ret;

	if (features & ~VHOST_BLK_FEATURES)
		return -EOPNOTSUPP;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;
	if ((features & (1ULL << VHOST_F_LOG_ALL)) &&
	    !vhost_log_access_ok(&blk->dev)) {
		ret = -EFAULT;
		goto out_unlock;
	}
	/* Requests in flight complete under the features they started with. */
	vhost_blk_drain(blk);
	for (i = 0; i < blk->nvqs; i++) {
		vq = &blk->vqs[i].vq;
		mutex_lock(&vq->mutex);
		vq->acked_features = features;
		mutex_unlock(&vq->mutex);
	}
	vhost_blk_resume(blk);
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_reset_owner(struct vhost_blk *blk)
{
	struct vhost_iotlb *umem;
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out_unlock;
	umem = vhost_dev_reset_owner_prepare();
	if (!umem) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	/* The rings are being torn down: drop what they had in flight. */
	vhost_blk_detach_all(blk, false);
	vhost_dev_stop(&blk->dev);
	vhost_dev_reset_owner(&blk->dev, umem);
	vhost_blk_reset_stats(blk);
	/* The rings are detached: nothing reads them. */
	blk->write_through = false;
	blk->guest_lbs = 0;
out_unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_ioctl(struct file *f, unsigned int ioctl,
			    unsigned long arg)
{
	struct vhost_blk *blk = f->private_data;
	void __user *argp = (void __user *)arg;
	u64 __user *featurep = argp;
	u64 features;
	long ret;

	switch (ioctl) {
	case VHOST_GET_FEATURES:
		features = VHOST_BLK_FEATURES;
		if (copy_to_user(featurep, &features, sizeof(features)))
			return -EFAULT;
		return 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, featurep, sizeof(features)))
			return -EFAULT;
		return vhost_blk_set_features(blk, features);
	case VHOST_RESET_OWNER:
		return vhost_blk_reset_owner(blk);
	case VHOST_BLK_SET_BACKEND:
		return vhost_blk_set_backend(blk, argp);
	case VHOST_BLK_SET_SERIAL:
		return vhost_blk_set_serial(blk, argp);
	case VHOST_BLK_GET_VRING_STATS:
		return vhost_blk_get_vring_stats(blk, argp);
	case VHOST_BLK_SET_WRITE_CACHE:
		return vhost_blk_set_write_cache(blk, argp);
	case VHOST_BLK_GET_WRITE_CACHE:
		return vhost_blk_get_write_cache(blk, argp);
	case VHOST_BLK_SET_BLOCK_SIZE:
		return vhost_blk_set_block_size(blk, argp);
	case VHOST_BLK_GET_BLOCK_SIZE:
		return vhost_blk_get_block_size(blk, argp);
	case VHOST_GET_VRING_BASE:
		return vhost_blk_get_vring_base(blk, argp);
	case VHOST_SET_NWORKERS:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_blk_set_nworkers(blk, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_BLK_GET_WORKER_TID:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_blk_get_worker_tid(blk, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_NEW_WORKER:
	case VHOST_FREE_WORKER:
	case VHOST_ATTACH_VRING_WORKER:
	case VHOST_GET_VRING_WORKER:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_worker_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
		return vhost_blk_set_busyloop(blk, argp);
	case VHOST_SET_MEM_TABLE:
	case VHOST_SET_LOG_BASE:
	case VHOST_SET_LOG_FD:
		/*
		 * vhost-net and vhost-scsi flush after vhost_dev_ioctl(); we
		 * drain before it, so in-flight requests still complete
		 * through the table and log they were taken under.
		 */
		mutex_lock(&blk->dev.mutex);
		ret = vhost_dev_check_owner(&blk->dev);
		if (!ret) {
			vhost_blk_drain(blk);
			ret = vhost_dev_ioctl(&blk->dev, ioctl, argp);
			vhost_blk_resume(blk);
		}
		mutex_unlock(&blk->dev.mutex);
		return ret;
	default:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_dev_ioctl(&blk->dev, ioctl, argp);
		if (ret == -ENOIOCTLCMD)
			ret = vhost_vring_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	}
}

static int vhost_blk_open(struct inode *inode, struct file *f)
{
	unsigned int nvqs = READ_ONCE(max_queues), i;
	struct vhost_blk *blk;
	int ret = -ENOMEM;

	if (nvqs < 1 || nvqs > VHOST_BLK_QUEUES_LIMIT) {
		pr_warn_once("vhost-blk: max_queues=%u out of range, using %u\n",
			     nvqs, clamp(nvqs, 1U, VHOST_BLK_QUEUES_LIMIT));
		nvqs = clamp(nvqs, 1U, VHOST_BLK_QUEUES_LIMIT);
	}

	/* Large (a vhost_virtqueue is ~20 KiB): fall back to vmalloc. */
	blk = kvzalloc(sizeof(*blk), GFP_KERNEL_ACCOUNT);
	if (!blk)
		return -ENOMEM;
	blk->vqs = kvcalloc(nvqs, sizeof(*blk->vqs), GFP_KERNEL_ACCOUNT);
	if (!blk->vqs)
		goto err_blk;
	blk->vq_ptrs = kcalloc(nvqs, sizeof(*blk->vq_ptrs), GFP_KERNEL_ACCOUNT);
	if (!blk->vq_ptrs)
		goto err_vqs;

	blk->nvqs = nvqs;
	spin_lock_init(&blk->serial_lock);
	vhost_blk_file_dev_init(blk);
	vhost_blk_rmw_dev_init(blk);
	for (i = 0; i < nvqs; i++) {
		struct vhost_blk_vq *bvq = &blk->vqs[i];

		bvq->blk = blk;
		bvq->vq.handle_kick = vhost_blk_handle_kick;
		vhost_work_init(&bvq->done_work, vhost_blk_done_work);
		init_llist_head(&bvq->done);
		atomic_set(&bvq->ending, 0);
		init_waitqueue_head(&bvq->idle);
		INIT_LIST_HEAD(&bvq->polled);
		blk->vq_ptrs[i] = &bvq->vq;
	}
	vhost_dev_init(&blk->dev, blk->vq_ptrs, nvqs, UIO_MAXIOV,
		       VHOST_BLK_WEIGHT, VHOST_BLK_BYTE_WEIGHT, true, NULL);
	f->private_data = blk;
	return 0;

err_vqs:
	kvfree(blk->vqs);
err_blk:
	kvfree(blk);
	return ret;
}

struct vhost_blk_report_work {
	struct work_struct work;
	struct vhost_blk *blk;
};

/*
 * Reports every finished request of every ring through the owner's address
 * space.  Runs on a kworker, which may adopt an mm, unlike release (which
 * may run in the exiting owner, whose current->mm is already NULL).
 */
static void vhost_blk_report_work_fn(struct work_struct *work)
{
	struct vhost_blk *blk = container_of(work, struct vhost_blk_report_work,
					     work)->blk;
	struct vhost_blk_vq *bvq;
	unsigned int i;

	kthread_use_mm(blk->dev.mm);
	for (i = 0; i < blk->nvqs; i++) {
		bvq = &blk->vqs[i];
		mutex_lock(&bvq->vq.mutex);
		vhost_blk_complete(bvq, true);
		mutex_unlock(&bvq->vq.mutex);
	}
	kthread_unuse_mm(blk->dev.mm);
}

/*
 * Release reports what the rings took, as a stop does: a VMM that
 * reconnects to a new owner after this one died (QEMU's vhost-user
 * reconnect restores the base from the used index) finds every request
 * the device took in the used ring exactly once.  vhost-net and vhost-scsi
 * drop them instead; they can, a guest retransmits a packet or times a
 * SCSI command out, but a virtio-blk request is waited for forever.
 *
 * The core holds the owner's mm (dev->mm, from VHOST_SET_OWNER until
 * vhost_dev_cleanup()), so the guest memory is still mapped even when the
 * owner is exiting.  A killed owner's workers are gone: end_io could not
 * queue done_work and left the requests on the done list.  Where the memory
 * faults (unmapped, or reaped by the OOM killer) the status or used-ring
 * write fails, the ring stops and the requests are only freed.  Bounded:
 * only the bios already in flight are waited for.
 */
static void vhost_blk_release_rings(struct vhost_blk *blk)
{
	struct vhost_blk_report_work rw = { .blk = blk };
	unsigned int i;

	mutex_lock(&blk->dev.mutex);
	for (i = 0; i < blk->nvqs; i++)
		if (vhost_blk_quiesce_vq(&blk->vqs[i]))
			blk->attached--;
	if (blk->dev.mm) {
		INIT_WORK_ONSTACK(&rw.work, vhost_blk_report_work_fn);
		queue_work(system_unbound_wq, &rw.work);
		flush_work(&rw.work);
		destroy_work_on_stack(&rw.work);
	}
	/* Whatever could not be reported is freed. */
	for (i = 0; i < blk->nvqs; i++) {
		mutex_lock(&blk->vqs[i].vq.mutex);
		vhost_blk_complete(&blk->vqs[i], false);
		mutex_unlock(&blk->vqs[i].vq.mutex);
	}
	/*
	 * Only now: a new owner waiting for the backend (an O_EXCL open of the
	 * block device, as vhost-blkctl serve does) sees every completion.
	 */
	vhost_blk_put_backend(blk);
	mutex_unlock(&blk->dev.mutex);
}

static int vhost_blk_release(struct inode *inode, struct file *f)
{
	struct vhost_blk *blk = f->private_data;
	unsigned int i;

	vhost_blk_release_rings(blk);
	vhost_blk_file_dev_cleanup(blk);
	vhost_blk_rmw_dev_cleanup(blk);
	vhost_dev_stop(&blk->dev);
	vhost_dev_cleanup(&blk->dev);
	/* end_io may still be in its RCU section after waking a detach. */
	synchronize_rcu();

	for (i = 0; i < blk->nvqs; i++) {
		kvfree(blk->vqs[i].reqs);
		kvfree(blk->vqs[i].iov);
		kvfree(blk->vqs[i].log);
	}
	kfree(blk->vq_ptrs);
	kvfree(blk->vqs);
	kvfree(blk);
	return 0;
}

static const struct file_operations vhost_blk_fops = {
	.owner		= THIS_MODULE,
	.release	= vhost_blk_release,
	.unlocked_ioctl	= vhost_blk_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.open		= vhost_blk_open,
	.llseek		= noop_llseek,
};

/*
 * A fixed minor, unlike vhost-scsi's dynamic one, so that the module loads on
 * the first open of /dev/vhost-blk as vhost-net's does: depmod turns the
 * devname alias below into a modules.devname entry, kmod static-nodes creates
 * /dev/vhost-blk as c 10:VHOST_BLK_MINOR at boot, and opening it makes the
 * misc core request_module("char-major-10-VHOST_BLK_MINOR").  The number is
 * from the range devices.txt reserves for local use (243-254), so no
 * mainline driver takes it, and dynamic minors are never allocated below 256.
 */
#define VHOST_BLK_MINOR		247

static struct miscdevice vhost_blk_misc = {
	.minor	= VHOST_BLK_MINOR,
	.name	= "vhost-blk",
	.fops	= &vhost_blk_fops,
};

static int __init vhost_blk_init(void)
{
	int ret = vhost_blk_file_init();

	if (ret)
		return ret;
	ret = vhost_blk_rmw_init();
	if (ret)
		goto err_file;
	ret = misc_register(&vhost_blk_misc);
	/*
	 * No fallback to a dynamic minor: the static /dev/vhost-blk node made
	 * from modules.devname would still be 10:VHOST_BLK_MINOR, so a VMM
	 * opening it would talk to whichever driver holds that minor.  Refuse
	 * to load and say who to look for instead.
	 */
	if (ret == -EBUSY)
		pr_err("vhost-blk: misc minor %d is already registered (see /proc/misc); not loading\n",
		       VHOST_BLK_MINOR);
	if (ret)
		goto err_rmw;
	return 0;

err_rmw:
	vhost_blk_rmw_exit();
err_file:
	vhost_blk_file_exit();
	return ret;
}
module_init(vhost_blk_init);

static void __exit vhost_blk_exit(void)
{
	misc_deregister(&vhost_blk_misc);
	vhost_blk_rmw_exit();
	vhost_blk_file_exit();
}
module_exit(vhost_blk_exit);

MODULE_VERSION(VHOST_BLK_VERSION);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("The vhost-blk authors");
MODULE_DESCRIPTION("Host kernel accelerator for virtio-blk");
MODULE_ALIAS_MISCDEV(VHOST_BLK_MINOR);
MODULE_ALIAS("devname:vhost-blk");
