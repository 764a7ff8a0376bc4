// SPDX-License-Identifier: GPL-2.0
#include "control/client.hpp"

#include "common/unix_socket.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <sys/socket.h>

namespace control {

nlohmann::json request(const std::string &path, const nlohmann::json &req,
		       std::chrono::milliseconds timeout)
{
	vblk::UniqueFd s;
	try {
		s = common::connect_unix(path);
	} catch (const vblk::SysError &e) {
		bool denied = e.code() == EACCES || e.code() == EPERM;
		throw ClientError(denied ? ClientError::Kind::permission_denied
					 : ClientError::Kind::not_running,
				  e.what());
	}
	std::string out = req.dump() + "\n";
	if (::send(s.get(), out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
		throw ClientError(ClientError::Kind::no_answer, "send to " + path + " failed");
	std::string in;
	char buf[8192];
	while (in.find('\n') == std::string::npos) {
		if (!common::wait_readable(s.get(), timeout))
			throw ClientError(ClientError::Kind::no_answer,
					  path + ": no answer within " +
						  std::to_string(timeout.count()) + " ms");
		ssize_t n = ::recv(s.get(), buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		in.append(buf, static_cast<size_t>(n));
	}
	try {
		return nlohmann::json::parse(in.substr(0, in.find('\n')));
	} catch (const nlohmann::json::exception &) {
		throw ClientError(ClientError::Kind::no_answer, path + ": malformed answer");
	}
}

} // namespace control
