// SPDX-License-Identifier: GPL-2.0
// The vhost-user wire protocol: request codes, flags, payload layouts.
// Reference: QEMU docs/interop/vhost-user.rst.  Knows nothing of the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vhost_user {

enum class Request : uint32_t {
	none = 0,
	get_features = 1,
	set_features = 2,
	set_owner = 3,
	reset_owner = 4,
	set_mem_table = 5,
	set_log_base = 6,
	set_log_fd = 7,
	set_vring_num = 8,
	set_vring_addr = 9,
	set_vring_base = 10,
	get_vring_base = 11,
	set_vring_kick = 12,
	set_vring_call = 13,
	set_vring_err = 14,
	get_protocol_features = 15,
	set_protocol_features = 16,
	get_queue_num = 17,
	set_vring_enable = 18,
	send_rarp = 19,
	net_set_mtu = 20,
	set_backend_req_fd = 21,
	iotlb_msg = 22,
	set_vring_endian = 23,
	get_config = 24,
	set_config = 25,
	get_inflight_fd = 31,
	set_inflight_fd = 32,
	reset_device = 34,
	get_max_mem_slots = 36,
	add_mem_reg = 37,
	rem_mem_reg = 38,
	set_status = 39,
	get_status = 40,
};

// "SET_MEM_TABLE" etc., or "REQUEST_<n>" for codes we do not know.
std::string request_name(uint32_t code);

// Header flags.
inline constexpr uint32_t flag_version_mask = 0x3;
inline constexpr uint32_t flag_version = 0x1;
inline constexpr uint32_t flag_reply = 1u << 2;
inline constexpr uint32_t flag_need_reply = 1u << 3;

// Virtio feature bit 30: the frontend may use GET/SET_PROTOCOL_FEATURES.
// Never passed on to a vhost device (the kernel would reject it).
inline constexpr uint64_t f_protocol_features = 1ull << 30;

// Protocol feature bits.
enum ProtocolFeature : unsigned {
	pf_mq = 0,
	pf_log_shmfd = 1,
	pf_rarp = 2,
	pf_reply_ack = 3,
	pf_net_mtu = 4,
	pf_backend_req = 5,
	pf_cross_endian = 6,
	pf_crypto_session = 7,
	pf_pagefault = 8,
	pf_config = 9,
	pf_backend_send_fd = 10,
	pf_host_notifier = 11,
	pf_inflight_shmfd = 12,
	pf_reset_device = 13,
	pf_inband_notifications = 14,
	pf_configure_mem_slots = 15,
	pf_status = 16,
};

inline constexpr size_t header_size = 12;
// Largest payload we accept.  The biggest legitimate ones are a full
// memory table (8 + 8 * 32 bytes) and a config message (12 + 256 bytes).
inline constexpr size_t max_payload = 4096;
// Fds one message may carry (the memory table's 8 regions).
inline constexpr size_t max_fds = 8;
inline constexpr size_t max_mem_regions = 8;
inline constexpr size_t max_config_size = 256;

// SET_VRING_KICK/CALL/ERR u64 payload: bits 0-7 index, bit 8 "no fd".
inline constexpr uint64_t vring_index_mask = 0xff;
inline constexpr uint64_t vring_nofd_mask = 1ull << 8;

struct VringState {
	uint32_t index;
	uint32_t num;
};

struct VringAddr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};
inline constexpr uint32_t vring_addr_f_log = 1u << 0;

// SET_LOG_BASE payload (with VHOST_USER_PROTOCOL_F_LOG_SHMFD): the dirty
// bitmap is mmap_size bytes of the message's fd from mmap_offset, one bit
// per 4 KiB page of guest-physical memory.
struct LogArea {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};
inline constexpr uint64_t log_page_size = 4096;

struct MemoryRegion {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;	// in the frontend's address space
	uint64_t mmap_offset;		// offset of the region in its fd
};

struct ConfigHeader {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
};
inline constexpr size_t config_header_size = 12;

} // namespace vhost_user
