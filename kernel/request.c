// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk request path.
 *
 * A guest kick runs vhost_blk_handle_kick() on the ring's vhost worker.  It
 * takes descriptor chains off the avail ring, checks every guest-supplied
 * value (layout, direction, type, sector range, alignment, segment lists)
 * and hands valid requests to bio.c, or to file.c for a regular-file
 * backend (chosen at VHOST_BLK_SET_BACKEND: blk->file).  Requests that fail here never reach
 * the block device: they are completed at once through the same completion
 * list as bio-backed requests (completion.c), so the guest sees one used
 * ring update and one signal per batch either way.
 *
 * Chain layout (virtio 1.2, 5.2.6): the device-readable part starts with a
 * struct virtio_blk_outhdr followed by OUT data or a DISCARD/WRITE_ZEROES/
 * SECURE_ERASE segment list; the device-writable part holds IN or GET_ID
 * data followed by one status byte.  Any split across descriptors is fine.
 */
#include <linux/moduleparam.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>

#include "blk.h"

bool vhost_blk_ro(struct vhost_virtqueue *vq, struct file *backend)
{
	if (vhost_has_feature(vq, VIRTIO_BLK_F_RO) ||
	    !(backend->f_mode & FMODE_WRITE))
		return true;
	if (to_bvq(vq)->blk->file)
		return IS_RDONLY(file_inode(backend));
	return bdev_read_only(file_bdev(backend));
}

/*
 * The guest's logical block size in bytes, what requests must be aligned to:
 * VHOST_BLK_SET_BLOCK_SIZE's, else the backend's.  Below the backend's,
 * rmw.c serves the partial blocks (blk->rmw).
 */
static unsigned int vhost_blk_lbs(struct vhost_blk *blk, struct file *backend)
{
	if (blk->guest_lbs)
		return blk->guest_lbs;
	if (blk->file)
		return blk->file_lbs;
	return bdev_logical_block_size(file_bdev(backend));
}

/*
 * The one rule for ring errors (Documentation/vhost-blk.rst, "Ring
 * errors"): a ring whose structure cannot be trusted (the vhost core failed
 * to read a chain, a head already in flight, a status byte or used entry
 * that cannot be written) stops.  The VMM has been told through the ring's
 * error eventfd (vq_err); no request is taken from the ring until it is set
 * up again (detach and attach, or VHOST_RESET_OWNER).  Requests already in
 * flight still complete.  Caller holds vq->mutex.
 */
void vhost_blk_ring_error(struct vhost_blk_vq *bvq)
{
	bvq->stopped = true;
	bvq->stats.stopped = 1;
}

/*
 * Is [sector, sector + nr) inside the device and aligned to its logical
 * block size?  Sectors are always 512 bytes in virtio-blk.
 */
static bool vhost_blk_range_ok(struct vhost_blk *blk, struct file *backend,
			       u64 sector, u64 nr)
{
	u64 mask = (vhost_blk_lbs(blk, backend) >> SECTOR_SHIFT) - 1;
	u64 capacity = blk->file ? vhost_blk_file_nr_sectors(blk, backend) :
				   bdev_nr_sectors(file_bdev(backend));

	/* 512e: a partial last backend block cannot be read-modify-written. */
	if (blk->rmw)
		capacity = round_down(capacity, blk->rmw_lbs >> SECTOR_SHIFT);
	if ((sector | nr) & mask)
		return false;
	return sector <= capacity && nr <= capacity - sector;
}

/*
 * A ring's budgets: VHOST_BLK_RING_INFLIGHT_BYTES of payload at the backend
 * (data bytes, or the bytes range requests cover), which bounds a drain,
 * and VHOST_BLK_RING_BOUNCE_BYTES of bounce buffers.  @used of @limit is
 * taken; an idle ring always admits one request, however large.  Returns
 * true when the request must wait: the ring stays throttled until one of
 * its requests completes.
 */
