// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk bio building and submission.
 *
 * Data requests are zero-copy: the guest's buffers are pinned with
 * bio_iov_iter_get_pages() (FOLL_PIN, as direct I/O does) and go into as few
 * bios as fit; the pages are released, and dirtied for reads, when each bio
 * ends.  Guest buffers that break the backend's DMA alignment or carry
 * segments that are not a multiple of its logical block size (the spec lets
 * a driver put the header and the data in one descriptor, for instance) go
 * through a bounce buffer instead: correct, just not zero-copy.  So do
 * writes to backends that need stable pages (dm-integrity, RAID5/6,
 * transports with data digests): the guest could change a buffer while the
 * backend computes its checksum.  Bounce memory is charged to the owner
 * (GFP_KERNEL_ACCOUNT) and each ring has at most VHOST_BLK_RING_BOUNCE_BYTES
 * of it in flight (request.c waits for budget).
 *
 * Every request holds one reference in req->pending for the submitter and
 * one per bio; the last vhost_blk_req_put() queues the completion.
 */
#include <linux/bio.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>

#include "blk.h"

static void vhost_blk_begin(struct vhost_blk_req *req)
{
	atomic_set(&req->pending, 1);
	atomic_inc(&req->bvq->ending);
}

static void vhost_blk_fail(struct vhost_blk_req *req)
{
	WRITE_ONCE(req->error, BLK_STS_IOERR);
}

static void vhost_blk_submit(struct vhost_blk_req *req, struct bio *bio)
{
	bio->bi_private = req;
	bio->bi_end_io = vhost_blk_bio_end_io;
	atomic_inc(&req->pending);
	/*
	 * Without REQ_NOWAIT submit_bio() may sleep until requests end: in
	 * bio_queue_enter() for a queue freeze, which waits for every
	 * request in flight, or for a tag.  The ring's polled requests end
	 * only when this worker polls them, so it reaps them all first, and
	 * those of any other ring on this worker (one that polled while it
	 * had the worker to itself, request.c).  That takes the backend's
	 * time for at most VHOST_BLK_POLLED_MAX requests a ring.
	 */
	if (!(bio->bi_opf & REQ_NOWAIT))
		vhost_blk_reap_all(req->bvq);
	submit_bio(bio);
}

static void vhost_blk_free_bounce(struct vhost_blk_req *req)
{
	unsigned int i;

	req->bvq->bounce_bytes -= (u64)req->nr_bounce << PAGE_SHIFT;
	for (i = 0; i < req->nr_bounce; i++)
		__free_page(req->bounce[i]);
	kvfree(req->bounce);
	kfree(req->bounce_iov);
	req->bounce = NULL;
	req->nr_bounce = 0;
	req->bounce_iov = NULL;
}

void vhost_blk_req_release(struct vhost_blk_req *req)
{
	/*
	 * 512e: a write registered as direct but never submitted (put back
	 * for budget, or failed before it reached the backend).
	 */
	if (unlikely(req->rmw_direct))
		vhost_blk_rmw_unregister(req);
	req->bvq->inflight_bytes -= req->cost;
	req->cost = 0;
	if (req->bvec)
		vhost_blk_file_release(req);
	if (req->bounce)
		vhost_blk_free_bounce(req);
	kfree(req->log);
	req->log = NULL;
	/* Range segments a kworker never got to (rmw.c on ENOMEM). */
	kfree(req->segs);
	req->segs = NULL;
	if (req->poll_bio) {
		list_del(&req->poll_entry);
		WRITE_ONCE(req->bvq->nr_polled, req->bvq->nr_polled - 1);
		bio_put(req->poll_bio);
		req->poll_bio = NULL;
	}
}

/*
 * Keep the guest iovecs a bounced read must be copied back to: the ring's
 * iovec array is reused by the next request.  Shared with rmw.c.
 */
int vhost_blk_bounce_save_iov(struct vhost_blk_req *req, struct iov_iter *iter)
{
	const struct iovec *iov = iter_iov(iter);
	size_t left = iov_iter_count(iter);
	unsigned int i, n = 0;

	req->bounce_iov = kmalloc_array(iter->nr_segs, sizeof(*iov),
					GFP_KERNEL_ACCOUNT);
	if (!req->bounce_iov)
		return -ENOMEM;
	for (i = 0; i < iter->nr_segs && left; i++) {
		size_t skip = i ? 0 : iter->iov_offset;
		size_t len = min(iov[i].iov_len - skip, left);

		req->bounce_iov[n].iov_base = iov[i].iov_base + skip;
		req->bounce_iov[n++].iov_len = len;
		left -= len;
	}
	req->bounce_iov_nr = n;
	req->bounce_read = true;
	return 0;
}

