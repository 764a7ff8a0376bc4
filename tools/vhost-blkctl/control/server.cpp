// SPDX-License-Identifier: GPL-2.0
#include "control/server.hpp"

#include "common/unix_socket.hpp"
#include "control/json.hpp"

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace control {

namespace {

constexpr size_t max_request = 64 * 1024;

} // namespace

Server::Server(const std::string &path, Service &svc)
	: path_(path), svc_(svc), listen_(common::listen_unix(path, 0600))
{
}

Server::~Server()
{
	::unlink(path_.c_str());
}

void Server::on_readable() noexcept
{
	try {
		vblk::UniqueFd c = common::accept_unix(listen_.get());
		if (!c)
			return;
		std::string line;
		char buf[4096];
		while (line.find('\n') == std::string::npos && line.size() < max_request) {
			if (!common::wait_readable(c.get(), std::chrono::seconds(2)))
				return;
			ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			line.append(buf, static_cast<size_t>(n));
		}
		line = line.substr(0, line.find('\n'));
		std::string out = handle_request(svc_, line).dump() + "\n";
		size_t done = 0;
		while (done < out.size()) {
			ssize_t n = ::send(c.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return;
			done += static_cast<size_t>(n);
		}
	} catch (const std::exception &) {
		// The client goes without an answer; the daemon carries on.
	}
}

} // namespace control