static bool vhost_blk_throttle(struct vhost_blk_vq *bvq, u64 used, u64 need,
			       u64 limit)
{
	if (!used || used + need <= limit)
		return false;
	bvq->throttled = true;
	bvq->stats.throttled++;
	return true;
}

/* Released by vhost_blk_req_release(). */
static void vhost_blk_charge(struct vhost_blk_req *req, u64 bytes)
{
	req->cost = bytes;
	req->bvq->inflight_bytes += bytes;
}

/*
 * Returns 0, or -EAGAIN when the request does not fit in the ring's
 * in-flight or bounce budget now: nothing was done, the caller puts the
 * chain back and the ring waits for requests to complete.
 */
static int vhost_blk_rw(struct vhost_blk_req *req, struct file *backend,
			u64 sector, struct iov_iter *iter, bool write)
{
	struct vhost_blk_vq *bvq = req->bvq;
	struct vhost_blk *blk = bvq->blk;
	size_t len = iov_iter_count(iter);
	bool bounce = false, rmw;
	u64 bounce_bytes = 0;

	req->stat_type = write ? VHOST_BLK_STAT_OUT : VHOST_BLK_STAT_IN;
	if (write && vhost_blk_ro(&bvq->vq, backend))
		goto err;
	/* The length is a 64-bit sum of guest lengths: bound it first. */
	if (len > VHOST_BLK_MAX_REQUEST_BYTES ||
	    len & (vhost_blk_lbs(blk, backend) - 1) ||
	    !vhost_blk_range_ok(blk, backend, sector, len >> SECTOR_SHIFT))
		goto err;

	if (!len) {
		if (!write)
			req->used_len = 1;
		vhost_blk_finish_now(req, VIRTIO_BLK_S_OK);
		return 0;
	}

	/* 512e: partial backend blocks go through rmw.c's bounce. */
	rmw = unlikely(blk->rmw) &&
	      !vhost_blk_rmw_direct(req, sector << SECTOR_SHIFT, len, write);
	if (rmw) {
		bounce_bytes = vhost_blk_rmw_bounce_bytes(req);
	} else {
		bounce = blk->file ?
			 vhost_blk_file_needs_bounce(blk, backend, iter, write) :
			 vhost_blk_needs_bounce(file_bdev(backend), iter, write);
		if (unlikely(bounce))
			bounce_bytes = round_up(len, PAGE_SIZE);
	}
	if (bounce_bytes &&
	    vhost_blk_throttle(bvq, bvq->bounce_bytes, bounce_bytes,
			       VHOST_BLK_RING_BOUNCE_BYTES))
		return -EAGAIN;
	if (vhost_blk_throttle(bvq, bvq->inflight_bytes, len,
			       VHOST_BLK_RING_INFLIGHT_BYTES))
		return -EAGAIN;
	vhost_blk_charge(req, len);
	req->bytes = len;
	if (!write)
		req->used_len = len + 1;
	if (rmw)
		vhost_blk_rmw_queue_rw(req, backend, sector << SECTOR_SHIFT,
				       iter, write);
	else if (blk->file)
		vhost_blk_file_rw(req, backend, sector, iter, write, bounce);
	else
		vhost_blk_submit_rw(req, backend, sector, iter, write, bounce);
	return 0;
err:
	vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
	return 0;
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
	/* What was copied is what the dirty log must cover, even on failure. */
	req->bytes = copy_to_iter(serial, len, iter);
	if (req->bytes != len) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return;
	}
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

static bool vhost_blk_range_feature(struct vhost_virtqueue *vq, u32 type)
{
	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		return vhost_has_feature(vq, VIRTIO_BLK_F_DISCARD);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return vhost_has_feature(vq, VIRTIO_BLK_F_WRITE_ZEROES);
	default:
		return vhost_has_feature(vq, VIRTIO_BLK_F_SECURE_ERASE);
	}
}

