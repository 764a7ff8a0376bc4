// SPDX-License-Identifier: GPL-2.0
// Command-line parsing and the exit codes of the error paths.
#include "cli/cli.hpp"
#include "cli/common.hpp"
#include "control/json.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

using namespace cli;

namespace {

// Parses `args` (without the program name) into fresh Options.
Options parse(std::vector<std::string> args)
{
	CLI::App app{ "vhost-blkctl" };
	Options o;
	setup_cli(app, o);
	std::reverse(args.begin(), args.end());
	app.parse(args);
	return o;
}

int run_main(std::vector<std::string> args)
{
	std::vector<char *> argv;
	std::string prog = "vhost-blkctl";
	argv.push_back(prog.data());
	for (auto &a : args)
		argv.push_back(a.data());
	return main_entry(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST(Cli, serve_options)
{
	auto o = parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a.sock", "--queues",
			 "4", "--workers", "2", "--map", "0:1", "--read-only", "--serial", "S1",
			 "--name", "disk" });
	EXPECT_EQ(o.command, "serve");
	EXPECT_EQ(o.serve.backend, "/dev/null");
	EXPECT_EQ(o.serve.socket, "/tmp/a.sock");
	EXPECT_EQ(o.serve.queues, 4u);
	EXPECT_EQ(o.serve.workers, 2u);
	EXPECT_EQ(o.serve.map, "0:1");
	EXPECT_TRUE(o.serve.read_only);
	EXPECT_EQ(o.serve.serial, "S1");
	EXPECT_EQ(o.serve.name, "disk");
	EXPECT_EQ(o.serve.device, "/dev/vhost-blk");
}

TEST(Cli, serve_poll_us_defaults_off_and_is_bounded)
{
	EXPECT_EQ(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a" }).serve.poll_us, 0u);
	EXPECT_EQ(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a", "--poll-us", "50" })
			  .serve.poll_us,
		  50u);
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a", "--poll-us",
			     "1000001" }),
		     CLI::ParseError);
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a", "--poll-us",
			     "-1" }),
		     CLI::ParseError);
}

TEST(Cli, serve_needs_backend_and_socket)
{
	EXPECT_THROW(parse({ "serve", "--socket", "/tmp/a.sock" }), CLI::ParseError);
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null" }), CLI::ParseError);
	EXPECT_THROW(parse({ "serve", "--backend", "/nonexistent/x", "--socket", "/tmp/a" }),
		     CLI::ParseError);
}

TEST(Cli, serve_workers_and_worker_per_vq_exclude_each_other)
{
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a", "--workers",
			     "2", "--worker-per-vq" }),
		     CLI::ParseError);
	EXPECT_TRUE(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a",
			    "--worker-per-vq" })
			    .serve.worker_per_vq);
}

TEST(Cli, serve_ranges_and_serial_length)
{
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/a", "--queues", "0" }),
		     CLI::ParseError);
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/a", "--queues",
			     "257" }),
		     CLI::ParseError);
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/a", "--serial",
			     "123456789012345678901" }),
		     CLI::ParseError);
}

TEST(Cli, reporting_commands_take_json)
{
	EXPECT_TRUE(parse({ "list", "--json" }).list.json);
	EXPECT_TRUE(parse({ "status", "d", "--json" }).status.json);
	EXPECT_TRUE(parse({ "workers", "d", "--count", "2", "--json" }).workers.json);
	EXPECT_TRUE(parse({ "assign", "d", "--policy", "single", "--json" }).assign.json);
	EXPECT_TRUE(parse({ "poll", "d", "--us", "5", "--json" }).poll.json);
	EXPECT_TRUE(parse({ "info", "--json" }).info.json);
	EXPECT_FALSE(parse({ "list" }).list.json);
}

TEST(Cli, run_dir_before_or_after_the_subcommand)
{
	EXPECT_EQ(parse({ "--run-dir", "/tmp/r", "list" }).global.run_dir, "/tmp/r");
	EXPECT_EQ(parse({ "list", "--run-dir", "/tmp/r" }).global.run_dir, "/tmp/r");
}

