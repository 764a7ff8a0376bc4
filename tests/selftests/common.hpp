// SPDX-License-Identifier: GPL-2.0
// Shared helpers of the vhost-blk selftests: backends from the VM runner's
// environment, data patterns, direct access to the backend with O_DIRECT.
#pragma once

#include "ktap.hpp"

#include <vblk/vblk.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vbt {

using namespace std::chrono_literals;

// The block devices the VM runner provides.
inline constexpr const char *env_nullb = "VBLK_NULLB";	     // null_blk, memory backed, 512 B
inline constexpr const char *env_brd = "VBLK_BRD";	     // brd ramdisk
inline constexpr const char *env_loop = "VBLK_LOOP";	     // loop over a tmpfs file
inline constexpr const char *env_loop_big = "VBLK_LOOP_BIG"; // loop, 8 GiB sparse, 4 KiB blocks
inline constexpr const char *env_nullb_4k = "VBLK_NULLB_4K"; // null_blk, 4 KiB blocks
inline constexpr const char *env_ro = "VBLK_RO";	     // blockdev --setro
inline constexpr const char *env_fail = "VBLK_FAIL";	     // dm device whose I/O fails
// zram, 4 KiB blocks: offloads WRITE_ZEROES (and discard), stable writes
inline constexpr const char *env_zram = "VBLK_ZRAM";

// /dev/vhost-blk, overridable with VBLK_DEVICE.
std::string device_path();
// SKIPs when /dev/vhost-blk is missing (module not loaded).
void require_device();

// A block device under test, opened twice: buffered for attaching, and
// O_DIRECT for checking what really reached the disk.
class Backend {
public:
	// SKIPs when the variable is unset or the device cannot be opened.
	static Backend open(const char *env, int flags = O_RDWR);

	const std::string &path() const { return path_; }
	int fd() const { return fd_.get(); }
	uint64_t size_bytes() const { return size_; }
	uint64_t sectors() const { return size_ / vblk::sector_size; }
	uint32_t logical_block_size() const { return lbs_; }
	// /sys/block/<dev>/queue/<attr>, or nullopt.
	std::optional<uint64_t> queue_attr(const std::string &attr) const;

	std::vector<uint8_t> read_direct(uint64_t offset, size_t len) const;
	void write_direct(uint64_t offset, std::span<const uint8_t> data) const;

private:
	std::string path_;
	vblk::UniqueFd fd_, direct_;
	uint64_t size_ = 0;
	uint32_t lbs_ = 512;
};

// Deterministic data: every 8-byte word depends on (sector, word, seed).
void fill_pattern(std::span<uint8_t> buf, uint64_t first_sector, uint64_t seed);
std::vector<uint8_t> pattern(size_t len, uint64_t first_sector, uint64_t seed);
// Index of the first differing byte, or -1.
long first_mismatch(std::span<const uint8_t> a, std::span<const uint8_t> b);

#define ASSERT_BYTES_EQ(a, b) ASSERT_EQ(vbt::first_mismatch(a, b), -1L)

vblk::BlkDriverOptions driver_options(unsigned queues = 1, uint16_t queue_size = 128);
// A driver with every ring attached to `b`.
std::unique_ptr<vblk::BlkDriver> attached_driver(const Backend &b, unsigned queues = 1,
						 uint16_t queue_size = 128);

// Waits up to `timeout` for the ring's error eventfd.
bool err_signalled(vblk::BlkDriver &d, unsigned q, std::chrono::milliseconds timeout = 2000ms);

} // namespace vbt

namespace vbt {

// Opens a fresh device on `b` and checks a write/read round trip.
void assert_device_usable(const Backend &b, uint64_t sector = 123456);

// A guest buffer filled with a virtio-blk header (+ status byte at the end).
struct RawRequest {
	vblk::GuestBuffer buf;
	uint64_t hdr() const { return buf.gpa(); }
	uint64_t data() const { return buf.gpa() + 4096; }
	uint64_t status() const { return buf.gpa() + buf.size() - 1; }
	uint8_t status_byte() const { return buf.data()[buf.size() - 1]; }
};
RawRequest raw_request(vblk::GuestMemory &mem, uint32_t type, uint64_t sector, size_t data_len);

} // namespace vbt