/*
 * DISCARD, WRITE_ZEROES and SECURE_ERASE carry a list of ranges.  The whole
 * list is read and checked before the first bio is built, so a bad segment
 * fails the request without touching the disk.  All segments together are
 * at most the backend's limit for the operation (what the VMM advertises),
 * so each becomes one bio and one request costs the backend at most one
 * maximal operation; the bios complete asynchronously.
 */
static int vhost_blk_ranges(struct vhost_blk_req *req, struct file *backend,
			    u32 type, struct iov_iter *iter)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct vhost_blk *blk = req->bvq->blk;
	struct virtio_blk_discard_write_zeroes *segs;
	size_t len = iov_iter_count(iter);
	unsigned int nseg, limit, i;
	u64 total = 0;
	u32 allowed_flags = 0;
	u8 status = VIRTIO_BLK_S_IOERR;

	req->stat_type = vhost_blk_stat_of(type);
	if (!vhost_blk_range_feature(vq, type))
		goto unsupp;
	/* Every kind of write fails alike on a read-only disk. */
	if (vhost_blk_ro(vq, backend))
		goto err;
	limit = blk->file ? vhost_blk_file_range_limit(blk, backend, type) :
			    vhost_blk_range_limit(file_bdev(backend), type);
	if (!limit)
		goto unsupp;
	if (type == VIRTIO_BLK_T_WRITE_ZEROES)
		allowed_flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	/* len is a 64-bit sum of guest lengths: bound it before dividing. */
	if (!len || len % sizeof(*segs) ||
	    len > VHOST_BLK_MAX_DISCARD_SEGMENTS * sizeof(*segs)) {
		req->bvq->stats.malformed++;
		goto err;
	}
	nseg = len / sizeof(*segs);

	segs = kmalloc_array(nseg, sizeof(*segs), GFP_KERNEL_ACCOUNT);
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
		/*
		 * The limit bounds the whole request, as Linux guests read
		 * max_discard_sectors: backends such as null_blk and brd do
		 * the work inside submit_bio(), on this worker.
		 */
		total += nr;
		if (total > limit ||
		    !vhost_blk_range_ok(blk, backend, sector, nr))
			goto err_free;
		/* 512e: a secure erase cannot be emulated on part of a block. */
		if (blk->rmw && type == VIRTIO_BLK_T_SECURE_ERASE && nr &&
		    ((sector | nr) & ((blk->rmw_lbs >> SECTOR_SHIFT) - 1)))
			goto err_free;
		req->bytes += (u64)nr << SECTOR_SHIFT;
	}

	if (vhost_blk_throttle(req->bvq, req->bvq->inflight_bytes, req->bytes,
			       VHOST_BLK_RING_INFLIGHT_BYTES)) {
		kfree(segs);
		req->bytes = 0;
		return -EAGAIN;
	}
	vhost_blk_charge(req, req->bytes);
	if (unlikely(blk->rmw) &&
	    !vhost_blk_rmw_ranges_direct(req, type, segs, nseg))
		vhost_blk_rmw_queue_ranges(req, backend, type, segs, nseg);
	else if (blk->file)
		vhost_blk_file_ranges(req, backend, type, segs, nseg);
	else
		vhost_blk_submit_ranges(req, backend, type, segs, nseg);
	kfree(segs);
	return 0;

err_free:
	kfree(segs);
	vhost_blk_finish_now(req, status);
	return 0;
unsupp:
	status = VIRTIO_BLK_S_UNSUPP;
err:
	vhost_blk_finish_now(req, status);
	return 0;
}

/*
 * VHOST_F_LOG_ALL: the device writes the status byte of every request and
 * the data of IN and GET_ID; remember where, to log it on completion.
 * Returns false when the copy cannot be allocated (the status byte is still
 * logged).
 */
static bool vhost_blk_save_log(struct vhost_blk_req *req, u32 type,
			       struct vhost_log *log, unsigned int log_num)
{
	struct vhost_log *last = &log[log_num - 1];

