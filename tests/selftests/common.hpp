// SPDX-License-Identifier: GPL-2.0
// Shared helpers of the vhost-blk selftests: backends from the VM runner's
// environment, data patterns, direct access to the backend with O_DIRECT.
#pragma once

#include "ktap.hpp"

#include <vblk/vblk.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace vbt {

using namespace std::chrono_literals;

// The block devices the VM runner provides.
inline constexpr const char *env_nullb = "VBLK_NULLB";	     // null_blk, memory backed, 512 B
inline constexpr const char *env_brd = "VBLK_BRD";	     // brd ramdisk
inline constexpr const char *env_loop = "VBLK_LOOP";	     // loop over a tmpfs file
inline constexpr const char *env_loop_big = "VBLK_LOOP_BIG"; // loop, 8 GiB sparse, 4 KiB blocks
inline constexpr const char *env_nullb_4k = "VBLK_NULLB_4K"; // null_blk, 4 KiB blocks
inline constexpr const char *env_ro = "VBLK_RO";	     // blockdev --setro
inline constexpr const char *env_fail = "VBLK_FAIL";	     // dm device whose I/O fails
// zram, 4 KiB blocks: offloads WRITE_ZEROES (and discard), stable writes
inline constexpr const char *env_zram = "VBLK_ZRAM";
inline constexpr const char *env_delay = "VBLK_DELAY";	     // dm-delay: all I/O delay_latency late
// dm-delay over null_blk with 4 KiB blocks: reads at once, writes 200 ms late
inline constexpr const char *env_delay_4k = "VBLK_DELAY_4K";
// Mounted filesystems for regular-file backends (tests/vm/init).
inline constexpr const char *env_ext4_dir = "VBLK_EXT4_DIR";  // ext4, 192 MiB, on loop over tmpfs
inline constexpr const char *env_xfs_dir = "VBLK_XFS_DIR";    // xfs, 320 MiB, on loop over tmpfs
inline constexpr const char *env_tmpfs_dir = "VBLK_TMPFS_DIR"; // tmpfs (direct I/O by copying)
// ext4, 64 MiB, on loop with 4 KiB sectors: files with 4 KiB direct-I/O alignment
inline constexpr const char *env_ext4_4k_dir = "VBLK_EXT4_4K_DIR";
// How late VBLK_DELAY completes every request (tests/vm/init).
inline constexpr auto delay_latency = std::chrono::milliseconds(300);

// /dev/vhost-blk, overridable with VBLK_DEVICE.
std::string device_path();
// SKIPs when /dev/vhost-blk is missing (module not loaded).
void require_device();

// A block device under test, opened twice: buffered for attaching, and
// O_DIRECT for checking what really reached the disk.
class Backend {
public:
	// SKIPs when the variable is unset or the device cannot be opened.
	static Backend open(const char *env, int flags = O_RDWR);
	// A regular-file backend: a new sparse file of `size` bytes in the
	// directory named by `env_dir`, opened with `flags` for attaching,
	// with O_DIRECT for direct checks and buffered for the page cache;
	// unlinked at once (the fds keep it).  logical_block_size() is its
	// direct-I/O offset alignment (statx STATX_DIOALIGN).
	static Backend file(const char *env_dir, uint64_t size, int flags = O_RDWR | O_DIRECT);

	const std::string &path() const { return path_; }
	int fd() const { return fd_.get(); }
	uint64_t size_bytes() const { return size_; }
	uint64_t sectors() const { return size_ / vblk::sector_size; }
	uint32_t logical_block_size() const { return lbs_; }
	// /sys/block/<dev>/queue/<attr>, or nullopt.
	std::optional<uint64_t> queue_attr(const std::string &attr) const;

	std::vector<uint8_t> read_direct(uint64_t offset, size_t len) const;
	void write_direct(uint64_t offset, std::span<const uint8_t> data) const;
	// Regular files: through the page cache (a buffered fd).
	std::vector<uint8_t> read_cached(uint64_t offset, size_t len) const;
	int cached_fd() const { return cached_.get(); }

private:
	std::string path_;
	vblk::UniqueFd fd_, direct_, cached_;
	uint64_t size_ = 0;
	uint32_t lbs_ = 512;
};

// Deterministic data: every 8-byte word depends on (sector, word, seed).
void fill_pattern(std::span<uint8_t> buf, uint64_t first_sector, uint64_t seed);
std::vector<uint8_t> pattern(size_t len, uint64_t first_sector, uint64_t seed);
// Index of the first differing byte, or -1.
long first_mismatch(std::span<const uint8_t> a, std::span<const uint8_t> b);

#define ASSERT_BYTES_EQ(a, b) ASSERT_EQ(vbt::first_mismatch(a, b), -1L)

vblk::BlkDriverOptions driver_options(unsigned queues = 1, uint16_t queue_size = 128);
// A driver with every ring attached to `b`.
std::unique_ptr<vblk::BlkDriver> attached_driver(const Backend &b, unsigned queues = 1,
						 uint16_t queue_size = 128);

// Waits up to `timeout` for the ring's error eventfd.
bool err_signalled(vblk::BlkDriver &d, unsigned q, std::chrono::milliseconds timeout = 2000ms);

// The documented bound on how long a guest can make a ring's worker hold
// the ring in one go (stats.max_hold_ns; Documentation/vhost-blk.rst,
// "Limits and bounds"): 1 s in the TCG test VM, 5 s on the KASAN/lockdep
// kernel (uname -r ends in -vblk-debug), which runs the same code 3-5x slower.
std::chrono::milliseconds worker_hold_bound();
// The KASAN/lockdep kernel of make debug-kernel (uname -r ends in -debug).
bool debug_kernel();
// The documented bound on how long the owner SIGKILLed with anything a
// guest can queue takes to exit: 2 s in the TCG test VM, 10 s on the
// KASAN/lockdep kernel (measured there: 1.4-5.1 s; one synchronous
// null_blk discard of the backend's limit runs under KASAN meanwhile).
std::chrono::milliseconds owner_exit_bound();

} // namespace vbt

