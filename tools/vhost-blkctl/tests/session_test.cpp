// SPDX-License-Identifier: GPL-2.0
// The vhost-user state machine against a fake kernel device.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>

using namespace harness;
using bridge::Rejected;
using bridge::SessionError;

TEST(Session, get_features_adds_the_protocol_features_bit)
{
	SessionHarness h;
	uint64_t f = reply_u64(h.send(make(Request::get_features)));
	EXPECT_TRUE(f & f_protocol_features);
	EXPECT_EQ(f & ~f_protocol_features, h.ctx.offered_features);
}

TEST(Session, set_features_strips_bit_30_before_the_kernel)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	h.send(u64(Request::set_features, h.ctx.offered_features | f_protocol_features));
	EXPECT_EQ(h.st.acked, h.ctx.offered_features);
	EXPECT_EQ(h.s->acked_features(), h.ctx.offered_features);
}

TEST(Session, set_features_with_bits_never_offered_ends_the_session)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(u64(Request::set_features, 1ull << 40)), SessionError);
}

TEST(Session, state_changes_before_set_owner_are_refused)
{
	SessionHarness h;
	EXPECT_THROW(h.send(mem_table()), SessionError);
	EXPECT_THROW(h.send(state(Request::set_vring_num, 0, 256)), SessionError);
	EXPECT_THROW(h.send(u64(Request::set_features, 0)), SessionError);
}

TEST(Session, set_owner_twice_is_refused)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(make(Request::set_owner)), SessionError);
}

TEST(Session, set_owner_sets_the_serial_and_the_worker_plan)
{
	SessionHarness h(2, bridge::WorkerPlan::per_vq(2));
	h.send(make(Request::set_owner));
	EXPECT_TRUE(h.st.owned);
	EXPECT_EQ(h.st.serial, "serial-1");
	EXPECT_EQ(h.st.workers.size(), 2u);
	EXPECT_NE(h.st.rings[0].worker, h.st.rings[1].worker);
}

TEST(Session, protocol_features_are_mq_reply_ack_config_and_log_shmfd_only)
{
	SessionHarness h;
	uint64_t f = reply_u64(h.send(make(Request::get_protocol_features)));
	EXPECT_EQ(f, (1ull << pf_mq) | (1ull << pf_reply_ack) | (1ull << pf_config) |
			     (1ull << pf_log_shmfd));
	EXPECT_THROW(h.send(u64(Request::set_protocol_features, 1ull << pf_inflight_shmfd)),
		     SessionError);
}

TEST(Session, queue_num_is_the_disk_s_queue_count)
{
	SessionHarness h(4, bridge::WorkerPlan::single(4));
	EXPECT_EQ(reply_u64(h.send(make(Request::get_queue_num))), 4u);
}

TEST(Session, ring_starts_after_kick_with_daemon_addresses)
{
	SessionHarness h;
	h.bring_up(0);
	EXPECT_TRUE(h.st.rings[0].attached);
	EXPECT_TRUE(h.s->ring_started(0));
	EXPECT_EQ(h.st.backend_fd, 42);
	ASSERT_EQ(h.st.mem.size(), 1u);
	// The kernel sees our mapping, not the frontend's address.
	uint64_t base = h.st.mem[0].userspace_addr;
	EXPECT_NE(base, frontend_base);
	EXPECT_EQ(h.st.rings[0].addr.desc, base + 0x10000);
	EXPECT_EQ(h.st.rings[0].addr.avail, base + 0x11000);
	EXPECT_EQ(h.st.rings[0].addr.used, base + 0x12000);
	EXPECT_FALSE(h.st.rings[1].attached);
}

TEST(Session, poll_us_is_set_on_each_ring_before_it_starts)
{
	SessionHarness h;
	h.ctx.params.poll_us = 50;
	h.bring_up(0);
	h.bring_up(1, false);
	for (unsigned i : { 0u, 1u })
		EXPECT_EQ(h.st.rings[i].busyloop_us, 50u);
	auto &c = h.st.calls;
	auto poll = std::find(c.begin(), c.end(), "set_vring_busyloop_timeout(0)");
	auto attach = std::find(c.begin(), c.end(), "attach_ring(0)");
	ASSERT_NE(poll, c.end());
	EXPECT_LT(poll, attach);
}

