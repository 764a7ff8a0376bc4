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
	return b;
}

const uint64_t kernel_all = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ANY_LAYOUT) |
			    bit(28) | bit(29) | bit(24) | bit(VHOST_F_LOG_ALL) |
			    bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_RO) |
			    bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH) |
			    bit(VIRTIO_BLK_F_TOPOLOGY) | bit(VIRTIO_BLK_F_MQ) |
			    bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES) |
			    bit(VIRTIO_BLK_F_SECURE_ERASE);

} // namespace

TEST(Features, log_all_and_secure_erase_are_never_offered)
{
	uint64_t f = offered_features(kernel_all, disk_1g(), {});
	EXPECT_FALSE(f & bit(VHOST_F_LOG_ALL));
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
	EXPECT_EQ(le32toh(c.max_discard_seg), static_cast<uint32_t>(VHOST_BLK_MAX_DISCARD_SEGMENTS));
	EXPECT_EQ(le32toh(c.max_write_zeroes_seg),
		  static_cast<uint32_t>(VHOST_BLK_MAX_DISCARD_SEGMENTS));
	EXPECT_EQ(le32toh(c.max_discard_sectors), (1u << 30) / 512);
	EXPECT_EQ(le32toh(c.discard_sector_alignment), 8u);
	EXPECT_EQ(c.write_zeroes_may_unmap, 1);
	EXPECT_EQ(le32toh(c.max_secure_erase_sectors), 0u);
}

TEST(Config, no_discard_fields_without_discard)
{
	auto b = disk_1g();
	b.discard_max_bytes = 0;
	auto c = build_config(b, {}, false);
	EXPECT_EQ(le32toh(c.max_discard_sectors), 0u);
	EXPECT_EQ(c.write_zeroes_may_unmap, 0);
	EXPECT_GT(le32toh(c.max_write_zeroes_sectors), 0u);
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

TEST(Config, huge_discard_limits_clamp_to_32_bits)
{
	auto b = disk_1g();
	b.discard_max_bytes = ~0ull;
	auto c = build_config(b, {}, true);
	EXPECT_EQ(le32toh(c.max_discard_sectors), 0xffffffffu);
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
