// SPDX-License-Identifier: GPL-2.0
#include "common/notify.hpp"

#include <vblk/error.hpp>
#include <vblk/fd.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>

namespace common {

bool notify(const std::string &state)
{
	const char *env = std::getenv(notify_socket_env);
	if (!env || !*env)
		return false;
	std::string name = env;
	sockaddr_un a = {};
	a.sun_family = AF_UNIX;
	if (name[0] != '/' && name[0] != '@')
		throw vblk::SysError(EAFNOSUPPORT, std::string(notify_socket_env) + "=" + name);
	if (name.size() >= sizeof(a.sun_path))
		throw vblk::SysError(ENAMETOOLONG, std::string(notify_socket_env) + "=" + name);
	std::memcpy(a.sun_path, name.data(), name.size());
	// An abstract address starts with a NUL and is exactly as long as given.
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
					       (name[0] == '/' ? 1 : 0));
	vblk::UniqueFd fd(static_cast<int>(
		vblk::check(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")));
	ssize_t n;
	do {
		n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
			     reinterpret_cast<sockaddr *>(&a), len);
	} while (n < 0 && errno == EINTR);
	vblk::check(n, "send to " + name);
	return true;
}

} // namespace common
