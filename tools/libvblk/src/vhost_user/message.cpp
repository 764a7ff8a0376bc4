// SPDX-License-Identifier: GPL-2.0
#include "vhost_user/message.hpp"

#include <cstring>
#include <map>

namespace vhost_user {

std::string request_name(uint32_t code)
{
	static const std::map<uint32_t, const char *> names = {
		{ 1, "GET_FEATURES" }, { 2, "SET_FEATURES" }, { 3, "SET_OWNER" },
		{ 4, "RESET_OWNER" }, { 5, "SET_MEM_TABLE" }, { 6, "SET_LOG_BASE" },
		{ 7, "SET_LOG_FD" }, { 8, "SET_VRING_NUM" }, { 9, "SET_VRING_ADDR" },
		{ 10, "SET_VRING_BASE" }, { 11, "GET_VRING_BASE" },
		{ 12, "SET_VRING_KICK" }, { 13, "SET_VRING_CALL" },
		{ 14, "SET_VRING_ERR" }, { 15, "GET_PROTOCOL_FEATURES" },
		{ 16, "SET_PROTOCOL_FEATURES" }, { 17, "GET_QUEUE_NUM" },
		{ 18, "SET_VRING_ENABLE" }, { 19, "SEND_RARP" }, { 20, "NET_SET_MTU" },
		{ 21, "SET_BACKEND_REQ_FD" }, { 22, "IOTLB_MSG" },
		{ 23, "SET_VRING_ENDIAN" }, { 24, "GET_CONFIG" }, { 25, "SET_CONFIG" },
		{ 31, "GET_INFLIGHT_FD" }, { 32, "SET_INFLIGHT_FD" },
		{ 34, "RESET_DEVICE" }, { 36, "GET_MAX_MEM_SLOTS" },
		{ 37, "ADD_MEM_REG" }, { 38, "REM_MEM_REG" }, { 39, "SET_STATUS" },
		{ 40, "GET_STATUS" },
	};
	auto it = names.find(code);
	return it != names.end() ? it->second : "REQUEST_" + std::to_string(code);
}

void validate_header(uint32_t request, uint32_t flags, uint32_t size, bool reply)
{
	std::string what = request_name(request);
	if ((flags & flag_version_mask) != flag_version)
		throw ProtocolError(what + ": unsupported protocol version " +
				    std::to_string(flags & flag_version_mask));
	if (!reply && (flags & flag_reply))
		throw ProtocolError(what + ": reply flag set on a request");
	if (reply && !(flags & flag_reply))
		throw ProtocolError(what + ": reply flag missing on a reply");
	if (size > max_payload)
		throw ProtocolError(what + ": payload of " + std::to_string(size) +
				    " bytes exceeds " + std::to_string(max_payload));
}

namespace {

[[noreturn]] void fail(const Message &m, const std::string &why)
{
	throw ProtocolError(m.name() + ": " + why);
}

void expect_size(const Message &m, size_t size)
{
	if (m.payload.size() != size)
		fail(m, "payload is " + std::to_string(m.payload.size()) +
				" bytes, expected " + std::to_string(size));
}

template <typename T> T load(const uint8_t *p)
{
	T v;
	std::memcpy(&v, p, sizeof(v));
	return v;
}

template <typename T> void store(std::vector<uint8_t> &buf, const T &v)
{
	size_t at = buf.size();
	buf.resize(at + sizeof(v));
	std::memcpy(buf.data() + at, &v, sizeof(v));
}

} // namespace

void expect_no_fds(const Message &m)
{
	if (!m.fds.empty())
		fail(m, "carries " + std::to_string(m.fds.size()) + " unexpected fd(s)");
}

void expect_empty(const Message &m)
{
	expect_no_fds(m);
	if (m.payload.size() != 0 && m.payload.size() != sizeof(uint64_t))
		fail(m, "unexpected payload of " + std::to_string(m.payload.size()) + " bytes");
}

uint64_t parse_u64(const Message &m)
{
	expect_no_fds(m);
	expect_size(m, sizeof(uint64_t));
	return load<uint64_t>(m.payload.data());
}

VringState parse_vring_state(const Message &m)
{
	expect_no_fds(m);
	expect_size(m, sizeof(VringState));
	return load<VringState>(m.payload.data());
}

VringAddr parse_vring_addr(const Message &m)
{
	static_assert(sizeof(VringAddr) == 40);
	expect_no_fds(m);
	expect_size(m, sizeof(VringAddr));
	return load<VringAddr>(m.payload.data());
}

std::vector<MemoryRegion> parse_mem_table(const Message &m)
{
	static_assert(sizeof(MemoryRegion) == 32);
	if (m.payload.size() < 8)
		fail(m, "payload of " + std::to_string(m.payload.size()) +
				" bytes is shorter than the region count");
	uint32_t n = load<uint32_t>(m.payload.data());
	if (n == 0 || n > max_mem_regions)
		fail(m, std::to_string(n) + " regions (1-" +
				std::to_string(max_mem_regions) + " allowed)");
	expect_size(m, 8 + n * sizeof(MemoryRegion));
	if (m.fds.size() != n)
		fail(m, std::to_string(n) + " regions but " + std::to_string(m.fds.size()) +
				" fds");
	std::vector<MemoryRegion> regions(n);
	for (uint32_t i = 0; i < n; i++) {
		auto &r = regions[i];
		r = load<MemoryRegion>(m.payload.data() + 8 + i * sizeof(MemoryRegion));
		std::string which = "region " + std::to_string(i);
		if (r.memory_size == 0)
			fail(m, which + ": size 0");
		if (r.guest_phys_addr + r.memory_size < r.guest_phys_addr ||
		    r.userspace_addr + r.memory_size < r.userspace_addr ||
		    r.mmap_offset + r.memory_size < r.mmap_offset)
			fail(m, which + ": address range wraps around");
		for (uint32_t j = 0; j < i; j++) {
			const auto &o = regions[j];
			if (r.guest_phys_addr < o.guest_phys_addr + o.memory_size &&
			    o.guest_phys_addr < r.guest_phys_addr + r.memory_size)
				fail(m, which + ": guest addresses overlap region " +
						std::to_string(j));
		}
	}
	return regions;
}

VringFile parse_vring_file(const Message &m)
{
	expect_size(m, sizeof(uint64_t));
	uint64_t v = load<uint64_t>(m.payload.data());
	if (v & ~(vring_index_mask | vring_nofd_mask))
		fail(m, "reserved bits set in 0x" + [&] {
			char b[32];
			snprintf(b, sizeof(b), "%llx", static_cast<unsigned long long>(v));
			return std::string(b);
		}());
	VringFile f{ static_cast<uint32_t>(v & vring_index_mask), !(v & vring_nofd_mask) };
	size_t want = f.has_fd ? 1 : 0;
	if (m.fds.size() != want)
		fail(m, "expected " + std::to_string(want) + " fd, got " +
				std::to_string(m.fds.size()));
	return f;
}

namespace {

void expect_one_fd(const Message &m)
{
	if (m.fds.size() != 1)
		fail(m, "expected 1 fd, got " + std::to_string(m.fds.size()));
}

} // namespace

LogArea parse_log_base(const Message &m)
{
	static_assert(sizeof(LogArea) == 16);
	expect_size(m, sizeof(LogArea));
	LogArea a = load<LogArea>(m.payload.data());
	// A zero-sized log (none) may come without its fd.
	if (a.mmap_size || !m.fds.empty())
		expect_one_fd(m);
	if (a.mmap_offset + a.mmap_size < a.mmap_offset)
		fail(m, "log range wraps around");
	return a;
}

void parse_log_fd(const Message &m)
{
	if (m.payload.size() != 0 && m.payload.size() != sizeof(uint64_t))
		fail(m, "unexpected payload of " + std::to_string(m.payload.size()) + " bytes");
	expect_one_fd(m);
}

ConfigRequest parse_config(const Message &m)
{
	expect_no_fds(m);
	if (m.payload.size() < config_header_size)
		fail(m, "payload of " + std::to_string(m.payload.size()) +
				" bytes is shorter than the config header");
	ConfigRequest c;
	c.hdr = load<ConfigHeader>(m.payload.data());
	if (c.hdr.size > max_config_size)
		fail(m, "size " + std::to_string(c.hdr.size) + " exceeds " +
				std::to_string(max_config_size));
	if (static_cast<uint64_t>(c.hdr.offset) + c.hdr.size > max_config_size)
		fail(m, "offset " + std::to_string(c.hdr.offset) + " + size " +
				std::to_string(c.hdr.size) + " is beyond the config space");
	expect_size(m, config_header_size + c.hdr.size);
	c.data.assign(m.payload.begin() + config_header_size, m.payload.end());
	return c;
}

namespace {

Message reply_to(const Message &req)
{
	Message r;
	r.request = req.request;
	r.flags = flag_version | flag_reply;
	return r;
}

} // namespace

Message reply_u64(const Message &req, uint64_t v)
{
	Message r = reply_to(req);
	store(r.payload, v);
	return r;
}

Message reply_vring_state(const Message &req, VringState s)
{
	Message r = reply_to(req);
	store(r.payload, s);
	return r;
}

Message reply_config(const Message &req, const ConfigHeader &hdr,
		     std::span<const uint8_t> data)
{
	Message r = reply_to(req);
	store(r.payload, hdr);
	size_t at = r.payload.size();
	r.payload.resize(at + data.size());
	if (!data.empty())
		std::memcpy(r.payload.data() + at, data.data(), data.size());
	return r;
}

std::vector<uint8_t> serialize(const Message &m)
{
	std::vector<uint8_t> buf;
	uint32_t hdr[3] = { m.request, m.flags, static_cast<uint32_t>(m.payload.size()) };
	buf.resize(header_size + m.payload.size());
	std::memcpy(buf.data(), hdr, header_size);
	if (!m.payload.empty())
		std::memcpy(buf.data() + header_size, m.payload.data(), m.payload.size());
	return buf;
}

} // namespace vhost_user
