// SPDX-License-Identifier: GPL-2.0
// A vhost-blk-pci device of a running QEMU, reached through QMP: the
// x-query-vhost-blk / x-vhost-blk-set-workers / x-vhost-blk-assign
// commands behind the same control::Service a `serve` disk implements, so
// the admin commands and their output (tables, JSON) are the same.
//
// QMP schema (QEMU side, fixed):
//   VhostBlkInfo { id, drive, serial, size, block-size, backend-block-size,
//                  queues, read-only, poll-us, started, starts, features,
//                  write-cache?, policy,
//                  workers: [VhostBlkWorkerInfo], vqs: [VhostBlkVirtqueueInfo] }
//   VhostBlkWorkerInfo { index, kernel-id, vqs, tid }
//   VhostBlkVirtqueueInfo { index, worker, worker-id, started, attached,
//                  stopped, inflight, requests[8], bytes[8], status-ok,
//                  status-ioerr, status-unsupp, bounced, malformed, batches,
//                  throttled, max-hold-ns, fua-writes, rmw, poll-us,
//                  poll-hits, poll-misses }
// backend-block-size, write-cache, tid, fua-writes, rmw and the poll keys
// came later: a QEMU built before them is still read (those fields are
// then null, or 0 for fua_writes).
#pragma once

#include "control/status.hpp"
#include "qmp/client.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace qmp {

// VhostBlkInfo -> DiskStatus: name = id, backend = drive, socket = the
// QMP socket, connected = started, connections = starts, vqs_source
// "live" while started, else "none"; pid is the QEMU process.
// max-hold-ns, rmw and backend-block-size have no DiskStatus field and are
// dropped.  A worker's tid is kept only if it is a thread of `pid` here
// (/proc/PID/task/TID), with its CPUs (sched_getaffinity).  Throws
// ProtocolError naming the missing or mistyped key.
control::DiskStatus to_disk_status(const nlohmann::json &info, const std::string &socket,
				   int pid);

class VhostBlkDevice : public control::Service {
public:
	// `client` must outlive this object.
	VhostBlkDevice(Client &client, std::string id) : client_(client), id_(std::move(id)) {}

	// x-query-vhost-blk
	control::DiskStatus status() override;
	// x-vhost-blk-set-workers
	void set_workers(unsigned count) override;
	// x-vhost-blk-assign
	void assign(unsigned vq, unsigned worker) override;
	// single | per-vq | round-robin:N -> x-vhost-blk-set-workers with
	// 1 | queues | N (QEMU spreads the vqs round-robin); throws
	// control::RequestError("invalid-argument") for a bad policy.
	void set_policy(const std::string &policy) override;
	// sched_setaffinity(2) on the worker threads QEMU names (one worker,
	// or all): from this process, as taskset(1) would, so the caller
	// needs the right to (root, or QEMU's user).  QEMU does not keep it:
	// the threads keep their CPUs for as long as they live (guest reboots
	// included); workers that a later set-workers creates start on QEMU's
	// CPUs.  All or nothing: device-error when a selected worker has no
	// thread named (no vq mapped to it, an older QEMU or module, another
	// pid namespace) or the kernel refuses one (the others placed before
	// it get their old CPUs back).
	void set_cpus(std::optional<unsigned> worker, const std::string &cpus) override;
	// Refused: the device has no such command, its poll-us is a device
	// property fixed when QEMU starts.
	void set_poll(unsigned us) override;

	const std::string &id() const noexcept { return id_; }

private:
	Client &client_;
	std::string id_;
};

} // namespace qmp
