// SPDX-License-Identifier: GPL-2.0
// A served disk over a real socketpair: bad frontends are dropped, the
// device is reset, the next frontend gets a clean one; live control ops.
#include "bridge/disk.hpp"
#include "harness.hpp"

#include <vblk/cpu_list.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

using namespace harness;

namespace {

struct DiskHarness {
	fake::State st;
	std::vector<std::string> log;
	std::unique_ptr<bridge::Disk> disk;
	int peer = -1;

	DiskHarness()
	{
		device::BackendInfo info;
		info.size_bytes = 1ull << 30;
		device::Backend be("/dev/fake", vblk::UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)),
				   info);
		bridge::DiskOptions o{ "d0", "/tmp/d0.sock", "ser", { 2, false },
				       bridge::WorkerPlan::single(2) };
		disk = std::make_unique<bridge::Disk>(o, std::move(be), st.features, fake::factory(st),
						      [this](const std::string &m) { log.push_back(m); });
	}
	~DiskHarness()
	{
		if (peer >= 0)
			::close(peer);
	}
	void connect()
	{
		int sv[2];
		ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		if (peer >= 0)
			::close(peer);
		peer = sv[0];
		disk->on_connect(vblk::UniqueFd(sv[1]));
	}
	// The frontend closes its end; the disk sees it and disconnects.
	void hang_up()
	{
		::close(peer);
		peer = -1;
		disk->on_readable();
	}
	void raw(const std::vector<uint8_t> &b, std::vector<int> fds = {})
	{
		struct iovec iov = { const_cast<uint8_t *>(b.data()), b.size() };
		struct msghdr mh = {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 8)];
		if (!fds.empty()) {
			mh.msg_control = ctrl;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
			auto *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
			std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
		}
		ASSERT_EQ(::sendmsg(peer, &mh, 0), static_cast<ssize_t>(b.size()));
	}
	// Sends `m` and lets the disk handle it.
	void send(const Message &m)
	{
		std::vector<int> fds;
		for (const auto &f : m.fds)
			fds.push_back(f.get());
		raw(serialize(m), fds);
		disk->on_readable();
	}
	std::optional<uint64_t> read_u64()
	{
		uint8_t b[20];
		if (!common_readable())
			return std::nullopt;
		if (::recv(peer, b, sizeof(b), MSG_WAITALL) != 20)
			return std::nullopt;
		uint64_t v;
		std::memcpy(&v, b + 12, 8);
		return v;
	}
	bool common_readable()
	{
		struct pollfd p = { peer, POLLIN, 0 };
		return ::poll(&p, 1, 100) == 1;
	}
	void bring_up()
	{
		send(make(Request::set_owner));
		send(u64(Request::set_features,
			 disk->offered_features() & ~(1ull << VHOST_F_LOG_ALL)));
		send(mem_table());
		send(state(Request::set_vring_num, 0, 256));
		send(addr(0, frontend_base, frontend_base + 0x1000, frontend_base + 0x2000));
		send(file(Request::set_vring_kick, 0));
	}
};

// The code of the control::RequestError `f` throws; "" when it throws none.
template <typename F> std::string refusal(F f)
{
	try {
		f();
	} catch (const control::RequestError &e) {
		return e.code();
	}
	return "";
}

} // namespace

TEST(Disk, malformed_message_closes_the_connection_and_resets_the_device)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	ASSERT_TRUE(h.st.rings[0].attached);
	h.send(make(Request::set_features, { 1, 2, 3 }));
	EXPECT_FALSE(h.disk->connected());
	EXPECT_FALSE(h.st.rings[0].attached);
	EXPECT_NE(std::find_if(h.log.begin(), h.log.end(),
			       [](auto &l) { return l.find("SET_FEATURES: payload is 3 bytes") !=
						    std::string::npos; }),
		  h.log.end());
}