	req->logged = true;
	req->status_log.addr = last->addr + last->len - 1;
	req->status_log.len = 1;
	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_GET_ID)
		return true;
	req->log = kmemdup_array(log, log_num, sizeof(*log),
				 GFP_KERNEL_ACCOUNT);
	if (!req->log)
		return false;
	req->log_num = log_num;
	return true;
}

/*
 * Returns the payload bytes the request claims (for the weight check),
 * -EAGAIN when it must wait for bounce budget (the caller puts the chain
 * back), or another negative errno when the ring stops.
 */
static s64 vhost_blk_handle_req(struct vhost_blk_vq *bvq,
				struct file *backend, unsigned int head,
				unsigned int out, unsigned int in,
				struct vhost_log *log, unsigned int log_num)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_blk_req *req = &bvq->reqs[head];
	struct iovec *iov = bvq->iov;
	struct iovec *status_iov = NULL;
	struct virtio_blk_outhdr hdr;
	struct iov_iter iter;
	size_t out_len, in_len;
	unsigned int i;
	bool hdr_ok;
	u64 sector;
	u32 type;
	int ret;

	if (unlikely(req->busy)) {
		vq_err(vq, "vhost-blk: head %u is already in flight\n", head);
		return -EINVAL;
	}

	/* The status byte is the last byte the device may write. */
	for (i = out + in; i > out; i--) {
		if (iov[i - 1].iov_len) {
			status_iov = &iov[i - 1];
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

	/* iov_length() sums in size_t: 64 bits, no guest sum can wrap it. */
	out_len = iov_length(iov, out);
	in_len = iov_length(&iov[out], in) - 1;

	iov_iter_init(&iter, ITER_SOURCE, iov, out, out_len);
	hdr_ok = out_len >= sizeof(hdr) &&
		 copy_from_iter(&hdr, sizeof(hdr), &iter) == sizeof(hdr);
	if (likely(hdr_ok)) {
		out_len -= sizeof(hdr);
		type = vhost32_to_cpu(vq, hdr.type);
		sector = vhost64_to_cpu(vq, hdr.sector);
	} else {
		/* Only the status byte will be written. */
		type = VIRTIO_BLK_T_FLUSH;
		sector = 0;
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

	if (unlikely(log) && !vhost_blk_save_log(req, type, log, log_num)) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return 0;
	}
	if (unlikely(!hdr_ok)) {
		bvq->stats.malformed++;
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return 0;
	}

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		if (out_len)
			goto malformed;
		iov_iter_init(&iter, ITER_DEST, &iov[out], in, in_len + 1);
		iov_iter_truncate(&iter, in_len);
		if (type == VIRTIO_BLK_T_GET_ID) {
			vhost_blk_get_id(req, &iter);
			return in_len;
		}
		ret = vhost_blk_rw(req, backend, sector, &iter, false);
		goto rw_done;
	case VIRTIO_BLK_T_OUT:
		if (in_len)
			goto malformed;
		ret = vhost_blk_rw(req, backend, sector, &iter, true);
		in_len = out_len;
		goto rw_done;
	case VIRTIO_BLK_T_FLUSH:
		req->stat_type = VHOST_BLK_STAT_FLUSH;
		if (out_len || in_len)
			goto malformed;
		if (bvq->blk->file)
			vhost_blk_file_flush(req, backend);
		else
			vhost_blk_submit_flush(req, backend);
		return 0;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
	case VIRTIO_BLK_T_SECURE_ERASE:
		if (in_len)
			goto malformed;
		ret = vhost_blk_ranges(req, backend, type, &iter);
		/* Range sectors count toward the weight like data bytes. */
		in_len = out_len + req->bytes;
		goto rw_done;
	default:
		vhost_blk_finish_now(req, VIRTIO_BLK_S_UNSUPP);
		return 0;
	}

rw_done:
	if (unlikely(ret)) {
		/* Waits for budget: undo, the chain goes back. */
		vhost_blk_req_release(req);
		req->busy = false;
		bvq->inflight--;
		return ret;
	}
	return in_len;

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

/*
 * Polled completions (completion.c) while a ring busy-polls.  Off by
 * default: on null_blk's poll queues in the TCG test VM they made queue
 * depth 1 slower, not faster (Documentation/performance.md, "Polled
 * completions"); the hardware they are for, nvme poll queues, was not
 * measured.  Read once per kick-handler run.
 */
static bool polled_completions;
module_param(polled_completions, bool, 0644);
MODULE_PARM_DESC(polled_completions,
		 "Send REQ_POLLED bios while a ring busy-polls (default off)");

/* Roughly microseconds, cheap to read: what vhost-net polls with. */
static unsigned long vhost_blk_busy_clock(void)
{
	return local_clock() >> 10;
}

/* The window a growing poll starts from: QEMU's aio polling's first step. */
#define VHOST_BLK_POLL_MIN_US	4
/* With a window of 0, every this many idle periods one poll at the ceiling. */
#define VHOST_BLK_POLL_PROBE_EVERY	16
/* The longest window, whatever VHOST_SET_VRING_BUSYLOOP_TIMEOUT says: 100 ms. */
#define VHOST_BLK_POLL_MAX_US	100000

/*
 * Adaptive busy polling.  VHOST_SET_VRING_BUSYLOOP_TIMEOUT sets a ceiling
 * (microseconds, 0: off); the ring polls for a window between 0 and it,
 * adapted to the gaps the guest leaves, as QEMU's aio polling adapts its
 * poll_ns (poll-grow, poll-shrink).  The gap is measured from when the ring
 * went idle (the start of a poll that then ran out, or the moment the ring
 * was found empty with a window of 0) to the first request the worker takes
 * after it, as QEMU measures its block_ns:
 *
 *  - longer than the ceiling: no window would have caught it, the window
 *    halves, so an idle guest stops costing CPU after a few requests;
 *  - longer than the window, within the ceiling: the window doubles;
 *  - otherwise the window stays.
 *
 * A gap a poll caught needs no measure: the window covered it.  A poll
 * that stopped early (another ring's work, the scheduler, a signal) says
 * nothing about the guest and is not measured.  A poll that ran out while
 * an earlier one is still unanswered (a kick with nothing in the ring, a
 * run queued by a completion) halves the window: the guest has been quiet
 * for two windows.  A new ceiling restarts the window at it.
 *
 * A window of 0 cannot see the gap polling would have to cover: the gap it
 * measures includes the wake-ups polling saves (the worker's for the
 * completion, then for the guest's kick), which can exceed the ceiling
 * where a poll would have caught the request.  So every
 * VHOST_BLK_POLL_PROBE_EVERY idle periods the ring probes: one poll at the
 * ceiling, which brings the window back to the ceiling if it finds the
 * next request.  That costs at most one ceiling per 16 times the ring goes
 * idle (a kick with nothing in the ring counts).  The ceiling is the ring's
 * busyloop_timeout, at most VHOST_BLK_POLL_MAX_US.  Everything here runs
 * under vq->mutex (or, at RESET_OWNER, with no worker left).
 */
static unsigned int vhost_blk_ceiling(struct vhost_blk_vq *bvq)
{
	return min_t(unsigned int, bvq->vq.busyloop_timeout,
		     VHOST_BLK_POLL_MAX_US);
}

void vhost_blk_poll_ceiling(struct vhost_blk_vq *bvq)
{
	bvq->poll_ceiling = vhost_blk_ceiling(bvq);
	bvq->poll_window = bvq->poll_ceiling;
	bvq->idle_since = 0;
	bvq->poll_next = false;
	bvq->poll_quiet = 0;
	bvq->poll_probe = false;
}

/* The window to poll for now that the ring is idle: 0 for none. */
static unsigned int vhost_blk_poll_window(struct vhost_blk_vq *bvq)
{
	if (bvq->poll_window || !bvq->poll_ceiling)
		return bvq->poll_window;
	if (!bvq->poll_probe &&
	    ++bvq->poll_quiet >= VHOST_BLK_POLL_PROBE_EVERY) {
		bvq->poll_quiet = 0;
		bvq->poll_probe = true;
	}
	return bvq->poll_probe ? bvq->poll_ceiling : 0;
}

static unsigned int vhost_blk_poll_halved(unsigned int window)
{
	return window / 2 < VHOST_BLK_POLL_MIN_US ? 0 : window / 2;
}

static void vhost_blk_poll_adapt(struct vhost_blk_vq *bvq)
{
	unsigned long now = vhost_blk_busy_clock();
	unsigned int window = bvq->poll_window;
	unsigned long gap = 0;

	/* local_clock() may lag a little on another CPU than the last one. */
	if (time_after(now, bvq->idle_since))
		gap = now - bvq->idle_since;
	bvq->idle_since = 0;
	if (gap > bvq->poll_ceiling)
		window = vhost_blk_poll_halved(window);
	else if (gap > window)
		/* Never above the ceiling, even one below the first step. */
		window = min_t(u64, max_t(u64, 2ULL * window,
					  VHOST_BLK_POLL_MIN_US),
			       bvq->poll_ceiling);
	bvq->poll_window = window;
	/* A probe is for a window of 0 only. */
	if (window)
		bvq->poll_probe = false;
}

enum vhost_blk_poll_end {
	VHOST_BLK_POLL_AVAIL,		/* the guest made requests available */
	VHOST_BLK_POLL_EXPIRED,		/* the window ran out */
	VHOST_BLK_POLL_YIELDED,		/* stopped early for someone else */
};

/*
 * Busy polling: with the avail ring empty the worker keeps guest
 * notifications off and, until endtime, completes the requests that finish
 * and watches the avail ring.  At low queue depth the guest's next request
 * then needs no kick and its completion no second wake-up of the worker:
 * one wake-up per request instead of three.  The window counts from the
 * first poll of the kick handler's run, so a guest cannot extend one run by
 * feeding a request just before it expires.  While the kick handler runs,
 * end_io leaves done_work alone (bvq->reporting), so work queued on the
 * worker means another ring needs it: polling stops then, as in vhost-net,
 * and the ring gets notifications again.  Called from the kick handler with
 * vq->mutex held and no plug (bios must be on their way).
 */
static enum vhost_blk_poll_end vhost_blk_busy_poll(struct vhost_blk_vq *bvq,
						   unsigned long endtime)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_dev *dev = &bvq->blk->dev;

	for (;;) {
		/*
		 * As KVM's halt polling: never while another task waits for
		 * this CPU, which may be the guest's own vCPU or, for a
		 * userspace driver, the thread that submits the next request
		 * (a wake-up does not always preempt the poller).
		 */
		if (need_resched() || !single_task_running() ||
		    signal_pending(current) || vhost_vq_has_work(vq))
			return VHOST_BLK_POLL_YIELDED;
		if (time_after(vhost_blk_busy_clock(), endtime))
			return VHOST_BLK_POLL_EXPIRED;
		if (!list_empty(&bvq->polled))
			vhost_blk_reap(bvq);
		if (!llist_empty(&bvq->done))
			vhost_blk_complete(bvq, true);
		/* Reporting hit a ring error: take nothing more. */
		if (bvq->stopped)
			return VHOST_BLK_POLL_YIELDED;
		if (!vhost_vq_avail_empty(dev, vq))
			return VHOST_BLK_POLL_AVAIL;
		cpu_relax();
	}
}

