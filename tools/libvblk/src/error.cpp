// SPDX-License-Identifier: GPL-2.0
#include "vblk/error.hpp"

#include <cerrno>
#include <cstring>

namespace vblk {

SysError::SysError(int err, const std::string &context)
	: std::runtime_error(context + ": " + std::strerror(err)), err_(err),
	  context_(context)
{
}

long check(long rc, const std::string &context)
{
	if (rc < 0)
		throw SysError(errno, context);
	return rc;
}

} // namespace vblk
