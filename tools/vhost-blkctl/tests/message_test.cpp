// SPDX-License-Identifier: GPL-2.0
// The vhost-user payload parsers against well-formed and malformed input.
#include "vhost_user/message.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <sys/eventfd.h>

using namespace vhost_user;

namespace {

Message msg(Request r, std::vector<uint8_t> payload = {}, int nfds = 0)
{
	Message m;
	m.request = static_cast<uint32_t>(r);
	m.payload = std::move(payload);
	for (int i = 0; i < nfds; i++)
		m.fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
	return m;
}

template <typename T> std::vector<uint8_t> bytes(const T &v)
{
	std::vector<uint8_t> b(sizeof(v));
	std::memcpy(b.data(), &v, sizeof(v));
	return b;
}

std::vector<uint8_t> mem_table(std::vector<MemoryRegion> regions, uint32_t n = ~0u)
{
	std::vector<uint8_t> b(8 + regions.size() * sizeof(MemoryRegion));
	uint32_t count = n == ~0u ? static_cast<uint32_t>(regions.size()) : n;
	std::memcpy(b.data(), &count, 4);
	// memcpy from an empty vector's null data() is undefined (UBSan).
	if (!regions.empty())
		std::memcpy(b.data() + 8, regions.data(), regions.size() * sizeof(MemoryRegion));
	return b;
}

} // namespace

TEST(Header, version_other_than_1_is_rejected)
{
	EXPECT_THROW(validate_header(1, 0x2, 0), ProtocolError);
	EXPECT_THROW(validate_header(1, 0x0, 0), ProtocolError);
	EXPECT_NO_THROW(validate_header(1, 0x1, 0));
}

TEST(Header, reply_flag_on_a_request_is_rejected)
{
	EXPECT_THROW(validate_header(1, flag_version | flag_reply, 0), ProtocolError);
}

TEST(Header, oversized_payload_is_rejected)
{
	EXPECT_NO_THROW(validate_header(5, flag_version, max_payload));
	EXPECT_THROW(validate_header(5, flag_version, max_payload + 1), ProtocolError);
	EXPECT_THROW(validate_header(5, flag_version, 0xffffffffu), ProtocolError);
}

TEST(Parse, u64_needs_exactly_8_bytes)
{
	EXPECT_EQ(parse_u64(msg(Request::set_features, bytes(uint64_t{ 0x1234 }))), 0x1234u);
	EXPECT_THROW(parse_u64(msg(Request::set_features, { 1, 2, 3 })), ProtocolError);
	EXPECT_THROW(parse_u64(msg(Request::set_features, std::vector<uint8_t>(16))), ProtocolError);
	EXPECT_THROW(parse_u64(msg(Request::set_features, {})), ProtocolError);
}

TEST(Parse, fds_on_a_request_that_takes_none_are_rejected)
{
	EXPECT_THROW(parse_u64(msg(Request::set_features, bytes(uint64_t{ 0 }), 1)), ProtocolError);
	EXPECT_THROW(expect_empty(msg(Request::get_features, {}, 2)), ProtocolError);
}

TEST(Parse, vring_state_and_addr_sizes)
{
	auto s = parse_vring_state(msg(Request::set_vring_num, bytes(VringState{ 1, 256 })));
	EXPECT_EQ(s.index, 1u);
	EXPECT_EQ(s.num, 256u);
	EXPECT_THROW(parse_vring_state(msg(Request::set_vring_num, std::vector<uint8_t>(4))),
		     ProtocolError);
	VringAddr a{ 1, 0, 0x1000, 0x3000, 0x2000, 0 };
	auto p = parse_vring_addr(msg(Request::set_vring_addr, bytes(a)));
	EXPECT_EQ(p.desc_user_addr, 0x1000u);
	EXPECT_EQ(p.used_user_addr, 0x3000u);
	EXPECT_EQ(p.avail_user_addr, 0x2000u);
	EXPECT_THROW(parse_vring_addr(msg(Request::set_vring_addr, std::vector<uint8_t>(39))),
		     ProtocolError);
}

TEST(Parse, mem_table_with_matching_fds_is_accepted)
{
	auto m = msg(Request::set_mem_table,
		     mem_table({ { 0, 0x1000, 0x7f0000000000, 0 },
				 { 0x100000, 0x2000, 0x7f0000100000, 0x1000 } }),
		     2);
	auto r = parse_mem_table(m);
	ASSERT_EQ(r.size(), 2u);
	EXPECT_EQ(r[1].mmap_offset, 0x1000u);
}

TEST(Parse, mem_table_region_count_must_match_fds)
{
	auto m = msg(Request::set_mem_table, mem_table({ { 0, 0x1000, 0x1000, 0 } }), 0);
	EXPECT_THROW(parse_mem_table(m), ProtocolError);
	auto m2 = msg(Request::set_mem_table, mem_table({ { 0, 0x1000, 0x1000, 0 } }), 2);
	EXPECT_THROW(parse_mem_table(m2), ProtocolError);
}

TEST(Parse, mem_table_count_larger_than_payload_is_truncated)
{
	auto m = msg(Request::set_mem_table, mem_table({ { 0, 0x1000, 0x1000, 0 } }, 3), 3);
	EXPECT_THROW(parse_mem_table(m), ProtocolError);
}

