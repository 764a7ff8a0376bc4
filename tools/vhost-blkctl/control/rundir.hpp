// SPDX-License-Identifier: GPL-2.0
// Where running disks publish their control sockets: <run-dir>/<name>.sock.
#pragma once

#include <string>
#include <vector>

namespace control {

inline constexpr const char *default_run_dir = "/run/vhost-blk";
inline constexpr const char *run_dir_env = "VHOST_BLKCTL_RUN_DIR";

// `option` if set, else $VHOST_BLKCTL_RUN_DIR, else /run/vhost-blk.
std::string resolve_run_dir(const std::string &option);
std::string socket_path(const std::string &run_dir, const std::string &name);
// A name is [A-Za-z0-9._-]{1,64}, not starting with '.'.
bool valid_name(const std::string &name);
// Names with a socket file in run_dir, sorted; empty if the dir is missing.
std::vector<std::string> list_names(const std::string &run_dir);
// mkdir -p; a directory it creates gets mode 0755.  An existing one is
// used as it is (its mode is never changed) if it belongs to root or to us
// and is not world-writable without the sticky bit; otherwise, or if it
// is not a directory, throws vblk::SysError.
void make_run_dir(const std::string &run_dir);

} // namespace control
