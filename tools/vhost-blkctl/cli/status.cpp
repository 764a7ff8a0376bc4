// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl status NAME: queues, workers, the vq->worker map and the
// per-vq statistics of one disk.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"
#include "control/rundir.hpp"

#include <iostream>

namespace cli {

void setup_status(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("status", "Show a disk's queues, workers and statistics");
	sub->add_option("name", o.status.name, "Disk name")->required();
	sub->add_flag("--json", o.status.json, "JSON output");
	sub->callback([&o] { o.command = "status"; });
}

int run_status(const Options &o)
{
	auto s = call_disk(control::resolve_run_dir(o.global.run_dir), o.status.name,
			   { { "cmd", "status" } });
	if (o.status.json)
		std::cout << nlohmann::json(s).dump(2) << "\n";
	else
		print_status(std::cout, s);
	return exit_ok;
}

} // namespace cli
