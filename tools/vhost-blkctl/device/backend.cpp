// SPDX-License-Identifier: GPL-2.0
#include "device/backend.hpp"

#include <vblk/error.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/vhost_blk.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

namespace {

// Does the file's filesystem do fallocate `mode` (what the module turns
// DISCARD and WRITE_ZEROES into)?  Asked of an unnamed O_TMPFILE beside it,
// so the image is never touched; false when none can be made there.
bool fallocate_works(const std::string &path, int mode)
{
	auto slash = path.rfind('/');
	std::string dir = slash == std::string::npos ? "." : slash ? path.substr(0, slash) : "/";
	int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	vblk::UniqueFd tmp(fd);
	return ::ftruncate(fd, 65536) == 0 &&
	       ::fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, 0, 65536) == 0;
}

// A raw image file: opened with O_DIRECT, as VHOST_BLK_SET_BACKEND requires.
// Its logical block size is its direct-I/O offset alignment, as the module
// reads it (statx STATX_DIOALIGN; 512 where the filesystem does not say).
Backend open_file(const std::string &path, bool read_only)
{
	if (!read_only && ::access(path.c_str(), W_OK) != 0 && (errno == EROFS || errno == EACCES))
		read_only = true;
	vblk::UniqueFd fd =
		vblk::UniqueFd::open(path, (read_only ? O_RDONLY : O_RDWR) | O_DIRECT);
	struct statx stx {};
	vblk::check(::statx(fd.get(), "", AT_EMPTY_PATH, STATX_SIZE | STATX_DIOALIGN, &stx),
		    "statx " + path);
	BackendInfo info;
	if (stx.stx_mask & STATX_DIOALIGN) {
		if (!stx.stx_dio_offset_align)
			throw vblk::SysError(EOPNOTSUPP, path + ": no direct I/O on this file");
		info.logical_block_size = std::max<uint32_t>(stx.stx_dio_offset_align, 512);
	}
	uint32_t lbs = info.logical_block_size;
	info.size_bytes = stx.stx_size / lbs * lbs;
	info.physical_block_size = std::max<uint32_t>(stx.stx_blksize, lbs);
	info.min_io_size = info.physical_block_size;
	info.read_only = read_only;
	// The module's limit for one range request, in whole blocks.
	uint64_t range_max = uint64_t{ VHOST_BLK_MAX_RANGE_SECTORS } * 512 / lbs * lbs;
	if (fallocate_works(path, FALLOC_FL_PUNCH_HOLE)) {
		info.discard_max_bytes = range_max;
		info.discard_granularity = info.physical_block_size;
	}
	if (fallocate_works(path, FALLOC_FL_ZERO_RANGE))
		info.write_zeroes_max_bytes = range_max;
	return Backend(path, std::move(fd), info);
}

} // namespace

Backend Backend::open(const std::string &path, bool read_only)
{
	struct stat pst;
	vblk::check(::stat(path.c_str(), &pst), "stat " + path);
	if (S_ISREG(pst.st_mode))
		return open_file(path, read_only);
	read_only = read_only || device_read_only(path);
	// Shared, not O_EXCL: the exclusive claim is a running ring's, made
	// for each start (bridge/restart.hpp), so that two serves of one disk
	// can coexist while only one runs rings (local migration) and a new
	// serve can start while the old one's device still completes.
	vblk::UniqueFd fd = vblk::UniqueFd::open(path, read_only ? O_RDONLY : O_RDWR);
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
