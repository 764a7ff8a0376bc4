// SPDX-License-Identifier: GPL-2.0
#include "control/json.hpp"

#include "device/module_info.hpp"

#include <cstdio>
#include <exception>
#include <string>

namespace control {

using nlohmann::json;

namespace {

const char *const type_names[VqStatus::nr_types] = {
	"in", "out", "flush", "get_id", "discard", "write_zeroes", "secure_erase", "other",
};

// The keys of each object, in schema version 1.
const char *const disk_keys[] = {
	"name",	     "state",	  "pid",       "backend",    "socket",	"serial",
	"size_bytes", "block_size", "queues",    "read_only",  "poll_us",	"connected",
	"connections", "features",  "write_cache", "policy",    "placement",  "workers",    "vqs",
	"vqs_source", "error",
};
const char *const vq_keys[] = {
	"index",  "worker", "worker_id", "started",   "attached", "inflight",  "requests",
	"bytes",  "status", "bounced",   "malformed", "batches",  "stopped",   "throttled",
	"fua_writes", "poll_us", "poll_hits", "poll_misses",
};
const char *const worker_keys[] = { "index", "kernel_id", "vqs", "tid", "cpus" };

// Reads `key` into `out` when present and not null; a wrong type throws.
template <typename T> void get_opt(const json &j, const char *key, T &out)
{
	auto it = j.find(key);
	if (it != j.end() && !it->is_null())
		out = it->template get<T>();
}

// An id that may be unknown: null, absent or negative (older daemons sent
// -1) is none.
template <typename T> void get_opt(const json &j, const char *key, std::optional<T> &out)
{
	out.reset();
	auto it = j.find(key);
	if (it == j.end() || it->is_null())
		return;
	if (it->is_number_integer() && it->template get<int64_t>() < 0)
		return;
	out = it->template get<T>();
}

template <typename T> json or_null(const std::optional<T> &v)
{
	return v ? json(*v) : json(nullptr);
}

uint64_t features_from(const json &f)
{
	if (f.is_number_unsigned())
		return f.get<uint64_t>();
	const auto &bits = f.at("bits");
	if (bits.is_number_unsigned())
		return bits.get<uint64_t>();
	return std::stoull(bits.get<std::string>(), nullptr, 0);
}

bool negative(const json &v)
{
	return v.is_number_integer() && v.get<int64_t>() < 0;
}

// Known keys the object lacks become null; negative ids become null.
void fill(json &obj, std::initializer_list<const char *> ids, const auto &keys)
{
	if (!obj.is_object())
		return;
	for (const char *k : keys)
		if (!obj.contains(k))
			obj[k] = nullptr;
	for (const char *k : ids)
		if (negative(obj[k]))
			obj[k] = nullptr;
}

} // namespace

uint64_t VqStatus::total_requests() const noexcept
{
	uint64_t n = 0;
	for (auto r : requests)
		n += r;
	return n;
}

json features_json(uint64_t features)
{
	char bits[24];
	std::snprintf(bits, sizeof(bits), "0x%llx", static_cast<unsigned long long>(features));
	return json{ { "bits", bits }, { "names", device::feature_names(features) } };
}

std::string disk_state(const DiskStatus &d)
{
	return d.connected ? "connected" : "waiting";
}

void to_json(json &j, const VqStatus &v)
{
	json req = json::object(), bytes = json::object();
	for (unsigned i = 0; i < VqStatus::nr_types; i++) {
		req[type_names[i]] = v.requests[i];
		bytes[type_names[i]] = v.bytes[i];
	}
	j = json{
		{ "index", v.index },
		{ "worker", or_null(v.worker) },
		{ "worker_id", or_null(v.worker_id) },
		{ "started", v.started },
		{ "attached", v.attached },
		{ "inflight", v.inflight },
		{ "requests", req },
		{ "bytes", bytes },
		{ "status", { { "ok", v.status_ok }, { "ioerr", v.status_ioerr },
			      { "unsupp", v.status_unsupp } } },
		{ "bounced", v.bounced },
		{ "malformed", v.malformed },
		{ "batches", v.batches },
		{ "stopped", v.stopped },
		{ "throttled", v.throttled },
		{ "fua_writes", v.fua_writes },
		{ "poll_us", or_null(v.poll_us) },
		{ "poll_hits", or_null(v.poll_hits) },
		{ "poll_misses", or_null(v.poll_misses) },
	};
}

void from_json(const json &j, VqStatus &v)
{
	get_opt(j, "index", v.index);
	get_opt(j, "worker", v.worker);
	get_opt(j, "worker_id", v.worker_id);
	get_opt(j, "started", v.started);
	get_opt(j, "attached", v.attached);
	get_opt(j, "inflight", v.inflight);
	for (unsigned i = 0; i < VqStatus::nr_types; i++) {
		if (j.contains("requests") && j["requests"].is_object())
			get_opt(j["requests"], type_names[i], v.requests[i]);
		if (j.contains("bytes") && j["bytes"].is_object())
			get_opt(j["bytes"], type_names[i], v.bytes[i]);
	}
	if (j.contains("status") && j["status"].is_object()) {
		get_opt(j["status"], "ok", v.status_ok);
		get_opt(j["status"], "ioerr", v.status_ioerr);
		get_opt(j["status"], "unsupp", v.status_unsupp);
	}
	get_opt(j, "bounced", v.bounced);
	get_opt(j, "malformed", v.malformed);
	get_opt(j, "batches", v.batches);
	get_opt(j, "stopped", v.stopped);
	get_opt(j, "throttled", v.throttled);
	get_opt(j, "fua_writes", v.fua_writes);
	get_opt(j, "poll_us", v.poll_us);
	get_opt(j, "poll_hits", v.poll_hits);
	get_opt(j, "poll_misses", v.poll_misses);
}

void to_json(json &j, const WorkerStatus &w)
{
	j = json{ { "index", w.index },	     { "kernel_id", or_null(w.kernel_id) },
		  { "vqs", w.vqs },	     { "tid", or_null(w.tid) },
		  { "cpus", or_null(w.cpus) } };
}

void from_json(const json &j, WorkerStatus &w)
{
	get_opt(j, "index", w.index);
	get_opt(j, "kernel_id", w.kernel_id);
	get_opt(j, "vqs", w.vqs);
	get_opt(j, "tid", w.tid);
	get_opt(j, "cpus", w.cpus);
}

void to_json(json &j, const DiskStatus &d)
{
	j = json{
		{ "name", d.name },
		{ "state", disk_state(d) },
		{ "pid", or_null(d.pid) },
		{ "backend", d.backend },
		{ "socket", d.socket },
		{ "serial", d.serial },
		{ "size_bytes", d.size_bytes },
		{ "block_size", d.block_size },
		{ "queues", d.queues },
		{ "read_only", d.read_only },
		{ "poll_us", d.poll_us },
		{ "connected", d.connected },
		{ "connections", d.connections },
		{ "features", features_json(d.features) },
		{ "write_cache", or_null(d.write_cache) },
		{ "policy", d.policy },
		{ "placement", d.placement },
		{ "workers", d.workers },
		{ "vqs", d.vqs },
		{ "vqs_source", d.vqs_source },
		// Only `list` knows of a disk it could not ask (cli/list.cpp).
		{ "error", nullptr },
	};
}

void from_json(const json &j, DiskStatus &d)
{
	d.name = j.at("name").get<std::string>();
	get_opt(j, "pid", d.pid);
	get_opt(j, "backend", d.backend);
	get_opt(j, "socket", d.socket);
	get_opt(j, "serial", d.serial);
	get_opt(j, "size_bytes", d.size_bytes);
	get_opt(j, "block_size", d.block_size);
	get_opt(j, "queues", d.queues);
	get_opt(j, "read_only", d.read_only);
	get_opt(j, "poll_us", d.poll_us);
	get_opt(j, "connected", d.connected);
	get_opt(j, "connections", d.connections);
	if (j.contains("features") && !j["features"].is_null())
		d.features = features_from(j["features"]);
	get_opt(j, "write_cache", d.write_cache);
	get_opt(j, "policy", d.policy);
	get_opt(j, "placement", d.placement);
	get_opt(j, "workers", d.workers);
	get_opt(j, "vqs", d.vqs);
	get_opt(j, "vqs_source", d.vqs_source);
}

json normalize_disk(const json &raw)
{
	if (!raw.is_object() || !raw.contains("name") || !raw["name"].is_string())
		throw std::invalid_argument("a disk is an object with a \"name\"");
	json out = raw;
	if (!out.contains("state") && out.contains("connected") && out["connected"].is_boolean())
		out["state"] = out["connected"].get<bool>() ? "connected" : "waiting";
	if (out.contains("features") && out["features"].is_number_unsigned())
		out["features"] = features_json(out["features"].get<uint64_t>());
	if (out.contains("pid") && out["pid"].is_number_integer() && out["pid"].get<int64_t>() <= 0)
		out["pid"] = nullptr;
	fill(out, {}, disk_keys);
	if (out["workers"].is_array())
		for (auto &w : out["workers"])
			fill(w, { "kernel_id", "tid", "cpus" }, worker_keys);
	if (out["vqs"].is_array())
		for (auto &v : out["vqs"])
			fill(v, { "worker", "worker_id" }, vq_keys);
	return out;
}

json document(json body)
{
	body["version"] = json_version;
	return body;
}

namespace {

json error_reply(const std::string &code, const std::string &msg)
{
	return json{ { "ok", false }, { "code", code }, { "error", msg } };
}

unsigned get_uint(const json &req, const char *key)
{
	auto it = req.find(key);
	if (it == req.end())
		throw RequestError("bad-request", std::string("missing \"") + key + "\"");
	// Parsed JSON holds non-negative integers as unsigned; a request the
	// CLI builds in memory (the QMP path) may hold them as signed.
	bool ok = it->is_number_unsigned()
			  ? it->get<uint64_t>() <= 0xffffffffull
			  : it->is_number_integer() && it->get<int64_t>() >= 0 &&
				    it->get<int64_t>() <= 0xffffffffll;
	if (!ok)
		throw RequestError("bad-request",
				   std::string("\"") + key + "\" must be a non-negative integer");
	return it->get<unsigned>();
}

} // namespace

void apply_request(Service &svc, const json &req)
{
	if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string())
		throw RequestError("bad-request", "a request is an object with a \"cmd\"");
	std::string cmd = req["cmd"].get<std::string>();
	if (cmd == "workers" && req.contains("cpus")) {
		if (!req["cpus"].is_string())
			throw RequestError("bad-request", "\"cpus\" must be a string (a CPU list)");
		std::optional<unsigned> worker;
		if (req.contains("worker"))
			worker = get_uint(req, "worker");
		svc.set_cpus(worker, req["cpus"].get<std::string>());
	} else if (cmd == "workers") {
		svc.set_workers(get_uint(req, "count"));
	} else if (cmd == "poll") {
		svc.set_poll(get_uint(req, "us"));
	} else if (cmd == "assign") {
		if (req.contains("policy")) {
			if (!req["policy"].is_string())
				throw RequestError("bad-request", "\"policy\" must be a string");
			svc.set_policy(req["policy"].get<std::string>());
		} else {
			unsigned vq = get_uint(req, "vq");
			svc.assign(vq, get_uint(req, "worker"));
		}
	} else if (cmd != "status") {
		throw RequestError("unknown-command", "unknown command \"" + cmd + "\"");
	}
}

json handle_request(Service &svc, const std::string &line)
{
	try {
		apply_request(svc, json::parse(line));
		return json{ { "ok", true }, { "version", protocol_version },
			     { "status", svc.status() } };
	} catch (const json::exception &e) {
		return error_reply("bad-request", std::string("malformed JSON: ") + e.what());
	} catch (const RequestError &e) {
		return error_reply(e.code(), e.what());
	} catch (const std::exception &e) {
		return error_reply("device-error", e.what());
	}
}

} // namespace control
