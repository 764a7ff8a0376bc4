/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vhost-blk: in-kernel virtio-blk data path on top of the vhost core.
 *
 * Userspace (the VMM) opens /dev/vhost-blk, becomes its owner with
 * VHOST_SET_OWNER, hands over guest memory and virtqueues with the standard
 * vhost ioctls from <linux/vhost.h>, then attaches a block device with
 * VHOST_BLK_SET_BACKEND.  The virtio-blk configuration space is the VMM's
 * job; the limits it advertises must stay within the VHOST_BLK_MAX_* values
 * below.
 */
#ifndef _UAPI_LINUX_VHOST_BLK_H
#define _UAPI_LINUX_VHOST_BLK_H

#include <linux/types.h>
#include <linux/vhost.h>
#include <linux/virtio_blk.h>

/*
 * VHOST_BLK_SET_BACKEND: attach or detach the block device.
 *
 * struct vhost_vring_file.fd is a file descriptor of an open block device
 * or of a regular file opened with O_DIRECT (a raw image: the device's
 * logical block size is then the file's direct-I/O offset alignment,
 * statx STATX_DIOALIGN, and its capacity i_size rounded down to it), or -1
 * to detach.  struct vhost_vring_file.index selects the rings:
 *
 *   index == VHOST_BLK_BACKEND_ALL_VRINGS (0): the whole device, as the
 *	published QEMU vhost-blk patch uses it.  fd >= 0 attaches the block
 *	device to every virtqueue whose ring addresses have been set;
 *	fd == -1 detaches every virtqueue.
 *   index == VHOST_BLK_BACKEND_VRING(n): virtqueue n only.  fd >= 0
 *	attaches it (its ring addresses must be set), fd == -1 detaches it.
 *
 * Detaching returns only after every request taken from the ring(s) has
 * completed, its status has been written and it has been added to the used
 * ring, so VHOST_GET_VRING_BASE right after it reports a base that loses
 * no request.  Requests the guest adds while a ring is detached stay in the
 * avail ring until it is attached again.
 *
 * The device holds one backend at a time: attaching a different one
 * while any ring is attached fails with EBUSY.  When the last ring is
 * detached the device drops its reference to the block device.
 *
 * The fd must be opened for writing unless VIRTIO_BLK_F_RO was negotiated
 * (EBADF otherwise); a block device that is itself read-only requires
 * VIRTIO_BLK_F_RO (EROFS otherwise).  Errors: ENOTBLK if fd is neither a
 * block device nor a regular file, EINVAL for a regular file opened without
 * O_DIRECT, EOPNOTSUPP for a file whose filesystem cannot do direct I/O on
 * it, ENOBUFS for a ring index out of range, EFAULT/EINVAL when a ring
 * is not set up, EPERM for a caller that is not the owner.
 */
#define VHOST_BLK_SET_BACKEND _IOW(VHOST_VIRTIO, 0xFF, struct vhost_vring_file)

#define VHOST_BLK_BACKEND_ALL_VRINGS	0u
#define VHOST_BLK_BACKEND_F_VRING	(1u << 31)
#define VHOST_BLK_BACKEND_VRING(n)	(VHOST_BLK_BACKEND_F_VRING | (__u32)(n))

/*
 * VHOST_BLK_SET_SERIAL: the string VIRTIO_BLK_T_GET_ID returns.  Up to
 * VIRTIO_BLK_ID_BYTES bytes; shorter strings are NUL-terminated.  May be
 * set at any time; requests see the old or the new value, never a mix.
 */
#define VHOST_BLK_SET_SERIAL _IOW(VHOST_VIRTIO, 0xFE, char[VIRTIO_BLK_ID_BYTES])

/*
 * VHOST_SET_NWORKERS: legacy, the worker ioctl of the published vhost-blk
 * series (its number, in the vhost ioctl space; unused by vhost.h).  The
 * device gets at least N vhost workers (1 <= N <= the number of virtqueues,
 * EINVAL otherwise; it never frees workers) and virtqueue i is served by
 * the (i % N)-th of them.  May be called at any time after VHOST_SET_OWNER,
 * also while rings run.  New VMMs use VHOST_NEW_WORKER and
 * VHOST_ATTACH_VRING_WORKER from <linux/vhost.h>, which give any map.
 */
#define VHOST_SET_NWORKERS _IOW(VHOST_VIRTIO, 0x1F, int)

/*
 * VHOST_GET_VRING_BASE (<linux/vhost.h>) on a virtqueue that has a backend
 * first detaches it, exactly as VHOST_BLK_SET_BACKEND with fd -1 on that
 * virtqueue: the base it returns is exact and nothing the ring took
 * completes afterwards.  The ring restarts with SET_VRING_NUM, _BASE,
 * _ADDR, _KICK, _CALL and VHOST_BLK_SET_BACKEND, without RESET_OWNER.
 */

