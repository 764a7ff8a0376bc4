// SPDX-License-Identifier: GPL-2.0
// What `vhost-blkctl info` reports: the module, the device node, the
// kernel, the features, and what is missing for serving a disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace device {

struct ModuleInfo {
	std::string kernel;		// uname -r
	bool module_loaded = false;	// /sys/module/vhost_blk
	std::string version;		// module version, "" if none
	std::string srcversion;
	int max_queues = -1;		// module parameter, -1 if unknown
	std::string device_path;
	bool device_present = false;
	std::string device_error;	// why it could not be opened
	bool device_denied = false;	// ... because of EACCES/EPERM
	bool features_known = false;
	uint64_t features = 0;
	bool workers_supported = false;	// VHOST_NEW_WORKER works
	std::vector<std::string> missing;
};

// Names of the set bits of a vhost-blk feature word ("VERSION_1", "MQ", ...).
std::vector<std::string> feature_names(uint64_t features);

// Probes the running system; opens `device_path` (and probes the worker
// ioctls on a scratch instance) when it can.  Never throws.
ModuleInfo probe_module(const std::string &device_path);

// Opens `device_path` once if vhost_blk is not loaded: the node's devname
// alias makes that first open load the module, so that its parameters
// (max_queues from modprobe.d) can be read.  Never throws.
void load_module(const std::string &device_path);

// The module parameter, -1 if not readable.
int module_max_queues();

} // namespace device
