// SPDX-License-Identifier: GPL-2.0
// The QMP client against a fake QEMU monitor, the VhostBlkInfo ->
// DiskStatus mapping, and the CLI's QMP path with its exit codes.
#include "cli/cli.hpp"
#include "cli/common.hpp"
#include "control/json.hpp"
#include "fake_qemu.hpp"
#include "qmp/client.hpp"
#include "qmp/vhost_blk.hpp"

#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <vblk/cpu_list.hpp>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <pthread.h>
#include <mutex>
#include <sstream>
#include <thread>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace fake_qemu;
using namespace std::chrono_literals;

using test_util::TempDir;

namespace {

// A QEMU whose device "vblk0" answers every vhost-blk command, with `info`
// for x-query-vhost-blk; other ids and out-of-range arguments get QEMU's
// GenericError.
std::vector<json> vhost_blk_qemu_with(const json &info, const json &cmd)
{
	const json &args = cmd.value("arguments", json::object());
	std::string name = cmd.value("execute", "");
	if (name.rfind("x-vhost-blk", 0) == 0 || name == "x-query-vhost-blk") {
		if (args.value("id", "") != "vblk0")
			return { error(cmd, "GenericError",
				       "Device '" + args.value("id", "") + "' not found") };
	} else {
		return { error(cmd, "CommandNotFound", "The command " + name + " has not been found") };
	}
	if (name == "x-query-vhost-blk")
		return { ret(cmd, info) };
	if (name == "x-vhost-blk-assign" && args.value("vq", 0) >= 2)
		return { error(cmd, "GenericError",
			       "vq " + std::to_string(args.value("vq", 0)) + " out of range (0-1)") };
	return { ret(cmd) };
}

// ... as a QEMU built before the keys vhost_blk_info() leaves out.
std::vector<json> vhost_blk_qemu(const json &cmd)
{
	return vhost_blk_qemu_with(vhost_blk_info(), cmd);
}

// vhost_blk_info() with the keys added since: the drive's block size, the
// write cache, the rings' FUA, RMW and polling counters, and a thread per
// worker (`tids`, -1: none).
json vhost_blk_info_now(std::vector<int64_t> tids)
{
	json j = vhost_blk_info();
	j["backend-block-size"] = 4096;
	j["write-cache"] = "write-through";
	for (size_t w = 0; w < j["workers"].size(); w++)
		j["workers"][w]["tid"] = w < tids.size() ? tids[w] : -1;
	for (auto &v : j["vqs"]) {
		uint64_t base = v["index"].get<uint64_t>() * 30;
		v["fua-writes"] = base + 29;
		v["rmw"] = base + 30;
		v["poll-us"] = base + 31;
		v["poll-hits"] = base + 32;
		v["poll-misses"] = base + 33;
	}
	return j;
}

// A QEMU answering as vhost_blk_qemu (or with `info`) on a QMP socket of
// its own, for one client.
struct QmpSocket {
	QmpSocket() = default;
	explicit QmpSocket(json info)
		: qemu([info](const json &cmd) { return vhost_blk_qemu_with(info, cmd); })
	{
	}
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	Monitor qemu{ vhost_blk_qemu };
	Server srv{ sock, qemu.script() };
};

// A thread of this process (the fake QEMU's pid) that lives as long as the
// object: a worker thread QEMU names, called "vhost-<pid>" as the vhost
// core's are (or `name`).
class Thread {
public:
	explicit Thread(std::string name = "vhost-" + std::to_string(::getpid()))
		: t_([this, name] {
			  ::pthread_setname_np(::pthread_self(), name.c_str());
			  tid_.set_value(::gettid());
			  std::unique_lock<std::mutex> l(mu_);
			  cv_.wait(l, [this] { return done_; });
		  })
	{
		tid = tid_.get_future().get();
	}
	~Thread()
	{
		{
			std::lock_guard<std::mutex> g(mu_);
			done_ = true;
		}
		cv_.notify_one();
		t_.join();
	}
	pid_t tid = 0;

private:
	std::promise<pid_t> tid_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool done_ = false;
	std::thread t_;
};

int run_main(std::vector<std::string> args)
{
	std::vector<char *> argv;
	std::string prog = "vhost-blkctl";
	argv.push_back(prog.data());
	for (auto &a : args)
		argv.push_back(a.data());
	return cli::main_entry(static_cast<int>(argv.size()), argv.data());
}

} // namespace

