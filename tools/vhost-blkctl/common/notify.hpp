// SPDX-License-Identifier: GPL-2.0
// The service manager's notification protocol (sd_notify(3)) without
// libsystemd: one datagram of newline-separated KEY=VALUE assignments to
// the AF_UNIX socket $NOTIFY_SOCKET names.
#pragma once

#include <string>

namespace common {

inline constexpr const char *notify_socket_env = "NOTIFY_SOCKET";

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET: a
// path, or "@name" for the abstract namespace.  Returns false, sending
// nothing, when the variable is unset or empty (not started by a service
// manager).  Throws vblk::SysError when the message cannot be delivered.
bool notify(const std::string &state);

} // namespace common
