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
#include <limits>

namespace bridge {

namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }

constexpr uint32_t clamp32(uint64_t v)
{
	return static_cast<uint32_t>(std::min<uint64_t>(v, std::numeric_limits<uint32_t>::max()));
}

// Write-zeroes the block layer emulates: advertise 32 MiB per segment.
constexpr uint64_t emulated_write_zeroes_bytes = 32ull << 20;

} // namespace

uint64_t offered_features(uint64_t kernel_features, const device::BackendInfo &b,
			  const DiskParams &p)
{
	uint64_t allowed = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ANY_LAYOUT) |
			   bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX) |
			   bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_BLK_F_SEG_MAX) |
			   bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH) |
			   bit(VIRTIO_BLK_F_TOPOLOGY) | bit(VIRTIO_BLK_F_MQ) |
			   bit(VIRTIO_BLK_F_WRITE_ZEROES);
	if (b.discard_max_bytes)
		allowed |= bit(VIRTIO_BLK_F_DISCARD);
	if (p.read_only || b.read_only)
		allowed |= bit(VIRTIO_BLK_F_RO);
	return kernel_features & allowed;
}

virtio_blk_config build_config(const device::BackendInfo &b, const DiskParams &p,
			       bool wce)
{
	virtio_blk_config c;
	std::memset(&c, 0, sizeof(c));
	uint32_t lbs = std::max<uint32_t>(b.logical_block_size, 512);
	uint64_t sectors = b.size_bytes / 512;
	c.capacity = htole64(sectors);
	c.seg_max = htole32(VHOST_BLK_MAX_SEGMENTS);
	c.blk_size = htole32(lbs);
	uint32_t pbs = std::max(b.physical_block_size, lbs);
	c.physical_block_exp = static_cast<uint8_t>(std::countr_zero(pbs / lbs));
	c.alignment_offset = static_cast<uint8_t>(b.alignment_offset / lbs);
	c.min_io_size = htole16(static_cast<uint16_t>(
		std::clamp<uint32_t>(b.min_io_size / lbs, 1, 0xffff)));
	c.opt_io_size = htole32(b.opt_io_size / lbs);
	c.wce = wce ? 1 : 0;
	c.num_queues = htole16(static_cast<uint16_t>(p.queues));
	if (b.discard_max_bytes) {
		c.max_discard_sectors = htole32(clamp32(b.discard_max_bytes / 512));
		c.max_discard_seg = htole32(VHOST_BLK_MAX_DISCARD_SEGMENTS);
		c.discard_sector_alignment =
			htole32(std::max<uint32_t>(b.discard_granularity, lbs) / 512);
	}
	uint64_t wz = b.write_zeroes_max_bytes ? b.write_zeroes_max_bytes
					       : emulated_write_zeroes_bytes;
	c.max_write_zeroes_sectors = htole32(clamp32(wz / 512));
	c.max_write_zeroes_seg = htole32(VHOST_BLK_MAX_DISCARD_SEGMENTS);
	c.write_zeroes_may_unmap = b.discard_max_bytes ? 1 : 0;
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
