// SPDX-License-Identifier: GPL-2.0
// The block device a disk is served from: its open fd and the properties
// the virtio-blk config space is built from.
#pragma once

#include <vblk/fd.hpp>

#include <cstdint>
#include <string>

namespace device {

struct BackendInfo {
	uint64_t size_bytes = 0;
	uint32_t logical_block_size = 512;
	uint32_t physical_block_size = 512;
	uint32_t min_io_size = 512;		// bytes
	uint32_t opt_io_size = 0;		// bytes, 0: none
	uint32_t alignment_offset = 0;		// bytes
	uint64_t discard_max_bytes = 0;		// 0: no discard
	uint32_t discard_granularity = 0;	// bytes
	uint64_t write_zeroes_max_bytes = 0;	// 0: none (no WRITE_ZEROES offered)
	bool read_only = false;			// served read-only (asked, or the
						// device itself is read-only)
	bool write_cache = true;		// volatile write cache ("write back")
};

class Backend {
public:
	// Opens `path` (O_RDWR, or O_RDONLY when read_only or when the
	// device is read-only, BLKROGET) and reads its properties.  Throws
	// vblk::SysError; ENOTBLK if it is not a block device.  Exclusive
	// (O_EXCL) unless `exclusive` is false: the destination of a live
	// migration on the same host opens the device the source still holds.
	static Backend open(const std::string &path, bool read_only, bool exclusive = true);

	Backend(std::string path, vblk::UniqueFd fd, BackendInfo info)
		: path_(std::move(path)), fd_(std::move(fd)), info_(info)
	{
	}

	const std::string &path() const noexcept { return path_; }
	int fd() const noexcept { return fd_.get(); }
	const BackendInfo &info() const noexcept { return info_; }

private:
	std::string path_;
	vblk::UniqueFd fd_;
	BackendInfo info_;
};

} // namespace device
