// SPDX-License-Identifier: GPL-2.0
// "Guest RAM": one shared memfd mapping whose guest physical addresses are
// its user virtual addresses, with a small first-fit allocator for rings
// and buffers.
#pragma once

#include "vblk/fd.hpp"
#include "vblk/vhost_device.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace vblk {

class GuestMemory;

// An allocation in GuestMemory; returned to the allocator on destruction.
class GuestBuffer {
public:
	GuestBuffer() noexcept = default;
	GuestBuffer(GuestBuffer &&o) noexcept;
	GuestBuffer &operator=(GuestBuffer &&o) noexcept;
	GuestBuffer(const GuestBuffer &) = delete;
	GuestBuffer &operator=(const GuestBuffer &) = delete;
	~GuestBuffer() { reset(); }

	uint64_t gpa() const noexcept { return gpa_; }
	uint8_t *data() const noexcept { return reinterpret_cast<uint8_t *>(gpa_); }
	size_t size() const noexcept { return size_; }
	std::span<uint8_t> bytes() const noexcept { return { data(), size_ }; }
	explicit operator bool() const noexcept { return mem_ != nullptr; }
	void reset() noexcept;

private:
	friend class GuestMemory;
	GuestBuffer(GuestMemory *mem, uint64_t gpa, size_t size) noexcept
		: mem_(mem), gpa_(gpa), size_(size)
	{
	}

	GuestMemory *mem_ = nullptr;
	uint64_t gpa_ = 0;
	size_t size_ = 0;
};

// Offset-based first-fit allocator (no memory of its own), unit testable.
class RangeAllocator {
public:
	explicit RangeAllocator(size_t size);
	// Offset of a block of `size` bytes aligned to `align` (a power of
	// two), or SIZE_MAX when nothing fits.
	size_t allocate(size_t size, size_t align);
	void free(size_t offset, size_t size);
	size_t free_bytes() const noexcept;

private:
	std::map<size_t, size_t> free_; // offset -> length, coalesced
};

class GuestMemory {
public:
	explicit GuestMemory(size_t size);
	GuestMemory(const GuestMemory &) = delete;
	GuestMemory &operator=(const GuestMemory &) = delete;

	// Throws std::bad_alloc when the region is exhausted.  Contents are
	// zeroed.
	GuestBuffer allocate(size_t size, size_t align = 64);

	uint64_t base() const noexcept { return reinterpret_cast<uint64_t>(map_.data()); }
	size_t size() const noexcept { return map_.size(); }
	bool contains(uint64_t gpa, size_t len) const noexcept;
	// The memfd behind the mapping, for handing to another process.
	int fd() const noexcept { return memfd_.get(); }
	// The one region to give VHOST_SET_MEM_TABLE.
	MemRegion region() const noexcept { return { base(), size(), base() }; }

private:
	friend class GuestBuffer;
	void release(uint64_t gpa, size_t size) noexcept;

	UniqueFd memfd_;
	Mmap map_;
	RangeAllocator alloc_;
};

// Guest RAM of many GiB that costs only the pages touched: an anonymous
// MAP_NORESERVE mapping whose guest physical addresses are its user virtual
// addresses.  For descriptors of lengths a GuestMemory cannot back (near
// 4 GiB, or many GiB in all) that the device must refuse without touching
// them.  Add region() to the driver's memory table.
class SparseMemory {
public:
	explicit SparseMemory(size_t size);

	uint64_t base() const noexcept { return reinterpret_cast<uint64_t>(map_.data()); }
	size_t size() const noexcept { return map_.size(); }
	uint8_t *data() const noexcept { return map_.bytes(); }
	MemRegion region() const noexcept { return { base(), size(), base() }; }
	// Returns every touched page (MADV_DONTNEED): reads see zeroes again.
	void drop_pages() noexcept;

private:
	Mmap map_;
};

// `r` cut at `cuts` (offsets into r, ascending, each inside it): regions
// adjacent in guest physical space and in user space, so a descriptor
// across a cut spans two memory table entries.
std::vector<MemRegion> split_region(const MemRegion &r, std::span<const uint64_t> cuts);

} // namespace vblk
