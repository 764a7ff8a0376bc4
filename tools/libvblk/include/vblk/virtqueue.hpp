// SPDX-License-Identifier: GPL-2.0
// Guest-side split virtqueue driver (virtio 1.2, 2.7 "Split Virtqueues").
#pragma once

#include "vblk/fd.hpp"
#include "vblk/guest_memory.hpp"
#include "vblk/vhost_device.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace vblk {

// Descriptor flags (virtio 1.2 2.7.5).
inline constexpr uint16_t desc_f_next = 1;
inline constexpr uint16_t desc_f_write = 2;
inline constexpr uint16_t desc_f_indirect = 4;
inline constexpr uint16_t avail_f_no_interrupt = 1;
inline constexpr uint16_t used_f_no_notify = 1;

// In-memory formats; every field is little-endian in guest memory.
struct VringDesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);

struct VringUsedElem {
	uint32_t id;
	uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8);

// Where the three parts of a ring of `num` entries go.  The used ring is
// aligned to `used_align` (4 for virtio 1.x, 4096 for the legacy layout,
// which makes `total` equal to the classic vring_size()).
struct RingLayout {
	uint16_t num;
	size_t desc_offset, desc_size;
	size_t avail_offset, avail_size; // flags, idx, ring[num], used_event
	size_t used_offset, used_size;	 // flags, idx, ring[num], avail_event
	size_t total;

	static RingLayout compute(uint16_t num, size_t used_align = 4);
};

// The event index test of virtio 1.2 2.7.7.2 / 2.7.10: true when moving
// the index from `old_idx` to `new_idx` passes `event_idx`.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return static_cast<uint16_t>(new_idx - event_idx - 1) <
	       static_cast<uint16_t>(new_idx - old_idx);
}

// One descriptor's worth of a chain.
struct Segment {
	uint64_t addr;
	uint32_t len;
	bool device_writable;
};

// An entry taken from the used ring.
struct UsedEntry {
	uint16_t id;
	uint32_t len;
	uint64_t token;
};

class SplitVirtqueue {
public:
	// `num` must be a power of two.  `indirect`/`event_idx` say what was
	// negotiated: indirect chains are refused without it, and with
	// event_idx notifications follow used_event/avail_event.
	SplitVirtqueue(GuestMemory &mem, uint16_t num, bool event_idx, bool indirect);

	uint16_t size() const noexcept { return layout_.num; }
	const RingLayout &layout() const noexcept { return layout_; }
	VringAddr addresses() const noexcept;
	size_t num_free() const noexcept { return free_.size(); }
	size_t outstanding() const noexcept { return outstanding_count_; }
	bool event_idx() const noexcept { return event_idx_; }

	EventFd &kick_fd() noexcept { return kick_; }
	EventFd &call_fd() noexcept { return call_; }
	EventFd &err_fd() noexcept { return err_; }

	// Descriptors a chain needs: segments, or 1 for an indirect chain.
	static size_t descriptors_needed(size_t segments, bool indirect) noexcept
	{
		return indirect ? 1 : segments;
	}

	// Writes the chain and makes it available (not kicked).  Returns the
	// head, or nullopt when there are not enough free descriptors.
	// Throws std::invalid_argument for an empty chain or an indirect one
	// without the feature.
	std::optional<uint16_t> add_chain(std::span<const Segment> segs, uint64_t token,
					  bool indirect = false);

	// Notifies the device if the ring's suppression state asks for it
	// (VRING_USED_F_NO_NOTIFY or avail_event).  Returns whether it did.
	bool kick();
	// Notifies unconditionally.
	void notify() { kick_.signal(); }

	bool has_used() const noexcept;
	// Takes one used entry.  Throws ProtocolError for an id that is out
	// of range, was not outstanding or is returned a second time, and for
	// a used index that ran more than `num` ahead.
	std::optional<UsedEntry> get_used();
	// Waits on the call eventfd until a used entry is there.  Returns
	// false on timeout.
	bool wait_used(std::chrono::milliseconds timeout);

	// ---- Raw access for tests that write malformed rings ----
	VringDesc *desc_table() noexcept { return desc_; }
	uint16_t avail_idx() const noexcept { return avail_shadow_; }
	// The head in avail ring slot `idx` (taken modulo the ring size).
	uint16_t avail_entry(uint16_t idx) const noexcept;
	uint16_t used_idx() const noexcept; // the device's used->idx
	uint16_t last_used_idx() const noexcept { return last_used_; }
	uint16_t avail_event() const noexcept;
	uint16_t used_event() const noexcept;
	uint16_t used_flags() const noexcept;
	void set_avail_flags(uint16_t flags) noexcept;
	// Takes `n` descriptors off the free list for the caller to fill.
	std::vector<uint16_t> take_descriptors(size_t n);
	// Gives descriptors back to the free list.
	void return_descriptors(std::span<const uint16_t> ids);
	// Marks `head` outstanding, owning `descs` until it is used.
	void track(uint16_t head, std::vector<uint16_t> descs, uint64_t token);
	// Puts `head` into the avail ring and publishes the index, tracked or
	// not (publishing a tracked head twice is the "same head in flight
	// twice" guest bug).
	void publish(uint16_t head) noexcept;

private:
	struct Inflight {
		bool outstanding = false;
		uint64_t token = 0;
		std::vector<uint16_t> descs;
		GuestBuffer indirect_table;
	};

	uint16_t load_used_idx() const noexcept;
	void write_used_event(uint16_t v) noexcept;

	RingLayout layout_;
	GuestBuffer ring_;
	VringDesc *desc_;
	uint16_t *avail_flags_, *avail_idx_, *avail_ring_, *used_event_;
	uint16_t *used_flags_, *used_idx_, *avail_event_;
	VringUsedElem *used_ring_;
	GuestMemory &mem_;
	bool event_idx_, indirect_;

	std::vector<uint16_t> free_;
	std::vector<Inflight> inflight_;
	size_t outstanding_count_ = 0;
	uint16_t avail_shadow_ = 0;
	uint16_t kicked_idx_ = 0;
	uint16_t last_used_ = 0;

	EventFd kick_, call_, err_;
};

} // namespace vblk
