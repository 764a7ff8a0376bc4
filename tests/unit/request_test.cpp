// SPDX-License-Identifier: GPL-2.0
// virtio-blk request encoding and descriptor layouts.
#include <vblk/request.hpp>

#include <gtest/gtest.h>

#include <cstring>

using namespace vblk;

namespace {

std::vector<uint8_t> bytes_at(uint64_t gpa, size_t len)
{
	auto *p = reinterpret_cast<const uint8_t *>(gpa);
	return { p, p + len };
}

// The byte stream the device would see: readable part, writable part.
std::pair<std::vector<uint8_t>, size_t> readable_stream(const PreparedRequest &r)
{
	std::vector<uint8_t> out;
	size_t writable = 0;
	for (auto &s : r.segments) {
		if (s.device_writable) {
			writable += s.len;
		} else {
			EXPECT_EQ(writable, 0u) << "readable after writable";
			auto b = bytes_at(s.addr, s.len);
			out.insert(out.end(), b.begin(), b.end());
		}
	}
	return { out, writable };
}

RequestSpec out_spec(Layout l, size_t len = 4096, uint32_t chunk = 4096)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_OUT;
	s.sector = 0x0102030405060708ULL;
	s.out.resize(len);
	for (size_t i = 0; i < len; i++)
		s.out[i] = static_cast<uint8_t>(i * 7);
	s.io.layout = l;
	s.io.chunk = chunk;
	return s;
}

RequestSpec in_spec(Layout l, uint32_t len = 4096, uint32_t chunk = 4096)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_IN;
	s.sector = 8;
	s.in_len = len;
	s.io.layout = l;
	s.io.chunk = chunk;
	return s;
}

} // namespace

TEST(Encoding, HeaderIsLittleEndianTypeIoprioSector)
{
	auto h = encode_header(VIRTIO_BLK_T_OUT, 0x11223344, 0x0102030405060708ULL);
	const uint8_t want[16] = { 1, 0, 0, 0, 0x44, 0x33, 0x22, 0x11,
				   8, 7, 6, 5, 4, 3, 2, 1 };
	EXPECT_EQ(0, std::memcmp(h.data(), want, 16));
}

