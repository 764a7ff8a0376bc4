// SPDX-License-Identifier: GPL-2.0
// Golden files: every reporting command's table and JSON, compared
// exactly with tests/golden/<name>.  Nothing in them comes from the
// machine: the status is a fixed one served by a fake daemon, `info` prints
// a fixed ModuleInfo, and the temporary run directory is written RUNDIR.
//
// After an intended change of the output, regenerate and review the diff:
//   VHOST_BLKCTL_UPDATE_GOLDEN=1 ctest -R Golden
#include "cli_harness.hpp"

#include "cli/common.hpp"

using namespace cli_harness;

namespace {

void expect_golden(const std::string &name, const std::string &actual)
{
	std::string path = std::string(VHOST_BLKCTL_GOLDEN_DIR) + "/" + name;
	if (std::getenv("VHOST_BLKCTL_UPDATE_GOLDEN")) {
		std::ofstream(path, std::ios::binary) << actual;
		return;
	}
	std::ifstream f(path, std::ios::binary);
	ASSERT_TRUE(f) << path << " is missing: VHOST_BLKCTL_UPDATE_GOLDEN=1 writes it";
	std::stringstream expected;
	expected << f.rdbuf();
	EXPECT_EQ(actual, expected.str()) << "differs from " << path;
}

// `args` against one fake daemon named vm1-root; both formats.
void expect_disk_command(const std::string &golden, std::vector<std::string> args)
{
	for (bool json : { false, true }) {
		TempDir d;
		FakeService svc;
		FakeDaemon daemon(d.path, "vm1-root", svc);
		std::vector<std::string> a = { "--run-dir", d.path };
		a.insert(a.end(), args.begin(), args.end());
		if (json)
			a.push_back("--json");
		auto r = run(a);
		EXPECT_EQ(r.code, 0) << r.err;
		EXPECT_EQ(r.err, "");
		expect_golden(golden + (json ? ".json" : ".txt"), r.out);
	}
}

device::ModuleInfo module_info(bool loaded)
{
	device::ModuleInfo m;
	m.kernel = "6.12.117+deb12-amd64";
	m.device_path = "/dev/vhost-blk";
	if (!loaded) {
		m.missing = { "module vhost_blk is not loaded (modprobe vhost_blk)",
			      "/dev/vhost-blk does not exist" };
		return m;
	}
	m.module_loaded = true;
	m.version = "0.1";
	m.srcversion = "0123456789ABCDEF0123456";
	m.max_queues = 16;
	m.device_present = true;
	m.features_known = true;
	m.features = 0x1b0000e54ull;
	m.workers_supported = true;
	return m;
}

} // namespace

TEST(Golden, status)
{
	expect_disk_command("status", { "status", "vm1-root" });
}

TEST(Golden, workers)
{
	expect_disk_command("workers", { "workers", "vm1-root", "--count", "2" });
}

TEST(Golden, assign)
{
	expect_disk_command("assign", { "assign", "vm1-root", "--vq", "1", "--worker", "1" });
}

TEST(Golden, poll)
{
	expect_disk_command("poll", { "poll", "vm1-root", "--us", "50" });
}

TEST(Golden, status_of_a_disk_waiting_for_its_first_frontend)
{
	for (bool json : { false, true }) {
		TempDir d;
		FakeService svc;
		svc.s.connected = false;
		svc.s.connections = 0;
		svc.s.features = 0;
		svc.s.write_cache.reset();
		svc.s.workers = { { 0, std::nullopt, { 0, 1 } } };
		svc.s.policy = "single";
		svc.s.vqs = { control::VqStatus{}, control::VqStatus{} };
		svc.s.vqs[1].index = 1;
		for (auto &v : svc.s.vqs)	// what serve reports before any ring ran
			v.poll_us = v.poll_hits = v.poll_misses = 0;
		svc.s.poll_us = 0;
		svc.s.vqs_source = "none";
		FakeDaemon daemon(d.path, "vm1-root", svc);
		std::vector<std::string> a = { "--run-dir", d.path, "status", "vm1-root" };
		if (json)
			a.push_back("--json");
		auto r = run(a);
		EXPECT_EQ(r.code, 0) << r.err;
		expect_golden(std::string("status-waiting") + (json ? ".json" : ".txt"), r.out);
	}
}

TEST(Golden, list_of_a_connected_a_waiting_and_a_stale_disk)
{
	for (bool json : { false, true }) {
		TempDir d;
		FakeService a, b;
		a.s.name = "a-disk";
		b.s.name = "b-disk";
		b.s.pid = 4343;
		b.s.connected = false;
		b.s.write_cache.reset();
		b.s.backend = "/dev/nullb1";
		FakeDaemon da(d.path, "a-disk", a), db(d.path, "b-disk", b);
		// A socket file nobody listens on: a daemon that died.
		common::listen_unix(control::socket_path(d.path, "c-disk"));
		std::vector<std::string> args = { "--run-dir", d.path, "list" };
		if (json)
			args.push_back("--json");
		auto r = run(args);
		EXPECT_EQ(r.code, 0) << r.err;
		expect_golden(std::string("list") + (json ? ".json" : ".txt"),
			      replace_all(r.out, d.path, "RUNDIR"));
	}
}

TEST(Golden, list_of_an_empty_run_dir)
{
	for (bool json : { false, true }) {
		TempDir d;
		std::vector<std::string> args = { "--run-dir", d.path, "list" };
		if (json)
			args.push_back("--json");
		auto r = run(args);
		EXPECT_EQ(r.code, 0);
		expect_golden(std::string("list-empty") + (json ? ".json" : ".txt"), r.out);
	}
}

TEST(Golden, info)
{
	for (bool loaded : { true, false })
		for (bool json : { false, true }) {
			std::ostringstream os;
			cli::print_info(os, module_info(loaded), json);
			expect_golden(std::string(loaded ? "info" : "info-missing") +
					      (json ? ".json" : ".txt"),
				      os.str());
		}
}
