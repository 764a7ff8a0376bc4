// SPDX-License-Identifier: GPL-2.0
// Message framing on a connected unix stream socket: header, payload and
// SCM_RIGHTS fds in, replies out.
#pragma once

#include "vhost_user/message.hpp"

#include <vblk/fd.hpp>

#include <chrono>
#include <optional>

namespace vhost_user {

class Channel {
public:
	explicit Channel(vblk::UniqueFd sock,
			 std::chrono::milliseconds timeout = std::chrono::seconds(5))
		: sock_(std::move(sock)), timeout_(timeout)
	{
	}

	int fd() const noexcept { return sock_.get(); }

	// The next message; std::nullopt when the peer closed the connection
	// between messages.  Throws ProtocolError for a truncated, oversized
	// or otherwise malformed frame (the peer stalling mid-message for
	// longer than the timeout counts as truncated), vblk::SysError for a
	// socket error.  Received fds are owned by the message; on any error
	// they are closed.
	std::optional<Message> receive();
	// The same for the frontend side: the next message must be a reply.
	std::optional<Message> receive_reply();

	// Sends m, with m.fds as SCM_RIGHTS (a frontend passing memory and
	// eventfds; a backend's replies carry none).
	void send(const Message &m);

private:
	// Reads exactly len bytes; false on EOF before the first byte.
	bool read_exact(uint8_t *buf, size_t len, std::vector<vblk::UniqueFd> *fds);
	void wait_readable();
	std::optional<Message> receive(bool reply);

	vblk::UniqueFd sock_;
	std::chrono::milliseconds timeout_;
};

} // namespace vhost_user
