// SPDX-License-Identifier: GPL-2.0
#include "common.hpp"

#include <string_view>
#include <sys/utsname.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <linux/fs.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
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

Backend Backend::file(const char *env_dir, uint64_t size, int flags)
{
	require_device();
	const char *dir = std::getenv(env_dir);
	if (!dir || !*dir)
		SKIP(std::string(env_dir) + " not set (filesystem not provided)");
	Backend b;
	b.path_ = std::string(dir) + "/vblk-file-XXXXXX";
	int fd = ::mkstemp(b.path_.data());
	if (fd < 0)
		SKIP(std::string(env_dir) + ": " + b.path_ + ": " + std::strerror(errno));
	vblk::UniqueFd tmp(fd);
	struct Unlink {
		const std::string &p;
		~Unlink() { ::unlink(p.c_str()); }
	} unlink_at_end{ b.path_ };
	vblk::check(::ftruncate(fd, static_cast<off_t>(size)), "ftruncate");
	b.fd_ = vblk::UniqueFd::open(b.path_, flags);
	b.direct_ = vblk::UniqueFd::open(b.path_, O_RDWR | O_DIRECT);
	b.cached_ = vblk::UniqueFd::open(b.path_, O_RDWR);
	b.size_ = size;
	struct statx stx {};
	vblk::check(::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx), "statx");
	if ((stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align)
		b.lbs_ = std::max<uint32_t>(stx.stx_dio_offset_align, 512);
	return b;
}

std::vector<uint8_t> Backend::read_cached(uint64_t offset, size_t len) const
{
	std::vector<uint8_t> out(len);
	ssize_t n = ::pread(cached_.get(), out.data(), len, static_cast<off_t>(offset));
	vblk::check(n, "pread " + path_);
	if (static_cast<size_t>(n) != len)
		throw std::runtime_error("short read from " + path_);
	return out;
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

bool debug_kernel()
{
	struct utsname u {};
	::uname(&u);
	return std::string_view(u.release).ends_with("-debug");
}

std::chrono::milliseconds worker_hold_bound()
{
	return debug_kernel() ? 5000ms : 1000ms;
}

std::chrono::milliseconds owner_exit_bound()
{
	return debug_kernel() ? 10000ms : 2000ms;
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

namespace vbt {

namespace {

// Bytes in the per-CPU free page lists of every zone.
int64_t pcp_free_bytes()
{
	std::ifstream f("/proc/zoneinfo");
	std::string word;
	int64_t pages = 0, n;
	while (f >> word)
		if (word == "count:" && f >> n)
			pages += n;
	return pages * 4096;
}

int64_t read_i64(const std::string &path)
{
	std::ifstream f(path);
	int64_t v;
	if (!(f >> v))
		throw std::runtime_error("cannot read " + path);
	return v;
}

} // namespace

int64_t mem_available()
{
	std::ifstream f("/proc/meminfo");
	std::string key, unit;
	int64_t kb;
	while (f >> key >> kb) {
		std::getline(f, unit);
		if (key == "MemAvailable:")
			return kb * 1024 + pcp_free_bytes();
	}
	throw std::runtime_error("/proc/meminfo: no MemAvailable");
}

MemWatch::MemWatch(std::string memory_current)
	: current_file_(std::move(memory_current)), base_avail_(mem_available()),
	  low_avail_(base_avail_)
{
	if (!current_file_.empty())
		base_current_ = peak_current_ = read_i64(current_file_);
	thread_ = std::jthread([this](std::stop_token stop) {
		while (!stop.stop_requested()) {
			sample();
			std::this_thread::sleep_for(2ms);
		}
		sample();
	});
}

void MemWatch::stop()
{
	if (!thread_.joinable())
		return;
	thread_.request_stop();
	thread_.join();
}

void MemWatch::sample()
{
	low_avail_ = std::min(low_avail_, mem_available());
	if (!current_file_.empty())
		peak_current_ = std::max(peak_current_, read_i64(current_file_));
}

namespace {

bool write_sysfs(const std::string &path, uint64_t v)
{
	std::ofstream f(path);
	f << v;
	f.flush();
	return static_cast<bool>(f);
}

} // namespace

DiscardLimit::DiscardLimit(const Backend &b, uint64_t bytes)
	: granularity_(std::max<uint64_t>(b.queue_attr("discard_granularity").value_or(512), 512))
{
	struct stat st;
	vblk::check(::stat(b.path().c_str(), &st), "stat " + b.path());
	path_ = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" +
		std::to_string(minor(st.st_rdev)) + "/queue/discard_max_bytes";
	if (!write_sysfs(path_, bytes) || b.queue_attr("discard_max_bytes") != bytes)
		SKIP(path_ + " cannot be set to " + std::to_string(bytes));
}

DiscardLimit::~DiscardLimit()
{
	write_sysfs(path_, uint64_t{ UINT32_MAX } * 512 / granularity_ * granularity_);
}

OwnerProcess::OwnerProcess(const std::function<void(const Report &)> &body)
{
	int p[2];
	vblk::check(::pipe2(p, O_CLOEXEC), "pipe2");
	vblk::UniqueFd rd(p[0]), wr(p[1]);
	std::fflush(nullptr);
	pid_ = ::fork();
	if (pid_ < 0)
		throw vblk::SysError(errno, "fork");
	if (pid_ == 0) {
		rd.reset();
		try {
			body([&](uint32_t v) {
				if (::write(wr.get(), &v, sizeof(v)) != sizeof(v))
					::_exit(1);
			});
			for (;;)
				::pause();
		} catch (...) {
		}
		::_exit(1);
	}
	reports_ = std::move(rd);
	pidfd_ = vblk::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
	if (!pidfd_) {
		int e = errno;
		kill(0ms);
		throw vblk::SysError(e, "pidfd_open");
	}
}

OwnerProcess::~OwnerProcess()
{
	kill(5000ms);
}

std::optional<uint32_t> OwnerProcess::next(std::chrono::milliseconds timeout)
{
	struct pollfd p = { .fd = reports_.get(), .events = POLLIN, .revents = 0 };
	int rc;
	do {
		rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
	} while (rc < 0 && errno == EINTR);
	uint32_t v;
	if (rc != 1 || ::read(reports_.get(), &v, sizeof(v)) != sizeof(v))
		return std::nullopt;
	return v;
}

std::optional<std::chrono::milliseconds> OwnerProcess::kill(std::chrono::milliseconds give_up)
{
	using clock = std::chrono::steady_clock;
	if (reaped_ || pid_ <= 0)
		return 0ms;
	auto t0 = clock::now();
	::kill(pid_, SIGKILL);
	if (pidfd_) {
		struct pollfd p = { .fd = pidfd_.get(), .events = POLLIN, .revents = 0 };
		int rc;
		do {
			rc = ::poll(&p, 1, static_cast<int>(give_up.count()));
		} while (rc < 0 && errno == EINTR);
		if (rc != 1)
			return std::nullopt;
	}
	::waitpid(pid_, nullptr, 0);
	reaped_ = true;
	return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
}

vblk::UniqueFd OwnerProcess::take_fd(int fd)
{
	vblk::UniqueFd copy(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd_.get(), fd, 0)));
	if (!copy)
		throw vblk::SysError(errno, "pidfd_getfd " + std::to_string(fd));
	return copy;
}

std::optional<std::chrono::milliseconds>
time_to_reap_killed_owner(const std::function<void(const std::function<void()> &ready)> &owner,
			  std::chrono::milliseconds settle)
{
	OwnerProcess p([&](const OwnerProcess::Report &report) {
		owner([&] {
			report(0);
			for (;;)
				::pause();
		});
	});
	if (!p.next(30000ms))
		throw std::runtime_error("owner child failed before it was ready");
	std::this_thread::sleep_for(settle);
	return p.kill(30000ms);
}

} // namespace vbt

