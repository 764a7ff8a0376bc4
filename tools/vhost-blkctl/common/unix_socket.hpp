// SPDX-License-Identifier: GPL-2.0
// Unix stream sockets: listen on a path, accept, connect.
#pragma once

#include <vblk/fd.hpp>

#include <chrono>
#include <string>
#include <sys/types.h>

namespace common {

// Who may connect to a listening socket: its file's mode, owner and group
// (-1: the creator's).
struct SocketAccess {
	unsigned mode = 0600;
	uid_t owner = static_cast<uid_t>(-1);
	gid_t group = static_cast<gid_t>(-1);
};

// Listens on `path`.  The socket is bound to a temporary name next to
// `path`, given its owner, group and mode, put in the listening state and
// only then renamed to `path`: whoever sees the path can connect.  A
// socket file nobody listens on any more (a daemon that crashed) is
// replaced; a live one is EADDRINUSE, anything else at `path` EEXIST.
// Throws vblk::SysError.
vblk::UniqueFd listen_unix(const std::string &path, const SocketAccess &access);
inline vblk::UniqueFd listen_unix(const std::string &path, unsigned mode = 0600)
{
	return listen_unix(path, SocketAccess{ mode });
}

// accept4(..., SOCK_CLOEXEC); an invalid fd if nothing was pending.
vblk::UniqueFd accept_unix(int listen_fd);

// Connects to `path`; throws vblk::SysError("connect <path>").
vblk::UniqueFd connect_unix(const std::string &path);

// Waits for `fd` to become readable; false on timeout.
bool wait_readable(int fd, std::chrono::milliseconds timeout);

} // namespace common