/*
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT (<linux/vhost.h>, microseconds, 0 by
 * default: off) is the ceiling of a ring's busy polling.  When the avail
 * ring runs empty, the worker completes finished requests and watches the
 * avail ring, notifications off, for up to the ring's polling window.  The
 * window adapts to the gaps the guest leaves between requests (from the
 * ring going idle to its next request), as QEMU's aio polling does
 * (poll-grow, poll-shrink): it starts at the ceiling, halves after a gap
 * longer than the ceiling (polling could not have caught it) or a second
 * poll that runs out with no request in between, doubles (from 4 us, never
 * above the ceiling) after a gap longer than the window but within the
 * ceiling, and stays otherwise; a window of 0 probes, one poll at the
 * ceiling every 16 times the ring goes idle (a kick with nothing in the
 * ring counts), and is back at the ceiling if that finds a request.  A
 * guest that idles costs little polling within a few requests; one that
 * keeps the ring busy at low depth is polled for.  Polling stops early, and
 * does not start, when the scheduler wants the CPU or another task is
 * runnable on the worker's CPU; it also stops for a signal, a ring error,
 * or other work (another ring) queued on the worker.  The ceiling is at
 * most 100000 us (a larger value polls for that long).  Setting a
 * different value restarts the window at the ceiling at once, as attaching
 * the ring does; RESET_OWNER sets both to 0.  VHOST_BLK_GET_VRING_STATS
 * reports the window and its hits and misses (a module from before
 * adaptive polling reports 0 for all three).
 */

/*
 * Per-request limits.  The module enforces them on every request, whatever
 * the config space says; a VMM advertises exactly these (or smaller) so a
 * compliant guest never exceeds them.  Documentation/vhost-blk.rst,
 * "Limits and bounds".
 */
/* seg_max: data descriptors per request (VIRTIO_BLK_F_SEG_MAX) */
#define VHOST_BLK_MAX_SEGMENTS		1022
/* size_max: bytes in one descriptor (VIRTIO_BLK_F_SIZE_MAX) */
#define VHOST_BLK_MAX_SEGMENT_SIZE	(64u << 10)
/*
 * Data bytes of one IN or OUT request; longer requests complete with
 * VIRTIO_BLK_S_IOERR.  seg_max * size_max stays below it.
 */
#define VHOST_BLK_MAX_REQUEST_BYTES	(64u << 20)
/* max_discard_seg, max_write_zeroes_seg, max_secure_erase_seg */
#define VHOST_BLK_MAX_DISCARD_SEGMENTS	256
/*
 * Sectors of one DISCARD/WRITE_ZEROES/SECURE_ERASE request, all segments
 * together (how Linux guests read max_discard_sectors etc.): at most the
 * backend's own limit (its queue/discard_max_bytes, write_zeroes_max_bytes,
 * max_secure_erase_sectors), which is what the VMM advertises in
 * max_discard_sectors etc., and never more than this.  A longer request
 * fails with VIRTIO_BLK_S_IOERR.  A VMM whose guests may read those fields
 * per segment (the virtio spec's wording) advertises max_discard_seg,
 * max_write_zeroes_seg and max_secure_erase_seg of 1.  WRITE_ZEROES needs a backend
 * that offloads it (write_zeroes_max_bytes > 0): the module never writes
 * zero pages itself, the request completes with VIRTIO_BLK_S_UNSUPP.
 */
#define VHOST_BLK_MAX_RANGE_SECTORS	(0xffffffffu >> 9)
/*
 * Bytes of bounce buffer a ring may have in flight (requests whose guest
 * buffers the backend cannot DMA to, and writes to backends that need
 * stable pages).  A request that would exceed it waits in the avail ring
 * until earlier bounced requests have completed.
 */
#define VHOST_BLK_RING_BOUNCE_BYTES	VHOST_BLK_MAX_REQUEST_BYTES
/*
 * Payload a ring may have at the backend: data bytes of reads and writes,
 * bytes covered by discard/write-zeroes/secure-erase.  A request that would
 * exceed it waits in the avail ring until earlier ones complete; an idle
 * ring always takes one request.  It bounds how long a drain (detach,
 * VHOST_GET_VRING_BASE, SET_MEM_TABLE, ...) waits: the backend's time for
 * this many bytes, or for one range request.
 */
#define VHOST_BLK_RING_INFLIGHT_BYTES	(256u << 20)

/*
 * VHOST_BLK_GET_VRING_STATS: counters of one virtqueue.  Set .index, the
 * kernel fills in the rest.  Counters live with the ring (no sharing
 * across queues) and are reset when the device is reset (RESET_OWNER) or
 * closed, not when a ring is detached.  They are read without stopping the
 * ring, so the call never waits for the data path: each counter is exact,
 * counters of a busy ring may be a few requests apart from each other.
 */