namespace vbt {

// Runs `fn` in a child process (another mm: not the device's owner);
// returns its exit status, 0 = passed.
template <typename F> int in_child(F fn)
{
	std::fflush(nullptr);
	pid_t pid = ::fork();
	if (pid < 0)
		throw vblk::SysError(errno, "fork");
	if (pid == 0) {
		int rc = 1;
		try {
			rc = fn();
		} catch (const std::exception &e) {
			ktap::diag(std::string("child: ") + e.what());
		}
		std::fflush(nullptr);
		::_exit(rc);
	}
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Writes a pattern through ring `wq` over a range prefilled with another,
// reads it back through ring `rq` and checks both the read and the disk.
void write_read_back(vblk::BlkDriver &d, const Backend &b, unsigned wq, unsigned rq,
		     uint64_t sector, size_t len, uint64_t seed);

// Writes `value` to a sysfs or configfs attribute; throws on failure.
void write_file(const std::string &path, const std::string &value);

// Enables `controller` ("memory", "io") for the children of the cgroup2
// root, /sys/fs/cgroup: mounts cgroup2 there if nothing is, SKIPs when
// that fails or the controller is missing.  Left on afterwards.
void cgroup2_with(const std::string &controller);

// Opens a fresh device on `b` and checks a write/read round trip.
void assert_device_usable(const Backend &b, uint64_t sector = 123456);

// A guest buffer filled with a virtio-blk header (+ status byte at the end).
struct RawRequest {
	vblk::GuestBuffer buf;
	uint64_t hdr() const { return buf.gpa(); }
	uint64_t data() const { return buf.gpa() + 4096; }
	uint64_t status() const { return buf.gpa() + buf.size() - 1; }
	uint8_t status_byte() const { return buf.data()[buf.size() - 1]; }
};
RawRequest raw_request(vblk::GuestMemory &mem, uint32_t type, uint64_t sector, size_t data_len);

} // namespace vbt

// ---- Bounds: what a guest makes the host pay, measured while it runs ----
namespace vbt {

// Free memory as MemAvailable of /proc/meminfo counts it, plus the pages
// waiting in the per-CPU free lists (/proc/zoneinfo "count"), which
// MemAvailable counts as used: since Linux 6.7 those lists grow to 1/8 of
// a zone, so pages a driver just freed can hide there by the tens of MiB.
int64_t mem_available();

// Samples mem_available(), and a cgroup's memory.current when given one,
// every other millisecond from a thread, from construction until stop().
class MemWatch {
public:
	explicit MemWatch(std::string memory_current = {});
	~MemWatch() { stop(); }
	MemWatch(const MemWatch &) = delete;
	MemWatch &operator=(const MemWatch &) = delete;

	void stop();
	// How far mem_available() fell below its value at construction.
	int64_t drop() const { return base_avail_ - low_avail_; }
	// How far memory.current rose above its value at construction.
	int64_t rise() const { return peak_current_ - base_current_; }

private:
	void sample();

	std::string current_file_;
	int64_t base_avail_, low_avail_;
	int64_t base_current_ = 0, peak_current_ = 0;
	std::jthread thread_;
};

// queue/discard_max_bytes of a backend lowered for one test (SKIPs when it
// cannot be set).  Restored afterwards to the largest value sysfs takes (a
// multiple of the discard granularity), which gives the device's own limit
// back.
class DiscardLimit {
public:
	DiscardLimit(const Backend &b, uint64_t bytes);
	~DiscardLimit();
	DiscardLimit(const DiscardLimit &) = delete;
	DiscardLimit &operator=(const DiscardLimit &) = delete;

private:
	std::string path_;
	uint64_t granularity_;
};

// A forked process that owns a device: `body` runs in the child (sets up a
// device, queues requests) and sends numbers to the parent with `report`;
// it never returns (the child waits to be killed when it is done).  The
// destructor SIGKILLs the child and reaps it, waiting at most 5 s.
class OwnerProcess {
public:
	using Report = std::function<void(uint32_t)>;
	explicit OwnerProcess(const std::function<void(const Report &)> &body);
	~OwnerProcess();
	OwnerProcess(const OwnerProcess &) = delete;
	OwnerProcess &operator=(const OwnerProcess &) = delete;

	// The next number the child reported, or nullopt when none came within
	// `timeout` or the child ended.
	std::optional<uint32_t> next(std::chrono::milliseconds timeout);
	// SIGKILLs the child; how long until it could be reaped, or nullopt
	// when that did not happen within `give_up`.
	std::optional<std::chrono::milliseconds> kill(std::chrono::milliseconds give_up);
	// A copy of the child's descriptor `fd` (pidfd_getfd), while it lives.
	vblk::UniqueFd take_fd(int fd);

private:
	pid_t pid_ = -1;
	vblk::UniqueFd reports_, pidfd_;
	bool reaped_ = false;
};

// The owner SIGKILLed `settle` after `owner` (run in an OwnerProcess) calls
// `ready`, which does not return: how long until it was reaped, nullopt if
// not within 30 s.  Throws when the child failed before it was ready.
std::optional<std::chrono::milliseconds>
time_to_reap_killed_owner(const std::function<void(const std::function<void()> &ready)> &owner,
			  std::chrono::milliseconds settle);

} // namespace vbt
