// SPDX-License-Identifier: GPL-2.0
// The command line as a whole: global options, the subcommands, the
// mapping of errors to exit codes.
#include "cli/cli.hpp"

#include <iostream>

#ifndef VHOST_BLKCTL_VERSION
#error "VHOST_BLKCTL_VERSION comes from CMake's project(VERSION)"
#endif

namespace cli {

const char *version()
{
	return VHOST_BLKCTL_VERSION;
}

void setup_cli(CLI::App &app, Options &o)
{
	app.description("Serve disks through the vhost-blk kernel module and manage them");
	app.add_option("--run-dir", o.global.run_dir,
		       "Directory of the control sockets (default $VHOST_BLKCTL_RUN_DIR or "
		       "/run/vhost-blk)");
	app.set_version_flag("--version", std::string("vhost-blkctl ") + version(),
			     "Print the version and exit");
	app.require_subcommand(1);
	app.fallthrough();
	setup_serve(app, o);
	setup_list(app, o);
	setup_status(app, o);
	setup_workers(app, o);
	setup_assign(app, o);
	setup_poll(app, o);
	setup_info(app, o);
}

int run_command(const Options &o)
{
	if (o.command == "serve")
		return run_serve(o);
	if (o.command == "list")
		return run_list(o);
	if (o.command == "status")
		return run_status(o);
	if (o.command == "workers")
		return run_workers(o);
	if (o.command == "assign")
		return run_assign(o);
	if (o.command == "poll")
		return run_poll(o);
	if (o.command == "info")
		return run_info(o);
	throw CliError(exit_usage, "no command");
}

int main_entry(int argc, char **argv)
{
	CLI::App app{ "vhost-blkctl" };
	app.name("vhost-blkctl");
	Options o;
	setup_cli(app, o);
	try {
		app.parse(argc, argv);
	} catch (const CLI::CallForHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForAllHelp &e) {
		return app.exit(e);
	} catch (const CLI::CallForVersion &e) {
		return app.exit(e);
	} catch (const CLI::ParseError &e) {
		std::cerr << "vhost-blkctl: " << e.what() << "\n";
		return exit_usage;
	}
	try {
		return run_command(o);
	} catch (const CliError &e) {
		std::cerr << "vhost-blkctl: " << e.what() << "\n";
		return e.code();
	} catch (const std::exception &e) {
		std::cerr << "vhost-blkctl: " << e.what() << "\n";
		return exit_failure;
	}
}

} // namespace cli
