// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk 512e: guest logical blocks smaller than the backend's.
 *
 * VHOST_BLK_SET_BLOCK_SIZE below the backend's logical block size (512-byte
 * sectors on a disk or file with 4 KiB blocks, as QEMU's
 * logical_block_size=512 on a 4Kn disk) sets blk->rmw when the backend is
 * attached.  request.c then validates requests
 * against the guest's block and asks here which path each takes:
 *
 *  - Reads that cover whole backend blocks, and writes that do unless they
 *    overlap a request queued here: the usual zero-copy path (bio.c,
 *    file.c).  Such writes, and aligned WRITE_ZEROES/SECURE_ERASE, are
 *    "direct": their backend blocks are in the interval tree
 *    blk->rmw_direct from when the ring takes them until their last bio or
 *    kiocb ends (vhost_blk_req_put()), or until they fail or are put back
 *    for budget before they were submitted (vhost_blk_req_release()).
 *  - Everything else - a read or write with a partial backend block at
 *    either end, a WRITE_ZEROES segment that is not whole blocks, and any
 *    write overlapping a write already queued - is queued on
 *    blk->rmw_queue for blk->rmw_work, the device's one work item, on a
 *    workqueue of its own (it waits for file.c's work).  It runs one
 *    request at a time, in the order they came.  A write (its blocks in
 *    the tree blk->rmw_queued) first waits until no direct write overlaps
 *    it - new ones cannot start: they see it queued and queue behind it -
 *    then does synchronous I/O through the request's bounce buffer, which
 *    covers whole backend blocks: reads the partial end blocks, puts the
 *    guest's data (copied in by the ring's worker when it took the write)
 *    between them, writes the whole span.  A read reads the span and
 *    copies from its offset in the bounce on the worker at completion
 *    (completion.c); it orders nothing.
 *
 * So two writes to different sectors of one backend block, in flight
 * together, never read the same old block and write back over each other:
 * one of them runs entirely before the other.  DISCARD is a hint: only the
 * whole backend blocks inside each segment are discarded, untracked.
 *
 * Bounds.  The bounce is at most one request plus two backend blocks,
 * counted in the ring's bounce and in-flight budgets (request.c).  The queue
 * holds at most the rings' request slots.  The worker never waits here: the
 * interval trees are under rmw_lock, a leaf spinlock held for one insert,
 * removal or overlap lookup, O(log n) each.  The kworker waits for direct
 * writes the rings have taken (at the backend, in a worker's plug, or
 * queued for file.c's work): their backend's time; its work per request
 * is at most one request's I/O plus two block reads (a WRITE_ZEROES: two
 * block read-modify-writes per segment and the segments' zeroing, within
 * the backend's limit), with cond_resched() between requests.  One kworker
 * per device, as file.c's.
 *
 * The trees are the device's: two devices (or anything else) writing one
 * backend are not ordered against each other, as for any shared disk.
 */
#include <linux/bio.h>
#include <linux/bvec.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/interval_tree_generic.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>

#include "blk.h"

static struct workqueue_struct *vhost_blk_rmw_wq;

#define VHOST_BLK_RMW_START(req)	((req)->rmw.start)
#define VHOST_BLK_RMW_LAST(req)		((req)->rmw.last)

INTERVAL_TREE_DEFINE(struct vhost_blk_req, rmw.rb, u64, rmw.subtree_last,
		     VHOST_BLK_RMW_START, VHOST_BLK_RMW_LAST, static inline,
		     vhost_blk_rmw_tree)

/* The backend blocks [pos, pos + len) touches, len > 0. */
static void vhost_blk_rmw_span(struct vhost_blk_req *req, u64 pos, u64 len)
{
	unsigned int b = req->bvq->blk->rmw_lbs;

	req->rmw.start = round_down(pos, b);
	req->rmw.last = round_up(pos + len, b) - 1;
}

static bool vhost_blk_rmw_aligned(struct vhost_blk_req *req, u64 pos, u64 len)
{
	return req->rmw.start == pos && req->rmw.last + 1 == pos + len;
}

/*
 * Registers a write as direct unless a queued request overlaps it (then it
 * must queue behind that one).  Returns true if registered.
 */
static bool vhost_blk_rmw_try_direct(struct vhost_blk_req *req)
{
	struct vhost_blk *blk = req->bvq->blk;
	unsigned long flags;
	bool direct;

	spin_lock_irqsave(&blk->rmw_lock, flags);
	direct = !vhost_blk_rmw_tree_iter_first(&blk->rmw_queued,
						req->rmw.start, req->rmw.last);
	if (direct) {
		vhost_blk_rmw_tree_insert(req, &blk->rmw_direct);
		req->rmw_direct = true;
	}
	spin_unlock_irqrestore(&blk->rmw_lock, flags);
	return direct;
}

/*
 * A direct write ended (from end_io: any context), or never reached the
 * backend (vhost_blk_req_release()).  Wakes rmw_work if it waits for it.
 */
void vhost_blk_rmw_unregister(struct vhost_blk_req *req)
{
	struct vhost_blk *blk = req->bvq->blk;
	struct vhost_blk_req *cur;
	unsigned long flags;

	spin_lock_irqsave(&blk->rmw_lock, flags);
	vhost_blk_rmw_tree_remove(req, &blk->rmw_direct);
	req->rmw_direct = false;
	cur = blk->rmw_cur;
	if (cur && req->rmw.start <= cur->rmw.last &&
	    cur->rmw.start <= req->rmw.last)
		wake_up(&blk->rmw_wq);
	spin_unlock_irqrestore(&blk->rmw_lock, flags);
}

/* Does a direct write overlap the request rmw_work runs? */
static bool vhost_blk_rmw_overlapped(struct vhost_blk *blk,
				     struct vhost_blk_req *req)
{
	unsigned long flags;
	bool ret;

	spin_lock_irqsave(&blk->rmw_lock, flags);
	ret = vhost_blk_rmw_tree_iter_first(&blk->rmw_direct, req->rmw.start,
					    req->rmw.last);
	spin_unlock_irqrestore(&blk->rmw_lock, flags);
	return ret;
}

/*
 * Does a read or write of [pos, pos + len) take the usual path?  Reads of
 * whole backend blocks do, untracked; writes of whole blocks do when no
 * queued request overlaps them, registered as direct.  false: the request
 * must be queued (vhost_blk_rmw_queue_rw(), after the bounce budget for
 * vhost_blk_rmw_bounce_bytes()).  Caller holds vq->mutex.
 */
bool vhost_blk_rmw_direct(struct vhost_blk_req *req, u64 pos, u64 len,
			  bool write)
{
	vhost_blk_rmw_span(req, pos, len);
	if (!vhost_blk_rmw_aligned(req, pos, len))
		return false;
	return !write || vhost_blk_rmw_try_direct(req);
}

u64 vhost_blk_rmw_bounce_bytes(struct vhost_blk_req *req)
{
	return round_up(req->rmw.last + 1 - req->rmw.start, PAGE_SIZE);
}

static void vhost_blk_rmw_enqueue(struct vhost_blk_req *req,
				  struct file *backend)
{
	struct vhost_blk *blk = req->bvq->blk;
	unsigned long flags;

	req->iocb.ki_filp = backend;
	req->bvq->stats.rmw++;
	atomic_set(&req->pending, 1);
	atomic_inc(&req->bvq->ending);
	spin_lock_irqsave(&blk->rmw_lock, flags);
	list_add_tail(&req->rmw_entry, &blk->rmw_queue);
	if (req->stat_type != VHOST_BLK_STAT_IN)
		vhost_blk_rmw_tree_insert(req, &blk->rmw_queued);
	spin_unlock_irqrestore(&blk->rmw_lock, flags);
	queue_work(vhost_blk_rmw_wq, &blk->rmw_work);
}

/* The guest's write into the bounce, at its offset in the span. */
static int vhost_blk_rmw_copy_in(struct vhost_blk_req *req,
				 struct iov_iter *iter)
{
	size_t off = req->rmw_skip, left = iov_iter_count(iter);

	while (left) {
		size_t poff = off & ~PAGE_MASK;
		size_t n = min_t(size_t, left, PAGE_SIZE - poff);

		if (copy_page_from_iter(req->bounce[off >> PAGE_SHIFT], poff, n,
					iter) != n)
			return -EFAULT;
		off += n;
		left -= n;
	}
	return 0;
}

/*
 * Queues a read or write vhost_blk_rmw_direct() refused.  req->bytes and
 * the budgets are set by the caller (vq->mutex held, on the ring's worker:
 * the guest's memory is ours to copy from).
 */
void vhost_blk_rmw_queue_rw(struct vhost_blk_req *req, struct file *backend,
			    u64 pos, struct iov_iter *iter, bool write)
{
	int ret;

	req->rmw_skip = pos - req->rmw.start;
	ret = vhost_blk_bounce_alloc(req, req->rmw.last + 1 - req->rmw.start);
	if (!ret && !write)
		ret = vhost_blk_bounce_save_iov(req, iter);
	if (!ret && write)
		ret = vhost_blk_rmw_copy_in(req, iter);
	if (ret) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (write) {
		req->rmw_fua = vhost_blk_write_through(req->bvq);
		if (req->rmw_fua)
			req->bvq->stats.fua_writes++;
	}
	vhost_blk_rmw_enqueue(req, backend);
}

/*
 * Range requests, segments validated against the guest's block.  DISCARD:
 * trimmed to the whole backend blocks inside each segment, untracked.
 * WRITE_ZEROES and SECURE_ERASE (whole backend blocks, checked by
 * request.c): direct when every segment is whole blocks and no queued
 * request overlaps their span, else false: vhost_blk_rmw_queue_ranges().
 */
bool vhost_blk_rmw_ranges_direct(struct vhost_blk_req *req, u32 type,
				 struct virtio_blk_discard_write_zeroes *segs,
				 unsigned int nseg)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	unsigned int b = req->bvq->blk->rmw_lbs, i;
	u64 lo = U64_MAX, hi = 0;
	bool aligned = true;

	for (i = 0; i < nseg; i++) {
		u64 pos = vhost64_to_cpu(vq, (__force __virtio64)segs[i].sector)
			  << SECTOR_SHIFT;
		u64 end = pos + ((u64)vhost32_to_cpu(vq,
				(__force __virtio32)segs[i].num_sectors) << SECTOR_SHIFT);

		if (type == VIRTIO_BLK_T_DISCARD) {
			u64 a = round_up(pos, b), z = round_down(end, b);

			a = z > a ? a : z;
			segs[i].sector = (__force __le64)cpu_to_vhost64(vq,
						a >> SECTOR_SHIFT);
			segs[i].num_sectors = (__force __le32)cpu_to_vhost32(vq,
						(z - a) >> SECTOR_SHIFT);
			continue;
		}
		if (pos == end)
			continue;
		if ((pos | end) & (b - 1))
			aligned = false;
		lo = min(lo, pos);
		hi = max(hi, end);
	}
	if (type == VIRTIO_BLK_T_DISCARD || lo >= hi)
		return true;
	vhost_blk_rmw_span(req, lo, hi - lo);
	return aligned && vhost_blk_rmw_try_direct(req);
}

