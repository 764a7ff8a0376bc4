// SPDX-License-Identifier: GPL-2.0
// CPU lists as the kernel writes them ("0-3,8,10-11"): parsing, printing,
// and placing a thread (a vhost worker) on them.
#pragma once

#include <sys/types.h>

#include <optional>
#include <set>
#include <string>

namespace vblk {

using CpuSet = std::set<unsigned>;

// "0-3,8": the kernel's cpulist format.  Throws std::invalid_argument with
// the reason for an empty list, a bad number, a reversed range or a CPU
// beyond CPU_SETSIZE.
CpuSet parse_cpu_list(const std::string &list);
// For CLI11 validators: parse_cpu_list()'s complaint, "" if `list` is good.
std::string cpu_list_error(const std::string &list);
// The shortest cpulist form, "" for an empty set.
std::string format_cpu_list(const CpuSet &cpus);

// sched_setaffinity(2)/sched_getaffinity(2) of one thread; throw SysError.
void set_thread_cpus(pid_t tid, const CpuSet &cpus);
CpuSet thread_cpus(pid_t tid);

// The CPUs near a block device or a file's block device: its NUMA node's,
// when the machine has more than one node and the device names its node;
// none otherwise (no preference: the thread keeps what it inherited).
// `node` gets the node number.
std::optional<CpuSet> numa_cpus_near(const std::string &path, int *node = nullptr);

} // namespace vblk
