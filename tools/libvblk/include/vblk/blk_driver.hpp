// SPDX-License-Identifier: GPL-2.0
// A userspace virtio-blk driver on /dev/vhost-blk, or on any vhost-user-blk
// backend (qemu-storage-daemon, vhost-blkctl serve): the "VMM + guest" in
// one process.  Sets the device up, owns the rings and guest memory and
// offers synchronous and asynchronous request helpers.
#pragma once

#include "vblk/guest_memory.hpp"
#include "vblk/request.hpp"
#include "vblk/vhost_device.hpp"
#include "vblk/vhost_user_frontend.hpp"
#include "vblk/virtqueue.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace vblk {

// Feature bits (bit numbers).
inline constexpr unsigned f_notify_on_empty = 24;
inline constexpr unsigned f_any_layout = 27;
inline constexpr unsigned f_indirect_desc = 28;
inline constexpr unsigned f_event_idx = 29;
inline constexpr unsigned f_version_1 = 32;
inline constexpr unsigned f_log_all = 26;

constexpr uint64_t bit(unsigned n) { return uint64_t{ 1 } << n; }

// Everything the module offers except dirty logging (needs a log area) and
// RO (a property of the disk, asked for explicitly).
inline constexpr uint64_t default_features =
	bit(f_version_1) | bit(f_any_layout) | bit(f_indirect_desc) | bit(f_event_idx) |
	bit(f_notify_on_empty) | bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) |
	bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_MQ) | bit(VIRTIO_BLK_F_DISCARD) |
	bit(VIRTIO_BLK_F_WRITE_ZEROES) | bit(VIRTIO_BLK_F_SECURE_ERASE) |
	bit(VIRTIO_BLK_F_TOPOLOGY);

class TimeoutError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// The ring has no room for the request right now.
class QueueFull : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

struct BlkDriverOptions {
	std::string device_path = VhostBlkDevice::default_path;
	// When set, the device is the vhost-user-blk backend listening on this
	// socket instead of device_path.  Its disk is the daemon's: attach(),
	// detach(), stats() and friends are for /dev/vhost-blk only.
	std::string vhost_user_socket;
	unsigned num_queues = 1;
	uint16_t queue_size = 128;
	size_t memory_size = size_t{ 64 } << 20;
	// Requested features; the driver acks requested & offered.
	uint64_t features = default_features;
	// Fail if a requested feature is not offered.
	bool require_all_features = false;
	std::chrono::milliseconds timeout{ 10000 };
};

struct Completion {
	uint64_t token;
	unsigned queue;
	uint16_t head;
	uint32_t used_len;
	uint8_t status;		  // status_unwritten if the device left it
	std::vector<uint8_t> data; // device-writable payload (IN, GET_ID), else empty
};

class BlkDriver {
public:
	explicit BlkDriver(const BlkDriverOptions &opts = {});
	BlkDriver(const BlkDriver &) = delete;
	BlkDriver &operator=(const BlkDriver &) = delete;
	~BlkDriver();

	// Throws std::logic_error on a vhost-user device.
	VhostBlkDevice &device();
	bool is_vhost_user() const noexcept { return vu_ != nullptr; }
	VhostUserFrontend &vhost_user();
	GuestMemory &memory() noexcept { return mem_; }
	SplitVirtqueue &queue(unsigned q) { return *queues_.at(q).vq; }
	unsigned num_queues() const noexcept { return static_cast<unsigned>(queues_.size()); }
	uint64_t offered_features() const noexcept { return offered_; }
	uint64_t features() const noexcept { return features_; }
	bool has_feature(unsigned b) const noexcept { return features_ & bit(b); }
	std::chrono::milliseconds timeout() const noexcept { return opts_.timeout; }

	// Backend.  The driver does not own backend fds; keep them open.
	void attach(int backend_fd);
	void attach_ring(unsigned q, int backend_fd);
	void detach();
	void detach_ring(unsigned q);
	// Attaches ring q again with the fd it last had.
	void reattach_ring(unsigned q);
	// Stops ring q and returns its index (both kinds of device).
	unsigned get_vring_base(unsigned q);
	void set_serial(std::string_view s) { device().set_serial(s); }
	vhost_blk_vring_stats stats(unsigned q) { return device().get_vring_stats(q); }

	// Creates `n` vhost workers (VHOST_NEW_WORKER) and attaches the rings
	// to them round-robin; n == 0 leaves every ring on the device's
	// default worker.  Returns each ring's worker id.
	std::vector<unsigned> spread_workers(unsigned n);

