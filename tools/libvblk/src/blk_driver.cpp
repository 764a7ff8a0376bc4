// SPDX-License-Identifier: GPL-2.0
#include "vblk/blk_driver.hpp"
#include "vblk/error.hpp"

#include <cstring>

namespace vblk {

BlkDriver::BlkDriver(const BlkDriverOptions &opts)
	: opts_(opts), mem_(opts.memory_size), mem_table_{ mem_.region() },
	  queues_(opts.num_queues)
{
	if (opts.num_queues == 0)
		throw std::invalid_argument("BlkDriver: at least one queue");
	if (opts.vhost_user_socket.empty())
		dev_ = std::make_unique<VhostBlkDevice>(opts.device_path);
	else
		vu_ = std::make_unique<VhostUserFrontend>(opts.vhost_user_socket, opts.timeout);
	setup();
}

VhostBlkDevice &BlkDriver::device()
{
	if (!dev_)
		throw std::logic_error("BlkDriver: a vhost-user device has no /dev/vhost-blk");
	return *dev_;
}

VhostUserFrontend &BlkDriver::vhost_user()
{
	if (!vu_)
		throw std::logic_error("BlkDriver: not a vhost-user device");
	return *vu_;
}

unsigned BlkDriver::get_vring_base(unsigned q)
{
	return vu_ ? vu_->get_vring_base(q) : dev_->get_vring_base(q);
}

BlkDriver::~BlkDriver()
{
	// Close the device first: release() waits for in-flight bios that
	// point into our memory.
	dev_.reset();
}

void BlkDriver::setup()
{
	if (vu_) {
		offered_ = vu_->offered_features();
		if (opts_.require_all_features && (opts_.features & ~offered_))
			throw SysError(EOPNOTSUPP, "GET_FEATURES: requested features not offered");
		if (queues_.size() > vu_->queue_num())
			throw SysError(EINVAL, "GET_QUEUE_NUM: backend serves " +
						       std::to_string(vu_->queue_num()) + " queues");
		features_ = opts_.features & offered_;
		vu_->set_features(features_);
		vu_->set_mem_table(mem_);
		for (unsigned q = 0; q < queues_.size(); q++)
			setup_queue(q);
		return;
	}
	dev_->set_owner();
	offered_ = dev_->get_features();
	if (opts_.require_all_features && (opts_.features & ~offered_))
		throw SysError(EOPNOTSUPP, "VHOST_GET_FEATURES: requested features not offered");
	features_ = opts_.features & offered_;
	dev_->set_features(features_);
	dev_->set_mem_table(mem_table_);
	for (unsigned q = 0; q < queues_.size(); q++)
		setup_queue(q);
}

void BlkDriver::setup_queue(unsigned q)
{
	Queue &Q = queues_[q];
	Q.pending.clear();
	Q.ready.clear();
	Q.backend_fd = -1;
	Q.vq = std::make_unique<SplitVirtqueue>(mem_, opts_.queue_size, has_feature(f_event_idx),
						has_feature(f_indirect_desc));
	if (vu_) {
		vu_->set_vring_num(q, opts_.queue_size);
		vu_->set_vring_base(q, 0);
		vu_->set_vring_addr(q, Q.vq->addresses());
		vu_->set_vring_call(q, Q.vq->call_fd().fd());
		vu_->set_vring_err(q, Q.vq->err_fd().fd());
		vu_->set_vring_kick(q, Q.vq->kick_fd().fd());
		vu_->set_vring_enable(q, true);
		return;
	}
	dev_->set_vring_num(q, opts_.queue_size);
	dev_->set_vring_base(q, 0);
	dev_->set_vring_addr(q, Q.vq->addresses());
	dev_->set_vring_kick(q, Q.vq->kick_fd().fd());
	dev_->set_vring_call(q, Q.vq->call_fd().fd());
	dev_->set_vring_err(q, Q.vq->err_fd().fd());
}

void BlkDriver::restart_ring(unsigned q, uint16_t base)
{
	VhostBlkDevice &dev = device();
	Queue &Q = queues_.at(q);
	dev.set_vring_num(q, opts_.queue_size);
	dev.set_vring_base(q, base);
	dev.set_vring_addr(q, Q.vq->addresses());
	dev.set_vring_kick(q, Q.vq->kick_fd().fd());
	dev.set_vring_call(q, Q.vq->call_fd().fd());
	dev.set_vring_err(q, Q.vq->err_fd().fd());
}

void BlkDriver::renew_ring(unsigned q)
{
	device();
	setup_queue(q);
}

void BlkDriver::reset()
{
	device().reset_owner();
	setup();
}

void BlkDriver::set_mem_table(std::vector<MemRegion> regions)
{
	device().set_mem_table(regions);
	mem_table_ = std::move(regions);
}

void BlkDriver::attach(int backend_fd)
{
	device().set_backend(VHOST_BLK_BACKEND_ALL_VRINGS, backend_fd);
	for (auto &Q : queues_)
		Q.backend_fd = backend_fd;
}

void BlkDriver::attach_ring(unsigned q, int backend_fd)
{
	device().set_backend(VHOST_BLK_BACKEND_VRING(q), backend_fd);
	queues_.at(q).backend_fd = backend_fd;
}

void BlkDriver::detach()
{
	device().set_backend(VHOST_BLK_BACKEND_ALL_VRINGS, -1);
}

void BlkDriver::detach_ring(unsigned q)
{
	device().set_backend(VHOST_BLK_BACKEND_VRING(q), -1);
}

void BlkDriver::reattach_ring(unsigned q)
{
	int fd = queues_.at(q).backend_fd;
	if (fd < 0)
		throw std::logic_error("reattach_ring: ring was never attached");
	device().set_backend(VHOST_BLK_BACKEND_VRING(q), fd);
}

std::vector<unsigned> BlkDriver::spread_workers(unsigned n)
{
	VhostBlkDevice &dev = device();
	std::vector<unsigned> ids, rings;
	for (unsigned w = 0; w < n; w++)
		ids.push_back(dev.new_worker());
	for (unsigned q = 0; q < queues_.size(); q++) {
		if (!ids.empty())
			dev.attach_vring_worker(q, ids[q % ids.size()]);
		rings.push_back(dev.get_vring_worker(q));
	}
	return rings;
}

bool BlkDriver::can_submit(unsigned q, const RequestSpec &spec) const
{
	// Upper bound of the descriptors prepare_request() produces.
	size_t data = spec.in_len ? spec.in_len : spec.out.size();
	size_t segs = 4;
	if (spec.io.layout == Layout::chunked_data)
		segs = 2 + (data + spec.io.chunk - 1) / spec.io.chunk;
	size_t need = SplitVirtqueue::descriptors_needed(segs, spec.io.indirect);
	return queues_.at(q).vq->num_free() >= need;
}

uint64_t BlkDriver::enqueue(unsigned q, std::span<const Segment> segs, bool indirect, Pending p,
			    bool kick)
{
	Queue &Q = queues_.at(q);
	uint64_t token = next_token_++;
	if (!Q.vq->add_chain(segs, token, indirect))
		throw QueueFull("queue " + std::to_string(q) + " full");
	Q.pending.emplace(token, std::move(p));
	if (kick)
		Q.vq->kick();
	return token;
}

uint64_t BlkDriver::submit(unsigned q, const RequestSpec &spec, bool kick)
{
	PreparedRequest r = prepare_request(mem_, spec);
	std::vector<Segment> segs = r.segments;
	bool indirect = r.indirect;
	return enqueue(q, segs, indirect, Pending{ std::move(r) }, kick);
}

uint64_t BlkDriver::submit_segments(unsigned q, std::span<const Segment> segs, bool indirect,
				    bool kick)
{
	return enqueue(q, segs, indirect, Pending{}, kick);
}

void BlkDriver::reap(unsigned q)
{
	Queue &Q = queues_.at(q);
	while (auto u = Q.vq->get_used()) {
		auto it = Q.pending.find(u->token);
		if (it == Q.pending.end())
			throw ProtocolError("completion for unknown token");
		Completion c{ u->token, q, u->id, u->len, status_unwritten, {} };
		if (it->second.req) {
			const PreparedRequest &r = *it->second.req;
			c.status = r.status();
			if (r.data_writable) {
				auto d = r.data();
				c.data.assign(d.begin(), d.end());
			}
		}
		Q.pending.erase(it);
		Q.ready.push_back(std::move(c));
	}
}

std::vector<Completion> BlkDriver::poll(unsigned q, size_t min_count,
					std::optional<std::chrono::milliseconds> timeout)
{
	using clock = std::chrono::steady_clock;
	Queue &Q = queues_.at(q);
	auto deadline = clock::now() + timeout.value_or(opts_.timeout);
	reap(q);
	while (Q.ready.size() < min_count) {
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  clock::now());
		if (left.count() <= 0 || !Q.vq->wait_used(left))
			break;
		reap(q);
	}
	std::vector<Completion> out(std::make_move_iterator(Q.ready.begin()),
				    std::make_move_iterator(Q.ready.end()));
	Q.ready.clear();
	return out;
}

