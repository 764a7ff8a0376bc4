// SPDX-License-Identifier: GPL-2.0
#include "control/json.hpp"

#include <exception>

namespace control {

using nlohmann::json;

namespace {

const char *const type_names[VqStatus::nr_types] = {
	"in", "out", "flush", "get_id", "discard", "write_zeroes", "secure_erase", "other",
};

} // namespace

uint64_t VqStatus::total_requests() const noexcept
{
	uint64_t n = 0;
	for (auto r : requests)
		n += r;
	return n;
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
		{ "worker", v.worker },
		{ "worker_id", v.worker_id },
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
	};
}

void from_json(const json &j, VqStatus &v)
{
	v.index = j.at("index").get<unsigned>();
	v.worker = j.at("worker").get<int>();
	v.worker_id = j.at("worker_id").get<int64_t>();
	v.started = j.at("started").get<bool>();
	v.attached = j.at("attached").get<bool>();
	v.inflight = j.at("inflight").get<uint32_t>();
	for (unsigned i = 0; i < VqStatus::nr_types; i++) {
		v.requests[i] = j.at("requests").at(type_names[i]).get<uint64_t>();
		v.bytes[i] = j.at("bytes").at(type_names[i]).get<uint64_t>();
	}
	v.status_ok = j.at("status").at("ok").get<uint64_t>();
	v.status_ioerr = j.at("status").at("ioerr").get<uint64_t>();
	v.status_unsupp = j.at("status").at("unsupp").get<uint64_t>();
	v.bounced = j.at("bounced").get<uint64_t>();
	v.malformed = j.at("malformed").get<uint64_t>();
	v.batches = j.at("batches").get<uint64_t>();
	// Optional: a daemon started before these keys existed keeps running
	// across an upgrade of the tool and still answers without them.
	v.stopped = j.value("stopped", false);
	v.throttled = j.value("throttled", uint64_t{ 0 });
}

void to_json(json &j, const WorkerStatus &w)
{
	j = json{ { "index", w.index }, { "kernel_id", w.kernel_id }, { "vqs", w.vqs } };
}

void from_json(const json &j, WorkerStatus &w)
{
	w.index = j.at("index").get<unsigned>();
	w.kernel_id = j.at("kernel_id").get<int64_t>();
	w.vqs = j.at("vqs").get<std::vector<unsigned>>();
}

void to_json(json &j, const DiskStatus &d)
{
	j = json{
		{ "name", d.name },
		{ "pid", d.pid },
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
		{ "features", d.features },
		{ "policy", d.policy },
		{ "workers", d.workers },
		{ "vqs", d.vqs },
		{ "vqs_source", d.vqs_source },
	};
}

void from_json(const json &j, DiskStatus &d)
{
	d.name = j.at("name").get<std::string>();
	d.pid = j.at("pid").get<int>();
	d.backend = j.at("backend").get<std::string>();
	d.socket = j.at("socket").get<std::string>();
	d.serial = j.at("serial").get<std::string>();
	d.size_bytes = j.at("size_bytes").get<uint64_t>();
	d.block_size = j.at("block_size").get<uint32_t>();
	d.queues = j.at("queues").get<unsigned>();
	d.read_only = j.at("read_only").get<bool>();
	d.poll_us = j.value("poll_us", 0u);
	d.connected = j.at("connected").get<bool>();
	d.connections = j.at("connections").get<uint64_t>();
	d.features = j.at("features").get<uint64_t>();
	d.policy = j.at("policy").get<std::string>();
	d.workers = j.at("workers").get<std::vector<WorkerStatus>>();
	d.vqs = j.at("vqs").get<std::vector<VqStatus>>();
	d.vqs_source = j.value("vqs_source", "none");
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
	if (cmd == "workers") {
		svc.set_workers(get_uint(req, "count"));
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