void vhost_blk_rmw_queue_ranges(struct vhost_blk_req *req, struct file *backend,
				u32 type,
				const struct virtio_blk_discard_write_zeroes *segs,
				unsigned int nseg)
{
	if (vhost_blk_keep_ranges(req, type, segs, nseg))
		vhost_blk_rmw_enqueue(req, backend);
}

/*
 * Synchronous I/O of [pos, pos + len) to or from @pages (from offset 0 of
 * the first; len a multiple of the backend block, pos aligned to it).
 */
static int vhost_blk_rmw_io(struct vhost_blk *blk, struct file *backend,
			    struct page **pages, u64 pos, size_t len,
			    bool write, bool fua)
{
	unsigned int nr = DIV_ROUND_UP(len, PAGE_SIZE), i;
	struct bio_vec *bv;
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	if (!blk->file) {
		blk_opf_t opf = write ? REQ_OP_WRITE | REQ_SYNC : REQ_OP_READ;

		if (fua)
			opf |= REQ_FUA;
		for (i = 0; i < nr;) {
			unsigned int n = min_t(unsigned int, nr - i, BIO_MAX_VECS);
			struct bio *bio = bio_alloc(file_bdev(backend), n, opf,
						    GFP_KERNEL);

			bio->bi_iter.bi_sector = pos >> SECTOR_SHIFT;
			for (; n; n--, i++) {
				size_t l = min_t(size_t, len, PAGE_SIZE);

				__bio_add_page(bio, pages[i], l, 0);
				len -= l;
				pos += l;
			}
			ret = submit_bio_wait(bio);
			bio_put(bio);
			if (ret)
				return ret;
		}
		return 0;
	}

	bv = kvmalloc_array(nr, sizeof(*bv), GFP_KERNEL);
	if (!bv)
		return -ENOMEM;
	for (i = 0; i < nr; i++)
		bvec_set_page(&bv[i], pages[i],
			      min_t(size_t, len - (size_t)i * PAGE_SIZE, PAGE_SIZE), 0);
	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, bv, nr, len);
	init_sync_kiocb(&kiocb, backend);
	kiocb.ki_pos = pos;
	/* As file.c's: exactly these flags, never the file's own. */
	kiocb.ki_flags = IOCB_DIRECT | (fua ? IOCB_DSYNC : 0);
	if (write) {
		kiocb.ki_flags |= IOCB_WRITE;
		file_start_write(backend);
		ret = backend->f_op->write_iter(&kiocb, &iter);
		file_end_write(backend);
	} else {
		ret = backend->f_op->read_iter(&kiocb, &iter);
	}
	kvfree(bv);
	if (ret < 0)
		return ret;
	/* Short: the file shrank under us. */
	return (size_t)ret == len ? 0 : -EIO;
}