TEST(Session, block_size_is_set_with_the_owner_before_any_ring_attaches)
{
	SessionHarness h;
	h.ctx.params.block_size = 512;
	h.bring_up(0);
	EXPECT_EQ(h.st.block_size, 512u);
	auto &c = h.st.calls;
	long set = position(c, "set_block_size");
	ASSERT_GE(set, 0);
	EXPECT_GT(set, position(c, "set_owner"));
	EXPECT_LT(set, position(c, "attach_ring(0)"));
}

TEST(Session, no_block_size_call_by_default)
{
	SessionHarness h;
	h.bring_up(0);
	EXPECT_EQ(position(h.st.calls, "set_block_size"), -1);
}

TEST(Session, no_busyloop_call_without_poll_us)
{
	SessionHarness h;
	h.bring_up(0);
	EXPECT_EQ(h.st.rings[0].busyloop_us, 0u);
	EXPECT_EQ(std::count(h.st.calls.begin(), h.st.calls.end(), "set_vring_busyloop_timeout(0)"), 0);
}

TEST(Session, ring_does_not_start_without_kick)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	h.send(mem_table());
	h.send(state(Request::set_vring_num, 0, 256));
	h.send(addr(0, frontend_base, frontend_base + 0x1000, frontend_base + 0x2000));
	EXPECT_FALSE(h.st.rings[0].attached);
}

TEST(Session, ring_addresses_outside_the_memory_table_are_refused)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	h.send(mem_table());
	h.send(state(Request::set_vring_num, 0, 256));
	EXPECT_THROW(h.send(addr(0, 0x1000, frontend_base, frontend_base)), bridge::TranslationError);
	// The used ring running off the end of guest RAM.
	uint64_t end = frontend_base + ram_size;
	EXPECT_THROW(h.send(addr(0, frontend_base, frontend_base, end - 16)),
		     bridge::TranslationError);
}

TEST(Session, vring_address_before_memory_table_is_refused)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(addr(0, frontend_base, frontend_base, frontend_base)), SessionError);
}

TEST(Session, vring_index_beyond_the_disk_s_queues_is_refused)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(state(Request::set_vring_num, 2, 256)), SessionError);
	EXPECT_THROW(h.send(file(Request::set_vring_call, 200)), SessionError);
}

TEST(Session, ring_size_must_be_a_power_of_two)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(state(Request::set_vring_num, 0, 100)), SessionError);
	EXPECT_THROW(h.send(state(Request::set_vring_num, 0, 0)), SessionError);
	EXPECT_THROW(h.send(state(Request::set_vring_num, 0, 65536)), SessionError);
}

TEST(Session, kick_without_an_fd_is_refused)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	EXPECT_THROW(h.send(file(Request::set_vring_kick, 0, false)), SessionError);
}

TEST(Session, get_vring_base_detaches_before_reading_the_base)
{
	SessionHarness h;
	h.bring_up(0);
	h.st.rings[0].base = 77;
	h.st.calls.clear();
	auto r = h.send(state(Request::get_vring_base, 0, 0));
	ASSERT_TRUE(r);
	VringState s;
	std::memcpy(&s, r->payload.data(), sizeof(s));
	EXPECT_EQ(s.index, 0u);
	EXPECT_EQ(s.num, 77u);
	long d = position(h.st.calls, "detach_ring(0)"), g = position(h.st.calls, "get_vring_base(0)");
	ASSERT_GE(d, 0);
	EXPECT_LT(d, g);
	EXPECT_FALSE(h.st.rings[0].attached);
	EXPECT_FALSE(h.s->ring_started(0));
}

