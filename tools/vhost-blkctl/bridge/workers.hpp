// SPDX-License-Identifier: GPL-2.0
// Which vhost worker serves which virtqueue: the plan an admin asks for
// (policy, count, explicit assignments) and its application to a device
// through the multi-worker ioctls.
#pragma once

#include "device/device.hpp"

#include <vblk/cpu_list.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bridge {

// Which CPUs the workers' threads may run on.  Kept across changes of
// the worker count and map: it is the admin's, not the policy's.
struct Placement {
	std::optional<vblk::CpuSet> all;	// workers without their own
	std::map<unsigned, vblk::CpuSet> worker;	// logical worker -> CPUs
	// "inherited" (serve's own affinity), "numa-node:N" (the backend's
	// node, the default on a NUMA machine) or "admin".
	std::string source = "inherited";

	std::optional<vblk::CpuSet> cpus_of(unsigned w) const;
};

// Logical workers are numbered 0..workers-1; their kernel ids change
// with every connection.  Throws std::invalid_argument on bad input.
struct WorkerPlan {
	unsigned workers = 1;
	std::vector<unsigned> map;	// vq -> logical worker
	std::string policy = "single";	// single, per-vq, round-robin:N, custom
	Placement placement;

	static WorkerPlan single(unsigned queues);
	static WorkerPlan per_vq(unsigned queues);
	static WorkerPlan round_robin(unsigned queues, unsigned n);
	// "single", "per-vq" or "round-robin:N".
	static WorkerPlan from_policy(const std::string &policy, unsigned queues);

	unsigned queues() const noexcept { return static_cast<unsigned>(map.size()); }
	// vq -> worker; the policy becomes "custom".
	void assign(unsigned vq, unsigned worker);
	// "VQ:WORKER,VQ:WORKER,...", each applied with assign().
	void assign_list(const std::string &list);
};

// Throws std::invalid_argument naming the first CPU of `cpus` that is not
// online.
void check_cpus_online(const vblk::CpuSet &cpus);

// The kernel side of a plan on one device.
class WorkerSet {
public:
	// Call after VHOST_SET_OWNER: the owner's default worker becomes
	// logical worker 0.
	void adopt_default(device::Device &dev);
	// Creates missing workers, re-attaches every vq whose worker differs
	// from the plan, frees the workers the plan no longer has, then puts
	// each worker serving a ring on its CPUs.  Throws vblk::SysError; the
	// set stays consistent with the kernel.
	void apply(device::Device &dev, const WorkerPlan &plan);
	const std::vector<unsigned> &kernel_ids() const noexcept { return ids_; }
	// Thread id of logical worker w as of the last apply(), 0 if it
	// served no ring then (or the module cannot name threads).  Cached:
	// asking the kernel waits for the worker, which a status query must
	// not.
	pid_t tid(unsigned w) const noexcept { return w < tids_.size() ? tids_[w] : 0; }
	// Logical index of a kernel worker id, -1 if not ours.
	int logical(unsigned kernel_id) const noexcept;
	void clear() noexcept { ids_.clear(), tids_.clear(); }

private:
	std::vector<unsigned> ids_;
	std::vector<pid_t> tids_;
};

} // namespace bridge