// --- the client ---------------------------------------------------------

TEST(QmpClient, greets_negotiates_capabilities_then_executes)
{
	std::vector<json> seen;
	{
		Server srv([&seen](Conn &c) {
			c.send(greeting());
			seen.push_back(c.recv());
			c.send(ret(seen.back()));
			seen.push_back(c.recv());
			c.send(ret(seen.back(), { { "status", "running" } }));
		});
		qmp::Client client(srv.client_fd(), "fake", 2s);
		EXPECT_EQ(client.greeting()["version"]["qemu"]["major"], 9);
		EXPECT_EQ(client.execute("query-status")["status"], "running");
	}	// the client closes, the server's thread ends
	ASSERT_EQ(seen.size(), 2u);
	EXPECT_EQ(seen[0]["execute"], "qmp_capabilities");
	EXPECT_FALSE(seen[0].contains("arguments"));
	EXPECT_EQ(seen[1]["execute"], "query-status");
	EXPECT_NE(seen[0]["id"], seen[1]["id"]);
}

TEST(QmpClient, events_before_the_reply_are_skipped)
{
	Monitor qemu([](const json &cmd) {
		return std::vector<json>{ event("RESUME"), event("BLOCK_IO_ERROR"),
					  ret(cmd, { { "answer", 42 } }) };
	});
	Server srv(qemu.script());
	qmp::Client client(srv.client_fd(), "fake", 2s);
	EXPECT_EQ(client.execute("query-answer")["answer"], 42);
	EXPECT_EQ(client.events_skipped(), 2u);
}

TEST(QmpClient, an_event_between_greeting_and_capabilities_reply_is_skipped)
{
	Server srv([](Conn &c) {
		c.send(greeting());
		json caps = c.recv();
		c.send(event("STOP"));
		c.send(ret(caps));
		json cmd = c.recv();
		c.send(ret(cmd, 7));
	});
	qmp::Client client(srv.client_fd(), "fake", 2s);
	EXPECT_EQ(client.execute("x"), 7);
	EXPECT_EQ(client.events_skipped(), 1u);
}

TEST(QmpClient, a_reply_with_another_id_is_not_taken_for_ours)
{
	Monitor qemu([](const json &cmd) {
		json other = ret(cmd, "not yours");
		other["id"] = "someone-else";
		return std::vector<json>{ other, ret(cmd, "yours") };
	});
	Server srv(qemu.script());
	qmp::Client client(srv.client_fd(), "fake", 2s);
	EXPECT_EQ(client.execute("x"), "yours");
}

TEST(QmpClient, pretty_printed_and_split_messages_are_reassembled)
{
	Server srv([](Conn &c) {
		// -mon pretty=on: one message over many lines, sent in pieces.
		std::string g = greeting().dump(4) + "\r\n";
		c.send_raw(g.substr(0, 10));
		std::this_thread::sleep_for(20ms);
		c.send_raw(g.substr(10));
		json caps = c.recv();
		c.send_raw(ret(caps).dump(4) + "\r\n");
		json cmd = c.recv();
		// Braces inside strings do not end the object.
		c.send_raw(ret(cmd, { { "desc", "a } tricky \" { string" } }).dump(4) + "\r\n");
	});
	qmp::Client client(srv.client_fd(), "fake", 2s);
	EXPECT_EQ(client.execute("x")["desc"], "a } tricky \" { string");
}

