// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk regular-file backends: raw image files opened with O_DIRECT.
 *
 * The file path is a second "submit" beside bio.c, chosen once at
 * VHOST_BLK_SET_BACKEND (blk->file): request.c parses and validates every
 * request the same way and calls here instead of building bios.
 *
 * Reads and writes are async direct I/O, as drivers/block/loop.c's
 * lo_rw_aio() does them: a kiocb with IOCB_DIRECT on ->read_iter or
 * ->write_iter over an ITER_BVEC.  The bvec holds the guest's own pages,
 * pinned with iov_iter_extract_pages() (FOLL_PIN, zero-copy), or the bounce
 * pages of bio.c when the guest's buffers break the file's direct-I/O
 * alignment.  ki_complete ends the request like a bio's end_io does
 * (vhost_blk_req_put()); the pins are dropped, and read pages dirtied, when
 * the request is released on the ring's worker.
 *
 * FLUSH (vfs_fsync) and DISCARD/WRITE_ZEROES (vfs_fallocate) are
 * synchronous calls that can take long: they run on vhost_blk_file_wq, never
 * on the vhost worker, and complete through the same vhost_blk_req_put().
 * Each device has one work item for them (blk->file_work), so a guest
 * occupies at most one kworker however many it queues (a ring full of
 * FLUSHes on every queue: before, up to 256 concurrent fsyncs of one
 * file), and the flushes that arrive during one fsync share the next
 * (group commit).  The workqueue runs WQ_MAX_ACTIVE (512) devices' work at
 * once: only that many devices on hung filesystems (a dead NFS server, a
 * FUSE daemon that never answers) hold up the file work of the others.
 * Range requests count against the ring's in-flight budget.
 */
#include <linux/bvec.h>
#include <linux/cred.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/stat.h>
#include <linux/virtio_blk.h>
#include <linux/workqueue.h>

#include "blk.h"

static struct workqueue_struct *vhost_blk_file_wq;

/*
 * Checks a regular file for use as a backend and finds its geometry: the
 * logical block size the device uses (the file's direct-I/O offset
 * alignment, at least 512 bytes) and the guest buffer alignment below
 * which requests are bounced.  Errors (Documentation/vhost-blk.rst): EINVAL
 * for a file not opened with O_DIRECT, EOPNOTSUPP for a file or filesystem
 * without direct I/O or with an alignment above the page size.
 */
int vhost_blk_file_check(struct file *file, unsigned int *lbs,
			 unsigned int *dma_mask)
{
	struct inode *inode = file_inode(file);
	struct block_device *sb_bdev = inode->i_sb->s_bdev;
	struct kstat st = {};
	unsigned int offset_align = SECTOR_SIZE, mem_align = SECTOR_SIZE;
	int ret;

	if (!(file->f_flags & O_DIRECT))
		return -EINVAL;
	if (!(file->f_mode & FMODE_CAN_ODIRECT) || !file->f_op->read_iter ||
	    !file->f_op->write_iter)
		return -EOPNOTSUPP;

	ret = vfs_getattr(&file->f_path, &st, STATX_DIOALIGN,
			  AT_STATX_SYNC_AS_STAT);
	if (ret)
		return ret;
	if (st.result_mask & STATX_DIOALIGN) {
		/* 0: this file cannot do direct I/O (ext4 data=journal...). */
		if (!st.dio_offset_align || !st.dio_mem_align)
			return -EOPNOTSUPP;
		offset_align = st.dio_offset_align;
		mem_align = st.dio_mem_align;
	} else if (sb_bdev) {
		/* What iomap requires when the filesystem does not say. */
		offset_align = bdev_logical_block_size(sb_bdev);
		mem_align = bdev_dma_alignment(sb_bdev) + 1;
	}
	/*
	 * Filesystems without a block device that do not report an alignment
	 * (tmpfs, network filesystems) take any: 512 bytes, the virtio
	 * sector, is the smallest block the guest can be given.
	 */
	offset_align = max(offset_align, SECTOR_SIZE);
	/* bio.c's bounce buffers are whole pages of whole blocks. */
	if (offset_align > PAGE_SIZE || !is_power_of_2(offset_align) ||
	    mem_align > PAGE_SIZE || !is_power_of_2(mem_align))
		return -EOPNOTSUPP;
	*lbs = offset_align;
	*dma_mask = mem_align - 1;
	return 0;
}

