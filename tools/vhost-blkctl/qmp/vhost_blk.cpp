// SPDX-License-Identifier: GPL-2.0
#include "qmp/vhost_blk.hpp"

#include "bridge/workers.hpp"

#include <vblk/cpu_list.hpp>
#include <vblk/error.hpp>

#include <cstdint>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace qmp {

using nlohmann::json;

namespace {

ProtocolError bad(const std::string &where, const std::string &key)
{
	return ProtocolError("x-query-vhost-blk: " + where + ": missing or mistyped '" + key + "'");
}

// `v` as a T, checked: nlohmann's get<>() would wrap -1 into a uint64_t.
template <typename T> T as(const json &v, const std::string &where, const std::string &key)
{
	if constexpr (std::is_same_v<T, bool>) {
		if (v.is_boolean())
			return v.get<bool>();
	} else if constexpr (std::is_same_v<T, std::string>) {
		if (v.is_string())
			return v.get<std::string>();
	} else if constexpr (std::is_unsigned_v<T>) {
		if (v.is_number_unsigned() && v.get<uint64_t>() <= std::numeric_limits<T>::max())
			return static_cast<T>(v.get<uint64_t>());
	} else {
		static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, int>);
		if (v.is_number_unsigned() &&
		    v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max()))
			return static_cast<T>(v.get<uint64_t>());
		if (v.is_number_integer() && !v.is_number_unsigned() &&
		    v.get<int64_t>() >= std::numeric_limits<T>::min() &&
		    v.get<int64_t>() <= std::numeric_limits<T>::max())
			return static_cast<T>(v.get<int64_t>());
	}
	throw bad(where, key);
}

template <typename T> T field(const json &obj, const char *key, const std::string &where)
{
	if (!obj.is_object() || !obj.contains(key))
		throw bad(where, key);
	return as<T>(obj[key], where, key);
}

// A key a QEMU built before it was added does not send: none then.
template <typename T>
std::optional<T> opt_field(const json &obj, const char *key, const std::string &where)
{
	if (!obj.is_object() || !obj.contains(key))
		return std::nullopt;
	return as<T>(obj[key], where, key);
}

const json &array(const json &obj, const char *key, const std::string &where)
{
	if (!obj.is_object() || !obj.contains(key) || !obj[key].is_array())
		throw bad(where, key);
	return obj[key];
}

// requests[] / bytes[]: one counter per request type, in enum
// vhost_blk_stat_type order.  A QEMU that reports more types than we know
// keeps working; missing ones are 0.
void counters(const json &vq, const char *key, uint64_t (&out)[control::VqStatus::nr_types],
	      const std::string &where)
{
	const json &list = array(vq, key, where);
	for (size_t i = 0; i < list.size() && i < control::VqStatus::nr_types; i++)
		out[i] = as<uint64_t>(list[i], where, key);
}

control::VqStatus vq_status(const json &j, const std::string &where)
{
	control::VqStatus v;
	v.index = field<unsigned>(j, "index", where);
	if (int w = field<int>(j, "worker", where); w >= 0)
		v.worker = static_cast<unsigned>(w);
	if (int64_t id = field<int64_t>(j, "worker-id", where); id >= 0)
		v.worker_id = static_cast<uint64_t>(id);
	v.started = field<bool>(j, "started", where);
	v.attached = field<bool>(j, "attached", where);
	v.stopped = field<bool>(j, "stopped", where);
	v.inflight = field<uint32_t>(j, "inflight", where);
	counters(j, "requests", v.requests, where);
	counters(j, "bytes", v.bytes, where);
	v.status_ok = field<uint64_t>(j, "status-ok", where);
	v.status_ioerr = field<uint64_t>(j, "status-ioerr", where);
	v.status_unsupp = field<uint64_t>(j, "status-unsupp", where);
	v.bounced = field<uint64_t>(j, "bounced", where);
	v.malformed = field<uint64_t>(j, "malformed", where);
	v.batches = field<uint64_t>(j, "batches", where);
	v.throttled = field<uint64_t>(j, "throttled", where);
	v.fua_writes = opt_field<uint64_t>(j, "fua-writes", where).value_or(0);
	v.poll_us = opt_field<uint64_t>(j, "poll-us", where);
	v.poll_hits = opt_field<uint64_t>(j, "poll-hits", where);
	v.poll_misses = opt_field<uint64_t>(j, "poll-misses", where);
	return v;
}

// A worker's thread, if it is a vhost worker thread of QEMU (`pid`) as
// this process sees it: QEMU reports it in its own pid namespace, where
// the number may name another thread here, and a freed worker's number
// may be reused.  The vhost core names the threads "vhost-<owner pid>".
std::optional<int> qemu_thread(int64_t tid, int pid)
{
	if (tid <= 0 || tid > std::numeric_limits<int>::max() || pid <= 0)
		return std::nullopt;
	std::ifstream comm("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) +
			   "/comm");
	std::string name;
	if (!std::getline(comm, name) || name.rfind("vhost-", 0) != 0)
		return std::nullopt;
	return static_cast<int>(tid);
}

} // namespace

