// SPDX-License-Identifier: GPL-2.0
#include "bridge/session.hpp"
#include "bridge/restart.hpp"

#include <vblk/error.hpp>

#include <cstddef>
#include <fcntl.h>
#include <linux/vhost.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bridge {

using vhost_user::Message;
using vhost_user::Request;

namespace {

bool has_inherent_reply(Request r)
{
	switch (r) {
	case Request::get_features:
	case Request::get_protocol_features:
	case Request::get_queue_num:
	case Request::get_vring_base:
	case Request::get_config:
	case Request::set_log_base:	// only with LOG_SHMFD, which replies
		return true;
	default:
		return false;
	}
}

// Bytes of each split-ring part for a queue of `num` entries (with the
// event-idx trailer).
uint64_t desc_bytes(unsigned num) { return 16ull * num; }
uint64_t avail_bytes(unsigned num) { return 6 + 2ull * num; }
uint64_t used_bytes(unsigned num) { return 6 + 8ull * num; }

// Guest-physical bytes a dirty log of `bytes` covers: a bit per page.
uint64_t log_covers(uint64_t bytes) { return bytes * 8 * vhost_user::log_page_size; }
// Log bytes needed for guest-physical addresses below `end`.
uint64_t log_needed(uint64_t end)
{
	uint64_t per_byte = 8 * vhost_user::log_page_size;
	return end / per_byte + (end % per_byte != 0);
}

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%llx", static_cast<unsigned long long>(v));
	return b;
}

} // namespace

Session::Session(const DiskContext &ctx, device::DeviceFactory factory)
	: ctx_(ctx), wce_(ctx.info.write_cache), factory_(std::move(factory))
{
	dev_ = factory_();
	rings_.resize(ctx_.params.queues);
	calls_.resize(ctx_.params.queues);
}

Session::~Session()
{
	stop();
}

void Session::stop() noexcept
{
	for (unsigned i = 0; i < rings_.size(); i++) {
		if (!rings_[i].started)
			continue;
		try {
			stop_ring(i);
		} catch (const std::exception &e) {
			ctx_.log("vq " + std::to_string(i) + ": detach failed: " + e.what());
			rings_[i].started = false;
		}
	}
}

uint64_t Session::offered_protocol_features() const noexcept
{
	uint64_t f = base_protocol_features;
	if (ctx_.offered_features & (1ull << VHOST_F_LOG_ALL))
		f |= 1ull << vhost_user::pf_log_shmfd;
	return f;
}

bool Session::can_nack(const Message &m) const noexcept
{
	return m.need_reply() && !has_inherent_reply(m.req()) &&
	       (protocol_features_ & (1ull << vhost_user::pf_reply_ack));
}

std::optional<Message> Session::handle(Message &m)
{
	auto reply = dispatch(m);
	if (!reply && can_nack(m))
		reply = vhost_user::reply_u64(m, 0);
	return reply;
}

void Session::require_owner(const Message &m) const
{
	if (!owned_)
		throw SessionError(m.name() + " before SET_OWNER");
}

Session::Ring &Session::ring(const Message &m, uint32_t index)
{
	if (index >= rings_.size())
		throw SessionError(m.name() + ": vq " + std::to_string(index) +
				   " out of range (the disk has " + std::to_string(rings_.size()) +
				   " queues)");
	return rings_[index];
}

void Session::set_kernel_addr(unsigned index, const Ring &r)
{
	// Before SET_VRING_NUM the size is unknown: check the first byte.
	unsigned n = r.num;
	device::VringAddr a;
	a.desc = mem_.to_daemon(r.addr.desc_user_addr, n ? desc_bytes(n) : 1, "descriptor table");
	a.avail = mem_.to_daemon(r.addr.avail_user_addr, n ? avail_bytes(n) : 1, "avail ring");
	a.used = mem_.to_daemon(r.addr.used_user_addr, n ? used_bytes(n) : 1, "used ring");
	// log_guest_addr is guest-physical, as the kernel's log is indexed.
	a.log = r.addr.log_guest_addr;
	a.flags = r.addr.flags & vhost_user::vring_addr_f_log;
	dev_->set_vring_addr(index, a);
}

