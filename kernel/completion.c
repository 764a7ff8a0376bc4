// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk completion path.
 *
 * bio end_io runs in interrupt context: it only releases the bio, and when
 * a request's last bio has ended pushes the request onto its ring's
 * lock-free done list and queues the ring's done_work on the ring's vhost
 * worker.  vhost_blk_done_work() then writes the status bytes, adds every
 * finished request to the used ring in one go and signals the guest once.
 *
 * Polled completions: while a ring busy-polls (request.c), a read or write
 * that is one bio goes to a backend with poll queues as a REQ_POLLED bio
 * (bio.c).  No interrupt ends it: the worker reaps it with bio_poll(), in
 * the kick handler (between batches, while it polls the ring and before a
 * submission that can sleep), then in done_work, which is queued again
 * until every polled request has ended, and a drain reaps what is left
 * itself (device.c), so it never waits for a bio nobody polls.  end_io
 * runs in the poller's context then, inline: no softirq, no wake-up of the
 * worker.  The worker stays busy while polled requests are in flight, as
 * io_uring's IOPOLL does, for the backend's I/O time, and only while the
 * ring's polling window is open (and any unpolled submission waits for
 * them too, sleeping after VHOST_BLK_REAP_SPIN_NS): an idle guest's window
 * shrinks to 0 and its requests are not polled.
 *
 * The done list is drained under vq->mutex, so each request is reported
 * exactly once whichever context drains it: the ring's worker (whichever
 * worker the ring is attached to at the time), the kick handler at the end
 * of a batch, or a detach waiting for the ring to go idle.
 */
#include <linux/bio.h>
#include <linux/delay.h>
#include <linux/rcupdate.h>
#include <linux/sched/clock.h>
#include <linux/virtio_blk.h>

#include "blk.h"

void vhost_blk_req_put(struct vhost_blk_req *req)
{
	struct vhost_blk_vq *bvq = req->bvq;

	if (!atomic_dec_and_test(&req->pending))
		return;

	/* 512e: read-modify-writes waiting for this write may go on. */
	if (unlikely(req->rmw_direct))
		vhost_blk_rmw_unregister(req);

	/*
	 * Once bvq->ending reaches zero a detach or release may go on and
	 * free the device; the RCU read section keeps bvq valid until the
	 * wake-up is done (release waits with synchronize_rcu()).
	 */
	rcu_read_lock();
	llist_add(&req->node, &bvq->done);
	/*
	 * A worker in the ring's kick handler reports the request itself
	 * (bios that end while it submits, on brd, null_blk or a polled
	 * queue, cost no second wake-up).  llist_add() is a full barrier,
	 * paired with the one in vhost_blk_handle_kick(), so either this
	 * sees reporting cleared or the handler sees the request.
	 */
	if (!READ_ONCE(bvq->reporting))
		vhost_vq_work_queue(&bvq->vq, &bvq->done_work);
	/*
	 * Only a drain waits on idle.  atomic_dec_and_test() is a full
	 * barrier, so waitqueue_active() cannot miss a waiter that queued
	 * itself before testing ending (see wq_has_sleeper()).
	 */
	if (atomic_dec_and_test(&bvq->ending) && waitqueue_active(&bvq->idle))
		wake_up(&bvq->idle);
	rcu_read_unlock();
}

void vhost_blk_bio_end_io(struct bio *bio)
{
	struct vhost_blk_req *req = bio->bi_private;

	if (unlikely(bio->bi_status)) {
		/*
		 * A polled bio the block layer refused inside our own
		 * submit_bio() (bio.c): the request goes again, unpolled.
		 */
		if (bio == READ_ONCE(req->bvq->poll_submitting) &&
		    (bio->bi_status == BLK_STS_AGAIN ||
		     bio->bi_status == BLK_STS_NOTSUPP))
			req->poll_refused = true;
		else
			WRITE_ONCE(req->error, bio->bi_status);
	}

	if (bio_op(bio) == REQ_OP_READ && bio_flagged(bio, BIO_PAGE_PINNED)) {
		/* Re-dirties pages written back meanwhile, unpins, puts. */
		bio_check_pages_dirty(bio);
	} else {
		bio_release_pages(bio, false);
		bio_put(bio);
	}
	vhost_blk_req_put(req);
}