/* Capacity in 512-byte sectors: i_size now, whole logical blocks only. */
u64 vhost_blk_file_nr_sectors(struct vhost_blk *blk, struct file *file)
{
	u64 size = i_size_read(file_inode(file));

	return round_down(size, blk->file_lbs) >> SECTOR_SHIFT;
}

/*
 * Bounce what direct I/O on the file would refuse, and writes to a file
 * whose pages must not change under I/O (a filesystem on dm-integrity,
 * RAID5/6: SB_I_STABLE_WRITES), as bio.c does for block devices.  The
 * pinned pages become one bvec entry per page, and the filesystem wants
 * every entry a whole number of blocks: a guest buffer must start
 * block-aligned within its page, not only at the file's memory alignment.
 */
bool vhost_blk_file_needs_bounce(struct vhost_blk *blk, struct file *file,
				 struct iov_iter *iter, bool write)
{
	return !iov_iter_is_aligned(iter,
				    blk->file_dma_mask | (blk->file_lbs - 1),
				    blk->file_lbs - 1) ||
	       (write && mapping_stable_writes(file->f_mapping));
}

static void vhost_blk_file_fail(struct vhost_blk_req *req, long ret)
{
	WRITE_ONCE(req->error, ret == -EOPNOTSUPP ? BLK_STS_NOTSUPP :
						    BLK_STS_IOERR);
}

/* Called with the request's last reference taken by vhost_blk_req_put(). */
static void vhost_blk_file_rw_complete(struct kiocb *iocb, long ret)
{
	struct vhost_blk_req *req = container_of(iocb, struct vhost_blk_req,
						 iocb);

	/* A short transfer (the file shrank under us) fails too. */
	if (unlikely(ret < 0 || ret != req->bytes))
		vhost_blk_file_fail(req, ret);
	if (iocb->ki_flags & IOCB_WRITE)
		kiocb_end_write(iocb);
	vhost_blk_req_put(req);
}

/*
 * Pins the guest's pages into req->bvec, one entry per page (no entry
 * crosses a page).  iter is a user iovec of at most
 * VHOST_BLK_MAX_REQUEST_BYTES over at most VHOST_BLK_IOV_MAX segments, so
 * the array has at most 16384 + VHOST_BLK_IOV_MAX entries.
 */
static int vhost_blk_file_pin(struct vhost_blk_req *req,
			      struct iov_iter *iter)
{
	unsigned int max = iov_iter_npages(iter, INT_MAX);
	struct page *chunk[64];

	req->bvec = kvmalloc_array(max, sizeof(*req->bvec),
				   GFP_KERNEL_ACCOUNT);
	if (!req->bvec)
		return -ENOMEM;
	req->pinned = iov_iter_extract_will_pin(iter);
	while (iov_iter_count(iter)) {
		struct page **pages = chunk;
		unsigned int i, n;
		size_t off;
		ssize_t got;

		if (req->nr_bvec == max)
			return -EFAULT;
		got = iov_iter_extract_pages(iter, &pages, iov_iter_count(iter),
					     min_t(unsigned int, max - req->nr_bvec,
						   ARRAY_SIZE(chunk)),
					     0, &off);
		if (got <= 0)
			return got ? got : -EFAULT;
		n = DIV_ROUND_UP(off + got, PAGE_SIZE);
		for (i = 0; i < n; i++) {
			size_t len = min_t(size_t, got, PAGE_SIZE - off);

			bvec_set_page(&req->bvec[req->nr_bvec++], chunk[i],
				      len, off);
			got -= len;
			off = 0;
		}
	}
	return 0;
}

