// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl's command line: one options struct per subcommand, one
// setup_x()/run_x() pair per file (CLI11's subcom_in_files layout).  The
// CLI only parses, calls the layers below and prints.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <stdexcept>
#include <string>

namespace cli {

// Exit codes (documented in vhost-blkctl(8)).
enum ExitCode : int {
	exit_ok = 0,
	exit_failure = 1,	// anything unexpected
	exit_usage = 2,		// bad command line
	exit_not_running = 3,	// no such disk / its daemon is not running
	exit_kernel = 4,	// /dev/vhost-blk missing or an ioctl failed
	exit_rejected = 5,	// the daemon refused the request
	exit_no_answer = 6,	// the daemon did not answer
	exit_backend = 7,	// the backing block device cannot be used
	exit_permission = 8,	// EACCES/EPERM on a control socket, a QMP socket
				// or /dev/vhost-blk
};

// An error that ends the command: one line on stderr, this exit code.
class CliError : public std::runtime_error {
public:
	CliError(int code, const std::string &msg) : std::runtime_error(msg), code_(code) {}
	int code() const noexcept { return code_; }

private:
	int code_;
};

struct GlobalOptions {
	std::string run_dir;	// resolved with control::resolve_run_dir()
};

// The version of vhost-blkctl (CMake's project(VERSION)).
const char *version();

struct ServeOptions {
	std::string backend;
	std::string socket;
	std::string name;	// default: the socket's file name without extension
	std::string serial;	// default: the name
	std::string device = "/dev/vhost-blk";
	unsigned queues = 0;	// the most a frontend may set up; 0: serve_queues()
	unsigned workers = 0;	// 0: one worker (policy single)
	bool worker_per_vq = false;
	std::string map;	// VQ:WORKER,...
	std::string worker_cpus;	// a CPU list; "": the backend's NUMA node's, if any
	bool read_only = false;
	unsigned poll_us = 0;
	uint32_t block_size = 0;	// the guest's logical block; 0: the backend's
	// The vhost-user socket's file: owner and group (a name or a number;
	// empty: ours) and mode (octal).
	std::string socket_owner;
	std::string socket_group;
	std::string socket_mode = "0660";
};

struct ListOptions {
	bool json = false;
};

// The disk an admin command works on: one that `serve` owns, by NAME, or
// a vhost-blk-pci device of a running QEMU, by QMP socket and device id.
// Exactly one of the two forms.
struct DiskRef {
	std::string name;
	std::string qmp;	// QEMU's QMP socket (-qmp unix:PATH,server=on,wait=off)
	std::string id;		// the device's id= on that QEMU
};

struct StatusOptions : DiskRef {
	bool json = false;
};

struct WorkersOptions : DiskRef {
	unsigned count = 0;
	std::string cpus;	// a CPU list; "" keeps the placement
	int worker = -1;	// with cpus: that worker only
	bool json = false;
};

struct AssignOptions : DiskRef {
	int vq = -1;
	int worker = -1;
	std::string policy;
	bool json = false;
};

struct PollOptions : DiskRef {
	unsigned us = 0;	// the busy-polling ceiling; 0: off
	bool json = false;
};

struct InfoOptions {
	std::string device = "/dev/vhost-blk";
	bool json = false;
};

struct Options {
	GlobalOptions global;
	std::string command;	// the subcommand that was parsed
	ServeOptions serve;
	ListOptions list;
	StatusOptions status;
	WorkersOptions workers;
	AssignOptions assign;
	PollOptions poll;
	InfoOptions info;
};

// The virtqueues `serve` offers (VHOST_USER_GET_QUEUE_NUM, num_queues in
// the config space): --queues if given, else the module's max_queues (16
// when unknown), so a frontend's default of one queue per vCPU fits.  The
// frontend's rings are served, however many of these it sets up.
unsigned serve_queues(unsigned option, int module_max_queues);

void setup_serve(CLI::App &app, Options &o);
// An octal file mode up to 0777 ("660", "0660"); nullopt otherwise.
std::optional<unsigned> parse_mode(const std::string &s);
void setup_list(CLI::App &app, Options &o);
void setup_status(CLI::App &app, Options &o);
void setup_workers(CLI::App &app, Options &o);
void setup_assign(CLI::App &app, Options &o);
void setup_poll(CLI::App &app, Options &o);
void setup_info(CLI::App &app, Options &o);
// The whole command line: global options and every subcommand.
void setup_cli(CLI::App &app, Options &o);

int run_serve(const Options &o);
int run_list(const Options &o);
int run_status(const Options &o);
int run_workers(const Options &o);
int run_assign(const Options &o);
int run_poll(const Options &o);
int run_info(const Options &o);
// Runs o.command; throws CliError.
int run_command(const Options &o);

// Parses and runs; prints one error line and returns an ExitCode.
int main_entry(int argc, char **argv);

} // namespace cli
