// SPDX-License-Identifier: GPL-2.0
// What a disk offers the frontend: virtio features and the virtio-blk
// config space, built from the backend's properties and the kernel's
// feature set.  Pure functions, no I/O.
#pragma once

#include "device/backend.hpp"

#include <linux/virtio_blk.h>

#include <cstdint>
#include <span>
#include <vector>

namespace bridge {

// The largest busy-polling ceiling `serve --poll-us` and `poll --us` take.
inline constexpr unsigned max_poll_us = 100000;

struct DiskParams {
	unsigned queues = 1;
	bool read_only = false;
	// The ceiling of the rings' adaptive busy polling, microseconds (0:
	// off, at most max_poll_us), set on every ring before it starts and
	// on every ring at once when it changes (Disk::set_poll).
	unsigned poll_us = 0;
	// The guest's logical block size in bytes (VHOST_BLK_SET_BLOCK_SIZE);
	// 0: the backend's.  Below the backend's the kernel emulates the small
	// blocks (512e) and the config space says the backend's block is the
	// physical one.
	uint32_t block_size = 0;
};

// The logical block size the guest is given.
uint32_t guest_block_size(const device::BackendInfo &b, const DiskParams &p);

// Sectors one DISCARD / WRITE_ZEROES segment may cover, as the module
// enforces it: the backend's queue limit (discard_max_bytes,
// write_zeroes_max_bytes) capped at VHOST_BLK_MAX_RANGE_SECTORS, rounded
// down to the logical block size.  0: the backend cannot do it.
uint32_t max_discard_sectors(const device::BackendInfo &b);
uint32_t max_write_zeroes_sectors(const device::BackendInfo &b);

// The virtio features offered to the frontend (without bit 30): the
// kernel's (LOG_ALL included: the kernel marks the frontend's shared dirty
// log itself; CONFIG_WCE only with FLUSH), minus what the bridge cannot
// honour (SECURE_ERASE: the backend's limit is not in sysfs), minus DISCARD and
// WRITE_ZEROES when the backend has none (the module answers UNSUPP),
// minus RO unless the disk is read-only.
uint64_t offered_features(uint64_t kernel_features, const device::BackendInfo &b,
			  const DiskParams &p);

// virtio_blk_config in little-endian (VIRTIO_F_VERSION_1) layout.  The
// per-request limits are exactly those the module enforces: seg_max
// VHOST_BLK_MAX_SEGMENTS, size_max VHOST_BLK_MAX_SEGMENT_SIZE, segment
// counts VHOST_BLK_MAX_DISCARD_SEGMENTS, sectors per range from
// max_discard_sectors() / max_write_zeroes_sectors(); the fields of a
// feature the backend lacks are zero.
virtio_blk_config build_config(const device::BackendInfo &b, const DiskParams &p,
			       bool wce);

// `size` bytes of the config space from `offset`; bytes past the end of
// the structure read as zero.
std::vector<uint8_t> read_config(const virtio_blk_config &cfg, uint32_t offset,
				 uint32_t size);

} // namespace bridge
