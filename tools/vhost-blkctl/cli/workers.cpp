// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl workers NAME --count N: N workers, vqs spread round-robin.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"
#include "control/rundir.hpp"

#include <iostream>

namespace cli {

void setup_workers(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("workers", "Set a running disk's number of vhost workers "
						  "(virtqueues spread round-robin)");
	sub->add_option("name", o.workers.name, "Disk name")->required();
	sub->add_option("--count", o.workers.count, "Number of workers")
		->required()
		->check(CLI::Range(1, 256));
	sub->add_flag("--json", o.workers.json, "JSON output (the new status)");
	sub->callback([&o] { o.command = "workers"; });
}

int run_workers(const Options &o)
{
	auto s = call_disk(control::resolve_run_dir(o.global.run_dir), o.workers.name,
			   { { "cmd", "workers" }, { "count", o.workers.count } });
	if (o.workers.json)
		std::cout << nlohmann::json(s).dump(2) << "\n";
	else
		print_status(std::cout, s);
	return exit_ok;
}

} // namespace cli
