// SPDX-License-Identifier: GPL-2.0
// A QEMU monitor for the tests: one QMP connection served by a script in a
// thread, over a socketpair or a unix socket in a temporary directory.
#pragma once

#include "common/unix_socket.hpp"
#include "qmp/client.hpp"

#include <vblk/error.hpp>
#include <vblk/fd.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace fake_qemu {

using nlohmann::json;

// Bounds every wait of the fake, so a broken test fails instead of hanging.
inline constexpr std::chrono::milliseconds server_wait = std::chrono::seconds(5);

// The server's end of one connection.
class Conn {
public:
	explicit Conn(vblk::UniqueFd fd) : fd_(std::move(fd)) {}

	void send_raw(const std::string &s)
	{
		(void)::send(fd_.get(), s.data(), s.size(), MSG_NOSIGNAL);
	}
	void send(const json &j) { send_raw(j.dump() + "\r\n"); }
	// The next JSON object from the client; null when it closed or
	// nothing came within server_wait.
	json recv()
	{
		for (;;) {
			if (size_t n = qmp::object_length(in_)) {
				json j = json::parse(in_.substr(0, n));
				in_.erase(0, n);
				return j;
			}
			if (!common::wait_readable(fd_.get(), server_wait))
				return nullptr;
			char buf[4096];
			ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
			if (n <= 0)
				return nullptr;
			in_.append(buf, static_cast<size_t>(n));
		}
	}
	void close() { fd_.reset(); }

private:
	vblk::UniqueFd fd_;
	std::string in_;
};

inline json greeting()
{
	return json::parse(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 9},
		"package": "v9.2.0-vhost-blk"}, "capabilities": ["oob"]}})");
}

inline json event(const std::string &name)
{
	return { { "event", name },
		 { "data", json::object() },
		 { "timestamp", { { "seconds", 1700000000 }, { "microseconds", 1 } } } };
}

// {"return": value} for `cmd`, echoing its id as QEMU does.
inline json ret(const json &cmd, json value = json::object())
{
	json r = { { "return", std::move(value) } };
	if (cmd.contains("id"))
		r["id"] = cmd["id"];
	return r;
}

inline json error(const json &cmd, const std::string &cls, const std::string &desc)
{
	json r = { { "error", { { "class", cls }, { "desc", desc } } } };
	if (cmd.contains("id"))
		r["id"] = cmd["id"];
	return r;
}

// Runs `script` on one connection in a thread.
class Server {
public:
	using Script = std::function<void(Conn &)>;

	// Over a socketpair: client_fd() is the client's end.
	explicit Server(Script script)
	{
		int sv[2];
		vblk::check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
		client_.reset(sv[0]);
		vblk::UniqueFd server(sv[1]);
		thread_ = std::thread([s = std::move(script), fd = std::move(server)]() mutable {
			Conn c(std::move(fd));
			s(c);
		});
	}

	// Listening on `path`; serves the first connection.
	Server(const std::string &path, Script script)
	{
		vblk::UniqueFd l = common::listen_unix(path);
		thread_ = std::thread([s = std::move(script), l = std::move(l)]() mutable {
			if (!common::wait_readable(l.get(), server_wait))
				return;
			Conn c(common::accept_unix(l.get()));
			s(c);
		});
	}

	~Server()
	{
		client_.reset();
		if (thread_.joinable())
			thread_.join();
	}

	vblk::UniqueFd client_fd() { return std::move(client_); }

private:
	vblk::UniqueFd client_;
	std::thread thread_;
};

// What a QEMU does: greeting, qmp_capabilities, then each command answered
// with the messages `answer` returns.  Records the commands it received
// (without qmp_capabilities).
class Monitor {
public:
	using Answer = std::function<std::vector<json>(const json &cmd)>;

	explicit Monitor(Answer answer) : answer_(std::move(answer)) {}

	Server::Script script()
	{
		return [this](Conn &c) {
			c.send(greeting());
			json caps = c.recv();
			if (caps.is_null())
				return;
			c.send(ret(caps));
			for (json cmd; !(cmd = c.recv()).is_null();) {
				{
					std::lock_guard<std::mutex> g(mu_);
					commands_.push_back(cmd);
				}
				for (const auto &m : answer_(cmd))
					c.send(m);
			}
		};
	}

	std::vector<json> commands()
	{
		std::lock_guard<std::mutex> g(mu_);
		return commands_;
	}

private:
	Answer answer_;
	std::mutex mu_;
	std::vector<json> commands_;
};

// A VhostBlkInfo as the patched QEMU returns it: 2 queues, 2 workers,
// every counter distinct.
inline json vhost_blk_info(bool started = true)
{
	json j = json::parse(R"({
	  "id": "vblk0", "drive": "drive0", "serial": "VM1DISK", "size": 1073741824,
	  "block-size": 4096, "queues": 2, "read-only": true, "poll-us": 50,
	  "started": true, "starts": 3, "features": 4848615424, "policy": "round-robin:2",
	  "workers": [ { "index": 0, "kernel-id": 4711, "vqs": [0] },
		       { "index": 1, "kernel-id": 4712, "vqs": [1] } ],
	  "vqs": [
	    { "index": 0, "worker": 0, "worker-id": 4711, "started": true, "attached": true,
	      "stopped": false, "inflight": 3, "requests": [1, 2, 3, 4, 5, 6, 7, 8],
	      "bytes": [11, 12, 13, 14, 15, 16, 17, 18], "status-ok": 21, "status-ioerr": 22,
	      "status-unsupp": 23, "bounced": 24, "malformed": 25, "batches": 26,
	      "throttled": 27, "max-hold-ns": 28 },
	    { "index": 1, "worker": 1, "worker-id": 4712, "started": true, "attached": false,
	      "stopped": true, "inflight": 0, "requests": [31, 32, 33, 34, 35, 36, 37, 38],
	      "bytes": [41, 42, 43, 44, 45, 46, 47, 48], "status-ok": 51, "status-ioerr": 52,
	      "status-unsupp": 53, "bounced": 54, "malformed": 55, "batches": 56,
	      "throttled": 57, "max-hold-ns": 58 } ]
	})");
	j["started"] = started;
	return j;
}

} // namespace fake_qemu
