// SPDX-License-Identifier: GPL-2.0
// The frontend's guest memory as the daemon sees it: each region's fd
// mapped into our address space, the table the kernel gets (our own
// addresses), and translation of frontend addresses into ours.
#pragma once

#include "vhost_user/protocol.hpp"

#include <vblk/fd.hpp>
#include <vblk/vhost_device.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

namespace bridge {

// An address the frontend named lies outside every region.
class TranslationError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// One region: where it is for the guest, the frontend and us.
struct Mapping {
	uint64_t guest_phys_addr;
	uint64_t size;
	uint64_t frontend_addr;
	uint64_t daemon_addr;
};

// Translates [frontend_addr, frontend_addr + len) into our address space;
// the range must lie within one region.  Pure: unit-testable without mmap.
std::optional<uint64_t> translate(std::span<const Mapping> maps, uint64_t frontend_addr,
				  uint64_t len);

class MemoryTable {
public:
	MemoryTable() = default;

	// mmap()s each region's fd (MAP_SHARED, from offset 0 through
	// mmap_offset + size) and closes the fds.  Throws vblk::SysError;
	// nothing stays mapped on failure.
	static MemoryTable map(std::span<const vhost_user::MemoryRegion> regions,
			       std::span<vblk::UniqueFd> fds);

	bool empty() const noexcept { return maps_.empty(); }
	std::span<const Mapping> mappings() const noexcept { return maps_; }
	// The table for VHOST_SET_MEM_TABLE: guest addresses, our addresses.
	std::vector<vblk::MemRegion> kernel_regions() const;
	// Throws TranslationError.
	uint64_t to_daemon(uint64_t frontend_addr, uint64_t len, const char *what) const;

private:
	std::vector<vblk::Mmap> mmaps_;
	std::vector<Mapping> maps_;
};

} // namespace bridge