/*
 * Reads the backend block at span offset @off into @tmp and copies its bytes
 * outside [from, to) into the bounce: what the guest's write leaves as it
 * was.
 */
static int vhost_blk_rmw_fill(struct vhost_blk *blk, struct vhost_blk_req *req,
			      struct page *tmp, u64 off, unsigned int from,
			      unsigned int to)
{
	unsigned int b = blk->rmw_lbs;
	struct page *dst = req->bounce[off >> PAGE_SHIFT];
	size_t doff = off & ~PAGE_MASK;
	int ret;

	ret = vhost_blk_rmw_io(blk, req->iocb.ki_filp, &tmp,
			       req->rmw.start + off, b, false, false);
	if (ret)
		return ret;
	if (from)
		memcpy_page(dst, doff, tmp, 0, from);
	if (to < b)
		memcpy_page(dst, doff + to, tmp, to, b - to);
	return 0;
}

static int vhost_blk_rmw_write(struct vhost_blk *blk, struct vhost_blk_req *req,
			       struct page *tmp)
{
	unsigned int b = blk->rmw_lbs;
	u64 span = req->rmw.last + 1 - req->rmw.start;
	u64 head = req->rmw_skip, end = req->rmw_skip + req->bytes;
	u64 tail = round_down(end, b);
	int ret = 0;

