// SPDX-License-Identifier: GPL-2.0
#include "bridge/memory.hpp"

#include <vblk/error.hpp>

#include <cstdio>
#include <sys/mman.h>

namespace bridge {

std::optional<uint64_t> translate(std::span<const Mapping> maps, uint64_t frontend_addr,
				  uint64_t len)
{
	if (frontend_addr + len < frontend_addr)
		return std::nullopt;
	for (const auto &m : maps) {
		if (frontend_addr >= m.frontend_addr &&
		    frontend_addr - m.frontend_addr < m.size &&
		    len <= m.size - (frontend_addr - m.frontend_addr))
			return m.daemon_addr + (frontend_addr - m.frontend_addr);
	}
	return std::nullopt;
}

MemoryTable MemoryTable::map(std::span<const vhost_user::MemoryRegion> regions,
			     std::span<vblk::UniqueFd> fds)
{
	MemoryTable t;
	for (size_t i = 0; i < regions.size(); i++) {
		const auto &r = regions[i];
		uint64_t len = r.mmap_offset + r.memory_size;
		vblk::Mmap m;
		try {
			m = vblk::Mmap::map(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
					    fds[i].get(), 0);
		} catch (const vblk::SysError &e) {
			throw vblk::SysError(e.code(), "mmap memory region " + std::to_string(i) +
							       " (" + std::to_string(len) + " bytes)");
		}
		t.maps_.push_back({ r.guest_phys_addr, r.memory_size, r.userspace_addr,
				    reinterpret_cast<uint64_t>(m.bytes() + r.mmap_offset) });
		t.mmaps_.push_back(std::move(m));
		fds[i].reset();
	}
	return t;
}

std::vector<vblk::MemRegion> MemoryTable::kernel_regions() const
{
	std::vector<vblk::MemRegion> out;
	for (const auto &m : maps_)
		out.push_back({ m.guest_phys_addr, m.size, m.daemon_addr });
	return out;
}

uint64_t MemoryTable::to_daemon(uint64_t frontend_addr, uint64_t len, const char *what) const
{
	auto a = translate(maps_, frontend_addr, len);
	if (!a) {
		char buf[160];
		std::snprintf(buf, sizeof(buf),
			      "%s at 0x%llx (+%llu) is outside the frontend's memory table",
			      what, static_cast<unsigned long long>(frontend_addr),
			      static_cast<unsigned long long>(len));
		throw TranslationError(buf);
	}
	return *a;
}

} // namespace bridge
