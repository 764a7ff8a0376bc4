// SPDX-License-Identifier: GPL-2.0
// Frontend -> daemon address translation and region mapping.
#include "bridge/memory.hpp"

#include <vblk/error.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace bridge;

namespace {

const Mapping maps[] = {
	{ 0x0, 0xa0000, 0x7f0000000000, 0x10000000 },
	{ 0x100000, 0xff00000, 0x7f0000100000, 0x20100000 },
};

vblk::UniqueFd memfd(size_t size)
{
	int fd = ::memfd_create("vhost-blkctl-test", MFD_CLOEXEC);
	EXPECT_GE(fd, 0);
	EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
	return vblk::UniqueFd(fd);
}

} // namespace

TEST(Translate, address_inside_a_region_maps_by_offset)
{
	EXPECT_EQ(translate(maps, 0x7f0000000010, 16), 0x10000010u);
	EXPECT_EQ(translate(maps, 0x7f0000100000 + 0x1234, 0x100), 0x20100000u + 0x1234);
}

TEST(Translate, range_must_fit_in_one_region)
{
	EXPECT_TRUE(translate(maps, 0x7f0000000000 + 0xa0000 - 16, 16));
	EXPECT_FALSE(translate(maps, 0x7f0000000000 + 0xa0000 - 16, 17));
	EXPECT_FALSE(translate(maps, 0x7f0000000000 + 0xa0000, 1));
}

TEST(Translate, outside_every_region_or_wrapping)
{
	EXPECT_FALSE(translate(maps, 0x1000, 1));
	EXPECT_FALSE(translate(maps, ~0ull - 4, 16));
	EXPECT_FALSE(translate({}, 0x7f0000000000, 1));
}

TEST(MemoryTable, maps_regions_with_offsets_and_shares_memory)
{
	auto fd0 = memfd(0x10000);
	auto fd1 = memfd(0x3000);
	ASSERT_EQ(::pwrite(fd1.get(), "hello", 5, 0x2000), 5);
	vhost_user::MemoryRegion r[] = {
		{ 0x0, 0x10000, 0x7f0000000000, 0 },
		{ 0x100000, 0x1000, 0x7f0000100000, 0x2000 },
	};
	std::vector<vblk::UniqueFd> fds;
	fds.push_back(std::move(fd0));
	fds.push_back(std::move(fd1));
	auto t = MemoryTable::map(r, fds);
	EXPECT_FALSE(fds[0]);	// closed once mapped
	auto k = t.kernel_regions();
	ASSERT_EQ(k.size(), 2u);
	EXPECT_EQ(k[1].guest_phys_addr, 0x100000u);
	EXPECT_EQ(k[1].size, 0x1000u);
	EXPECT_EQ(std::memcmp(reinterpret_cast<void *>(k[1].userspace_addr), "hello", 5), 0);
	EXPECT_EQ(t.to_daemon(0x7f0000100000, 5, "x"), k[1].userspace_addr);
	EXPECT_THROW(t.to_daemon(0x7f0000100000, 0x1001, "used ring"), TranslationError);
}

TEST(MemoryTable, bad_fd_fails_and_leaves_nothing_mapped)
{
	vhost_user::MemoryRegion r[] = { { 0, 0x1000, 0x1000, 0 } };
	std::vector<vblk::UniqueFd> fds;
	fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
	EXPECT_THROW(MemoryTable::map(r, fds), vblk::SysError);
}