	if (head)
		ret = vhost_blk_rmw_fill(blk, req, tmp, 0, head,
					 tail ? b : end);
	if (!ret && end < span && (tail || !head))
		ret = vhost_blk_rmw_fill(blk, req, tmp, tail, 0, end - tail);
	if (ret)
		return ret;
	return vhost_blk_rmw_io(blk, req->iocb.ki_filp, req->bounce,
				req->rmw.start, span, true, req->rmw_fua);
}

/* Zeroes [from, to) of the backend block at @pos by read-modify-write. */
static int vhost_blk_rmw_zero_part(struct vhost_blk *blk, struct file *backend,
				   struct page *tmp, u64 pos, unsigned int from,
				   unsigned int to)
{
	int ret;

	ret = vhost_blk_rmw_io(blk, backend, &tmp, pos, blk->rmw_lbs, false,
			       false);
	if (ret)
		return ret;
	memzero_page(tmp, from, to - from);
	return vhost_blk_rmw_io(blk, backend, &tmp, pos, blk->rmw_lbs, true,
				false);
}

/* Whole backend blocks [pos, pos + len): the backend's own operation. */
static int vhost_blk_rmw_zero_blocks(struct vhost_blk *blk,
				     struct file *backend, u32 type, u32 flags,
				     u64 pos, u64 len)
{
	sector_t sector = pos >> SECTOR_SHIFT, nr = len >> SECTOR_SHIFT;

	if (blk->file)
		return vhost_blk_file_zero(backend, type, flags, pos, len);
	if (type == VIRTIO_BLK_T_SECURE_ERASE)
		return blkdev_issue_secure_erase(file_bdev(backend), sector, nr,
						 GFP_KERNEL);
	/* Never zero pages written by us: the backend offloads it or fails. */
	return blkdev_issue_zeroout(file_bdev(backend), sector, nr, GFP_KERNEL,
				    BLKDEV_ZERO_NOFALLBACK |
				    (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP ?
				     0 : BLKDEV_ZERO_NOUNMAP));
}

