// SPDX-License-Identifier: GPL-2.0
#include "vhost_user/channel.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>

namespace vhost_user {

void Channel::wait_readable()
{
	struct pollfd p = { .fd = sock_.get(), .events = POLLIN, .revents = 0 };
	int rc;
	do {
		rc = ::poll(&p, 1, static_cast<int>(timeout_.count()));
	} while (rc < 0 && errno == EINTR);
	vblk::check(rc, "poll vhost-user socket");
	if (rc == 0)
		throw ProtocolError("truncated message: peer stalled for " +
				    std::to_string(timeout_.count()) + " ms");
}

bool Channel::read_exact(uint8_t *buf, size_t len, std::vector<vblk::UniqueFd> *fds)
{
	size_t done = 0;
	while (done < len) {
		if (done)
			wait_readable();
		struct iovec iov = { .iov_base = buf + done, .iov_len = len - done };
		alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_fds)];
		struct msghdr mh = {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (fds) {
			mh.msg_control = ctrl;
			mh.msg_controllen = sizeof(ctrl);
		}
		ssize_t n = ::recvmsg(sock_.get(), &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECONNRESET && done == 0)
				return false;
			throw vblk::SysError(errno, "recvmsg vhost-user socket");
		}
		if (fds) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < nfd; i++) {
					int fd;
					std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
					fds->emplace_back(fd);
				}
			}
			if (mh.msg_flags & MSG_CTRUNC)
				throw ProtocolError("message carries more than " +
						    std::to_string(max_fds) + " fds");
			// Fds only come with the first bytes of a message.
			fds = nullptr;
		}
		if (n == 0) {
			if (done == 0)
				return false;
			throw ProtocolError("truncated message: connection closed after " +
					    std::to_string(done) + " of " + std::to_string(len) +
					    " bytes");
		}
		done += static_cast<size_t>(n);
	}
	return true;
}

std::optional<Message> Channel::receive()
{
	return receive(false);
}

std::optional<Message> Channel::receive_reply()
{
	return receive(true);
}

std::optional<Message> Channel::receive(bool reply)
{
	uint8_t hdr[header_size];
	Message m;
	if (!read_exact(hdr, sizeof(hdr), &m.fds)) {
		if (!m.fds.empty())
			throw ProtocolError("connection closed after sending fds without a message");
		return std::nullopt;
	}
	uint32_t size;
	std::memcpy(&m.request, hdr, 4);
	std::memcpy(&m.flags, hdr + 4, 4);
	std::memcpy(&size, hdr + 8, 4);
	validate_header(m.request, m.flags, size, reply);
	m.payload.resize(size);
	if (size) {
		wait_readable();
		if (!read_exact(m.payload.data(), size, nullptr))
			throw ProtocolError(m.name() + ": truncated message: connection closed "
					    "before the " + std::to_string(size) + "-byte payload");
	}
	return m;
}

void Channel::send(const Message &m)
{
	auto buf = serialize(m);
	if (m.fds.size() > max_fds)
		throw ProtocolError(m.name() + ": more than " + std::to_string(max_fds) + " fds");
	alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * max_fds)] = {};
	size_t done = 0;
	while (done < buf.size()) {
		struct iovec iov = { .iov_base = buf.data() + done, .iov_len = buf.size() - done };
		struct msghdr mh = {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		// The fds go with the first byte of the message.
		if (done == 0 && !m.fds.empty()) {
			mh.msg_control = ctrl;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * m.fds.size());
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * m.fds.size());
			for (size_t i = 0; i < m.fds.size(); i++) {
				int fd = m.fds[i].get();
				std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(fd));
			}
		}
		ssize_t n = ::sendmsg(sock_.get(), &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			throw vblk::SysError(errno, "send " + m.name());
		}
		done += static_cast<size_t>(n);
	}
}

} // namespace vhost_user
