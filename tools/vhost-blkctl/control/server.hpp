// SPDX-License-Identifier: GPL-2.0
// The daemon's side of the control socket.
#pragma once

#include "control/status.hpp"

#include <vblk/fd.hpp>

#include <string>

namespace control {

class Server {
public:
	// Listens on `path` (mode 0600); removes it on destruction.
	Server(const std::string &path, Service &svc);
	~Server();
	Server(const Server &) = delete;
	Server &operator=(const Server &) = delete;

	int fd() const noexcept { return listen_.get(); }
	const std::string &path() const noexcept { return path_; }
	// Accepts one client, reads its request line (up to 64 KiB, 2 s),
	// answers, closes.  Never throws: a bad client only loses its answer.
	void on_readable() noexcept;

private:
	std::string path_;
	Service &svc_;
	vblk::UniqueFd listen_;
};

} // namespace control
