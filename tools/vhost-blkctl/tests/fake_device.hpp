// SPDX-License-Identifier: GPL-2.0
// A device::Device that records what the bridge asks of the kernel.
#pragma once

#include "device/device.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace fake {

struct Ring {
	unsigned num = 0, base = 0;
	vblk::VringAddr addr{};
	bool addr_set = false;
	bool kick = false, call = false;
	bool attached = false;
	bool stopped = false;		// set by a test: a ring error
	uint64_t throttled = 0;
	unsigned worker = 0;
	unsigned busyloop_us = 0;
	// What ring_stats() reports of busy polling (set by a test).
	uint64_t poll_window = 0, poll_hits = 0, poll_misses = 0;
};

// Shared between the test and every device a factory made.
struct State {
	static constexpr unsigned nvqs = 16;
	uint64_t features = (1ull << 32) | (1ull << 28) | (1ull << 24) | (1ull << 29) |
			    (1ull << 27) | (1ull << 26) | (1ull << 2) | (1ull << 5) |
			    (1ull << 6) | (1ull << 9) | (1ull << 10) | (1ull << 11) | (1ull << 12) |
			    (1ull << 13) | (1ull << 14) | (1ull << 16);
	int opened = 0;
	std::vector<std::string> calls;		// every call, in order
	std::map<std::string, int> fail;	// call name -> errno to fail with
	// The device made last (the live one).
	bool owned = false;
	uint64_t acked = 0;
	std::vector<vblk::MemRegion> mem;
	Ring rings[nvqs];
	std::string serial;
	uint32_t block_size = 0;
	unsigned next_worker = 1;
	std::set<unsigned> workers;
	// What worker_tid() names a worker's thread (0 if absent).
	std::map<unsigned, pid_t> tids;
	int backend_fd = -1;
	uint64_t log_base = 0;
	bool log_fd = false;
	// At each VHOST_SET_LOG_BASE: was the log being replaced still
	// mapped (the kernel may write to it until the call returns)?
	std::vector<bool> old_log_mapped;
	bool writeback = true;		// the kernel's default
};

// Whether the page holding `addr` is mapped in this process.
inline bool mapped(uint64_t addr)
{
	uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	return ::msync(reinterpret_cast<void *>(addr & ~(page - 1)), 1, MS_ASYNC) == 0;
}

// A thread standing in for a vhost worker: it only waits to be told to end.
struct StandIn {
	std::mutex m;
	std::condition_variable cv;
	bool stop = false;
	pid_t tid = 0;
	std::thread t;

	StandIn()
	{
		std::promise<pid_t> p;
		auto f = p.get_future();
		t = std::thread([this, &p] {
			p.set_value(::gettid());
			std::unique_lock l(m);
			cv.wait(l, [this] { return stop; });
		});
		tid = f.get();
	}
	~StandIn()
	{
		{
			std::lock_guard l(m);
			stop = true;
		}
		cv.notify_one();
		t.join();
	}
};


class Device : public device::Device {
public:
	explicit Device(State &s) : s_(s)
	{
		s_.opened++;
		s_.owned = false;
		s_.acked = 0;
		s_.mem.clear();
		s_.log_base = 0;
		s_.log_fd = false;
		for (auto &r : s_.rings)
			r = Ring();
		s_.workers.clear();
		s_.writeback = true;
	}