TEST(Cli, status_and_workers_need_a_name_and_count)
{
	EXPECT_THROW(parse({ "status" }), CLI::ParseError);
	EXPECT_THROW(parse({ "workers", "d" }), CLI::ParseError);
	EXPECT_THROW(parse({ "workers", "d", "--count", "0" }), CLI::ParseError);
	auto o = parse({ "workers", "d", "--count", "3" });
	EXPECT_EQ(o.workers.name, "d");
	EXPECT_EQ(o.workers.count, 3u);
}

TEST(Cli, workers_cpus_takes_a_cpu_list_and_an_optional_worker)
{
	auto o = parse({ "workers", "d", "--cpus", "0-1,3" });
	EXPECT_EQ(o.workers.cpus, "0-1,3");
	EXPECT_EQ(o.workers.worker, -1);
	EXPECT_EQ(o.workers.count, 0u);
	o = parse({ "workers", "d", "--count", "2", "--cpus", "1", "--worker", "1" });
	EXPECT_EQ(o.workers.count, 2u);
	EXPECT_EQ(o.workers.worker, 1);
	for (const char *bad : { "", "3-1", "a", "1,", "4096" })
		EXPECT_THROW(parse({ "workers", "d", "--cpus", bad }), CLI::ParseError) << bad;
	EXPECT_THROW(parse({ "workers", "d", "--worker", "1" }), CLI::ParseError);
	o = parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a", "--worker-cpus", "2-3" });
	EXPECT_EQ(o.serve.worker_cpus, "2-3");
	EXPECT_THROW(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a",
			     "--worker-cpus", "x" }),
		     CLI::ParseError);
}

TEST(Cli, assign_is_vq_with_worker_or_a_policy)
{
	auto o = parse({ "assign", "d", "--vq", "1", "--worker", "0" });
	EXPECT_EQ(o.assign.vq, 1);
	EXPECT_EQ(o.assign.worker, 0);
	EXPECT_EQ(parse({ "assign", "d", "--policy", "round-robin:3" }).assign.policy,
		  "round-robin:3");
	EXPECT_THROW(parse({ "assign", "d" }), CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--vq", "1" }), CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--worker", "1" }), CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--vq", "1", "--worker", "0", "--policy", "single" }),
		     CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--policy", "fastest" }), CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--policy", "round-robin:x" }), CLI::ParseError);
	EXPECT_THROW(parse({ "assign", "d", "--vq", "-1", "--worker", "0" }), CLI::ParseError);
}

TEST(Cli, poll_takes_a_disk_and_a_ceiling_in_the_bounds_of_serve)
{
	auto o = parse({ "poll", "d", "--us", "200" });
	EXPECT_EQ(o.command, "poll");
	EXPECT_EQ(o.poll.name, "d");
	EXPECT_EQ(o.poll.us, 200u);
	EXPECT_FALSE(o.poll.json);
	EXPECT_EQ(parse({ "poll", "d", "--us", "0" }).poll.us, 0u);
	EXPECT_EQ(parse({ "poll", "d", "--us", "100000" }).poll.us, 100000u);
	o = parse({ "poll", "--qmp", "/q", "--id", "v", "--us", "5" });
	EXPECT_EQ(o.poll.qmp, "/q");
	EXPECT_EQ(o.poll.id, "v");
	EXPECT_THROW(parse({ "poll", "--us", "5" }), CLI::ParseError);	// no disk
	EXPECT_THROW(parse({ "poll", "d" }), CLI::ParseError);		// no --us
	for (const char *bad : { "-1", "100001", "4294967296", "abc", "1.5", "" })
		EXPECT_THROW(parse({ "poll", "d", "--us", bad }), CLI::ParseError) << bad;
}

TEST(ExitCodes, bad_poll_arguments_are_2_with_a_clear_message)
{
	for (const std::vector<std::string> &args :
	     { std::vector<std::string>{ "poll", "d", "--us", "100001" },
	       std::vector<std::string>{ "poll", "d", "--us", "-5" },
	       std::vector<std::string>{ "poll", "d" },
	       std::vector<std::string>{ "poll", "--us", "5" } }) {
		testing::internal::CaptureStderr();
		EXPECT_EQ(run_main(args), exit_usage) << args.back();
		std::string err = testing::internal::GetCapturedStderr();
		EXPECT_TRUE(err.starts_with("vhost-blkctl: ")) << err;
		EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
	}
	testing::internal::CaptureStderr();
	run_main({ "poll", "d", "--us", "100001" });
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("--us"), std::string::npos) << err;
	EXPECT_NE(err.find("100000"), std::string::npos) << err;
}

