// SPDX-License-Identifier: GPL-2.0
// Thin wrapper over /dev/vhost-blk: one method per ioctl.
#pragma once

#include <sys/types.h>

#include "vblk/fd.hpp"

#include <linux/vhost_blk.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vblk {

struct MemRegion {
	uint64_t guest_phys_addr;
	uint64_t size;
	uint64_t userspace_addr;
};

struct VringAddr {
	uint64_t desc;
	uint64_t avail;
	uint64_t used;
	uint64_t log = 0;
	unsigned flags = 0;
};

// All methods throw SysError("<IOCTL NAME>: <strerror>") on failure.
class VhostBlkDevice {
public:
	static constexpr const char *default_path = "/dev/vhost-blk";

	explicit VhostBlkDevice(const std::string &path = default_path);
	explicit VhostBlkDevice(UniqueFd fd) noexcept : fd_(std::move(fd)) {}

	int fd() const noexcept { return fd_.get(); }

	void set_owner();
	void reset_owner();
	uint64_t get_features();
	void set_features(uint64_t features);
	void set_mem_table(std::span<const MemRegion> regions);
	void set_vring_num(unsigned index, unsigned num);
	void set_vring_base(unsigned index, unsigned base);
	unsigned get_vring_base(unsigned index);
	void set_vring_addr(unsigned index, const VringAddr &addr);
	void set_vring_kick(unsigned index, int fd);
	void set_vring_call(unsigned index, int fd);
	void set_vring_err(unsigned index, int fd);
	// Dirty log for VHOST_F_LOG_ALL / VHOST_VRING_F_LOG: the bitmap's
	// address in our address space (0: none), and an eventfd signalled
	// when the kernel wrote to it (-1: none).
	void set_log_base(uint64_t addr);
	void set_log_fd(int fd);
	// Busy polling of an idle ring, microseconds (0: off).
	void set_vring_busyloop_timeout(unsigned index, unsigned usecs);
	unsigned get_vring_busyloop_timeout(unsigned index);

	// index: VHOST_BLK_BACKEND_ALL_VRINGS or VHOST_BLK_BACKEND_VRING(n);
	// fd -1 detaches.
	void set_backend(unsigned index, int fd);
	// Up to VIRTIO_BLK_ID_BYTES bytes; shorter strings are NUL padded.
	void set_serial(std::string_view serial);
	vhost_blk_vring_stats get_vring_stats(unsigned index);
	// VHOST_BLK_WRITE_CACHE_WRITETHROUGH or _WRITEBACK.
	void set_write_cache(uint32_t mode);
	uint32_t get_write_cache();
	// VHOST_BLK_SET_BLOCK_SIZE / _GET_: the guest's logical block size
	// (0: the backend's; below it, 512e read-modify-write).
	void set_block_size(uint32_t bytes);
	uint32_t get_block_size();

	unsigned new_worker();
	void free_worker(unsigned worker_id);
	void attach_vring_worker(unsigned index, unsigned worker_id);
	unsigned get_vring_worker(unsigned index);
	// VHOST_BLK_GET_WORKER_TID: the worker's thread id, 0 while it serves
	// no ring.
	pid_t worker_tid(unsigned worker_id);

	// The raw ioctl for negative tests: 0 (or the positive result) on
	// success, -errno on failure.  Never throws.
	int try_ioctl(unsigned long req, void *arg) noexcept;

	// Request numbers of the worker ioctls, valid even where the system
	// <linux/vhost.h> does not define them.
	static unsigned long new_worker_request() noexcept;
	static unsigned long free_worker_request() noexcept;
	static unsigned long attach_vring_worker_request() noexcept;
	static unsigned long get_vring_worker_request() noexcept;

private:
	void ioctl_or_throw(unsigned long req, void *arg, const char *name);

	UniqueFd fd_;
};

} // namespace vblk
