// SPDX-License-Identifier: GPL-2.0
// The CLI/JSON contract across versions: a CLI talking to a newer daemon
// passes through what it does not know, one talking to an older daemon
// fills what is missing with null; --version; permission denied is its own
// exit status and `list` says "inaccessible", not "stale".
#include "cli_harness.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

using namespace cli_harness;
using nlohmann::json;

namespace {

// The status JSON of the sample as a daemon of this version sends it.
json current_status()
{
	return json(sample_status());
}

json ok(json status)
{
	return { { "ok", true }, { "version", 1 }, { "status", std::move(status) } };
}

} // namespace

TEST(Contract, every_json_document_has_version_1_and_one_shape_per_object)
{
	TempDir d;
	FakeService svc;
	FakeDaemon daemon(d.path, "vm1-root", svc, 2);
	auto status = json::parse(run({ "--run-dir", d.path, "status", "vm1-root", "--json" }).out);
	auto list = json::parse(run({ "--run-dir", d.path, "list", "--json" }).out);
	EXPECT_EQ(status["version"], 1);
	EXPECT_EQ(list["version"], 1);
	ASSERT_EQ(list["disks"].size(), 1u);
	// The disk in list is the disk of status, without the document's version.
	status.erase("version");
	EXPECT_EQ(list["disks"][0], status);
	EXPECT_EQ(status["workers"][1]["kernel_id"], 8);
	EXPECT_EQ(status["features"]["bits"], "0x130000a54");
	EXPECT_EQ(status["features"]["names"][0], "SEG_MAX");
	EXPECT_EQ(status["state"], "connected");
}

TEST(Contract, unknown_is_null_never_minus_one)
{
	control::DiskStatus s;
	s.name = "x";
	s.workers = { { 0, std::nullopt, { 0 } } };
	s.vqs = { control::VqStatus{} };
	json j = s;
	EXPECT_TRUE(j["pid"].is_null());
	EXPECT_TRUE(j["workers"][0]["kernel_id"].is_null());
	EXPECT_TRUE(j["vqs"][0]["worker"].is_null());
	EXPECT_TRUE(j["vqs"][0]["worker_id"].is_null());
	EXPECT_EQ(j.dump().find("-1"), std::string::npos) << j.dump();
}

TEST(Contract, fields_of_a_newer_daemon_are_passed_through)
{
	TempDir d;
	json st = current_status();
	st["encryption"] = { { "cipher", "aes-xts" } };
	st["vqs"][1]["latency_us"] = { { "p99", 120 } };
	st["workers"][0]["cpu"] = 3;
	st["vqs"][0]["requests"]["zone_append"] = 9;
	RawDaemon daemon(d.path, "vm1-root", ok(st));
	auto r = run({ "--run-dir", d.path, "status", "vm1-root", "--json" });
	ASSERT_EQ(r.code, 0) << r.err;
	json out = json::parse(r.out);
	EXPECT_EQ(out["encryption"]["cipher"], "aes-xts");
	EXPECT_EQ(out["vqs"][1]["latency_us"]["p99"], 120);
	EXPECT_EQ(out["workers"][0]["cpu"], 3);
	EXPECT_EQ(out["vqs"][0]["requests"]["zone_append"], 9);
	out.erase("version");
	EXPECT_EQ(out, st);
}

TEST(Contract, a_newer_daemon_s_status_still_prints_as_a_table)
{
	TempDir d;
	json st = current_status();
	st["encryption"] = "on";
	RawDaemon daemon(d.path, "vm1-root", ok(st));
	auto r = run({ "--run-dir", d.path, "status", "vm1-root" });
	ASSERT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("disk vm1-root (pid 4242)"), std::string::npos) << r.out;
}

