// SPDX-License-Identifier: GPL-2.0
// Building vhost-user requests the way a frontend (QEMU) sends them, and
// guest memory for them to point into.
#pragma once

#include "bridge/session.hpp"
#include "fake_device.hpp"

#include <algorithm>
#include <cstring>
#include <linux/vhost.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

namespace harness {

using namespace vhost_user;

constexpr uint64_t frontend_base = 0x7f1200000000;	// the frontend's VA of guest RAM
constexpr uint64_t ram_size = 1 << 20;

inline Message make(Request r, std::vector<uint8_t> payload = {}, uint32_t flags = flag_version)
{
	Message m;
	m.request = static_cast<uint32_t>(r);
	m.flags = flags;
	m.payload = std::move(payload);
	return m;
}

template <typename T> std::vector<uint8_t> bytes(const T &v)
{
	std::vector<uint8_t> b(sizeof(v));
	std::memcpy(b.data(), &v, sizeof(v));
	return b;
}

inline Message u64(Request r, uint64_t v) { return make(r, bytes(v)); }
inline Message state(Request r, uint32_t index, uint32_t num)
{
	return make(r, bytes(VringState{ index, num }));
}
inline Message addr(uint32_t index, uint64_t desc, uint64_t avail, uint64_t used)
{
	return make(Request::set_vring_addr, bytes(VringAddr{ index, 0, desc, used, avail, 0 }));
}
inline Message file(Request r, uint32_t index, bool with_fd = true)
{
	Message m = u64(r, index | (with_fd ? 0 : vring_nofd_mask));
	if (with_fd)
		m.fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
	return m;
}
// One region: guest RAM at GPA 0, frontend VA `base`, backed by a memfd.
inline Message mem_table(uint64_t base = frontend_base, uint64_t size = ram_size)
{
	MemoryRegion r{ 0, size, base, 0 };
	std::vector<uint8_t> p(8 + sizeof(r));
	uint32_t n = 1;
	std::memcpy(p.data(), &n, 4);
	std::memcpy(p.data() + 8, &r, sizeof(r));
	Message m = make(Request::set_mem_table, p);
	int fd = ::memfd_create("guest-ram", MFD_CLOEXEC);
	if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
		abort();
	m.fds.emplace_back(fd);
	return m;
}
inline Message config(Request r, uint32_t offset, std::vector<uint8_t> data)
{
	std::vector<uint8_t> p(12);
	ConfigHeader h{ offset, static_cast<uint32_t>(data.size()), 0 };
	std::memcpy(p.data(), &h, 12);
	p.insert(p.end(), data.begin(), data.end());
	return make(r, p);
}
inline uint64_t reply_u64(const std::optional<Message> &m)
{
	uint64_t v = ~0ull;
	if (m && m->payload.size() == 8)
		std::memcpy(&v, m->payload.data(), 8);
	return v;
}

// A session on a 2-queue, 1 GiB disk over a fake device.
struct SessionHarness {
	fake::State st;
	bridge::WorkerPlan plan;
	bridge::DiskContext ctx;
	std::vector<std::string> log;
	std::unique_ptr<bridge::Session> s;

	explicit SessionHarness(unsigned queues = 2,
				bridge::WorkerPlan p = bridge::WorkerPlan::single(2))
		: plan(std::move(p))
	{
		ctx.backend_fd = 42;
		ctx.info.size_bytes = 1ull << 30;
		ctx.params.queues = queues;
		ctx.serial = "serial-1";
		ctx.offered_features = bridge::offered_features(st.features, ctx.info, ctx.params);
		ctx.plan = &plan;
		ctx.log = [this](const std::string &m) { log.push_back(m); };
		s = std::make_unique<bridge::Session>(ctx, fake::factory(st));
	}

	std::optional<Message> send(Message m) { return s->handle(m); }

	// What QEMU does up to a running ring `index`.
	void bring_up(unsigned index, bool owner = true)
	{
		if (owner) {
			send(make(Request::set_owner));
			// QEMU acks LOG_ALL only while it migrates.
			send(u64(Request::set_features,
				 ctx.offered_features & ~(1ull << VHOST_F_LOG_ALL)));
			send(mem_table());
		}
		send(state(Request::set_vring_num, index, 256));
		send(state(Request::set_vring_base, index, 0));
		uint64_t ring = frontend_base + 0x10000 * (index + 1);
		send(addr(index, ring, ring + 0x1000, ring + 0x2000));
		send(file(Request::set_vring_kick, index));
		send(file(Request::set_vring_call, index));
	}
};

// The position of call `c` in the calls the devices received (-1: none).
inline long position(const std::vector<std::string> &calls, const std::string &c)
{
	auto it = std::find(calls.begin(), calls.end(), c);
	return it == calls.end() ? -1 : it - calls.begin();
}

} // namespace harness
