// SPDX-License-Identifier: GPL-2.0
// Request types: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
// SECURE_ERASE, unknown; capacity checks; large requests.
#include "common.hpp"

#include <cstring>

using namespace vbt;
using vblk::Range;

namespace {

constexpr uint64_t mib = 1 << 20;

// Fills [sector, sector + len) on the backend with a pattern via O_DIRECT
// and returns it.
std::vector<uint8_t> prefill(const Backend &b, uint64_t sector, size_t len, uint64_t seed)
{
	auto data = pattern(len, sector, seed);
	b.write_direct(sector * vblk::sector_size, data);
	return data;
}

bool all_zero(std::span<const uint8_t> v)
{
	for (uint8_t c : v)
		if (c)
			return false;
	return true;
}

struct BackendParam {
	const char *env;
};

} // namespace

TEST(write_then_read_returns_same_data)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto data = pattern(64 * 1024, 2048, ktap::seed());
	ASSERT_EQ(d->write(0, 2048, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, 2048, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

TEST(write_reaches_backend_as_seen_with_odirect)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto data = pattern(128 * 1024, 4096, ktap::seed() + 1);
	ASSERT_EQ(d->write(0, 4096, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(4096 * 512, data.size()), data);
}

TEST(read_returns_what_backend_holds)
{
	auto b = Backend::open(env_nullb);
	auto data = prefill(b, 8192, 32 * 1024, ktap::seed() + 2);
	auto d = attached_driver(b);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, 8192, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

TEST(read_used_len_is_data_plus_status)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto c = d->execute(0, vblk::BlkDriver::read_spec(0, 8192));
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, 8192u + 1);
}

TEST(write_used_len_is_one)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto data = pattern(4096, 0, 7);
	auto c = d->execute(0, vblk::BlkDriver::write_spec(16, data));
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(zero_length_read_is_ok)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto c = d->execute(0, vblk::BlkDriver::read_spec(0, 0));
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(flush_returns_ok)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto data = pattern(4096, 100, 3);
	ASSERT_EQ(d->write(0, 100, data), VIRTIO_BLK_S_OK);
	auto c = d->execute(0, [] {
		vblk::RequestSpec s;
		s.type = VIRTIO_BLK_T_FLUSH;
		return s;
	}());
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(get_id_returns_serial_nul_padded)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->set_serial("vblk-serial-1");
	std::array<char, VIRTIO_BLK_ID_BYTES> id;
	id.fill('x');
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	std::array<char, VIRTIO_BLK_ID_BYTES> want{};
	std::memcpy(want.data(), "vblk-serial-1", 13);
	ASSERT_TRUE(id == want);
}

TEST(get_id_used_len_is_20_plus_status)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->set_serial("abc");
	vblk::RequestSpec s;
	s.type = VIRTIO_BLK_T_GET_ID;
	s.in_len = VIRTIO_BLK_ID_BYTES;
	auto c = d->execute(0, s);
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, uint32_t{ VIRTIO_BLK_ID_BYTES } + 1);
}

TEST(get_id_without_serial_returns_zeroes)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	std::array<char, VIRTIO_BLK_ID_BYTES> id;
	id.fill('x');
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	std::array<char, VIRTIO_BLK_ID_BYTES> zero{};
	ASSERT_TRUE(id == zero);
}

TEST(get_id_full_length_serial_is_not_terminated)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	const std::string serial = "ABCDEFGHIJKLMNOPQRST"; // 20 bytes
	d->set_serial(serial);
	std::array<char, VIRTIO_BLK_ID_BYTES> id{};
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	ASSERT_EQ(std::string(id.data(), id.size()), serial);
}

TEST(serial_change_is_seen_by_next_get_id)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	std::array<char, VIRTIO_BLK_ID_BYTES> id{};
	d->set_serial("first");
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	ASSERT_EQ(std::string(id.data()), std::string("first"));
	d->set_serial("second");
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	ASSERT_EQ(std::string(id.data()), std::string("second"));
}

TEST(unknown_type_is_unsupp)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	vblk::RequestSpec s;
	s.type = 0x55;
	s.in_len = 512;
	auto c = d->execute(0, s);
	ASSERT_EQ(c.status, VIRTIO_BLK_S_UNSUPP);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(discard_status_matches_backend_support)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto max = b.queue_attr("discard_max_bytes");
	if (!max)
		SKIP("no discard_max_bytes in sysfs");
	Range r{ 1 << 16, 2048 };
	uint8_t want = *max ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_UNSUPP;
	ktap::diag("discard_max_bytes=" + std::to_string(*max));
	ASSERT_EQ(d->discard(0, { &r, 1 }), want);
}

