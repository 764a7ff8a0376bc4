// SPDX-License-Identifier: GPL-2.0
#include "common/unix_socket.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace common {

namespace {

sockaddr_un address(const std::string &path)
{
	sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	if (path.size() >= sizeof(a.sun_path))
		throw vblk::SysError(ENAMETOOLONG, "socket path " + path);
	std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
	return a;
}

} // namespace

vblk::UniqueFd connect_unix(const std::string &path)
{
	sockaddr_un a = address(path);
	vblk::UniqueFd fd(static_cast<int>(
		vblk::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
	if (::connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) < 0)
		throw vblk::SysError(errno, "connect " + path);
	return fd;
}

vblk::UniqueFd listen_unix(const std::string &path, unsigned mode)
{
	sockaddr_un a = address(path);
	vblk::UniqueFd fd(static_cast<int>(
		vblk::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
	if (::bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)) < 0) {
		if (errno != EADDRINUSE)
			throw vblk::SysError(errno, "bind " + path);
		// Someone listening: refuse.  A stale file: replace it.
		try {
			connect_unix(path);
			throw vblk::SysError(EADDRINUSE, "bind " + path + " (a server is running)");
		} catch (const vblk::SysError &e) {
			if (e.code() != ECONNREFUSED)
				throw;
		}
		struct stat st;
		if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
			throw vblk::SysError(EEXIST, "bind " + path + " (not a socket)");
		::unlink(path.c_str());
		vblk::check(::bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof(a)),
			    "bind " + path);
	}
	::chmod(path.c_str(), mode);
	vblk::check(::listen(fd.get(), 4), "listen " + path);
	return fd;
}

vblk::UniqueFd accept_unix(int listen_fd)
{
	int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return vblk::UniqueFd();
		throw vblk::SysError(errno, "accept");
	}
	return vblk::UniqueFd(fd);
}

bool wait_readable(int fd, std::chrono::milliseconds timeout)
{
	struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
	int rc;
	do {
		rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
	} while (rc < 0 && errno == EINTR);
	vblk::check(rc, "poll");
	return rc > 0;
}

} // namespace common