TEST(Cli, admin_commands_take_a_name_or_a_qmp_socket_and_device_id)
{
	auto o = parse({ "status", "--qmp", "/run/vm1.qmp", "--id", "vblk0" });
	EXPECT_EQ(o.command, "status");
	EXPECT_EQ(o.status.qmp, "/run/vm1.qmp");
	EXPECT_EQ(o.status.id, "vblk0");
	EXPECT_TRUE(o.status.name.empty());
	o = parse({ "workers", "--qmp", "/q", "--id", "d", "--count", "2" });
	EXPECT_EQ(o.workers.qmp, "/q");
	EXPECT_EQ(o.workers.id, "d");
	EXPECT_EQ(o.workers.count, 2u);
	o = parse({ "assign", "--id", "d", "--qmp", "/q", "--vq", "1", "--worker", "0" });
	EXPECT_EQ(o.assign.qmp, "/q");
	EXPECT_EQ(o.assign.vq, 1);
	EXPECT_EQ(parse({ "assign", "--qmp", "/q", "--id", "d", "--policy", "per-vq" }).assign.policy,
		  "per-vq");
	o = parse({ "status", "d0" });
	EXPECT_EQ(o.status.name, "d0");
	EXPECT_TRUE(o.status.qmp.empty());
}

TEST(Cli, qmp_and_id_go_together_and_exclude_a_name)
{
	for (const char *cmd : { "status", "workers", "assign", "poll" }) {
		std::vector<std::string> tail;
		if (std::string(cmd) == "poll")
			tail = { "--us", "10" };
		if (std::string(cmd) == "workers")
			tail = { "--count", "1" };
		if (std::string(cmd) == "assign")
			tail = { "--policy", "single" };
		auto with = [&](std::vector<std::string> args) {
			args.insert(args.begin(), cmd);
			args.insert(args.end(), tail.begin(), tail.end());
			return args;
		};
		EXPECT_THROW(parse(with({ "--qmp", "/q" })), CLI::ParseError) << cmd;
		EXPECT_THROW(parse(with({ "--id", "d" })), CLI::ParseError) << cmd;
		EXPECT_THROW(parse(with({ "d0", "--qmp", "/q", "--id", "d" })), CLI::ParseError) << cmd;
		EXPECT_THROW(parse(with({ "--qmp", "", "--id", "d" })), CLI::ParseError) << cmd;
		EXPECT_THROW(parse(with({})), CLI::ParseError) << cmd;
	}
}

TEST(ExitCodes, name_and_qmp_together_is_a_usage_error_that_says_so)
{
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "status", "d0", "--qmp", "/q", "--id", "d" }), exit_usage);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("a disk NAME or --qmp SOCKET --id DEVICE, not both"), std::string::npos)
		<< err;
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "status" }), exit_usage);
	err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("a disk NAME or --qmp SOCKET --id DEVICE is required"), std::string::npos)
		<< err;
}

TEST(Cli, a_subcommand_is_required)
{
	EXPECT_THROW(parse({}), CLI::ParseError);
	EXPECT_THROW(parse({ "frobnicate" }), CLI::ParseError);
}

TEST(ExitCodes, usage_errors_are_2)
{
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "assign", "d" }), exit_usage);
	EXPECT_EQ(run_main({ "bogus" }), exit_usage);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("vhost-blkctl: "), std::string::npos);
}

TEST(ExitCodes, unknown_disk_is_3_with_one_line)
{
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "--run-dir", "/nonexistent-dir", "status", "nope" }), exit_not_running);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_EQ(err, "vhost-blkctl: no disk named 'nope' in /nonexistent-dir\n");
}

TEST(ExitCodes, backend_that_is_not_a_block_device_is_7)
{
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "serve", "--backend", "/dev/null", "--socket", "/tmp/x.sock" }),
		  exit_backend);
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_NE(err.find("Block device required"), std::string::npos);
}