TEST(Disk, vanishing_frontend_drains_its_rings_and_the_next_one_is_served)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.hang_up();
	EXPECT_FALSE(h.disk->connected());
	EXPECT_FALSE(h.st.rings[0].attached);
	int opened = h.st.opened;
	h.connect();
	EXPECT_EQ(h.st.opened, opened + 1);
	h.bring_up();
	EXPECT_TRUE(h.st.rings[0].attached);
	EXPECT_TRUE(h.disk->status().connected);
}

TEST(Disk, oversized_header_closes_the_connection)
{
	DiskHarness h;
	h.connect();
	uint32_t hdr[3] = { 5, flag_version, 1u << 20 };
	std::vector<uint8_t> b(12);
	std::memcpy(b.data(), hdr, 12);
	h.raw(b);
	h.disk->on_readable();
	EXPECT_FALSE(h.disk->connected());
}

TEST(Disk, kernel_error_is_nacked_when_reply_ack_was_negotiated)
{
	DiskHarness h;
	h.connect();
	h.send(u64(Request::set_protocol_features, 1ull << pf_reply_ack));
	h.send(make(Request::set_owner));
	h.st.fail["set_vring_num"] = EINVAL;
	Message m = state(Request::set_vring_num, 0, 256);
	m.flags |= flag_need_reply;
	h.send(m);
	EXPECT_EQ(h.read_u64(), 1u);
	EXPECT_TRUE(h.disk->connected());
}

TEST(Disk, kernel_error_without_reply_ack_ends_the_connection)
{
	DiskHarness h;
	h.connect();
	h.send(make(Request::set_owner));
	h.st.fail["set_vring_num"] = EINVAL;
	h.send(state(Request::set_vring_num, 0, 256));
	EXPECT_FALSE(h.disk->connected());
}

TEST(Disk, a_second_frontend_is_refused_while_one_is_connected)
{
	DiskHarness h;
	h.connect();
	int sv[2];
	ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	h.disk->on_connect(vblk::UniqueFd(sv[1]));
	char c;
	EXPECT_EQ(::recv(sv[0], &c, 1, 0), 0);	// closed
	::close(sv[0]);
	EXPECT_TRUE(h.disk->connected());
}

TEST(Disk, status_reports_workers_map_and_stats)
{
	DiskHarness h;
	auto idle = h.disk->status();
	EXPECT_FALSE(idle.connected);
	EXPECT_EQ(idle.vqs.size(), 2u);
	EXPECT_FALSE(idle.workers[0].kernel_id);
	h.connect();
	h.bring_up();
	auto s = h.disk->status();
	EXPECT_TRUE(s.connected);
	EXPECT_EQ(s.name, "d0");
	EXPECT_EQ(s.queues, 2u);
	ASSERT_EQ(s.workers.size(), 1u);
	EXPECT_EQ(s.workers[0].vqs, (std::vector<unsigned>{ 0, 1 }));
	EXPECT_TRUE(s.vqs[0].started);
	EXPECT_EQ(s.vqs[1].requests[0], 11u);
	EXPECT_EQ(s.vqs[0].worker, 0u);
	EXPECT_FALSE(s.vqs[1].stopped);
	EXPECT_EQ(s.vqs[1].throttled, 0u);
}

TEST(Disk, status_reports_the_write_cache_the_kernel_serves)
{
	DiskHarness h;
	EXPECT_FALSE(h.disk->status().write_cache);
	h.connect();
	h.bring_up();
	EXPECT_EQ(h.disk->status().write_cache, "write-back");
	h.st.writeback = false;
	EXPECT_EQ(h.disk->status().write_cache, "write-through");
}

TEST(Disk, status_reports_a_stopped_ring_and_its_throttled_count)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.st.rings[1].stopped = true;
	h.st.rings[1].throttled = 9;
	auto s = h.disk->status();
	EXPECT_FALSE(s.vqs[0].stopped);
	EXPECT_TRUE(s.vqs[1].stopped);
	EXPECT_EQ(s.vqs[1].throttled, 9u);
	// The last connection's counters stay, its rings' state does not.
	h.hang_up();
	s = h.disk->status();
	ASSERT_EQ(s.vqs_source, "last-connection");
	EXPECT_FALSE(s.vqs[1].stopped);
	EXPECT_EQ(s.vqs[1].throttled, 9u);
}