/* The bounce pages as a bvec: whole pages, the last one partly. */
static int vhost_blk_file_bounce_bvec(struct vhost_blk_req *req)
{
	size_t left = req->bytes;
	unsigned int i;

	req->bvec = kvmalloc_array(req->nr_bounce, sizeof(*req->bvec),
				   GFP_KERNEL_ACCOUNT);
	if (!req->bvec)
		return -ENOMEM;
	for (i = 0; i < req->nr_bounce; i++) {
		size_t len = min_t(size_t, left, PAGE_SIZE);

		bvec_set_page(&req->bvec[i], req->bounce[i], len, 0);
		left -= len;
	}
	req->nr_bvec = req->nr_bounce;
	return 0;
}

/*
 * Called from vhost_blk_req_release() on the ring's worker (or a detach,
 * or release): process context, so dirtying read pages may sleep.
 */
void vhost_blk_file_release(struct vhost_blk_req *req)
{
	unsigned int i;

	if (req->pinned) {
		for (i = 0; i < req->nr_bvec; i++)
			unpin_user_pages_dirty_lock(&req->bvec[i].bv_page, 1,
						    req->pinned_dirty);
	}
	kvfree(req->bvec);
	req->bvec = NULL;
	req->nr_bvec = 0;
	req->pinned = false;
}

/*
 * Same contract as vhost_blk_submit_rw(): @bounce from
 * vhost_blk_file_needs_bounce() with the budget checked, req->bytes set.
 * ->read_iter/->write_iter may sleep on the worker for the filesystem's
 * own locks (ext4 and xfs wait for direct I/O in flight before a write that
 * is not aligned to their block size) and a frozen filesystem: at most one
 * request's I/O time each, like a bio waiting for a tag.
 */
void vhost_blk_file_rw(struct vhost_blk_req *req, struct file *file,
		       sector_t sector, struct iov_iter *iter, bool write,
		       bool bounce)
{
	struct kiocb *iocb = &req->iocb;
	struct iov_iter bvec_iter;
	ssize_t ret;

	atomic_set(&req->pending, 1);
	atomic_inc(&req->bvq->ending);

	if (unlikely(bounce)) {
		req->bvq->stats.bounced++;
		ret = vhost_blk_bounce_fill(req, iter, write);
		if (!ret)
			ret = vhost_blk_file_bounce_bvec(req);
	} else {
		ret = vhost_blk_file_pin(req, iter);
		req->pinned_dirty = !write;
	}
	if (ret) {
		vhost_blk_file_fail(req, ret);
		goto out;
	}

	iov_iter_bvec(&bvec_iter, write ? ITER_SOURCE : ITER_DEST, req->bvec,
		      req->nr_bvec, req->bytes);
	init_sync_kiocb(iocb, file);
	iocb->ki_pos = (loff_t)sector << SECTOR_SHIFT;
	/*
	 * Exactly these flags, as loop.c's lo_rw_aio(): not the file's own
	 * (IOCB_APPEND from an O_APPEND set with F_SETFL would send every
	 * write to the end of the file).
	 */
	iocb->ki_flags = IOCB_DIRECT;
	iocb->ki_complete = vhost_blk_file_rw_complete;
	/* Write-through: IOCB_DSYNC is the file's REQ_FUA (bio.c). */
	if (write && vhost_blk_write_through(req->bvq)) {
		iocb->ki_flags |= IOCB_DSYNC;
		req->bvq->stats.fua_writes++;
	}

	atomic_inc(&req->pending);
	if (write) {
		kiocb_start_write(iocb);
		iocb->ki_flags |= IOCB_WRITE;
		ret = file->f_op->write_iter(iocb, &bvec_iter);
	} else {
		ret = file->f_op->read_iter(iocb, &bvec_iter);
	}
	if (ret != -EIOCBQUEUED)
		vhost_blk_file_rw_complete(iocb, ret);
out:
	vhost_blk_req_put(req);
}

