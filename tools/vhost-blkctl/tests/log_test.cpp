// SPDX-License-Identifier: GPL-2.0
// Live migration: the dirty log (SET_LOG_BASE / SET_LOG_FD, LOG_ALL,
// VHOST_VRING_F_LOG) against a fake kernel device.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <linux/vhost.h>

using namespace harness;
using bridge::SessionError;

namespace {

constexpr uint64_t log_all = 1ull << VHOST_F_LOG_ALL;
constexpr uint64_t protocol = (1ull << pf_reply_ack) | (1ull << pf_log_shmfd);
// ram_size (1 MiB at GPA 0) needs 32 log bytes.
constexpr uint64_t ram_log_bytes = ram_size / (8 * 4096);

// SET_LOG_BASE with a memfd of `file_size` bytes (default: just enough)
// whose byte at `offset` is `mark`.
Message log_base(uint64_t size, uint64_t offset = 0, uint64_t file_size = 0, uint8_t mark = 0x5a)
{
	Message m = make(Request::set_log_base, bytes(LogArea{ size, offset }));
	int fd = ::memfd_create("vhost-log", MFD_CLOEXEC);
	if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(file_size ? file_size : offset + size)) ||
	    ::pwrite(fd, &mark, 1, static_cast<off_t>(offset)) != 1)
		abort();
	m.fds.emplace_back(fd);
	return m;
}

Message logged_addr(uint32_t index, uint64_t ring, uint64_t log_gpa)
{
	return make(Request::set_vring_addr,
		    bytes(VringAddr{ index, vring_addr_f_log, ring, ring + 0x2000, ring + 0x1000,
				     log_gpa }));
}

struct LogHarness : SessionHarness {
	LogHarness()
	{
		send(u64(Request::set_protocol_features, protocol));
	}
	uint64_t acked() const { return ctx.offered_features & ~log_all; }
	// QEMU's migration start on running rings: log, LOG_ALL, F_LOG.
	void start_logging(uint64_t size = ram_log_bytes)
	{
		send(log_base(size));
		send(u64(Request::set_features, acked() | log_all));
		for (unsigned i = 0; i < 2; i++) {
			uint64_t ring = frontend_base + 0x10000 * (i + 1);
			send(logged_addr(i, ring, 0x10000 * (i + 1) + 0x2000));
		}
	}
};

} // namespace

TEST(DirtyLog, log_shmfd_is_offered_with_log_all_only)
{
	SessionHarness h;
	EXPECT_TRUE(h.ctx.offered_features & log_all);
	EXPECT_TRUE(reply_u64(h.send(make(Request::get_protocol_features))) & (1ull << pf_log_shmfd));
	h.ctx.offered_features &= ~log_all;
	EXPECT_FALSE(reply_u64(h.send(make(Request::get_protocol_features))) &
		     (1ull << pf_log_shmfd));
	EXPECT_THROW(h.send(u64(Request::set_protocol_features, 1ull << pf_log_shmfd)), SessionError);
}

TEST(DirtyLog, set_log_base_maps_the_fd_at_its_offset_and_replies_once_with_u64_0)
{
	LogHarness h;
	h.send(make(Request::set_owner));
	// QEMU 7.2 waits for this reply whether or not it asked for an ack.
	Message m = log_base(4096, 8192 + 100, 0, 0xa7);
	m.flags |= flag_need_reply;
	auto r = h.send(std::move(m));
	ASSERT_TRUE(r);
	EXPECT_EQ(r->req(), Request::set_log_base);
	EXPECT_TRUE(r->flags & flag_reply);
	EXPECT_EQ(r->payload.size(), 8u);
	EXPECT_EQ(reply_u64(r), 0u);
	ASSERT_NE(h.st.log_base, 0u);
	EXPECT_EQ(h.st.log_base, h.s->log_addr());
	// The kernel gets our mapping of the frontend's log, at its offset.
	EXPECT_EQ(*reinterpret_cast<volatile uint8_t *>(h.st.log_base), 0xa7);
}

TEST(DirtyLog, set_log_base_without_log_shmfd_ends_the_session)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(log_base(4096)), SessionError);
	EXPECT_EQ(h.st.log_base, 0u);
}

TEST(DirtyLog, malformed_or_oversized_logs_are_refused_and_the_kernel_keeps_none)
{
	LogHarness h;
	h.send(make(Request::set_owner));
	Message nofd = make(Request::set_log_base, bytes(LogArea{ 4096, 0 }));
	EXPECT_THROW(h.send(std::move(nofd)), ProtocolError);
	Message small = log_base(4096);
	small.payload.resize(8);
	EXPECT_THROW(h.send(std::move(small)), ProtocolError);
	EXPECT_THROW(h.send(log_base(~0ull - 10, 4096, 8192)), ProtocolError);	// wraps
	EXPECT_THROW(h.send(log_base(bridge::Session::max_log_bytes + 4096, 0, 4096)),
		     SessionError);
	EXPECT_THROW(h.send(log_base(8192, 0, 4096)), SessionError);	// past the file's end
	Message ev = make(Request::set_log_base, bytes(LogArea{ 4096, 0 }));
	ev.fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
	EXPECT_THROW(h.send(std::move(ev)), SessionError);
	EXPECT_EQ(h.st.log_base, 0u);
	EXPECT_EQ(std::count(h.st.calls.begin(), h.st.calls.end(), "set_log_base"), 0);
}

