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

struct DiskParams {
	unsigned queues = 1;
	bool read_only = false;
	// Busy polling of idle rings, microseconds (0: off), set on every
	// ring before it starts.
	unsigned poll_us = 0;
};

// The virtio features offered to the frontend (without bit 30): the
// kernel's, minus what the bridge cannot honour (LOG_ALL: no dirty log;
// SECURE_ERASE: not detectable on the backend), minus DISCARD when the
// backend has none, minus RO unless the disk is read-only.
uint64_t offered_features(uint64_t kernel_features, const device::BackendInfo &b,
			  const DiskParams &p);

// virtio_blk_config in little-endian (VIRTIO_F_VERSION_1) layout.
// seg_max and the discard/write-zeroes segment counts stay within the
// module's VHOST_BLK_MAX_* limits.
virtio_blk_config build_config(const device::BackendInfo &b, const DiskParams &p,
			       bool wce);

// `size` bytes of the config space from `offset`; bytes past the end of
// the structure read as zero.
std::vector<uint8_t> read_config(const virtio_blk_config &cfg, uint32_t offset,
				 uint32_t size);

} // namespace bridge
