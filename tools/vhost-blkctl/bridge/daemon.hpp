// SPDX-License-Identifier: GPL-2.0
// The serve loop: the vhost-user listening socket, the connected frontend,
// the control socket and SIGTERM/SIGINT, in one poll() loop.  Everything
// runs on this thread; a control request is answered between two
// vhost-user messages.
#pragma once

#include "bridge/disk.hpp"

#include <functional>
#include <vector>

namespace bridge {

struct PollSource {
	int fd;
	std::function<void()> on_readable;
};

class Daemon {
public:
	Daemon(Disk &disk, vblk::UniqueFd listen_fd, Logger log)
		: disk_(disk), listen_(std::move(listen_fd)), log_(std::move(log))
	{
	}

	void add_source(PollSource s) { extra_.push_back(std::move(s)); }
	// Called once `stop_fd` fired, before the rings are drained.
	void on_stopping(std::function<void()> f) { on_stopping_ = std::move(f); }
	// Runs until `stop_fd` (a signalfd or eventfd) becomes readable; then
	// stops the rings (draining) and closes the connection.
	void run(int stop_fd);

private:
	Disk &disk_;
	vblk::UniqueFd listen_;
	Logger log_;
	std::vector<PollSource> extra_;
	std::function<void()> on_stopping_;
};

} // namespace bridge
