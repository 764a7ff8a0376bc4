// SPDX-License-Identifier: GPL-2.0
// The vhost-user protocol state of one frontend connection, mapped onto a
// kernel device.  One Session per connection; destroying it stops every
// ring (draining in-flight requests) and closes the device, so the next
// connection starts from a clean device.
#pragma once

#include "bridge/config.hpp"
#include "bridge/memory.hpp"
#include "bridge/workers.hpp"
#include "device/backend.hpp"
#include "device/device.hpp"
#include "vhost_user/message.hpp"

#include <vblk/fd.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bridge {

// A request that is out of order or names something invalid (a ring index
// out of range, an address outside the memory table): the connection ends.
class SessionError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// A request refused without ending the connection (NACKed when the
// frontend asked for a reply).
class Rejected : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

using Logger = std::function<void(const std::string &)>;

// What a session needs from its disk; owned by the disk, outlives sessions.
struct DiskContext {
	int backend_fd = -1;
	device::BackendInfo info;
	DiskParams params;
	std::string serial;
	uint64_t offered_features = 0;	// without VHOST_USER_F_PROTOCOL_FEATURES
	const WorkerPlan *plan = nullptr;
	Logger log;
	// Restart without loss (bridge/restart.hpp): a fresh O_EXCL open of
	// the backend for a session's first running ring.  Unset: backend_fd
	// is attached as it is.
	std::function<vblk::UniqueFd()> claim;
};

class Session {
public:
	static constexpr uint64_t base_protocol_features =
		(1ull << vhost_user::pf_mq) | (1ull << vhost_user::pf_reply_ack) |
		(1ull << vhost_user::pf_config);
	// Largest dirty log accepted: one bit per 4 KiB page, so 1 GiB of
	// log covers 32 TiB of guest-physical addresses.
	static constexpr uint64_t max_log_bytes = 1ull << 30;

	// The base ones, plus LOG_SHMFD when the kernel offers LOG_ALL.
	uint64_t offered_protocol_features() const noexcept;

	// Opens the session's device with `factory` (again on reset).
	Session(const DiskContext &ctx, device::DeviceFactory factory);
	~Session();
	Session(const Session &) = delete;
	Session &operator=(const Session &) = delete;

	// Handles one request; returns the reply to send, if any.  Throws
	// vhost_user::ProtocolError / SessionError / TranslationError (end
	// the connection), Rejected (refused, connection continues) and
	// vblk::SysError (the kernel refused).
	std::optional<vhost_user::Message> handle(vhost_user::Message &m);

	// Whether a failed `m` can be reported with a REPLY_ACK NACK.
	bool can_nack(const vhost_user::Message &m) const noexcept;

	// Detaches every started ring (each returns after draining).  Never
	// throws; failures are logged.
	void stop() noexcept;

	bool owned() const noexcept { return owned_; }
	uint64_t acked_features() const noexcept { return features_; }
	bool ring_started(unsigned i) const noexcept { return i < rings_.size() && rings_[i].started; }
	// The dirty log the kernel has (0: none), in our address space.
	uint64_t log_addr() const noexcept { return log_.addr; }
	device::Device &dev() noexcept { return *dev_; }
	const WorkerSet &workers() const noexcept { return workers_; }
	// Applies a worker plan now (when owned; otherwise at SET_OWNER).
	void apply_workers(const WorkerPlan &plan);
	// Sets the busy-polling ceiling of every ring now (when owned; rings
	// started later take the disk's poll_us).
	void apply_poll(unsigned us);

private:
	struct Ring {
		unsigned num = 0;
		bool addr_set = false;
		vhost_user::VringAddr addr{};	// frontend addresses
		bool kick_set = false;
		bool enabled = true;
		bool started = false;
		// Restart: the frontend's SET_VRING_BASE, checked at the next start.
		std::optional<uint16_t> base;
		bool signal_pending = false;	// rebased, call eventfd not signalled yet
	};

	std::optional<vhost_user::Message> dispatch(vhost_user::Message &m);
	void require_owner(const vhost_user::Message &m) const;
	Ring &ring(const vhost_user::Message &m, uint32_t index);
	unsigned index_of(const Ring &r) const;
	void set_kernel_addr(unsigned index, const Ring &r);
	void maybe_start(unsigned index);
	void stop_ring(unsigned index);
	void reset(bool keep_owner);
	void take_ownership();
	// Restart: claims the disk and rebases a ring whose base is stale.
	bool attach_first(unsigned index);
	bool rebase(unsigned index);
	void signal_after_rebase(unsigned index);

	// Live migration: the frontend's dirty log, mapped, handed to the
	// kernel.  A log too small for what the kernel would mark (guest
	// memory under LOG_ALL, used rings with VHOST_VRING_F_LOG) would let
	// it set bits in whatever else we have mapped there: rings wait for
	// one that is big enough, a change that shrinks it under running
	// rings ends the connection.
	struct DirtyLog {
		vblk::Mmap map;
		uint64_t addr = 0;	// the bitmap in our address space
		uint64_t size = 0;	// bytes
	};
	std::optional<std::string> log_gap(const DirtyLog &log, const MemoryTable &mem,
					   uint64_t features, const std::vector<Ring> &rings) const;
	void check_log(const std::string &what, const DirtyLog &log, const MemoryTable &mem,
		       uint64_t features, const std::vector<Ring> &rings) const;
	bool any_started() const noexcept;
	std::optional<vhost_user::Message> set_log_base(vhost_user::Message &m);

	void set_features(uint64_t f);
	void set_mem_table(vhost_user::Message &m);
	std::optional<vhost_user::Message> get_config(const vhost_user::Message &m);
	void set_config(const vhost_user::Message &m);
	bool guest_controls_cache() const noexcept;
	bool effective_wce() const noexcept;

	const DiskContext &ctx_;
	DirtyLog log_;		// before dev_: unmapped after the device closed
	std::unique_ptr<device::Device> dev_;
	bool owned_ = false;
	bool features_set_ = false;
	uint64_t features_ = 0;
	uint64_t protocol_features_ = 0;
	// The config space's writeback byte: the backend's write cache at
	// start, then what the guest writes; applied to the kernel device
	// (VHOST_BLK_SET_WRITE_CACHE) while CONFIG_WCE is negotiated.
	bool wce_;
	MemoryTable mem_;
	std::vector<Ring> rings_;
	WorkerSet workers_;
	device::DeviceFactory factory_;
	// Restart: our copy of each ring's call eventfd, to signal once after
	// a rebase (completions whose interrupt went to the dead backend).
	std::vector<vblk::UniqueFd> calls_;
};

} // namespace bridge
