// SPDX-License-Identifier: GPL-2.0
// The frontend ("master") side of vhost-user: what QEMU does with a
// vhost-user-blk-pci device, so that BlkDriver can drive any vhost-user-blk
// backend (qemu-storage-daemon, vhost-blkctl serve) exactly as it drives
// /dev/vhost-blk.  Uses the protocol layer the vhost-blkctl bridge uses.
#pragma once

#include "vblk/guest_memory.hpp"
#include "vblk/vhost_device.hpp"

#include "vhost_user/channel.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace vblk {

class VhostUserFrontend {
public:
	// Protocol features the frontend asks for (ANDed with the backend's).
	static constexpr uint64_t wanted_protocol_features =
		(uint64_t{ 1 } << vhost_user::pf_mq) | (uint64_t{ 1 } << vhost_user::pf_reply_ack) |
		(uint64_t{ 1 } << vhost_user::pf_config);

	// Connects and negotiates protocol features (GET_FEATURES,
	// GET/SET_PROTOCOL_FEATURES, SET_OWNER).  Throws SysError when the
	// socket cannot be reached, vhost_user::ProtocolError on a bad reply.
	explicit VhostUserFrontend(const std::string &socket_path,
				   std::chrono::milliseconds timeout = std::chrono::seconds(10));

	// Virtio features the backend offers, without the vhost-user bit 30.
	uint64_t offered_features() const noexcept { return offered_; }
	uint64_t protocol_features() const noexcept { return protocol_; }
	bool has_protocol_feature(unsigned b) const noexcept { return protocol_ & (uint64_t{ 1 } << b); }
	// Queues the backend serves (GET_QUEUE_NUM; 1 without MQ).
	unsigned queue_num() const noexcept { return queue_num_; }

	// Acks `features` (bit 30 is added when the backend offered it).
	void set_features(uint64_t features);
	// The whole of GuestMemory as one region, its memfd passed along.
	void set_mem_table(const GuestMemory &mem);
	void set_vring_num(unsigned index, unsigned num);
	void set_vring_base(unsigned index, unsigned base);
	void set_vring_addr(unsigned index, const VringAddr &addr);
	void set_vring_kick(unsigned index, int fd);
	void set_vring_call(unsigned index, int fd);
	void set_vring_err(unsigned index, int fd);
	void set_vring_enable(unsigned index, bool enable);
	// Stops the ring; the backend answers once it is idle.
	unsigned get_vring_base(unsigned index);
	// `size` bytes of virtio_blk_config from offset 0 (needs CONFIG).
	std::vector<uint8_t> get_config(uint32_t size);

private:
	vhost_user::Message request(vhost_user::Request r);
	// Sends; with REPLY_ACK waits for the backend's status.
	void send_acked(vhost_user::Message m);
	vhost_user::Message call(vhost_user::Message m);
	uint64_t call_u64(vhost_user::Request r);
	void send_u64(vhost_user::Request r, uint64_t v);
	void send_state(vhost_user::Request r, unsigned index, unsigned num);
	void send_file(vhost_user::Request r, unsigned index, int fd);

	vhost_user::Channel ch_;
	uint64_t offered_ = 0;
	bool has_protocol_bit_ = false;
	uint64_t protocol_ = 0;
	unsigned queue_num_ = 1;
};

} // namespace vblk