/*
 * The avail ring is empty and the ring has a polling window: poll, until
 * poll_end (set by the run's first poll), and adapt the window to what the
 * poll saw.  Returns true when the guest made requests available.
 */
static bool vhost_blk_poll_idle(struct vhost_blk_vq *bvq, unsigned int window,
				unsigned long *poll_end)
{
	unsigned long idle = vhost_blk_busy_clock();
	bool probe = bvq->poll_probe && !bvq->poll_window;
	enum vhost_blk_poll_end why;

	bvq->poll_next = false;
	bvq->poll_probe = false;
	if (!*poll_end)
		*poll_end = idle + window;
	why = vhost_blk_busy_poll(bvq, *poll_end);
	if (why == VHOST_BLK_POLL_AVAIL) {
		bvq->stats.poll_hits++;
		bvq->idle_since = 0;
		/* The probe caught it: polling pays off after all. */
		if (probe)
			bvq->poll_window = bvq->poll_ceiling;
		return true;
	}
	if (why == VHOST_BLK_POLL_EXPIRED) {
		bvq->stats.poll_misses++;
		if (!bvq->idle_since)
			bvq->idle_since = idle;
		else
			bvq->poll_window =
				vhost_blk_poll_halved(bvq->poll_window);
	}
	return false;
}

