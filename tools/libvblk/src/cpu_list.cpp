// SPDX-License-Identifier: GPL-2.0
#include "vblk/cpu_list.hpp"

#include "vblk/error.hpp"

#include <fstream>
#include <sched.h>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace vblk {

namespace {

unsigned parse_cpu(const std::string &s, const std::string &list)
{
	if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
		throw std::invalid_argument("CPU list '" + list + "': '" + s + "' is not a CPU number");
	unsigned cpu = static_cast<unsigned>(std::stoul(s));
	if (cpu >= CPU_SETSIZE)
		throw std::invalid_argument("CPU list '" + list + "': CPU " + s + " is beyond " +
					    std::to_string(CPU_SETSIZE - 1));
	return cpu;
}

std::string read_line(const std::string &path)
{
	std::ifstream f(path);
	std::string s;
	std::getline(f, s);
	return f ? s : std::string();
}

} // namespace

CpuSet parse_cpu_list(const std::string &list)
{
	CpuSet cpus;
	size_t pos = 0;
	if (list.empty())
		throw std::invalid_argument("CPU list is empty");
	while (pos <= list.size()) {
		size_t comma = list.find(',', pos);
		std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos
									  : comma - pos);
		size_t dash = item.find('-');
		unsigned lo = parse_cpu(item.substr(0, dash), list);
		unsigned hi = dash == std::string::npos ? lo : parse_cpu(item.substr(dash + 1), list);
		if (hi < lo)
			throw std::invalid_argument("CPU list '" + list + "': range '" + item +
						    "' runs backwards");
		for (unsigned c = lo; c <= hi; c++)
			cpus.insert(c);
		if (comma == std::string::npos)
			break;
		pos = comma + 1;
	}
	return cpus;
}

std::string cpu_list_error(const std::string &list)
{
	try {
		parse_cpu_list(list);
		return {};
	} catch (const std::invalid_argument &e) {
		return e.what();
	}
}

std::string format_cpu_list(const CpuSet &cpus)
{
	std::string out;
	for (auto it = cpus.begin(); it != cpus.end();) {
		unsigned lo = *it, hi = lo;
		for (++it; it != cpus.end() && *it == hi + 1; ++it)
			hi = *it;
		if (!out.empty())
			out += ',';
		out += std::to_string(lo);
		if (hi != lo)
			out += '-' + std::to_string(hi);
	}
	return out;
}

void set_thread_cpus(pid_t tid, const CpuSet &cpus)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (unsigned c : cpus)
		CPU_SET(c, &set);
	check(::sched_setaffinity(tid, sizeof(set), &set),
	      "sched_setaffinity thread " + std::to_string(tid) + " to CPUs " +
		      format_cpu_list(cpus));
}

CpuSet thread_cpus(pid_t tid)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	check(::sched_getaffinity(tid, sizeof(set), &set),
	      "sched_getaffinity thread " + std::to_string(tid));
	CpuSet cpus;
	for (unsigned c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus.insert(c);
	return cpus;
}

std::optional<CpuSet> numa_cpus_near(const std::string &path, int *node)
{
	struct stat st{};
	if (::stat(path.c_str(), &st) != 0)
		return std::nullopt;
	dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
	// A partition's node is its disk's: /sys/dev/block/M:N/device is the
	// disk's device, and ../device for a partition.
	std::string base = "/sys/dev/block/" + std::to_string(major(dev)) + ":" +
			   std::to_string(minor(dev));
	std::string n = read_line(base + "/device/numa_node");
	if (n.empty())
		n = read_line(base + "/../device/numa_node");
	if (n.empty() || n[0] == '-' || n.find_first_not_of("0123456789") != std::string::npos)
		return std::nullopt;
	// One node: nothing to choose.
	std::string online = read_line("/sys/devices/system/node/online");
	if (online.empty() || online == "0")
		return std::nullopt;
	std::string list = read_line("/sys/devices/system/node/node" + n + "/cpulist");
	if (list.empty())
		return std::nullopt;
	try {
		CpuSet cpus = parse_cpu_list(list);
		if (node)
			*node = std::stoi(n);
		return cpus;
	} catch (const std::invalid_argument &) {
		return std::nullopt;
	}
}

} // namespace vblk
