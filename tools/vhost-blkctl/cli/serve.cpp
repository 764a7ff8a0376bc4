// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl serve: a vhost-user-blk backend whose data path is
// /dev/vhost-blk.
#include "cli/cli.hpp"

#include "bridge/daemon.hpp"
#include "bridge/disk.hpp"
#include "common/notify.hpp"
#include "common/unix_socket.hpp"
#include "control/rundir.hpp"
#include "control/server.hpp"
#include "device/kernel_device.hpp"
#include "device/module_info.hpp"

#include <vblk/cpu_list.hpp>
#include <vblk/error.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <grp.h>
#include <iostream>
#include <pwd.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace cli {

unsigned serve_queues(unsigned option, int module_max_queues)
{
	if (option)
		return option;
	return module_max_queues > 0 ? static_cast<unsigned>(std::min(module_max_queues, 256)) : 16;
}

std::optional<unsigned> parse_mode(const std::string &s)
{
	unsigned mode = 0;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), mode, 8);
	if (s.empty() || ec != std::errc() || end != s.data() + s.size() || mode > 0777)
		return std::nullopt;
	return mode;
}

void setup_serve(CLI::App &app, Options &o)
{
	auto &s = o.serve;
	auto *sub = app.add_subcommand("serve", "Serve a block device or image file to a vhost-user-blk frontend "
						"(QEMU) through /dev/vhost-blk");
	sub->add_option("--backend", s.backend,
			"Block device, or raw image file (opened O_DIRECT), to serve")
		->required()
		->check(CLI::ExistingPath);
	sub->add_option("--socket", s.socket, "vhost-user socket to listen on")->required();
	sub->add_option("--name", s.name, "Disk name for the admin commands "
					  "(default: the socket's file name)");
	sub->add_option("--serial", s.serial, "Serial the guest reads (up to 20 bytes; "
					      "default: the name)")
		->check([](const std::string &v) {
			return v.size() > 20 ? std::string("at most 20 bytes") : std::string();
		});
	sub->add_option("--queues", s.queues,
			"Most virtqueues a frontend may set up (default: the module's "
			"max_queues); the frontend's num-queues are served")
		->check(CLI::Range(1, 256));
	auto *w = sub->add_option("--workers", s.workers,
				  "vhost workers, virtqueues spread round-robin")
			  ->check(CLI::Range(1, 256));
	auto *pv = sub->add_flag("--worker-per-vq", s.worker_per_vq, "One worker per virtqueue");
	w->excludes(pv);
	sub->add_option("--map", s.map, "Explicit assignments VQ:WORKER,... (after the policy)");
	sub->add_option("--worker-cpus", s.worker_cpus,
			"CPUs the workers' threads may run on, a CPU list (0-3,8); default: "
			"the CPUs of the backend's NUMA node on a NUMA machine, else serve's own")
		->check(vblk::cpu_list_error);
	sub->add_flag("--read-only", s.read_only, "Offer a read-only disk");
	sub->add_option("--block-size", s.block_size,
			"Logical block size the guest sees (512-4096; default: the backend's). "
			"Below the backend's, the kernel emulates it (512e: read-modify-write "
			"of partial blocks)")
		->check(CLI::IsMember({ 512, 1024, 2048, 4096 }));
	sub->add_option("--poll-us", s.poll_us,
			"Busy-poll idle rings for up to this long (microseconds, the ceiling "
			"of each ring's adaptive window; lower latency at low queue depth "
			"for CPU time)")
		->check(CLI::Range(0u, bridge::max_poll_us));
	sub->add_option("--socket-owner", s.socket_owner,
			"Owner of the vhost-user socket (user name or uid; default: ours)");
	sub->add_option("--socket-group", s.socket_group,
			"Group of the vhost-user socket (group name or gid; default: ours)");
	sub->add_option("--socket-mode", s.socket_mode,
			"Mode of the vhost-user socket (octal, at most 0777)")
		->capture_default_str()
		->check([](const std::string &v) {
			return parse_mode(v) ? std::string() : std::string("an octal mode up to 0777");
		});
	sub->add_option("--device", s.device, "vhost-blk device node")
		->capture_default_str()
		->group("Advanced");
	sub->callback([&o] { o.command = "serve"; });
}

namespace {

std::string default_name(const std::string &socket)
{
	return std::filesystem::path(socket).stem().string();
}

// A decimal id, or nullopt if `s` is not one.
std::optional<uint32_t> numeric_id(const std::string &s)
{
	uint32_t id = 0;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id, 10);
	if (s.empty() || ec != std::errc() || end != s.data() + s.size() || id == ~0u)
		return std::nullopt;
	return id;
}

uid_t lookup_user(const std::string &user)
{
	if (user.empty())
		return static_cast<uid_t>(-1);
	if (auto id = numeric_id(user))
		return *id;
	std::vector<char> buf(16384);
	passwd pw, *res = nullptr;
	int err = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res);
	if (!res)
		throw CliError(exit_usage, "--socket-owner " + user + ": " +
						   (err ? std::strerror(err) : "no such user"));
	return pw.pw_uid;
}

gid_t lookup_group(const std::string &group)
{
	if (group.empty())
		return static_cast<gid_t>(-1);
	if (auto id = numeric_id(group))
		return *id;
	std::vector<char> buf(16384);
	struct group gr, *res = nullptr;
	int err = ::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &res);
	if (!res)
		throw CliError(exit_usage, "--socket-group " + group + ": " +
						   (err ? std::strerror(err) : "no such group"));
	return gr.gr_gid;
}