TEST(discard_on_loop_over_tmpfs_reads_back_zeroes)
{
	// loop turns discard into fallocate(PUNCH_HOLE), which tmpfs supports:
	// the range reads back as zeroes.  Neighbours keep their data.
	auto b = Backend::open(env_loop);
	if (b.queue_attr("discard_max_bytes").value_or(0) == 0)
		SKIP("loop device without discard");
	auto before = prefill(b, 0, 64 * 4096, ktap::seed());
	auto d = attached_driver(b);
	Range ranges[] = { { 8, 8 }, { 64, 64 }, { 256, 128 } };
	ASSERT_EQ(d->discard(0, ranges), VIRTIO_BLK_S_OK);
	auto after = b.read_direct(0, before.size());
	auto expect = before;
	for (auto &r : ranges)
		std::memset(&expect[r.sector * 512], 0, r.num_sectors * 512);
	ASSERT_BYTES_EQ(after, expect);
}

TEST(discard_with_unmap_flag_is_unsupp)
{
	auto b = Backend::open(env_loop);
	if (b.queue_attr("discard_max_bytes").value_or(0) == 0)
		SKIP("loop device without discard: UNSUPP would not prove the flag check");
	auto before = prefill(b, 0, 8 * 4096, ktap::seed());
	auto d = attached_driver(b);
	Range r{ 8, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	ASSERT_EQ(d->discard(0, { &r, 1 }), VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

// WRITE_ZEROES is served by backends that offload it (zram here); the
// module never writes zero pages itself.  Every range a test zeroes holds a
// pattern first, so a WRITE_ZEROES that did nothing would fail the test.
TEST(write_zeroes_with_unmap_reads_back_zeroes)
{
	auto b = Backend::open(env_zram);
	auto before = prefill(b, 1024, 64 * 1024, ktap::seed());
	auto d = attached_driver(b);
	Range r{ 1024 + 8, 64, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	ASSERT_EQ(d->write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_OK);
	auto expect = before;
	std::memset(&expect[8 * 512], 0, 64 * 512);
	ASSERT_BYTES_EQ(b.read_direct(1024 * 512, before.size()), expect);
	std::vector<uint8_t> via(64 * 512);
	ASSERT_EQ(d->read(0, 1024 + 8, via), VIRTIO_BLK_S_OK);
	ASSERT_TRUE(all_zero(via));
}

TEST(write_zeroes_without_unmap_reads_back_zeroes)
{
	auto b = Backend::open(env_zram);
	auto before = prefill(b, 3072, 32 * 1024, ktap::seed());
	auto d = attached_driver(b);
	Range r{ 3072, 32 };
	ASSERT_EQ(d->write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_OK);
	auto expect = before;
	std::memset(expect.data(), 0, 32 * 512);
	ASSERT_BYTES_EQ(b.read_direct(3072 * 512, before.size()), expect);
}

TEST(write_zeroes_multi_segment_zeroes_only_those_ranges)
{
	// 3-block ranges 9 blocks apart over 1 MiB of 4 KiB blocks, the unmap
	// flag on every other one.
	auto b = Backend::open(env_zram);
	auto before = prefill(b, 0, 1024 * 1024, ktap::seed());
	auto d = attached_driver(b);
	std::vector<Range> ranges;
	for (uint64_t blk = 1; blk + 3 <= 256; blk += 9)
		ranges.push_back({ blk * 8, 3 * 8, (blk & 1) ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0u });
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_OK);
	auto expect = before;
	for (auto &r : ranges)
		std::memset(&expect[r.sector * 512], 0, r.num_sectors * 512);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), expect);
}

TEST(write_zeroes_with_reserved_flag_is_unsupp_disk_untouched)
{
	auto b = Backend::open(env_zram);
	auto before = prefill(b, 0, 16 * 1024, ktap::seed());
	auto d = attached_driver(b);
	Range ranges[] = { { 0, 8 }, { 16, 8, 0x2 } };
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST(write_zeroes_past_capacity_is_ioerr_disk_untouched)
{
	auto b = Backend::open(env_zram);
	uint64_t last = b.sectors() - 8;
	auto first = prefill(b, 0, 4096, ktap::seed());
	auto tail = prefill(b, last, 4096, ktap::seed() + 1);
	auto d = attached_driver(b);
	// The first range is fine, the second straddles the end: nothing may
	// be written.
	Range ranges[] = { { 0, 8 }, { last, 16 } };
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, first.size()), first);
	ASSERT_BYTES_EQ(b.read_direct(last * 512, tail.size()), tail);
}

