// SPDX-License-Identifier: GPL-2.0
// device::Device over /dev/vhost-blk (libvblk's VhostBlkDevice).
#pragma once

#include "device/device.hpp"

#include <string>

namespace device {

class KernelDevice : public Device {
public:
	explicit KernelDevice(const std::string &path = vblk::VhostBlkDevice::default_path)
		: dev_(path)
	{
	}

	uint64_t get_features() override { return dev_.get_features(); }
	void set_owner() override { dev_.set_owner(); }
	void set_features(uint64_t f) override { dev_.set_features(f); }
	void set_mem_table(std::span<const MemRegion> r) override { dev_.set_mem_table(r); }
	void set_vring_num(unsigned i, unsigned n) override { dev_.set_vring_num(i, n); }
	void set_vring_base(unsigned i, unsigned b) override { dev_.set_vring_base(i, b); }
	unsigned get_vring_base(unsigned i) override { return dev_.get_vring_base(i); }
	void set_vring_addr(unsigned i, const VringAddr &a) override { dev_.set_vring_addr(i, a); }
	void set_vring_kick(unsigned i, int fd) override { dev_.set_vring_kick(i, fd); }
	void set_vring_call(unsigned i, int fd) override { dev_.set_vring_call(i, fd); }
	void set_vring_err(unsigned i, int fd) override { dev_.set_vring_err(i, fd); }
	void set_log_base(uint64_t addr) override { dev_.set_log_base(addr); }
	void set_log_fd(int fd) override { dev_.set_log_fd(fd); }
	void set_vring_busyloop_timeout(unsigned i, unsigned us) override
	{
		dev_.set_vring_busyloop_timeout(i, us);
	}
	void attach_ring(unsigned i, int fd) override
	{
		dev_.set_backend(VHOST_BLK_BACKEND_VRING(i), fd);
	}
	void detach_ring(unsigned i) override { dev_.set_backend(VHOST_BLK_BACKEND_VRING(i), -1); }
	void set_serial(std::string_view s) override { dev_.set_serial(s); }
	void set_block_size(uint32_t bytes) override { dev_.set_block_size(bytes); }
	RingStats ring_stats(unsigned index) override;
	void set_write_cache(bool writeback) override
	{
		dev_.set_write_cache(writeback ? VHOST_BLK_WRITE_CACHE_WRITEBACK
					       : VHOST_BLK_WRITE_CACHE_WRITETHROUGH);
	}
	bool write_cache() override
	{
		return dev_.get_write_cache() == VHOST_BLK_WRITE_CACHE_WRITEBACK;
	}
	unsigned new_worker() override { return dev_.new_worker(); }
	void free_worker(unsigned id) override { dev_.free_worker(id); }
	void attach_vring_worker(unsigned i, unsigned id) override
	{
		dev_.attach_vring_worker(i, id);
	}
	unsigned get_vring_worker(unsigned i) override { return dev_.get_vring_worker(i); }
	pid_t worker_tid(unsigned id) override { return dev_.worker_tid(id); }

private:
	vblk::VhostBlkDevice dev_;
};

} // namespace device
