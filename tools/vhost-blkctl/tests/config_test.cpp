// SPDX-License-Identifier: GPL-2.0
// Offered features and the virtio-blk config space.
#include "bridge/config.hpp"

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>

#include <gtest/gtest.h>

#include <cstddef>

using namespace bridge;

namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }

device::BackendInfo disk_1g()
{
	device::BackendInfo b;
	b.size_bytes = 1ull << 30;
	b.logical_block_size = 512;
	b.physical_block_size = 4096;
	b.min_io_size = 4096;
	b.opt_io_size = 65536;
	b.discard_max_bytes = 1ull << 30;
	b.discard_granularity = 4096;
	b.write_zeroes_max_bytes = 8ull << 20;
	return b;
}

// Like null_blk: discard, but no write-zeroes offload.
device::BackendInfo disk_without_write_zeroes()
{
	auto b = disk_1g();
	b.write_zeroes_max_bytes = 0;
	return b;
}

const uint64_t kernel_all = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ANY_LAYOUT) |
			    bit(28) | bit(29) | bit(24) | bit(VHOST_F_LOG_ALL) |
			    bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_SIZE_MAX) |
			    bit(VIRTIO_BLK_F_RO) |
			    bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH) |
			    bit(VIRTIO_BLK_F_TOPOLOGY) | bit(VIRTIO_BLK_F_MQ) |
			    bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES) |
			    bit(VIRTIO_BLK_F_SECURE_ERASE);

} // namespace

TEST(Features, secure_erase_is_never_offered_log_all_only_when_the_kernel_has_it)
{
	uint64_t f = offered_features(kernel_all, disk_1g(), {});
	EXPECT_TRUE(f & bit(VHOST_F_LOG_ALL));
	EXPECT_FALSE(offered_features(kernel_all & ~bit(VHOST_F_LOG_ALL), disk_1g(), {}) &
		     bit(VHOST_F_LOG_ALL));
	EXPECT_FALSE(f & bit(VIRTIO_BLK_F_SECURE_ERASE));
	EXPECT_FALSE(f & bit(30));
	EXPECT_TRUE(f & bit(VIRTIO_F_VERSION_1));
	EXPECT_TRUE(f & bit(VIRTIO_BLK_F_MQ));
}

TEST(Features, ro_only_for_a_read_only_disk)
{
	EXPECT_FALSE(offered_features(kernel_all, disk_1g(), {}) & bit(VIRTIO_BLK_F_RO));
	EXPECT_TRUE(offered_features(kernel_all, disk_1g(), { 1, true }) & bit(VIRTIO_BLK_F_RO));
	auto b = disk_1g();
	b.read_only = true;
	EXPECT_TRUE(offered_features(kernel_all, b, {}) & bit(VIRTIO_BLK_F_RO));
}

TEST(Features, discard_only_when_the_backend_has_it)
{
	auto b = disk_1g();
	EXPECT_TRUE(offered_features(kernel_all, b, {}) & bit(VIRTIO_BLK_F_DISCARD));
	b.discard_max_bytes = 0;
	EXPECT_FALSE(offered_features(kernel_all, b, {}) & bit(VIRTIO_BLK_F_DISCARD));
}

TEST(Features, discard_shorter_than_a_logical_block_is_not_offered)
{
	auto b = disk_1g();
	b.logical_block_size = 4096;
	b.discard_max_bytes = 2048;
	EXPECT_FALSE(offered_features(kernel_all, b, {}) & bit(VIRTIO_BLK_F_DISCARD));
}

TEST(Features, write_zeroes_only_when_the_backend_offloads_it)
{
	EXPECT_TRUE(offered_features(kernel_all, disk_1g(), {}) & bit(VIRTIO_BLK_F_WRITE_ZEROES));
	EXPECT_FALSE(offered_features(kernel_all, disk_without_write_zeroes(), {}) &
		     bit(VIRTIO_BLK_F_WRITE_ZEROES));
}

TEST(Features, size_max_when_the_kernel_offers_it)
{
	EXPECT_TRUE(offered_features(kernel_all, disk_1g(), {}) & bit(VIRTIO_BLK_F_SIZE_MAX));
	EXPECT_FALSE(offered_features(kernel_all & ~bit(VIRTIO_BLK_F_SIZE_MAX), disk_1g(), {}) &
		     bit(VIRTIO_BLK_F_SIZE_MAX));
}