Completion BlkDriver::wait(unsigned q, uint64_t token)
{
	using clock = std::chrono::steady_clock;
	Queue &Q = queues_.at(q);
	auto deadline = clock::now() + opts_.timeout;
	for (;;) {
		reap(q);
		for (auto it = Q.ready.begin(); it != Q.ready.end(); ++it) {
			if (it->token == token) {
				Completion c = std::move(*it);
				Q.ready.erase(it);
				return c;
			}
		}
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
										  clock::now());
		if (left.count() <= 0 || !Q.vq->wait_used(left))
			throw TimeoutError("queue " + std::to_string(q) +
					   ": no completion within timeout");
	}
}

Completion BlkDriver::execute(unsigned q, const RequestSpec &spec)
{
	return wait(q, submit(q, spec));
}

RequestSpec BlkDriver::read_spec(uint64_t sector, uint32_t len, const IoOptions &io)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_IN;
	s.sector = sector;
	s.in_len = len;
	s.io = io;
	return s;
}

RequestSpec BlkDriver::write_spec(uint64_t sector, std::span<const uint8_t> data,
				  const IoOptions &io)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_OUT;
	s.sector = sector;
	s.out.assign(data.begin(), data.end());
	s.io = io;
	return s;
}

RequestSpec BlkDriver::range_spec(uint32_t type, std::span<const Range> ranges,
				  const IoOptions &io)
{
	RequestSpec s;
	s.type = type;
	s.out = encode_ranges(ranges);
	s.io = io;
	return s;
}