/*
 * Allocates bounce pages for @bytes, counted in the ring's bounce budget
 * until vhost_blk_req_release().  Shared with rmw.c.
 */
int vhost_blk_bounce_alloc(struct vhost_blk_req *req, size_t bytes)
{
	unsigned int nr = DIV_ROUND_UP(bytes, PAGE_SIZE);

	req->bounce = kvcalloc(nr, sizeof(*req->bounce), GFP_KERNEL_ACCOUNT);
	if (!req->bounce)
		return -ENOMEM;
	for (req->nr_bounce = 0; req->nr_bounce < nr; req->nr_bounce++) {
		struct page *page = alloc_page(GFP_KERNEL_ACCOUNT);

		if (!page)
			return -ENOMEM;
		req->bounce[req->nr_bounce] = page;
		req->bvq->bounce_bytes += PAGE_SIZE;
	}
	return 0;
}

/*
 * Allocates the bounce pages for the iov_iter_count(iter) bytes of a request
 * and, for a write, copies the guest's data in;
 * for a read, keeps the guest iovecs to copy back to on completion.  Shared
 * with file.c.
 */
int vhost_blk_bounce_fill(struct vhost_blk_req *req, struct iov_iter *iter,
			  bool write)
{
	size_t left = iov_iter_count(iter);
	unsigned int i;
	int ret;

	ret = vhost_blk_bounce_alloc(req, left);
	if (ret)
		return ret;
	if (!write)
		return vhost_blk_bounce_save_iov(req, iter);
	for (i = 0; i < req->nr_bounce; i++) {
		size_t len = min_t(size_t, left - i * PAGE_SIZE, PAGE_SIZE);

		if (copy_page_from_iter(req->bounce[i], 0, len, iter) != len)
			return -EFAULT;
	}
	return 0;
}

static int vhost_blk_bounce_rw(struct vhost_blk_req *req,
			       struct block_device *bdev, sector_t sector,
			       struct iov_iter *iter, blk_opf_t opf)
{
	size_t left = iov_iter_count(iter);
	unsigned int nr = DIV_ROUND_UP(left, PAGE_SIZE), i;
	struct bio *bio = NULL;
	int ret;

	ret = vhost_blk_bounce_fill(req, iter, op_is_write(opf));
	if (ret)
		return ret;

	/*
	 * len is a multiple of the logical block size and so is PAGE_SIZE,
	 * so every bio below ends on a block boundary.
	 */
	for (i = 0; i < nr; i++) {
		size_t len = min_t(size_t, left, PAGE_SIZE);

		if (!bio) {
			bio = bio_alloc(bdev, min_t(unsigned int, nr - i,
						    BIO_MAX_VECS),
					opf, GFP_KERNEL);
			bio->bi_iter.bi_sector = sector;
		}
		__bio_add_page(bio, req->bounce[i], len, 0);
		sector += len >> SECTOR_SHIFT;
		left -= len;
		if (bio->bi_vcnt == bio->bi_max_vecs || !left) {
			vhost_blk_submit(req, bio);
			bio = NULL;
		}
	}
	return 0;
}

bool vhost_blk_needs_bounce(struct block_device *bdev, struct iov_iter *iter,
			    bool write)
{
	return !bdev_iter_is_aligned(bdev, iter) ||
	       (write && bdev_stable_writes(bdev));
}

/*
 * Does a write taken now have to be stable when it completes?  Without
 * VIRTIO_BLK_F_FLUSH the guest sees a write-through disk and never flushes;
 * with it, VHOST_BLK_SET_WRITE_CACHE decides.  REQ_FUA does that in one
 * command where the device supports it, and the block layer adds the flush
 * where it does not.  Caller holds vq->mutex.
 */
bool vhost_blk_write_through(struct vhost_blk_vq *bvq)
{
	return !vhost_has_feature(&bvq->vq, VIRTIO_BLK_F_FLUSH) ||
	       READ_ONCE(bvq->blk->write_through);
}

