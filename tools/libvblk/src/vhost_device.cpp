// SPDX-License-Identifier: GPL-2.0
#include "vblk/vhost_device.hpp"
#include "vblk/error.hpp"
#include "vhost_compat.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/ioctl.h>
#include <vector>

namespace vblk {

VhostBlkDevice::VhostBlkDevice(const std::string &path)
	: fd_(UniqueFd::open(path, O_RDWR))
{
}

int VhostBlkDevice::try_ioctl(unsigned long req, void *arg) noexcept
{
	int rc = ::ioctl(fd_.get(), req, arg);
	return rc < 0 ? -errno : rc;
}

void VhostBlkDevice::ioctl_or_throw(unsigned long req, void *arg, const char *name)
{
	if (::ioctl(fd_.get(), req, arg) < 0)
		throw SysError(errno, name);
}

void VhostBlkDevice::set_owner()
{
	ioctl_or_throw(VHOST_SET_OWNER, nullptr, "VHOST_SET_OWNER");
}

void VhostBlkDevice::reset_owner()
{
	ioctl_or_throw(VHOST_RESET_OWNER, nullptr, "VHOST_RESET_OWNER");
}

uint64_t VhostBlkDevice::get_features()
{
	uint64_t f = 0;
	ioctl_or_throw(VHOST_GET_FEATURES, &f, "VHOST_GET_FEATURES");
	return f;
}

void VhostBlkDevice::set_features(uint64_t features)
{
	ioctl_or_throw(VHOST_SET_FEATURES, &features, "VHOST_SET_FEATURES");
}

void VhostBlkDevice::set_mem_table(std::span<const MemRegion> regions)
{
	// struct vhost_memory ends in a flexible array of regions.
	size_t bytes = sizeof(vhost_memory) + regions.size() * sizeof(vhost_memory_region);
	std::vector<uint64_t> storage((bytes + 7) / 8);
	auto *mem = reinterpret_cast<vhost_memory *>(storage.data());
	mem->nregions = static_cast<__u32>(regions.size());
	mem->padding = 0;
	for (size_t i = 0; i < regions.size(); i++) {
		mem->regions[i].guest_phys_addr = regions[i].guest_phys_addr;
		mem->regions[i].memory_size = regions[i].size;
		mem->regions[i].userspace_addr = regions[i].userspace_addr;
		mem->regions[i].flags_padding = 0;
	}
	ioctl_or_throw(VHOST_SET_MEM_TABLE, mem, "VHOST_SET_MEM_TABLE");
}

void VhostBlkDevice::set_vring_num(unsigned index, unsigned num)
{
	vhost_vring_state s = { .index = index, .num = num };
	ioctl_or_throw(VHOST_SET_VRING_NUM, &s, "VHOST_SET_VRING_NUM");
}

void VhostBlkDevice::set_vring_base(unsigned index, unsigned base)
{
	vhost_vring_state s = { .index = index, .num = base };
	ioctl_or_throw(VHOST_SET_VRING_BASE, &s, "VHOST_SET_VRING_BASE");
}

unsigned VhostBlkDevice::get_vring_base(unsigned index)
{
	vhost_vring_state s = { .index = index, .num = 0 };
	ioctl_or_throw(VHOST_GET_VRING_BASE, &s, "VHOST_GET_VRING_BASE");
	return s.num;
}

void VhostBlkDevice::set_vring_addr(unsigned index, const VringAddr &a)
{
	vhost_vring_addr addr = {
		.index = index,
		.flags = a.flags,
		.desc_user_addr = a.desc,
		.used_user_addr = a.used,
		.avail_user_addr = a.avail,
		.log_guest_addr = a.log,
	};
	ioctl_or_throw(VHOST_SET_VRING_ADDR, &addr, "VHOST_SET_VRING_ADDR");
}

void VhostBlkDevice::set_vring_kick(unsigned index, int fd)
{
	vhost_vring_file f = { .index = index, .fd = fd };
	ioctl_or_throw(VHOST_SET_VRING_KICK, &f, "VHOST_SET_VRING_KICK");
}

void VhostBlkDevice::set_vring_call(unsigned index, int fd)
{
	vhost_vring_file f = { .index = index, .fd = fd };
	ioctl_or_throw(VHOST_SET_VRING_CALL, &f, "VHOST_SET_VRING_CALL");
}

void VhostBlkDevice::set_vring_err(unsigned index, int fd)
{
	vhost_vring_file f = { .index = index, .fd = fd };
	ioctl_or_throw(VHOST_SET_VRING_ERR, &f, "VHOST_SET_VRING_ERR");
}

void VhostBlkDevice::set_log_base(uint64_t addr)
{
	ioctl_or_throw(VHOST_SET_LOG_BASE, &addr, "VHOST_SET_LOG_BASE");
}

void VhostBlkDevice::set_log_fd(int fd)
{
	ioctl_or_throw(VHOST_SET_LOG_FD, &fd, "VHOST_SET_LOG_FD");
}

void VhostBlkDevice::set_vring_busyloop_timeout(unsigned index, unsigned usecs)
{
	vhost_vring_state s = { index, usecs };
	ioctl_or_throw(VHOST_SET_VRING_BUSYLOOP_TIMEOUT, &s, "VHOST_SET_VRING_BUSYLOOP_TIMEOUT");
}

unsigned VhostBlkDevice::get_vring_busyloop_timeout(unsigned index)
{
	vhost_vring_state s = { index, 0 };
	ioctl_or_throw(VHOST_GET_VRING_BUSYLOOP_TIMEOUT, &s, "VHOST_GET_VRING_BUSYLOOP_TIMEOUT");
	return s.num;
}

void VhostBlkDevice::set_backend(unsigned index, int fd)
{
	vhost_vring_file f = { .index = index, .fd = fd };
	ioctl_or_throw(VHOST_BLK_SET_BACKEND, &f, "VHOST_BLK_SET_BACKEND");
}

void VhostBlkDevice::set_serial(std::string_view serial)
{
	char buf[VIRTIO_BLK_ID_BYTES] = {};
	std::memcpy(buf, serial.data(), std::min(serial.size(), sizeof(buf)));
	ioctl_or_throw(VHOST_BLK_SET_SERIAL, buf, "VHOST_BLK_SET_SERIAL");
}

vhost_blk_vring_stats VhostBlkDevice::get_vring_stats(unsigned index)
{
	vhost_blk_vring_stats st{};
	st.index = index;
	ioctl_or_throw(VHOST_BLK_GET_VRING_STATS, &st, "VHOST_BLK_GET_VRING_STATS");
	return st;
}

void VhostBlkDevice::set_write_cache(uint32_t mode)
{
	ioctl_or_throw(VHOST_BLK_SET_WRITE_CACHE, &mode, "VHOST_BLK_SET_WRITE_CACHE");
}

uint32_t VhostBlkDevice::get_write_cache()
{
	uint32_t mode = 0;
	ioctl_or_throw(VHOST_BLK_GET_WRITE_CACHE, &mode, "VHOST_BLK_GET_WRITE_CACHE");
	return mode;
}

void VhostBlkDevice::set_block_size(uint32_t bytes)
{
	ioctl_or_throw(VHOST_BLK_SET_BLOCK_SIZE, &bytes, "VHOST_BLK_SET_BLOCK_SIZE");
}

uint32_t VhostBlkDevice::get_block_size()
{
	uint32_t bytes = 0;
	ioctl_or_throw(VHOST_BLK_GET_BLOCK_SIZE, &bytes, "VHOST_BLK_GET_BLOCK_SIZE");
	return bytes;
}

unsigned VhostBlkDevice::new_worker()
{
	vhost_worker_state s = { .worker_id = 0 };
	ioctl_or_throw(VHOST_NEW_WORKER, &s, "VHOST_NEW_WORKER");
	return s.worker_id;
}

void VhostBlkDevice::free_worker(unsigned worker_id)
{
	vhost_worker_state s = { .worker_id = worker_id };
	ioctl_or_throw(VHOST_FREE_WORKER, &s, "VHOST_FREE_WORKER");
}

void VhostBlkDevice::attach_vring_worker(unsigned index, unsigned worker_id)
{
	vhost_vring_worker w = { .index = index, .worker_id = worker_id };
	ioctl_or_throw(VHOST_ATTACH_VRING_WORKER, &w, "VHOST_ATTACH_VRING_WORKER");
}

unsigned VhostBlkDevice::get_vring_worker(unsigned index)
{
	vhost_vring_worker w = { .index = index, .worker_id = 0 };
	ioctl_or_throw(VHOST_GET_VRING_WORKER, &w, "VHOST_GET_VRING_WORKER");
	return w.worker_id;
}

pid_t VhostBlkDevice::worker_tid(unsigned worker_id)
{
	vhost_blk_worker_tid t = { .worker_id = worker_id, .tid = 0 };
	ioctl_or_throw(VHOST_BLK_GET_WORKER_TID, &t, "VHOST_BLK_GET_WORKER_TID");
	return t.tid;
}

unsigned long VhostBlkDevice::new_worker_request() noexcept { return VHOST_NEW_WORKER; }
unsigned long VhostBlkDevice::free_worker_request() noexcept { return VHOST_FREE_WORKER; }
unsigned long VhostBlkDevice::attach_vring_worker_request() noexcept
{
	return VHOST_ATTACH_VRING_WORKER;
}
unsigned long VhostBlkDevice::get_vring_worker_request() noexcept
{
	return VHOST_GET_VRING_WORKER;
}

} // namespace vblk
