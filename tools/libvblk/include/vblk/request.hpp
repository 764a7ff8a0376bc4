// SPDX-License-Identifier: GPL-2.0
// virtio-blk request encoding (virtio 1.2 5.2.6) and how a request is laid
// out over descriptors.  No device needed: unit testable.
#pragma once

#include "vblk/guest_memory.hpp"
#include "vblk/virtqueue.hpp"

#include <linux/virtio_blk.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vblk {

inline constexpr uint32_t sector_size = 512;
inline constexpr size_t header_size = 16;

// How header, data and status are spread over descriptors.  All of them are
// legal virtio (VIRTIO_F_ANY_LAYOUT).
enum class Layout {
	// header | data | status, each in its own descriptor
	separate,
	// the 16-byte header split into two 8-byte descriptors
	split_header,
	// data in `chunk`-byte descriptors; for requests with device-writable
	// data the status byte shares the last data descriptor
	chunked_data,
	// header and device-readable data in one descriptor; device-writable
	// data and the status in one descriptor
	header_with_data,
};

std::string_view to_string(Layout l) noexcept;

struct IoOptions {
	Layout layout = Layout::separate;
	bool indirect = false;
	// descriptor size for Layout::chunked_data
	uint32_t chunk = 4096;
	// offset of the data from a page boundary (bounce-path tests)
	uint32_t misalign = 0;
};

// One range of DISCARD / WRITE_ZEROES / SECURE_ERASE.
struct Range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags = 0;
};

struct RequestSpec {
	uint32_t type = VIRTIO_BLK_T_IN;
	uint32_t ioprio = 0;
	uint64_t sector = 0;
	// device-readable payload after the header (OUT data, range list)
	std::vector<uint8_t> out;
	// device-writable payload before the status (IN / GET_ID data)
	uint32_t in_len = 0;
	IoOptions io;
};

std::array<uint8_t, header_size> encode_header(uint32_t type, uint32_t ioprio, uint64_t sector);
std::vector<uint8_t> encode_ranges(std::span<const Range> ranges);

// A request written into guest memory, ready for add_chain().
struct PreparedRequest {
	GuestBuffer buffer;
	std::vector<Segment> segments;
	size_t data_offset;   // in buffer
	size_t data_len;      // out.size() or in_len
	size_t status_offset; // in buffer
	bool indirect;
	bool data_writable;   // the device writes the data (IN, GET_ID)

	uint8_t status() const noexcept { return buffer.data()[status_offset]; }
	std::span<const uint8_t> data() const noexcept
	{
		return { buffer.data() + data_offset, data_len };
	}
};

// Value the status byte holds before the device writes it.
inline constexpr uint8_t status_unwritten = 0xa5;

PreparedRequest prepare_request(GuestMemory &mem, const RequestSpec &spec);

} // namespace vblk
