// SPDX-License-Identifier: GPL-2.0
#include "cli/common.hpp"

#include "control/client.hpp"
#include "control/json.hpp"
#include "control/rundir.hpp"
#include "device/module_info.hpp"
#include "qmp/vhost_blk.hpp"

#include <linux/virtio_blk.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <sys/stat.h>

namespace cli {

void add_disk_ref(CLI::App &sub, DiskRef &ref)
{
	sub.add_option("name", ref.name, "Disk name (a disk that `serve` owns)");
	auto *q = sub.add_option("--qmp", ref.qmp,
				 "QMP socket of the QEMU that owns the disk (with --id)");
	auto *i = sub.add_option("--id", ref.id, "id= of the vhost-blk-pci device (with --qmp)");
	q->needs(i);
	i->needs(q);
}

void check_disk_ref(const std::string &command, const DiskRef &ref)
{
	bool by_name = !ref.name.empty(), by_qmp = !ref.qmp.empty() || !ref.id.empty();
	if (by_name && by_qmp)
		throw CLI::ValidationError(command, "a disk NAME or --qmp SOCKET --id DEVICE, "
						    "not both");
	if (!by_name && !by_qmp)
		throw CLI::ValidationError(command, "a disk NAME or --qmp SOCKET --id DEVICE "
						    "is required");
	if (by_qmp && (ref.qmp.empty() || ref.id.empty()))
		throw CLI::ValidationError(command, "--qmp and --id must not be empty");
}

DiskReport call_disk_ref(const GlobalOptions &g, const DiskRef &ref, const nlohmann::json &req)
{
	if (!ref.qmp.empty()) {
		auto s = call_qmp(ref.qmp, ref.id, req);
		nlohmann::json j = s;
		return { std::move(s), std::move(j) };
	}
	return call_disk(control::resolve_run_dir(g.run_dir), ref.name, req);
}

void print_report(std::ostream &os, const DiskReport &r, bool json)
{
	if (json)
		os << control::document(r.json).dump(2) << "\n";
	else
		print_status(os, r.status);
}

namespace {

[[noreturn]] void throw_unreachable(const std::string &socket, int err, const std::string &what)
{
	if (err == EACCES || err == EPERM)
		throw CliError(exit_permission, "permission denied on QMP socket " + socket +
						     ": run as root or as the user QEMU runs as");
	if (err == ENOENT || err == ENOTDIR)
		throw CliError(exit_not_running, "no QMP socket " + socket +
							 " (is QEMU running with -qmp unix:" +
							 socket + ",server=on,wait=off?)");
	if (err == ECONNREFUSED)
		throw CliError(exit_not_running,
			       "QEMU is not running: nobody listens on QMP socket " + socket);
	if (err == ENAMETOOLONG)
		throw CliError(exit_usage, "QMP socket path too long: " + socket);
	throw CliError(exit_failure, what);
}

} // namespace

control::DiskStatus call_qmp(const std::string &socket, const std::string &id,
			     const nlohmann::json &req, std::chrono::milliseconds timeout)
{
	struct stat st;
	if (::stat(socket.c_str(), &st) != 0)
		throw_unreachable(socket, errno, "stat " + socket + ": " + std::strerror(errno));
	try {
		qmp::Client client(socket, timeout);
		qmp::VhostBlkDevice dev(client, id);
		control::apply_request(dev, req);
		return dev.status();
	} catch (const qmp::ConnectError &e) {
		throw_unreachable(socket, e.error_number(), e.what());
	} catch (const qmp::CommandError &e) {
		if (e.error_class() == "CommandNotFound")
			throw CliError(exit_rejected, "QEMU at " + socket + " has no " +
							      e.command() +
							      ": not a QEMU with the vhost-blk-pci "
							      "device");
		throw CliError(exit_rejected, "device '" + id + "' on " + socket + ": " + e.desc());
	} catch (const qmp::Error &e) {
		// Timeout, closed connection, not QMP, a reply of the wrong shape.
		throw CliError(exit_no_answer, e.what());
	} catch (const control::RequestError &e) {
		throw CliError(e.code() == "device-error" ? exit_kernel : exit_rejected,
			       "device '" + id + "' on " + socket + ": " + e.what());
	}
}

DiskReport call_disk(const std::string &run_dir, const std::string &name,
		     const nlohmann::json &req)
{
	if (!control::valid_name(name))
		throw CliError(exit_usage, "invalid disk name '" + name + "'");
	std::string path = control::socket_path(run_dir, name);
	struct stat st;
	if (::stat(path.c_str(), &st) != 0)
		throw CliError(exit_not_running, "no disk named '" + name + "' in " + run_dir);
	nlohmann::json reply;
	try {
		reply = control::request(path, req);
	} catch (const control::ClientError &e) {
		if (e.kind() == control::ClientError::Kind::not_running)
			throw CliError(exit_not_running,
				       "disk '" + name + "' is not running (" + e.what() + ")");
		if (e.kind() == control::ClientError::Kind::permission_denied)
			throw CliError(exit_permission,
				       "permission denied on the control socket of disk '" + name +
					       "' (" + path + "): run as root or as its owner");
		throw CliError(exit_no_answer, e.what());
	}
	if (!reply.is_object() || !reply.contains("ok"))
		throw CliError(exit_no_answer, "disk '" + name + "': malformed answer");
	if (!reply["ok"].is_boolean())
		throw CliError(exit_no_answer, "disk '" + name + "': malformed answer");
	if (!reply["ok"].get<bool>()) {
		std::string code = reply.value("code", "");
		std::string msg = reply.value("error", "request refused");
		throw CliError(code == "device-error" ? exit_kernel : exit_rejected,
			       "disk '" + name + "': " + msg);
	}
	try {
		const auto &raw = reply.at("status");
		return { raw.get<control::DiskStatus>(), control::normalize_disk(raw) };
	} catch (const std::exception &e) {
		throw CliError(exit_no_answer, "disk '" + name + "': malformed status: " + e.what());
	}
}

std::string human_bytes(uint64_t n)
{
	const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = static_cast<double>(n);
	unsigned u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	char buf[32];
	if (u == 0)
		std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
	else
		std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
	return buf;
}

namespace {

// A ring's busy polling in one cell: window (µs) / hits / misses; "-"
// when its owner does not report it (a QEMU-owned disk).
std::string poll_cell(const control::VqStatus &v)
{
	if (!v.poll_us || !v.poll_hits || !v.poll_misses)
		return "-";
	return std::to_string(*v.poll_us) + "us/" + std::to_string(*v.poll_hits) + "/" +
	       std::to_string(*v.poll_misses);
}

} // namespace

void print_status(std::ostream &os, const control::DiskStatus &s)
{
	os << "disk " << s.name << (s.pid ? " (pid " + std::to_string(*s.pid) + ")" : "") << "\n"
	   << "  backend   " << s.backend << ", " << human_bytes(s.size_bytes) << ", "
	   << s.block_size << "-byte blocks" << (s.read_only ? ", read-only" : "") << "\n"
	   << "  socket    " << s.socket << "\n"
	   << (s.poll_us ? "  polling   up to " + std::to_string(s.poll_us) +
				   " us per idle ring, adaptive (POLL: window us/hits/misses)\n"
			 : "")
	   << "  serial    " << s.serial << "\n"
	   << "  frontend  " << (s.connected ? "connected" : "none") << " (" << s.connections
	   << " connection" << (s.connections == 1 ? "" : "s") << " so far)\n";
	if (s.connected) {
		os << "  features ";
		for (const auto &n : device::feature_names(s.features))
			os << " " << n;
		os << "\n";
	}
	if (s.write_cache)
		os << "  cache     " << *s.write_cache
		   << (s.features & (1ull << VIRTIO_BLK_F_CONFIG_WCE) ? " (guest-controlled)" : "")
		   << "\n";
	os << "  queues    " << s.queues << "\n"
	   << "  workers   " << s.workers.size() << " (" << s.policy << ", placement "
	   << s.placement << ")\n\n";
	os << std::left << "  " << std::setw(8) << "WORKER" << std::setw(11) << "KERNEL-ID"
	   << std::setw(9) << "TID" << std::setw(12) << "CPUS" << "VQS\n";
	for (const auto &w : s.workers) {
		os << "  " << std::setw(8) << w.index << std::setw(11)
		   << (w.kernel_id ? std::to_string(*w.kernel_id) : std::string("-")) << std::setw(9)
		   << (w.tid ? std::to_string(*w.tid) : std::string("-")) << std::setw(12)
		   << w.cpus.value_or("-");
		for (size_t i = 0; i < w.vqs.size(); i++)
			os << (i ? "," : "") << w.vqs[i];
		os << "\n";
	}
	if (s.vqs_source == "last-connection")
		os << "\n  counters of the last connection (no frontend now):";
	os << "\n  " << std::setw(4) << "VQ" << std::setw(8) << "WORKER" << std::setw(9)
	   << "STARTED" << std::setw(9) << "INFLIGHT" << std::right << std::setw(10) << "READS"
	   << std::setw(10) << "WRITES" << std::setw(9) << "FLUSHES" << std::setw(8) << "OTHER"
	   << std::setw(12) << "READ" << std::setw(12) << "WRITTEN" << std::setw(8) << "ERRORS"
	   << std::setw(11) << "THROTTLED" << std::setw(16) << "POLL" << "\n";
	for (const auto &v : s.vqs) {
		uint64_t other = v.total_requests() - v.requests[0] - v.requests[1] - v.requests[2];
		os << "  " << std::left << std::setw(4) << v.index << std::setw(8)
		   << (v.worker ? std::to_string(*v.worker) : std::string("-")) << std::setw(9)
		   << (v.started ? "yes" : "no") << std::setw(9) << v.inflight << std::right
		   << std::setw(10) << v.requests[0] << std::setw(10) << v.requests[1]
		   << std::setw(9) << v.requests[2] << std::setw(8) << other << std::setw(12)
		   << human_bytes(v.bytes[0]) << std::setw(12) << human_bytes(v.bytes[1])
		   << std::setw(8) << v.status_ioerr + v.malformed << std::setw(11) << v.throttled
		   << std::setw(16) << poll_cell(v) << (v.stopped ? "  STOPPED" : "") << "\n";
	}
	for (const auto &v : s.vqs)
		if (v.stopped)
			os << "  ring " << v.index
			   << " stopped by a ring error: the VMM must reset it (see vhost-blk.rst, "
			      "Ring errors)\n";
}

} // namespace cli