void Session::maybe_start(unsigned index)
{
	Ring &r = rings_[index];
	if (r.started || !r.enabled || !r.kick_set || !r.addr_set || !r.num || mem_.empty())
		return;
	if (auto gap = log_gap(log_, mem_, features_, rings_)) {
		ctx_.log("vq " + std::to_string(index) + ": waits for a dirty log: " + *gap);
		return;
	}
	if (ctx_.params.poll_us)
		dev_->set_vring_busyloop_timeout(index, ctx_.params.poll_us);
	// The first ring to start claims the disk (bridge/restart.hpp).
	bool running = false;
	for (const Ring &o : rings_)
		running = running || o.started;
	bool rebased;
	if (!running && ctx_.claim) {
		rebased = attach_first(index);
	} else {
		rebased = rebase(index);
		dev_->attach_ring(index, ctx_.backend_fd);
	}
	r.base.reset();
	r.signal_pending = rebased;
	r.started = true;
	ctx_.log("vq " + std::to_string(index) + ": started");
	signal_after_rebase(index);
}

// Restart without loss (bridge/restart.hpp).

// The kernel holds the exclusive file from here while any ring runs; our
// copy closes on return.  Rebases under the claim: the previous owner's
// device has reported everything by the time the claim succeeds.
bool Session::attach_first(unsigned index)
{
	vblk::UniqueFd claimed = ctx_.claim();
	bool rebased = rebase(index);
	dev_->attach_ring(index, claimed.get());
	return rebased;
}

bool Session::rebase(unsigned index)
{
	Ring &r = rings_[index];
	if (!r.base)
		return false;
	uint64_t used = mem_.to_daemon(r.addr.used_user_addr, used_bytes(r.num), "used ring");
	// The frontend's memfd may be shorter than the region it announced
	// (or truncated since): a plain load would be SIGBUS.  A read of our
	// own /proc/self/mem answers EIO instead (process_vm_readv would too,
	// but kernels without CONFIG_CROSS_MEMORY_ATTACH lack it).
	uint16_t used_idx;
	vblk::UniqueFd self(::open("/proc/self/mem", O_RDONLY | O_CLOEXEC));
	if (!self || ::pread(self.get(), &used_idx, sizeof(used_idx),
			      static_cast<off_t>(used + 2)) != sizeof(used_idx))
		throw Rejected("vq " + std::to_string(index) +
			       ": the used ring cannot be read (guest memory smaller than "
			       "its memory table says?)");
	auto base = stale_base(*r.base, used_idx, r.num);
	if (!base)
		return false;
	ctx_.log("vq " + std::to_string(index) + ": base " + std::to_string(*r.base) +
		 " is behind the used index " + std::to_string(*base) +
		 " (the previous backend died with requests in flight): starting from " +
		 std::to_string(*base));
	dev_->set_vring_base(index, *base);
	return true;
}

// QEMU sets the call eventfd after the kick that starts the ring: the
// signal waits for it.
void Session::signal_after_rebase(unsigned index)
{
	Ring &r = rings_[index];
	if (!r.signal_pending || !calls_[index])
		return;
	r.signal_pending = false;
	uint64_t one = 1;
	if (::write(calls_[index].get(), &one, sizeof(one)) != sizeof(one))
		ctx_.log("vq " + std::to_string(index) + ": cannot signal the call eventfd");
}

void Session::stop_ring(unsigned index)
{
	Ring &r = rings_[index];
	if (!r.started)
		return;
	dev_->detach_ring(index);
	r.started = false;
	ctx_.log("vq " + std::to_string(index) + ": stopped");
}

bool Session::any_started() const noexcept
{
	for (const auto &r : rings_)
		if (r.started)
			return true;
	return false;
}

std::optional<std::string> Session::log_gap(const DirtyLog &log, const MemoryTable &mem,
					    uint64_t features,
					    const std::vector<Ring> &rings) const
{
	uint64_t covered = log_covers(log.size);
	if (features & (1ull << VHOST_F_LOG_ALL)) {
		for (const auto &m : mem.mappings()) {
			uint64_t end = m.guest_phys_addr + m.size;	// parse_mem_table: no wrap
			if (end > covered)
				return "LOG_ALL: guest memory up to " + hex(end) + " needs " +
				       std::to_string(log_needed(end)) + " log bytes, the log has " +
				       std::to_string(log.size);
		}
	}
	for (unsigned i = 0; i < rings.size(); i++) {
		const Ring &r = rings[i];
		if (!r.addr_set || !(r.addr.flags & vhost_user::vring_addr_f_log))
			continue;
		uint64_t start = r.addr.log_guest_addr;
		uint64_t end = start + used_bytes(r.num ? r.num : 1);
		if (end < start || end > covered)
			return "vq " + std::to_string(i) + ": the used ring's log address " +
			       hex(start) + " is beyond the log's " + std::to_string(log.size) +
			       " bytes";
	}
	return std::nullopt;
}