void vbt::write_read_back(vblk::BlkDriver &d, const Backend &b, unsigned wq, unsigned rq,
			  uint64_t sector, size_t len, uint64_t seed)
{
	b.write_direct(sector * vblk::sector_size, pattern(len, sector, seed ^ 0x5a5a));
	auto data = pattern(len, sector, seed);
	ASSERT_EQ(d.write(wq, sector, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(len);
	ASSERT_EQ(d.read(rq, sector, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_BYTES_EQ(b.read_direct(sector * vblk::sector_size, len), data);
}

void vbt::write_file(const std::string &path, const std::string &value)
{
	std::ofstream f(path);
	f << value << std::flush;
	if (!f)
		throw vblk::SysError(errno, "write " + path);
}

void vbt::cgroup2_with(const std::string &controller)
{
	const std::string root = "/sys/fs/cgroup";
	struct statfs fs;
	if (::statfs(root.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC) {
		if (::mount("none", root.c_str(), "cgroup2", 0, nullptr) != 0)
			SKIP("cannot mount cgroup2 on " + root + ": " + std::strerror(errno));
	}
	std::string ctrl;
	std::getline(std::ifstream(root + "/cgroup.controllers"), ctrl);
	std::istringstream names(ctrl);
	std::string name;
	while (names >> name && name != controller)
		;
	if (name != controller)
		SKIP("cgroup2 without the " + controller + " controller");
	try {
		write_file(root + "/cgroup.subtree_control", "+" + controller);
	} catch (const std::exception &e) {
		SKIP("cannot enable the " + controller + " controller: " + e.what());
	}
}
