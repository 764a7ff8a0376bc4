// SPDX-License-Identifier: GPL-2.0
#include "raw_uring.hpp"

#include <vblk/error.hpp>
#include <vblk/fd.hpp>

#include <liburing.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace bench {

namespace {

using clock = std::chrono::steady_clock;

struct FreeDeleter {
	void operator()(void *p) const { std::free(p); }
};

class Ring {
public:
	explicit Ring(unsigned entries)
	{
		int rc = io_uring_queue_init(entries, &ring_, 0);
		if (rc < 0)
			throw vblk::SysError(-rc, "io_uring_queue_init");
	}
	Ring(const Ring &) = delete;
	Ring &operator=(const Ring &) = delete;
	~Ring() { io_uring_queue_exit(&ring_); }
	io_uring *get() noexcept { return &ring_; }

private:
	io_uring ring_{};
};

struct Worker {
	vblk::WorkloadResult res;
	std::vector<uint32_t> lat;
	std::exception_ptr error;
	uint64_t quota = 0;

	void run(int fd, uint64_t blocks, unsigned index, const vblk::WorkloadOptions &o,
		 clock::time_point deadline)
	{
		const bool write = o.kind == vblk::Workload::randwrite;
		Ring ring(o.depth);
		std::vector<std::unique_ptr<uint8_t, FreeDeleter>> bufs;
		std::vector<clock::time_point> started(o.depth);
		for (unsigned i = 0; i < o.depth; i++) {
			void *p = nullptr;
			if (::posix_memalign(&p, 4096, o.block_size))
				throw std::bad_alloc();
			bufs.emplace_back(static_cast<uint8_t *>(p));
			vblk::fill_pattern({ bufs.back().get(), o.block_size }, 0, o.seed + i);
		}
		std::mt19937_64 rng(o.seed * 7919 + index);
		std::uniform_int_distribution<uint64_t> pick(0, blocks - 1);
		uint64_t submitted = 0;
		unsigned outstanding = 0;
		auto more = [&](clock::time_point now) {
			return o.ops ? submitted < quota : now < deadline;
		};
		auto queue = [&](unsigned slot) {
			io_uring_sqe *sqe = io_uring_get_sqe(ring.get());
			if (!sqe)
				throw vblk::SysError(EBUSY, "io_uring: no free submission entry");
			off_t off = static_cast<off_t>(pick(rng) * o.block_size);
			if (write)
				io_uring_prep_write(sqe, fd, bufs[slot].get(), o.block_size, off);
			else
				io_uring_prep_read(sqe, fd, bufs[slot].get(), o.block_size, off);
			io_uring_sqe_set_data64(sqe, slot);
			started[slot] = clock::now();
			submitted++;
			outstanding++;
		};
		for (unsigned i = 0; i < o.depth && more(clock::now()); i++)
			queue(i);
		while (outstanding) {
			int rc = io_uring_submit_and_wait(ring.get(), 1);
			if (rc < 0 && rc != -EINTR)
				throw vblk::SysError(-rc, "io_uring_submit_and_wait");
			io_uring_cqe *cqe;
			unsigned head, seen = 0;
			std::vector<unsigned> done;
			io_uring_for_each_cqe(ring.get(), head, cqe)
			{
				auto t = clock::now();
				unsigned slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
				lat.push_back(static_cast<uint32_t>(std::min<int64_t>(
					UINT32_MAX, std::chrono::duration_cast<std::chrono::nanoseconds>(
							    t - started[slot]).count())));
				res.ops++;
				if (cqe->res != static_cast<int>(o.block_size)) {
					res.errors++;
					if (res.first_error.empty())
						res.first_error = "io_uring result " + std::to_string(cqe->res);
				} else {
					res.bytes += o.block_size;
				}
				done.push_back(slot);
				seen++;
			}
			io_uring_cq_advance(ring.get(), seen);
			outstanding -= seen;
			auto now = clock::now();
			for (unsigned slot : done)
				if (more(now))
					queue(slot);
		}
	}
};

} // namespace

vblk::WorkloadResult run_raw_uring(const std::string &path, uint64_t device_bytes,
				   unsigned threads, const vblk::WorkloadOptions &o)
{
	if (o.block_size == 0 || o.block_size % 512)
		throw std::invalid_argument("block size must be a multiple of 512");
	uint64_t bytes = o.region_bytes ? std::min(o.region_bytes, device_bytes) : device_bytes;
	uint64_t blocks = bytes / o.block_size;
	if (!blocks)
		throw std::invalid_argument("region smaller than one block");
	int flags = (o.kind == vblk::Workload::randwrite ? O_RDWR : O_RDONLY) | O_DIRECT;
	vblk::UniqueFd fd = vblk::UniqueFd::open(path, flags);

	std::vector<Worker> workers(threads);
	for (unsigned i = 0; i < threads; i++) {
		workers[i].quota = o.ops / threads + (i < o.ops % threads ? 1 : 0);
		workers[i].lat.reserve(1 << 16);
	}
	const auto start = clock::now();
	const auto deadline = start + o.duration;
	std::vector<std::thread> ts;
	for (unsigned i = 0; i < threads; i++)
		ts.emplace_back([&, i] {
			try {
				workers[i].run(fd.get(), blocks, i, o, deadline);
			} catch (...) {
				workers[i].error = std::current_exception();
			}
		});
	for (auto &t : ts)
		t.join();
	vblk::WorkloadResult res;
	res.seconds = std::chrono::duration<double>(clock::now() - start).count();
	std::vector<uint32_t> lat;
	for (auto &w : workers) {
		if (w.error)
			std::rethrow_exception(w.error);
		res.ops += w.res.ops;
		res.bytes += w.res.bytes;
		res.errors += w.res.errors;
		if (res.first_error.empty())
			res.first_error = w.res.first_error;
		lat.insert(lat.end(), w.lat.begin(), w.lat.end());
	}
	res.latency = vblk::summarize_latency(lat);
	return res;
}

} // namespace bench
