// SPDX-License-Identifier: GPL-2.0
// The kernel device as the bridge sees it: one abstract interface, so the
// vhost-user state machine can be driven against a fake in tests.  Knows
// nothing of sockets.
#pragma once

#include <vblk/vhost_device.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

namespace device {

using vblk::MemRegion;
using vblk::VringAddr;

// Counters of one virtqueue (VHOST_BLK_GET_VRING_STATS).
struct RingStats {
	static constexpr unsigned nr_types = 8;
	uint32_t worker_id = ~0u;	// ~0u: none
	bool attached = false;
	// A ring error stopped the ring until the VMM sets it up again
	// (Documentation/vhost-blk.rst, "Ring errors").
	bool stopped = false;
	uint32_t inflight = 0;
	uint64_t requests[nr_types] = {};
	uint64_t bytes[nr_types] = {};
	uint64_t status_ok = 0, status_ioerr = 0, status_unsupp = 0;
	uint64_t bounced = 0, malformed = 0, batches = 0;
	uint64_t throttled = 0;		// waits for the ring's bounce budget
	uint64_t fua_writes = 0;	// writes sent write-through (REQ_FUA)
	// Adaptive busy polling: the ring's window now (µs, between 0 and the
	// ceiling set with set_vring_busyloop_timeout), polls that found the
	// guest's next request, polls that ran out their window.
	uint64_t poll_us = 0, poll_hits = 0, poll_misses = 0;
};
// "in", "out", "flush", "get_id", "discard", "write_zeroes",
// "secure_erase", "other": the index of each in RingStats::requests.
extern const char *const stat_type_names[RingStats::nr_types];

// All methods throw vblk::SysError on failure.
class Device {
public:
	virtual ~Device() = default;

	virtual uint64_t get_features() = 0;
	virtual void set_owner() = 0;
	virtual void set_features(uint64_t features) = 0;
	virtual void set_mem_table(std::span<const MemRegion> regions) = 0;
	virtual void set_vring_num(unsigned index, unsigned num) = 0;
	virtual void set_vring_base(unsigned index, unsigned base) = 0;
	virtual unsigned get_vring_base(unsigned index) = 0;
	virtual void set_vring_addr(unsigned index, const VringAddr &addr) = 0;
	virtual void set_vring_kick(unsigned index, int fd) = 0;
	virtual void set_vring_call(unsigned index, int fd) = 0;
	virtual void set_vring_err(unsigned index, int fd) = 0;
	// The dirty log's address in our address space (VHOST_SET_LOG_BASE;
	// 0: none).  The kernel drains in-flight requests first, so once this
	// returns it no longer writes to the previous log.
	virtual void set_log_base(uint64_t addr) = 0;
	virtual void set_log_fd(int fd) = 0;
	// The ceiling of the ring's adaptive busy polling, microseconds, 0:
	// off (VHOST_SET_VRING_BUSYLOOP_TIMEOUT; the window restarts at it).
	virtual void set_vring_busyloop_timeout(unsigned index, unsigned usecs) = 0;
	// Attaches the block device to ring `index`.
	virtual void attach_ring(unsigned index, int backend_fd) = 0;
	// Detaches ring `index`; returns once its in-flight requests are in
	// the used ring.
	virtual void detach_ring(unsigned index) = 0;
	virtual void set_serial(std::string_view serial) = 0;
	// The guest's logical block size (VHOST_BLK_SET_BLOCK_SIZE), before
	// the first ring is attached.
	virtual void set_block_size(uint32_t bytes) = 0;
	virtual RingStats ring_stats(unsigned index) = 0;
	// The write cache mode (VHOST_BLK_SET_WRITE_CACHE): true write-back.
	// Switching to write-through returns once earlier writes are stable.
	virtual void set_write_cache(bool writeback) = 0;
	// The mode writes are served in now (write-through without FLUSH).
	virtual bool write_cache() = 0;
	virtual unsigned new_worker() = 0;
	virtual void free_worker(unsigned worker_id) = 0;
	virtual void attach_vring_worker(unsigned index, unsigned worker_id) = 0;
	virtual unsigned get_vring_worker(unsigned index) = 0;
	// The worker's thread (VHOST_BLK_GET_WORKER_TID), 0 while it serves no
	// ring.
	virtual pid_t worker_tid(unsigned worker_id) = 0;
};

// Opens a fresh device (one per vhost-user connection).
using DeviceFactory = std::function<std::unique_ptr<Device>()>;

} // namespace device