/*
 * Polls the backend queues of the ring's polled requests still in flight,
 * once each (a poll ends whatever finished on its queue, so one per queue
 * in a row); returns how many of them are still in flight as polled bios.
 * Their end_io runs here.  At most VHOST_BLK_POLLED_MAX of them.  Caller
 * holds vq->mutex.
 */
unsigned int vhost_blk_reap(struct vhost_blk_vq *bvq)
{
	blk_qc_t cookie, last = BLK_QC_T_NONE;
	struct vhost_blk_req *req;
	unsigned int left = 0;

	list_for_each_entry(req, &bvq->polled, poll_entry) {
		if (!atomic_read(&req->pending))
			continue;
		/*
		 * A bio whose REQ_POLLED the block layer cleared (zone
		 * write plugging, which we do not poll) ends by interrupt,
		 * and end_io queues done_work.
		 */
		if (!(READ_ONCE(req->poll_bio->bi_opf) & REQ_POLLED))
			continue;
		cookie = READ_ONCE(req->poll_bio->bi_cookie);
		if (cookie == BLK_QC_T_NONE || cookie != last)
			bio_poll(req->poll_bio, NULL, BLK_POLL_ONESHOT);
		last = cookie;
		if (atomic_read(&req->pending))
			left++;
	}
	return left;
}

/*
 * Polls the polled requests of the device's other rings on the worker of
 * @bvq, once each; returns how many are still in flight.  A ring whose
 * mutex another task holds counts as one while @wait_held: the holder is
 * the VMM's ioctl, which lets go, a stop or a drain, which reaps the ring
 * itself, or the ring's own kick handler still running on the worker it
 * just left, which reaps it itself too and may be waiting for @bvq's
 * mutex the same way (each ring of two swapped workers looks like the
 * other's to reap): so that wait is bounded (vhost_blk_reap_all()).
 * Rings on other workers are left to their own worker, which reaps them
 * before it sleeps in the block layer too.  The rings' workers are read
 * racily.  Caller holds bvq->vq.mutex, so only mutex_trylock() for the
 * others.
 */
static unsigned int vhost_blk_reap_others(struct vhost_blk_vq *bvq,
					  bool wait_held)
{
	struct vhost_blk *blk = bvq->blk;
	struct vhost_worker *worker = rcu_access_pointer(bvq->vq.worker);
	unsigned int i, left = 0;

	for (i = 0; i < blk->nvqs; i++) {
		struct vhost_blk_vq *other = &blk->vqs[i];

		if (other == bvq || !READ_ONCE(other->nr_polled) ||
		    rcu_access_pointer(other->vq.worker) != worker)
			continue;
		if (!mutex_trylock(&other->vq.mutex)) {
			left += wait_held;
			continue;
		}
		if (!list_empty(&other->polled))
			left += vhost_blk_reap(other);
		mutex_unlock(&other->vq.mutex);
	}
	return left;
}

/*
 * One pass over the polled requests the worker of @bvq has to end itself:
 * the ring's own and, once the device polls bios, those of the other
 * rings on the same worker (a ring joined the worker, or moved onto it,
 * while it had polled requests in flight).  Held rings are waited for
 * until a reap of this kick-handler run has lasted VHOST_BLK_REAP_HELD_NS
 * (held_waited), and only tried after that.  Returns how many are still
 * in flight.
 */
static unsigned int vhost_blk_reap_worker(struct vhost_blk_vq *bvq)
{
	unsigned int left = 0;

	if (!list_empty(&bvq->polled))
		left = vhost_blk_reap(bvq);
	if (READ_ONCE(bvq->blk->bios_polled))
		left += vhost_blk_reap_others(bvq, !bvq->held_waited);
	return left;
}

/*
 * Reaps until none of the polled requests the worker has to end itself
 * (vhost_blk_reap_worker()) is in flight: before the worker may sleep in
 * the block layer (bio.c), where a queue freeze or a shared tag pool
 * waits for them.  As long as the backend takes to end them; for other
 * rings' mutexes until one reap of the run has lasted
 * VHOST_BLK_REAP_HELD_NS.
 * The kick handler's plug goes out first (finished and started again, as
 * the handler does between batches): a request still in it has no cookie
 * yet, and bio_poll() returns at once for such a bio without flushing the
 * plug.  The worker spins for VHOST_BLK_REAP_SPIN_NS, then sleeps between
 * polls: a request the device holds for long (a controller reset) costs
 * a guest's flush, range or unpolled request little CPU, and nothing the
 * wait is for needs the worker.  Bounded by the device, or by the driver's
 * timeout where it has one for poll queues.  Caller holds vq->mutex.
 */