/*
 * One DISCARD or WRITE_ZEROES range of a file: fallocate(PUNCH_HOLE), or for
 * WRITE_ZEROES without the unmap flag fallocate(ZERO_RANGE), as loop.c:
 * zeroes stay allocated unless the guest unmaps.  Shared with rmw.c.
 */
int vhost_blk_file_zero(struct file *file, u32 type, u32 flags, loff_t pos,
			loff_t len)
{
	int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;

	if (type == VIRTIO_BLK_T_WRITE_ZEROES &&
	    !(flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
		mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE;
	return vfs_fallocate(file, mode, pos, len);
}

/* DISCARD and WRITE_ZEROES: the segments were validated by request.c. */
static int vhost_blk_file_fallocate(struct vhost_blk_req *req)
{
	struct vhost_virtqueue *vq = &req->bvq->vq;
	struct file *file = req->iocb.ki_filp;
	unsigned int i;
	int ret = 0;

	for (i = 0; i < req->nseg && !ret; i++) {
		u64 sector = vhost64_to_cpu(vq, (__force __virtio64)req->segs[i].sector);
		u32 nr = vhost32_to_cpu(vq, (__force __virtio32)req->segs[i].num_sectors);
		u32 flags = vhost32_to_cpu(vq, (__force __virtio32)req->segs[i].flags);

		if (nr)
			ret = vhost_blk_file_zero(file, req->range_type, flags,
						  (loff_t)sector << SECTOR_SHIFT,
						  (loff_t)nr << SECTOR_SHIFT);
	}
	return ret;
}

static void vhost_blk_file_end(struct vhost_blk_req *req, int ret)
{
	kfree(req->segs);
	req->segs = NULL;
	if (ret)
		vhost_blk_file_fail(req, ret);
	vhost_blk_req_put(req);
}

static void vhost_blk_file_work(struct work_struct *work)
{
	struct vhost_blk *blk = container_of(work, struct vhost_blk,
					     file_work);
	struct vhost_blk_req *req, *next;
	struct file *synced = NULL;
	const struct cred *old_cred;
	LIST_HEAD(batch);
	int ret = 0;

	/*
	 * Everything queued so far.  What arrives from here on waits for the
	 * next run: a FLUSH taken now was queued after the writes it covers
	 * completed, so the fsync below, started after this, covers them.
	 */
	spin_lock(&blk->file_lock);
	list_splice_init(&blk->file_queue, &batch);
	spin_unlock(&blk->file_lock);

	/*
	 * As the file's opener, not as the kworker (root, every capability):
	 * quotas, the filesystem's reserved blocks and LSM checks apply to
	 * the owner's requests as to its own fallocate and fsync.
	 *
	 * The flushes first, one fsync for all: they need not wait for ranges
	 * that have not completed (a guest's fstrim, a DISCARD blocked by a
	 * frozen filesystem).  Their file is the backend they were taken
	 * with; a backend is replaced only once every request of the old one
	 * completed, so all of them share one (compared, never used after
	 * its requests are put).
	 */
	list_for_each_entry_safe(req, next, &batch, file_entry) {
		struct file *file = req->iocb.ki_filp;

		if (req->stat_type != VHOST_BLK_STAT_FLUSH)
			continue;
		list_del(&req->file_entry);
		if (file != synced) {
			old_cred = override_creds(file->f_cred);
			ret = vfs_fsync(file, 0);
			revert_creds(old_cred);
			synced = file;
		}
		vhost_blk_file_end(req, ret);
		/* Rings of up to 32768 flushes each, on up to 256 rings. */
		cond_resched();
	}

	/* DISCARD and WRITE_ZEROES, in the order they came. */
	list_for_each_entry_safe(req, next, &batch, file_entry) {
		list_del(&req->file_entry);
		old_cred = override_creds(req->iocb.ki_filp->f_cred);
		ret = vhost_blk_file_fallocate(req);
		revert_creds(old_cred);
		vhost_blk_file_end(req, ret);
		cond_resched();
	}
}

static void vhost_blk_file_queue(struct vhost_blk_req *req, struct file *file)
{
	struct vhost_blk *blk = req->bvq->blk;

	req->iocb.ki_filp = file;
	atomic_set(&req->pending, 1);
	atomic_inc(&req->bvq->ending);
	spin_lock(&blk->file_lock);
	list_add_tail(&req->file_entry, &blk->file_queue);
	spin_unlock(&blk->file_lock);
	queue_work(vhost_blk_file_wq, &blk->file_work);
}

void vhost_blk_file_dev_init(struct vhost_blk *blk)
{
	spin_lock_init(&blk->file_lock);
	INIT_LIST_HEAD(&blk->file_queue);
	INIT_WORK(&blk->file_work, vhost_blk_file_work);
}

/*
 * At release, after every ring drained: file_work may still be returning
 * from the run that put the last request.
 */
void vhost_blk_file_dev_cleanup(struct vhost_blk *blk)
{
	flush_work(&blk->file_work);
}

void vhost_blk_file_flush(struct vhost_blk_req *req, struct file *file)
{
	vhost_blk_file_queue(req, file);
}

/*
 * DISCARD -> fallocate(PUNCH_HOLE), WRITE_ZEROES -> fallocate(ZERO_RANGE),
 * or PUNCH_HOLE with the unmap flag; SECURE_ERASE is not offered
 * (vhost_blk_range_limit() returns 0).  A filesystem without the mode
 * answers EOPNOTSUPP: the request completes with VIRTIO_BLK_S_UNSUPP.
 */
void vhost_blk_file_ranges(struct vhost_blk_req *req, struct file *file,
			   u32 type,
			   const struct virtio_blk_discard_write_zeroes *segs,
			   unsigned int nseg)
{
	if (vhost_blk_keep_ranges(req, type, segs, nseg))
		vhost_blk_file_queue(req, file);
}

/*
 * A copy of a range request's validated segments for the kworker that
 * runs it (file.c, rmw.c), freed there.  false: no memory, the request
 * was completed with VIRTIO_BLK_S_IOERR.
 */
bool vhost_blk_keep_ranges(struct vhost_blk_req *req, u32 type,
			   const struct virtio_blk_discard_write_zeroes *segs,
			   unsigned int nseg)
{
	req->segs = kmemdup_array(segs, nseg, sizeof(*segs),
				  GFP_KERNEL_ACCOUNT);
	if (!req->segs) {
		vhost_blk_finish_now(req, VIRTIO_BLK_S_IOERR);
		return false;
	}
	req->nseg = nseg;
	req->range_type = type;
	return true;
}

unsigned int vhost_blk_file_range_limit(struct vhost_blk *blk,
					struct file *file, u32 type)
{
	if (type == VIRTIO_BLK_T_SECURE_ERASE || !file->f_op->fallocate)
		return 0;
	return round_down(VHOST_BLK_MAX_RANGE_SECTORS,
			  blk->file_lbs >> SECTOR_SHIFT);
}

int vhost_blk_file_init(void)
{
	/* Unbound: an fsync or a hole punch must not hold up a CPU's work. */
	vhost_blk_file_wq = alloc_workqueue("vhost-blk-file", WQ_UNBOUND,
					    WQ_MAX_ACTIVE);
	return vhost_blk_file_wq ? 0 : -ENOMEM;
}

void vhost_blk_file_exit(void)
{
	destroy_workqueue(vhost_blk_file_wq);
}
