// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl info: is the module usable here, and what does it offer.
#include "cli/cli.hpp"
#include "cli/common.hpp"

#include "control/json.hpp"
#include "device/module_info.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

namespace cli {

void setup_info(CLI::App &app, Options &o)
{
	auto *sub = app.add_subcommand("info", "Show the vhost-blk module, its features and "
					       "what is missing (exit status 4 if anything is)");
	sub->add_option("--device", o.info.device, "vhost-blk device node")->capture_default_str();
	sub->add_flag("--json", o.info.json, "JSON output");
	sub->callback([&o] { o.command = "info"; });
}

namespace {

nlohmann::json info_json(const device::ModuleInfo &m)
{
	auto str_or_null = [](const std::string &v) {
		return v.empty() ? nlohmann::json(nullptr) : nlohmann::json(v);
	};
	return control::document({
		{ "kernel", m.kernel },
		{ "module", { { "loaded", m.module_loaded },
			      { "version", str_or_null(m.version) },
			      { "srcversion", str_or_null(m.srcversion) },
			      { "max_queues", m.max_queues >= 0 ? nlohmann::json(m.max_queues)
								 : nlohmann::json(nullptr) } } },
		{ "device", { { "path", m.device_path },
			      { "present", m.device_present },
			      { "error", str_or_null(m.device_error) } } },
		{ "features", m.features_known ? control::features_json(m.features)
					       : nlohmann::json(nullptr) },
		// Not "workers": that is a disk's list of worker objects.
		{ "worker_ioctls", m.workers_supported },
		{ "missing", m.missing },
	});
}

} // namespace

void print_info(std::ostream &os, const device::ModuleInfo &m, bool json)
{
	if (json) {
		os << info_json(m).dump(2) << "\n";
		return;
	}
	os << "kernel      " << m.kernel << "\n"
	   << "module      " << (m.module_loaded ? "vhost_blk loaded" : "vhost_blk not loaded");
	if (!m.version.empty())
		os << ", version " << m.version;
	if (!m.srcversion.empty())
		os << ", srcversion " << m.srcversion;
	if (m.max_queues >= 0)
		os << ", max_queues " << m.max_queues;
	os << "\ndevice      " << m.device_path << (m.device_present ? "" : " (missing)") << "\n";
	if (m.features_known) {
		os << "features   ";
		for (const auto &n : device::feature_names(m.features))
			os << " " << n;
		os << "\n";
	}
	os << "workers     "
	   << (m.workers_supported ? "multi-worker ioctls available" : "single worker only") << "\n";
	for (const auto &x : m.missing)
		os << "missing     " << x << "\n";
}

int run_info(const Options &o)
{
	auto m = device::probe_module(o.info.device);
	print_info(std::cout, m, o.info.json);
	if (m.device_denied)
		return exit_permission;
	return m.missing.empty() ? exit_ok : exit_kernel;
}

} // namespace cli
