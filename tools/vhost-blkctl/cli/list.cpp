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

namespace {

// A disk whose daemon could not be asked: "stale" (nobody answers) or
// "inaccessible" (no permission on its control socket), with the error.
// The same disk object as any other, null where nothing is known.
nlohmann::json unreachable_disk(const std::string &name, const CliError &e)
{
	return control::normalize_disk(
		{ { "name", name },
		  { "state", e.code() == exit_permission ? "inaccessible" : "stale" },
		  { "error", e.what() } });
}

std::string or_dash(const nlohmann::json &v)
{
	if (v.is_null())
		return "-";
	return v.is_string() ? v.get<std::string>() : v.dump();
}

} // namespace

int run_list(const Options &o)
{
	std::string run_dir = control::resolve_run_dir(o.global.run_dir);
	nlohmann::json disks = nlohmann::json::array();
	std::vector<uint64_t> requests;
	for (const auto &name : control::list_names(run_dir)) {
		try {
			auto r = call_disk(run_dir, name, { { "cmd", "status" } });
			uint64_t req = 0;
			for (const auto &v : r.status.vqs)
				req += v.total_requests();
			disks.push_back(std::move(r.json));
			requests.push_back(req);
		} catch (const CliError &e) {
			disks.push_back(unreachable_disk(name, e));
			requests.push_back(0);
		}
	}
	if (o.list.json) {
		std::cout << control::document({ { "disks", disks } }).dump(2) << "\n";
		return exit_ok;
	}
	std::cout << std::left << std::setw(16) << "NAME" << std::setw(13) << "STATE"
		  << std::setw(8) << "PID" << std::setw(7) << "QUEUES" << std::setw(8) << "WORKERS"
		  << std::setw(12) << "REQUESTS" << "BACKEND\n";
	for (size_t i = 0; i < disks.size(); i++) {
		const auto &d = disks[i];
		bool known = d["workers"].is_array();
		std::cout << std::setw(16) << or_dash(d["name"]) << std::setw(13)
			  << or_dash(d.value("state", nlohmann::json())) << std::setw(8)
			  << or_dash(d.value("pid", nlohmann::json())) << std::setw(7)
			  << or_dash(d.value("queues", nlohmann::json())) << std::setw(8)
			  << (known && d["workers"].is_array() ? std::to_string(d["workers"].size())
							      : std::string("-"))
			  << std::setw(12) << (known ? std::to_string(requests[i]) : std::string("-"))
			  << or_dash(d.value("backend", nlohmann::json())) << "\n";
	}
	return exit_ok;
}

} // namespace cli
