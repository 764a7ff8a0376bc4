// SPDX-License-Identifier: GPL-2.0
#include "vblk/vhost_user_frontend.hpp"
#include "vblk/error.hpp"

#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vblk {

using vhost_user::Message;

using vhost_user::Request;

namespace {

UniqueFd connect_unix(const std::string &path)
{
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	if (path.size() >= sizeof(sa.sun_path))
		throw SysError(ENAMETOOLONG, "vhost-user socket " + path);
	std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
	UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	check(s.get(), "socket(AF_UNIX)");
	if (::connect(s.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) < 0)
		throw SysError(errno, "connect " + path);
	return s;
}

template <typename T> void put(std::vector<uint8_t> &buf, const T &v)
{
	size_t off = buf.size();
	buf.resize(off + sizeof(T));
	std::memcpy(buf.data() + off, &v, sizeof(T));
}

UniqueFd dup_fd(int fd)
{
	UniqueFd d(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
	check(d.get(), "dup");
	return d;
}

} // namespace

VhostUserFrontend::VhostUserFrontend(const std::string &path, std::chrono::milliseconds timeout)
	: ch_(connect_unix(path), timeout)
{
	send_u64(Request::set_owner, 0);
	uint64_t f = call_u64(Request::get_features);
	has_protocol_bit_ = f & vhost_user::f_protocol_features;
	offered_ = f & ~vhost_user::f_protocol_features;
	if (has_protocol_bit_) {
		protocol_ = call_u64(Request::get_protocol_features) & wanted_protocol_features;
		send_u64(Request::set_protocol_features, protocol_);
		if (has_protocol_feature(vhost_user::pf_mq))
			queue_num_ = static_cast<unsigned>(call_u64(Request::get_queue_num));
	}
}

Message VhostUserFrontend::request(Request r)
{
	Message m;
	m.request = static_cast<uint32_t>(r);
	return m;
}

Message VhostUserFrontend::call(Message m)
{
	const uint32_t req = m.request;
	ch_.send(m);
	auto reply = ch_.receive_reply();
	if (!reply)
		throw vhost_user::ProtocolError(m.name() + ": backend closed the connection");
	if (reply->request != req)
		throw vhost_user::ProtocolError(m.name() + ": reply to " + reply->name());
	return std::move(*reply);
}

void VhostUserFrontend::send_acked(Message m)
{
	if (!has_protocol_feature(vhost_user::pf_reply_ack)) {
		ch_.send(m);
		return;
	}
	m.flags |= vhost_user::flag_need_reply;
	const std::string name = m.name();
	Message r = call(std::move(m));
	uint64_t status = vhost_user::parse_u64(r);
	if (status)
		throw SysError(EIO, name + ": backend reported failure " + std::to_string(status));
}

uint64_t VhostUserFrontend::call_u64(Request r)
{
	return vhost_user::parse_u64(call(request(r)));
}

void VhostUserFrontend::send_u64(Request r, uint64_t v)
{
	Message m = request(r);
	if (r != Request::set_owner)
		put(m.payload, v);
	send_acked(std::move(m));
}

void VhostUserFrontend::send_state(Request r, unsigned index, unsigned num)
{
	Message m = request(r);
	put(m.payload, vhost_user::VringState{ index, num });
	send_acked(std::move(m));
}

void VhostUserFrontend::send_file(Request r, unsigned index, int fd)
{
	Message m = request(r);
	uint64_t v = index & vhost_user::vring_index_mask;
	if (fd < 0)
		v |= vhost_user::vring_nofd_mask;
	else
		m.fds.push_back(dup_fd(fd));
	put(m.payload, v);
	send_acked(std::move(m));
}

void VhostUserFrontend::set_features(uint64_t features)
{
	if (has_protocol_bit_)
		features |= vhost_user::f_protocol_features;
	send_u64(Request::set_features, features);
}

void VhostUserFrontend::set_mem_table(const GuestMemory &mem)
{
	Message m = request(Request::set_mem_table);
	put(m.payload, uint32_t{ 1 }); // nregions
	put(m.payload, uint32_t{ 0 }); // padding
	MemRegion r = mem.region();
	put(m.payload, vhost_user::MemoryRegion{ r.guest_phys_addr, r.size, r.userspace_addr, 0 });
	m.fds.push_back(dup_fd(mem.fd()));
	send_acked(std::move(m));
}

void VhostUserFrontend::set_vring_num(unsigned index, unsigned num)
{
	send_state(Request::set_vring_num, index, num);
}

void VhostUserFrontend::set_vring_base(unsigned index, unsigned base)
{
	send_state(Request::set_vring_base, index, base);
}

void VhostUserFrontend::set_vring_addr(unsigned index, const VringAddr &a)
{
	Message m = request(Request::set_vring_addr);
	put(m.payload, vhost_user::VringAddr{ index, a.flags, a.desc, a.used, a.avail, a.log });
	send_acked(std::move(m));
}

void VhostUserFrontend::set_vring_kick(unsigned index, int fd)
{
	send_file(Request::set_vring_kick, index, fd);
}

void VhostUserFrontend::set_vring_call(unsigned index, int fd)
{
	send_file(Request::set_vring_call, index, fd);
}

void VhostUserFrontend::set_vring_err(unsigned index, int fd)
{
	send_file(Request::set_vring_err, index, fd);
}

void VhostUserFrontend::set_vring_enable(unsigned index, bool enable)
{
	send_state(Request::set_vring_enable, index, enable ? 1 : 0);
}

unsigned VhostUserFrontend::get_vring_base(unsigned index)
{
	Message m = request(Request::get_vring_base);
	put(m.payload, vhost_user::VringState{ index, 0 });
	Message r = call(std::move(m));
	return vhost_user::parse_vring_state(r).num;
}

std::vector<uint8_t> VhostUserFrontend::get_config(uint32_t size)
{
	if (!has_protocol_feature(vhost_user::pf_config))
		throw SysError(EOPNOTSUPP, "GET_CONFIG: backend has no CONFIG protocol feature");
	if (size > vhost_user::max_config_size)
		throw std::invalid_argument("GET_CONFIG: size too large");
	Message m = request(Request::get_config);
	put(m.payload, vhost_user::ConfigHeader{ 0, size, 0 });
	m.payload.resize(m.payload.size() + size);
	Message r = call(std::move(m));
	auto c = vhost_user::parse_config(r);
	if (c.hdr.size != size)
		throw vhost_user::ProtocolError("GET_CONFIG: reply has " + std::to_string(c.hdr.size) + " bytes");
	return c.data;
}

} // namespace vblk
