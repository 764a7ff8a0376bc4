// SPDX-License-Identifier: GPL-2.0
// Errors thrown by libvblk.
#pragma once

#include <stdexcept>
#include <string>

namespace vblk {

// A failed system call: errno plus what was being done, e.g.
// "VHOST_SET_MEM_TABLE: Invalid argument".
class SysError : public std::runtime_error {
public:
	SysError(int err, const std::string &context);

	int code() const noexcept { return err_; }
	const std::string &context() const noexcept { return context_; }

private:
	int err_;
	std::string context_;
};

// The device broke the virtio protocol as seen from the driver: a used id
// that was never made available, returned twice, a used index that ran
// ahead of what was submitted.
class ProtocolError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// Throws SysError(errno, context) when rc < 0; returns rc otherwise.
long check(long rc, const std::string &context);

} // namespace vblk