TEST(Contract, missing_fields_of_an_older_daemon_are_null_and_old_encodings_converted)
{
	TempDir d;
	// What the daemon of the previous release sent: features a number,
	// -1 for "none", no state, poll_us, vqs_source, stopped, throttled or
	// the rings' polling counters.
	json st = current_status();
	for (const char *k : { "state", "poll_us", "vqs_source" })
		st.erase(k);
	st["features"] = 0x130000a54ull;
	st["workers"][1]["kernel_id"] = -1;
	st["vqs"][0]["worker"] = -1;
	st["vqs"][0]["worker_id"] = -1;
	for (auto &v : st["vqs"]) {
		v.erase("stopped");
		v.erase("throttled");
		for (const char *k : { "poll_us", "poll_hits", "poll_misses" })
			v.erase(k);
	}
	json reply = { { "ok", true }, { "status", st } };
	{
		RawDaemon daemon(d.path, "vm1-root", reply);
		auto r = run({ "--run-dir", d.path, "status", "vm1-root", "--json" });
		ASSERT_EQ(r.code, 0) << r.err;
		json out = json::parse(r.out);
		EXPECT_EQ(out["version"], 1);
		EXPECT_EQ(out["state"], "connected");
		EXPECT_EQ(out["features"]["bits"], "0x130000a54");
		EXPECT_TRUE(out["poll_us"].is_null());
		EXPECT_TRUE(out["vqs_source"].is_null());
		EXPECT_TRUE(out["workers"][1]["kernel_id"].is_null());
		EXPECT_TRUE(out["vqs"][0]["worker"].is_null());
		EXPECT_TRUE(out["vqs"][0]["worker_id"].is_null());
		EXPECT_TRUE(out["vqs"][1]["stopped"].is_null());
		EXPECT_TRUE(out["vqs"][1]["throttled"].is_null());
		EXPECT_TRUE(out["vqs"][0]["poll_us"].is_null());
		EXPECT_TRUE(out["vqs"][1]["poll_hits"].is_null());
		EXPECT_TRUE(out["vqs"][1]["poll_misses"].is_null());
		EXPECT_EQ(out["vqs"][1]["inflight"], 2);
	}
	{
		RawDaemon daemon(d.path, "vm1-root", reply);
		auto r = run({ "--run-dir", d.path, "status", "vm1-root" });
		ASSERT_EQ(r.code, 0) << r.err;
		EXPECT_NE(r.out.find("  0   -       yes"), std::string::npos) << r.out;
		// Counters the daemon did not send are "-", not 0.
		EXPECT_NE(r.out.find("0               -\n"), std::string::npos) << r.out;
	}
}

TEST(Contract, a_status_without_a_name_is_no_answer)
{
	TempDir d;
	RawDaemon daemon(d.path, "vm1-root", ok({ { "pid", 1 } }));
	auto r = run({ "--run-dir", d.path, "status", "vm1-root", "--json" });
	EXPECT_EQ(r.code, cli::exit_no_answer);
	EXPECT_NE(r.err.find("malformed status"), std::string::npos) << r.err;
}

TEST(Contract, version_prints_the_project_version)
{
	auto r = run({ "--version" });
	EXPECT_EQ(r.code, 0);
	EXPECT_EQ(r.out, std::string("vhost-blkctl ") + cli::version() + "\n");
	EXPECT_STRNE(cli::version(), "");
}

// Permission denied on a control socket: exit status 8 for the commands on
// one disk, "inaccessible" in list.  The socket is mode 0; as root the
// check runs in a child that has become nobody.
TEST(Contract, permission_denied_is_its_own_exit_status_and_list_says_inaccessible)
{
	TempDir d;
	ASSERT_EQ(::chmod(d.path.c_str(), 0755), 0);
	FakeService svc;
	control::Server srv(control::socket_path(d.path, "vm1-root"), svc);
	ASSERT_EQ(::chmod(srv.path().c_str(), 0), 0);
	pid_t pid = ::fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0))
			::_exit(10);
		int bad = 0;
		auto s = run({ "--run-dir", d.path, "status", "vm1-root" });
		if (s.code != cli::exit_permission ||
		    s.err.find("permission denied") == std::string::npos)
			bad |= 1;
		auto l = run({ "--run-dir", d.path, "list", "--json" });
		json disks = json::parse(l.out)["disks"];
		if (l.code != 0 || disks.size() != 1 || disks[0]["state"] != "inaccessible")
			bad |= 2;
		auto t = run({ "--run-dir", d.path, "list" });
		if (t.out.find("vm1-root        inaccessible") == std::string::npos)
			bad |= 4;
		::_exit(bad);
	}
	int wstatus = 0;
	ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
	ASSERT_TRUE(WIFEXITED(wstatus));
	EXPECT_EQ(WEXITSTATUS(wstatus), 0)
		<< "1: status not exit 8, 2: list --json not inaccessible, 4: list table, "
		   "10: cannot become nobody";
}