uint8_t BlkDriver::read(unsigned q, uint64_t sector, std::span<uint8_t> out, const IoOptions &io)
{
	Completion c = execute(q, read_spec(sector, static_cast<uint32_t>(out.size()), io));
	std::memcpy(out.data(), c.data.data(), out.size());
	return c.status;
}

uint8_t BlkDriver::write(unsigned q, uint64_t sector, std::span<const uint8_t> in,
			 const IoOptions &io)
{
	return execute(q, write_spec(sector, in, io)).status;
}

uint8_t BlkDriver::flush(unsigned q)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_FLUSH;
	return execute(q, s).status;
}

uint8_t BlkDriver::get_id(unsigned q, std::array<char, VIRTIO_BLK_ID_BYTES> &id)
{
	RequestSpec s;
	s.type = VIRTIO_BLK_T_GET_ID;
	s.in_len = VIRTIO_BLK_ID_BYTES;
	Completion c = execute(q, s);
	std::memcpy(id.data(), c.data.data(), id.size());
	return c.status;
}

uint8_t BlkDriver::discard(unsigned q, std::span<const Range> ranges, const IoOptions &io)
{
	return execute(q, range_spec(VIRTIO_BLK_T_DISCARD, ranges, io)).status;
}

uint8_t BlkDriver::write_zeroes(unsigned q, std::span<const Range> ranges, const IoOptions &io)
{
	return execute(q, range_spec(VIRTIO_BLK_T_WRITE_ZEROES, ranges, io)).status;
}

uint8_t BlkDriver::secure_erase(unsigned q, std::span<const Range> ranges, const IoOptions &io)
{
	return execute(q, range_spec(VIRTIO_BLK_T_SECURE_ERASE, ranges, io)).status;
}

} // namespace vblk