TEST(QmpClient, object_length_finds_one_complete_object)
{
	EXPECT_EQ(qmp::object_length(""), 0u);
	EXPECT_EQ(qmp::object_length("  \r\n"), 0u);
	EXPECT_EQ(qmp::object_length(R"({"a": {"b": [1, 2]})"), 0u);
	EXPECT_EQ(qmp::object_length(R"({"a": "}"}{"b": 1})"), 10u);
	EXPECT_EQ(qmp::object_length("\r\n{\"a\": \"\\\"}\"}x"), 14u);
	EXPECT_THROW(qmp::object_length("hello"), qmp::ProtocolError);
}

TEST(QmpClient, an_error_reply_carries_class_and_desc)
{
	Monitor qemu([](const json &cmd) {
		return std::vector<json>{ error(cmd, "GenericError", "Device 'nope' not found") };
	});
	Server srv(qemu.script());
	qmp::Client client(srv.client_fd(), "fake", 2s);
	try {
		client.execute("x-query-vhost-blk", { { "id", "nope" } });
		FAIL() << "no CommandError";
	} catch (const qmp::CommandError &e) {
		EXPECT_EQ(e.command(), "x-query-vhost-blk");
		EXPECT_EQ(e.error_class(), "GenericError");
		EXPECT_EQ(e.desc(), "Device 'nope' not found");
		EXPECT_STREQ(e.what(), "x-query-vhost-blk: Device 'nope' not found");
	}
	ASSERT_EQ(qemu.commands().size(), 1u);
	EXPECT_EQ(qemu.commands()[0]["arguments"], json({ { "id", "nope" } }));
}

