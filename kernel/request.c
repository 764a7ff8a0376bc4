// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk request path.
 *
 * A guest kick runs vhost_blk_handle_kick() on the ring's vhost worker.  It
 * takes descriptor chains off the avail ring, checks every guest-supplied
 * value (layout, direction, type, sector range, alignment, segment lists)
 * and hands valid requests to bio.c.  Requests that fail here never reach
 * the block device: they are completed at once through the same completion
 * list as bio-backed requests (completion.c), so the guest sees one used
 * ring update and one signal per batch either way.
 *
 * Chain layout (virtio 1.2, 5.2.6): the device-readable part starts with a
 * struct virtio_blk_outhdr followed by OUT data or a DISCARD/WRITE_ZEROES/
 * SECURE_ERASE segment list; the device-writable part holds IN or GET_ID
 * data followed by one status byte.  Any split across descriptors is fine.
 */
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>

#include "blk.h"

bool vhost_blk_ro(struct vhost_virtqueue *vq, struct file *backend)
{
	return vhost_has_feature(vq, VIRTIO_BLK_F_RO) ||
	       !(backend->f_mode & FMODE_WRITE) ||
	       bdev_read_only(file_bdev(backend));
}

/*
 * Is [sector, sector + nr) inside the device and aligned to its logical
 * block size?  Sectors are always 512 bytes in virtio-blk.
 */
static bool vhost_blk_range_ok(struct block_device *bdev, u64 sector, u64 nr)
{
	u64 mask = (bdev_logical_block_size(bdev) >> SECTOR_SHIFT) - 1;
	u64 capacity = bdev_nr_sectors(bdev);

	if ((sector | nr) & mask)
		return false;
	return sector <= capacity && nr <= capacity - sector;
}

static void vhost_blk_rw(struct vhost_blk_req *req, struct file *backend,
			 u64 sector, struct iov_iter *iter, bool write)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct block_device *bdev = file_bdev(backend);
	size_t len = iov_iter_count(iter);

	req->stat_type = write ? VHOST_BLK_STAT_OUT : VHOST_BLK_STAT_IN;
	if (write && vhost_blk_ro(vq, backend))
		goto err;
	/* used.len is 32 bits and includes the status byte */
	if (len >= U32_MAX ||
	    len & (bdev_logical_block_size(bdev) - 1) ||
	    !vhost_blk_range_ok(bdev, sector, len >> SECTOR_SHIFT))
		goto err;

	req->bytes = len;
	if (!write)
		req->used_len = len + 1;
	if (!len) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_OK);
		return;
	}
	vhost_blk_submit_rw(req, backend, sector, iter, write);
	return;
err:
	vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
}

static void vhost_blk_get_id(struct vhost_blk_req *req, struct iov_iter *iter)
{
	struct vhost_blk *blk = req->bvq->blk;
	char serial[VIRTIO_BLK_ID_BYTES];
	size_t len = min_t(size_t, iov_iter_count(iter), sizeof(serial));

	spin_lock(&blk->serial_lock);
	memcpy(serial, blk->serial, sizeof(serial));
	spin_unlock(&blk->serial_lock);

	req->stat_type = VHOST_BLK_STAT_GET_ID;
	if (copy_to_iter(serial, len, iter) != len) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return;
	}
	req->bytes = len;
	req->used_len = len + 1;
	vhost_blk_finish_now(req, VIRTIO_BLK_S_OK);
}

static u8 vhost_blk_stat_of(u32 type)
{
	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		return VHOST_BLK_STAT_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return VHOST_BLK_STAT_WRITE_ZEROES;
	default:
		return VHOST_BLK_STAT_SECURE_ERASE;
	}
}

/*
 * DISCARD, WRITE_ZEROES and SECURE_ERASE carry a list of ranges.  The whole
 * list is read and checked before the first bio is built, so a bad segment
 * fails the request without touching the disk.
 */