TEST(ExitCodes, bad_map_is_a_usage_error)
{
	testing::internal::CaptureStderr();
	EXPECT_EQ(run_main({ "serve", "--backend", "/dev/null", "--socket", "/tmp/x.sock",
			     "--queues", "2", "--map", "5:0" }),
		  exit_usage);
	testing::internal::GetCapturedStderr();
}

TEST(ExitCodes, list_of_an_empty_run_dir_is_ok_and_valid_json)
{
	testing::internal::CaptureStdout();
	EXPECT_EQ(run_main({ "--run-dir", "/nonexistent-dir", "list", "--json" }), exit_ok);
	auto out = testing::internal::GetCapturedStdout();
	EXPECT_EQ(nlohmann::json::parse(out),
		  (nlohmann::json{ { "version", 1 }, { "disks", nlohmann::json::array() } }));
}

TEST(Output, human_status_shows_the_map_and_counters)
{
	control::DiskStatus s;
	s.name = "d0";
	s.queues = 2;
	s.policy = "per-vq";
	s.workers = { { 0, 5, { 0 }, 2001, "0" }, { 1, 6, { 1 }, 2002, "1" } };
	control::VqStatus v0, v1;
	v1.index = 1;
	v1.worker = 1;
	v1.requests[1] = 1234;
	s.vqs = { v0, v1 };
	std::ostringstream os;
	print_status(os, s);
	auto out = os.str();
	EXPECT_NE(out.find("workers   2 (per-vq, placement inherited)"), std::string::npos) << out;
	EXPECT_NE(out.find("1234"), std::string::npos) << out;
	EXPECT_NE(out.find("THROTTLED"), std::string::npos) << out;
	EXPECT_EQ(out.find("STOPPED"), std::string::npos) << out;
	EXPECT_EQ(out.find("stopped by a ring error"), std::string::npos) << out;
	EXPECT_EQ(human_bytes(1536), "1.5 KiB");
	EXPECT_EQ(human_bytes(100), "100 B");
}

TEST(Output, human_status_marks_a_stopped_ring_and_says_what_to_do)
{
	control::DiskStatus s;
	s.name = "d0";
	s.queues = 3;
	control::VqStatus v0, v1, v2;
	v1.index = 1;
	v1.stopped = true;
	v1.throttled = 4321;
	v2.index = 2;
	s.vqs = { v0, v1, v2 };
	std::ostringstream os;
	print_status(os, s);
	auto out = os.str();
	// The vq table's row of ring `vq`.
	auto row = [&](unsigned vq) {
		std::istringstream in(out.substr(out.find("  VQ ")));
		for (std::string l; std::getline(in, l);)
			if (l.starts_with("  " + std::to_string(vq) + " "))
				return l;
		return std::string();
	};
	// The marker on ring 1's row only, its throttled count in the table.
	EXPECT_NE(row(1).find("STOPPED"), std::string::npos) << out;
	EXPECT_NE(row(1).find("4321"), std::string::npos) << out;
	ASSERT_FALSE(row(0).empty()) << out;
	EXPECT_EQ(row(0).find("STOPPED"), std::string::npos) << out;
	EXPECT_EQ(row(2).find("STOPPED"), std::string::npos) << out;
	EXPECT_NE(out.find("  ring 1 stopped by a ring error: the VMM must reset it (see "
			   "vhost-blk.rst, Ring errors)\n"),
		  std::string::npos)
		<< out;
	EXPECT_EQ(out.find("ring 0 stopped"), std::string::npos) << out;
	EXPECT_EQ(out.find("ring 2 stopped"), std::string::npos) << out;
}

// --queues is the most a frontend may set up; without it the module's
// max_queues, so QEMU's default of one queue per vCPU fits.
TEST(Cli, serve_queues_default_to_the_module_s_max_queues)
{
	EXPECT_EQ(parse({ "serve", "--backend", "/dev/null", "--socket", "/tmp/a" }).serve.queues, 0u);
	EXPECT_EQ(serve_queues(0, 16), 16u);
	EXPECT_EQ(serve_queues(0, 64), 64u);
	EXPECT_EQ(serve_queues(0, 1000), 256u);
	EXPECT_EQ(serve_queues(0, -1), 16u);	// module not loaded: its default
	EXPECT_EQ(serve_queues(4, 16), 4u);
}
