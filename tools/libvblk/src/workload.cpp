// SPDX-License-Identifier: GPL-2.0
#include "vblk/workload.hpp"
#include "vblk/error.hpp"
#include "vblk/fd.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <random>
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

WorkloadResult run_random(BlkDriver &drv, const Region &reg, const WorkloadOptions &o)
{
	WorkloadResult res;
	std::mt19937_64 rng(o.seed);
	std::uniform_int_distribution<uint64_t> pick(0, reg.blocks - 1);
	std::vector<uint8_t> data(o.block_size);
	fill_pattern(data, 0, o.seed);
	const bool write = o.kind == Workload::randwrite;
	const auto start = clock::now();
	const auto deadline = start + o.duration;
	uint64_t submitted = 0;
	pump(
		drv, o.depth,
		[&](unsigned, RequestSpec &spec, uint64_t &) {
			if (o.ops ? submitted >= o.ops : clock::now() >= deadline)
				return false;
			uint64_t sector = reg.first_sector + pick(rng) * reg.block_sectors;
			spec = write ? BlkDriver::write_spec(sector, data, o.io)
				     : BlkDriver::read_spec(sector, o.block_size, o.io);
			submitted++;
			return true;
		},
		[&](const Completion &c, uint64_t) {
			res.ops++;
			if (c.status != VIRTIO_BLK_S_OK) {
				res.errors++;
				note_error(res, "status " + std::to_string(c.status) + " on queue " +
							std::to_string(c.queue));
			} else {
				res.bytes += o.block_size;
			}
		});
	res.seconds = std::chrono::duration<double>(clock::now() - start).count();
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
