// SPDX-License-Identifier: GPL-2.0
#include "vblk/virtqueue.hpp"
#include "vblk/error.hpp"
#include "le.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

namespace vblk {

namespace {

size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

uint16_t load_acquire(const uint16_t *p) noexcept
{
	return le16_to_cpu(std::atomic_ref<uint16_t>(*const_cast<uint16_t *>(p))
				   .load(std::memory_order_acquire));
}

void store_release(uint16_t *p, uint16_t v) noexcept
{
	std::atomic_ref<uint16_t>(*p).store(cpu_to_le16(v), std::memory_order_release);
}

} // namespace

RingLayout RingLayout::compute(uint16_t num, size_t used_align)
{
	if (num == 0 || (num & (num - 1)))
		throw std::invalid_argument("ring size must be a power of two");
	RingLayout l{};
	l.num = num;
	l.desc_offset = 0;
	l.desc_size = sizeof(VringDesc) * num;
	l.avail_offset = l.desc_offset + l.desc_size;
	l.avail_size = 2 * (3 + size_t(num));
	l.used_offset = align_up(l.avail_offset + l.avail_size, used_align);
	l.used_size = 2 * 3 + sizeof(VringUsedElem) * num;
	l.total = l.used_offset + l.used_size;
	return l;
}

SplitVirtqueue::SplitVirtqueue(GuestMemory &mem, uint16_t num, bool event_idx, bool indirect)
	: layout_(RingLayout::compute(num)), ring_(mem.allocate(layout_.total, 4096)),
	  mem_(mem), event_idx_(event_idx), indirect_(indirect), inflight_(num)
{
	uint8_t *base = ring_.data();
	desc_ = reinterpret_cast<VringDesc *>(base + layout_.desc_offset);
	auto *avail = reinterpret_cast<uint16_t *>(base + layout_.avail_offset);
	avail_flags_ = avail;
	avail_idx_ = avail + 1;
	avail_ring_ = avail + 2;
	used_event_ = avail + 2 + num;
	auto *used = base + layout_.used_offset;
	used_flags_ = reinterpret_cast<uint16_t *>(used);
	used_idx_ = used_flags_ + 1;
	used_ring_ = reinterpret_cast<VringUsedElem *>(used + 4);
	avail_event_ = reinterpret_cast<uint16_t *>(used + 4 + sizeof(VringUsedElem) * num);

	// Hand out low indices first: a stack with 0 on top.
	free_.reserve(num);
	for (unsigned i = num; i-- > 0;)
		free_.push_back(static_cast<uint16_t>(i));
}

VringAddr SplitVirtqueue::addresses() const noexcept
{
	return { .desc = ring_.gpa() + layout_.desc_offset,
		 .avail = ring_.gpa() + layout_.avail_offset,
		 .used = ring_.gpa() + layout_.used_offset };
}

std::vector<uint16_t> SplitVirtqueue::take_descriptors(size_t n)
{
	if (n > free_.size())
		throw std::length_error("virtqueue: not enough free descriptors");
	std::vector<uint16_t> ids(free_.end() - static_cast<ptrdiff_t>(n), free_.end());
	std::reverse(ids.begin(), ids.end());
	free_.resize(free_.size() - n);
	return ids;
}

void SplitVirtqueue::return_descriptors(std::span<const uint16_t> ids)
{
	for (auto it = ids.rbegin(); it != ids.rend(); ++it)
		free_.push_back(*it);
}

void SplitVirtqueue::track(uint16_t head, std::vector<uint16_t> descs, uint64_t token)
{
	Inflight &f = inflight_.at(head);
	if (f.outstanding)
		throw std::logic_error("virtqueue: head " + std::to_string(head) +
				       " already outstanding");
	f.outstanding = true;
	f.token = token;
	f.descs = std::move(descs);
	outstanding_count_++;
}

void SplitVirtqueue::publish(uint16_t head) noexcept
{
	avail_ring_[avail_shadow_ & (layout_.num - 1)] = cpu_to_le16(head);
	avail_shadow_++;
	// The ring entry (and the descriptors) before the index.
	store_release(avail_idx_, avail_shadow_);
}

static void write_desc(VringDesc &d, const Segment &s, uint16_t flags, uint16_t next)
{
	d.addr = cpu_to_le64(s.addr);
	d.len = cpu_to_le32(s.len);
	d.flags = cpu_to_le16(static_cast<uint16_t>(flags | (s.device_writable ? desc_f_write : 0)));
	d.next = cpu_to_le16(next);
}

std::optional<uint16_t> SplitVirtqueue::add_chain(std::span<const Segment> segs, uint64_t token,
						   bool indirect)
{
	if (segs.empty())
		throw std::invalid_argument("virtqueue: empty chain");
	if (indirect && !indirect_)
		throw std::invalid_argument("virtqueue: indirect descriptors not negotiated");
	size_t need = descriptors_needed(segs.size(), indirect);
	if (need > free_.size())
		return std::nullopt;

	std::vector<uint16_t> ids = take_descriptors(need);
	uint16_t head = ids.front();
	GuestBuffer table;
	if (indirect) {
		table = mem_.allocate(sizeof(VringDesc) * segs.size(), 16);
		auto *t = reinterpret_cast<VringDesc *>(table.data());
		for (size_t i = 0; i < segs.size(); i++) {
			bool last = i + 1 == segs.size();
			write_desc(t[i], segs[i], last ? 0 : desc_f_next,
				   last ? 0 : static_cast<uint16_t>(i + 1));
		}
		write_desc(desc_[head], { table.gpa(), static_cast<uint32_t>(table.size()), false },
			   desc_f_indirect, 0);
	} else {
		for (size_t i = 0; i < segs.size(); i++) {
			bool last = i + 1 == segs.size();
			write_desc(desc_[ids[i]], segs[i], last ? 0 : desc_f_next,
				   last ? 0 : ids[i + 1]);
		}
	}
	track(head, std::move(ids), token);
	inflight_[head].indirect_table = std::move(table);
	publish(head);
	return head;
}

bool SplitVirtqueue::kick()
{
	// The avail index store must be visible before we read the device's
	// suppression state (virtio 1.2 2.7.13.3 / 2.7.13.4).
	std::atomic_thread_fence(std::memory_order_seq_cst);
	uint16_t old_idx = kicked_idx_;
	kicked_idx_ = avail_shadow_;
	bool need;
	if (event_idx_)
		need = vring_need_event(avail_event(), avail_shadow_, old_idx);
	else
		need = !(used_flags() & used_f_no_notify);
	if (need)
		kick_.signal();
	return need;
}

uint16_t SplitVirtqueue::load_used_idx() const noexcept { return load_acquire(used_idx_); }
uint16_t SplitVirtqueue::used_idx() const noexcept { return load_used_idx(); }
uint16_t SplitVirtqueue::avail_event() const noexcept { return load_acquire(avail_event_); }
uint16_t SplitVirtqueue::avail_entry(uint16_t idx) const noexcept
{
	return le16_to_cpu(avail_ring_[idx & (layout_.num - 1)]);
}

uint16_t SplitVirtqueue::used_event() const noexcept { return le16_to_cpu(*used_event_); }
uint16_t SplitVirtqueue::used_flags() const noexcept { return load_acquire(used_flags_); }

void SplitVirtqueue::set_avail_flags(uint16_t flags) noexcept
{
	store_release(avail_flags_, flags);
}

void SplitVirtqueue::write_used_event(uint16_t v) noexcept
{
	store_release(used_event_, v);
	std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool SplitVirtqueue::has_used() const noexcept { return load_used_idx() != last_used_; }

std::optional<UsedEntry> SplitVirtqueue::get_used()
{
	uint16_t used = load_used_idx();
	if (used == last_used_)
		return std::nullopt;
	if (static_cast<uint16_t>(used - last_used_) > layout_.num)
		throw ProtocolError("virtqueue: used idx " + std::to_string(used) +
				    " ran ahead of last seen " + std::to_string(last_used_));
	const VringUsedElem &e = used_ring_[last_used_ & (layout_.num - 1)];
	uint32_t id = le32_to_cpu(e.id);
	uint32_t len = le32_to_cpu(e.len);
	if (id >= layout_.num)
		throw ProtocolError("virtqueue: used id " + std::to_string(id) + " out of range");
	Inflight &f = inflight_[id];
	if (!f.outstanding)
		throw ProtocolError("virtqueue: used id " + std::to_string(id) +
				    " was not outstanding (completed twice?)");
	last_used_++;
	f.outstanding = false;
	outstanding_count_--;
	return_descriptors(f.descs);
	f.descs.clear();
	f.indirect_table.reset();
	if (event_idx_)
		write_used_event(last_used_);
	return UsedEntry{ static_cast<uint16_t>(id), len, f.token };
}

bool SplitVirtqueue::wait_used(std::chrono::milliseconds timeout)
{
	using clock = std::chrono::steady_clock;
	auto deadline = clock::now() + timeout;
	for (;;) {
		if (event_idx_)
			write_used_event(last_used_);
		if (has_used())
			return true;
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  clock::now());
		if (left.count() <= 0)
			return has_used();
		call_.wait(left);
	}
}

} // namespace vblk
