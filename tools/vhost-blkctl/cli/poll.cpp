// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl poll NAME --us N: the ceiling of every ring's adaptive busy
// polling, live (0: off).
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "bridge/config.hpp"

#include <iostream>

namespace cli {

void setup_poll(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("poll", "Set a running disk's busy-polling ceiling (every "
					       "ring's adaptive window stays below it), live");
	add_disk_ref(*sub, o.poll);
	sub->add_option("--us", o.poll.us,
			"Ceiling in microseconds (0: no polling); kept across reconnects")
		->required()
		->check(CLI::Range(0u, bridge::max_poll_us));
	sub->add_flag("--json", o.poll.json, "JSON output (the new status)");
	sub->callback([&o] {
		check_disk_ref("poll", o.poll);
		o.command = "poll";
	});
}

int run_poll(const Options &o)
{
	const auto &p = o.poll;
	auto s = call_disk_ref(o.global, p, { { "cmd", "poll" }, { "us", p.us } });
	print_report(std::cout, s, p.json);
	return exit_ok;
}

} // namespace cli
