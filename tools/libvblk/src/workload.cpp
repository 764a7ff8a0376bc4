// SPDX-License-Identifier: GPL-2.0
#include "vblk/workload.hpp"
#include "vblk/error.hpp"
#include "vblk/fd.hpp"

#include <endian.h>
#include <linux/virtio_blk.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <random>
#include <thread>
#include <unordered_map>
#include <unistd.h>
#include <vector>

namespace vblk {

std::string_view to_string(Workload w) noexcept
{
	switch (w) {
	case Workload::randread:
		return "randread";
	case Workload::randwrite:
		return "randwrite";
	case Workload::verify:
		return "verify";
	}
	return "?";
}

Workload parse_workload(std::string_view name)
{
	for (Workload w : { Workload::randread, Workload::randwrite, Workload::verify })
		if (name == to_string(w))
			return w;
	throw std::invalid_argument("unknown workload '" + std::string(name) + "'");
}

void fill_pattern(std::span<uint8_t> buf, uint64_t first_sector, uint64_t seed)
{
	for (size_t off = 0; off < buf.size(); off += 8) {
		uint64_t sector = first_sector + off / sector_size;
		uint64_t x = (sector * 0x9e3779b97f4a7c15ULL) ^ (seed + 0x632be59bd9b4e019ULL) ^
			     ((off % sector_size) * 0xbf58476d1ce4e5b9ULL);
		x ^= x >> 31;
		x *= 0x94d049bb133111ebULL;
		x ^= x >> 29;
		std::memcpy(&buf[off], &x, std::min<size_t>(8, buf.size() - off));
	}
}

namespace {

using clock = std::chrono::steady_clock;

// Waits until any ring's call eventfd fires (or `ms` passes).
void wait_any(BlkDriver &drv, int ms)
{
	std::vector<pollfd> fds;
	for (unsigned q = 0; q < drv.num_queues(); q++) {
		if (drv.queue(q).has_used())
			return;
		fds.push_back({ drv.queue(q).call_fd().fd(), POLLIN, 0 });
	}
	if (::poll(fds.data(), fds.size(), ms) > 0)
		for (unsigned q = 0; q < drv.num_queues(); q++)
			drv.queue(q).call_fd().consume();
}

// Keeps `depth` requests in flight on every ring until `next` runs dry.
// `next(q, spec, tag)` fills the next request for ring q (and a tag the
// caller wants back) and returns false when no more should be submitted;
// `done(completion, tag)` sees every completion.
template <typename Next, typename Done>
void pump(BlkDriver &drv, unsigned depth, Next next, Done done)
{
	const unsigned nq = drv.num_queues();
	std::vector<bool> exhausted(nq, false);
	std::unordered_map<uint64_t, uint64_t> tags; // token -> tag
	for (;;) {
		bool busy = false;
		for (unsigned q = 0; q < nq; q++) {
			bool added = false;
			while (!exhausted[q] && drv.pending(q) < depth) {
				RequestSpec spec;
				uint64_t tag = 0;
				if (!next(q, spec, tag)) {
					exhausted[q] = true;
					break;
				}
				if (!drv.can_submit(q, spec))
					throw QueueFull("ring too small for the queue depth");
				tags.emplace(drv.submit(q, spec, false), tag);
				added = true;
			}
			if (added)
				drv.kick(q);
			busy |= drv.pending(q) > 0;
		}
		bool got = false;
		for (unsigned q = 0; q < nq; q++)
			for (auto &c : drv.poll(q, 0, std::chrono::milliseconds(0))) {
				auto it = tags.find(c.token);
				done(c, it->second);
				tags.erase(it);
				got = true;
			}
		if (!busy && !got)
			return;
		if (!got)
			wait_any(drv, 100);
	}
}

struct Region {
	uint64_t first_sector = 0;
	uint64_t blocks = 0;
	uint32_t block_sectors = 0;
};

Region region_of(uint64_t backend_bytes, const WorkloadOptions &o)
{
	if (o.block_size == 0 || o.block_size % sector_size)
		throw std::invalid_argument("block size must be a multiple of 512");
	uint64_t bytes = o.region_bytes ? std::min(o.region_bytes, backend_bytes) : backend_bytes;
	Region r{ 0, bytes / o.block_size, o.block_size / sector_size };
	if (r.blocks == 0)
		throw std::invalid_argument("region smaller than one block");
	return r;
}

void note_error(WorkloadResult &res, const std::string &what)
{
	if (res.first_error.empty())
		res.first_error = what;
}

} // namespace

LatencySummary summarize_latency(std::vector<uint32_t> &ns)
{
	LatencySummary l;
	if (ns.empty())
		return l;
	auto at = [&ns](double p) {
		size_t i = std::min(ns.size() - 1, static_cast<size_t>(p * ns.size()));
		std::nth_element(ns.begin(), ns.begin() + i, ns.end());
		return ns[i] / 1000.0;
	};
	double sum = 0;
	for (uint32_t v : ns)
		sum += v;
	l.mean_us = sum / ns.size() / 1000.0;
	l.p50_us = at(0.50);
	l.p99_us = at(0.99);
	l.max_us = *std::max_element(ns.begin(), ns.end()) / 1000.0;
	l.samples = ns.size();
	return l;
}

namespace {

// One ring's share of a random workload: `depth` preallocated request
// slots (header, data, status in guest memory), no allocation per request,
// one kick per batch, completions timed.  Runs in a thread of its own when
// there are several rings.
struct RingLoad {
	struct Slot {
		GuestBuffer meta; // virtio_blk_outhdr at 0, status byte at 16
		GuestBuffer data;
		clock::time_point submitted;
		bool flushing = false; // the slot's FLUSH after its write is out
	};