void vhost_blk_reap_all(struct vhost_blk_vq *bvq)
{
	struct blk_plug *plug = current->plug;
	u64 start, spent;

	if (!vhost_blk_reap_worker(bvq))
		return;
	if (plug) {
		blk_finish_plug(plug);
		blk_start_plug(plug);
	}
	start = local_clock();
	for (;;) {
		spent = local_clock() - start;
		if (spent >= VHOST_BLK_REAP_HELD_NS)
			bvq->held_waited = true;
		if (!vhost_blk_reap_worker(bvq))
			break;
		if (spent < VHOST_BLK_REAP_SPIN_NS)
			cond_resched();
		else
			usleep_range(20, 50);
	}
}

/* Completes a request that never reached the block device. */
void vhost_blk_finish_now(struct vhost_blk_req *req, u8 status)
{
	req->vstatus = status;
	llist_add(&req->node, &req->bvq->done);
}

static u8 vhost_blk_status(struct vhost_blk_req *req)
{
	blk_status_t error = READ_ONCE(req->error);

	if (req->vstatus != VIRTIO_BLK_S_OK || !error)
		return req->vstatus;
	return error == BLK_STS_NOTSUPP ? VIRTIO_BLK_S_UNSUPP :
					  VIRTIO_BLK_S_IOERR;
}

/* The read's bytes, from rmw_skip on in the bounce pages (512e: rmw.c). */
static int vhost_blk_copy_back(struct vhost_blk_req *req)
{
	struct iov_iter iter;
	size_t left = req->bytes;
	size_t off = req->rmw_skip & ~PAGE_MASK;
	unsigned int i;

	iov_iter_init(&iter, ITER_DEST, req->bounce_iov, req->bounce_iov_nr,
		      left);
	for (i = req->rmw_skip >> PAGE_SHIFT; left && i < req->nr_bounce; i++) {
		size_t len = min_t(size_t, left, PAGE_SIZE - off);

		if (copy_page_to_iter(req->bounce[i], off, len, &iter) != len)
			return -EFAULT;
		left -= len;
		off = 0;
	}
	return left ? -EFAULT : 0;
}

static void vhost_blk_account(struct vhost_blk_vq *bvq,
			      struct vhost_blk_req *req, u8 status)
{
	struct vhost_blk_vring_stats *st = &bvq->stats;

	st->requests[req->stat_type]++;
	switch (status) {
	case VIRTIO_BLK_S_OK:
		st->status_ok++;
		st->bytes[req->stat_type] += req->bytes;
		break;
	case VIRTIO_BLK_S_UNSUPP:
		st->status_unsupp++;
		break;
	default:
		st->status_ioerr++;
		break;
	}
}

/*
 * VHOST_F_LOG_ALL: marks dirty every byte the device may have written,
 * whatever the status: the data of an IN or GET_ID that was started (a
 * failed read may have written part of it; req->bytes, at most
 * VHOST_BLK_MAX_REQUEST_BYTES, never the guest's claimed lengths) and the
 * status byte.
 */
static void vhost_blk_log(struct vhost_virtqueue *vq, struct vhost_blk_req *req)
{
	if (req->log && req->bytes)
		vhost_log_write(vq, req->log, req->log_num, req->bytes, NULL, 0);
	vhost_log_write(vq, &req->status_log, 1, 1, NULL, 0);
}

/*
 * Reports one finished request to the guest; returns the used length, or
 * a negative errno if the status byte could not be written: the ring stops
 * (vhost_blk_ring_error()) and the request is not reported.
 */
static int vhost_blk_report(struct vhost_blk_vq *bvq,
			    struct vhost_blk_req *req, u8 *status)
{
	struct vhost_virtqueue *vq = &bvq->vq;

	if (req->bounce_read && *status == VIRTIO_BLK_S_OK &&
	    vhost_blk_copy_back(req))
		*status = VIRTIO_BLK_S_IOERR;