TEST(Session, ring_restarts_on_the_next_kick_after_get_vring_base)
{
	SessionHarness h;
	h.bring_up(0);
	h.send(state(Request::get_vring_base, 0, 0));
	h.send(state(Request::set_vring_base, 0, 5));
	EXPECT_EQ(h.st.rings[0].base, 5u);
	h.send(file(Request::set_vring_kick, 0));
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(Session, vring_enable_0_stops_and_1_restarts)
{
	SessionHarness h;
	h.bring_up(1);
	h.send(state(Request::set_vring_enable, 1, 0));
	EXPECT_FALSE(h.st.rings[1].attached);
	h.send(state(Request::set_vring_enable, 1, 1));
	EXPECT_TRUE(h.st.rings[1].attached);
	EXPECT_THROW(h.send(state(Request::set_vring_enable, 1, 2)), SessionError);
}

TEST(Session, resizing_a_running_ring_is_refused)
{
	SessionHarness h;
	h.bring_up(0);
	EXPECT_THROW(h.send(state(Request::set_vring_num, 0, 128)), SessionError);
	EXPECT_THROW(h.send(state(Request::set_vring_base, 0, 1)), SessionError);
}

TEST(Session, new_memory_table_restarts_running_rings_at_new_addresses)
{
	SessionHarness h;
	h.bring_up(0);
	uint64_t old = h.st.rings[0].addr.desc;
	h.st.calls.clear();
	h.send(mem_table());
	EXPECT_TRUE(h.st.rings[0].attached);
	long d = position(h.st.calls, "detach_ring(0)"), m = position(h.st.calls, "set_mem_table"),
	     a = position(h.st.calls, "attach_ring(0)");
	EXPECT_TRUE(d >= 0 && d < m && m < a);
	EXPECT_EQ(h.st.rings[0].addr.desc, h.st.mem[0].userspace_addr + 0x10000);
	(void)old;
}

TEST(Session, reply_ack_acknowledges_requests_that_ask)
{
	SessionHarness h;
	h.send(u64(Request::set_protocol_features, 1ull << pf_reply_ack));
	Message m = make(Request::set_owner, {}, flag_version | flag_need_reply);
	auto r = h.send(std::move(m));
	ASSERT_TRUE(r);
	EXPECT_EQ(reply_u64(r), 0u);
	EXPECT_TRUE(r->flags & flag_reply);
	// Without asking, no reply.
	EXPECT_FALSE(h.send(state(Request::set_vring_num, 0, 256)));
}

TEST(Session, no_ack_unless_reply_ack_was_negotiated)
{
	SessionHarness h;
	EXPECT_FALSE(h.send(make(Request::set_owner, {}, flag_version | flag_need_reply)));
}

TEST(Session, get_config_answers_any_offset_and_size)
{
	SessionHarness h;
	auto r = h.send(config(Request::get_config, offsetof(virtio_blk_config, num_queues), { 0, 0 }));
	ASSERT_TRUE(r);
	ASSERT_EQ(r->payload.size(), 14u);
	EXPECT_EQ(r->payload[12], 2);
	auto all = h.send(config(Request::get_config, 0, std::vector<uint8_t>(60)));
	uint64_t cap;
	std::memcpy(&cap, all->payload.data() + 12, 8);
	EXPECT_EQ(cap, (1ull << 30) / 512);
	EXPECT_THROW(h.send(config(Request::get_config, 250, std::vector<uint8_t>(10))),
		     ProtocolError);
}

namespace {

constexpr uint64_t f_config_wce = 1ull << VIRTIO_BLK_F_CONFIG_WCE;
constexpr uint64_t f_flush = 1ull << VIRTIO_BLK_F_FLUSH;

// The config space's writeback byte as the frontend reads it.
int read_wce(SessionHarness &h)
{
	auto r = h.send(config(Request::get_config, offsetof(virtio_blk_config, wce), { 9 }));
	return r && r->payload.size() == 13 ? r->payload[12] : -1;
}

std::optional<Message> write_wce(SessionHarness &h, std::vector<uint8_t> v,
				 uint32_t offset = offsetof(virtio_blk_config, wce))
{
	return h.send(config(Request::set_config, offset, std::move(v)));
}

void own_with(SessionHarness &h, uint64_t features)
{
	h.send(make(Request::set_owner));
	h.send(u64(Request::set_features, features));
}

} // namespace

TEST(Session, config_wce_is_offered_with_flush)
{
	SessionHarness h;
	EXPECT_TRUE(h.ctx.offered_features & f_config_wce);
	EXPECT_TRUE(h.ctx.offered_features & f_flush);
}

TEST(Session, set_config_wce_switches_the_kernel_device_both_ways)
{
	SessionHarness h;
	h.bring_up(0);
	// SET_FEATURES with CONFIG_WCE applied the start value (the backend
	// has a volatile cache: write-back).
	EXPECT_GE(position(h.st.calls, "set_write_cache"), 0);
	EXPECT_TRUE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 1);
	write_wce(h, { 0 });
	EXPECT_FALSE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 0);
	write_wce(h, { 1 });
	EXPECT_TRUE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 1);
	// The ring kept running throughout.
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(Session, set_config_rejects_other_fields_sizes_and_values_mode_unchanged)
{
	SessionHarness h;
	own_with(h, h.ctx.offered_features);
	write_wce(h, { 0 });
	auto calls = std::count(h.st.calls.begin(), h.st.calls.end(), "set_write_cache");
	EXPECT_THROW(write_wce(h, std::vector<uint8_t>(8), 0), Rejected);
	EXPECT_THROW(write_wce(h, { 1, 0 }), Rejected);
	EXPECT_THROW(write_wce(h, { 1 }, offsetof(virtio_blk_config, wce) + 1), Rejected);
	EXPECT_THROW(write_wce(h, { 1 }, offsetof(virtio_blk_config, num_queues)), Rejected);
	EXPECT_THROW(write_wce(h, { 2 }), Rejected);
	EXPECT_THROW(write_wce(h, { 0xff }), Rejected);
	EXPECT_EQ(std::count(h.st.calls.begin(), h.st.calls.end(), "set_write_cache"), calls);
	EXPECT_FALSE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 0);
}

