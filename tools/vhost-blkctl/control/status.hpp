// SPDX-License-Identifier: GPL-2.0
// What a running disk reports, and the operations an admin can apply to
// it.  The daemon fills these structs; the JSON (json.hpp) and the CLI's
// tables are both made from them.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace control {

struct VqStatus {
	static constexpr unsigned nr_types = 8;
	unsigned index = 0;
	std::optional<unsigned> worker;	// logical worker; none: not connected
	std::optional<uint64_t> worker_id;	// kernel worker id; none: not attached
	bool started = false;		// the bridge attached the backend
	bool attached = false;		// what the kernel says
	bool stopped = false;		// a ring error stopped it until the VMM
					// sets it up again
	uint32_t inflight = 0;
	uint64_t requests[nr_types] = {};
	uint64_t bytes[nr_types] = {};
	uint64_t status_ok = 0, status_ioerr = 0, status_unsupp = 0;
	uint64_t bounced = 0, malformed = 0, batches = 0;
	uint64_t throttled = 0;		// waits for the ring's bounce budget
	uint64_t fua_writes = 0;	// writes sent write-through (REQ_FUA)
	// Adaptive busy polling: the window now (µs, at most the disk's
	// poll_us), polls that found the guest's next request, polls that ran
	// out their window.  None: the disk's owner does not report them (a
	// QEMU-owned disk, a daemon older than these counters).
	std::optional<uint64_t> poll_us = std::nullopt;
	std::optional<uint64_t> poll_hits = std::nullopt;
	std::optional<uint64_t> poll_misses = std::nullopt;

	uint64_t total_requests() const noexcept;
};

struct WorkerStatus {
	unsigned index = 0;
	std::optional<uint64_t> kernel_id;	// none: not connected
	std::vector<unsigned> vqs;
	// The worker's thread and the CPUs it may run on (cpulist), as the
	// kernel says now; none: not connected, or no ring yet.
	std::optional<int> tid = std::nullopt;
	std::optional<std::string> cpus = std::nullopt;
};

struct DiskStatus {
	std::string name;
	std::optional<int> pid;		// none: unknown (a QMP peer we could not ask)
	std::string backend;
	std::string socket;
	std::string serial;
	uint64_t size_bytes = 0;
	uint32_t block_size = 512;
	unsigned queues = 1;		// the most the frontend may set up
	bool read_only = false;
	// The ceiling of every ring's busy polling, microseconds (0: off);
	// each ring's window adapts below it (VqStatus::poll_us).
	unsigned poll_us = 0;
	bool connected = false;		// a frontend owns the device
	uint64_t connections = 0;	// accepted since start
	uint64_t features = 0;		// negotiated virtio features
	// "write-back" or "write-through": how the kernel serves writes now
	// (the guest's choice with CONFIG_WCE); none: not connected.
	std::optional<std::string> write_cache;
	std::string policy;
	// Where the workers were put: "inherited", "numa-node:N" or "admin".
	std::string placement = "inherited";
	std::vector<WorkerStatus> workers;
	std::vector<VqStatus> vqs;
	// "live" (the connected frontend's rings), "last-connection" (the
	// counters when the last frontend left) or "none".
	std::string vqs_source = "none";
};

// A control request the daemon refused.  code is one of "invalid-argument",
// "device-error", "unknown-command", "bad-request".
class RequestError : public std::runtime_error {
public:
	RequestError(std::string code, const std::string &msg)
		: std::runtime_error(msg), code_(std::move(code))
	{
	}
	const std::string &code() const noexcept { return code_; }

private:
	std::string code_;
};

// Implemented by the daemon's disk; called by the control server.
class Service {
public:
	virtual ~Service() = default;
	virtual DiskStatus status() = 0;
	virtual void set_workers(unsigned count) = 0;
	virtual void assign(unsigned vq, unsigned worker) = 0;
	virtual void set_policy(const std::string &policy) = 0;
	// Puts the workers' threads on `cpus` (a cpulist): one logical
	// worker, or every worker without a worker of its own.
	virtual void set_cpus(std::optional<unsigned> worker, const std::string &cpus) = 0;
	// The busy-polling ceiling of every ring, microseconds (0: off), now
	// and for every ring started later.
	virtual void set_poll(unsigned us) = 0;
};

} // namespace control