static void vhost_blk_ranges(struct vhost_blk_req *req, struct file *backend,
			     u32 type, struct iov_iter *iter)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct block_device *bdev = file_bdev(backend);
	struct virtio_blk_discard_write_zeroes *segs;
	size_t len = iov_iter_count(iter);
	unsigned int nseg = len / sizeof(*segs), i;
	u32 allowed_flags = 0;
	u8 status = VIRTIO_BLK_S_IOERR;

	req->stat_type = vhost_blk_stat_of(type);
	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		if (!vhost_has_feature(vq, VIRTIO_BLK_F_DISCARD) ||
		    !bdev_max_discard_sectors(bdev))
			goto unsupp;
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!vhost_has_feature(vq, VIRTIO_BLK_F_WRITE_ZEROES))
			goto unsupp;
		allowed_flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		break;
	default:
		if (!vhost_has_feature(vq, VIRTIO_BLK_F_SECURE_ERASE) ||
		    !bdev_max_secure_erase_sectors(bdev))
			goto unsupp;
		break;
	}

	if (vhost_blk_ro(vq, backend))
		goto err;
	if (!nseg || len % sizeof(*segs) ||
	    nseg > VHOST_BLK_MAX_DISCARD_SEGMENTS) {
		req->bvq->stats.malformed++;
		goto err;
	}

	segs = kmalloc_array(nseg, sizeof(*segs), GFP_KERNEL);
	if (!segs)
		goto err;
	if (copy_from_iter(segs, len, iter) != len)
		goto err_free;

	for (i = 0; i < nseg; i++) {
		u64 sector = vhost64_to_cpu(vq, (__force __virtio64)segs[i].sector);
		u32 nr = vhost32_to_cpu(vq, (__force __virtio32)segs[i].num_sectors);
		u32 flags = vhost32_to_cpu(vq, (__force __virtio32)segs[i].flags);

		/* The unmap bit is only defined for WRITE_ZEROES. */
		if (flags & ~allowed_flags) {
			status = VIRTIO_BLK_S_UNSUPP;
			goto err_free;
		}
		if (!vhost_blk_range_ok(bdev, sector, nr))
			goto err_free;
		req->bytes += (u64)nr << SECTOR_SHIFT;
	}

	vhost_blk_submit_ranges(req, backend, type, segs, nseg);
	kfree(segs);
	return;

err_free:
	kfree(segs);
	vhost_blk_finish_now(req, status);
	return;
unsupp:
	status = VIRTIO_BLK_S_UNSUPP;
err:
	vhost_blk_finish_now(req, status);
}

/*
 * Returns the number of payload bytes submitted (for the weight check), or
 * a negative errno when the ring must stop until the owner resets it.
 */
static ssize_t vhost_blk_handle_req(struct vhost_blk_vq *bvq,
				    struct file *backend, unsigned int head,
				    unsigned int out, unsigned int in,
				    struct vhost_log *log, unsigned int log_num)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_blk_req *req = &bvq->reqs[head];
	struct iovec *status_iov = NULL;
	struct virtio_blk_outhdr hdr;
	struct iov_iter iter;
	size_t out_len, in_len;
	unsigned int i;
	u64 sector;
	u32 type;

	if (unlikely(req->busy)) {
		vq_err(vq, "vhost-blk: head %u is already in flight\n", head);
		return -EINVAL;
	}

	/* The status byte is the last byte the device may write. */
	for (i = out + in; i > out; i--) {
		if (vq->iov[i - 1].iov_len) {
			status_iov = &vq->iov[i - 1];
			break;
		}
	}
	if (unlikely(!status_iov)) {
		vq_err(vq, "vhost-blk: head %u has no writable status byte\n",
		       head);
		bvq->stats.malformed++;
		if (vhost_add_used(vq, head, 0))
			return -EFAULT;
		vhost_signal(&bvq->blk->dev, vq);
		return 0;
	}

	memset(req, 0, sizeof(*req));
	req->bvq = bvq;
	req->head = head;
	req->busy = true;
	req->used_len = 1;
	req->status = (u8 __user *)status_iov->iov_base +
		      status_iov->iov_len - 1;
	req->stat_type = VHOST_BLK_STAT_OTHER;
	bvq->inflight++;

	if (unlikely(log)) {
		req->log = kmemdup_array(log, log_num, sizeof(*log),
					 GFP_KERNEL);
		if (!req->log) {
			vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
			return 0;
		}
		req->log_num = log_num;
	}

	out_len = iov_length(vq->iov, out);
	in_len = iov_length(&vq->iov[out], in) - 1;

	iov_iter_init(&iter, ITER_SOURCE, vq->iov, out, out_len);
	if (unlikely(out_len < sizeof(hdr) ||
		     copy_from_iter(&hdr, sizeof(hdr), &iter) != sizeof(hdr))) {
		bvq->stats.malformed++;
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return 0;
	}
	out_len -= sizeof(hdr);
	type = vhost32_to_cpu(vq, hdr.type);
	sector = vhost64_to_cpu(vq, hdr.sector);

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		if (out_len)
			goto malformed;
		iov_iter_init(&iter, ITER_DEST, &vq->iov[out], in, in_len + 1);
		iov_iter_truncate(&iter, in_len);
		if (type == VIRTIO_BLK_T_GET_ID)
			vhost_blk_get_id(req, &iter);
		else
			vhost_blk_rw(req, backend, sector, &iter, false);
		return in_len;
	case VIRTIO_BLK_T_OUT:
		if (in_len)
			goto malformed;
		vhost_blk_rw(req, backend, sector, &iter, true);
		return out_len;
	case VIRTIO_BLK_T_FLUSH:
		req->stat_type = VHOST_BLK_STAT_FLUSH;
		if (out_len || in_len)
			goto malformed;
		vhost_blk_submit_flush(req, backend);
		return 0;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
	case VIRTIO_BLK_T_SECURE_ERASE:
		if (in_len)
			goto malformed;
		vhost_blk_ranges(req, backend, type, &iter);
		return 0;
	default:
		vhost_blk_finish_now(req, VIRTIO_BLK_S_UNSUPP);
		return 0;
	}