TEST(Features, nothing_the_kernel_lacks)
{
	EXPECT_EQ(offered_features(bit(VIRTIO_F_VERSION_1), disk_1g(), { 2, true }),
		  bit(VIRTIO_F_VERSION_1));
}

TEST(Config, capacity_sizes_and_topology)
{
	auto c = build_config(disk_1g(), { 2, false }, true);
	EXPECT_EQ(le64toh(c.capacity), (1ull << 30) / 512);
	EXPECT_EQ(le32toh(c.blk_size), 512u);
	EXPECT_EQ(c.physical_block_exp, 3);
	EXPECT_EQ(le16toh(c.min_io_size), 8);
	EXPECT_EQ(le32toh(c.opt_io_size), 128u);
	EXPECT_EQ(le16toh(c.num_queues), 2);
	EXPECT_EQ(c.wce, 1);
}

TEST(Config, limits_stay_within_the_module)
{
	auto c = build_config(disk_1g(), {}, true);
	EXPECT_EQ(le32toh(c.seg_max), static_cast<uint32_t>(VHOST_BLK_MAX_SEGMENTS));
	EXPECT_EQ(le32toh(c.size_max), static_cast<uint32_t>(VHOST_BLK_MAX_SEGMENT_SIZE));
	// One segment: max_*_sectors then bounds the request, as the module does.
	EXPECT_EQ(le32toh(c.max_discard_seg), 1u);
	EXPECT_EQ(le32toh(c.max_write_zeroes_seg), 1u);
	EXPECT_EQ(le32toh(c.max_discard_sectors), (1u << 30) / 512);
	EXPECT_EQ(le32toh(c.discard_sector_alignment), 8u);
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors), (8u << 20) / 512);
	EXPECT_EQ(c.write_zeroes_may_unmap, 1);
	EXPECT_EQ(le32toh(c.max_secure_erase_sectors), 0u);
	EXPECT_EQ(le32toh(c.max_secure_erase_seg), 0u);
}

TEST(Config, size_max_is_the_module_segment_size_on_every_backend)
{
	auto b = disk_without_write_zeroes();
	b.logical_block_size = 4096;
	b.discard_max_bytes = 0;
	auto c = build_config(b, {}, false);
	EXPECT_EQ(le32toh(c.size_max), static_cast<uint32_t>(VHOST_BLK_MAX_SEGMENT_SIZE));
	EXPECT_EQ(le32toh(c.seg_max), static_cast<uint32_t>(VHOST_BLK_MAX_SEGMENTS));
}

TEST(Config, no_write_zeroes_fields_without_write_zeroes_offload)
{
	auto c = build_config(disk_without_write_zeroes(), {}, true);
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors), 0u);
	EXPECT_EQ(le32toh(c.max_write_zeroes_seg), 0u);
	EXPECT_EQ(c.write_zeroes_may_unmap, 0);
	EXPECT_EQ(le32toh(c.max_discard_sectors), (1u << 30) / 512);
}

TEST(Config, no_discard_fields_without_discard)
{
	auto b = disk_1g();
	b.discard_max_bytes = 0;
	auto c = build_config(b, {}, false);
	EXPECT_EQ(le32toh(c.max_discard_sectors), 0u);
	EXPECT_EQ(le32toh(c.max_discard_seg), 0u);
	EXPECT_EQ(le32toh(c.discard_sector_alignment), 0u);
	EXPECT_EQ(c.write_zeroes_may_unmap, 0);
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors), (8u << 20) / 512);
	EXPECT_EQ(c.wce, 0);
}

TEST(Config, four_k_logical_blocks)
{
	auto b = disk_1g();
	b.logical_block_size = 4096;
	b.physical_block_size = 4096;
	auto c = build_config(b, {}, true);
	EXPECT_EQ(le32toh(c.blk_size), 4096u);
	EXPECT_EQ(c.physical_block_exp, 0);
	EXPECT_EQ(le64toh(c.capacity), (1ull << 30) / 512);
	EXPECT_EQ(le16toh(c.min_io_size), 1);
}