TEST(Session, set_config_nack_keeps_the_connection)
{
	SessionHarness h;
	h.send(u64(Request::set_protocol_features, 1ull << pf_reply_ack | 1ull << pf_config));
	own_with(h, h.ctx.offered_features);
	Message m = config(Request::set_config, offsetof(virtio_blk_config, wce), { 7 });
	m.flags |= flag_need_reply;
	EXPECT_TRUE(h.s->can_nack(m));
	EXPECT_THROW(h.s->handle(m), Rejected);
	EXPECT_TRUE(h.st.writeback);
}

TEST(Session, without_config_wce_the_kernel_default_stands_and_wce_is_read_only)
{
	SessionHarness h;
	own_with(h, h.ctx.offered_features & ~f_config_wce);
	EXPECT_EQ(position(h.st.calls, "set_write_cache"), -1);
	EXPECT_THROW(write_wce(h, { 0 }), Rejected);
	EXPECT_EQ(position(h.st.calls, "set_write_cache"), -1);
	EXPECT_TRUE(h.st.writeback);
}

TEST(Session, before_set_features_wce_is_not_writable)
{
	SessionHarness h;
	EXPECT_THROW(write_wce(h, { 0 }), Rejected);
	EXPECT_EQ(position(h.st.calls, "set_write_cache"), -1);
}

TEST(Session, config_wce_without_flush_reads_0_and_the_device_is_write_through)
{
	SessionHarness h;
	own_with(h, h.ctx.offered_features & ~f_flush);
	EXPECT_EQ(read_wce(h), 0);
	EXPECT_FALSE(h.st.writeback);
	// Asking for write-back changes nothing the guest could not flush.
	write_wce(h, { 1 });
	EXPECT_EQ(read_wce(h), 0);
}

TEST(Session, backend_without_volatile_cache_starts_write_through)
{
	SessionHarness h;
	h.ctx.info.write_cache = false;
	h.s = std::make_unique<bridge::Session>(h.ctx, fake::factory(h.st));
	EXPECT_EQ(read_wce(h), 0);
	own_with(h, h.ctx.offered_features);
	EXPECT_FALSE(h.st.writeback);
	write_wce(h, { 1 });
	EXPECT_TRUE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 1);
}

