// SPDX-License-Identifier: GPL-2.0
// Unix stream sockets: listen on a path, accept, connect.
#pragma once

#include <vblk/fd.hpp>

#include <chrono>
#include <string>

namespace common {

// Binds and listens on `path`.  A socket file nobody listens on any more
// (a daemon that crashed) is replaced; a live one is EADDRINUSE.  Throws
// vblk::SysError.
vblk::UniqueFd listen_unix(const std::string &path, unsigned mode = 0600);

// accept4(..., SOCK_CLOEXEC); an invalid fd if nothing was pending.
vblk::UniqueFd accept_unix(int listen_fd);

// Connects to `path`; throws vblk::SysError("connect <path>").
vblk::UniqueFd connect_unix(const std::string &path);

// Waits for `fd` to become readable; false on timeout.
bool wait_readable(int fd, std::chrono::milliseconds timeout);

} // namespace common