malformed:
	/* Data in the wrong direction for the request type. */
	bvq->stats.malformed++;
	vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
	return 0;
}

/*
 * Requests per intermediate completion report in a long kick batch.
 * Measured at queue depth 32 and 128 (Documentation/performance.md): 16
 * beats 8 (too many signals) and 32 (at depth 32 the guest still waits
 * for most of the batch).
 */
#define VHOST_BLK_REPORT_EVERY 16

/* Roughly microseconds, cheap to read: what vhost-net polls with. */
static unsigned long vhost_blk_busy_clock(void)
{
	return local_clock() >> 10;
}

/*
 * Busy polling, off unless the VMM sets VHOST_SET_VRING_BUSYLOOP_TIMEOUT
 * (microseconds) on the ring.  With the avail ring empty the worker keeps
 * guest notifications off and, for up to busyloop_timeout, completes the
 * requests that finish and watches the avail ring.  At low queue depth the
 * guest's next request then needs no kick and its completion no second
 * wake-up of the worker: one wake-up per request instead of three.  The
 * cost is CPU time, and other rings on this worker wait up to the timeout.
 * Called with vq->mutex held and no plug (bios must be on their way).
 * Returns true when the guest made new requests available.
 */
static bool vhost_blk_busy_poll(struct vhost_blk_vq *bvq)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_dev *dev = &bvq->blk->dev;
	unsigned long endtime;

	if (!vq->busyloop_timeout)
		return false;
	endtime = vhost_blk_busy_clock() + vq->busyloop_timeout;
	while (!need_resched() && !signal_pending(current) &&
	       !time_after(vhost_blk_busy_clock(), endtime)) {
		if (!llist_empty(&bvq->done))
			vhost_blk_complete(bvq, true);
		if (!vhost_vq_avail_empty(dev, vq))
			return true;
		cpu_relax();
	}
	return false;
}

void vhost_blk_handle_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_blk_vq *bvq = to_bvq(vq);
	struct vhost_dev *dev = &bvq->blk->dev;
	unsigned int out, in, log_num = 0, reqs = 0;
	struct vhost_log *log = NULL;
	struct blk_plug plug;
	struct file *backend;
	size_t bytes = 0;
	bool polled;
	ssize_t ret;
	int head;

	mutex_lock(&vq->mutex);
	backend = vhost_vq_get_backend(vq);
	if (!backend)
		goto out_unlock;

	if (unlikely(vhost_has_feature(vq, VHOST_F_LOG_ALL)))
		log = vq->log;

	vhost_disable_notify(dev, vq);
	blk_start_plug(&plug);
	do {
		head = vhost_get_vq_desc(vq, vq->iov, ARRAY_SIZE(vq->iov),
					 &out, &in, log, &log_num);
		/* A malformed chain: the core has reported it, stop here. */
		if (unlikely(head < 0))
			break;
		if (head == vq->num) {
			if (vq->busyloop_timeout) {
				blk_finish_plug(&plug);
				polled = vhost_blk_busy_poll(bvq);
				blk_start_plug(&plug);
				if (polled)
					continue;
			}
			if (unlikely(vhost_enable_notify(dev, vq))) {
				vhost_disable_notify(dev, vq);
				continue;
			}
			break;
		}
		ret = vhost_blk_handle_req(bvq, backend, head, out, in, log,
					   log_num);
		if (unlikely(ret < 0))
			break;
		bytes += ret;
		/*
		 * A deep ring: send what is built so far and report what has
		 * finished, so the guest refills while we go on instead of
		 * waiting for the whole batch.
		 */
		if (!(++reqs % VHOST_BLK_REPORT_EVERY)) {
			blk_finish_plug(&plug);
			vhost_blk_complete(bvq, true);
			blk_start_plug(&plug);
		}
	} while (likely(!vhost_exceeds_weight(vq, reqs, bytes)));
	blk_finish_plug(&plug);

	/* Report what failed validation or already finished, in one batch. */
	vhost_blk_complete(bvq, true);
out_unlock:
	mutex_unlock(&vq->mutex);
}