	// A VMM's restart of ring q after a stop (VHOST_GET_VRING_BASE or a
	// detach): the same ring set up again from `base` with
	// SET_VRING_NUM/BASE/ADDR/KICK/CALL/ERR, as QEMU's vhost_dev_start()
	// does on `cont`.  The backend is attached again separately.
	// /dev/vhost-blk only.
	void restart_ring(unsigned q, uint16_t base);
	// A guest reset of ring q: a fresh ring from base 0 (requests the
	// driver still waited for are forgotten), set up as at start.
	// /dev/vhost-blk only.
	void renew_ring(unsigned q);
	// Tears the device down with VHOST_RESET_OWNER and sets it up again
	// (fresh rings, same memory table and features).  Backends are dropped.
	void reset();

	// The device's memory table: by default memory().region(), one entry.
	// set_mem_table() replaces it with any list (VHOST_SET_MEM_TABLE); the
	// list must still cover the rings and every buffer in flight, e.g.
	// split_region(memory().region(), ...) plus a SparseMemory's region.
	// /dev/vhost-blk only.
	void set_mem_table(std::vector<MemRegion> regions);
	const std::vector<MemRegion> &mem_table() const noexcept { return mem_table_; }

	// ---- asynchronous ----
	bool can_submit(unsigned q, const RequestSpec &spec) const;
	// Returns a token; throws QueueFull when the ring has no room.
	uint64_t submit(unsigned q, const RequestSpec &spec, bool kick = true);
	// A raw chain built by the caller (malformed-request tests); the
	// completion carries only used_len.
	uint64_t submit_segments(unsigned q, std::span<const Segment> segs, bool indirect = false,
				 bool kick = true);
	void kick(unsigned q) { queue(q).kick(); }
	// Collects completions: waits up to `timeout` until at least
	// `min_count` are there, then returns all that are.
	std::vector<Completion> poll(unsigned q, size_t min_count = 1,
				     std::optional<std::chrono::milliseconds> timeout = {});
	// Waits for one token.  Throws TimeoutError.
	Completion wait(unsigned q, uint64_t token);
	size_t pending(unsigned q) const { return queues_.at(q).pending.size(); }

	// ---- synchronous; return the status byte ----
	Completion execute(unsigned q, const RequestSpec &spec);
	uint8_t read(unsigned q, uint64_t sector, std::span<uint8_t> out, const IoOptions &io = {});
	uint8_t write(unsigned q, uint64_t sector, std::span<const uint8_t> in,
		      const IoOptions &io = {});
	uint8_t flush(unsigned q);
	// `id` receives the 20 bytes the device wrote.
	uint8_t get_id(unsigned q, std::array<char, VIRTIO_BLK_ID_BYTES> &id);
	uint8_t discard(unsigned q, std::span<const Range> ranges, const IoOptions &io = {});
	uint8_t write_zeroes(unsigned q, std::span<const Range> ranges, const IoOptions &io = {});
	uint8_t secure_erase(unsigned q, std::span<const Range> ranges, const IoOptions &io = {});

	static RequestSpec read_spec(uint64_t sector, uint32_t len, const IoOptions &io = {});
	static RequestSpec write_spec(uint64_t sector, std::span<const uint8_t> data,
				      const IoOptions &io = {});
	static RequestSpec range_spec(uint32_t type, std::span<const Range> ranges,
				      const IoOptions &io = {});

private:
	struct Pending {
		std::optional<PreparedRequest> req; // empty for raw chains
	};
	struct Queue {
		std::unique_ptr<SplitVirtqueue> vq;
		std::unordered_map<uint64_t, Pending> pending;
		std::deque<Completion> ready;
		int backend_fd = -1;
	};

	void setup();
	void setup_queue(unsigned q);
	void reap(unsigned q);
	uint64_t enqueue(unsigned q, std::span<const Segment> segs, bool indirect, Pending p,
			 bool kick);

	BlkDriverOptions opts_;
	// Declaration order is teardown order reversed: the device fd closes
	// (waiting for in-flight bios) before rings and memory go away.
	GuestMemory mem_;
	std::vector<MemRegion> mem_table_;
	std::vector<Queue> queues_;
	std::unique_ptr<VhostBlkDevice> dev_;
	std::unique_ptr<VhostUserFrontend> vu_;
	uint64_t offered_ = 0;
	uint64_t features_ = 0;
	uint64_t next_token_ = 1;
};

} // namespace vblk