/*
 * Can the backend complete REQ_POLLED bios?  A blk-mq disk that had poll
 * queues when it was set up (nvme poll_queues, null_blk poll_queues).
 * Bio-based devices (device mapper, nvme multipath's head) never get
 * polled bios from us.  Whether poll queues are still there is for the
 * block layer to say when the bio is submitted (see below): q->tag_set
 * may already be freed when the disk is gone.  Not where the block layer
 * may hold a bio and submit it later from a work item, where a refusal
 * could no longer be taken back: blk-throttle once a cgroup limit was set
 * on the disk (q->td stays until the disk goes), and zone write plugging.
 */
bool vhost_blk_bdev_polls(struct block_device *bdev)
{
	struct request_queue *q = bdev_get_queue(bdev);

#ifdef CONFIG_BLK_DEV_THROTTLING
	if (READ_ONCE(q->td))
		return false;
#endif
	return queue_is_mq(q) && (q->limits.features & BLK_FEAT_POLL) &&
	       !bdev_is_zoned(bdev);
}

/*
 * Sends the request as one REQ_POLLED bio (completion.c reaps it), if it
 * fits in one, as direct I/O polls only single-bio requests.  REQ_NOWAIT:
 * the worker must never sleep in the block layer waiting for a tag or a
 * queue freeze while its own polled requests, which only it reaps, hold
 * the tags.  What the block layer would have waited for, or refused (no
 * free tag, a frozen queue, a split, poll queues gone), ends the bio at
 * once with BLK_STS_AGAIN or BLK_STS_NOTSUPP; the request then goes the
 * usual way, unpolled.  REQ_NOMERGE: bio_poll() finds a bio's queue by
 * the cookie of the request it heads, and a bio merged into another
 * request (another ring's, or an unpolled one) has none, so it could only
 * be reaped by whoever polls that request.  Returns false, with @iter as
 * it was, if the request is still to be sent.  Our reference keeps the
 * bio valid for bio_poll() until the request is released.
 */
static bool vhost_blk_submit_polled(struct vhost_blk_req *req,
				    struct block_device *bdev, sector_t sector,
				    struct iov_iter *iter, blk_opf_t opf)
{
	struct vhost_blk_vq *bvq = req->bvq;
	struct iov_iter saved = *iter;
	struct bio *bio;

	/*
	 * Throttling may have been set up since the kick handler looked
	 * (this narrows the window, it cannot close it).
	 */
	if (iov_iter_npages(iter, BIO_MAX_VECS + 1) > BIO_MAX_VECS ||
	    !vhost_blk_bdev_polls(bdev))
		return false;
	bio = bio_alloc(bdev, bio_iov_vecs_to_alloc(iter, BIO_MAX_VECS),
			opf | REQ_POLLED | REQ_NOWAIT | REQ_NOMERGE,
			GFP_KERNEL);
	bio->bi_iter.bi_sector = sector;
	if (bio_iov_iter_get_pages(bio, iter)) {
		bio_put(bio);
		goto unpolled;
	}
	if (iov_iter_count(iter)) {
		/* More than one bio. */
		bio_release_pages(bio, false);
		bio_put(bio);
		goto unpolled;
	}
	if (!op_is_write(opf))
		bio_set_pages_dirty(bio);
	bio_get(bio);
	req->poll_bio = bio;
	list_add_tail(&req->poll_entry, &bvq->polled);
	WRITE_ONCE(bvq->nr_polled, bvq->nr_polled + 1);
	/*
	 * A refusal ends the bio inside submit_bio(), in this task: end_io
	 * then sets req->poll_refused instead of an error, and has released
	 * the pages.  The submitter's reference keeps the request.
	 */
	WRITE_ONCE(bvq->poll_submitting, bio);
	vhost_blk_submit(req, bio);
	WRITE_ONCE(bvq->poll_submitting, NULL);
	if (likely(!req->poll_refused))
		return true;
	req->poll_refused = false;
	list_del(&req->poll_entry);
	WRITE_ONCE(bvq->nr_polled, bvq->nr_polled - 1);
	req->poll_bio = NULL;
	bio_put(bio);
unpolled:
	*iter = saved;
	return false;
}

