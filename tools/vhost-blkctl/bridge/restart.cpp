// SPDX-License-Identifier: GPL-2.0
#include "bridge/restart.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <thread>

namespace bridge {

vblk::UniqueFd claim_exclusive(int fd, std::chrono::milliseconds wait, const Logger &log)
{
	using clock = std::chrono::steady_clock;
	int flags = ::fcntl(fd, F_GETFL);
	vblk::check(flags, "F_GETFL");
	std::string path = "/proc/self/fd/" + std::to_string(fd);
	auto deadline = clock::now() + wait;
	bool waited = false;
	for (;;) {
		int nfd = ::open(path.c_str(), (flags & O_ACCMODE) | O_EXCL | O_CLOEXEC);
		if (nfd >= 0) {
			if (waited && log)
				log("block device free again: claimed");
			return vblk::UniqueFd(nfd);
		}
		if (errno != EBUSY)
			throw vblk::SysError(errno, "exclusive open of the block device");
		if (clock::now() >= deadline)
			throw Rejected("the block device is still claimed exclusively after " +
				       std::to_string(wait.count() / 1000) +
				       " s (a previous serve's device still completing, or another "
				       "user of the disk): ring not started");
		if (!waited && log)
			log("block device busy (a previous owner still completing?): waiting up to " +
			    std::to_string(wait.count() / 1000) + " s");
		waited = true;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

std::optional<uint16_t> stale_base(uint16_t base, uint16_t used_idx, unsigned num)
{
	uint16_t ahead = static_cast<uint16_t>(used_idx - base);
	if (ahead == 0 || ahead > num)
		return std::nullopt;
	return used_idx;
}

} // namespace bridge
