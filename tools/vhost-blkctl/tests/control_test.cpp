// SPDX-License-Identifier: GPL-2.0
// The control protocol: JSON shape, request handling, the socket.
#include "common/unix_socket.hpp"
#include "control/client.hpp"
#include "control/json.hpp"
#include "control/rundir.hpp"
#include "control/server.hpp"

#include <vblk/error.hpp>

#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>
#include <unistd.h>

using namespace control;
using nlohmann::json;

using test_util::TempDir;

namespace {

DiskStatus sample()
{
	DiskStatus d;
	d.name = "vm1-root";
	d.pid = 1234;
	d.backend = "/dev/nullb0";
	d.socket = "/run/vm1.sock";
	d.serial = "SER";
	d.size_bytes = 1ull << 30;
	d.queues = 2;
	d.connected = true;
	d.connections = 3;
	d.features = 0x130000000ull;
	d.policy = "round-robin:2";
	d.workers = { { 0, 7, { 0 }, 1201, "0-1" }, { 1, 8, { 1 }, std::nullopt, std::nullopt } };
	VqStatus v;
	v.index = 1;
	v.worker = 1;
	v.worker_id = 8;
	v.started = v.attached = true;
	v.inflight = 3;
	v.requests[0] = 100;
	v.requests[3] = 1;
	v.bytes[0] = 409600;
	v.status_ok = 101;
	v.batches = 50;
	v.stopped = true;
	v.throttled = 7;
	v.poll_us = 50;
	v.poll_hits = 40;
	v.poll_misses = 3;
	d.poll_us = 100;
	d.vqs = { VqStatus{}, v };
	return d;
}

struct FakeService : Service {
	DiskStatus s = sample();
	std::vector<std::string> calls;
	DiskStatus status() override { return s; }
	void set_workers(unsigned n) override
	{
		if (n > 2)
			throw RequestError("invalid-argument", "worker count out of range");
		calls.push_back("workers " + std::to_string(n));
	}
	void assign(unsigned vq, unsigned w) override
	{
		calls.push_back("assign " + std::to_string(vq) + " " + std::to_string(w));
	}
	void set_policy(const std::string &p) override { calls.push_back("policy " + p); }
	void set_cpus(std::optional<unsigned> w, const std::string &cpus) override
	{
		calls.push_back("cpus " + (w ? std::to_string(*w) : std::string("all")) + " " + cpus);
	}
	void set_poll(unsigned us) override
	{
		calls.push_back("poll " + std::to_string(us));
		s.poll_us = us;
	}
};

} // namespace

TEST(Json, status_has_stable_keys)
{
	json j = sample();
	for (const char *k : { "name", "pid", "backend", "socket", "serial", "size_bytes",
			       "block_size", "queues", "read_only", "connected", "connections",
			       "features", "policy", "workers", "vqs" })
		EXPECT_TRUE(j.contains(k)) << k;
	const auto &v = j["vqs"][1];
	for (const char *k : { "index", "worker", "worker_id", "started", "attached", "inflight",
			       "requests", "bytes", "status", "bounced", "malformed", "batches",
			       "stopped", "throttled", "fua_writes", "poll_us", "poll_hits",
			       "poll_misses" })
		EXPECT_TRUE(v.contains(k)) << k;
	EXPECT_EQ(v["poll_us"], 50);
	EXPECT_EQ(v["poll_hits"], 40);
	EXPECT_EQ(v["poll_misses"], 3);
	// Not reported (a QEMU-owned disk): null, not 0.
	EXPECT_TRUE(j["vqs"][0]["poll_us"].is_null());
	EXPECT_TRUE(j["vqs"][0]["poll_hits"].is_null());
	EXPECT_TRUE(j["vqs"][0]["poll_misses"].is_null());
	EXPECT_EQ(j["poll_us"], 100);
	EXPECT_EQ(v["stopped"], true);
	EXPECT_EQ(v["throttled"], 7);
	EXPECT_EQ(j["vqs"][0]["stopped"], false);
	EXPECT_EQ(j["vqs"][0]["throttled"], 0);
	EXPECT_EQ(v["requests"]["in"], 100);
	EXPECT_EQ(v["requests"]["get_id"], 1);
	EXPECT_EQ(v["status"]["ok"], 101);
	EXPECT_EQ(j["workers"][1]["kernel_id"], 8);
}

TEST(Json, status_round_trips)
{
	DiskStatus back = json(sample()).get<DiskStatus>();
	EXPECT_EQ(json(back), json(sample()));
}