void Session::check_log(const std::string &what, const DirtyLog &log, const MemoryTable &mem,
			uint64_t features, const std::vector<Ring> &rings) const
{
	if (!any_started())
		return;		// rings start once the log covers them
	if (auto gap = log_gap(log, mem, features, rings))
		throw SessionError(what + " with rings running: " + *gap);
}

std::optional<Message> Session::set_log_base(Message &m)
{
	if (!(protocol_features_ & (1ull << vhost_user::pf_log_shmfd)))
		throw SessionError("SET_LOG_BASE without LOG_SHMFD (the log must be shared memory)");
	auto area = vhost_user::parse_log_base(m);
	DirtyLog next;
	if (area.mmap_size) {
		if (area.mmap_size > max_log_bytes)
			throw SessionError("SET_LOG_BASE: a log of " + std::to_string(area.mmap_size) +
					   " bytes exceeds " + std::to_string(max_log_bytes));
		int fd = m.fds[0].get();
		struct stat st;
		vblk::check(::fstat(fd, &st), "SET_LOG_BASE: fstat of the log");
		if (!S_ISREG(st.st_mode))
			throw SessionError("SET_LOG_BASE: the log is not a memfd or file");
		if (area.mmap_offset + area.mmap_size > static_cast<uint64_t>(st.st_size))
			throw SessionError("SET_LOG_BASE: the log ends at " +
					   std::to_string(area.mmap_offset + area.mmap_size) +
					   ", its file has " + std::to_string(st.st_size) + " bytes");
		uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
		uint64_t skip = area.mmap_offset % page;
		try {
			next.map = vblk::Mmap::map(area.mmap_size + skip, PROT_READ | PROT_WRITE,
						   MAP_SHARED, fd,
						   static_cast<off_t>(area.mmap_offset - skip));
		} catch (const vblk::SysError &e) {
			throw vblk::SysError(e.code(), "SET_LOG_BASE: mmap of " +
							       std::to_string(area.mmap_size) +
							       " log bytes");
		}
		next.addr = reinterpret_cast<uint64_t>(next.map.bytes() + skip);
		next.size = area.mmap_size;
	}
	check_log(m.name(), next, mem_, features_, rings_);
	// The kernel drains in-flight requests (they mark the old log) before
	// it switches: once this returns, the old log is unused and unmapped
	// with `next` below.
	dev_->set_log_base(next.addr);
	std::swap(log_, next);
	ctx_.log("dirty log: " + std::to_string(log_.size) + " bytes");
	for (unsigned i = 0; i < rings_.size(); i++)
		maybe_start(i);
	return vhost_user::reply_u64(m, 0);
}

void Session::take_ownership()
{
	dev_->set_owner();
	owned_ = true;
	if (!ctx_.serial.empty())
		dev_->set_serial(ctx_.serial);
	if (ctx_.params.block_size)
		dev_->set_block_size(ctx_.params.block_size);
	try {
		workers_.adopt_default(*dev_);
		apply_workers(*ctx_.plan);
	} catch (const vblk::SysError &e) {
		// Kernels before 6.5 have one worker per device: serve anyway.
		ctx_.log(std::string("workers not applied: ") + e.what());
	}
}

void Session::apply_workers(const WorkerPlan &plan)
{
	if (!owned_)
		return;
	workers_.apply(*dev_, plan);
}

void Session::apply_poll(unsigned us)
{
	if (!owned_)
		return;
	for (unsigned i = 0; i < rings_.size(); i++)
		dev_->set_vring_busyloop_timeout(i, us);
}

void Session::reset(bool keep_owner)
{
	stop();
	auto fresh = factory_();
	workers_.clear();
	dev_ = std::move(fresh);	// closes the old device
	mem_ = MemoryTable();
	log_ = DirtyLog();	// the device that used it is closed
	rings_.assign(ctx_.params.queues, Ring());
	calls_.clear();
	calls_.resize(ctx_.params.queues);
	features_ = 0;
	features_set_ = false;
	wce_ = ctx_.info.write_cache;
	owned_ = false;
	if (keep_owner)
		take_ownership();
}

