// SPDX-License-Identifier: GPL-2.0
#include "bridge/daemon.hpp"

#include "common/unix_socket.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <poll.h>

namespace bridge {

void Daemon::run(int stop_fd)
{
	for (;;) {
		std::vector<pollfd> fds;
		fds.push_back({ stop_fd, POLLIN, 0 });
		// While a frontend is connected, the next one waits in the
		// listen backlog.
		bool conn = disk_.connected();
		fds.push_back({ conn ? disk_.connection_fd() : listen_.get(), POLLIN, 0 });
		for (const auto &s : extra_)
			fds.push_back({ s.fd, POLLIN, 0 });
		int rc = ::poll(fds.data(), fds.size(), -1);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			throw vblk::SysError(errno, "poll");
		}
		if (fds[0].revents) {
			log_("shutting down");
			if (on_stopping_)
				on_stopping_();
			if (disk_.connected())
				disk_.disconnect("shutting down");
			return;
		}
		if (fds[1].revents) {
			if (conn) {
				disk_.on_readable();
			} else {
				try {
					vblk::UniqueFd c = common::accept_unix(listen_.get());
					if (c)
						disk_.on_connect(std::move(c));
				} catch (const vblk::SysError &e) {
					// EMFILE and friends: try again later.
					log_(e.what());
					::poll(nullptr, 0, 100);
				}
			}
		}
		for (size_t i = 0; i < extra_.size(); i++)
			if (fds[2 + i].revents)
				extra_[i].on_readable();
	}
}

} // namespace bridge