TEST(Json, status_of_a_daemon_without_stopped_and_throttled_still_parses)
{
	json j = sample();
	for (auto &v : j["vqs"]) {
		v.erase("stopped");
		v.erase("throttled");
	}
	auto back = j.get<DiskStatus>();
	EXPECT_FALSE(back.vqs[1].stopped);
	EXPECT_EQ(back.vqs[1].throttled, 0u);
	EXPECT_EQ(back.vqs[1].batches, 50u);
}

TEST(Json, a_status_without_poll_counters_parses_them_as_not_reported)
{
	json j = sample();
	for (auto &v : j["vqs"])
		for (const char *k : { "poll_us", "poll_hits", "poll_misses" })
			v.erase(k);
	auto back = j.get<DiskStatus>();
	EXPECT_FALSE(back.vqs[1].poll_us);
	EXPECT_FALSE(back.vqs[1].poll_hits);
	EXPECT_FALSE(back.vqs[1].poll_misses);
	auto norm = normalize_disk(j);
	EXPECT_TRUE(norm["vqs"][1]["poll_us"].is_null());
	EXPECT_TRUE(norm["vqs"][1]["poll_misses"].is_null());
}

TEST(Request, status_workers_assign_policy)
{
	FakeService svc;
	auto r = handle_request(svc, R"({"cmd":"status"})");
	EXPECT_TRUE(r["ok"]);
	EXPECT_EQ(r["status"]["name"], "vm1-root");
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"workers","count":2})")["ok"]);
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"assign","vq":1,"worker":0})")["ok"]);
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"assign","policy":"per-vq"})")["ok"]);
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"workers","cpus":"0-1"})")["ok"]);
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"workers","cpus":"3","worker":1})")["ok"]);
	EXPECT_EQ(svc.calls, (std::vector<std::string>{ "workers 2", "assign 1 0", "policy per-vq",
							"cpus all 0-1", "cpus 1 3" }));
}

TEST(Request, poll_sets_the_ceiling_and_answers_the_new_status)
{
	FakeService svc;
	auto r = handle_request(svc, R"({"cmd":"poll","us":200})");
	EXPECT_TRUE(r["ok"]);
	EXPECT_EQ(r["status"]["poll_us"], 200);
	EXPECT_TRUE(handle_request(svc, R"({"cmd":"poll","us":0})")["ok"]);
	EXPECT_EQ(svc.calls, (std::vector<std::string>{ "poll 200", "poll 0" }));
}

TEST(Request, refusals_carry_a_code_and_a_message)
{
	FakeService svc;
	auto r = handle_request(svc, R"({"cmd":"workers","count":9})");
	EXPECT_FALSE(r["ok"]);
	EXPECT_EQ(r["code"], "invalid-argument");
	EXPECT_EQ(r["error"], "worker count out of range");
}

TEST(Request, malformed_requests_are_bad_request)
{
	FakeService svc;
	for (const char *bad : { "", "{", "[]", "42", R"({"cmd":7})", R"({"nocmd":1})",
				 R"({"cmd":"workers"})", R"({"cmd":"workers","count":-1})",
				 R"({"cmd":"workers","count":"2"})", R"({"cmd":"assign","vq":1})",
				 R"({"cmd":"assign","policy":3})",
				 R"({"cmd":"workers","count":99999999999})",
				 R"({"cmd":"workers","cpus":1})",
				 R"({"cmd":"workers","cpus":"1","worker":-1})",
				 R"({"cmd":"poll"})", R"({"cmd":"poll","us":-1})",
				 R"({"cmd":"poll","us":"200"})", R"({"cmd":"poll","us":1.5})" }) {
		auto r = handle_request(svc, bad);
		EXPECT_FALSE(r["ok"]) << bad;
		EXPECT_EQ(r["code"], "bad-request") << bad;
	}
	EXPECT_TRUE(svc.calls.empty());
}

TEST(Request, unknown_command)
{
	FakeService svc;
	EXPECT_EQ(handle_request(svc, R"({"cmd":"reboot"})")["code"], "unknown-command");
}

TEST(RunDir, option_then_environment_then_default)
{
	::unsetenv(run_dir_env);
	EXPECT_EQ(resolve_run_dir(""), "/run/vhost-blk");
	::setenv(run_dir_env, "/tmp/x", 1);
	EXPECT_EQ(resolve_run_dir(""), "/tmp/x");
	EXPECT_EQ(resolve_run_dir("/opt/y"), "/opt/y");
	::unsetenv(run_dir_env);
}

