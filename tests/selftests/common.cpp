// SPDX-License-Identifier: GPL-2.0
#include "common.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace vbt {

std::string device_path()
{
	const char *p = std::getenv("VBLK_DEVICE");
	return p && *p ? p : vblk::VhostBlkDevice::default_path;
}

void require_device()
{
	if (::access(device_path().c_str(), R_OK | W_OK) != 0)
		SKIP(device_path() + " not available (vhost_blk not loaded?)");
}

namespace {

struct AlignedFree {
	void operator()(uint8_t *p) const { std::free(p); }
};

std::unique_ptr<uint8_t, AlignedFree> aligned_buffer(size_t len)
{
	void *p = nullptr;
	if (::posix_memalign(&p, 4096, len ? len : 4096))
		throw std::bad_alloc();
	return std::unique_ptr<uint8_t, AlignedFree>(static_cast<uint8_t *>(p));
}

} // namespace

Backend Backend::open(const char *env, int flags)
{
	require_device();
	const char *p = std::getenv(env);
	if (!p || !*p)
		SKIP(std::string(env) + " not set (backend not provided)");
	Backend b;
	b.path_ = p;
	try {
		b.fd_ = vblk::UniqueFd::open(b.path_, flags);
		try {
			b.direct_ = vblk::UniqueFd::open(b.path_, O_RDWR | O_DIRECT);
		} catch (const vblk::SysError &e) {
			if (e.code() != EROFS && e.code() != EACCES)
				throw;
			b.direct_ = vblk::UniqueFd::open(b.path_, O_RDONLY | O_DIRECT);
		}
	} catch (const vblk::SysError &e) {
		SKIP(std::string(env) + ": " + e.what());
	}
	vblk::check(::ioctl(b.fd_.get(), BLKGETSIZE64, &b.size_), "BLKGETSIZE64");
	int lbs = 512;
	vblk::check(::ioctl(b.fd_.get(), BLKSSZGET, &lbs), "BLKSSZGET");
	b.lbs_ = static_cast<uint32_t>(lbs);
	return b;
}

std::optional<uint64_t> Backend::queue_attr(const std::string &attr) const
{
	struct stat st;
	if (::fstat(fd_.get(), &st) < 0)
		return std::nullopt;
	// Partitions and dm devices: /sys/dev/block/M:m/queue may not exist
	// for partitions; try the parent too.
	std::string base = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" +
			   std::to_string(minor(st.st_rdev));
	for (const std::string &dir : { base + "/queue/", base + "/../queue/" }) {
		std::ifstream f(dir + attr);
		uint64_t v;
		if (f >> v)
			return v;
	}
	return std::nullopt;
}

std::vector<uint8_t> Backend::read_direct(uint64_t offset, size_t len) const
{
	auto buf = aligned_buffer(len);
	size_t done = 0;
	while (done < len) {
		ssize_t n = ::pread(direct_.get(), buf.get() + done, len - done,
				    static_cast<off_t>(offset + done));
		if (n < 0)
			throw vblk::SysError(errno, "pread O_DIRECT " + path_);
		if (n == 0)
			throw vblk::SysError(EIO, "pread O_DIRECT short read " + path_);
		done += static_cast<size_t>(n);
	}
	return std::vector<uint8_t>(buf.get(), buf.get() + len);
}

void Backend::write_direct(uint64_t offset, std::span<const uint8_t> data) const
{
	auto buf = aligned_buffer(data.size());
	std::memcpy(buf.get(), data.data(), data.size());
	size_t done = 0;
	while (done < data.size()) {
		ssize_t n = ::pwrite(direct_.get(), buf.get() + done, data.size() - done,
				     static_cast<off_t>(offset + done));
		if (n <= 0)
			throw vblk::SysError(n < 0 ? errno : EIO, "pwrite O_DIRECT " + path_);
		done += static_cast<size_t>(n);
	}
}

void fill_pattern(std::span<uint8_t> buf, uint64_t first_sector, uint64_t seed)
{
	for (size_t off = 0; off < buf.size(); off += 8) {
		uint64_t sector = first_sector + off / vblk::sector_size;
		uint64_t x = (sector * 0x9e3779b97f4a7c15ULL) ^ (seed + 0x632be59bd9b4e019ULL) ^
			     ((off % vblk::sector_size) * 0xbf58476d1ce4e5b9ULL);
		x ^= x >> 31;
		x *= 0x94d049bb133111ebULL;
		x ^= x >> 29;
		std::memcpy(&buf[off], &x, std::min<size_t>(8, buf.size() - off));
	}
}

std::vector<uint8_t> pattern(size_t len, uint64_t first_sector, uint64_t seed)
{
	std::vector<uint8_t> v(len);
	fill_pattern(v, first_sector, seed);
	return v;
}

long first_mismatch(std::span<const uint8_t> a, std::span<const uint8_t> b)
{
	if (a.size() != b.size())
		return static_cast<long>(std::min(a.size(), b.size()));
	for (size_t i = 0; i < a.size(); i++)
		if (a[i] != b[i])
			return static_cast<long>(i);
	return -1;
}

vblk::BlkDriverOptions driver_options(unsigned queues, uint16_t queue_size)
{
	vblk::BlkDriverOptions o;
	o.device_path = device_path();
	o.num_queues = queues;
	o.queue_size = queue_size;
	o.timeout = 10000ms;
	return o;
}

std::unique_ptr<vblk::BlkDriver> attached_driver(const Backend &b, unsigned queues,
						 uint16_t queue_size)
{
	auto d = std::make_unique<vblk::BlkDriver>(driver_options(queues, queue_size));
	d->attach(b.fd());
	return d;
}

bool err_signalled(vblk::BlkDriver &d, unsigned q, std::chrono::milliseconds timeout)
{
	return d.queue(q).err_fd().wait(timeout) != 0;
}

} // namespace vbt

namespace vbt {

void assert_device_usable(const Backend &b, uint64_t sector)
{
	auto d = attached_driver(b);
	auto data = pattern(8192, sector, ktap::seed() + sector);
	ASSERT_EQ(d->write(0, sector, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, sector, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

RawRequest raw_request(vblk::GuestMemory &mem, uint32_t type, uint64_t sector, size_t data_len)
{
	RawRequest r{ mem.allocate(4096 + data_len + 1, 4096) };
	auto h = vblk::encode_header(type, 0, sector);
	std::memcpy(r.buf.data(), h.data(), h.size());
	r.buf.data()[r.buf.size() - 1] = vblk::status_unwritten;
	return r;
}

} // namespace vbt
