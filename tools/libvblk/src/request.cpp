// SPDX-License-Identifier: GPL-2.0
#include "vblk/request.hpp"
#include "le.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace vblk {

std::string_view to_string(Layout l) noexcept
{
	switch (l) {
	case Layout::separate:
		return "separate";
	case Layout::split_header:
		return "split_header";
	case Layout::chunked_data:
		return "chunked_data";
	case Layout::header_with_data:
		return "header_with_data";
	}
	return "?";
}

std::array<uint8_t, header_size> encode_header(uint32_t type, uint32_t ioprio, uint64_t sector)
{
	std::array<uint8_t, header_size> h{};
	uint32_t t = cpu_to_le32(type), p = cpu_to_le32(ioprio);
	uint64_t s = cpu_to_le64(sector);
	std::memcpy(h.data(), &t, 4);
	std::memcpy(h.data() + 4, &p, 4);
	std::memcpy(h.data() + 8, &s, 8);
	return h;
}

std::vector<uint8_t> encode_ranges(std::span<const Range> ranges)
{
	std::vector<uint8_t> out(ranges.size() * 16);
	for (size_t i = 0; i < ranges.size(); i++) {
		uint64_t s = cpu_to_le64(ranges[i].sector);
		uint32_t n = cpu_to_le32(ranges[i].num_sectors);
		uint32_t f = cpu_to_le32(ranges[i].flags);
		std::memcpy(&out[i * 16], &s, 8);
		std::memcpy(&out[i * 16 + 8], &n, 4);
		std::memcpy(&out[i * 16 + 12], &f, 4);
	}
	return out;
}

namespace {

constexpr size_t page = 4096;

void push_chunks(std::vector<Segment> &segs, uint64_t addr, size_t len, uint32_t chunk,
		 bool writable)
{
	if (chunk == 0)
		throw std::invalid_argument("chunk size 0");
	for (size_t off = 0; off < len; off += chunk)
		segs.push_back({ addr + off, static_cast<uint32_t>(std::min<size_t>(chunk, len - off)),
				 writable });
}

} // namespace

PreparedRequest prepare_request(GuestMemory &mem, const RequestSpec &spec)
{
	if (!spec.out.empty() && spec.in_len)
		throw std::invalid_argument("a request has readable or writable data, not both");
	const IoOptions &io = spec.io;
	const bool writes = spec.in_len != 0;
	const size_t data_len = writes ? spec.in_len : spec.out.size();
	const bool glued_out = io.layout == Layout::header_with_data && !writes;

	// header at 0; data page aligned (+ misalign) unless glued to the
	// header; status right behind the data.
	size_t data_off = glued_out ? header_size : page + io.misalign;
	size_t status_off = data_off + data_len;
	PreparedRequest r{ mem.allocate(status_off + 1, page), {}, data_off, data_len, status_off,
			   io.indirect, writes };
	uint8_t *base = r.buffer.data();
	uint64_t gpa = r.buffer.gpa();

	auto hdr = encode_header(spec.type, spec.ioprio, spec.sector);
	std::memcpy(base, hdr.data(), hdr.size());
	if (!spec.out.empty())
		std::memcpy(base + data_off, spec.out.data(), spec.out.size());
	base[status_off] = status_unwritten;

	auto &segs = r.segments;
	switch (io.layout) {
	case Layout::separate:
		segs.push_back({ gpa, header_size, false });
		if (data_len)
			segs.push_back({ gpa + data_off, static_cast<uint32_t>(data_len), writes });
		segs.push_back({ gpa + status_off, 1, true });
		break;
	case Layout::split_header:
		segs.push_back({ gpa, 8, false });
		segs.push_back({ gpa + 8, 8, false });
		if (data_len)
			segs.push_back({ gpa + data_off, static_cast<uint32_t>(data_len), writes });
		segs.push_back({ gpa + status_off, 1, true });
		break;
	case Layout::chunked_data:
		segs.push_back({ gpa, header_size, false });
		push_chunks(segs, gpa + data_off, data_len, io.chunk, writes);
		if (writes)
			segs.back().len += 1; // status shares the last data descriptor
		else
			segs.push_back({ gpa + status_off, 1, true });
		break;
	case Layout::header_with_data:
		if (writes) {
			segs.push_back({ gpa, header_size, false });
			segs.push_back({ gpa + data_off, static_cast<uint32_t>(data_len + 1), true });
		} else {
			segs.push_back({ gpa, static_cast<uint32_t>(header_size + data_len), false });
			segs.push_back({ gpa + status_off, 1, true });
		}
		break;
	}
	return r;
}

} // namespace vblk