TEST(RunDir, names)
{
	EXPECT_TRUE(valid_name("vm1-root_disk.0"));
	EXPECT_FALSE(valid_name(""));
	EXPECT_FALSE(valid_name(".hidden"));
	EXPECT_FALSE(valid_name("a/b"));
	EXPECT_FALSE(valid_name("a b"));
	EXPECT_FALSE(valid_name(std::string(65, 'a')));
}

namespace {

// `req` sent to `svc` served as disk1 in `dir`: the reply.
json ask_over_socket(const std::string &dir, Service &svc, const json &req)
{
	Server srv(socket_path(dir, "disk1"), svc);
	std::thread t([&] { srv.on_readable(); });
	auto r = request(socket_path(dir, "disk1"), req);
	t.join();
	return r;
}

} // namespace

TEST(Socket, client_and_server_round_trip_and_list_finds_it)
{
	TempDir d;
	FakeService svc;
	Server srv(socket_path(d.path, "disk1"), svc);
	std::thread t([&] { srv.on_readable(); });
	auto r = request(socket_path(d.path, "disk1"), { { "cmd", "workers" }, { "count", 1 } });
	t.join();
	EXPECT_TRUE(r["ok"]);
	EXPECT_EQ(r["status"].get<DiskStatus>().name, "vm1-root");
	EXPECT_EQ(list_names(d.path), (std::vector<std::string>{ "disk1" }));
}

TEST(Socket, poll_travels_the_socket_and_the_reply_has_the_new_ceiling)
{
	TempDir d;
	FakeService svc;
	auto r = ask_over_socket(d.path, svc, { { "cmd", "poll" }, { "us", 250 } });
	ASSERT_TRUE(r["ok"]) << r.dump();
	EXPECT_EQ(svc.calls, (std::vector<std::string>{ "poll 250" }));
	auto s = r["status"].get<DiskStatus>();
	EXPECT_EQ(s.poll_us, 250u);
	EXPECT_EQ(s.vqs[1].poll_us, 50u);
}

TEST(Socket, server_removes_its_socket)
{
	TempDir d;
	FakeService svc;
	{
		Server srv(socket_path(d.path, "x"), svc);
		EXPECT_TRUE(std::filesystem::exists(socket_path(d.path, "x")));
	}
	EXPECT_FALSE(std::filesystem::exists(socket_path(d.path, "x")));
	EXPECT_TRUE(list_names(d.path).empty());
}

TEST(Socket, a_second_server_on_a_live_socket_is_refused_a_stale_one_replaced)
{
	TempDir d;
	FakeService svc;
	std::string p = socket_path(d.path, "x");
	{
		Server a(p, svc);
		EXPECT_THROW(Server b(p, svc), vblk::SysError);
	}
	// Leave a stale socket file behind, as a crashed daemon would.
	{
		auto fd = common::listen_unix(p);	// closed without unlink
	}
	EXPECT_NO_THROW(Server c(p, svc));
}

TEST(Socket, client_to_a_missing_daemon_is_not_running)
{
	TempDir d;
	try {
		request(d.path + "/nobody.sock", { { "cmd", "status" } });
		FAIL();
	} catch (const ClientError &e) {
		EXPECT_EQ(e.kind(), ClientError::Kind::not_running);
	}
}

TEST(Socket, client_gets_no_answer_from_a_silent_daemon)
{
	TempDir d;
	std::string p = d.path + "/silent.sock";
	auto l = common::listen_unix(p);
	try {
		request(p, { { "cmd", "status" } }, std::chrono::milliseconds(100));
		FAIL();
	} catch (const ClientError &e) {
		EXPECT_EQ(e.kind(), ClientError::Kind::no_answer);
	}
}

TEST(Request, apply_request_takes_an_in_memory_request_with_signed_integers)
{
	FakeService svc;
	int vq = 1, worker = 0;	// what the CLI builds: signed JSON numbers
	apply_request(svc, json{ { "cmd", "assign" }, { "vq", vq }, { "worker", worker } });
	EXPECT_EQ(svc.calls, (std::vector<std::string>{ "assign 1 0" }));
	try {
		apply_request(svc, json{ { "cmd", "workers" }, { "count", -1 } });
		FAIL() << "no RequestError";
	} catch (const RequestError &e) {
		EXPECT_EQ(e.code(), "bad-request");
	}
	EXPECT_THROW(apply_request(svc, json{ { "cmd", "frob" } }), RequestError);
}
