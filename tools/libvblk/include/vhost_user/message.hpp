// SPDX-License-Identifier: GPL-2.0
// One vhost-user message, and typed, validated views of its payload.
#pragma once

#include "vhost_user/protocol.hpp"

#include <vblk/fd.hpp>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace vhost_user {

// The frontend sent something that breaks the protocol: the connection
// cannot continue.
class ProtocolError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

struct Message {
	uint32_t request = 0;
	uint32_t flags = flag_version;
	std::vector<uint8_t> payload;
	std::vector<vblk::UniqueFd> fds;

	Request req() const noexcept { return static_cast<Request>(request); }
	bool need_reply() const noexcept { return flags & flag_need_reply; }
	std::string name() const { return request_name(request); }
};

// Header checks that need no payload: version, reply bit (set on a reply,
// clear on a request), size limit.  Throws ProtocolError.
void validate_header(uint32_t request, uint32_t flags, uint32_t size, bool reply = false);

// Payload parsers.  Each checks the exact size and the fd count the request
// allows, and throws ProtocolError("<REQUEST>: <what is wrong>").
uint64_t parse_u64(const Message &m);
VringState parse_vring_state(const Message &m);
VringAddr parse_vring_addr(const Message &m);
std::vector<MemoryRegion> parse_mem_table(const Message &m);
// SET_LOG_BASE: the 16-byte LogArea and one fd (the log's memfd; none
// allowed with mmap_size 0, no log).
LogArea parse_log_base(const Message &m);
// SET_LOG_FD: no payload (or a zero u64) and exactly one fd (an eventfd).
void parse_log_fd(const Message &m);

struct VringFile {
	uint32_t index;
	bool has_fd;		// false: "no fd" bit set (polling mode)
};
VringFile parse_vring_file(const Message &m);

struct ConfigRequest {
	ConfigHeader hdr;
	std::vector<uint8_t> data;	// hdr.size bytes
};
ConfigRequest parse_config(const Message &m);

// A message carrying fds where the request takes none.
void expect_no_fds(const Message &m);
// A request that must have no payload (GET_FEATURES etc.); QEMU sends none,
// other frontends send a zero u64, so up to 8 bytes are tolerated.
void expect_empty(const Message &m);

// Reply builders.
Message reply_u64(const Message &req, uint64_t v);
Message reply_vring_state(const Message &req, VringState s);
Message reply_config(const Message &req, const ConfigHeader &hdr,
		     std::span<const uint8_t> data);

// Header + payload bytes ready for the socket.
std::vector<uint8_t> serialize(const Message &m);

} // namespace vhost_user