TEST(Disk, status_keeps_the_last_connection_s_counters_until_the_next_one)
{
	DiskHarness h;
	EXPECT_EQ(h.disk->status().vqs_source, "none");
	h.connect();
	h.bring_up();
	EXPECT_EQ(h.disk->status().vqs_source, "live");
	h.hang_up();
	auto s = h.disk->status();
	EXPECT_FALSE(s.connected);
	EXPECT_EQ(s.vqs_source, "last-connection");
	ASSERT_EQ(s.vqs.size(), 2u);
	EXPECT_EQ(s.vqs[1].requests[0], 11u);
	EXPECT_EQ(s.vqs[1].requests[1], 21u);
	EXPECT_FALSE(s.vqs[0].started);
	EXPECT_FALSE(s.vqs[0].attached);
	// The next frontend's rings replace them.
	h.connect();
	h.bring_up();
	EXPECT_EQ(h.disk->status().vqs_source, "live");
}

TEST(Disk, worker_changes_apply_live_and_bad_ones_are_refused)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.disk->set_workers(2);
	EXPECT_NE(h.st.rings[0].worker, h.st.rings[1].worker);
	h.disk->assign(1, 0);
	EXPECT_EQ(h.st.rings[0].worker, h.st.rings[1].worker);
	EXPECT_EQ(h.disk->status().policy, "custom");
	h.disk->set_policy("per-vq");
	EXPECT_NE(h.st.rings[0].worker, h.st.rings[1].worker);
	try {
		h.disk->assign(5, 0);
		FAIL();
	} catch (const control::RequestError &e) {
		EXPECT_EQ(e.code(), "invalid-argument");
	}
	EXPECT_THROW(h.disk->set_workers(3), control::RequestError);
	EXPECT_THROW(h.disk->set_policy("bogus"), control::RequestError);
}

TEST(Disk, worker_cpus_are_applied_kept_across_changes_and_shown)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.disk->set_workers(2);
	fake::StandIn w0, w1;
	h.st.tids[h.st.rings[0].worker] = w0.tid;
	h.st.tids[h.st.rings[1].worker] = w1.tid;
	const vblk::CpuSet everywhere = vblk::thread_cpus(::gettid());
	const unsigned first = *everywhere.begin();
	const std::string all = vblk::format_cpu_list(everywhere);

	h.disk->set_cpus(std::nullopt, std::to_string(first));
	EXPECT_EQ(vblk::thread_cpus(w0.tid), vblk::CpuSet{ first });
	EXPECT_EQ(vblk::thread_cpus(w1.tid), vblk::CpuSet{ first });
	h.disk->set_cpus(1u, all);
	EXPECT_EQ(vblk::thread_cpus(w1.tid), everywhere);
	auto s = h.disk->status();
	EXPECT_EQ(s.placement, "admin");
	ASSERT_EQ(s.workers.size(), 2u);
	EXPECT_EQ(s.workers[0].tid, w0.tid);
	EXPECT_EQ(s.workers[0].cpus, std::to_string(first));
	EXPECT_EQ(s.workers[1].cpus, all);

	// A new count keeps the admin's placement: worker 0 stays on `first`.
	vblk::set_thread_cpus(w0.tid, everywhere);
	h.disk->set_workers(1);
	EXPECT_EQ(vblk::thread_cpus(w0.tid), vblk::CpuSet{ first });
	EXPECT_EQ(h.disk->status().placement, "admin");

	for (const char *bad : { "", "2-1", "x", "100000" }) {
		try {
			h.disk->set_cpus(std::nullopt, bad);
			ADD_FAILURE() << bad;
		} catch (const control::RequestError &e) {
			EXPECT_EQ(e.code(), "invalid-argument") << bad;
		}
	}
	try {
		h.disk->set_cpus(1u, "0");	// one worker now
		FAIL();
	} catch (const control::RequestError &e) {
		EXPECT_EQ(e.code(), "invalid-argument");
		EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos);
	}
}

