// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl workers NAME | --qmp SOCKET --id DEVICE --count N: N workers,
// vqs spread round-robin.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"

#include <iostream>

namespace cli {

void setup_workers(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("workers", "Set a running disk's number of vhost workers "
						  "(virtqueues spread round-robin)");
	add_disk_ref(*sub, o.workers);
	sub->add_option("--count", o.workers.count, "Number of workers")
		->required()
		->check(CLI::Range(1, 256));
	sub->add_flag("--json", o.workers.json, "JSON output (the new status)");
	sub->callback([&o] {
		check_disk_ref("workers", o.workers);
		o.command = "workers";
	});
}

int run_workers(const Options &o)
{
	auto s = call_disk_ref(o.global, o.workers,
			       { { "cmd", "workers" }, { "count", o.workers.count } });
	print_report(std::cout, s, o.workers.json);
	return exit_ok;
}

} // namespace cli