	uint64_t get_features() override { return call("get_features"), s_.features; }
	void set_owner() override
	{
		call("set_owner");
		s_.owned = true;
		s_.workers.insert(0);
		for (auto &r : s_.rings)
			r.worker = 0;
	}
	void set_features(uint64_t f) override { call("set_features"), s_.acked = f; }
	void set_mem_table(std::span<const device::MemRegion> r) override
	{
		call("set_mem_table");
		s_.mem.assign(r.begin(), r.end());
	}
	void set_vring_num(unsigned i, unsigned n) override { call("set_vring_num", i), ring(i).num = n; }
	void set_vring_base(unsigned i, unsigned b) override { call("set_vring_base", i), ring(i).base = b; }
	unsigned get_vring_base(unsigned i) override { return call("get_vring_base", i), ring(i).base; }
	void set_vring_addr(unsigned i, const device::VringAddr &a) override
	{
		call("set_vring_addr", i);
		ring(i).addr = a;
		ring(i).addr_set = true;
	}
	void set_vring_kick(unsigned i, int fd) override { call("set_vring_kick", i), ring(i).kick = fd >= 0; }
	void set_vring_call(unsigned i, int fd) override { call("set_vring_call", i), ring(i).call = fd >= 0; }
	void set_vring_err(unsigned i, int) override { call("set_vring_err", i); }
	void set_log_base(uint64_t addr) override
	{
		call("set_log_base");
		if (s_.log_base)
			s_.old_log_mapped.push_back(mapped(s_.log_base));
		s_.log_base = addr;
	}
	void set_log_fd(int fd) override { call("set_log_fd"), s_.log_fd = fd >= 0; }
	void set_vring_busyloop_timeout(unsigned i, unsigned us) override
	{
		call("set_vring_busyloop_timeout", i);
		s_.rings[i].busyloop_us = us;
	}
	void attach_ring(unsigned i, int fd) override
	{
		call("attach_ring", i);
		ring(i).attached = true;
		ring(i).stopped = false;	// attaching sets the ring up again
		s_.backend_fd = fd;
	}
	void detach_ring(unsigned i) override { call("detach_ring", i), ring(i).attached = false; }
	void set_serial(std::string_view s) override { call("set_serial"), s_.serial = s; }
	void set_block_size(uint32_t bytes) override { call("set_block_size"), s_.block_size = bytes; }
	device::RingStats ring_stats(unsigned i) override
	{
		call("ring_stats", i);
		device::RingStats st;
		st.worker_id = ring(i).worker;
		st.attached = ring(i).attached;
		st.stopped = ring(i).stopped;
		st.throttled = ring(i).throttled;
		st.poll_us = ring(i).poll_window;
		st.poll_hits = ring(i).poll_hits;
		st.poll_misses = ring(i).poll_misses;
		st.requests[0] = 10 + i;
		st.requests[1] = 20 + i;
		st.bytes[0] = 4096 * (10 + i);
		return st;
	}
	void set_write_cache(bool wb) override { call("set_write_cache"), s_.writeback = wb; }
	bool write_cache() override
	{
		call("write_cache");
		return s_.writeback && (s_.acked & (1ull << VIRTIO_BLK_F_FLUSH));
	}
	unsigned new_worker() override
	{
		call("new_worker");
		s_.workers.insert(s_.next_worker);
		return s_.next_worker++;
	}
	void free_worker(unsigned id) override
	{
		call("free_worker");
		for (auto &r : s_.rings)
			if (r.worker == id)
				throw vblk::SysError(EBUSY, "VHOST_FREE_WORKER");
		if (!s_.workers.erase(id))
			throw vblk::SysError(ENODEV, "VHOST_FREE_WORKER");
	}
	void attach_vring_worker(unsigned i, unsigned id) override
	{
		call("attach_vring_worker", i);
		if (!s_.workers.count(id))
			throw vblk::SysError(ENODEV, "VHOST_ATTACH_VRING_WORKER");
		ring(i).worker = id;
	}
	unsigned get_vring_worker(unsigned i) override { return call("get_vring_worker", i), ring(i).worker; }
	pid_t worker_tid(unsigned id) override
	{
		call("worker_tid");
		if (!s_.workers.count(id))
			throw vblk::SysError(ENOENT, "VHOST_BLK_GET_WORKER_TID");
		for (auto &r : s_.rings)
			if (r.worker == id)
				return s_.tids.count(id) ? s_.tids.at(id) : 0;
		return 0;
	}

private:
	void call(const std::string &name, int index = -1)
	{
		s_.calls.push_back(index < 0 ? name : name + "(" + std::to_string(index) + ")");
		auto it = s_.fail.find(name);
		if (it != s_.fail.end())
			throw vblk::SysError(it->second, name);
	}
	Ring &ring(unsigned i)
	{
		if (i >= State::nvqs)
			throw vblk::SysError(ENOBUFS, "ring index");
		return s_.rings[i];
	}

	State &s_;
};

inline device::DeviceFactory factory(State &s)
{
	return [&s] { return std::make_unique<Device>(s); };
}

} // namespace fake
