// SPDX-License-Identifier: GPL-2.0
#include "bridge/config.hpp"

#include <linux/vhost_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <endian.h>

namespace bridge {

namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }

// A guest within seg_max and size_max never reaches the module's
// request size limit.
static_assert(uint64_t{ VHOST_BLK_MAX_SEGMENTS } * VHOST_BLK_MAX_SEGMENT_SIZE <=
	      VHOST_BLK_MAX_REQUEST_BYTES);

// One segment per DISCARD/WRITE_ZEROES request, as QEMU's virtio-blk: the
// module bounds a request's segments together by max_*_sectors (how Linux
// guests read the field) while the virtio spec words it per segment, so one
// segment keeps every compliant guest within the module's limit.
constexpr uint32_t range_segments = 1;

uint32_t range_sectors(uint64_t max_bytes, uint32_t logical_block_size)
{
	uint32_t lbs_sectors = std::max<uint32_t>(logical_block_size, 512) / 512;
	uint64_t s = std::min<uint64_t>(max_bytes / 512, VHOST_BLK_MAX_RANGE_SECTORS);
	return static_cast<uint32_t>(s - s % lbs_sectors);
}

} // namespace

uint32_t max_discard_sectors(const device::BackendInfo &b)
{
	return range_sectors(b.discard_max_bytes, b.logical_block_size);
}

uint32_t max_write_zeroes_sectors(const device::BackendInfo &b)
{
	return range_sectors(b.write_zeroes_max_bytes, b.logical_block_size);
}

uint32_t guest_block_size(const device::BackendInfo &b, const DiskParams &p)
{
	return p.block_size ? p.block_size : std::max<uint32_t>(b.logical_block_size, 512);
}

uint64_t offered_features(uint64_t kernel_features, const device::BackendInfo &b,
			  const DiskParams &p)
{
	uint64_t allowed = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ANY_LAYOUT) |
			   bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX) |
			   bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_BLK_F_SEG_MAX) |
			   bit(VIRTIO_BLK_F_SIZE_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) |
			   bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_TOPOLOGY) |
			   bit(VIRTIO_BLK_F_MQ) | bit(VHOST_F_LOG_ALL);
	// The guest's write cache switch needs its flush to be worth anything.
	if (kernel_features & bit(VIRTIO_BLK_F_FLUSH))
		allowed |= bit(VIRTIO_BLK_F_CONFIG_WCE);
	if (max_discard_sectors(b))
		allowed |= bit(VIRTIO_BLK_F_DISCARD);
	if (max_write_zeroes_sectors(b))
		allowed |= bit(VIRTIO_BLK_F_WRITE_ZEROES);
	if (p.read_only || b.read_only)
		allowed |= bit(VIRTIO_BLK_F_RO);
	return kernel_features & allowed;
}

virtio_blk_config build_config(const device::BackendInfo &b, const DiskParams &p,
			       bool wce)
{
	virtio_blk_config c;
	std::memset(&c, 0, sizeof(c));
	uint32_t lbs = guest_block_size(b, p);
	// The backend's own block: what a guest should align to (512e: the
	// physical block, whole blocks to discard).
	uint32_t backend_lbs = std::max<uint32_t>(b.logical_block_size, 512);
	uint64_t sectors = b.size_bytes / 512;
	c.capacity = htole64(sectors);
	c.size_max = htole32(VHOST_BLK_MAX_SEGMENT_SIZE);
	c.seg_max = htole32(VHOST_BLK_MAX_SEGMENTS);
	c.blk_size = htole32(lbs);
	uint32_t pbs = std::max({ b.physical_block_size, backend_lbs, lbs });
	c.physical_block_exp = static_cast<uint8_t>(std::countr_zero(pbs / lbs));
	c.alignment_offset = static_cast<uint8_t>(b.alignment_offset / lbs);
	c.min_io_size = htole16(static_cast<uint16_t>(
		std::clamp<uint32_t>(std::max(b.min_io_size, backend_lbs) / lbs, 1, 0xffff)));
	c.opt_io_size = htole32(b.opt_io_size / lbs);
	c.wce = wce ? 1 : 0;
	c.num_queues = htole16(static_cast<uint16_t>(p.queues));
	if (uint32_t n = max_discard_sectors(b)) {
		c.max_discard_sectors = htole32(n);
		c.max_discard_seg = htole32(range_segments);
		c.discard_sector_alignment =
			htole32(std::max({ b.discard_granularity, backend_lbs, lbs }) / 512);
	}
	if (uint32_t n = max_write_zeroes_sectors(b)) {
		c.max_write_zeroes_sectors = htole32(n);
		c.max_write_zeroes_seg = htole32(range_segments);
		c.write_zeroes_may_unmap = b.discard_max_bytes ? 1 : 0;
	}
	return c;
}

std::vector<uint8_t> read_config(const virtio_blk_config &cfg, uint32_t offset,
				 uint32_t size)
{
	std::vector<uint8_t> out(size, 0);
	const auto *p = reinterpret_cast<const uint8_t *>(&cfg);
	for (uint64_t i = 0; i < size; i++) {
		uint64_t at = offset + i;
		if (at < sizeof(cfg))
			out[i] = p[at];
	}
	return out;
}

} // namespace bridge