TEST(DirtyLog, a_replaced_log_is_unmapped_only_after_the_kernel_switched)
{
	LogHarness h;
	h.bring_up(0);
	h.send(log_base(4096));
	uint64_t first = h.st.log_base;
	h.send(log_base(8192));
	ASSERT_EQ(h.st.old_log_mapped.size(), 1u);
	EXPECT_TRUE(h.st.old_log_mapped[0]);
	EXPECT_NE(h.st.log_base, first);
	EXPECT_FALSE(fake::mapped(first));
	// A zero-sized log without an fd removes it.
	uint64_t second = h.st.log_base;
	EXPECT_EQ(reply_u64(h.send(make(Request::set_log_base, bytes(LogArea{ 0, 0 })))), 0u);
	EXPECT_EQ(h.st.log_base, 0u);
	EXPECT_TRUE(h.st.old_log_mapped[1]);
	EXPECT_FALSE(fake::mapped(second));
}

TEST(DirtyLog, migration_start_passes_log_all_and_the_used_ring_s_guest_address)
{
	LogHarness h;
	h.bring_up(0);
	h.bring_up(1, false);
	h.start_logging();
	EXPECT_EQ(h.st.acked, h.acked() | log_all);
	for (unsigned i = 0; i < 2; i++) {
		EXPECT_TRUE(h.st.rings[i].attached);
		EXPECT_EQ(h.st.rings[i].addr.flags, vring_addr_f_log);
		// Guest-physical, not translated like desc/avail/used.
		EXPECT_EQ(h.st.rings[i].addr.log, 0x10000ull * (i + 1) + 0x2000);
		EXPECT_EQ(h.st.rings[i].addr.used, h.st.mem[0].userspace_addr + 0x10000 * (i + 1) + 0x2000);
	}
	// Migration ends: logging off again.
	h.send(u64(Request::set_features, h.acked()));
	h.send(addr(0, frontend_base + 0x10000, frontend_base + 0x11000, frontend_base + 0x12000));
	EXPECT_EQ(h.st.acked, h.acked());
	EXPECT_EQ(h.st.rings[0].addr.flags, 0u);
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(DirtyLog, log_all_with_a_log_too_small_for_guest_memory_ends_the_session)
{
	LogHarness h;
	h.bring_up(0);
	h.send(log_base(ram_log_bytes - 1));
	EXPECT_THROW(h.send(u64(Request::set_features, h.acked() | log_all)), SessionError);
	EXPECT_EQ(h.st.acked, h.acked());
}

TEST(DirtyLog, no_log_shrinks_below_what_running_rings_mark)
{
	LogHarness h;
	h.bring_up(0);
	h.start_logging();
	EXPECT_THROW(h.send(log_base(ram_log_bytes - 1)), SessionError);
	LogHarness h2;
	h2.bring_up(0);
	h2.start_logging();
	EXPECT_THROW(h2.send(make(Request::set_log_base, bytes(LogArea{ 0, 0 }))), SessionError);
	EXPECT_NE(h2.st.log_base, 0u);
}

TEST(DirtyLog, used_ring_log_address_beyond_the_log_ends_the_session)
{
	LogHarness h;
	h.bring_up(0);
	h.send(log_base(ram_log_bytes));
	EXPECT_THROW(h.send(logged_addr(0, frontend_base + 0x10000, ram_size)), SessionError);
	EXPECT_EQ(h.st.rings[0].addr.flags, 0u);
}

TEST(DirtyLog, rings_started_with_logging_on_wait_for_the_log)
{
	// QEMU starting a device mid-migration: LOG_ALL, rings, then the log.
	LogHarness h;
	h.send(make(Request::set_owner));
	h.send(u64(Request::set_features, h.acked() | log_all));
	h.send(mem_table());
	h.send(state(Request::set_vring_num, 0, 256));
	h.send(logged_addr(0, frontend_base + 0x10000, 0x12000));
	h.send(file(Request::set_vring_kick, 0));
	EXPECT_FALSE(h.st.rings[0].attached);
	h.send(log_base(ram_log_bytes - 1));
	EXPECT_FALSE(h.st.rings[0].attached);
	h.send(log_base(ram_log_bytes));
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(DirtyLog, memory_table_beyond_the_log_under_log_all_ends_the_session)
{
	LogHarness h;
	h.bring_up(0);
	h.start_logging();
	Message m = mem_table(frontend_base, ram_size * 2);
	EXPECT_THROW(h.send(std::move(m)), SessionError);
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(DirtyLog, set_log_fd_passes_the_eventfd_to_the_kernel)
{
	LogHarness h;
	h.send(make(Request::set_owner));
	Message m = make(Request::set_log_fd);
	m.fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
	EXPECT_FALSE(h.send(std::move(m)));
	EXPECT_TRUE(h.st.log_fd);
	EXPECT_THROW(h.send(make(Request::set_log_fd)), ProtocolError);
}

TEST(DirtyLog, reset_device_drops_the_log_with_the_device)
{
	LogHarness h;
	h.bring_up(0);
	h.start_logging();
	uint64_t addr = h.st.log_base;
	h.send(make(Request::reset_device));
	EXPECT_EQ(h.s->log_addr(), 0u);
	EXPECT_EQ(h.st.log_base, 0u);
	EXPECT_FALSE(fake::mapped(addr));
}