TEST(QmpClient, a_server_that_never_answers_times_out)
{
	Monitor qemu([](const json &) { return std::vector<json>{}; });
	Server srv(qemu.script());
	qmp::Client client(srv.client_fd(), "fake", 200ms);
	auto t0 = std::chrono::steady_clock::now();
	try {
		client.execute("x-query-vhost-blk", { { "id", "vblk0" } });
		FAIL() << "no TimeoutError";
	} catch (const qmp::TimeoutError &e) {
		EXPECT_NE(std::string(e.what()).find("no answer from QEMU within 200 ms"),
			  std::string::npos)
			<< e.what();
		EXPECT_NE(std::string(e.what()).find("x-query-vhost-blk"), std::string::npos)
			<< e.what();
	}
	EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(QmpClient, events_do_not_extend_the_timeout)
{
	Server srv([](Conn &c) {
		c.send(greeting());
		c.send(ret(c.recv()));
		c.recv();
		for (int i = 0; i < 40; i++) {
			c.send(event("TICK"));
			std::this_thread::sleep_for(20ms);
		}
	});
	qmp::Client client(srv.client_fd(), "fake", 200ms);
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_THROW(client.execute("x"), qmp::TimeoutError);
	EXPECT_LT(std::chrono::steady_clock::now() - t0, 600ms);
}

TEST(QmpClient, no_greeting_times_out_and_says_why)
{
	// What a second client sees while QEMU serves another one.
	Server srv([](Conn &c) { c.recv(); });
	try {
		qmp::Client client(srv.client_fd(), "fake", 200ms);
		FAIL() << "no TimeoutError";
	} catch (const qmp::TimeoutError &e) {
		EXPECT_NE(std::string(e.what()).find("another client"), std::string::npos)
			<< e.what();
	}
}

TEST(QmpClient, a_server_that_closes_is_a_clear_error)
{
	Server srv([](Conn &c) {
		c.send(greeting());
		c.send(ret(c.recv()));
		c.recv();
		c.close();
	});
	qmp::Client client(srv.client_fd(), "fake", 2s);
	try {
		client.execute("x-query-vhost-blk", { { "id", "vblk0" } });
		FAIL() << "no ProtocolError";
	} catch (const qmp::ProtocolError &e) {
		EXPECT_NE(std::string(e.what()).find("QEMU closed the QMP connection"),
			  std::string::npos)
			<< e.what();
	}
}

TEST(QmpClient, a_socket_that_does_not_greet_in_qmp_is_refused)
{
	Server srv([](Conn &c) { c.send(json{ { "ok", true } }); });
	EXPECT_THROW(qmp::Client(srv.client_fd(), "fake", 2s), qmp::ProtocolError);
}

TEST(QmpClient, connecting_to_a_missing_socket_is_enoent)
{
	TempDir d;
	try {
		qmp::Client client(d.path + "/qmp.sock", 200ms);
		FAIL() << "no ConnectError";
	} catch (const qmp::ConnectError &e) {
		EXPECT_EQ(e.error_number(), ENOENT);
	}
}

TEST(QmpClient, peer_pid_is_the_qemu_process)
{
	TempDir d;
	Monitor qemu([](const json &cmd) { return std::vector<json>{ ret(cmd) }; });
	Server srv(d.path + "/qmp.sock", qemu.script());
	qmp::Client client(d.path + "/qmp.sock", 2s);
	EXPECT_EQ(client.peer_pid(), ::getpid());
	EXPECT_EQ(client.peer(), d.path + "/qmp.sock");
}

// --- VhostBlkInfo -> DiskStatus -----------------------------------------

TEST(QmpMapping, every_field_of_vhost_blk_info)
{
	control::DiskStatus want;
	want.name = "vblk0";
	want.pid = 1234;
	want.backend = "drive0";
	want.socket = "/run/vm1.qmp";
	want.serial = "VM1DISK";
	want.size_bytes = 1073741824;
	want.block_size = 4096;
	want.queues = 2;
	want.read_only = true;
	want.poll_us = 50;
	want.connected = true;
	want.connections = 3;
	want.features = 4848615424;
	want.policy = "round-robin:2";
	want.placement = "unknown";
	want.workers = { { 0, 4711, { 0 }, std::nullopt, std::nullopt }, { 1, 4712, { 1 }, std::nullopt, std::nullopt } };
	want.vqs_source = "live";
	for (unsigned q = 0; q < 2; q++) {
		control::VqStatus v;
		uint64_t base = q * 30;
		v.index = q;
		v.worker = q;
		v.worker_id = 4711 + q;
		v.started = true;
		v.attached = q == 0;
		v.stopped = q == 1;
		v.inflight = q == 0 ? 3 : 0;
		for (unsigned t = 0; t < control::VqStatus::nr_types; t++) {
			v.requests[t] = base + 1 + t;
			v.bytes[t] = base + 11 + t;
		}
		v.status_ok = base + 21;
		v.status_ioerr = base + 22;
		v.status_unsupp = base + 23;
		v.bounced = base + 24;
		v.malformed = base + 25;
		v.batches = base + 26;
		v.throttled = base + 27;
		want.vqs.push_back(v);
	}
	auto got = qmp::to_disk_status(vhost_blk_info(), "/run/vm1.qmp", 1234);
	// The JSON compares every field, and is what --json prints.
	EXPECT_EQ(json(got), json(want));
	EXPECT_EQ(json(got).get<control::DiskStatus>().vqs[1].throttled, 57u);
}

TEST(QmpMapping, the_rings_polling_is_not_reported_null_not_zero)
{
	json got = qmp::to_disk_status(vhost_blk_info(), "/q", 1);
	EXPECT_EQ(got["poll_us"], 50);	// the device's poll-us: the ceiling
	for (const auto &v : got["vqs"])
		for (const char *k : { "poll_us", "poll_hits", "poll_misses" }) {
			ASSERT_TRUE(v.contains(k)) << k;
			EXPECT_TRUE(v[k].is_null()) << k;
		}
	std::ostringstream table;
	cli::print_status(table, got.get<control::DiskStatus>());
	EXPECT_NE(table.str().find("         -\n"), std::string::npos) << table.str();
}

TEST(QmpMapping, the_keys_added_since_are_read)
{
	Thread worker0;
	auto got = qmp::to_disk_status(vhost_blk_info_now({ worker0.tid, -1 }), "/q", ::getpid());
	EXPECT_EQ(got.write_cache, "write-through");
	ASSERT_EQ(got.workers.size(), 2u);
	EXPECT_EQ(got.workers[0].tid, worker0.tid);
	EXPECT_EQ(got.workers[0].cpus, vblk::format_cpu_list(vblk::thread_cpus(worker0.tid)));
	EXPECT_EQ(got.workers[1].tid, std::nullopt);
	EXPECT_EQ(got.workers[1].cpus, std::nullopt);
	for (unsigned q = 0; q < 2; q++) {
		const auto &v = got.vqs[q];
		EXPECT_EQ(v.fua_writes, q * 30 + 29);
		EXPECT_EQ(v.poll_us, q * 30 + 31);
		EXPECT_EQ(v.poll_hits, q * 30 + 32);
		EXPECT_EQ(v.poll_misses, q * 30 + 33);
	}
	std::ostringstream table;
	cli::print_status(table, got);
	EXPECT_NE(table.str().find(std::to_string(worker0.tid)), std::string::npos) << table.str();
	EXPECT_NE(table.str().find("31us/32/33"), std::string::npos) << table.str();
}

// QEMU names threads in its pid namespace: a tid that is not a vhost
// worker thread of the QEMU process as this process sees it (another
// process's, another thread of QEMU's, none) is not shown, or placed.
TEST(QmpMapping, a_tid_that_is_not_a_vhost_thread_of_qemu_is_dropped)
{
	Thread worker, vcpu("CPU 0/TCG");
	auto got = qmp::to_disk_status(vhost_blk_info_now({ worker.tid, 0x7ffffff0 }), "/q",
				       ::getppid());
	EXPECT_EQ(got.workers[0].tid, std::nullopt);
	EXPECT_EQ(got.workers[1].tid, std::nullopt);
	got = qmp::to_disk_status(vhost_blk_info_now({ worker.tid }), "/q", 0);
	EXPECT_EQ(got.workers[0].tid, std::nullopt);
	got = qmp::to_disk_status(vhost_blk_info_now({ vcpu.tid, worker.tid }), "/q", ::getpid());
	EXPECT_EQ(got.workers[0].tid, std::nullopt);
	EXPECT_EQ(got.workers[1].tid, worker.tid);
}

TEST(QmpMapping, a_device_not_started_has_no_live_counters)
{
	auto got = qmp::to_disk_status(vhost_blk_info(false), "/q", 1);
	EXPECT_FALSE(got.connected);
	EXPECT_EQ(got.vqs_source, "none");
	EXPECT_EQ(got.connections, 3u);
}

TEST(QmpMapping, a_missing_or_mistyped_key_is_named)
{
	json info = vhost_blk_info();
	info["vqs"][1].erase("status-ioerr");
	try {
		qmp::to_disk_status(info, "/q", 1);
		FAIL() << "no ProtocolError";
	} catch (const qmp::ProtocolError &e) {
		EXPECT_NE(std::string(e.what()).find("'status-ioerr'"), std::string::npos)
			<< e.what();
	}
	info = vhost_blk_info();
	info["workers"] = "none";
	EXPECT_THROW(qmp::to_disk_status(info, "/q", 1), qmp::ProtocolError);
	info = vhost_blk_info();
	info["size"] = -1;
	EXPECT_THROW(qmp::to_disk_status(info, "/q", 1), qmp::ProtocolError);
}

// --- the device behind control::Service ---------------------------------

TEST(QmpDevice, workers_assign_and_policies_become_qmp_commands)
{
	Monitor qemu(vhost_blk_qemu);
	Server srv(qemu.script());
	qmp::Client client(srv.client_fd(), "fake", 2s);
	qmp::VhostBlkDevice dev(client, "vblk0");
	dev.set_workers(2);
	dev.assign(1, 0);
	dev.set_policy("single");
	dev.set_policy("per-vq");
	dev.set_policy("round-robin:2");
	EXPECT_THROW(dev.set_policy("round-robin:3"), control::RequestError);
	std::vector<json> sent;
	for (const auto &c : qemu.commands())
		if (c["execute"] != "x-query-vhost-blk")
			sent.push_back({ c["execute"], c["arguments"] });
	EXPECT_EQ(sent, (std::vector<json>{
				{ "x-vhost-blk-set-workers", { { "id", "vblk0" }, { "count", 2 } } },
				{ "x-vhost-blk-assign",
				  { { "id", "vblk0" }, { "vq", 1 }, { "worker", 0 } } },
				{ "x-vhost-blk-set-workers", { { "id", "vblk0" }, { "count", 1 } } },
				{ "x-vhost-blk-set-workers", { { "id", "vblk0" }, { "count", 2 } } },
				{ "x-vhost-blk-set-workers", { { "id", "vblk0" }, { "count", 2 } } },
			}));
}

// --- the CLI's QMP path and its exit codes ------------------------------

TEST(QmpCli, status_json_is_the_disk_status_of_the_device)
{
	QmpSocket q;
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "status", "--qmp", q.sock, "--id", "vblk0", "--json" }), cli::exit_ok);
	auto out = json::parse(testing::internal::GetCapturedStdout());
	EXPECT_EQ(out, control::document(qmp::to_disk_status(vhost_blk_info(), q.sock, ::getpid())));
}

