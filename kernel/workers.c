// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk workers: VHOST_SET_NWORKERS, the worker ioctl of the published
 * vhost-blk series, kept so VMMs built for that series run unchanged, and
 * VHOST_BLK_GET_WORKER_TID, which names a worker's thread for placement.
 *
 * Copyright (C) 2026 The vhost-blk authors.
 *
 * New VMMs use the vhost core's own worker ioctls (VHOST_NEW_WORKER,
 * VHOST_ATTACH_VRING_WORKER, ...), which this device passes through; this
 * file only translates the legacy "N workers, rings round-robin" request
 * into them.
 */
#include <linux/completion.h>
#include <linux/mman.h>
#include <linux/mm.h>
#include <linux/pid.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "blk.h"

/* Ids of the device's first @n workers, creating the missing ones. */
static long vhost_blk_grow_workers(struct vhost_blk *blk, u32 *ids,
				   unsigned int n, void __user *scratch)
{
	struct vhost_worker_state __user *state = scratch;
	struct vhost_worker *worker;
	unsigned int have = 0;
	unsigned long id;
	long ret;

	xa_for_each(&blk->dev.worker_xa, id, worker) {
		if (have == n)
			break;
		ids[have++] = worker->id;
	}
	while (have < n) {
		ret = vhost_worker_ioctl(&blk->dev, VHOST_NEW_WORKER, state);
		if (ret)
			return ret;
		if (get_user(ids[have], &state->worker_id))
			return -EFAULT;
		have++;
	}
	return 0;
}

/*
 * VHOST_SET_NWORKERS: the device gets at least @arg workers (it never
 * frees any: a worker may still serve a ring) and ring i is served by the
 * (i % @arg)-th of them.  Bounded by the number of rings, so an owner
 * cannot make the device start more threads than it has rings; the
 * threads are counted against the owner's RLIMIT_NPROC as any vhost
 * worker.  Caller holds dev.mutex.
 *
 * The vhost core exports its worker operations only as vhost_worker_ioctl(),
 * which reads and writes its argument in user memory.  The request is the
 * owner's ioctl, so one anonymous page in the owner's own address space
 * carries the arguments and is unmapped before returning.  A thread of the
 * owner that scribbles on it meanwhile can only point its own rings at its
 * own workers, which the vhost core validates as any
 * VHOST_ATTACH_VRING_WORKER.  On an error the map may be partly applied
 * and the workers created so far stay; calling again completes it.
 */
long vhost_blk_set_nworkers(struct vhost_blk *blk, int __user *argp)
{
	struct vhost_vring_worker __user *ring_worker;
	struct vhost_worker *worker;
	unsigned long scratch;
	unsigned int i;
	long ret;
	u32 *ids;
	int n;

	if (get_user(n, argp))
		return -EFAULT;
	if (n < 1 || n > blk->nvqs)
		return -EINVAL;

	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		return ret;
	/* The core creates extra workers only as vhost tasks of the owner. */
	if (!blk->dev.fork_owner)
		return -EOPNOTSUPP;

	ids = kcalloc(n, sizeof(*ids), GFP_KERNEL_ACCOUNT);
	if (!ids)
		return -ENOMEM;
	scratch = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(scratch)) {
		ret = scratch;
		goto out_free;
	}
	ring_worker = (void __user *)scratch;

	ret = vhost_blk_grow_workers(blk, ids, n, ring_worker);
	if (ret)
		goto out_unmap;
	/*
	 * Switching a running ring's worker flushes the old one: nothing is
	 * lost.  The core does that even when the worker stays the same, so
	 * rings already in place are skipped.
	 */
	for (i = 0; i < blk->nvqs; i++) {
		worker = rcu_dereference_check(blk->vqs[i].vq.worker,
					       lockdep_is_held(&blk->dev.mutex));
		if (worker && worker->id == ids[i % n])
			continue;
		if (put_user(i, &ring_worker->index) ||
		    put_user(ids[i % n], &ring_worker->worker_id)) {
			ret = -EFAULT;
			goto out_unmap;
		}
		ret = vhost_worker_ioctl(&blk->dev, VHOST_ATTACH_VRING_WORKER,
					 ring_worker);
		if (ret)
			goto out_unmap;
	}
out_unmap:
	vm_munmap(scratch, PAGE_SIZE);
out_free:
	kfree(ids);
	return ret;
}

/* Runs on the worker: names its thread. */
struct vhost_blk_tid_probe {
	struct vhost_work work;
	struct completion done;
	struct pid *pid;
};

static void vhost_blk_tid_probe_fn(struct vhost_work *work)
{
	struct vhost_blk_tid_probe *probe =
		container_of(work, struct vhost_blk_tid_probe, work);

	probe->pid = get_task_pid(current, PIDTYPE_PID);
	complete(&probe->done);
}

/*
 * VHOST_BLK_GET_WORKER_TID.  The vhost core keeps a worker's task to
 * itself, so the question is queued on a ring the worker serves and
 * answered by the worker's own thread.  The caller waits for it as
 * vhost_dev_flush() does, uninterruptibly: the work is on this stack.
 * What the worker runs meanwhile is bounded by the rings' weights; a
 * worker killed with its owner runs what was queued before it exits, and
 * one already gone takes nothing (tid 0).  Caller holds dev.mutex, so no
 * ring changes worker and no worker is freed meanwhile; the wait is the
 * one every device ioctl that flushes has (bounded by the weights on the
 * guest's side, by the backend on the host's).  The tid names the thread
 * while the worker exists: after VHOST_FREE_WORKER, RESET_OWNER or close it
 * may be reused, so a caller asks again after any of them.
 */
long vhost_blk_get_worker_tid(struct vhost_blk *blk,
			      struct vhost_blk_worker_tid __user *argp)
{
	struct vhost_blk_tid_probe probe = { .pid = NULL };
	struct vhost_virtqueue *vq = NULL;
	struct vhost_blk_worker_tid arg;
	struct vhost_worker *worker;
	unsigned int i;
	long ret;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		return ret;
	/* Kthread workers are not the owner's threads to place. */
	if (!blk->dev.fork_owner)
		return -EOPNOTSUPP;
	worker = xa_load(&blk->dev.worker_xa, arg.worker_id);
	if (!worker)
		return -ENOENT;

	for (i = 0; i < blk->nvqs && !vq; i++)
		if (rcu_access_pointer(blk->vqs[i].vq.worker) == worker)
			vq = &blk->vqs[i].vq;

	arg.tid = 0;
	if (vq) {
		vhost_work_init(&probe.work, vhost_blk_tid_probe_fn);
		init_completion(&probe.done);
		if (vhost_vq_work_queue(vq, &probe.work)) {
			wait_for_completion(&probe.done);
			arg.tid = pid_vnr(probe.pid);
			put_pid(probe.pid);
		}
	}
	if (copy_to_user(argp, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}
