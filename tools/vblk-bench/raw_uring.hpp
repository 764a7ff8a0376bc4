// SPDX-License-Identifier: GPL-2.0
// The limit: the same random workload straight on the block device from
// userspace, io_uring with O_DIRECT, one ring and thread per "queue".
#pragma once

#include <vblk/workload.hpp>

#include <string>

namespace bench {

vblk::WorkloadResult run_raw_uring(const std::string &path, uint64_t device_bytes,
				   unsigned threads, const vblk::WorkloadOptions &o);

} // namespace bench