/* WRITE_ZEROES with partial blocks, or a range request queued behind one. */
static int vhost_blk_rmw_ranges(struct vhost_blk *blk, struct vhost_blk_req *req,
				struct page *tmp)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct file *backend = req->iocb.ki_filp;
	unsigned int b = blk->rmw_lbs, i;
	int ret = 0;

	for (i = 0; i < req->nseg && !ret; i++) {
		u64 pos = vhost64_to_cpu(vq, (__force __virtio64)req->segs[i].sector)
			  << SECTOR_SHIFT;
		u64 end = pos + ((u64)vhost32_to_cpu(vq,
				(__force __virtio32)req->segs[i].num_sectors) << SECTOR_SHIFT);
		u32 flags = vhost32_to_cpu(vq, (__force __virtio32)req->segs[i].flags);
		u64 head = round_down(pos, b), a = round_up(pos, b);
		u64 tail = round_down(end, b);

		if (pos == end)
			continue;
		/* A partial first block; it may be the last one too. */
		if (pos != head)
			ret = vhost_blk_rmw_zero_part(blk, backend, tmp, head,
						      pos - head,
						      min(end, head + b) - head);
		/* A partial last block of its own. */
		if (!ret && end != tail && tail >= a)
			ret = vhost_blk_rmw_zero_part(blk, backend, tmp, tail, 0,
						      end - tail);
		if (!ret && tail > a)
			ret = vhost_blk_rmw_zero_blocks(blk, backend,
							req->range_type, flags,
							a, tail - a);
		cond_resched();
	}
	kfree(req->segs);
	req->segs = NULL;
	return ret;
}

static int vhost_blk_rmw_run(struct vhost_blk *blk, struct vhost_blk_req *req,
			     struct page *tmp)
{
	struct file *backend = req->iocb.ki_filp;
	const struct cred *old_cred = NULL;
	int ret;

