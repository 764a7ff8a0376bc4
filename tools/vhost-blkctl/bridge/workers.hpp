// SPDX-License-Identifier: GPL-2.0
// Which vhost worker serves which virtqueue: the plan an admin asks for
// (policy, count, explicit assignments) and its application to a device
// through the multi-worker ioctls.
#pragma once

#include "device/device.hpp"

#include <string>
#include <vector>

namespace bridge {

// Logical workers are numbered 0..workers-1; their kernel ids change
// with every connection.  Throws std::invalid_argument on bad input.
struct WorkerPlan {
	unsigned workers = 1;
	std::vector<unsigned> map;	// vq -> logical worker
	std::string policy = "single";	// single, per-vq, round-robin:N, custom

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

// The kernel side of a plan on one device.
class WorkerSet {
public:
	// Call after VHOST_SET_OWNER: the owner's default worker becomes
	// logical worker 0.
	void adopt_default(device::Device &dev);
	// Creates missing workers, re-attaches every vq whose worker differs
	// from the plan, frees the workers the plan no longer has.  Throws
	// vblk::SysError; the set stays consistent with the kernel.
	void apply(device::Device &dev, const WorkerPlan &plan);
	const std::vector<unsigned> &kernel_ids() const noexcept { return ids_; }
	// Logical index of a kernel worker id, -1 if not ours.
	int logical(unsigned kernel_id) const noexcept;
	void clear() noexcept { ids_.clear(); }

private:
	std::vector<unsigned> ids_;
};

} // namespace bridge
