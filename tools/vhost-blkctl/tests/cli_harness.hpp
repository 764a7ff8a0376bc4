// SPDX-License-Identifier: GPL-2.0
// Running the whole CLI in-process against fake daemons: what the golden,
// contract and exit-code tests share.
#pragma once

#include "cli/cli.hpp"
#include "common/unix_socket.hpp"
#include "control/json.hpp"
#include "control/rundir.hpp"
#include "control/server.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace cli_harness {

using test_util::TempDir;

struct Result {
	int code;
	std::string out, err;
};

// main_entry(args) with stdout and stderr captured.
inline Result run(std::vector<std::string> args)
{
	std::vector<char *> argv;
	std::string prog = "vhost-blkctl";
	argv.push_back(prog.data());
	for (auto &a : args)
		argv.push_back(a.data());
	std::ostringstream out, err;
	auto *o = std::cout.rdbuf(out.rdbuf());
	auto *e = std::cerr.rdbuf(err.rdbuf());
	int code = cli::main_entry(static_cast<int>(argv.size()), argv.data());
	std::cout.rdbuf(o);
	std::cerr.rdbuf(e);
	return { code, out.str(), err.str() };
}

// Waits (up to 10 s, so a CLI that never calls fails instead of hanging)
// for a connection on `fd`; true if one is pending.
inline bool wait_for_client(int fd)
{
	pollfd p{ fd, POLLIN, 0 };
	return ::poll(&p, 1, 10000) == 1;
}

// A disk's daemon that answers `requests` control requests with `svc`, on
// its own thread.
class FakeDaemon {
public:
	FakeDaemon(const std::string &run_dir, const std::string &name, control::Service &svc,
		   unsigned requests = 1)
		: srv_(control::socket_path(run_dir, name), svc)
	{
		thread_ = std::thread([this, requests] {
			for (unsigned i = 0; i < requests && wait_for_client(srv_.fd()); i++)
				srv_.on_readable();
		});
	}
	~FakeDaemon() { thread_.join(); }

private:
	control::Server srv_;
	std::thread thread_;
};

// A daemon of another version: answers one request with `reply` as it is.
class RawDaemon {
public:
	RawDaemon(const std::string &run_dir, const std::string &name, nlohmann::json reply)
		: listen_(common::listen_unix(control::socket_path(run_dir, name)))
	{
		thread_ = std::thread([this, line = reply.dump() + "\n"] {
			if (!wait_for_client(listen_.get()))
				return;
			vblk::UniqueFd c = common::accept_unix(listen_.get());
			char buf[4096];
			std::string in;
			while (in.find('\n') == std::string::npos) {
				ssize_t n = ::recv(c.get(), buf, sizeof(buf), 0);
				if (n <= 0)
					return;
				in.append(buf, static_cast<size_t>(n));
			}
			request = nlohmann::json::parse(in.substr(0, in.find('\n')));
			(void)!::send(c.get(), line.data(), line.size(), MSG_NOSIGNAL);
		});
	}
	~RawDaemon() { thread_.join(); }

	nlohmann::json request;	// what the CLI sent (after the destructor ran)

private:
	vblk::UniqueFd listen_;
	std::thread thread_;
};

// A status with every field set, nothing taken from the machine.
inline control::DiskStatus sample_status()
{
	control::DiskStatus d;
	d.name = "vm1-root";
	d.pid = 4242;
	d.backend = "/dev/nullb0";
	d.socket = "/run/vm1-root.sock";
	d.serial = "SER-1";
	d.size_bytes = 1ull << 30;
	d.block_size = 512;
	d.queues = 2;
	d.poll_us = 200;
	d.connected = true;
	d.connections = 3;
	d.features = 0x130000a54ull;
	d.write_cache = "write-through";
	d.policy = "round-robin:2";
	d.workers = { { 0, 7, { 0 } }, { 1, 8, { 1 } } };
	control::VqStatus v0, v1;
	v0.index = 0;
	v0.worker = 0;
	v0.worker_id = 7;
	v0.started = v0.attached = true;
	v0.requests[0] = 1200;
	v0.requests[1] = 300;
	v0.requests[2] = 4;
	v0.requests[3] = 1;
	v0.bytes[0] = 4915200;
	v0.bytes[1] = 1228800;
	v0.status_ok = 1505;
	v0.batches = 900;
	v0.poll_us = 64;
	v0.poll_hits = 1180;
	v0.poll_misses = 37;
	v1.index = 1;
	v1.worker = 1;
	v1.worker_id = 8;
	v1.started = v1.attached = true;
	v1.inflight = 2;
	v1.requests[1] = 10;
	v1.bytes[1] = 40960;
	v1.status_ok = 8;
	v1.status_ioerr = 2;
	v1.batches = 10;
	v1.stopped = true;
	v1.throttled = 5;
	v1.fua_writes = 10;
	v1.poll_us = 0;
	v1.poll_hits = 2;
	v1.poll_misses = 9;
	d.vqs = { v0, v1 };
	d.vqs_source = "live";
	return d;
}

struct FakeService : control::Service {
	control::DiskStatus s = sample_status();
	control::DiskStatus status() override { return s; }
	void set_workers(unsigned) override {}
	void assign(unsigned, unsigned) override {}
	void set_policy(const std::string &) override {}
	// The last placement asked for: "all 0-1", "1 3".
	std::string cpus_asked;
	void set_cpus(std::optional<unsigned> w, const std::string &cpus) override
	{
		cpus_asked = (w ? std::to_string(*w) : std::string("all")) + " " + cpus;
	}
	// The ceiling asked for last; the status then reports it.
	std::optional<unsigned> poll_asked;
	void set_poll(unsigned us) override
	{
		poll_asked = us;
		s.poll_us = us;
	}
};

// `text` with every occurrence of `from` replaced by `to`.
inline std::string replace_all(std::string text, const std::string &from, const std::string &to)
{
	for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
		text.replace(at, from.size(), to);
	return text;
}

} // namespace cli_harness
