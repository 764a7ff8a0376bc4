// SPDX-License-Identifier: GPL-2.0
#include "device/backend.hpp"

#include <vblk/error.hpp>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace device {

namespace {

// /sys/dev/block/M:m/queue/<attr>; partitions keep it in their parent.
bool read_queue_attr(dev_t rdev, const std::string &attr, std::string &out)
{
	std::string base = "/sys/dev/block/" + std::to_string(major(rdev)) + ":" +
			   std::to_string(minor(rdev));
	for (const char *dir : { "/queue/", "/../queue/" }) {
		std::ifstream f(base + dir + attr);
		if (f && std::getline(f, out))
			return true;
	}
	return false;
}

uint64_t queue_u64(dev_t rdev, const std::string &attr, uint64_t dflt)
{
	std::string s;
	if (!read_queue_attr(rdev, attr, s))
		return dflt;
	try {
		return std::stoull(s);
	} catch (const std::exception &) {
		return dflt;
	}
}

} // namespace

namespace {

// BLKROGET on a scratch read-only open: a read-only device is opened
// read-only, never with O_RDWR (which the block layer may refuse).
bool device_read_only(const std::string &path)
{
	vblk::UniqueFd fd = vblk::UniqueFd::open(path, O_RDONLY | O_NONBLOCK);
	struct stat st;
	vblk::check(::fstat(fd.get(), &st), "stat " + path);
	if (!S_ISBLK(st.st_mode))
		throw vblk::SysError(ENOTBLK, path);
	int ro = 0;
	vblk::check(::ioctl(fd.get(), BLKROGET, &ro), "BLKROGET " + path);
	return ro != 0;
}

} // namespace

Backend Backend::open(const std::string &path, bool read_only, bool exclusive)
{
	read_only = read_only || device_read_only(path);
	vblk::UniqueFd fd = vblk::UniqueFd::open(path, (read_only ? O_RDONLY : O_RDWR) |
							       (exclusive ? O_EXCL : 0));
	struct stat st;
	vblk::check(::fstat(fd.get(), &st), "stat " + path);
	if (!S_ISBLK(st.st_mode))
		throw vblk::SysError(ENOTBLK, path);

	BackendInfo info;
	int ro = 0;
	vblk::check(::ioctl(fd.get(), BLKGETSIZE64, &info.size_bytes), "BLKGETSIZE64 " + path);
	int lbs = 512;
	unsigned pbs = 512, iomin = 512, ioopt = 0;
	int alignoff = 0;
	vblk::check(::ioctl(fd.get(), BLKSSZGET, &lbs), "BLKSSZGET " + path);
	vblk::check(::ioctl(fd.get(), BLKPBSZGET, &pbs), "BLKPBSZGET " + path);
	vblk::check(::ioctl(fd.get(), BLKIOMIN, &iomin), "BLKIOMIN " + path);
	vblk::check(::ioctl(fd.get(), BLKIOOPT, &ioopt), "BLKIOOPT " + path);
	vblk::check(::ioctl(fd.get(), BLKALIGNOFF, &alignoff), "BLKALIGNOFF " + path);
	vblk::check(::ioctl(fd.get(), BLKROGET, &ro), "BLKROGET " + path);
	info.logical_block_size = static_cast<uint32_t>(lbs);
	info.physical_block_size = pbs;
	info.min_io_size = iomin;
	info.opt_io_size = ioopt;
	info.alignment_offset = alignoff > 0 ? static_cast<uint32_t>(alignoff) : 0;
	info.read_only = read_only || ro != 0;
	info.discard_max_bytes = queue_u64(st.st_rdev, "discard_max_bytes", 0);
	info.discard_granularity =
		static_cast<uint32_t>(queue_u64(st.st_rdev, "discard_granularity", 0));
	info.write_zeroes_max_bytes = queue_u64(st.st_rdev, "write_zeroes_max_bytes", 0);
	std::string wc;
	if (read_queue_attr(st.st_rdev, "write_cache", wc))
		info.write_cache = wc.rfind("write back", 0) == 0;
	return Backend(path, std::move(fd), info);
}

} // namespace device