/*
 * Is the ring the only one set up (a kick file or a backend) on its
 * worker?  Only then may it poll its bios: no other ring's request waits
 * behind the worker's polling, and before the worker may sleep in the
 * block layer it reaps every polled request only it could end (bio.c).
 * Read racily, once per kick-handler run: a ring moved here meanwhile
 * counts from the next one (Documentation/vhost-blk.rst).
 */
static bool vhost_blk_worker_alone(struct vhost_blk_vq *bvq)
{
	struct vhost_blk *blk = bvq->blk;
	struct vhost_worker *worker;
	bool alone = true;
	unsigned int i;

	rcu_read_lock();
	worker = rcu_dereference(bvq->vq.worker);
	for (i = 0; i < blk->nvqs && alone; i++) {
		struct vhost_blk_vq *other = &blk->vqs[i];

		if (other != bvq &&
		    (READ_ONCE(other->vq.kick) ||
		     READ_ONCE(other->vq.private_data)) &&
		    rcu_access_pointer(other->vq.worker) == worker)
			alone = false;
	}
	rcu_read_unlock();
	return alone;
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
	unsigned long poll_end = 0;
	unsigned int window;
	struct file *backend;
	u64 start;
	u64 bytes = 0;
	bool polled;
	s64 ret;
	int head;

	mutex_lock(&vq->mutex);
	start = local_clock();
	bvq->held_waited = false;
	backend = vhost_vq_get_backend(vq);
	if (!backend || bvq->stopped)
		goto out_reap;
	/* Completions of bounced requests queue the kick again. */
	if (bvq->throttled)
		goto out_reap;

	if (unlikely(vhost_has_feature(vq, VHOST_F_LOG_ALL)))
		log = bvq->log;
	if (unlikely(vhost_blk_ceiling(bvq) != bvq->poll_ceiling))
		vhost_blk_poll_ceiling(bvq);
	/*
	 * While the ring polls, its reads and writes may be polled too
	 * (completion.c); the window shrinks to 0 for an idle guest.
	 */
	bvq->poll_bios = READ_ONCE(polled_completions) && bvq->poll_window &&
			 !bvq->blk->file &&
			 vhost_blk_bdev_polls(file_bdev(backend)) &&
			 vhost_blk_worker_alone(bvq);
	if (bvq->poll_bios && !READ_ONCE(bvq->blk->bios_polled))
		WRITE_ONCE(bvq->blk->bios_polled, true);

	/*
	 * From here on the handler reports what ends, at every
	 * VHOST_BLK_REPORT_EVERY, while it polls and when it leaves: end_io
	 * need not queue done_work, which could only run after this anyway.
	 */
	WRITE_ONCE(bvq->reporting, true);
	/* Pairs with the barrier of llist_add() in vhost_blk_req_put(). */
	smp_mb();
	vhost_disable_notify(dev, vq);
	blk_start_plug(&plug);
	do {
		head = vhost_get_vq_desc(vq, bvq->iov, VHOST_BLK_IOV_MAX,
					 &out, &in, log, &log_num);
		/* The core could not read a chain and has said why. */
		if (unlikely(head < 0)) {
			vhost_blk_ring_error(bvq);
			break;
		}
		if (head == vq->num) {
			/*
			 * Not while another task waits for this CPU: the
			 * poll would stop at once, and the window could not
			 * learn from it.  The gap is measured as with no
			 * window.
			 */
			window = single_task_running() ?
				 vhost_blk_poll_window(bvq) : 0;
			if (window && !bvq->poll_next) {
				/*
				 * Poll in a work batch of its own: the worker
				 * runs queued work in batches and
				 * vhost_vq_has_work() sees only what was
				 * queued after this batch began, so another
				 * ring's kick taken with ours would wait for
				 * the whole poll.  Notifications stay off.
				 */
				bvq->poll_next = true;
				vhost_poll_queue(&vq->poll);
				break;
			}
			if (window) {
				blk_finish_plug(&plug);
				polled = vhost_blk_poll_idle(bvq, window,
							     &poll_end);
				blk_start_plug(&plug);
				if (polled)
					continue;
				/* Reporting hit a ring error: take nothing more. */
				if (unlikely(bvq->stopped))
					break;
			} else if (bvq->poll_ceiling && !bvq->idle_since) {
				/* Measure the gap: it may be worth polling. */
				bvq->idle_since = vhost_blk_busy_clock();
				bvq->poll_next = false;
			}
			if (unlikely(vhost_enable_notify(dev, vq))) {
				vhost_disable_notify(dev, vq);
				continue;
			}
			break;
		}
		if (bvq->idle_since)
			vhost_blk_poll_adapt(bvq);
		ret = vhost_blk_handle_req(bvq, backend, head, out, in, log,
					   log_num);
		if (unlikely(ret == -EAGAIN)) {
			/* Waits for budget, with notifications off. */
			vhost_discard_vq_desc(vq, 1);
			break;
		}
		if (unlikely(ret < 0)) {
			vhost_blk_ring_error(bvq);
			break;
		}
		bytes += ret;
		/*
		 * A deep ring: send what is built so far and report what has
		 * finished, so the guest refills while we go on instead of
		 * waiting for the whole batch.
		 */
		if (!(++reqs % VHOST_BLK_REPORT_EVERY)) {
			blk_finish_plug(&plug);
			if (!list_empty(&bvq->polled))
				vhost_blk_reap(bvq);
			vhost_blk_complete(bvq, true);
			blk_start_plug(&plug);
			/* Reporting hit a ring error: take nothing more. */
			if (unlikely(bvq->stopped))
				break;
		}
		/*
		 * The vhost core walks a chain of up to vq->num indirect
		 * tables of 65536 descriptors each before it returns: give
		 * the CPU away between chains.
		 */
		cond_resched();
		/* vhost_exceeds_weight() takes an int: account in 64 bits. */
	} while (likely(!vhost_exceeds_weight(vq, reqs,
					      min_t(u64, bytes, INT_MAX))));
	blk_finish_plug(&plug);

	/*
	 * A request that ended while end_io still saw reporting set is on
	 * the done list: report it, what failed validation and what already
	 * finished, in one batch.
	 */
	if (!list_empty(&bvq->polled) && vhost_blk_reap(bvq)) {
		/* No interrupt ends them: done_work goes on polling. */
		vhost_vq_work_queue(vq, &bvq->done_work);
	}
	bvq->poll_bios = false;
	WRITE_ONCE(bvq->reporting, false);
	/* Pairs with the barrier of llist_add() in vhost_blk_req_put(). */
	smp_mb();
	vhost_blk_complete(bvq, true);
	goto out_unlock;
out_reap:
	/* done_work left the polling to this run (completion.c). */
	if (!list_empty(&bvq->polled))
		vhost_vq_work_queue(vq, &bvq->done_work);
out_unlock:
	vhost_blk_note_hold(bvq, start);
	mutex_unlock(&vq->mutex);
}
