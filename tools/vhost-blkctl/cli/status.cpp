// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl status NAME | --qmp SOCKET --id DEVICE: queues, workers,
// the vq->worker map and the per-vq statistics of one disk.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"

#include <iostream>

namespace cli {

void setup_status(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("status", "Show a disk's queues, workers and statistics");
	add_disk_ref(*sub, o.status);
	sub->add_flag("--json", o.status.json, "JSON output");
	sub->callback([&o] {
		check_disk_ref("status", o.status);
		o.command = "status";
	});
}

int run_status(const Options &o)
{
	auto s = call_disk_ref(o.global, o.status, { { "cmd", "status" } });
	print_report(std::cout, s, o.status.json);
	return exit_ok;
}

} // namespace cli
