// SPDX-License-Identifier: GPL-2.0
#include "qmp/client.hpp"

#include "common/unix_socket.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <cstring>
#include <sys/socket.h>

namespace qmp {

using nlohmann::json;

size_t object_length(const std::string &buf)
{
	size_t i = 0;
	while (i < buf.size() && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (i == buf.size())
		return 0;
	if (buf[i] != '{')
		throw ProtocolError("not a QMP message (starts with '" + buf.substr(i, 16) + "')");
	unsigned depth = 0;
	bool in_string = false, escaped = false;
	for (; i < buf.size(); i++) {
		char c = buf[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				throw ProtocolError("not a QMP message (unbalanced '" +
						    std::string(1, c) + "')");
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0;
}

Client::Client(const std::string &path, std::chrono::milliseconds timeout)
	: peer_(path), timeout_(timeout)
{
	try {
		fd_ = common::connect_unix(path);
	} catch (const vblk::SysError &e) {
		throw ConnectError(e.code(), e.what());
	}
	handshake();
}

Client::Client(vblk::UniqueFd fd, std::string peer, std::chrono::milliseconds timeout)
	: fd_(std::move(fd)), peer_(std::move(peer)), timeout_(timeout)
{
	handshake();
}

void Client::handshake()
{
	struct ucred cred = {};
	socklen_t len = sizeof(cred);
	if (::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		peer_pid_ = cred.pid;

	// QEMU greets a client only once the previous one has gone: a
	// missing greeting usually means someone else holds the monitor.
	json hello = read_message(Clock::now() + timeout_,
				  "the QMP greeting (is another client connected? QEMU serves "
				  "one client per QMP socket)");
	if (!hello.is_object() || !hello.contains("QMP") || !hello["QMP"].is_object())
		throw ProtocolError(peer_ + ": not a QMP socket (greeting " + hello.dump() + ")");
	greeting_ = hello["QMP"];
	execute("qmp_capabilities");
}

void Client::send(const json &msg)
{
	std::string out = msg.dump() + "\n";
	size_t done = 0;
	while (done < out.size()) {
		ssize_t n = ::send(fd_.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				throw ProtocolError(peer_ + ": QEMU closed the QMP connection");
			throw ProtocolError(peer_ + ": send: " + std::strerror(errno));
		}
		done += static_cast<size_t>(n);
	}
}

json Client::read_message(Clock::time_point deadline, const std::string &what)
{
	char buf[8192];
	for (;;) {
		if (size_t n = object_length(in_)) {
			std::string text = in_.substr(0, n);
			in_.erase(0, n);
			try {
				return json::parse(text);
			} catch (const json::exception &e) {
				throw ProtocolError(peer_ + ": malformed QMP message: " + e.what());
			}
		}
		if (in_.size() > max_message)
			throw ProtocolError(peer_ + ": QMP message larger than " +
					    std::to_string(max_message) + " bytes");
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  Clock::now());
		if (left.count() < 0 || !common::wait_readable(fd_.get(), left))
			throw TimeoutError(peer_ + ": no answer from QEMU within " +
					   std::to_string(timeout_.count()) + " ms, waiting for " +
					   what);
		ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno != ECONNRESET)
			throw ProtocolError(peer_ + ": recv: " + std::strerror(errno));
		if (n <= 0)
			throw ProtocolError(peer_ + ": QEMU closed the QMP connection while we waited for " +
					    what);
		in_.append(buf, static_cast<size_t>(n));
	}
}

json Client::execute(const std::string &command, const json &arguments)
{
	std::string id = "vhost-blkctl-" + std::to_string(next_id_++);
	json msg = { { "execute", command }, { "id", id } };
	if (!arguments.is_null())
		msg["arguments"] = arguments;
	send(msg);
	auto deadline = Clock::now() + timeout_;
	for (;;) {
		json reply = read_message(deadline, "the reply to " + command);
		if (!reply.is_object())
			throw ProtocolError(peer_ + ": malformed QMP message: " + reply.dump());
		if (reply.contains("event")) {
			events_skipped_++;
			continue;
		}
		// A reply to someone else's command (QMP echoes "id"): not ours.
		if (reply.contains("id") && reply["id"] != id)
			continue;
		if (auto r = reply.find("return"); r != reply.end())
			return *r;
		if (auto e = reply.find("error"); e != reply.end() && e->is_object()) {
			auto str = [&](const char *key, const char *dflt) {
				auto it = e->find(key);
				return it != e->end() && it->is_string() ? it->get<std::string>()
									 : std::string(dflt);
			};
			throw CommandError(command, str("class", "GenericError"),
					   str("desc", "unknown error"));
		}
		throw ProtocolError(peer_ + ": unexpected QMP message: " + reply.dump());
	}
}

} // namespace qmp
