// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl info: is the module usable here, and what does it offer.
#include "cli/cli.hpp"

#include "device/module_info.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
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

nlohmann::json info_json(const device::ModuleInfo &m)
{
	char bits[24];
	std::snprintf(bits, sizeof(bits), "0x%llx", static_cast<unsigned long long>(m.features));
	return {
		{ "kernel", m.kernel },
		{ "module", { { "loaded", m.module_loaded },
			      { "version", m.version },
			      { "srcversion", m.srcversion },
			      { "max_queues", m.max_queues } } },
		{ "device", { { "path", m.device_path },
			      { "present", m.device_present },
			      { "error", m.device_error } } },
		{ "features", m.features_known
				      ? nlohmann::json{ { "bits", bits },
							{ "names", device::feature_names(m.features) } }
				      : nlohmann::json(nullptr) },
		{ "workers", m.workers_supported },
		{ "missing", m.missing },
	};
}

int run_info(const Options &o)
{
	auto m = device::probe_module(o.info.device);
	if (o.info.json) {
		std::cout << info_json(m).dump(2) << "\n";
	} else {
		std::cout << "kernel      " << m.kernel << "\n"
			  << "module      "
			  << (m.module_loaded ? "vhost_blk loaded" : "vhost_blk not loaded");
		if (!m.version.empty())
			std::cout << ", version " << m.version;
		if (!m.srcversion.empty())
			std::cout << ", srcversion " << m.srcversion;
		if (m.max_queues >= 0)
			std::cout << ", max_queues " << m.max_queues;
		std::cout << "\ndevice      " << m.device_path
			  << (m.device_present ? "" : " (missing)") << "\n";
		if (m.features_known) {
			std::cout << "features   ";
			for (const auto &n : device::feature_names(m.features))
				std::cout << " " << n;
			std::cout << "\n";
		}
		std::cout << "workers     "
			  << (m.workers_supported ? "multi-worker ioctls available"
						  : "single worker only")
			  << "\n";
		for (const auto &x : m.missing)
			std::cout << "missing     " << x << "\n";
	}
	return m.missing.empty() ? exit_ok : exit_kernel;
}

} // namespace cli