TEST(Session, reset_device_restores_the_start_value_of_wce)
{
	SessionHarness h;
	own_with(h, h.ctx.offered_features);
	write_wce(h, { 0 });
	h.send(make(Request::reset_device));
	// A fresh kernel device (its default) and the backend's value again.
	EXPECT_TRUE(h.st.writeback);
	EXPECT_EQ(read_wce(h), 1);
}

TEST(Session, reset_device_stops_rings_and_reopens_the_device_keeping_the_owner)
{
	SessionHarness h;
	h.bring_up(0);
	int opened = h.st.opened;
	h.send(make(Request::reset_device));
	EXPECT_EQ(h.st.opened, opened + 1);
	EXPECT_TRUE(h.s->owned());
	EXPECT_TRUE(h.st.owned);
	EXPECT_FALSE(h.s->ring_started(0));
	EXPECT_EQ(h.s->acked_features(), 0u);
	// The frontend sets it up again from scratch (LOG_ALL: log_test.cpp).
	h.send(u64(Request::set_features, h.ctx.offered_features & ~(1ull << VHOST_F_LOG_ALL)));
	h.send(mem_table());
	h.bring_up(0, false);
	EXPECT_TRUE(h.st.rings[0].attached);
}

TEST(Session, reset_owner_drops_ownership)
{
	SessionHarness h;
	h.bring_up(0);
	h.send(make(Request::reset_owner));
	EXPECT_FALSE(h.s->owned());
	EXPECT_NO_THROW(h.send(make(Request::set_owner)));
}

TEST(Session, destroying_the_session_detaches_running_rings)
{
	SessionHarness h;
	h.bring_up(0);
	h.bring_up(1, false);
	h.st.calls.clear();
	h.s.reset();
	EXPECT_GE(position(h.st.calls, "detach_ring(0)"), 0);
	EXPECT_GE(position(h.st.calls, "detach_ring(1)"), 0);
}

TEST(Session, unsupported_requests_end_the_session)
{
	SessionHarness h;
	h.send(make(Request::set_owner));
	// SET_LOG_BASE needs LOG_SHMFD negotiated (log_test.cpp).
	EXPECT_THROW(h.send(u64(Request::set_log_base, 0)), SessionError);
	EXPECT_THROW(h.send(make(Request::get_inflight_fd)), SessionError);
	Message m = make(Request::none);
	m.request = 1234;
	EXPECT_THROW(h.send(std::move(m)), SessionError);
}

TEST(Session, kernel_without_worker_ioctls_still_serves)
{
	fake::State pre;
	SessionHarness h(2, bridge::WorkerPlan::per_vq(2));
	h.st.fail["new_worker"] = ENOTTY;
	EXPECT_NO_THROW(h.send(make(Request::set_owner)));
	EXPECT_TRUE(h.s->owned());
}

// QEMU's vhost-user-blk-pci sets up num-queues rings (one per vCPU by
// default) and refuses to start if GET_QUEUE_NUM is lower: the bridge
// advertises its maximum and serves the rings the frontend sets up.
TEST(Session, a_frontend_with_fewer_queues_than_the_maximum_gets_them_served)
{
	SessionHarness h(8, bridge::WorkerPlan::single(8));
	EXPECT_EQ(reply_u64(h.send(make(Request::get_queue_num))), 8u);
	h.bring_up(0);
	h.bring_up(1, false);
	h.bring_up(2, false);
	for (unsigned i = 0; i < 8; i++) {
		EXPECT_EQ(h.s->ring_started(i), i < 3) << "vq " << i;
		EXPECT_EQ(h.st.rings[i].attached, i < 3) << "vq " << i;
	}
	// A frontend asking for more than the maximum is refused.
	EXPECT_THROW(h.send(state(Request::set_vring_num, 8, 256)), bridge::SessionError);
}
