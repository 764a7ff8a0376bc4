// SPDX-License-Identifier: GPL-2.0
// Framing on a real socketpair: fds, truncation, oversize, EOF.
#include "vhost_user/channel.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace vhost_user;

namespace {

struct Pair {
	int peer;
	std::unique_ptr<Channel> ch;
	Pair()
	{
		int sv[2];
		EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		peer = sv[0];
		ch = std::make_unique<Channel>(vblk::UniqueFd(sv[1]), std::chrono::milliseconds(200));
	}
	~Pair()
	{
		if (peer >= 0)
			::close(peer);
	}
	void close_peer()
	{
		::close(peer);
		peer = -1;
	}
	void send(uint32_t req, uint32_t flags, const std::vector<uint8_t> &payload,
		  uint32_t size, std::vector<int> fds = {})
	{
		std::vector<uint8_t> b(12);
		std::memcpy(b.data(), &req, 4);
		std::memcpy(b.data() + 4, &flags, 4);
		std::memcpy(b.data() + 8, &size, 4);
		b.insert(b.end(), payload.begin(), payload.end());
		struct iovec iov = { b.data(), b.size() };
		struct msghdr mh = {};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 16)];
		if (!fds.empty()) {
			mh.msg_control = ctrl;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
			std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
		}
		ASSERT_EQ(::sendmsg(peer, &mh, 0), static_cast<ssize_t>(b.size()));
	}
};

int open_fds()
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (::fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

} // namespace

TEST(Channel, message_with_fds_is_received_whole)
{
	Pair p;
	int e1 = ::eventfd(0, 0), e2 = ::eventfd(0, 0);
	p.send(5, flag_version, std::vector<uint8_t>(8 + 2 * 32), 8 + 2 * 32, { e1, e2 });
	::close(e1);
	::close(e2);
	auto m = p.ch->receive();
	ASSERT_TRUE(m);
	EXPECT_EQ(m->req(), Request::set_mem_table);
	EXPECT_EQ(m->payload.size(), 72u);
	EXPECT_EQ(m->fds.size(), 2u);
}

TEST(Channel, eof_between_messages_is_a_clean_close)
{
	Pair p;
	p.close_peer();
	EXPECT_FALSE(p.ch->receive());
}

TEST(Channel, eof_inside_the_header_is_truncation)
{
	Pair p;
	uint8_t half[6] = { 1, 0, 0, 0, 1, 0 };
	ASSERT_EQ(::send(p.peer, half, sizeof(half), 0), 6);
	p.close_peer();
	EXPECT_THROW(p.ch->receive(), ProtocolError);
}

TEST(Channel, eof_inside_the_payload_is_truncation)
{
	Pair p;
	p.send(2, flag_version, { 1, 2, 3 }, 8);
	p.close_peer();
	EXPECT_THROW(p.ch->receive(), ProtocolError);
}

TEST(Channel, stalled_payload_times_out_as_truncation)
{
	Pair p;
	p.send(2, flag_version, { 1, 2, 3 }, 8);
	EXPECT_THROW(p.ch->receive(), ProtocolError);
}

TEST(Channel, oversized_size_field_is_rejected_before_reading)
{
	Pair p;
	p.send(5, flag_version, {}, 1u << 30);
	EXPECT_THROW(p.ch->receive(), ProtocolError);
}

TEST(Channel, too_many_fds_are_rejected_and_closed)
{
	int before = open_fds();
	{
		Pair p;
		std::vector<int> fds;
		for (int i = 0; i < 12; i++)
			fds.push_back(::eventfd(0, 0));
		p.send(5, flag_version, {}, 0, fds);
		for (int fd : fds)
			::close(fd);
		EXPECT_THROW(p.ch->receive(), ProtocolError);
	}
	EXPECT_EQ(open_fds(), before);
}

TEST(Channel, reply_goes_out_framed)
{
	Pair p;
	Message req;
	req.request = 1;
	p.ch->send(reply_u64(req, 7));
	uint8_t buf[20];
	ASSERT_EQ(::recv(p.peer, buf, sizeof(buf), MSG_WAITALL), 20);
	uint64_t v;
	std::memcpy(&v, buf + 12, 8);
	EXPECT_EQ(v, 7u);
}