TEST(Disk, kernel_refusing_worker_cpus_keeps_the_old_placement)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.st.fail["worker_tid"] = EPERM;
	try {
		h.disk->set_cpus(std::nullopt, "0");
		FAIL();
	} catch (const control::RequestError &e) {
		EXPECT_EQ(e.code(), "device-error");
	}
	h.st.fail.clear();
	EXPECT_EQ(h.disk->status().placement, "inherited");
}

TEST(Disk, kernel_refusing_a_worker_change_keeps_the_old_plan)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.st.fail["new_worker"] = ENOMEM;
	try {
		h.disk->set_workers(2);
		FAIL();
	} catch (const control::RequestError &e) {
		EXPECT_EQ(e.code(), "device-error");
	}
	EXPECT_EQ(h.disk->status().policy, "single");
}

TEST(Disk, poll_is_applied_on_every_ring_now_and_kept_for_the_next_connection)
{
	DiskHarness h;
	h.connect();
	h.bring_up();	// ring 0 started, ring 1 not set up
	h.st.calls.clear();
	h.disk->set_poll(200);
	EXPECT_EQ(h.st.calls, (std::vector<std::string>{ "set_vring_busyloop_timeout(0)",
							 "set_vring_busyloop_timeout(1)" }));
	EXPECT_EQ(h.st.rings[0].busyloop_us, 200u);
	EXPECT_EQ(h.st.rings[1].busyloop_us, 200u);
	EXPECT_EQ(h.disk->status().poll_us, 200u);

	// A new connection opens a new device (ceiling 0): its rings get 200
	// before they start.
	h.hang_up();
	EXPECT_FALSE(h.disk->connected());
	EXPECT_EQ(h.st.rings[0].busyloop_us, 200u);	// the closed device's
	h.connect();
	EXPECT_EQ(h.st.rings[0].busyloop_us, 0u);
	h.st.calls.clear();
	h.bring_up();
	EXPECT_EQ(h.st.rings[0].busyloop_us, 200u);
	long set = position(h.st.calls, "set_vring_busyloop_timeout(0)");
	ASSERT_GE(set, 0);
	EXPECT_LT(set, position(h.st.calls, "attach_ring(0)"));
	EXPECT_EQ(h.disk->status().poll_us, 200u);
}

TEST(Disk, a_ring_restarted_after_a_poll_change_starts_with_the_new_ceiling)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.disk->set_poll(75);
	h.send(state(Request::get_vring_base, 0, 0));
	EXPECT_FALSE(h.st.rings[0].attached);
	h.st.rings[0].busyloop_us = 0;	// as if a reset had cleared it
	h.st.calls.clear();
	h.send(file(Request::set_vring_kick, 0));
	EXPECT_TRUE(h.st.rings[0].attached);
	EXPECT_EQ(h.st.rings[0].busyloop_us, 75u);
	EXPECT_LT(position(h.st.calls, "set_vring_busyloop_timeout(0)"),
		  position(h.st.calls, "attach_ring(0)"));
}

TEST(Disk, poll_0_turns_polling_off_on_every_ring)
{
	DiskHarness h;
	h.disk->set_poll(300);	// no frontend: kept for the rings to come
	EXPECT_TRUE(h.st.calls.empty());
	h.connect();
	h.bring_up();
	EXPECT_EQ(h.st.rings[0].busyloop_us, 300u);
	h.disk->set_poll(0);
	EXPECT_EQ(h.st.rings[0].busyloop_us, 0u);
	EXPECT_EQ(h.st.rings[1].busyloop_us, 0u);
	EXPECT_EQ(h.disk->status().poll_us, 0u);
}

