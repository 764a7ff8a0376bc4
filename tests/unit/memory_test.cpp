// SPDX-License-Identifier: GPL-2.0
// Guest memory, its allocator, the RAII wrappers and errors.
#include <vblk/error.hpp>
#include <vblk/fd.hpp>
#include <vblk/guest_memory.hpp>
#include <vblk/vhost_device.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <fcntl.h>

using namespace vblk;

TEST(RangeAllocator, HonoursAlignment)
{
	RangeAllocator a(1 << 20);
	EXPECT_EQ(a.allocate(10, 1), 0u);
	EXPECT_EQ(a.allocate(100, 4096), 4096u);
	EXPECT_EQ(a.allocate(1, 16), 16u); // fits into the gap before 4096
}

TEST(RangeAllocator, CoalescesFreedNeighbours)
{
	RangeAllocator a(3 * 4096);
	size_t x = a.allocate(4096, 4096), y = a.allocate(4096, 4096), z = a.allocate(4096, 4096);
	EXPECT_EQ(a.allocate(1, 1), SIZE_MAX);
	a.free(x, 4096);
	a.free(z, 4096);
	a.free(y, 4096);
	EXPECT_EQ(a.free_bytes(), 3u * 4096);
	EXPECT_EQ(a.allocate(3 * 4096, 4096), 0u);
}

TEST(GuestMemory, BuffersAreZeroedInsideAndReturnedOnDestruction)
{
	GuestMemory mem(64 * 1024);
	{
		auto b = mem.allocate(60 * 1024, 4096);
		EXPECT_TRUE(mem.contains(b.gpa(), b.size()));
		EXPECT_EQ(b.gpa() % 4096, 0u);
		b.data()[0] = 0x5a;
		EXPECT_THROW(mem.allocate(8 * 1024), std::bad_alloc);
	}
	auto again = mem.allocate(60 * 1024, 4096);
	EXPECT_EQ(again.data()[0], 0);
}

TEST(GuestMemory, RegionMapsGuestAddressToItself)
{
	GuestMemory mem(1 << 20);
	auto r = mem.region();
	EXPECT_EQ(r.guest_phys_addr, r.userspace_addr);
	EXPECT_EQ(r.size, mem.size());
	EXPECT_FALSE(mem.contains(mem.base() + mem.size() - 1, 2));
	EXPECT_GE(mem.fd(), 0);
}

TEST(Errors, SysErrorCarriesErrnoAndContext)
{
	SysError e(EINVAL, "VHOST_SET_MEM_TABLE");
	EXPECT_EQ(e.code(), EINVAL);
	EXPECT_STREQ(e.what(), "VHOST_SET_MEM_TABLE: Invalid argument");
}

TEST(Fd, OpenFailureThrowsWithPath)
{
	try {
		UniqueFd::open("/nonexistent/vblk", O_RDONLY);
		FAIL();
	} catch (const SysError &e) {
		EXPECT_EQ(e.code(), ENOENT);
		EXPECT_EQ(e.context(), "open /nonexistent/vblk");
	}
}

TEST(SplitRegion, CutsIntoAdjacentRegionsCoveringTheWhole)
{
	MemRegion r{ 0x10000, 0x8000, 0x7f0000010000 };
	const uint64_t cuts[] = { 0x100, 0x4000 };
	auto parts = split_region(r, cuts);
	ASSERT_EQ(parts.size(), 3u);
	EXPECT_EQ(parts[0].guest_phys_addr, 0x10000u);
	EXPECT_EQ(parts[0].size, 0x100u);
	EXPECT_EQ(parts[1].guest_phys_addr, 0x10100u);
	EXPECT_EQ(parts[1].userspace_addr, 0x7f0000010100u);
	EXPECT_EQ(parts[1].size, 0x3f00u);
	EXPECT_EQ(parts[2].guest_phys_addr + parts[2].size, r.guest_phys_addr + r.size);
	const uint64_t bad[] = { 0x4000, 0x100 };
	EXPECT_THROW(split_region(r, bad), std::invalid_argument);
	const uint64_t outside[] = { 0x8000 };
	EXPECT_THROW(split_region(r, outside), std::invalid_argument);
}

TEST(SparseMemory, ReservesNothingAndDropsTouchedPages)
{
	SparseMemory m(size_t{ 1 } << 30);
	EXPECT_EQ(m.region().guest_phys_addr, m.base());
	EXPECT_EQ(m.region().size, size_t{ 1 } << 30);
	m.data()[12345] = 7;
	EXPECT_EQ(m.data()[12345], 7);
	m.drop_pages();
	EXPECT_EQ(m.data()[12345], 0);
}

TEST(Fd, EventFdCountsAndTimesOut)
{
	EventFd e;
	EXPECT_EQ(e.wait(std::chrono::milliseconds(1)), 0u);
	e.signal();
	e.signal(2);
	EXPECT_EQ(e.wait(std::chrono::milliseconds(1)), 3u);
	EXPECT_EQ(e.consume(), 0u);
}

TEST(VhostDevice, WorkerIoctlNumbersMatchLinux612Uapi)
{
	// _IOR(VHOST_VIRTIO, 0x8, struct vhost_worker_state) and friends,
	// as in Linux 6.12 include/uapi/linux/vhost.h.
	EXPECT_EQ(VhostBlkDevice::new_worker_request(), 0x8004af08ul);
	EXPECT_EQ(VhostBlkDevice::free_worker_request(), 0x4004af09ul);
	EXPECT_EQ(VhostBlkDevice::attach_vring_worker_request(), 0x4008af15ul);
	EXPECT_EQ(VhostBlkDevice::get_vring_worker_request(), 0xc008af16ul);
}

TEST(VhostDevice, BlkIoctlNumbersMatchTheUapiHeader)
{
	EXPECT_EQ(VHOST_BLK_SET_BACKEND, 0x4008afFFul);
	EXPECT_EQ(VHOST_BLK_SET_SERIAL, 0x4014afFEul);
	EXPECT_EQ(sizeof(vhost_blk_vring_stats), 16u + 8 * 8 * 2 + 8 * 6 + 8 * 8);
	EXPECT_EQ(VHOST_BLK_BACKEND_VRING(3), 0x80000003u);
}