void Session::set_features(uint64_t f)
{
	uint64_t allowed = ctx_.offered_features | vhost_user::f_protocol_features;
	if (f & ~allowed) {
		char buf[96];
		snprintf(buf, sizeof(buf), "SET_FEATURES: 0x%llx has bits never offered (0x%llx)",
			 static_cast<unsigned long long>(f),
			 static_cast<unsigned long long>(f & ~allowed));
		throw SessionError(buf);
	}
	check_log("SET_FEATURES", log_, mem_, f & ~vhost_user::f_protocol_features, rings_);
	// Bit 30 is vhost-user's own; the kernel must not see it.
	dev_->set_features(f & ~vhost_user::f_protocol_features);
	features_ = f & ~vhost_user::f_protocol_features;
	features_set_ = true;
	// Without CONFIG_WCE the kernel's default stands: write-back with
	// FLUSH, write-through without, as the guest expects.
	if (guest_controls_cache())
		dev_->set_write_cache(effective_wce());
}

bool Session::guest_controls_cache() const noexcept
{
	return features_set_ && (features_ & (1ull << VIRTIO_BLK_F_CONFIG_WCE));
}

// A guest that negotiated CONFIG_WCE without FLUSH sees writeback 0 (virtio
// 1.2, 5.2.5.1): it cannot flush, the module serves it write-through.
bool Session::effective_wce() const noexcept
{
	return wce_ && (!features_set_ || (features_ & (1ull << VIRTIO_BLK_F_FLUSH)));
}

void Session::set_mem_table(Message &m)
{
	auto regions = vhost_user::parse_mem_table(m);
	MemoryTable table = MemoryTable::map(regions, m.fds);
	check_log(m.name(), log_, table, features_, rings_);
	// Rings hold our addresses of the old table: stop them, switch,
	// re-translate, restart.  Bases survive in the kernel.
	std::vector<unsigned> restart;
	for (unsigned i = 0; i < rings_.size(); i++) {
		if (rings_[i].started) {
			stop_ring(i);
			restart.push_back(i);
		}
	}
	auto kregions = table.kernel_regions();
	dev_->set_mem_table(kregions);
	std::swap(mem_, table);
	for (unsigned i = 0; i < rings_.size(); i++)
		if (rings_[i].addr_set)
			set_kernel_addr(i, rings_[i]);
	for (unsigned i : restart)
		maybe_start(i);
	ctx_.log("memory table: " + std::to_string(regions.size()) + " region(s)");
}

std::optional<Message> Session::get_config(const Message &m)
{
	auto req = vhost_user::parse_config(m);
	DiskParams p = ctx_.params;
	auto cfg = build_config(ctx_.info, p, effective_wce());
	auto data = read_config(cfg, req.hdr.offset, req.hdr.size);
	return vhost_user::reply_config(m, req.hdr, data);
}

void Session::set_config(const Message &m)
{
	auto req = vhost_user::parse_config(m);
	if (req.hdr.offset != offsetof(virtio_blk_config, wce) || req.hdr.size != 1)
		throw Rejected("SET_CONFIG: only wce is writable (offset " +
			       std::to_string(req.hdr.offset) + ", size " +
			       std::to_string(req.hdr.size) + ")");
	if (!guest_controls_cache())
		throw Rejected("SET_CONFIG: wce is writable only with CONFIG_WCE negotiated");
	if (req.data[0] > 1)
		throw Rejected("SET_CONFIG: wce " + std::to_string(req.data[0]) +
			       " is neither 0 (write-through) nor 1 (write-back)");
	bool wce = req.data[0] == 1;
	// Write-through returns once every write the guest saw complete is
	// stable (the module drains and flushes).
	dev_->set_write_cache(wce);
	wce_ = wce;
	ctx_.log(std::string("config: write cache ") +
		 (effective_wce() ? "write-back" : "write-through"));
}

