// SPDX-License-Identifier: GPL-2.0
// The CLI's side of the control socket.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace control {

// The daemon could not be reached or did not answer.
class ClientError : public std::runtime_error {
public:
	// not_running: no socket, or nobody listens; permission_denied:
	// EACCES/EPERM on connect (the daemon may well be running).
	enum class Kind { not_running, permission_denied, no_answer };
	ClientError(Kind k, const std::string &msg) : std::runtime_error(msg), kind_(k) {}
	Kind kind() const noexcept { return kind_; }

private:
	Kind kind_;
};

// Sends one request to the socket at `path`, returns the reply object.
// Throws ClientError.
nlohmann::json request(const std::string &path, const nlohmann::json &req,
		       std::chrono::milliseconds timeout = std::chrono::seconds(10));

} // namespace control
