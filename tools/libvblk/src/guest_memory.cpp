// SPDX-License-Identifier: GPL-2.0
#include "vblk/guest_memory.hpp"
#include "vblk/error.hpp"

#include <cstring>
#include <new>
#include <stdexcept>
#include <sys/mman.h>
#include <unistd.h>

namespace vblk {

GuestBuffer::GuestBuffer(GuestBuffer &&o) noexcept
	: mem_(std::exchange(o.mem_, nullptr)), gpa_(std::exchange(o.gpa_, 0)),
	  size_(std::exchange(o.size_, 0))
{
}

GuestBuffer &GuestBuffer::operator=(GuestBuffer &&o) noexcept
{
	if (this != &o) {
		reset();
		mem_ = std::exchange(o.mem_, nullptr);
		gpa_ = std::exchange(o.gpa_, 0);
		size_ = std::exchange(o.size_, 0);
	}
	return *this;
}

void GuestBuffer::reset() noexcept
{
	if (mem_)
		mem_->release(gpa_, size_);
	mem_ = nullptr;
	gpa_ = 0;
	size_ = 0;
}

RangeAllocator::RangeAllocator(size_t size)
{
	if (size)
		free_.emplace(0, size);
}

size_t RangeAllocator::allocate(size_t size, size_t align)
{
	if (size == 0)
		size = 1;
	for (auto it = free_.begin(); it != free_.end(); ++it) {
		size_t start = it->first, len = it->second;
		size_t aligned = (start + align - 1) & ~(align - 1);
		if (aligned - start + size > len)
			continue;
		free_.erase(it);
		if (aligned > start)
			free_.emplace(start, aligned - start);
		if (aligned + size < start + len)
			free_.emplace(aligned + size, start + len - aligned - size);
		return aligned;
	}
	return SIZE_MAX;
}

void RangeAllocator::free(size_t offset, size_t size)
{
	if (size == 0)
		size = 1;
	auto next = free_.lower_bound(offset);
	if (next != free_.end() && offset + size == next->first) {
		size += next->second;
		next = free_.erase(next);
	}
	if (next != free_.begin()) {
		auto prev = std::prev(next);
		if (prev->first + prev->second == offset) {
			prev->second += size;
			return;
		}
	}
	free_.emplace(offset, size);
}

size_t RangeAllocator::free_bytes() const noexcept
{
	size_t n = 0;
	for (const auto &[off, len] : free_)
		n += len;
	return n;
}

GuestMemory::GuestMemory(size_t size)
	: memfd_(static_cast<int>(check(::memfd_create("vblk-guest-ram", MFD_CLOEXEC),
					 "memfd_create"))),
	  alloc_(size)
{
	check(::ftruncate(memfd_.get(), static_cast<off_t>(size)), "ftruncate guest memory");
	map_ = Mmap::map(size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_.get());
}

GuestBuffer GuestMemory::allocate(size_t size, size_t align)
{
	size_t off = alloc_.allocate(size, align);
	if (off == SIZE_MAX)
		throw std::bad_alloc();
	std::memset(map_.bytes() + off, 0, size);
	return GuestBuffer(this, base() + off, size);
}

bool GuestMemory::contains(uint64_t gpa, size_t len) const noexcept
{
	return gpa >= base() && len <= size() && gpa - base() <= size() - len;
}

void GuestMemory::release(uint64_t gpa, size_t size) noexcept
{
	alloc_.free(gpa - base(), size);
}

SparseMemory::SparseMemory(size_t size)
	: map_(Mmap::map(size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1))
{
}

void SparseMemory::drop_pages() noexcept
{
	::madvise(map_.data(), map_.size(), MADV_DONTNEED);
}

std::vector<MemRegion> split_region(const MemRegion &r, std::span<const uint64_t> cuts)
{
	std::vector<MemRegion> out;
	uint64_t at = 0;
	for (uint64_t cut : cuts) {
		if (cut <= at || cut >= r.size)
			throw std::invalid_argument("split_region: cuts must ascend inside the region");
		out.push_back({ r.guest_phys_addr + at, cut - at, r.userspace_addr + at });
		at = cut;
	}
	out.push_back({ r.guest_phys_addr + at, r.size - at, r.userspace_addr + at });
	return out;
}

} // namespace vblk