enum vhost_blk_stat_type {
	VHOST_BLK_STAT_IN,
	VHOST_BLK_STAT_OUT,
	VHOST_BLK_STAT_FLUSH,
	VHOST_BLK_STAT_GET_ID,
	VHOST_BLK_STAT_DISCARD,
	VHOST_BLK_STAT_WRITE_ZEROES,
	VHOST_BLK_STAT_SECURE_ERASE,
	VHOST_BLK_STAT_OTHER,		/* anything answered with UNSUPP */
	VHOST_BLK_STAT_NR_TYPES = 8,
};

struct vhost_blk_vring_stats {
	__u32 index;		/* in: virtqueue index */
	__u32 worker_id;	/* out: vhost worker serving it, ~0U if none */
	__u32 attached;		/* out: 1 if a backend is attached */
	__u32 inflight;		/* out: requests taken from the ring, not yet used */
	__u64 requests[VHOST_BLK_STAT_NR_TYPES];	/* completed, by type */
	__u64 bytes[VHOST_BLK_STAT_NR_TYPES];		/* data bytes moved */
	__u64 status_ok;	/* completions by status byte */
	__u64 status_ioerr;
	__u64 status_unsupp;
	__u64 bounced;		/* requests that needed a bounce buffer */
	__u64 malformed;	/* chains rejected before reaching the disk */
	__u64 batches;		/* used-ring updates, each followed by one
				 * vhost_signal(): completions per signal =
				 * sum(requests) / batches (EVENT_IDX may
				 * suppress some of those signals further)
				 */
	__u64 stopped;		/* 1: a ring error stopped the ring until it is
				 * set up again (Documentation/vhost-blk.rst,
				 * "Ring errors")
				 */
	__u64 throttled;	/* times the ring waited for its in-flight
				 * or bounce budget
				 */
	__u64 max_hold_ns;	/* longest time the ring's worker held the
				 * ring in one go (a kick-handler run, busy
				 * polling included, or a completion batch)
				 */
	__u64 fua_writes;	/* OUT requests sent with REQ_FUA: taken in
				 * write-through mode (VHOST_BLK_SET_WRITE_CACHE)
				 */
	__u64 rmw;		/* requests served by read-modify-write, in
				 * order with the writes they overlap
				 * (VHOST_BLK_SET_BLOCK_SIZE below the
				 * backend's block)
				 */
	__u64 poll_us;		/* the ring's busy-polling window now, in
				 * microseconds: adapted between 0 and the
				 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT set (above)
				 */
	__u64 poll_hits;	/* polls that found the guest's next request
				 * (it needed no kick)
				 */
	__u64 poll_misses;	/* polls that ran their whole window and
				 * found no request
				 */
};

#define VHOST_BLK_GET_VRING_STATS \
	_IOWR(VHOST_VIRTIO, 0xFD, struct vhost_blk_vring_stats)

/*
 * VHOST_BLK_SET_WRITE_CACHE, VHOST_BLK_GET_WRITE_CACHE: the write cache mode,
 * what the guest selects with the `writeback` byte of struct
 * virtio_blk_config when the VMM offers VIRTIO_BLK_F_CONFIG_WCE (the config
 * space stays the VMM's: it applies the guest's writes with this ioctl).
 *
 *   VHOST_BLK_WRITE_CACHE_WRITETHROUGH (0): every write goes to the backend
 *	with REQ_FUA and completes once it is stable.  FLUSH requests are
 *	still accepted (and still flush the backend).
 *   VHOST_BLK_WRITE_CACHE_WRITEBACK (1): plain writes, which may sit in the
 *	backend's volatile cache until a guest FLUSH (REQ_PREFLUSH).  Only
 *	while VIRTIO_BLK_F_FLUSH is negotiated: a guest that cannot flush is
 *	served write-through whatever was set.
 *
 * The default, on open and after VHOST_RESET_OWNER, is WRITEBACK: a VMM that
 * never calls this ioctl gets what the module always did, write-back with
 * VIRTIO_BLK_F_FLUSH and write-through (REQ_FUA) without it.
 * VHOST_BLK_GET_WRITE_CACHE returns the mode writes are served in now, so it
 * reads WRITETHROUGH without VIRTIO_BLK_F_FLUSH.  VIRTIO_BLK_F_CONFIG_WCE in
 * VHOST_GET_FEATURES says the module has these ioctls; negotiating it
 * changes nothing in the module.
 *
 * May be called at any time after VHOST_SET_OWNER, also while rings run.
 * Every request keeps the mode it was taken from the ring under.  Switching
 * to write-through completes every request in flight (as a detach does),
 * then flushes the backend's cache before returning, so every write the
 * guest has seen complete is stable once the call returns, and every later
 * one is FUA.  Switching to write-back applies to the requests taken after
 * it.  Errors: EINVAL for a value other than 0 or 1, EPERM for a caller that
 * is not the owner, EIO if the flush failed (the mode is write-through
 * nonetheless; the VMM may retry).
 */
