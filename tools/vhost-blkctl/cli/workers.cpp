// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl workers NAME | --qmp SOCKET --id DEVICE [--count N]
// [--cpus LIST [--worker W]]: N workers, vqs spread round-robin; the CPUs
// the workers' threads run on.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"

#include <vblk/cpu_list.hpp>

#include <iostream>

namespace cli {

void setup_workers(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("workers", "Set a running disk's number of vhost workers "
						  "(virtqueues spread round-robin) and the CPUs "
						  "they run on");
	add_disk_ref(*sub, o.workers);
	auto *count = sub->add_option("--count", o.workers.count, "Number of workers")
			      ->check(CLI::Range(1, 256));
	auto *cpus = sub->add_option("--cpus", o.workers.cpus,
				     "CPUs the workers' threads may run on, a CPU list "
				     "(0-3,8); a served disk keeps them across worker "
				     "count changes and reconnects")
			     ->check(vblk::cpu_list_error);
	sub->add_option("--worker", o.workers.worker,
			"With --cpus: only this worker (as `status` numbers them)")
		->check(CLI::Range(0, 255))
		->needs(cpus);
	sub->add_flag("--json", o.workers.json, "JSON output (the new status)");
	sub->callback([&o, count, cpus] {
		check_disk_ref("workers", o.workers);
		if (!count->count() && !cpus->count())
			throw CLI::ValidationError("workers", "give --count, --cpus or both");
		o.command = "workers";
	});
}

int run_workers(const Options &o)
{
	const auto &w = o.workers;
	DiskReport s;
	// The count first: --worker then numbers the new set of workers.
	if (w.count)
		s = call_disk_ref(o.global, w, { { "cmd", "workers" }, { "count", w.count } });
	if (!w.cpus.empty()) {
		nlohmann::json req = { { "cmd", "workers" }, { "cpus", w.cpus } };
		if (w.worker >= 0)
			req["worker"] = w.worker;
		s = call_disk_ref(o.global, w, req);
	}
	print_report(std::cout, s, o.workers.json);
	return exit_ok;
}

} // namespace cli