TEST(QmpCli, status_table_is_the_same_as_for_a_served_disk)
{
	QmpSocket q;
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "status", "--qmp", q.sock, "--id", "vblk0" }), cli::exit_ok);
	std::string out = testing::internal::GetCapturedStdout();
	std::ostringstream want;
	cli::print_status(want, qmp::to_disk_status(vhost_blk_info(), q.sock, ::getpid()));
	EXPECT_EQ(out, want.str());
	EXPECT_NE(out.find("disk vblk0 (pid " + std::to_string(::getpid()) + ")"),
		  std::string::npos)
		<< out;
}

TEST(QmpCli, workers_sets_the_count_then_prints_the_new_status)
{
	QmpSocket q;
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "workers", "--qmp", q.sock, "--id", "vblk0", "--count", "2", "--json" }),
		  cli::exit_ok);
	EXPECT_EQ(json::parse(testing::internal::GetCapturedStdout())["name"], "vblk0");
	auto cmds = q.qemu.commands();
	ASSERT_EQ(cmds.size(), 2u);
	EXPECT_EQ(cmds[0]["execute"], "x-vhost-blk-set-workers");
	EXPECT_EQ(cmds[0]["arguments"], json({ { "id", "vblk0" }, { "count", 2 } }));
	EXPECT_EQ(cmds[1]["execute"], "x-query-vhost-blk");
}

