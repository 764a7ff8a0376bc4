// SPDX-License-Identifier: GPL-2.0
// A QMP client: one connection to a QEMU monitor socket, in command mode.
//
//   qmp::Client c("/run/vm1.qmp");           // greeting + qmp_capabilities
//   json info = c.execute("x-query-vhost-blk", {{"id", "vblk0"}});
//
// Every wait is bounded by the client's timeout, so a QEMU that hangs (or
// a socket on which QEMU is busy with another client: it serves one at a
// time) is an error, not a hang.  Asynchronous events that arrive while a
// reply is awaited are skipped.  Knows nothing of vhost-blk.
#pragma once

#include <vblk/fd.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <sys/types.h>

namespace qmp {

inline constexpr std::chrono::milliseconds default_timeout = std::chrono::seconds(10);

// Base of everything the client throws.
class Error : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// connect() failed; error_number() tells why (ENOENT, ECONNREFUSED: no QEMU
// there; EACCES: no permission on the socket).
class ConnectError : public Error {
public:
	ConnectError(int err, const std::string &msg) : Error(msg), errno_(err) {}
	int error_number() const noexcept { return errno_; }

private:
	int errno_;
};

// No complete message within the timeout.
class TimeoutError : public Error {
public:
	using Error::Error;
};

// The peer closed the connection, sent something that is not QMP, or a
// reply of the wrong shape.
class ProtocolError : public Error {
public:
	using Error::Error;
};

// QEMU answered a command with {"error": {"class": ..., "desc": ...}}.
class CommandError : public Error {
public:
	CommandError(std::string command, std::string error_class, std::string desc)
		: Error(command + ": " + desc), command_(std::move(command)),
		  class_(std::move(error_class)), desc_(std::move(desc))
	{
	}
	const std::string &command() const noexcept { return command_; }
	// "GenericError", "CommandNotFound", "DeviceNotFound", ...
	const std::string &error_class() const noexcept { return class_; }
	// QEMU's human-readable message.
	const std::string &desc() const noexcept { return desc_; }

private:
	std::string command_, class_, desc_;
};

class Client {
public:
	// Connects to the unix socket `path` (ConnectError), reads the
	// greeting and enters command mode.
	explicit Client(const std::string &path, std::chrono::milliseconds timeout = default_timeout);
	// Same over a connected stream socket (a socketpair in the tests);
	// `peer` names it in messages.
	Client(vblk::UniqueFd fd, std::string peer,
	       std::chrono::milliseconds timeout = default_timeout);

	// Runs `command` with `arguments` (an object, or null for none) and
	// returns its "return" value.  Throws CommandError, TimeoutError,
	// ProtocolError.
	nlohmann::json execute(const std::string &command,
			       const nlohmann::json &arguments = nullptr);

	// The greeting's "QMP" object (version, capabilities).
	const nlohmann::json &greeting() const noexcept { return greeting_; }
	// The process on the other end (SO_PEERCRED), 0 if unknown.
	pid_t peer_pid() const noexcept { return peer_pid_; }
	const std::string &peer() const noexcept { return peer_; }
	// Events skipped so far while waiting for replies.
	uint64_t events_skipped() const noexcept { return events_skipped_; }

	// Largest message accepted: QEMU's replies are far smaller.
	static constexpr size_t max_message = 16u << 20;

private:
	using Clock = std::chrono::steady_clock;

	void handshake();
	void send(const nlohmann::json &msg);
	// The next complete JSON object from the socket, waiting until
	// `deadline`; `what` says what was awaited, for the error message.
	nlohmann::json read_message(Clock::time_point deadline, const std::string &what);

	vblk::UniqueFd fd_;
	std::string peer_;
	std::chrono::milliseconds timeout_;
	std::string in_;	// received, not yet parsed
	nlohmann::json greeting_;
	pid_t peer_pid_ = 0;
	uint64_t next_id_ = 1;
	uint64_t events_skipped_ = 0;
};

// Length of the first complete JSON object in `buf` after leading
// whitespace (the whitespace included), 0 if it is not complete yet.
// QEMU separates messages with "\r\n", and with -mon pretty=on one message
// spans many lines, so objects are found by their braces, not by lines.
// Throws ProtocolError if `buf` does not start with an object.
size_t object_length(const std::string &buf);

} // namespace qmp