	/* As file.c: the file's opener's quotas and LSM checks apply. */
	if (blk->file)
		old_cred = override_creds(backend->f_cred);
	switch (req->stat_type) {
	case VHOST_BLK_STAT_IN:
		ret = vhost_blk_rmw_io(blk, backend, req->bounce,
				       req->rmw.start,
				       req->rmw.last + 1 - req->rmw.start,
				       false, false);
		break;
	case VHOST_BLK_STAT_OUT:
		ret = vhost_blk_rmw_write(blk, req, tmp);
		break;
	default:
		ret = vhost_blk_rmw_ranges(blk, req, tmp);
		break;
	}
	if (old_cred)
		revert_creds(old_cred);
	return ret;
}

static void vhost_blk_rmw_work(struct work_struct *work)
{
	struct vhost_blk *blk = container_of(work, struct vhost_blk, rmw_work);
	bool write;
	struct vhost_blk_req *req;
	struct page *tmp = NULL;
	unsigned long flags;
	int ret;

	for (;;) {
		spin_lock_irqsave(&blk->rmw_lock, flags);
		req = list_first_entry_or_null(&blk->rmw_queue,
					       struct vhost_blk_req, rmw_entry);
		blk->rmw_cur = req;
		spin_unlock_irqrestore(&blk->rmw_lock, flags);
		if (!req)
			break;
		write = req->stat_type != VHOST_BLK_STAT_IN;

		/*
		 * The direct writes it overlaps were taken before it; no new
		 * one starts while it is queued.
		 */
		if (write)
			wait_event(blk->rmw_wq, !vhost_blk_rmw_overlapped(blk, req));
		if (!tmp)
			tmp = alloc_page(GFP_KERNEL);
		ret = tmp ? vhost_blk_rmw_run(blk, req, tmp) : -ENOMEM;

		spin_lock_irqsave(&blk->rmw_lock, flags);
		list_del(&req->rmw_entry);
		if (write)
			vhost_blk_rmw_tree_remove(req, &blk->rmw_queued);
		blk->rmw_cur = NULL;
		spin_unlock_irqrestore(&blk->rmw_lock, flags);

		if (ret)
			WRITE_ONCE(req->error, ret == -EOPNOTSUPP ?
				   BLK_STS_NOTSUPP : BLK_STS_IOERR);
		vhost_blk_req_put(req);
		cond_resched();
	}
	if (tmp)
		__free_page(tmp);
}

/* With the backend, under dev.mutex: fixed while any ring is attached. */
void vhost_blk_rmw_attach(struct vhost_blk *blk, struct file *backend)
{
	blk->rmw_lbs = blk->file ? blk->file_lbs :
		       bdev_logical_block_size(file_bdev(backend));
	blk->rmw = blk->guest_lbs && blk->guest_lbs < blk->rmw_lbs;
}

void vhost_blk_rmw_dev_init(struct vhost_blk *blk)
{
	spin_lock_init(&blk->rmw_lock);
	INIT_LIST_HEAD(&blk->rmw_queue);
	blk->rmw_queued = RB_ROOT_CACHED;
	blk->rmw_direct = RB_ROOT_CACHED;
	init_waitqueue_head(&blk->rmw_wq);
	INIT_WORK(&blk->rmw_work, vhost_blk_rmw_work);
}

/* At release, after every ring drained, as vhost_blk_file_dev_cleanup(). */
void vhost_blk_rmw_dev_cleanup(struct vhost_blk *blk)
{
	flush_work(&blk->rmw_work);
}

/*
 * Its own workqueue: rmw_work waits for direct writes, and on a file
 * backend those may be file.c's work items (WRITE_ZEROES); sharing one
 * workqueue's max_active with them could leave them waiting behind us.
 */
int vhost_blk_rmw_init(void)
{
	vhost_blk_rmw_wq = alloc_workqueue("vhost-blk-rmw", WQ_UNBOUND,
					   WQ_MAX_ACTIVE);
	return vhost_blk_rmw_wq ? 0 : -ENOMEM;
}

void vhost_blk_rmw_exit(void)
{
	destroy_workqueue(vhost_blk_rmw_wq);
}
