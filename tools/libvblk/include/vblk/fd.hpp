// SPDX-License-Identifier: GPL-2.0
// RAII owners of kernel resources: file descriptors, eventfds, mappings.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace vblk {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
public:
	UniqueFd() noexcept = default;
	explicit UniqueFd(int fd) noexcept : fd_(fd) {}
	UniqueFd(UniqueFd &&o) noexcept : fd_(o.release()) {}
	UniqueFd &operator=(UniqueFd &&o) noexcept
	{
		if (this != &o)
			reset(o.release());
		return *this;
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	~UniqueFd() { reset(); }

	int get() const noexcept { return fd_; }
	explicit operator bool() const noexcept { return fd_ >= 0; }
	int release() noexcept { return std::exchange(fd_, -1); }
	void reset(int fd = -1) noexcept;

	// open(2) that throws SysError("open <path>") on failure.
	static UniqueFd open(const std::string &path, int flags, unsigned mode = 0);

private:
	int fd_ = -1;
};

// A non-blocking eventfd used as a kick, call or error notifier.
class EventFd {
public:
	EventFd();

	int fd() const noexcept { return fd_.get(); }
	void signal(uint64_t n = 1);
	// Reads and clears the counter; 0 if it was not signalled.
	uint64_t consume();
	// Waits until signalled or the timeout passes; consumes the counter.
	// Returns the counter value, 0 on timeout.
	uint64_t wait(std::chrono::milliseconds timeout);

private:
	UniqueFd fd_;
};

// Owns an mmap()ed area; munmaps it on destruction.
class Mmap {
public:
	Mmap() noexcept = default;
	Mmap(void *addr, size_t len) noexcept : addr_(addr), len_(len) {}
	Mmap(Mmap &&o) noexcept
		: addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0))
	{
	}
	Mmap &operator=(Mmap &&o) noexcept;
	Mmap(const Mmap &) = delete;
	Mmap &operator=(const Mmap &) = delete;
	~Mmap() { reset(); }

	// mmap(2) that throws SysError on failure.
	static Mmap map(size_t len, int prot, int flags, int fd, off_t off = 0);

	void *data() const noexcept { return addr_; }
	uint8_t *bytes() const noexcept { return static_cast<uint8_t *>(addr_); }
	size_t size() const noexcept { return len_; }
	void reset() noexcept;

private:
	void *addr_ = nullptr;
	size_t len_ = 0;
};

} // namespace vblk
