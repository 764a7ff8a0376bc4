// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl assign NAME | --qmp SOCKET --id DEVICE
//                     --vq Q --worker W | --policy P
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"

#include <iostream>

namespace cli {

void setup_assign(CLI::App &app, Options &o)
{
	auto &a = o.assign;
	auto *sub = app.add_subcommand("assign", "Move a virtqueue to another worker, or apply "
						 "a policy, on a running disk");
	add_disk_ref(*sub, a);
	auto *vq = sub->add_option("--vq", a.vq, "Virtqueue")->check(CLI::NonNegativeNumber);
	auto *w = sub->add_option("--worker", a.worker, "Worker (as listed by status)")
			  ->check(CLI::NonNegativeNumber);
	auto *p = sub->add_option("--policy", a.policy, "single, per-vq or round-robin:N")
			  ->check([](const std::string &v) {
				  if (v == "single" || v == "per-vq")
					  return std::string();
				  if (v.rfind("round-robin:", 0) == 0 && v.size() > 12 &&
				      v.find_first_not_of("0123456789", 12) == std::string::npos)
					  return std::string();
				  return std::string("expected single, per-vq or round-robin:N");
			  });
	vq->needs(w);
	w->needs(vq);
	p->excludes(vq);
	p->excludes(w);
	sub->add_flag("--json", a.json, "JSON output (the new status)");
	sub->callback([&o, vq, p] {
		check_disk_ref("assign", o.assign);
		if (!vq->count() && !p->count())
			throw CLI::ValidationError("assign", "either --vq with --worker, or --policy");
		o.command = "assign";
	});
}

int run_assign(const Options &o)
{
	const auto &a = o.assign;
	nlohmann::json req = { { "cmd", "assign" } };
	if (!a.policy.empty())
		req["policy"] = a.policy;
	else
		req.update({ { "vq", a.vq }, { "worker", a.worker } });
	auto s = call_disk_ref(o.global, a, req);
	print_report(std::cout, s, a.json);
	return exit_ok;
}

} // namespace cli
