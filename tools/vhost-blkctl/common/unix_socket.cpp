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

namespace {

// Throws unless `path` is free or a socket nobody listens on.
void check_replaceable(const std::string &path)
{
	struct stat st;
	if (::lstat(path.c_str(), &st) < 0) {
		if (errno == ENOENT)
			return;
		throw vblk::SysError(errno, "stat " + path);
	}
	if (!S_ISSOCK(st.st_mode))
		throw vblk::SysError(EEXIST, "bind " + path + " (not a socket)");
	try {
		connect_unix(path);
	} catch (const vblk::SysError &e) {
		if (e.code() == ECONNREFUSED)
			return;
		throw;
	}
	throw vblk::SysError(EADDRINUSE, "bind " + path + " (a server is running)");
}

// Removes the temporary socket file unless the rename took it.
class TempName {
public:
	explicit TempName(std::string path) : path_(std::move(path)) {}
	~TempName()
	{
		if (!path_.empty())
			::unlink(path_.c_str());
	}
	TempName(const TempName &) = delete;
	TempName &operator=(const TempName &) = delete;
	void release() { path_.clear(); }

private:
	std::string path_;
};

} // namespace

vblk::UniqueFd listen_unix(const std::string &path, const SocketAccess &access)
{
	address(path);
	std::string tmp = path + "." + std::to_string(::getpid()) + ".tmp";
	if (tmp.size() >= sizeof(sockaddr_un::sun_path))
		throw vblk::SysError(ENAMETOOLONG, "socket path " + path +
							   " (its temporary name " + tmp + ")");
	sockaddr_un t = address(tmp);
	check_replaceable(path);
	vblk::UniqueFd fd(static_cast<int>(
		vblk::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
	// A temporary name of ours left by an earlier process with our pid.
	struct stat st;
	if (::lstat(tmp.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
		::unlink(tmp.c_str());
	vblk::check(::bind(fd.get(), reinterpret_cast<sockaddr *>(&t), sizeof(t)), "bind " + tmp);
	TempName guard(tmp);
	if (access.owner != static_cast<uid_t>(-1) || access.group != static_cast<gid_t>(-1))
		vblk::check(::lchown(tmp.c_str(), access.owner, access.group), "chown " + tmp);
	vblk::check(::chmod(tmp.c_str(), access.mode), "chmod " + tmp);
	vblk::check(::listen(fd.get(), 4), "listen " + tmp);
	vblk::check(::rename(tmp.c_str(), path.c_str()), "rename " + tmp + " to " + path);
	guard.release();
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