TEST(Parse, mem_table_zero_or_too_many_regions)
{
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table, mem_table({}))), ProtocolError);
	std::vector<MemoryRegion> nine(9, MemoryRegion{ 0, 0x1000, 0, 0 });
	for (unsigned i = 0; i < 9; i++)
		nine[i].guest_phys_addr = i * 0x1000;
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table, mem_table(nine), 8)),
		     ProtocolError);
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table, { 1, 0, 0 })), ProtocolError);
}

TEST(Parse, mem_table_zero_size_wrapping_or_overlapping_regions)
{
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table,
					 mem_table({ { 0, 0, 0x1000, 0 } }), 1)),
		     ProtocolError);
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table,
					 mem_table({ { ~0ull - 10, 0x1000, 0x1000, 0 } }), 1)),
		     ProtocolError);
	EXPECT_THROW(parse_mem_table(msg(Request::set_mem_table,
					 mem_table({ { 0, 0x2000, 0x1000, 0 },
						     { 0x1000, 0x1000, 0x9000, 0 } }),
					 2)),
		     ProtocolError);
}

TEST(Parse, vring_file_with_and_without_fd)
{
	auto f = parse_vring_file(msg(Request::set_vring_kick, bytes(uint64_t{ 1 }), 1));
	EXPECT_EQ(f.index, 1u);
	EXPECT_TRUE(f.has_fd);
	auto g = parse_vring_file(msg(Request::set_vring_call, bytes(uint64_t{ 0x100 | 3 }), 0));
	EXPECT_EQ(g.index, 3u);
	EXPECT_FALSE(g.has_fd);
}

TEST(Parse, vring_file_fd_mismatch_or_reserved_bits)
{
	EXPECT_THROW(parse_vring_file(msg(Request::set_vring_kick, bytes(uint64_t{ 0 }), 0)),
		     ProtocolError);
	EXPECT_THROW(parse_vring_file(msg(Request::set_vring_kick, bytes(uint64_t{ 0x100 }), 1)),
		     ProtocolError);
	EXPECT_THROW(parse_vring_file(msg(Request::set_vring_kick, bytes(uint64_t{ 0x200 }), 1)),
		     ProtocolError);
	EXPECT_THROW(parse_vring_file(msg(Request::set_vring_kick, bytes(uint64_t{ 0 }), 2)),
		     ProtocolError);
}

TEST(Parse, config_size_must_match_and_stay_in_the_space)
{
	std::vector<uint8_t> p(12 + 8);
	ConfigHeader h{ 0, 8, 0 };
	std::memcpy(p.data(), &h, 12);
	auto c = parse_config(msg(Request::get_config, p));
	EXPECT_EQ(c.hdr.size, 8u);
	EXPECT_EQ(c.data.size(), 8u);
	h.size = 9;
	std::memcpy(p.data(), &h, 12);
	EXPECT_THROW(parse_config(msg(Request::get_config, p)), ProtocolError);
	EXPECT_THROW(parse_config(msg(Request::get_config, { 1, 2 })), ProtocolError);
	ConfigHeader big{ 250, 8, 0 };
	std::vector<uint8_t> q(12 + 8);
	std::memcpy(q.data(), &big, 12);
	EXPECT_THROW(parse_config(msg(Request::get_config, q)), ProtocolError);
	ConfigHeader huge{ 0, 0xffffffffu, 0 };
	std::memcpy(q.data(), &huge, 12);
	EXPECT_THROW(parse_config(msg(Request::get_config, q)), ProtocolError);
}

TEST(Reply, serialized_reply_has_reply_flag_and_size)
{
	auto req = msg(Request::get_features);
	auto b = serialize(reply_u64(req, 0x42));
	ASSERT_EQ(b.size(), header_size + 8);
	uint32_t hdr[3];
	std::memcpy(hdr, b.data(), 12);
	EXPECT_EQ(hdr[0], 1u);
	EXPECT_EQ(hdr[1], flag_version | flag_reply);
	EXPECT_EQ(hdr[2], 8u);
	uint64_t v;
	std::memcpy(&v, b.data() + 12, 8);
	EXPECT_EQ(v, 0x42u);
}

TEST(Names, known_and_unknown_requests)
{
	EXPECT_EQ(request_name(5), "SET_MEM_TABLE");
	EXPECT_EQ(request_name(999), "REQUEST_999");
}

// Seeded garbage: the parsers either accept or throw ProtocolError,
// never anything else.  VHOST_BLKCTL_SEED replays a run.
TEST(Parse, random_payloads_never_escape_as_other_errors)
{
	unsigned seed = getenv("VHOST_BLKCTL_SEED") ? std::atoi(getenv("VHOST_BLKCTL_SEED"))
						     : static_cast<unsigned>(time(nullptr));
	std::printf("seed %u (VHOST_BLKCTL_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (int i = 0; i < 5000; i++) {
		std::vector<uint8_t> p(rand() % 300);
		for (auto &b : p)
			b = static_cast<uint8_t>(rand());
		if (p.size() >= 4 && rand() % 2)
			p[0] = static_cast<uint8_t>(rand() % 10), p[1] = p[2] = p[3] = 0;
		auto m = msg(Request::set_mem_table, p, rand() % 9);
		try {
			switch (i % 5) {
			case 0: parse_mem_table(m); break;
			case 1: parse_config(m); break;
			case 2: parse_vring_file(m); break;
			case 3: parse_vring_addr(m); break;
			case 4: parse_u64(m); break;
			}
		} catch (const ProtocolError &) {
		}
	}
}
