// SPDX-License-Identifier: GPL-2.0
#include "vblk/fd.hpp"
#include "vblk/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

namespace vblk {

void UniqueFd::reset(int fd) noexcept
{
	if (fd_ >= 0)
		::close(fd_);
	fd_ = fd;
}

UniqueFd UniqueFd::open(const std::string &path, int flags, unsigned mode)
{
	int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
	if (fd < 0)
		throw SysError(errno, "open " + path);
	return UniqueFd(fd);
}

EventFd::EventFd()
	: fd_(static_cast<int>(check(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd")))
{
}

void EventFd::signal(uint64_t n)
{
	if (::write(fd_.get(), &n, sizeof(n)) != sizeof(n))
		throw SysError(errno, "eventfd write");
}

uint64_t EventFd::consume()
{
	uint64_t v = 0;
	if (::read(fd_.get(), &v, sizeof(v)) != sizeof(v)) {
		if (errno == EAGAIN)
			return 0;
		throw SysError(errno, "eventfd read");
	}
	return v;
}

uint64_t EventFd::wait(std::chrono::milliseconds timeout)
{
	struct pollfd p = { .fd = fd_.get(), .events = POLLIN, .revents = 0 };
	int rc;
	do {
		rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
	} while (rc < 0 && errno == EINTR);
	check(rc, "poll eventfd");
	return rc ? consume() : 0;
}

Mmap &Mmap::operator=(Mmap &&o) noexcept
{
	if (this != &o) {
		reset();
		addr_ = std::exchange(o.addr_, nullptr);
		len_ = std::exchange(o.len_, 0);
	}
	return *this;
}

Mmap Mmap::map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = ::mmap(nullptr, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		throw SysError(errno, "mmap");
	return Mmap(p, len);
}

void Mmap::reset() noexcept
{
	if (addr_)
		::munmap(addr_, len_);
	addr_ = nullptr;
	len_ = 0;
}

} // namespace vblk