	RingLoad(BlkDriver &drv, unsigned q, const Region &reg, const WorkloadOptions &o)
		: vq(drv.queue(q)), q(q), reg(reg), o(o), rng(o.seed * 7919 + q),
		  pick(0, reg.blocks - 1)
	{
		write = o.kind == Workload::randwrite;
		if (SplitVirtqueue::descriptors_needed(3, false) * o.depth > vq.size())
			throw QueueFull("ring of " + std::to_string(vq.size()) +
					" too small for queue depth " + std::to_string(o.depth));
		for (unsigned i = 0; i < o.depth; i++) {
			Slot s{ drv.memory().allocate(64, 64), drv.memory().allocate(o.block_size, 4096),
				{}, false };
			if (write)
				fill_pattern(s.data.bytes(), 0, o.seed + i);
			slots.push_back(std::move(s));
		}
		latencies.reserve(1 << 16);
	}

	void submit(unsigned slot, uint64_t sector)
	{
		Slot &s = slots[slot];
		virtio_blk_outhdr h{};
		h.type = htole32(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
		h.sector = htole64(sector);
		std::memcpy(s.meta.data(), &h, sizeof(h));
		s.meta.data()[16] = status_unwritten;
		const Segment segs[3] = { { s.meta.gpa(), sizeof(h), false },
					  { s.data.gpa(), o.block_size, !write },
					  { s.meta.gpa() + 16, 1, true } };
		s.submitted = clock::now();
		if (!vq.add_chain(segs, slot))
			throw QueueFull("queue " + std::to_string(q) + " full");
	}

	// The FLUSH that follows the slot's write (flush_after_write).
	void submit_flush(unsigned slot)
	{
		Slot &s = slots[slot];
		virtio_blk_outhdr h{};
		h.type = htole32(VIRTIO_BLK_T_FLUSH);
		std::memcpy(s.meta.data(), &h, sizeof(h));
		s.meta.data()[16] = status_unwritten;
		const Segment segs[2] = { { s.meta.gpa(), sizeof(h), false },
					  { s.meta.gpa() + 16, 1, true } };
		s.flushing = true;
		if (!vq.add_chain(segs, slot))
			throw QueueFull("queue " + std::to_string(q) + " full");
	}

	// Polls the used ring for up to poll_us; true when an entry came.
	bool spin_for_used() const
	{
		const auto end = clock::now() + std::chrono::microseconds(o.poll_us);
		do {
			if (vq.has_used())
				return true;
		} while (clock::now() < end);
		return false;
	}

	bool more(clock::time_point now, clock::time_point deadline) const
	{
		return o.ops ? submitted < quota : now < deadline;
	}

	void run(clock::time_point deadline)
	{
		std::vector<unsigned> free_slots;
		for (unsigned i = 0; i < o.depth; i++)
			free_slots.push_back(i);
		unsigned outstanding = 0;
		for (;;) {
			auto now = clock::now();
			bool added = false;
			while (!free_slots.empty() && more(now, deadline)) {
				submit(free_slots.back(), reg.first_sector + pick(rng) * reg.block_sectors);
				free_slots.pop_back();
				submitted++;
				outstanding++;
				added = true;
			}
			if (added)
				vq.kick();
			if (!outstanding)
				return;
			bool got = false, flushes = false;
			while (auto u = vq.get_used()) {
				auto t = clock::now();
				unsigned slot = static_cast<unsigned>(u->token);
				Slot &s = slots[slot];
				got = true;
				if (write && o.flush_after_write && !s.flushing &&
				    s.meta.data()[16] == VIRTIO_BLK_S_OK) {
					submit_flush(slot);
					flushes = true;
					continue;
				}
				s.flushing = false;
				latencies.push_back(static_cast<uint32_t>(
					std::min<int64_t>(UINT32_MAX,
							  std::chrono::duration_cast<std::chrono::nanoseconds>(
								  t - s.submitted).count())));
				uint8_t status = s.meta.data()[16];
				res.ops++;
				if (status != VIRTIO_BLK_S_OK) {
					res.errors++;
					note_error(res, "status " + std::to_string(status) + " on queue " +
								std::to_string(q));
				} else {
					res.bytes += o.block_size;
				}
				free_slots.push_back(slot);
				outstanding--;
			}
			if (flushes)
				vq.kick();
			if (!got && o.poll_us && spin_for_used())
				continue;
			if (!got && !vq.wait_used(std::chrono::milliseconds(o.timeout_ms)))
				throw TimeoutError("queue " + std::to_string(q) + ": " +
						   std::to_string(outstanding) +
						   " requests without completion for " +
						   std::to_string(o.timeout_ms) + " ms");
		}
	}

	SplitVirtqueue &vq;
	unsigned q;
	Region reg;
	const WorkloadOptions &o;
	std::mt19937_64 rng;
	std::uniform_int_distribution<uint64_t> pick;
	bool write;
	std::vector<Slot> slots;
	uint64_t quota = 0, submitted = 0;
	WorkloadResult res;
	std::vector<uint32_t> latencies; // ns
	std::exception_ptr error;
};

WorkloadResult run_random(BlkDriver &drv, const Region &reg, const WorkloadOptions &o)
{
	const unsigned nq = drv.num_queues();
	std::vector<std::unique_ptr<RingLoad>> loads;
	for (unsigned q = 0; q < nq; q++) {
		loads.push_back(std::make_unique<RingLoad>(drv, q, reg, o));
		loads.back()->quota = o.ops / nq + (q < o.ops % nq ? 1 : 0);
	}
	const auto start = clock::now();
	const auto deadline = start + o.duration;
	if (nq == 1) {
		loads[0]->run(deadline);
	} else {
		std::vector<std::thread> threads;
		for (auto &l : loads)
			threads.emplace_back([&l, deadline] {
				try {
					l->run(deadline);
				} catch (...) {
					l->error = std::current_exception();
				}
			});
		for (auto &t : threads)
			t.join();
		for (auto &l : loads)
			if (l->error)
				std::rethrow_exception(l->error);
	}
	WorkloadResult res;
	res.seconds = std::chrono::duration<double>(clock::now() - start).count();
	std::vector<uint32_t> lat;
	for (auto &l : loads) {
		res.ops += l->res.ops;
		res.bytes += l->res.bytes;
		res.errors += l->res.errors;
		if (res.first_error.empty())
			res.first_error = l->res.first_error;
		lat.insert(lat.end(), l->latencies.begin(), l->latencies.end());
	}
	res.latency = summarize_latency(lat);
	return res;
}

void compare_block(WorkloadResult &res, std::span<const uint8_t> got, uint64_t sector,
		   const WorkloadOptions &o, bool on_disk)
{
	std::vector<uint8_t> want(o.block_size);
	fill_pattern(want, sector, o.seed);
	if (got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin())) {
		res.verified_bytes += got.size();
		(on_disk ? res.verified_disk_bytes : res.verified_module_bytes) += got.size();
		return;
	}
	const char *where = on_disk ? "on disk" : "through vhost-blk";
	res.mismatches++;
	note_error(res, std::string("mismatch ") + where + " at sector " + std::to_string(sector));
}

struct FreeDeleter {
	void operator()(uint8_t *p) const { std::free(p); }
};

// Reads the region straight from the disk with O_DIRECT and compares.
void verify_on_disk(WorkloadResult &res, const std::string &path, const Region &reg,
		    const WorkloadOptions &o)
{
	UniqueFd fd = UniqueFd::open(path, O_RDONLY | O_DIRECT);
	const size_t chunk_blocks = std::max<size_t>(1, (size_t{ 1 } << 20) / o.block_size);
	const size_t chunk = chunk_blocks * o.block_size;
	void *raw = nullptr;
	if (::posix_memalign(&raw, 4096, chunk))
		throw std::bad_alloc();
	std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t *>(raw));
	for (uint64_t block = 0; block < reg.blocks; block += chunk_blocks) {
		size_t n = std::min<uint64_t>(chunk_blocks, reg.blocks - block);
		uint64_t sector = reg.first_sector + block * reg.block_sectors;
		size_t len = n * o.block_size;
		ssize_t got = ::pread(fd.get(), buf.get(), len, static_cast<off_t>(sector * sector_size));
		if (got != static_cast<ssize_t>(len))
			throw SysError(got < 0 ? errno : EIO, "pread O_DIRECT " + path);
		for (size_t i = 0; i < n; i++)
			compare_block(res, { buf.get() + i * o.block_size, o.block_size },
				      sector + i * reg.block_sectors, o, true);
	}
}

WorkloadResult run_verify(BlkDriver &drv, const std::string &backend_path, const Region &reg0,
			  const WorkloadOptions &o)
{
	WorkloadResult res;
	Region reg = reg0;
	if (o.ops)
		reg.blocks = std::min(reg.blocks, o.ops);
	const auto start = clock::now();

	// Write the pattern through the module, then read it back through it.
	for (bool write : { true, false }) {
		uint64_t block = 0;
		pump(
			drv, o.depth,
			[&](unsigned, RequestSpec &spec, uint64_t &sector) {
				if (block >= reg.blocks)
					return false;
				sector = reg.first_sector + block++ * reg.block_sectors;
				if (write) {
					std::vector<uint8_t> data(o.block_size);
					fill_pattern(data, sector, o.seed);
					spec = BlkDriver::write_spec(sector, data, o.io);
				} else {
					spec = BlkDriver::read_spec(sector, o.block_size, o.io);
				}
				return true;
			},
			[&](const Completion &c, uint64_t sector) {
				res.ops++;
				if (c.status != VIRTIO_BLK_S_OK) {
					res.errors++;
					note_error(res, "status " + std::to_string(c.status) +
								" at sector " + std::to_string(sector));
					return;
				}
				res.bytes += o.block_size;
				if (!write)
					compare_block(res, c.data, sector, o, false);
			});
	}
	res.seconds = std::chrono::duration<double>(clock::now() - start).count();
	// And what really reached the disk.
	verify_on_disk(res, backend_path, reg, o);
	return res;
}

} // namespace

WorkloadResult run_workload(BlkDriver &drv, const std::string &backend_path,
			    uint64_t backend_bytes, const WorkloadOptions &o)
{
	if (o.depth == 0)
		throw std::invalid_argument("queue depth must be at least 1");
	if (!o.ops && o.duration.count() == 0 && o.kind != Workload::verify)
		throw std::invalid_argument("give a number of ops or a duration");
	Region reg = region_of(backend_bytes, o);
	if (o.kind == Workload::verify)
		return run_verify(drv, backend_path, reg, o);
	return run_random(drv, reg, o);
}

} // namespace vblk