TEST(Encoding, RangesAreSixteenLittleEndianBytesEach)
{
	Range r[] = { { 0x1122334455667788ULL, 0x01020304, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
		      { 1, 2, 0 } };
	auto b = encode_ranges(r);
	ASSERT_EQ(b.size(), 32u);
	const uint8_t want0[16] = { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
				    4,	  3,	2,    1,    1,	  0,	0,    0 };
	EXPECT_EQ(0, std::memcmp(b.data(), want0, 16));
	EXPECT_EQ(b[16], 1);
	EXPECT_EQ(b[24], 2);
	EXPECT_EQ(b[28], 0);
}

TEST(Layouts, EveryOutLayoutCarriesHeaderThenDataThenOneStatusByte)
{
	GuestMemory mem(4 << 20);
	for (Layout l : { Layout::separate, Layout::split_header, Layout::chunked_data,
			  Layout::header_with_data }) {
		auto spec = out_spec(l, 8192, 1024);
		auto r = prepare_request(mem, spec);
		auto [stream, writable] = readable_stream(r);
		auto hdr = encode_header(spec.type, 0, spec.sector);
		ASSERT_EQ(stream.size(), 16 + spec.out.size()) << to_string(l);
		EXPECT_EQ(0, std::memcmp(stream.data(), hdr.data(), 16)) << to_string(l);
		EXPECT_EQ(0, std::memcmp(stream.data() + 16, spec.out.data(), spec.out.size()))
			<< to_string(l);
		EXPECT_EQ(writable, 1u) << to_string(l);
		EXPECT_EQ(r.segments.back().len, 1u);
		EXPECT_EQ(r.segments.back().addr, r.buffer.gpa() + r.status_offset);
		EXPECT_EQ(r.status(), status_unwritten);
	}
}

TEST(Layouts, SeparateUsesThreeDescriptors)
{
	GuestMemory mem(1 << 20);
	auto r = prepare_request(mem, in_spec(Layout::separate));
	ASSERT_EQ(r.segments.size(), 3u);
	EXPECT_EQ(r.segments[0].len, 16u);
	EXPECT_FALSE(r.segments[0].device_writable);
	EXPECT_EQ(r.segments[1].len, 4096u);
	EXPECT_TRUE(r.segments[1].device_writable);
	EXPECT_EQ(r.segments[1].addr % 4096, 0u);
	EXPECT_EQ(r.segments[2].len, 1u);
}

TEST(Layouts, SplitHeaderUsesTwoEightByteDescriptors)
{
	GuestMemory mem(1 << 20);
	auto r = prepare_request(mem, in_spec(Layout::split_header));
	ASSERT_EQ(r.segments.size(), 4u);
	EXPECT_EQ(r.segments[0].len, 8u);
	EXPECT_EQ(r.segments[1].len, 8u);
	EXPECT_EQ(r.segments[1].addr, r.segments[0].addr + 8);
}

TEST(Layouts, ChunkedInPutsStatusInLastDataDescriptor)
{
	GuestMemory mem(1 << 20);
	auto r = prepare_request(mem, in_spec(Layout::chunked_data, 4096, 1000));
	// header + 5 chunks (1000*4 + 96), status shares the last one
	ASSERT_EQ(r.segments.size(), 6u);
	EXPECT_EQ(r.segments[1].len, 1000u);
	EXPECT_EQ(r.segments[5].len, 96u + 1);
	EXPECT_TRUE(r.segments[5].device_writable);
	EXPECT_EQ(r.segments[5].addr + 96, r.buffer.gpa() + r.status_offset);
	uint32_t total = 0;
	for (size_t i = 1; i < r.segments.size(); i++)
		total += r.segments[i].len;
	EXPECT_EQ(total, 4096u + 1);
}

TEST(Layouts, HeaderWithDataGluesHeaderToOutData)
{
	GuestMemory mem(1 << 20);
	auto r = prepare_request(mem, out_spec(Layout::header_with_data));
	ASSERT_EQ(r.segments.size(), 2u);
	EXPECT_EQ(r.segments[0].len, 16u + 4096);
	EXPECT_EQ(r.data_offset, 16u);
}

TEST(Layouts, HeaderWithDataPutsInDataAndStatusInOneDescriptor)
{
	GuestMemory mem(1 << 20);
	auto r = prepare_request(mem, in_spec(Layout::header_with_data));
	ASSERT_EQ(r.segments.size(), 2u);
	EXPECT_EQ(r.segments[1].len, 4096u + 1);
	EXPECT_TRUE(r.segments[1].device_writable);
}

TEST(Layouts, MisalignShiftsDataOffPageBoundary)
{
	GuestMemory mem(1 << 20);
	auto spec = in_spec(Layout::separate);
	spec.io.misalign = 3;
	auto r = prepare_request(mem, spec);
	EXPECT_EQ(r.segments[1].addr % 4096, 3u);
	EXPECT_EQ(r.segments[2].addr, r.segments[1].addr + 4096);
}

TEST(Layouts, RequestWithoutDataHasHeaderAndStatusOnly)
{
	GuestMemory mem(1 << 20);
	RequestSpec s;
	s.type = VIRTIO_BLK_T_FLUSH;
	auto r = prepare_request(mem, s);
	ASSERT_EQ(r.segments.size(), 2u);
	EXPECT_FALSE(r.segments[0].device_writable);
	EXPECT_TRUE(r.segments[1].device_writable);
}

TEST(Layouts, ReadableAndWritableDataTogetherIsRejected)
{
	GuestMemory mem(1 << 20);
	auto s = out_spec(Layout::separate);
	s.in_len = 512;
	EXPECT_THROW(prepare_request(mem, s), std::invalid_argument);
}
