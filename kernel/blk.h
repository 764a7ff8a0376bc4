/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhost-blk internals shared by the device (device.c), the request path
 * (request.c), bio submission (bio.c), regular-file submission (file.c),
 * completion (completion.c) and the legacy worker ioctl (workers.c).
 *
 * Lock order: vhost_blk.dev.mutex -> vhost_virtqueue.mutex; file_lock and
 * serial_lock are leaves, taken in process context only; rmw_lock is a
 * leaf taken from end_io too (irqsave).
 */
#ifndef _VHOST_BLK_INTERNAL_H
#define _VHOST_BLK_INTERNAL_H

#include <linux/blkdev.h>
#include <linux/llist.h>
#include <linux/rbtree.h>
#include <linux/spinlock.h>
#include <linux/uio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/vhost_blk.h>

#include "vhost.h"

/* Requests handled per kick before yielding the worker to other rings. */
#define VHOST_BLK_WEIGHT	256
/* How long vhost_blk_reap_all() spins before it sleeps between polls. */
#define VHOST_BLK_REAP_SPIN_NS		(100 * NSEC_PER_USEC)
/*
 * Once one reap before a blocking submission has lasted this long, the
 * kick-handler run stops waiting for other rings' mutexes: after a ring
 * moved, two workers may each hold the ring the other waits for
 * (completion.c).
 */
#define VHOST_BLK_REAP_HELD_NS		NSEC_PER_MSEC

/*
 * Polled requests per ring, in flight or not yet reported: what one reap
 * walks, and how many poll-queue tags a ring's unreaped requests can hold.
 */
#define VHOST_BLK_POLLED_MAX	64
/* Payload bytes (data, or sectors of range requests) per kick before yielding. */
#define VHOST_BLK_BYTE_WEIGHT	(32 << 20)
/*
 * iovecs a ring translates one chain into: twice the descriptors of a
 * compliant chain (seg_max data descriptors, header, status), so every
 * descriptor may cross one boundary between memory regions.
 */
#define VHOST_BLK_IOV_MAX	(2 * (VHOST_BLK_MAX_SEGMENTS + 2))