TEST(QmpCli, assign_per_vq_sets_one_worker_per_queue)
{
	QmpSocket q;
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "assign", "--qmp", q.sock, "--id", "vblk0", "--policy", "per-vq" }),
		  cli::exit_ok);
	testing::internal::GetCapturedStdout();
	bool set = false;
	for (const auto &c : q.qemu.commands())
		if (c["execute"] == "x-vhost-blk-set-workers") {
			EXPECT_EQ(c["arguments"]["count"], 2);
			set = true;
		}
	EXPECT_TRUE(set);
}

TEST(QmpCli, a_generic_error_is_rejected_with_qemus_message)
{
	QmpSocket q;
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "assign", "--qmp", q.sock, "--id", "vblk0", "--vq", "7", "--worker",
			     "0" }),
		  cli::exit_rejected);
	EXPECT_EQ(testing::internal::GetCapturedStderr(),
		  "vhost-blkctl: device 'vblk0' on " + q.sock + ": vq 7 out of range (0-1)\n");
}

TEST(QmpCli, an_unknown_device_id_is_rejected_with_qemus_message)
{
	QmpSocket q;
	try {
		cli::call_qmp(q.sock, "nope", { { "cmd", "status" } }, 2s);
		FAIL() << "no CliError";
	} catch (const cli::CliError &e) {
		EXPECT_EQ(e.code(), cli::exit_rejected);
		EXPECT_NE(std::string(e.what()).find("Device 'nope' not found"), std::string::npos)
			<< e.what();
	}
}