// Readiness and shutdown for a service manager; a failure is logged, the
// daemon carries on.
void notify(const std::function<void(const std::string &)> &log, const std::string &state)
{
	try {
		common::notify(state);
	} catch (const vblk::SysError &e) {
		log(std::string("cannot notify the service manager: ") + e.what());
	}
}

bool denied(const vblk::SysError &e)
{
	return e.code() == EACCES || e.code() == EPERM;
}

vblk::UniqueFd stop_signals()
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	::sigprocmask(SIG_BLOCK, &set, nullptr);
	::signal(SIGPIPE, SIG_IGN);
	return vblk::UniqueFd(static_cast<int>(
		vblk::check(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd")));
}

} // namespace

int run_serve(const Options &o)
{
	const ServeOptions &s = o.serve;
	std::string name = s.name.empty() ? default_name(s.socket) : s.name;
	if (!control::valid_name(name))
		throw CliError(exit_usage, "invalid disk name '" + name +
						   "' (letters, digits, '.', '_', '-'; use --name)");
	std::string serial = s.serial.empty() ? name.substr(0, 20) : s.serial;
	auto log = [name](const std::string &msg) {
		std::cerr << "vhost-blkctl[" << name << "]: " << msg << std::endl;
	};

	// Where nothing has opened /dev/vhost-blk since boot the module is not
	// loaded yet and its max_queues (modprobe.d) unknown: load it first.
	device::load_module(s.device);
	int maxq = device::module_max_queues();
	unsigned queues = serve_queues(s.queues, maxq);
	if (maxq > 0 && queues > static_cast<unsigned>(maxq))
		throw CliError(exit_usage, "--queues " + std::to_string(queues) +
						   " exceeds the module's max_queues=" +
						   std::to_string(maxq));
	bridge::WorkerPlan plan;
	try {
		if (s.worker_per_vq)
			plan = bridge::WorkerPlan::per_vq(queues);
		else if (s.workers)
			plan = bridge::WorkerPlan::round_robin(queues, s.workers);
		else
			plan = bridge::WorkerPlan::single(queues);
		if (!s.map.empty())
			plan.assign_list(s.map);
		if (!s.worker_cpus.empty()) {
			plan.placement.all = vblk::parse_cpu_list(s.worker_cpus);
			bridge::check_cpus_online(*plan.placement.all);
			plan.placement.source = "admin";
		} else if (int node = -1; auto near = vblk::numa_cpus_near(s.backend, &node)) {
			plan.placement.all = *near;
			plan.placement.source = "numa-node:" + std::to_string(node);
		}
	} catch (const std::invalid_argument &e) {
		throw CliError(exit_usage, e.what());
	}

	std::optional<device::Backend> backend;
	try {
		backend.emplace(device::Backend::open(s.backend, s.read_only));
	} catch (const vblk::SysError &e) {
		throw CliError(denied(e) ? exit_permission : exit_backend, e.what());
	}
	// A read-only block device is served read-only (VIRTIO_BLK_F_RO), as
	// the guest of a read-only disk expects; Backend::open opened it so.
	bool read_only = s.read_only || backend->info().read_only;
	if (read_only && !s.read_only)
		log(s.backend + " is read-only: serving it read-only");
	uint64_t kfeatures;
	try {
		kfeatures = device::KernelDevice(s.device).get_features();
	} catch (const vblk::SysError &e) {
		throw CliError(denied(e) ? exit_permission : exit_kernel, e.what());
	}

	common::SocketAccess access{ *parse_mode(s.socket_mode), lookup_user(s.socket_owner),
				     lookup_group(s.socket_group) };
	std::string run_dir = control::resolve_run_dir(o.global.run_dir);
	if (s.block_size && s.block_size < backend->info().logical_block_size)
		log(s.backend + " has " + std::to_string(backend->info().logical_block_size) +
		    "-byte blocks: the guest's " + std::to_string(s.block_size) +
		    "-byte blocks are emulated (read-modify-write)");
	bridge::DiskOptions dopts{ name, s.socket, serial,
				   { queues, read_only, s.poll_us, s.block_size }, plan };
	std::string devpath = s.device;
	bridge::Disk disk(std::move(dopts), std::move(*backend), kfeatures,
			  [devpath] { return std::make_unique<device::KernelDevice>(devpath); }, log);

	vblk::UniqueFd sig = stop_signals();
	vblk::UniqueFd listen;
	std::optional<control::Server> ctl;
	// The control socket first, then the vhost-user socket: when the
	// frontend can see its socket, the admin commands work too, and
	// READY=1 tells a service manager that both accept connections.
	try {
		control::make_run_dir(run_dir);
		ctl.emplace(control::socket_path(run_dir, name), disk);
		listen = common::listen_unix(s.socket, access);
	} catch (const vblk::SysError &e) {
		throw CliError(exit_failure, e.what());
	}
	bridge::Daemon daemon(disk, std::move(listen), log);
	daemon.add_source({ ctl->fd(), [&ctl] { ctl->on_readable(); } });
	daemon.on_stopping([&log] { notify(log, "STOPPING=1\nSTATUS=draining the rings"); });
	std::string what = "serving " + s.backend + " on " + s.socket + " (" +
			   "up to " + std::to_string(queues) + " queue(s), " + plan.policy +
			   (plan.placement.all ? ", workers on CPUs " +
							 vblk::format_cpu_list(*plan.placement.all) +
							 " (" + plan.placement.source + ")"
					       : std::string()) +
			   ", control " +
			   ctl->path() + ")";
	log(what);
	notify(log, "READY=1\nSTATUS=" + what);
	daemon.run(sig.get());
	::unlink(s.socket.c_str());
	log("stopped");
	return exit_ok;
}

} // namespace cli