TEST_VARIANTS(write_zeroes_without_backend_offload_is_unsupp_disk_untouched, BackendParam, p,
	      ({ { "nullb", { env_nullb } }, { "brd", { env_brd } } }))
{
	// No write-zeroes offload: UNSUPP at once, no zero page written.
	auto b = Backend::open(p.env);
	ASSERT_EQ(b.queue_attr("write_zeroes_max_bytes").value_or(1), 0u);
	auto before = prefill(b, 0, 64 * 1024, ktap::seed());
	auto d = attached_driver(b);
	Range ranges[] = { { 0, 8 }, { 32, 64, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } };
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST(range_list_longer_than_max_is_ioerr)
{
	auto b = Backend::open(env_zram);
	const size_t n = VHOST_BLK_MAX_DISCARD_SEGMENTS + 1;
	auto before = prefill(b, 0, n * 4096, ktap::seed());
	auto d = attached_driver(b);
	std::vector<Range> ranges(n);
	for (size_t i = 0; i < ranges.size(); i++)
		ranges[i] = { i * 8, 8 };
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST(range_list_of_max_segments_is_ok)
{
	// One 4 KiB block zeroed in every other block: the zeroed ones read
	// back as zeroes, the ones between keep their data.
	auto b = Backend::open(env_zram);
	auto before = prefill(b, 0, VHOST_BLK_MAX_DISCARD_SEGMENTS * 8192, ktap::seed());
	auto d = attached_driver(b);
	std::vector<Range> ranges(VHOST_BLK_MAX_DISCARD_SEGMENTS);
	for (size_t i = 0; i < ranges.size(); i++)
		ranges[i] = { i * 16, 8 };
	ASSERT_EQ(d->write_zeroes(0, ranges), VIRTIO_BLK_S_OK);
	auto expect = before;
	for (auto &r : ranges)
		std::memset(&expect[r.sector * 512], 0, r.num_sectors * 512);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), expect);
}

TEST(secure_erase_without_backend_support_is_unsupp)
{
	auto b = Backend::open(env_nullb);
	auto before = prefill(b, 0, 4096, ktap::seed());
	auto d = attached_driver(b);
	Range r{ 0, 8 };
	ASSERT_EQ(d->secure_erase(0, { &r, 1 }), VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST(read_past_capacity_is_ioerr)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	std::vector<uint8_t> buf(4096);
	ASSERT_EQ(d->read(0, b.sectors(), buf), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->read(0, b.sectors() - 4, buf), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->read(0, ~uint64_t{ 0 } - 3, buf), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->read(0, b.sectors() - 8, buf), VIRTIO_BLK_S_OK);
}

TEST(write_straddling_capacity_is_ioerr_disk_untouched)
{
	auto b = Backend::open(env_nullb);
	uint64_t last = b.sectors() - 8;
	auto before = prefill(b, last, 4096, ktap::seed());
	auto d = attached_driver(b);
	auto data = pattern(8192, last, ktap::seed() + 99);
	ASSERT_EQ(d->write(0, last, data), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(last * 512, 4096), before);
}

TEST(request_of_1mib_in_256_descriptors_round_trips)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 512);
	vblk::IoOptions io{ .layout = vblk::Layout::chunked_data, .chunk = 4096 };
	auto data = pattern(mib, 1 << 18, ktap::seed());
	ASSERT_EQ(d->write(0, 1 << 18, data, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct((1 << 18) * 512ULL, mib), data);
	std::vector<uint8_t> back(mib);
	ASSERT_EQ(d->read(0, 1 << 18, back, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

TEST(request_of_4mib_through_one_indirect_table_round_trips)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 512);
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	vblk::IoOptions io{ .layout = vblk::Layout::chunked_data, .indirect = true,
			    .chunk = 16384 };
	auto data = pattern(4 * mib, 1 << 19, ktap::seed());
	ASSERT_EQ(d->write(0, 1 << 19, data, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct((1 << 19) * 512ULL, data.size()), data);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, 1 << 19, back, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

TEST(request_with_max_segments_round_trips)
{
	// VHOST_BLK_MAX_SEGMENTS data descriptors plus header and status.
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 1024);
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	vblk::IoOptions io{ .layout = vblk::Layout::chunked_data, .indirect = true, .chunk = 512 };
	const size_t len = VHOST_BLK_MAX_SEGMENTS * 512;
	auto data = pattern(len, 4096, ktap::seed());
	// OUT: header + 1022 data + status = 1024 descriptors.
	ASSERT_EQ(d->write(0, 4096, data, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(4096 * 512, len), data);
	// IN: header + 1022 data (status in the last one).
	std::vector<uint8_t> back(len);
	ASSERT_EQ(d->read(0, 4096, back, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

TEST_VARIANTS(round_trip_on_backend, BackendParam, p,
	      ({ { "nullb", { env_nullb } },
		 { "brd", { env_brd } },
		 { "loop", { env_loop } },
		 { "nullb_4k", { env_nullb_4k } },
		 { "zram", { env_zram } } }))
{
	auto b = Backend::open(p.env);
	auto d = attached_driver(b);
	ktap::diag(b.path() + ": lbs " + std::to_string(b.logical_block_size()) + ", " +
		   std::to_string(b.size_bytes() >> 20) + " MiB");
	uint64_t sector = (b.sectors() / 2) & ~uint64_t{ 7 };
	auto data = pattern(256 * 1024, sector, ktap::seed());
	ASSERT_EQ(d->write(0, sector, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, sector, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_EQ(d->flush(0), VIRTIO_BLK_S_OK);
}