control::DiskStatus to_disk_status(const json &info, const std::string &socket, int pid)
{
	if (!info.is_object())
		throw ProtocolError("x-query-vhost-blk: the reply is not an object");
	control::DiskStatus d;
	d.name = field<std::string>(info, "id", "device");
	if (pid > 0)
		d.pid = pid;
	d.backend = field<std::string>(info, "drive", d.name);
	d.socket = socket;
	d.serial = field<std::string>(info, "serial", d.name);
	d.size_bytes = field<uint64_t>(info, "size", d.name);
	d.block_size = field<uint32_t>(info, "block-size", d.name);
	d.queues = field<uint16_t>(info, "queues", d.name);
	d.read_only = field<bool>(info, "read-only", d.name);
	d.poll_us = field<uint32_t>(info, "poll-us", d.name);
	d.connected = field<bool>(info, "started", d.name);
	d.connections = field<uint64_t>(info, "starts", d.name);
	d.features = field<uint64_t>(info, "features", d.name);
	d.write_cache = opt_field<std::string>(info, "write-cache", d.name);
	d.policy = field<std::string>(info, "policy", d.name);
	d.placement = "unknown";
	for (const auto &w : array(info, "workers", d.name)) {
		std::string where = d.name + " worker";
		control::WorkerStatus ws;
		ws.index = field<uint32_t>(w, "index", where);
		if (int64_t id = field<int64_t>(w, "kernel-id", where); id >= 0)
			ws.kernel_id = static_cast<uint64_t>(id);
		for (const auto &vq : array(w, "vqs", where))
			ws.vqs.push_back(as<uint16_t>(vq, where, "vqs"));
		ws.tid = qemu_thread(opt_field<int64_t>(w, "tid", where).value_or(-1), pid);
		if (ws.tid) {
			// The thread may end in between (ESRCH): no CPUs then.
			try {
				ws.cpus = vblk::format_cpu_list(vblk::thread_cpus(*ws.tid));
			} catch (const vblk::SysError &) {
			}
		}
		d.workers.push_back(std::move(ws));
	}
	for (const auto &v : array(info, "vqs", d.name))
		d.vqs.push_back(vq_status(v, d.name + " vq"));
	d.vqs_source = d.connected ? "live" : "none";
	return d;
}

control::DiskStatus VhostBlkDevice::status()
{
	return to_disk_status(client_.execute("x-query-vhost-blk", { { "id", id_ } }),
			      client_.peer(), client_.peer_pid());
}

void VhostBlkDevice::set_workers(unsigned count)
{
	client_.execute("x-vhost-blk-set-workers", { { "id", id_ }, { "count", count } });
}

void VhostBlkDevice::assign(unsigned vq, unsigned worker)
{
	client_.execute("x-vhost-blk-assign", { { "id", id_ }, { "vq", vq }, { "worker", worker } });
}

void VhostBlkDevice::set_cpus(std::optional<unsigned> worker, const std::string &cpus)
{
	vblk::CpuSet set;
	try {
		set = vblk::parse_cpu_list(cpus);
		bridge::check_cpus_online(set);
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
	control::DiskStatus d = status();
	if (worker && *worker >= d.workers.size())
		throw control::RequestError("invalid-argument",
					    "worker " + std::to_string(*worker) + " out of range (0-" +
						    std::to_string(d.workers.size() - 1) + ")");
	std::vector<int> tids;
	for (const auto &w : d.workers) {
		if (worker && w.index != *worker)
			continue;
		if (!w.tid)
			throw control::RequestError(
				"device-error",
				"worker " + std::to_string(w.index) +
					" has no thread to place: QEMU names a worker's thread "
					"while a virtqueue is mapped to it, with a vhost_blk "
					"module that has VHOST_BLK_GET_WORKER_TID, to a process "
					"in its pid namespace");
		tids.push_back(*w.tid);
	}
	// All or nothing: a thread the kernel refuses (a CPU outside QEMU's
	// cpuset, a thread gone) puts the ones placed before it back.
	std::vector<std::pair<int, vblk::CpuSet>> placed;
	try {
		for (int tid : tids) {
			if (!qemu_thread(tid, *d.pid))
				throw control::RequestError(
					"device-error", "worker thread " + std::to_string(tid) +
								" is gone: ask status again");
			vblk::CpuSet old = vblk::thread_cpus(tid);
			vblk::set_thread_cpus(tid, set);
			placed.emplace_back(tid, std::move(old));
		}
	} catch (const std::exception &e) {
		for (const auto &[tid, old] : placed) {
			try {
				vblk::set_thread_cpus(tid, old);
			} catch (const vblk::SysError &) {
			}
		}
		if (const auto *re = dynamic_cast<const control::RequestError *>(&e))
			throw *re;
		throw control::RequestError("device-error", e.what());
	}
}

void VhostBlkDevice::set_poll(unsigned)
{
	throw control::RequestError(
		"device-error",
		"the QEMU vhost-blk-pci device cannot change busy polling while it runs: "
		"its ceiling is the device property poll-us (-device vhost-blk-pci,...,poll-us=N)");
}

void VhostBlkDevice::set_policy(const std::string &policy)
{
	// The plan's worker count is the policy's meaning, validated the way
	// `serve` validates it; QEMU spreads the vqs round-robin itself.
	unsigned queues = status().queues;
	unsigned count;
	try {
		count = bridge::WorkerPlan::from_policy(policy, queues).workers;
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
	set_workers(count);
}

} // namespace qmp
