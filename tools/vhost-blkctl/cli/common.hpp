// SPDX-License-Identifier: GPL-2.0
// Helpers the admin subcommands share: talking to a disk's control socket
// and printing its status.
#pragma once

#include "cli/cli.hpp"
#include "control/status.hpp"

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>

namespace cli {

// Sends `req` to disk `name`; returns the status from a successful reply.
// Throws CliError with exit_not_running / exit_no_answer / exit_rejected /
// exit_kernel.
control::DiskStatus call_disk(const std::string &run_dir, const std::string &name,
			      const nlohmann::json &req);

// Human-readable status (the same DiskStatus the JSON is made from).
void print_status(std::ostream &os, const control::DiskStatus &s);
std::string human_bytes(uint64_t n);

} // namespace cli
