// SPDX-License-Identifier: GPL-2.0
// libFuzzer target: what a vhost-user frontend can send to `serve`.
//
// The input is a stream of frames, each a control byte then a vhost-user
// message as it goes on the wire (12-byte header, then the payload, cut
// short where the input ends):
//
//   control bits 0-3  fds sent with the frame (0-15; more than 8 is an
//                     SCM_RIGHTS overflow the channel must refuse)
//   control bit 4     the fds are eventfds, otherwise 1 MiB memfds
//
// Each frame goes through a socketpair into vhost_user::Channel::receive()
// (framing, header checks, fd passing) and then bridge::Session::handle()
// on a fake kernel device (the payload parsers, the state machine, the
// memory table), the way bridge::Disk serves a connection: a refused
// request goes on, anything else ends the connection.  Handle() may only
// throw the exceptions it documents; any other exception, a crash or a
// sanitizer report is a finding.
#include "bridge/session.hpp"
#include "harness.hpp"
#include "vhost_user/channel.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <exception>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using vhost_user::Channel;
using vhost_user::Message;

[[noreturn]] void die(const char *what)
{
	std::fprintf(stderr, "vhost_user_fuzz: %s: %s\n", what, std::strerror(errno));
	std::abort();
}

vblk::UniqueFd make_fd(bool eventfd)
{
	int fd = eventfd ? ::eventfd(0, EFD_CLOEXEC) : ::memfd_create("fuzz-ram", MFD_CLOEXEC);
	if (fd < 0)
		die(eventfd ? "eventfd" : "memfd_create");
	if (!eventfd && ::ftruncate(fd, harness::ram_size) != 0)
		die("ftruncate");
	return vblk::UniqueFd(fd);
}

// Writes one frame with `nfds` fds on its first byte; the socket buffer
// holds a whole frame (at most 1 + 12 + 4096 bytes of a short input).
void send_frame(int sock, const uint8_t *data, size_t len, unsigned nfds, bool eventfd)
{
	std::vector<vblk::UniqueFd> fds;
	for (unsigned i = 0; i < nfds; i++)
		fds.push_back(make_fd(eventfd));
	alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 16)] = {};
	struct iovec iov = { .iov_base = const_cast<uint8_t *>(data), .iov_len = len };
	struct msghdr mh = {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		mh.msg_control = ctrl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		for (unsigned i = 0; i < nfds; i++) {
			int fd = fds[i].get();
			std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(fd));
		}
	}
	if (::sendmsg(sock, &mh, MSG_NOSIGNAL) != static_cast<ssize_t>(len))
		die("sendmsg");
}

// Reads and drops whatever the backend replied.
void drain(int sock)
{
	uint8_t buf[8192];
	while (::recv(sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

// One message, as bridge::Disk::handle_one() treats it.  False: the
// connection ends.
bool serve_one(Channel &ch, bridge::Session &s)
{
	std::optional<Message> m;
	try {
		m = ch.receive();
		if (!m)
			return false;
		auto reply = s.handle(*m);
		if (reply)
			ch.send(*reply);
		return true;
	} catch (const bridge::Rejected &) {
		if (m && s.can_nack(*m))
			ch.send(vhost_user::reply_u64(*m, 1));
		return true;
	} catch (const vblk::SysError &) {
		if (m && s.can_nack(*m)) {
			ch.send(vhost_user::reply_u64(*m, 1));
			return true;
		}
		return false;
	} catch (const vhost_user::ProtocolError &) {
		return false;
	} catch (const bridge::SessionError &) {
		return false;
	} catch (const bridge::TranslationError &) {
		return false;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "vhost_user_fuzz: undocumented exception from %s: %s\n",
			     m ? m->name().c_str() : "receive", e.what());
		std::abort();
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair");
	vblk::UniqueFd frontend(sv[0]);
	// Timeout 0: a frame's bytes are all in the socket before it is
	// received, so a frame shorter than its header says is truncated
	// at once instead of after the daemon's 5 s.
	Channel ch(vblk::UniqueFd(sv[1]), std::chrono::milliseconds(0));
	harness::SessionHarness h;
	size_t at = 0;
	while (at < size) {
		uint8_t control = data[at++];
		size_t len = std::min<size_t>(size - at, vhost_user::header_size);
		if (len == vhost_user::header_size) {
			uint32_t declared;
			std::memcpy(&declared, data + at + 8, sizeof(declared));
			len += std::min<size_t>(size - at - len,
						std::min<size_t>(declared, vhost_user::max_payload));
		}
		if (len == 0)
			break;
		send_frame(frontend.get(), data + at, len, control & 0xf, control & 0x10);
		at += len;
		bool go_on = serve_one(ch, *h.s);
		drain(frontend.get());
		if (!go_on)
			break;
	}
	return 0;
}
