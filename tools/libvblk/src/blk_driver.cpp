// SPDX-License-Identifier: GPL-2.0
#include "vblk/blk_driver.hpp"
#include "vblk/error.hpp"

#include <cstring>

namespace vblk {

BlkDriver::BlkDriver(const BlkDriverOptions &opts)
	: opts_(opts), mem_(opts.memory_size), queues_(opts.num_queues),
	  dev_(std::make_unique<VhostBlkDevice>(opts.device_path))
{
	if (opts.num_queues == 0)
		throw std::invalid_argument("BlkDriver: at least one queue");
	setup();
}

BlkDriver::~BlkDriver()
{
	// Close the device first: release() waits for in-flight bios that
	// point into our memory.
	dev_.reset();
}

void BlkDriver::setup()
{
	dev_->set_owner();
	offered_ = dev_->get_features();
	if (opts_.require_all_features && (opts_.features & ~offered_))
		throw SysError(EOPNOTSUPP, "VHOST_GET_FEATURES: requested features not offered");
	features_ = opts_.features & offered_;
	dev_->set_features(features_);
	MemRegion r = mem_.region();
	dev_->set_mem_table({ &r, 1 });
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
	dev_->set_vring_num(q, opts_.queue_size);
	dev_->set_vring_base(q, 0);
	dev_->set_vring_addr(q, Q.vq->addresses());
	dev_->set_vring_kick(q, Q.vq->kick_fd().fd());
	dev_->set_vring_call(q, Q.vq->call_fd().fd());
	dev_->set_vring_err(q, Q.vq->err_fd().fd());
}

void BlkDriver::reset()
{
	dev_->reset_owner();
	setup();
}

void BlkDriver::attach(int backend_fd)
{
	dev_->set_backend(VHOST_BLK_BACKEND_ALL_VRINGS, backend_fd);
	for (auto &Q : queues_)
		Q.backend_fd = backend_fd;
}

void BlkDriver::attach_ring(unsigned q, int backend_fd)
{
	dev_->set_backend(VHOST_BLK_BACKEND_VRING(q), backend_fd);
	queues_.at(q).backend_fd = backend_fd;
}

void BlkDriver::detach()
{
	dev_->set_backend(VHOST_BLK_BACKEND_ALL_VRINGS, -1);
}

void BlkDriver::detach_ring(unsigned q)
{
	dev_->set_backend(VHOST_BLK_BACKEND_VRING(q), -1);
}

void BlkDriver::reattach_ring(unsigned q)
{
	int fd = queues_.at(q).backend_fd;
	if (fd < 0)
		throw std::logic_error("reattach_ring: ring was never attached");
	dev_->set_backend(VHOST_BLK_BACKEND_VRING(q), fd);
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