enum {
	VHOST_BLK_FEATURES = VHOST_FEATURES |
			     (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
			     (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			     (1ULL << VIRTIO_BLK_F_RO) |
			     (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			     (1ULL << VIRTIO_BLK_F_FLUSH) |
			     (1ULL << VIRTIO_BLK_F_CONFIG_WCE) |
			     (1ULL << VIRTIO_BLK_F_TOPOLOGY) |
			     (1ULL << VIRTIO_BLK_F_MQ) |
			     (1ULL << VIRTIO_BLK_F_DISCARD) |
			     (1ULL << VIRTIO_BLK_F_WRITE_ZEROES) |
			     (1ULL << VIRTIO_BLK_F_SECURE_ERASE),
};

struct vhost_blk_vq;

/*
 * One request per descriptor head: a ring of vq->num entries has at most
 * vq->num requests in flight, and the head index names the slot.
 */
struct vhost_blk_req {
	struct llist_node node;		/* on bvq->done once all bios ended */
	struct vhost_blk_vq *bvq;
	u8 __user *status;		/* last writable byte of the chain */
	atomic_t pending;		/* bios in flight, +1 while submitting */
	blk_status_t error;		/* any bio error, set from end_io */
	u8 vstatus;			/* status decided before any bio */
	u8 stat_type;			/* enum vhost_blk_stat_type */
	bool busy;			/* protected by vq->mutex */
	bool bounce_read;		/* copy bounce pages back on completion */
	u16 head;
	u32 used_len;			/* written bytes reported on success */
	u64 bytes;			/* data bytes, for statistics */
	u64 cost;			/* charged to bvq->inflight_bytes */

	/*
	 * A request sent as one REQ_POLLED bio (bio.c): the bio, with a
	 * reference of ours so that it can be polled until the request is
	 * released, and the request's entry on bvq->polled.
	 */
	struct bio *poll_bio;
	struct list_head poll_entry;
	bool poll_refused;		/* set by end_io, see bio.c */

	/*
	 * Bounce buffer for guest buffers the backend cannot DMA to and for
	 * writes to backends that need stable pages; counted against the
	 * ring's bounce budget (VHOST_BLK_RING_BOUNCE_BYTES).
	 */
	struct page **bounce;
	unsigned int nr_bounce;
	struct iovec *bounce_iov;	/* copy of the guest's data iovecs */
	unsigned int bounce_iov_nr;

	/*
	 * VHOST_F_LOG_ALL (live migration): the status byte's guest address,
	 * and for requests whose data the device writes (IN, GET_ID) a copy
	 * of every writable descriptor's log entry.
	 */
	bool logged;
	struct vhost_log status_log;
	struct vhost_log *log;
	unsigned int log_num;

	/* file.c: the request of a regular-file backend. */
	struct kiocb iocb;		/* ki_filp: the file, also on file_queue */
	struct bio_vec *bvec;		/* pinned guest pages or bounce pages */
	unsigned int nr_bvec;
	bool pinned;			/* bvec pages are pinned guest pages */
	bool pinned_dirty;		/* dirty them on unpin (reads) */
	u32 range_type;			/* DISCARD or WRITE_ZEROES */
	struct virtio_blk_discard_write_zeroes *segs;	/* ranges, not FLUSH */
	unsigned int nseg;
	struct list_head file_entry;	/* on blk->file_queue */

	/*
	 * rmw.c, 512e: the backend blocks [start, last] the request writes
	 * (or, queued, reads), in bytes, on blk->rmw_direct while an aligned
	 * write is at the backend, or on blk->rmw_queued (and rmw_entry on
	 * blk->rmw_queue) while the kworker has it.
	 */
	struct {
		struct rb_node rb;
		u64 start, last, subtree_last;
	} rmw;
	bool rmw_direct;		/* on blk->rmw_direct */
	bool rmw_fua;			/* a queued write: write-through */
	u32 rmw_skip;			/* guest data's offset in the bounce */
	struct list_head rmw_entry;	/* on blk->rmw_queue */
};

struct vhost_blk_vq {
	struct vhost_virtqueue vq;
	struct vhost_blk *blk;
	/* Reports finished requests on the vq's worker. */
	struct vhost_work done_work;
	/* Requests whose bios have all ended; filled from end_io. */
	struct llist_head done;
	/* Requests whose bios have not all ended yet. */
	atomic_t ending;
	wait_queue_head_t idle;		/* woken when ending reaches 0 */
	/*
	 * The worker is in this ring's kick handler (busy polling included),
	 * or done_work reaps polled requests, and reports every request that
	 * ends before it leaves: end_io need not queue done_work.  Written
	 * under vq->mutex.
	 */
	bool reporting;

	/* The rest is protected by vq->mutex. */
	struct vhost_blk_req *reqs;	/* nr_reqs slots, indexed by head */
	unsigned int nr_reqs;
	unsigned int inflight;		/* taken from avail, not yet used */
	struct iovec *iov;		/* VHOST_BLK_IOV_MAX, for one chain */
	struct vhost_log *log;		/* VHOST_BLK_IOV_MAX, its log entries */
	u64 bounce_bytes;		/* bounce pages in flight, in bytes */
	u64 inflight_bytes;		/* payload at the backend, in bytes */
	bool throttled;			/* a request waits for budget */
	bool stopped;			/* ring error: no requests until set up again */
	bool poll_next;			/* next kick-handler run busy-polls */
	/*
	 * Adaptive busy polling (request.c): the ceiling the window was
	 * adapted under (vq->busyloop_timeout), the window now, both in
	 * busy-clock microseconds, and when the ring went idle without a
	 * poll catching the guest's next request (0: no gap to measure).
	 */
	unsigned int poll_ceiling;
	unsigned int poll_window;
	unsigned long idle_since;
	/* Idle periods since the last probe at the ceiling; one is due. */
	unsigned int poll_quiet;
	bool poll_probe;
	/*
	 * Polled completions (completion.c): this kick-handler run sends
	 * REQ_POLLED bios, and the requests that were sent so, until they
	 * are released.
	 */
	bool poll_bios;
	/*
	 * A reap of this kick-handler run has lasted VHOST_BLK_REAP_HELD_NS
	 * (completion.c): other rings' held mutexes are only tried now.
	 */
	bool held_waited;
	struct list_head polled;
	unsigned int nr_polled;		/* on polled; read racily by other rings */
	/* The polled bio inside submit_bio() now (bio.c), read by end_io. */
	struct bio *poll_submitting;
	struct vhost_blk_vring_stats stats;

	/* Protected by dev.mutex: the backend while a drain holds the ring. */
	struct file *drained;
};

struct vhost_blk {
	struct vhost_dev dev;
	struct vhost_blk_vq *vqs;
	struct vhost_virtqueue **vq_ptrs;
	unsigned int nvqs;

	/*
	 * A ring of the device chose to poll its bios (request.c):
	 * from then on a blocking submission reaps the polled requests of
	 * the other rings on its worker too.  Set once, never cleared.
	 */
	bool bios_polled;

	/* Protected by dev.mutex. */
	struct file *backend;		/* held while any ring is attached */
	unsigned int attached;		/* rings with the backend attached */
	/*
	 * Set with backend, read by the rings while it is attached: a
	 * regular file (file.c) instead of a block device (bio.c), its
	 * logical block size in bytes and guest buffer alignment mask.
	 */
	bool file;
	unsigned int file_lbs;
	unsigned int file_dma_mask;

	/*
	 * VHOST_BLK_SET_WRITE_CACHE chose write-through.  Written under
	 * dev.mutex (to true only while every ring is drained); read once
	 * per write, when the ring takes it, under vq->mutex.
	 */
	bool write_through;

	/*
	 * file.c: FLUSH, DISCARD and WRITE_ZEROES of a file backend wait on
	 * file_queue for file_work, the device's one work item, which takes
	 * everything queued, runs one fsync for all the flushes taken, then
	 * the ranges in order.  One kworker per device, never more.
	 */
	spinlock_t file_lock;
	struct list_head file_queue;	/* protected by file_lock */
	struct work_struct file_work;

	/*
	 * rmw.c, 512e: VHOST_BLK_SET_BLOCK_SIZE (0: the backend's), under
	 * dev.mutex.  Fixed with backend while a ring is attached: rmw (the
	 * guest's blocks are smaller than the backend's, rmw_lbs).
	 */
	unsigned int guest_lbs;
	bool rmw;
	unsigned int rmw_lbs;
	/*
	 * Requests the device's one rmw_work runs, in order (rmw_queue), the
	 * writes among them (rmw_queued) and the aligned writes taken for the
	 * usual path (rmw_direct), the trees in backend bytes.  rmw_work
	 * waits on rmw_wq until no direct write overlaps rmw_cur.
	 */
	spinlock_t rmw_lock;
	struct list_head rmw_queue;		/* protected by rmw_lock */
	struct rb_root_cached rmw_queued;	/* protected by rmw_lock */
	struct rb_root_cached rmw_direct;	/* protected by rmw_lock */
	struct vhost_blk_req *rmw_cur;		/* protected by rmw_lock */
	wait_queue_head_t rmw_wq;
	struct work_struct rmw_work;

	spinlock_t serial_lock;		/* GET_ID never sees half a serial */
	char serial[VIRTIO_BLK_ID_BYTES];	/* protected by serial_lock */
};

static inline struct vhost_blk_vq *to_bvq(struct vhost_virtqueue *vq)
{
	return container_of(vq, struct vhost_blk_vq, vq);
}

/* request.c */
void vhost_blk_handle_kick(struct vhost_work *work);
bool vhost_blk_ro(struct vhost_virtqueue *vq, struct file *backend);
void vhost_blk_ring_error(struct vhost_blk_vq *bvq);
void vhost_blk_poll_ceiling(struct vhost_blk_vq *bvq);

/* bio.c */
bool vhost_blk_write_through(struct vhost_blk_vq *bvq);
bool vhost_blk_bdev_polls(struct block_device *bdev);
bool vhost_blk_needs_bounce(struct block_device *bdev, struct iov_iter *iter,
			    bool write);
void vhost_blk_submit_rw(struct vhost_blk_req *req, struct file *backend,
			 sector_t sector, struct iov_iter *iter, bool write,
			 bool bounce);
void vhost_blk_submit_flush(struct vhost_blk_req *req, struct file *backend);
unsigned int vhost_blk_range_limit(struct block_device *bdev, u32 type);
void vhost_blk_submit_ranges(struct vhost_blk_req *req, struct file *backend,
			     u32 type,
			     const struct virtio_blk_discard_write_zeroes *segs,
			     unsigned int nseg);
void vhost_blk_req_release(struct vhost_blk_req *req);
int vhost_blk_bounce_fill(struct vhost_blk_req *req, struct iov_iter *iter,
			  bool write);
int vhost_blk_bounce_alloc(struct vhost_blk_req *req, size_t bytes);
int vhost_blk_bounce_save_iov(struct vhost_blk_req *req,
			      struct iov_iter *iter);

/* file.c */
int vhost_blk_file_check(struct file *file, unsigned int *lbs,
			 unsigned int *dma_mask);
u64 vhost_blk_file_nr_sectors(struct vhost_blk *blk, struct file *file);
bool vhost_blk_file_needs_bounce(struct vhost_blk *blk, struct file *file,
				 struct iov_iter *iter, bool write);
void vhost_blk_file_rw(struct vhost_blk_req *req, struct file *file,
		       sector_t sector, struct iov_iter *iter, bool write,
		       bool bounce);
void vhost_blk_file_flush(struct vhost_blk_req *req, struct file *file);
unsigned int vhost_blk_file_range_limit(struct vhost_blk *blk,
					struct file *file, u32 type);
void vhost_blk_file_ranges(struct vhost_blk_req *req, struct file *file,
			   u32 type,
			   const struct virtio_blk_discard_write_zeroes *segs,
			   unsigned int nseg);
void vhost_blk_file_release(struct vhost_blk_req *req);
bool vhost_blk_keep_ranges(struct vhost_blk_req *req, u32 type,
			   const struct virtio_blk_discard_write_zeroes *segs,
			   unsigned int nseg);
int vhost_blk_file_zero(struct file *file, u32 type, u32 flags, loff_t pos,
			loff_t len);
void vhost_blk_file_dev_init(struct vhost_blk *blk);
void vhost_blk_file_dev_cleanup(struct vhost_blk *blk);
int vhost_blk_file_init(void);
void vhost_blk_file_exit(void);

/* rmw.c */
bool vhost_blk_rmw_direct(struct vhost_blk_req *req, u64 pos, u64 len,
			  bool write);
u64 vhost_blk_rmw_bounce_bytes(struct vhost_blk_req *req);
void vhost_blk_rmw_queue_rw(struct vhost_blk_req *req, struct file *backend,
			    u64 pos, struct iov_iter *iter, bool write);
bool vhost_blk_rmw_ranges_direct(struct vhost_blk_req *req, u32 type,
				 struct virtio_blk_discard_write_zeroes *segs,
				 unsigned int nseg);
void vhost_blk_rmw_queue_ranges(struct vhost_blk_req *req, struct file *backend,
				u32 type,
				const struct virtio_blk_discard_write_zeroes *segs,
				unsigned int nseg);
void vhost_blk_rmw_unregister(struct vhost_blk_req *req);
void vhost_blk_rmw_attach(struct vhost_blk *blk, struct file *backend);
void vhost_blk_rmw_dev_init(struct vhost_blk *blk);
void vhost_blk_rmw_dev_cleanup(struct vhost_blk *blk);
int vhost_blk_rmw_init(void);
void vhost_blk_rmw_exit(void);

/* completion.c */
void vhost_blk_bio_end_io(struct bio *bio);
void vhost_blk_req_put(struct vhost_blk_req *req);
void vhost_blk_done_work(struct vhost_work *work);
void vhost_blk_note_hold(struct vhost_blk_vq *bvq, u64 start);
void vhost_blk_complete(struct vhost_blk_vq *bvq, bool report);
void vhost_blk_finish_now(struct vhost_blk_req *req, u8 status);
unsigned int vhost_blk_reap(struct vhost_blk_vq *bvq);
void vhost_blk_reap_all(struct vhost_blk_vq *bvq);

/* workers.c */
long vhost_blk_set_nworkers(struct vhost_blk *blk, int __user *argp);
long vhost_blk_get_worker_tid(struct vhost_blk *blk,
			      struct vhost_blk_worker_tid __user *argp);

#endif /* _VHOST_BLK_INTERNAL_H */