TEST(Disk, poll_out_of_range_or_refused_by_the_kernel_keeps_the_old_ceiling)
{
	DiskHarness h;
	h.connect();
	h.bring_up();
	h.disk->set_poll(100);
	EXPECT_EQ(refusal([&] { h.disk->set_poll(bridge::max_poll_us + 1); }), "invalid-argument");
	h.st.fail["set_vring_busyloop_timeout"] = EFAULT;
	EXPECT_EQ(refusal([&] { h.disk->set_poll(5); }), "device-error");
	h.st.fail.clear();
	EXPECT_EQ(h.disk->status().poll_us, 100u);
	EXPECT_EQ(h.st.rings[0].busyloop_us, 100u);
}

TEST(Disk, status_reports_each_ring_s_polling_window_and_its_hits_and_misses)
{
	DiskHarness h;
	auto idle = h.disk->status();
	EXPECT_EQ(idle.vqs[0].poll_us, 0u);	// the module reports them: 0, not unknown
	EXPECT_EQ(idle.vqs[0].poll_hits, 0u);
	h.connect();
	h.bring_up();
	h.disk->set_poll(100);
	h.st.rings[0].poll_window = 32;
	h.st.rings[0].poll_hits = 77;
	h.st.rings[0].poll_misses = 5;
	// Ring 1 has not run since the ceiling went down to 100: the kernel
	// still reports its old window, which it will not poll for again.
	h.st.rings[1].poll_window = 400;
	auto s = h.disk->status();
	EXPECT_EQ(s.vqs[0].poll_us, 32u);
	EXPECT_EQ(s.vqs[0].poll_hits, 77u);
	EXPECT_EQ(s.vqs[0].poll_misses, 5u);
	EXPECT_EQ(s.vqs[1].poll_us, 100u);
	// The last connection's counters stay; no ring polls now.
	h.hang_up();
	s = h.disk->status();
	ASSERT_EQ(s.vqs_source, "last-connection");
	EXPECT_EQ(s.vqs[0].poll_us, 0u);
	EXPECT_EQ(s.vqs[0].poll_hits, 77u);
	EXPECT_EQ(s.vqs[0].poll_misses, 5u);
}

TEST(Disk, plan_set_while_disconnected_applies_at_set_owner)
{
	DiskHarness h;
	h.disk->set_policy("per-vq");
	h.connect();
	h.send(make(Request::set_owner));
	EXPECT_EQ(h.st.workers.size(), 2u);
	EXPECT_NE(h.st.rings[0].worker, h.st.rings[1].worker);
}

TEST(Disk, reply_to_a_frontend_that_vanished_ends_only_that_connection)
{
	DiskHarness h;
	h.connect();
	h.send(u64(Request::set_protocol_features, 1ull << pf_reply_ack | 1ull << pf_config));
	h.send(make(Request::set_owner));
	// A refused SET_CONFIG whose NACK cannot be delivered.
	Message m = config(Request::set_config, 0, std::vector<uint8_t>(8));
	m.flags |= flag_need_reply;
	h.raw(serialize(m));
	::close(h.peer);
	h.peer = -1;
	EXPECT_NO_THROW(h.disk->on_readable());
	EXPECT_FALSE(h.disk->connected());
}

// A read-only block device is served read-only, not refused: the frontend
// is offered VIRTIO_BLK_F_RO and status says read_only, without
// --read-only (Backend::open opens such a device O_RDONLY; the VM's
// read-only backend test exercises that part).
TEST(Disk, a_read_only_backend_is_served_read_only)
{
	fake::State st;
	device::BackendInfo info;
	info.size_bytes = 1ull << 30;
	info.read_only = true;
	device::Backend be("/dev/fake-ro", vblk::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
			   info);
	bridge::DiskOptions o{ "ro", "/tmp/ro.sock", "ser", { 1, false },
			       bridge::WorkerPlan::single(1) };
	bridge::Disk disk(o, std::move(be), st.features, fake::factory(st), [](const std::string &) {});
	EXPECT_TRUE(disk.status().read_only);
	EXPECT_TRUE(bridge::offered_features(st.features, info, { 1, false }) &
		    (1ull << VIRTIO_BLK_F_RO));
}
