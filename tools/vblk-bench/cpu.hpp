// SPDX-License-Identifier: GPL-2.0
// CPU time of the serving side and of the driver, for "CPU per I/O".
#pragma once

#include <cstdint>
#include <sys/types.h>

namespace bench {

struct CpuSample {
	uint64_t serving_ns = 0; // vhost worker tasks, or the serving process
	uint64_t driver_ns = 0;	 // this process without its vhost workers
	// Voluntary context switches: each one a sleep, and a wake-up later.
	uint64_t serving_sleeps = 0;
	uint64_t driver_sleeps = 0;

	CpuSample operator-(const CpuSample &o) const noexcept
	{
		return { serving_ns - o.serving_ns, driver_ns - o.driver_ns,
			 serving_sleeps - o.serving_sleeps, driver_sleeps - o.driver_sleeps };
	}
};

// serving_pid 0: the serving side is this process's own vhost worker tasks
// ("vhost-<pid>" threads of the device owner: /dev/vhost-blk driven from
// here).  Otherwise every task of that process (qemu-storage-daemon,
// vhost-blkctl serve with its vhost workers).  Task times come from
// /proc/.../schedstat (nanoseconds on CPU) and the sleeps from
// voluntary_ctxt_switches in /proc/.../status; the driver's from getrusage,
// which keeps the time and switches of threads that have exited.
class CpuMeter {
public:
	explicit CpuMeter(pid_t serving_pid = 0) : pid_(serving_pid) {}
	CpuSample sample() const;

private:
	pid_t pid_;
};

} // namespace bench