// serve --block-size 512 on a 4Kn disk (512e): the guest's blocks are 512
// bytes, the backend's block is the physical one and the unit of discard
// and of the minimum I/O, so a guest aligns its own I/O to it.
TEST(Config, block_size_512_on_a_4k_disk_is_512e)
{
	auto b = disk_1g();
	b.logical_block_size = 4096;
	b.physical_block_size = 4096;
	b.min_io_size = 4096;
	b.discard_granularity = 0;
	DiskParams p;
	p.block_size = 512;
	auto c = build_config(b, p, true);
	EXPECT_EQ(guest_block_size(b, p), 512u);
	EXPECT_EQ(le32toh(c.blk_size), 512u);
	EXPECT_EQ(c.physical_block_exp, 3);
	EXPECT_EQ(le16toh(c.min_io_size), 8);
	EXPECT_EQ(le32toh(c.discard_sector_alignment), 8u);
	EXPECT_EQ(le64toh(c.capacity), (1ull << 30) / 512);
	// Above the backend's block: only that block, nothing emulated.
	b.logical_block_size = 512;
	b.physical_block_size = 512;
	p.block_size = 4096;
	c = build_config(b, p, true);
	EXPECT_EQ(le32toh(c.blk_size), 4096u);
	EXPECT_EQ(c.physical_block_exp, 0);
	EXPECT_EQ(le16toh(c.min_io_size), 1);
	EXPECT_EQ(le32toh(c.discard_sector_alignment), 8u);
}

TEST(Config, range_limits_round_down_to_a_4k_logical_block)
{
	auto b = disk_1g();
	b.logical_block_size = 4096;
	b.discard_max_bytes = (1ull << 20) + 3 * 512;		// 2051 sectors
	b.write_zeroes_max_bytes = (1ull << 20) + 7 * 512;	// 2055 sectors
	auto c = build_config(b, {}, true);
	EXPECT_EQ(le32toh(c.max_discard_sectors), 2048u);
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors), 2048u);
	EXPECT_EQ(max_discard_sectors(b), 2048u);
	EXPECT_EQ(max_write_zeroes_sectors(b), 2048u);
}

TEST(Config, huge_range_limits_clamp_to_the_module_range_sectors)
{
	auto b = disk_1g();
	b.discard_max_bytes = ~0ull;
	b.write_zeroes_max_bytes = ~0ull;
	auto c = build_config(b, {}, true);
	EXPECT_EQ(le32toh(c.max_discard_sectors), static_cast<uint32_t>(VHOST_BLK_MAX_RANGE_SECTORS));
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors),
		  static_cast<uint32_t>(VHOST_BLK_MAX_RANGE_SECTORS));
}

TEST(Config, huge_range_limits_clamp_then_round_down_on_4k_blocks)
{
	auto b = disk_1g();
	b.logical_block_size = 4096;
	b.discard_max_bytes = ~0ull;
	b.write_zeroes_max_bytes = 1ull << 40;
	auto c = build_config(b, {}, true);
	const uint32_t want = VHOST_BLK_MAX_RANGE_SECTORS / 8 * 8;
	EXPECT_EQ(want, 0x7ffff8u);
	EXPECT_EQ(le32toh(c.max_discard_sectors), want);
	EXPECT_EQ(le32toh(c.max_write_zeroes_sectors), want);
}

TEST(Config, any_offset_and_size_read_back)
{
	auto c = build_config(disk_1g(), { 4, false }, true);
	auto all = read_config(c, 0, sizeof(c));
	auto q = read_config(c, offsetof(virtio_blk_config, num_queues), 2);
	EXPECT_EQ(q[0], 4);
	EXPECT_EQ(q[1], 0);
	auto tail = read_config(c, sizeof(c) - 2, 10);
	ASSERT_EQ(tail.size(), 10u);
	EXPECT_EQ(tail[0], all[sizeof(c) - 2]);
	for (size_t i = 2; i < 10; i++)
		EXPECT_EQ(tail[i], 0);
	EXPECT_TRUE(read_config(c, 200, 0).empty());
}

TEST(Features, config_wce_only_with_flush_and_a_module_that_has_it)
{
	const uint64_t k = kernel_all | bit(VIRTIO_BLK_F_CONFIG_WCE);
	EXPECT_TRUE(offered_features(k, disk_1g(), {}) & bit(VIRTIO_BLK_F_CONFIG_WCE));
	EXPECT_FALSE(offered_features(k & ~bit(VIRTIO_BLK_F_FLUSH), disk_1g(), {}) &
		     bit(VIRTIO_BLK_F_CONFIG_WCE));
	// A module without VHOST_BLK_SET_WRITE_CACHE does not offer it.
	EXPECT_FALSE(offered_features(kernel_all, disk_1g(), {}) & bit(VIRTIO_BLK_F_CONFIG_WCE));
}