	if (put_user(*status, req->status)) {
		vq_err(vq, "vhost-blk: cannot write status of head %u\n",
		       req->head);
		vhost_blk_ring_error(bvq);
		return -EFAULT;
	}
	if (unlikely(req->logged))
		vhost_blk_log(vq, req);
	return *status == VIRTIO_BLK_S_OK ? req->used_len : 1;
}

static void vhost_blk_add_used(struct vhost_blk_vq *bvq, unsigned int n)
{
	struct vhost_virtqueue *vq = &bvq->vq;

	if (n && vhost_add_used_n(vq, vq->heads, n)) {
		vq_err(vq, "vhost-blk: used ring not writable\n");
		vhost_blk_ring_error(bvq);
	}
}

/*
 * Drains the done list.  With @report the requests are written to the used
 * ring and the guest is signalled; without it (release, reset) they are
 * only freed: the ring is going away and may not even be mapped.
 * Caller holds vq->mutex.
 */
void vhost_blk_complete(struct vhost_blk_vq *bvq, bool report)
{
	struct vhost_virtqueue *vq = &bvq->vq;
	struct vhost_blk_req *req, *tmp;
	struct llist_node *list;
	unsigned int n = 0;
	int len;
	u8 status;

	list = llist_del_all(&bvq->done);
	if (!list)
		return;
	list = llist_reverse_order(list);

	llist_for_each_entry_safe(req, tmp, list, node) {
		status = vhost_blk_status(req);
		if (report) {
			len = vhost_blk_report(bvq, req, &status);
			if (len >= 0) {
				vq->heads[n].id = cpu_to_vhost32(vq, req->head);
				vq->heads[n].len = cpu_to_vhost32(vq, len);
				n++;
			}
		}
		vhost_blk_account(bvq, req, status);
		vhost_blk_req_release(req);
		req->busy = false;
		bvq->inflight--;

		if (n == vq->dev->iov_limit) {
			vhost_blk_add_used(bvq, n);
			n = 0;
		}
	}
	/* Bounce budget came back: take the request that waited for it. */
	if (bvq->throttled) {
		bvq->throttled = false;
		vhost_poll_queue(&vq->poll);
	}
	if (!report)
		return;
	vhost_blk_add_used(bvq, n);
	bvq->stats.batches++;
	vhost_signal(&bvq->blk->dev, vq);
}

/*
 * stats.max_hold_ns: the measured answer to "how long can a guest make the
 * worker hold its ring?".  Two clock reads per handler run or completion
 * batch, none per request.  Caller holds vq->mutex.
 */
void vhost_blk_note_hold(struct vhost_blk_vq *bvq, u64 start)
{
	u64 held = local_clock() - start;

	if (unlikely(held > bvq->stats.max_hold_ns))
		bvq->stats.max_hold_ns = held;
}

void vhost_blk_done_work(struct vhost_work *work)
{
	struct vhost_blk_vq *bvq = container_of(work, struct vhost_blk_vq,
						done_work);
	unsigned int left = 0;
	u64 start;

	mutex_lock(&bvq->vq.mutex);
	start = local_clock();
	if (!list_empty(&bvq->polled)) {
		/*
		 * What ends while we reap is reported below: end_io need
		 * not queue this work again (as in the kick handler).
		 */
		WRITE_ONCE(bvq->reporting, true);
		/* Pairs with llist_add()'s barrier in vhost_blk_req_put(). */
		smp_mb();
		left = vhost_blk_reap(bvq);
		WRITE_ONCE(bvq->reporting, false);
		/* Pairs with llist_add()'s barrier in vhost_blk_req_put(). */
		smp_mb();
	}
	vhost_blk_complete(bvq, true);
	vhost_blk_note_hold(bvq, start);
	mutex_unlock(&bvq->vq.mutex);
	/*
	 * Polled requests are still in flight: poll again once the worker
	 * ran what else is queued.  Not when the ring's kick handler is
	 * queued: it reaps, and queues this work again if it has to.  Queued
	 * now, this work would look like another ring's to the handler's
	 * busy poll, which then stops at once (request.c).
	 */
	if (left && !test_bit(VHOST_WORK_QUEUED, &bvq->vq.poll.work.flags))
		vhost_vq_work_queue(&bvq->vq, &bvq->done_work);
}
