// SPDX-License-Identifier: GPL-2.0
#include "bridge/workers.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bridge {

namespace {

unsigned parse_uint(const std::string &s, const std::string &what)
{
	if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 9)
		throw std::invalid_argument(what + " '" + s + "' is not a number");
	return static_cast<unsigned>(std::stoul(s));
}

} // namespace

WorkerPlan WorkerPlan::single(unsigned queues)
{
	return round_robin(queues, 1);
}

WorkerPlan WorkerPlan::per_vq(unsigned queues)
{
	WorkerPlan p = round_robin(queues, queues);
	p.policy = "per-vq";
	return p;
}

WorkerPlan WorkerPlan::round_robin(unsigned queues, unsigned n)
{
	if (queues == 0)
		throw std::invalid_argument("a disk needs at least one queue");
	if (n == 0 || n > queues)
		throw std::invalid_argument("worker count " + std::to_string(n) +
					    " out of range (1-" + std::to_string(queues) + ")");
	WorkerPlan p;
	p.workers = n;
	p.map.resize(queues);
	for (unsigned i = 0; i < queues; i++)
		p.map[i] = i % n;
	p.policy = n == 1 ? "single" : "round-robin:" + std::to_string(n);
	return p;
}

WorkerPlan WorkerPlan::from_policy(const std::string &policy, unsigned queues)
{
	if (policy == "single")
		return single(queues);
	if (policy == "per-vq")
		return per_vq(queues);
	const std::string rr = "round-robin:";
	if (policy.rfind(rr, 0) == 0)
		return round_robin(queues, parse_uint(policy.substr(rr.size()), "worker count"));
	throw std::invalid_argument("unknown policy '" + policy +
				    "' (single, per-vq, round-robin:N)");
}

void WorkerPlan::assign(unsigned vq, unsigned worker)
{
	if (vq >= map.size())
		throw std::invalid_argument("vq " + std::to_string(vq) + " out of range (0-" +
					    std::to_string(map.size() - 1) + ")");
	if (worker >= workers)
		throw std::invalid_argument("worker " + std::to_string(worker) +
					    " out of range (0-" + std::to_string(workers - 1) + ")");
	map[vq] = worker;
	policy = "custom";
}

void WorkerPlan::assign_list(const std::string &list)
{
	std::stringstream ss(list);
	std::string item;
	while (std::getline(ss, item, ',')) {
		auto colon = item.find(':');
		if (colon == std::string::npos)
			throw std::invalid_argument("map entry '" + item + "' is not VQ:WORKER");
		assign(parse_uint(item.substr(0, colon), "vq"),
		       parse_uint(item.substr(colon + 1), "worker"));
	}
}

std::optional<vblk::CpuSet> Placement::cpus_of(unsigned w) const
{
	auto it = worker.find(w);
	if (it != worker.end())
		return it->second;
	return all;
}

void check_cpus_online(const vblk::CpuSet &cpus)
{
	std::ifstream f("/sys/devices/system/cpu/online");
	std::string line;
	if (!std::getline(f, line))
		return;	// no sysfs: the kernel judges
	vblk::CpuSet online = vblk::parse_cpu_list(line);
	for (unsigned c : cpus)
		if (!online.count(c))
			throw std::invalid_argument("CPU " + std::to_string(c) +
						    " is not online (online: " + line + ")");
}

void WorkerSet::adopt_default(device::Device &dev)
{
	ids_.assign(1, dev.get_vring_worker(0));
}

void WorkerSet::apply(device::Device &dev, const WorkerPlan &plan)
{
	while (ids_.size() < plan.workers)
		ids_.push_back(dev.new_worker());
	for (unsigned vq = 0; vq < plan.queues(); vq++) {
		unsigned want = ids_[plan.map[vq]];
		if (dev.get_vring_worker(vq) != want)
			dev.attach_vring_worker(vq, want);
	}
	while (ids_.size() > plan.workers) {
		dev.free_worker(ids_.back());
		ids_.pop_back();
	}
	// A worker without rings has no thread to name yet: it is placed by
	// the apply() that gives it one.
	tids_.assign(ids_.size(), 0);
	for (unsigned w = 0; w < ids_.size(); w++) {
		auto cpus = plan.placement.cpus_of(w);
		try {
			tids_[w] = dev.worker_tid(ids_[w]);
		} catch (const vblk::SysError &e) {
			// A module older than the ioctl, or kthread workers
			// (not ours to place): only placement needs it.
			if ((e.code() != ENOTTY && e.code() != EOPNOTSUPP) || cpus)
				throw;
		}
		if (cpus && tids_[w] > 0)
			vblk::set_thread_cpus(tids_[w], *cpus);
	}
}

int WorkerSet::logical(unsigned kernel_id) const noexcept
{
	for (size_t i = 0; i < ids_.size(); i++)
		if (ids_[i] == kernel_id)
			return static_cast<int>(i);
	return -1;
}

} // namespace bridge
