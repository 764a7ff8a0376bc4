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

std::string task_comm(const std::filesystem::path &task)
{
	std::ifstream f(task / "comm");
	std::string s;
	std::getline(f, s);
	return s;
}

// Sum over the tasks of `pid`; only_vhost: just its vhost workers.
uint64_t tasks_ns(pid_t pid, bool only_vhost)
{
	namespace fs = std::filesystem;
	uint64_t sum = 0;
	std::error_code ec;
	fs::path dir = fs::path("/proc") / std::to_string(pid) / "task";
	for (const auto &e : fs::directory_iterator(dir, ec)) {
		if (only_vhost && task_comm(e.path()).rfind("vhost-", 0) != 0)
			continue;
		sum += task_ns(e.path());
	}
	if (ec)
		throw vblk::SysError(ec.value(), "reading " + dir.string());
	return sum;
}

uint64_t self_rusage_ns()
{
	rusage ru{};
	vblk::check(::getrusage(RUSAGE_SELF, &ru), "getrusage");
	auto ns = [](const timeval &t) {
		return static_cast<uint64_t>(t.tv_sec) * 1000000000ull +
		       static_cast<uint64_t>(t.tv_usec) * 1000ull;
	};
	return ns(ru.ru_utime) + ns(ru.ru_stime);
}

} // namespace

CpuSample CpuMeter::sample() const
{
	CpuSample s;
	uint64_t own_vhost = tasks_ns(::getpid(), true);
	uint64_t self = self_rusage_ns();
	s.driver_ns = self > own_vhost ? self - own_vhost : 0;
	s.serving_ns = pid_ ? tasks_ns(pid_, false) : own_vhost;
	return s;
}

} // namespace bench
