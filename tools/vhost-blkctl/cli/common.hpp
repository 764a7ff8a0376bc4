// SPDX-License-Identifier: GPL-2.0
// Helpers the admin subcommands share: talking to a disk's control socket
// and printing its status.
#pragma once

#include "cli/cli.hpp"
#include "control/status.hpp"
#include "device/module_info.hpp"

#include "qmp/client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ostream>
#include <string>

namespace cli {

// Adds the disk NAME (positional) and --qmp SOCKET / --id DEVICE to `sub`.
void add_disk_ref(CLI::App &sub, DiskRef &ref);
// For the subcommand's callback: exactly one of the two forms, else
// CLI::ValidationError.
void check_disk_ref(const std::string &command, const DiskRef &ref);

// What a disk reported: the status for tables, and the disk object for
// --json (control::normalize_disk: this version's shape, with the keys a
// newer daemon sent that this tool does not know passed through).
struct DiskReport {
	control::DiskStatus status;
	nlohmann::json json;
};

// Applies control request `req` (control/json.hpp) to the disk `ref`
// names, through its daemon or through QEMU, and returns its status.
DiskReport call_disk_ref(const GlobalOptions &g, const DiskRef &ref, const nlohmann::json &req);

// Prints `r` as the reporting commands do: a table, or with `json` the
// disk object with "version" (status, workers and assign share it).
void print_report(std::ostream &os, const DiskReport &r, bool json);

// The QMP path of call_disk_ref.  Throws CliError: exit_not_running (no
// socket, nobody listening), exit_permission (permission denied),
// exit_no_answer (timeout, connection closed, not QMP), exit_rejected
// (QEMU refused: a bad id or argument, with QEMU's message).
control::DiskStatus call_qmp(const std::string &socket, const std::string &id,
			     const nlohmann::json &req,
			     std::chrono::milliseconds timeout = qmp::default_timeout);

// Sends `req` to disk `name`; returns the status from a successful reply.
// Throws CliError with exit_not_running / exit_permission / exit_no_answer /
// exit_rejected / exit_kernel.
DiskReport call_disk(const std::string &run_dir, const std::string &name,
		     const nlohmann::json &req);

// Human-readable status (the same DiskStatus the JSON is made from).
void print_status(std::ostream &os, const control::DiskStatus &s);
std::string human_bytes(uint64_t n);

// What `info` prints for `m`: a table, or one JSON document.
void print_info(std::ostream &os, const device::ModuleInfo &m, bool json);

} // namespace cli
