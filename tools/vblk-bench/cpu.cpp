// SPDX-License-Identifier: GPL-2.0
#include "cpu.hpp"

#include <vblk/error.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

namespace bench {

namespace {

// Time on CPU of one task; 0 when it has gone.
uint64_t task_ns(const std::filesystem::path &task)
{
	std::ifstream f(task / "schedstat");
	uint64_t ns = 0;
	f >> ns;
	return f ? ns : 0;
}

// Times a task went to sleep (voluntary context switches); 0 when gone.
uint64_t task_sleeps(const std::filesystem::path &task)
{
	std::ifstream f(task / "status");
	const std::string key = "voluntary_ctxt_switches:";
	for (std::string line; std::getline(f, line);)
		if (line.rfind(key, 0) == 0)
			return std::stoull(line.substr(key.size()));
	return 0;
}

std::string task_comm(const std::filesystem::path &task)
{
	std::ifstream f(task / "comm");
	std::string s;
	std::getline(f, s);
	return s;
}

struct TaskSum {
	uint64_t ns = 0;
	uint64_t sleeps = 0;
};

// Sum over the tasks of `pid`; only_vhost: just its vhost workers.
TaskSum tasks_sum(pid_t pid, bool only_vhost)
{
	namespace fs = std::filesystem;
	TaskSum sum;
	std::error_code ec;
	fs::path dir = fs::path("/proc") / std::to_string(pid) / "task";
	for (const auto &e : fs::directory_iterator(dir, ec)) {
		if (only_vhost && task_comm(e.path()).rfind("vhost-", 0) != 0)
			continue;
		sum.ns += task_ns(e.path());
		sum.sleeps += task_sleeps(e.path());
	}
	if (ec)
		throw vblk::SysError(ec.value(), "reading " + dir.string());
	return sum;
}

TaskSum self_rusage()
{
	rusage ru{};
	vblk::check(::getrusage(RUSAGE_SELF, &ru), "getrusage");
	auto ns = [](const timeval &t) {
		return static_cast<uint64_t>(t.tv_sec) * 1000000000ull +
		       static_cast<uint64_t>(t.tv_usec) * 1000ull;
	};
	return { ns(ru.ru_utime) + ns(ru.ru_stime), static_cast<uint64_t>(ru.ru_nvcsw) };
}

uint64_t minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

} // namespace

CpuSample CpuMeter::sample() const
{
	CpuSample s;
	TaskSum own_vhost = tasks_sum(::getpid(), true);
	TaskSum self = self_rusage();
	s.driver_ns = minus(self.ns, own_vhost.ns);
	s.driver_sleeps = minus(self.sleeps, own_vhost.sleeps);
	TaskSum serving = pid_ ? tasks_sum(pid_, false) : own_vhost;
	s.serving_ns = serving.ns;
	s.serving_sleeps = serving.sleeps;
	return s;
}

} // namespace bench
