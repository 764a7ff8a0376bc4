// SPDX-License-Identifier: GPL-2.0
#include "ktap.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ktap {

namespace {

uint64_t g_seed;

// Exit codes of a test child.
constexpr int exit_pass = 0;
constexpr int exit_fail = 1;
constexpr int exit_skip = 4; // kselftest's KSFT_SKIP

// Where the child reports its skip reason or failure message.
int g_report_fd = -1;

void report(const std::string &s)
{
	if (g_report_fd >= 0 && ::write(g_report_fd, s.data(), s.size()) < 0) {
		// nothing sensible to do; the exit code still says it
	}
}

// New kernel log lines since a mark, via /dev/kmsg.
class KmsgWatch {
public:
	KmsgWatch()
	{
		fd_ = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd_ >= 0)
			::lseek(fd_, 0, SEEK_END);
	}
	~KmsgWatch()
	{
		if (fd_ >= 0)
			::close(fd_);
	}
	KmsgWatch(const KmsgWatch &) = delete;
	KmsgWatch &operator=(const KmsgWatch &) = delete;

	bool readable() const { return fd_ >= 0; }

	// Lines with WARNING:/BUG:/Oops logged since construction.
	std::vector<std::string> bad_lines()
	{
		std::vector<std::string> bad;
		if (fd_ < 0)
			return bad;
		char buf[8192];
		for (;;) {
			ssize_t n = ::read(fd_, buf, sizeof(buf) - 1);
			if (n < 0 && errno == EPIPE)
				continue; // overwritten records
			if (n <= 0)
				break;
			buf[n] = 0;
			const char *msg = std::strchr(buf, ';');
			std::string line = msg ? msg + 1 : buf;
			if (auto nl = line.find('\n'); nl != std::string::npos)
				line.resize(nl);
			if (line.find("WARNING:") != std::string::npos ||
			    line.find("BUG:") != std::string::npos ||
			    line.find("Oops") != std::string::npos ||
			    line.find("blocked for more than") != std::string::npos)
				bad.push_back(line);
		}
		return bad;
	}

private:
	int fd_ = -1;
};

void kmsg_note(const std::string &s)
{
	int fd = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	std::string line = "vhost_blk_test: " + s + "\n";
	if (::write(fd, line.data(), line.size()) < 0) {
		// not fatal: the kernel log marker is a convenience
	}
	::close(fd);
}

enum class Outcome { pass, fail, skip };

struct Result {
	Outcome outcome;
	std::string detail;
};

Result run_one(const TestCase &t)
{
	int pipefd[2];
	if (::pipe2(pipefd, O_CLOEXEC) < 0)
		return { Outcome::fail, std::string("pipe: ") + std::strerror(errno) };
	std::cout.flush();
	std::fflush(nullptr);
	pid_t pid = ::fork();
	if (pid < 0)
		return { Outcome::fail, std::string("fork: ") + std::strerror(errno) };
	if (pid == 0) {
		::close(pipefd[0]);
		g_report_fd = pipefd[1];
		::setpgid(0, 0);
		int code = exit_pass;
		try {
			t.fn();
		} catch (const Skip &s) {
			report(s.reason);
			code = exit_skip;
		} catch (const Failure &f) {
			report(f.message);
			code = exit_fail;
		} catch (const std::exception &e) {
			report(std::string("unexpected exception: ") + e.what());
			code = exit_fail;
		} catch (...) {
			report("unexpected exception");
			code = exit_fail;
		}
		std::cout.flush();
		std::fflush(nullptr);
		::_exit(code);
	}
	::close(pipefd[1]);

	int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
	bool timed_out = false;
	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN, .revents = 0 };
		int rc;
		do {
			rc = ::poll(&p, 1, t.timeout_s * 1000);
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			timed_out = true;
			::kill(-pid, SIGKILL);
			::kill(pid, SIGKILL);
		}
		::close(pidfd);
	}
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	std::string detail;
	char buf[4096];
	ssize_t n;
	while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0)
		detail.append(buf, static_cast<size_t>(n));
	::close(pipefd[0]);

	if (timed_out)
		return { Outcome::fail, "timeout after " + std::to_string(t.timeout_s) + "s" };
	if (WIFSIGNALED(status))
		return { Outcome::fail, std::string("killed by signal ") +
						strsignal(WTERMSIG(status)) };
	switch (WEXITSTATUS(status)) {
	case exit_pass:
		return { Outcome::pass, detail };
	case exit_skip:
		return { Outcome::skip, detail };
	default:
		return { Outcome::fail, detail };
	}
}

void usage(const char *argv0)
{
	std::cout << "usage: " << argv0 << " [--list] [--filter SUBSTR] [--seed N]\n";
}

} // namespace

std::vector<TestCase> &registry()
{
	static std::vector<TestCase> r;
	return r;
}

void skip(const std::string &reason) { throw Skip{ reason }; }

void fail(const std::string &message, const char *file, int line)
{
	throw Failure{ std::string(file) + ":" + std::to_string(line) + ": " + message };
}

void diag(const std::string &line) { std::cout << "# " << line << std::endl; }

uint64_t seed() { return g_seed; }

int main(int argc, char **argv)
{
	std::string filter;
	bool list = false;
	g_seed = static_cast<uint64_t>(
		std::chrono::steady_clock::now().time_since_epoch().count());
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--list") {
			list = true;
		} else if (a == "--filter" && i + 1 < argc) {
			filter = argv[++i];
		} else if (a == "--seed" && i + 1 < argc) {
			g_seed = std::strtoull(argv[++i], nullptr, 0);
		} else if (a == "-h" || a == "--help") {
			usage(argv[0]);
			return 0;
		} else {
			usage(argv[0]);
			return 2;
		}
	}

	std::vector<const TestCase *> selected;
	for (const auto &t : registry())
		if (filter.empty() || t.name.find(filter) != std::string::npos)
			selected.push_back(&t);
	if (list) {
		for (auto *t : selected)
			std::cout << t->name << "\n";
		return 0;
	}

	std::signal(SIGPIPE, SIG_IGN);
	std::cout << "TAP version 13\n1.." << selected.size() << std::endl;
	std::cout << "# seed " << g_seed << " (replay with --seed " << g_seed << ")" << std::endl;
	unsigned pass = 0, failed = 0, skipped = 0, n = 0;
	for (auto *t : selected) {
		n++;
		KmsgWatch kmsg;
		kmsg_note("starting " + t->name);
		Result r = run_one(*t);
		for (const auto &line : kmsg.bad_lines()) {
			r.outcome = Outcome::fail;
			r.detail += (r.detail.empty() ? "" : "; ") + std::string("kernel: ") + line;
		}
		switch (r.outcome) {
		case Outcome::pass:
			pass++;
			std::cout << "ok " << n << " " << t->name << std::endl;
			break;
		case Outcome::skip:
			skipped++;
			std::cout << "ok " << n << " " << t->name << " # SKIP " << r.detail
				  << std::endl;
			break;
		case Outcome::fail:
			failed++;
			std::istringstream lines(r.detail);
			for (std::string l; std::getline(lines, l);)
				std::cout << "# " << l << std::endl;
			std::cout << "not ok " << n << " " << t->name << std::endl;
			break;
		}
	}
	std::cout << "# Totals: pass:" << pass << " fail:" << failed
		  << " xfail:0 xpass:0 skip:" << skipped << " error:0" << std::endl;
	return failed ? 1 : 0;
}

} // namespace ktap