#define VHOST_BLK_WRITE_CACHE_WRITETHROUGH	0u
#define VHOST_BLK_WRITE_CACHE_WRITEBACK		1u
#define VHOST_BLK_SET_WRITE_CACHE _IOW(VHOST_VIRTIO, 0xFC, __u32)
#define VHOST_BLK_GET_WRITE_CACHE _IOR(VHOST_VIRTIO, 0xFC, __u32)

/*
 * VHOST_BLK_SET_BLOCK_SIZE, VHOST_BLK_GET_BLOCK_SIZE: the logical block size
 * the guest is given, in bytes: what the VMM advertises in blk_size
 * (VIRTIO_BLK_F_BLK_SIZE).  Requests must be aligned to it (start and
 * length); misaligned ones complete with VIRTIO_BLK_S_IOERR.
 *
 *   0 (the default, on open and after VHOST_RESET_OWNER): the backend's
 *	logical block size.
 *   512, 1024, 2048 or 4096: that size.  At least the backend's: only
 *	stricter alignment.  Below the backend's (512e: a guest with 512-byte
 *	blocks on a disk or file with 4 KiB ones, as QEMU's
 *	logical_block_size=512 on a 4Kn host disk): the module emulates
 *	the small blocks.  A read, write or WRITE_ZEROES that does not cover
 *	whole backend blocks is done by read-modify-write of the partial
 *	blocks at its ends, through a bounce buffer, one at a time per
 *	device, on a kworker.  It waits for the writes in flight that touch
 *	the same backend blocks, and the writes that come after it wait for
 *	it, so concurrent writes to different sectors of one backend block
 *	never undo each other; each 512-byte sector the guest wrote holds
 *	one of the writes to it, whole.  Aligned requests keep the zero-copy
 *	path.  DISCARD is a hint: only the whole backend blocks inside a
 *	segment are discarded (a VMM advertises discard_sector_alignment of
 *	one backend block).  SECURE_ERASE must cover whole backend blocks
 *	(secure_erase_sector_alignment), or it fails with VIRTIO_BLK_S_IOERR.
 *	The VMM advertises physical_block_exp so that a guest aligns its
 *	own I/O to the backend's blocks (Documentation/vhost-blk.rst, "512e").
 *
 * Set it while no ring has a backend: EBUSY otherwise.  It applies from the
 * next VHOST_BLK_SET_BACKEND.  Errors: EINVAL for another value, EPERM for a
 * caller that is not the owner.  VHOST_BLK_GET_BLOCK_SIZE returns the value
 * set (0 means the backend's).
 */
#define VHOST_BLK_SET_BLOCK_SIZE _IOW(VHOST_VIRTIO, 0xFB, __u32)
#define VHOST_BLK_GET_BLOCK_SIZE _IOR(VHOST_VIRTIO, 0xFB, __u32)

/*
 * VHOST_BLK_GET_WORKER_TID: the thread of a vhost worker, for placing it
 * (sched_setaffinity(2), a cpuset, a scheduling policy) from userspace,
 * where the admin's cgroup and permission checks apply.  The vhost core's
 * workers are threads of the owner named "vhost-<owner pid>"; this names
 * which thread serves which worker id.
 *
 *   worker_id	in: a worker of this device (VHOST_NEW_WORKER, or the one
 *		VHOST_GET_VRING_WORKER returns for a ring).
 *   tid	out: the worker's thread id in the caller's pid namespace;
 *		0 if the worker serves no ring (its thread runs nothing, and
 *		is named once a ring is attached to it) or is not visible in
 *		the caller's namespace.
 *
 * The thread is asked on the worker itself: the call waits until the
 * worker has run the work queued before it, as a flush does.  The id names
 * the thread while the worker exists; after VHOST_FREE_WORKER,
 * VHOST_RESET_OWNER or close it may be reused: ask again after any of them.
 * Errors: ENOENT for an unknown worker id, EPERM for a caller that is not
 * the owner, EOPNOTSUPP when the device's workers are kernel threads
 * (vhost's fork_from_owner_default=0), which are not the owner's to place.
 */
struct vhost_blk_worker_tid {
	__u32 worker_id;
	__s32 tid;
};

#define VHOST_BLK_GET_WORKER_TID \
	_IOWR(VHOST_VIRTIO, 0xFA, struct vhost_blk_worker_tid)

#endif /* _UAPI_LINUX_VHOST_BLK_H */