std::optional<Message> Session::dispatch(Message &m)
{
	switch (m.req()) {
	case Request::get_features:
		vhost_user::expect_empty(m);
		return vhost_user::reply_u64(m, ctx_.offered_features |
						       vhost_user::f_protocol_features);
	case Request::set_features:
		require_owner(m);
		set_features(vhost_user::parse_u64(m));
		return std::nullopt;
	case Request::get_protocol_features:
		vhost_user::expect_empty(m);
		return vhost_user::reply_u64(m, offered_protocol_features());
	case Request::set_protocol_features: {
		uint64_t f = vhost_user::parse_u64(m);
		if (f & ~offered_protocol_features())
			throw SessionError("SET_PROTOCOL_FEATURES: bits never offered");
		protocol_features_ = f;
		return std::nullopt;
	}
	case Request::get_queue_num:
		vhost_user::expect_empty(m);
		return vhost_user::reply_u64(m, ctx_.params.queues);
	case Request::set_owner:
		vhost_user::expect_empty(m);
		if (owned_)
			throw SessionError("SET_OWNER: the device already has an owner");
		take_ownership();
		return std::nullopt;
	case Request::reset_owner:
	case Request::reset_device:
		vhost_user::expect_empty(m);
		ctx_.log(m.name() + ": resetting the device");
		reset(m.req() == Request::reset_device && owned_);
		return std::nullopt;
	case Request::set_mem_table:
		require_owner(m);
		set_mem_table(m);
		return std::nullopt;
	case Request::set_vring_num: {
		require_owner(m);
		auto s = vhost_user::parse_vring_state(m);
		Ring &r = ring(m, s.index);
		if (r.started)
			throw SessionError("SET_VRING_NUM: vq " + std::to_string(s.index) +
					   " is running");
		if (s.num == 0 || s.num > 32768 || (s.num & (s.num - 1)))
			throw SessionError("SET_VRING_NUM: size " + std::to_string(s.num) +
					   " is not a power of 2 up to 32768");
		dev_->set_vring_num(s.index, s.num);
		r.num = s.num;
		return std::nullopt;
	}
	case Request::set_vring_base: {
		require_owner(m);
		auto s = vhost_user::parse_vring_state(m);
		Ring &r = ring(m, s.index);
		if (r.started)
			throw SessionError("SET_VRING_BASE: vq " + std::to_string(s.index) +
					   " is running");
		dev_->set_vring_base(s.index, s.num);
		r.base = static_cast<uint16_t>(s.num);
		return std::nullopt;
	}
	case Request::set_vring_addr: {
		require_owner(m);
		auto a = vhost_user::parse_vring_addr(m);
		Ring &r = ring(m, a.index);
		if (mem_.empty())
			throw SessionError("SET_VRING_ADDR before SET_MEM_TABLE");
		std::vector<Ring> next = rings_;
		next[a.index].addr = a;
		next[a.index].addr_set = true;
		check_log(m.name(), log_, mem_, features_, next);
		set_kernel_addr(a.index, next[a.index]);
		r.addr = a;
		r.addr_set = true;
		return std::nullopt;
	}
	case Request::set_vring_kick: {
		require_owner(m);
		auto f = vhost_user::parse_vring_file(m);
		Ring &r = ring(m, f.index);
		if (!f.has_fd)
			throw SessionError("SET_VRING_KICK: vq " + std::to_string(f.index) +
					   " without an eventfd (polling is not supported)");
		// The kernel takes its own reference; ours closes with m.
		dev_->set_vring_kick(f.index, m.fds[0].get());
		r.kick_set = true;
		maybe_start(f.index);
		return std::nullopt;
	}
	case Request::set_vring_call:
	case Request::set_vring_err: {
		require_owner(m);
		auto f = vhost_user::parse_vring_file(m);
		ring(m, f.index);
		int fd = f.has_fd ? m.fds[0].get() : -1;
		if (m.req() == Request::set_vring_call) {
			dev_->set_vring_call(f.index, fd);
			calls_[f.index] = vblk::UniqueFd(fd >= 0 ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1);
			signal_after_rebase(f.index);
		} else
			dev_->set_vring_err(f.index, fd);
		return std::nullopt;
	}
	case Request::set_vring_enable: {
		require_owner(m);
		auto s = vhost_user::parse_vring_state(m);
		Ring &r = ring(m, s.index);
		if (s.num > 1)
			throw SessionError("SET_VRING_ENABLE: value " + std::to_string(s.num));
		r.enabled = s.num == 1;
		if (r.enabled)
			maybe_start(s.index);
		else
			stop_ring(s.index);
		return std::nullopt;
	}
	case Request::get_vring_base: {
		require_owner(m);
		auto s = vhost_user::parse_vring_state(m);
		Ring &r = ring(m, s.index);
		// Detaching drains: every request taken is in the used ring
		// before the base is read, so none is lost.
		stop_ring(s.index);
		r.kick_set = false;
		unsigned base = dev_->get_vring_base(s.index);
		return vhost_user::reply_vring_state(m, { s.index, base });
	}
	case Request::set_log_base:
		require_owner(m);
		return set_log_base(m);
	case Request::set_log_fd:
		require_owner(m);
		vhost_user::parse_log_fd(m);
		// The kernel takes its own reference; ours closes with m.
		dev_->set_log_fd(m.fds[0].get());
		return std::nullopt;
	case Request::get_config:
		return get_config(m);
	case Request::set_config:
		set_config(m);
		return std::nullopt;
	default:
		throw SessionError(m.name() + ": not supported");
	}
}

} // namespace bridge