// The device has no command to change polling (poll-us is a device
// property): refused without a command sent to QEMU.
TEST(QmpCli, poll_is_refused)
{
	QmpSocket q;
	testing::internal::CaptureStderr();
	int poll = run_main({ "poll", "--qmp", q.sock, "--id", "vblk0", "--us", "100" });
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_EQ(poll, cli::exit_kernel);
	EXPECT_NE(err.find("cannot change busy polling while it runs"), std::string::npos) << err;
	EXPECT_NE(err.find("poll-us=N"), std::string::npos) << err;
	EXPECT_TRUE(q.qemu.commands().empty());
}

// workers --cpus places the threads QEMU names, from this process: the
// thread's CPUs change, and the new status shows them.
TEST(QmpCli, workers_cpus_places_the_threads_qemu_names)
{
	Thread w0, w1;
	vblk::CpuSet before = vblk::thread_cpus(w0.tid);
	unsigned cpu = *before.rbegin();
	QmpSocket q(vhost_blk_info_now({ w0.tid, w1.tid }));
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "workers", "--qmp", q.sock, "--id", "vblk0", "--cpus",
			     std::to_string(cpu), "--worker", "1", "--json" }),
		  cli::exit_ok);
	auto out = json::parse(testing::internal::GetCapturedStdout());
	EXPECT_EQ(vblk::thread_cpus(w1.tid), vblk::CpuSet{ cpu });
	EXPECT_EQ(vblk::thread_cpus(w0.tid), before);
	EXPECT_EQ(out["workers"][1]["cpus"], std::to_string(cpu));
	EXPECT_EQ(out["workers"][1]["tid"], w1.tid);

	for (const auto &c : q.qemu.commands())
		EXPECT_EQ(c["execute"], "x-query-vhost-blk");	// nothing else asked of QEMU

	QmpSocket all(vhost_blk_info_now({ w0.tid, w1.tid }));	// one client each
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "workers", "--qmp", all.sock, "--id", "vblk0", "--cpus",
			     std::to_string(cpu) }),
		  cli::exit_ok);
	testing::internal::GetCapturedStdout();
	EXPECT_EQ(vblk::thread_cpus(w0.tid), vblk::CpuSet{ cpu });
}

TEST(QmpCli, workers_cpus_without_threads_or_out_of_range_is_refused)
{
	QmpSocket old;	// a QEMU that names no threads
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "workers", "--qmp", old.sock, "--id", "vblk0", "--cpus", "0" }),
		  cli::exit_kernel);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("worker 0 has no thread to place"), std::string::npos) << err;

	Thread w0;
	vblk::CpuSet before = vblk::thread_cpus(w0.tid);
	QmpSocket q(vhost_blk_info_now({ w0.tid, -1 }));
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "workers", "--qmp", q.sock, "--id", "vblk0", "--cpus", "0",
			     "--worker", "2" }),
		  cli::exit_rejected);
	err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("worker 2 out of range (0-1)"), std::string::npos) << err;
	// All workers: none is placed when one has no thread.
	QmpSocket q2(vhost_blk_info_now({ w0.tid, -1 }));
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "workers", "--qmp", q2.sock, "--id", "vblk0", "--cpus",
			     std::to_string(*before.rbegin()) }),
		  cli::exit_kernel);
	err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("worker 1 has no thread to place"), std::string::npos) << err;
	EXPECT_EQ(vblk::thread_cpus(w0.tid), before);
}

