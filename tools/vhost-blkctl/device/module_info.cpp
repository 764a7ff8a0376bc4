// SPDX-License-Identifier: GPL-2.0
#include "device/module_info.hpp"

#include "device/kernel_device.hpp"

#include <vblk/error.hpp>
#include <vblk/fd.hpp>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/utsname.h>

namespace device {

namespace {

std::string read_line(const std::string &path)
{
	std::ifstream f(path);
	std::string s;
	if (f)
		std::getline(f, s);
	return s;
}

} // namespace

std::vector<std::string> feature_names(uint64_t features)
{
	static const std::pair<unsigned, const char *> names[] = {
		{ VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX" },
		{ VIRTIO_BLK_F_SEG_MAX, "SEG_MAX" },
		{ VIRTIO_BLK_F_GEOMETRY, "GEOMETRY" },
		{ VIRTIO_BLK_F_RO, "RO" },
		{ VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE" },
		{ VIRTIO_BLK_F_FLUSH, "FLUSH" },
		{ VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY" },
		{ VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE" },
		{ VIRTIO_BLK_F_MQ, "MQ" },
		{ VIRTIO_BLK_F_DISCARD, "DISCARD" },
		{ VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES" },
		{ VIRTIO_BLK_F_SECURE_ERASE, "SECURE_ERASE" },
		{ VIRTIO_F_NOTIFY_ON_EMPTY, "NOTIFY_ON_EMPTY" },
		{ VIRTIO_F_ANY_LAYOUT, "ANY_LAYOUT" },
		{ VIRTIO_RING_F_INDIRECT_DESC, "INDIRECT_DESC" },
		{ VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX" },
		{ 30, "PROTOCOL_FEATURES" },
		{ VHOST_F_LOG_ALL, "LOG_ALL" },
		{ VIRTIO_F_VERSION_1, "VERSION_1" },
		{ VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM" },
		{ VIRTIO_F_RING_PACKED, "RING_PACKED" },
	};
	std::vector<std::string> out;
	uint64_t known = 0;
	for (const auto &[bit, name] : names) {
		known |= 1ull << bit;
		if (features & (1ull << bit))
			out.push_back(name);
	}
	for (unsigned b = 0; b < 64; b++)
		if ((features & ~known) & (1ull << b))
			out.push_back("BIT_" + std::to_string(b));
	return out;
}

void load_module(const std::string &device_path)
{
	struct stat st;
	if (::stat("/sys/module/vhost_blk", &st) == 0)
		return;
	// The devname alias: the first open of the node loads the module.
	// Best effort; whoever needs the device reports why it cannot open it.
	vblk::UniqueFd fd(::open(device_path.c_str(), O_RDWR | O_CLOEXEC));
}

int module_max_queues()
{
	std::string s = read_line("/sys/module/vhost_blk/parameters/max_queues");
	try {
		return s.empty() ? -1 : std::stoi(s);
	} catch (const std::exception &) {
		return -1;
	}
}

ModuleInfo probe_module(const std::string &device_path)
{
	ModuleInfo m;
	struct utsname u;
	if (::uname(&u) == 0)
		m.kernel = u.release;
	struct stat st;
	m.module_loaded = ::stat("/sys/module/vhost_blk", &st) == 0;
	m.version = read_line("/sys/module/vhost_blk/version");
	m.srcversion = read_line("/sys/module/vhost_blk/srcversion");
	m.max_queues = module_max_queues();
	m.device_path = device_path;
	m.device_present = ::stat(device_path.c_str(), &st) == 0;

	if (!m.module_loaded)
		m.missing.push_back("module vhost_blk is not loaded (modprobe vhost_blk)");
	if (!m.device_present) {
		m.missing.push_back(device_path + " does not exist");
		return m;
	}
	try {
		KernelDevice dev(device_path);
		m.features = dev.get_features();
		m.features_known = true;
		try {
			dev.set_owner();
			unsigned w = dev.new_worker();
			dev.free_worker(w);
			m.workers_supported = true;
		} catch (const std::exception &) {
			m.missing.push_back("multi-worker ioctls (VHOST_NEW_WORKER, Linux >= 6.5)");
		}
	} catch (const vblk::SysError &e) {
		m.device_error = e.what();
		m.device_denied = e.code() == EACCES || e.code() == EPERM;
		m.missing.push_back("cannot open " + device_path + ": " + e.what());
	} catch (const std::exception &e) {
		m.device_error = e.what();
		m.missing.push_back("cannot open " + device_path + ": " + e.what());
	}
	return m;
}

} // namespace device
