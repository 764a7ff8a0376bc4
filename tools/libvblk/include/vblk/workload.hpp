// SPDX-License-Identifier: GPL-2.0
// I/O workloads over a BlkDriver: random reads/writes at a queue depth on
// every ring, and a write/read-back/verify pass.  Used by vblk-io and the
// benchmark.
#pragma once

#include "vblk/blk_driver.hpp"

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vblk {

enum class Workload { randread, randwrite, verify };

std::string_view to_string(Workload w) noexcept;
// Throws std::invalid_argument for an unknown name.
Workload parse_workload(std::string_view name);

// Deterministic data: each 8-byte word depends on its sector, its offset in
// the sector and the seed, so misplaced or stale sectors are detected.
void fill_pattern(std::span<uint8_t> buf, uint64_t first_sector, uint64_t seed);

struct WorkloadOptions {
	Workload kind = Workload::randread;
	unsigned depth = 32;	       // per queue
	uint32_t block_size = 4096;    // bytes per request
	uint64_t ops = 0;	       // total requests (0: use duration)
	std::chrono::seconds duration{ 0 };
	uint64_t region_bytes = 0;     // 0: the whole backend
	uint64_t seed = 1;
	IoOptions io{};
	// A ring with requests outstanding and no completion for this long
	// fails the run (TimeoutError).
	unsigned timeout_ms = 10000;
	// Random workloads: spin on the used ring this long before sleeping
	// on the call eventfd (a guest's virtio-blk poll queues).  0: sleep.
	unsigned poll_us = 0;
	// randwrite: each write is followed, once it completed OK, by a FLUSH
	// on the same ring; the pair is one operation (its latency runs from
	// the write's submission to the flush's completion): a guest making
	// every write durable with a flush instead of FUA.
	bool flush_after_write = false;
};

// Completion latency (submission to used-ring entry seen), microseconds.
struct LatencySummary {
	uint64_t samples = 0;
	double mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0;
};

struct WorkloadResult {
	uint64_t ops = 0;
	uint64_t bytes = 0;
	double seconds = 0;
	uint64_t errors = 0;	       // completions with a status other than OK
	uint64_t verified_bytes = 0;   // compared equal, both paths together:
	uint64_t verified_module_bytes = 0; // read back through vhost-blk
	uint64_t verified_disk_bytes = 0;   // read from the disk with O_DIRECT
	uint64_t mismatches = 0;       // blocks that differed
	std::string first_error;       // description of the first error or mismatch
	LatencySummary latency;	       // random workloads

	double iops() const { return seconds > 0 ? ops / seconds : 0; }
	double mib_per_s() const { return seconds > 0 ? bytes / seconds / (1 << 20) : 0; }
	bool ok() const { return errors == 0 && mismatches == 0; }
};

// p50/p99/mean/max of latencies in nanoseconds (reorders `ns`).
LatencySummary summarize_latency(std::vector<uint32_t> &ns);

// Runs `opts` on every queue of `drv`, which must be attached to the disk
// behind `backend_path`.  `verify` also reads the region back from the disk
// with O_DIRECT (the path must then be readable here).  Random workloads
// keep `depth` requests in flight per ring, each ring driven by a thread of
// its own (a guest's per-CPU queues), from preallocated slots: no
// allocation or copy per request, so what is measured is the device.
WorkloadResult run_workload(BlkDriver &drv, const std::string &backend_path,
			    uint64_t backend_bytes, const WorkloadOptions &opts);

} // namespace vblk
