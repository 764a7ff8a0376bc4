// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl list: the disks served on this host.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"
#include "control/rundir.hpp"

#include <iomanip>
#include <iostream>

namespace cli {

void setup_list(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("list", "List the disks being served");
	sub->add_flag("--json", o.list.json, "JSON output");
	sub->callback([&o] { o.command = "list"; });
}

int run_list(const Options &o)
{
	std::string run_dir = control::resolve_run_dir(o.global.run_dir);
	nlohmann::json out = nlohmann::json::array();
	struct Row {
		std::string name, state, backend;
		int pid;
		unsigned queues, workers;
		uint64_t requests;
	};
	std::vector<Row> rows;
	for (const auto &name : control::list_names(run_dir)) {
		try {
			auto s = call_disk(run_dir, name, { { "cmd", "status" } });
			uint64_t req = 0;
			for (const auto &v : s.vqs)
				req += v.total_requests();
			std::string state = s.connected ? "connected" : "waiting";
			rows.push_back({ s.name, state, s.backend, s.pid, s.queues,
					 static_cast<unsigned>(s.workers.size()), req });
			out.push_back({ { "name", s.name }, { "state", state }, { "pid", s.pid },
					{ "backend", s.backend }, { "socket", s.socket },
					{ "queues", s.queues }, { "workers", s.workers.size() },
					{ "requests", req } });
		} catch (const CliError &e) {
			rows.push_back({ name, "stale", "-", 0, 0, 0, 0 });
			out.push_back({ { "name", name }, { "state", "stale" }, { "error", e.what() } });
		}
	}
	if (o.list.json) {
		std::cout << out.dump(2) << "\n";
		return exit_ok;
	}
	std::cout << std::left << std::setw(16) << "NAME" << std::setw(11) << "STATE"
		  << std::setw(8) << "PID" << std::setw(7) << "QUEUES" << std::setw(8) << "WORKERS"
		  << std::setw(12) << "REQUESTS" << "BACKEND\n";
	for (const auto &r : rows)
		std::cout << std::setw(16) << r.name << std::setw(11) << r.state << std::setw(8)
			  << (r.pid ? std::to_string(r.pid) : "-") << std::setw(7) << r.queues
			  << std::setw(8) << r.workers << std::setw(12) << r.requests << r.backend
			  << "\n";
	return exit_ok;
}

} // namespace cli
