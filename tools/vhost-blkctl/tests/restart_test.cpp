// SPDX-License-Identifier: GPL-2.0
// Restart without loss (bridge/restart.hpp): the stale-base rule, the
// exclusive claim, and a session that rebases a ring and signals it once.
#include "bridge/restart.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fcntl.h>
#include <poll.h>

using namespace harness;
using bridge::stale_base;

TEST(Restart, base_equal_to_the_used_index_stands)
{
	EXPECT_EQ(stale_base(7, 7, 256), std::nullopt);
	EXPECT_EQ(stale_base(0, 0, 256), std::nullopt);
}

TEST(Restart, used_index_ahead_by_up_to_a_ring_is_the_base)
{
	EXPECT_EQ(stale_base(7, 8, 256), 8);
	EXPECT_EQ(stale_base(7, 7 + 256, 256), 7 + 256);
	// Indexes wrap at 2^16.
	EXPECT_EQ(stale_base(65530, 4, 256), 4);
}

TEST(Restart, used_index_behind_or_more_than_a_ring_ahead_is_not_explained)
{
	EXPECT_EQ(stale_base(8, 7, 256), std::nullopt);
	EXPECT_EQ(stale_base(7, 7 + 257, 256), std::nullopt);
	EXPECT_EQ(stale_base(0, 200, 128), std::nullopt);
}

TEST(Restart, claim_opens_the_same_file_again_with_its_access_mode)
{
	test_util::TempDir dir;
	std::string path = dir.path + "/disk";
	vblk::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
	ASSERT_TRUE(fd);
	auto claimed = bridge::claim_exclusive(fd.get(), std::chrono::milliseconds(0), {});
	ASSERT_TRUE(claimed);
	EXPECT_EQ(::fcntl(claimed.get(), F_GETFL) & O_ACCMODE, O_RDWR);
	struct stat a, b;
	ASSERT_EQ(::fstat(fd.get(), &a), 0);
	ASSERT_EQ(::fstat(claimed.get(), &b), 0);
	EXPECT_EQ(a.st_ino, b.st_ino);
}

namespace {

// A session whose ring 0 the frontend restarts from `base` while the used
// index in guest memory is `used_idx`.
struct RestartHarness : SessionHarness {
	int claims = 0;
	bool claim_busy = false;
	vblk::UniqueFd call;

	void start_ring0(uint16_t base, uint16_t used_idx)
	{
		ctx.claim = [this] {
			claims++;
			if (claim_busy)
				throw bridge::Rejected("still claimed");
			return vblk::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
		};
		send(make(Request::set_owner));
		send(u64(Request::set_features,
			 ctx.offered_features & ~(uint64_t{ 1 } << VHOST_F_LOG_ALL)));
		Message mt = mem_table();
		uint64_t ring = frontend_base + 0x10000;
		auto mem = vblk::Mmap::map(ram_size, PROT_READ | PROT_WRITE, MAP_SHARED,
					   mt.fds[0].get());
		std::memcpy(mem.bytes() + (ring + 0x2000 - frontend_base) + 2, &used_idx, 2);
		send(std::move(mt));
		send(state(Request::set_vring_num, 0, 256));
		send(state(Request::set_vring_base, 0, base));
		send(addr(0, ring, ring + 0x1000, ring + 0x2000));
		send(file(Request::set_vring_kick, 0));
		// QEMU sets the call eventfd after the kick that started the ring.
		Message c = file(Request::set_vring_call, 0);
		call = vblk::UniqueFd(::fcntl(c.fds[0].get(), F_DUPFD_CLOEXEC, 0));
		send(std::move(c));
	}
	uint64_t signalled()
	{
		struct pollfd p = { .fd = call.get(), .events = POLLIN, .revents = 0 };
		uint64_t v = 0;
		if (::poll(&p, 1, 0) == 1 && ::read(call.get(), &v, sizeof(v)) != sizeof(v))
			v = 0;
		return v;
	}
	long count(const std::string &c) const { return std::count(st.calls.begin(), st.calls.end(), c); }
};

} // namespace

namespace {

// Ring 0 restarted from `base` with `used_idx` in guest memory runs from
// `want`, with `signals` interrupts; returns the session's log.
std::vector<std::string> expect_start(uint16_t base, uint16_t used_idx, uint16_t want,
				      uint64_t signals)
{
	RestartHarness h;
	h.start_ring0(base, used_idx);
	EXPECT_TRUE(h.s->ring_started(0));
	EXPECT_EQ(h.st.rings[0].base, want);
	EXPECT_EQ(h.count("set_vring_base(0)"), want == base ? 1 : 2);
	EXPECT_EQ(h.signalled(), signals);
	EXPECT_EQ(h.claims, 1);
	return h.log;
}

} // namespace

TEST(Restart, stale_base_is_replaced_by_the_used_index_and_the_ring_signalled_once)
{
	auto log = expect_start(10, 14, 14, 1);
	EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string &l) {
		return l.find("behind the used index 14") != std::string::npos;
	}));
}

TEST(Restart, exact_base_starts_as_given_without_a_signal)
{
	expect_start(14, 14, 14, 0);
}

TEST(Restart, base_far_behind_the_used_index_is_left_to_the_kernel)
{
	// More than a ring apart: not explained by one dead backend's requests.
	expect_start(0, 1000, 0, 0);
}

TEST(Restart, a_base_set_up_again_after_a_mem_table_change_is_not_checked_again)
{
	RestartHarness h;
	h.start_ring0(14, 14);
	h.send(mem_table());
	EXPECT_TRUE(h.s->ring_started(0));
	EXPECT_EQ(h.count("set_vring_base(0)"), 1);
	// The rings stopped and started again: a second claim.
	EXPECT_EQ(h.claims, 2);
}

TEST(Restart, second_ring_attaches_under_the_first_rings_claim)
{
	RestartHarness h;
	h.start_ring0(0, 0);
	h.bring_up(1, false);
	EXPECT_TRUE(h.s->ring_started(1));
	EXPECT_EQ(h.claims, 1);
	EXPECT_EQ(h.st.backend_fd, h.ctx.backend_fd);
}

TEST(Restart, a_disk_still_claimed_leaves_the_ring_stopped)
{
	RestartHarness h;
	h.claim_busy = true;
	EXPECT_THROW(h.start_ring0(0, 0), bridge::Rejected);
	EXPECT_FALSE(h.s->ring_started(0));
	EXPECT_EQ(h.count("attach_ring(0)"), 0);
}