/* @bounce: from vhost_blk_needs_bounce(), with the ring's budget checked. */
void vhost_blk_submit_rw(struct vhost_blk_req *req, struct file *backend,
			 sector_t sector, struct iov_iter *iter, bool write,
			 bool bounce)
{
	struct block_device *bdev = file_bdev(backend);
	blk_opf_t opf = write ? REQ_OP_WRITE | REQ_SYNC | REQ_IDLE :
				REQ_OP_READ;
	struct bio *bio;

	if (write && vhost_blk_write_through(req->bvq)) {
		opf |= REQ_FUA;
		req->bvq->stats.fua_writes++;
	}

	vhost_blk_begin(req);

	if (unlikely(bounce)) {
		req->bvq->stats.bounced++;
		if (vhost_blk_bounce_rw(req, bdev, sector, iter, opf))
			vhost_blk_fail(req);
		goto out;
	}

	if (req->bvq->poll_bios &&
	    req->bvq->nr_polled < VHOST_BLK_POLLED_MAX &&
	    vhost_blk_submit_polled(req, bdev, sector, iter, opf))
		goto out;

	while (iov_iter_count(iter)) {
		bio = bio_alloc(bdev, bio_iov_vecs_to_alloc(iter, BIO_MAX_VECS),
				opf, GFP_KERNEL);
		bio->bi_iter.bi_sector = sector;
		if (unlikely(bio_iov_iter_get_pages(bio, iter))) {
			/* Guest memory went away under us. */
			bio_put(bio);
			vhost_blk_fail(req);
			break;
		}
		if (!write)
			bio_set_pages_dirty(bio);
		sector += bio_sectors(bio);
		vhost_blk_submit(req, bio);
	}
out:
	vhost_blk_req_put(req);
}

void vhost_blk_submit_flush(struct vhost_blk_req *req, struct file *backend)
{
	struct bio *bio = bio_alloc(file_bdev(backend), 0,
				    REQ_OP_WRITE | REQ_PREFLUSH, GFP_KERNEL);

	vhost_blk_begin(req);
	vhost_blk_submit(req, bio);
	vhost_blk_req_put(req);
}

/*
 * Sectors one segment of a range request may cover: the backend's limit
 * for the operation, at most VHOST_BLK_MAX_RANGE_SECTORS (so one bio's
 * 32-bit bi_size holds it), rounded down to the logical block size.  0: the
 * backend cannot do it (WRITE_ZEROES is never emulated with zero pages).
 */
unsigned int vhost_blk_range_limit(struct block_device *bdev, u32 type)
{
	unsigned int lbs = bdev_logical_block_size(bdev) >> SECTOR_SHIFT;
	unsigned int max;

	switch (type) {
	case VIRTIO_BLK_T_DISCARD:
		max = bdev_max_discard_sectors(bdev);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		max = bdev_write_zeroes_sectors(bdev);
		break;
	default:
		max = bdev_max_secure_erase_sectors(bdev);
		break;
	}
	return round_down(min(max, VHOST_BLK_MAX_RANGE_SECTORS), lbs);
}

/*
 * Segments have been validated by the caller: each fits the device and
 * vhost_blk_range_limit(), so each is one bio, completed through end_io
 * like reads and writes; the block layer splits it further as the device
 * needs.  At most VHOST_BLK_MAX_DISCARD_SEGMENTS bios, no waiting.
 */
void vhost_blk_submit_ranges(struct vhost_blk_req *req, struct file *backend,
			     u32 type,
			     const struct virtio_blk_discard_write_zeroes *segs,
			     unsigned int nseg)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct block_device *bdev = file_bdev(backend);
	struct bio *bio;
	blk_opf_t opf;
	unsigned int i;

	vhost_blk_begin(req);
	for (i = 0; i < nseg; i++) {
		u64 sector = vhost64_to_cpu(vq, (__force __virtio64)segs[i].sector);
		u32 nr = vhost32_to_cpu(vq, (__force __virtio32)segs[i].num_sectors);
		u32 flags = vhost32_to_cpu(vq, (__force __virtio32)segs[i].flags);

		switch (type) {
		case VIRTIO_BLK_T_DISCARD:
			opf = REQ_OP_DISCARD;
			break;
		case VIRTIO_BLK_T_WRITE_ZEROES:
			opf = REQ_OP_WRITE_ZEROES;
			if (!(flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
				opf |= REQ_NOUNMAP;
			break;
		default:
			opf = REQ_OP_SECURE_ERASE;
			break;
		}
		if (!nr)
			continue;
		bio = bio_alloc(bdev, 0, opf, GFP_KERNEL);
		bio->bi_iter.bi_sector = sector;
		bio->bi_iter.bi_size = nr << SECTOR_SHIFT;
		vhost_blk_submit(req, bio);
	}
	vhost_blk_req_put(req);
}