TEST(QmpCli, a_qemu_without_the_commands_says_so)
{
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	Monitor qemu([](const json &cmd) {
		return std::vector<json>{ error(cmd, "CommandNotFound",
						"The command x-query-vhost-blk has not been found") };
	});
	Server srv(sock, qemu.script());
	try {
		cli::call_qmp(sock, "vblk0", { { "cmd", "status" } }, 2s);
		FAIL() << "no CliError";
	} catch (const cli::CliError &e) {
		EXPECT_EQ(e.code(), cli::exit_rejected);
		EXPECT_NE(std::string(e.what()).find("not a QEMU with the vhost-blk-pci device"),
			  std::string::npos)
			<< e.what();
	}
}

TEST(QmpCli, a_missing_socket_is_not_running)
{
	TempDir d;
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "status", "--qmp", d.path + "/qmp.sock", "--id", "vblk0" }),
		  cli::exit_not_running);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("no QMP socket " + d.path + "/qmp.sock"), std::string::npos) << err;
}

TEST(QmpCli, a_socket_nobody_listens_on_is_not_running)
{
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	common::listen_unix(sock);	// closed at once: a QEMU that exited
	try {
		cli::call_qmp(sock, "vblk0", { { "cmd", "status" } }, 2s);
		FAIL() << "no CliError";
	} catch (const cli::CliError &e) {
		EXPECT_EQ(e.code(), cli::exit_not_running);
		EXPECT_NE(std::string(e.what()).find("QEMU is not running"), std::string::npos)
			<< e.what();
	}
}

TEST(QmpCli, permission_denied_is_not_reported_as_not_running)
{
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	auto listener = common::listen_unix(sock, 0600);
	// The socket's own mode refuses; root passes permission checks, so
	// the child tries as nobody (no threads run yet: fork is safe).
	::chmod(d.path.c_str(), 0755);
	::chmod(sock.c_str(), 0);
	pid_t child = ::fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0))
			::_exit(10);
		try {
			cli::call_qmp(sock, "vblk0", { { "cmd", "status" } }, 200ms);
		} catch (const cli::CliError &e) {
			bool ok = e.code() == cli::exit_permission &&
				  std::string(e.what()).find("permission denied on QMP socket " +
							     sock) != std::string::npos &&
				  std::string(e.what()).find("not running") == std::string::npos;
			::_exit(ok ? 0 : 11);
		} catch (...) {
			::_exit(12);
		}
		::_exit(13);
	}
	int st = 0;
	ASSERT_EQ(::waitpid(child, &st, 0), child);
	ASSERT_TRUE(WIFEXITED(st));
	EXPECT_EQ(WEXITSTATUS(st), 0) << "10: cannot drop privileges, 11: wrong error, 12: wrong "
					 "exception, 13: no error";
}

TEST(QmpCli, a_hung_qemu_is_no_answer)
{
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	Monitor qemu([](const json &) { return std::vector<json>{}; });
	Server srv(sock, qemu.script());
	try {
		cli::call_qmp(sock, "vblk0", { { "cmd", "status" } }, 200ms);
		FAIL() << "no CliError";
	} catch (const cli::CliError &e) {
		EXPECT_EQ(e.code(), cli::exit_no_answer);
		EXPECT_NE(std::string(e.what()).find("no answer from QEMU"), std::string::npos)
			<< e.what();
	}
}

TEST(QmpCli, a_qemu_that_closes_is_no_answer)
{
	TempDir d;
	std::string sock = d.path + "/qmp.sock";
	Server srv(sock, [](Conn &c) {
		c.send(greeting());
		c.close();
	});
	try {
		cli::call_qmp(sock, "vblk0", { { "cmd", "status" } }, 2s);
		FAIL() << "no CliError";
	} catch (const cli::CliError &e) {
		EXPECT_EQ(e.code(), cli::exit_no_answer);
		EXPECT_NE(std::string(e.what()).find("closed the QMP connection"), std::string::npos)
			<< e.what();
	}
}
