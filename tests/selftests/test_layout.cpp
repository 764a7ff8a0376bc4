// SPDX-License-Identifier: GPL-2.0
// Descriptor layouts (VIRTIO_F_ANY_LAYOUT), indirect tables, unaligned
// guest buffers (bounce path), ring feature combinations, all queues busy.
#include "common.hpp"

#include <random>

using namespace vbt;
using vblk::IoOptions;
using vblk::Layout;

namespace {

void round_trip(vblk::BlkDriver &d, const Backend &b, uint64_t sector, size_t len,
		const IoOptions &io)
{
	auto data = pattern(len, sector, ktap::seed() ^ static_cast<uint64_t>(io.layout));
	ASSERT_EQ(d.write(0, sector, data, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, len), data);
	std::vector<uint8_t> back(len);
	ASSERT_EQ(d.read(0, sector, back, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}

} // namespace

TEST_VARIANTS(layout_round_trips, IoOptions, io,
	      ({ { "separate", { .layout = Layout::separate } },
		 { "split_header", { .layout = Layout::split_header } },
		 { "chunked_512_status_in_last_data",
		   { .layout = Layout::chunked_data, .chunk = 512 } },
		 { "chunked_4096_status_in_last_data",
		   { .layout = Layout::chunked_data, .chunk = 4096 } },
		 { "chunked_odd_sizes", { .layout = Layout::chunked_data, .chunk = 1000 } },
		 { "header_with_data", { .layout = Layout::header_with_data } },
		 { "indirect_separate", { .layout = Layout::separate, .indirect = true } },
		 { "indirect_split_header", { .layout = Layout::split_header, .indirect = true } },
		 { "indirect_chunked",
		   { .layout = Layout::chunked_data, .indirect = true, .chunk = 512 } },
		 { "indirect_header_with_data",
		   { .layout = Layout::header_with_data, .indirect = true } } }))
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 256);
	if (io.indirect && !d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	round_trip(*d, b, 10000, 64 * 1024, io);
}

TEST_VARIANTS(unaligned_guest_buffer_round_trips, uint32_t, misalign,
	      ({ { "offset_1", 1 }, { "offset_3", 3 }, { "offset_511", 511 }, { "offset_2048", 2048 } }))
{
	// Buffers that break the disk's DMA alignment go through the bounce
	// buffer; those that keep it (2048 on a 512-aligned queue) stay
	// zero-copy.  Either way the data is right.
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto dma_mask = b.queue_attr("dma_alignment");
	if (!dma_mask)
		SKIP("no queue/dma_alignment in sysfs");
	auto before = d->stats(0).bounced;
	round_trip(*d, b, 20000, 24 * 1024, { .misalign = misalign });
	auto bounced = d->stats(0).bounced - before;
	ktap::diag("dma_alignment " + std::to_string(*dma_mask) + ", bounced " +
		   std::to_string(bounced));
	ASSERT_EQ(bounced, (misalign & *dma_mask) ? 2u : 0u); // the write and the read
}

TEST(header_and_data_in_one_descriptor_is_bounced_and_correct)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto data = pattern(8192, 777 * 8, ktap::seed());
	ASSERT_EQ(d->write(0, 777 * 8, data, { .layout = Layout::header_with_data }),
		  VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(777 * 8 * 512, data.size()), data);
	ASSERT_GE(d->stats(0).bounced, 1u);
}

TEST(sub_block_segments_on_4k_backend_round_trip)
{
	// 512-byte descriptors carrying a 4 KiB-aligned request: legal virtio,
	// not O_DIRECT-shaped, so the module must bounce it.
	auto b = Backend::open(env_nullb_4k);
	auto d = attached_driver(b);
	round_trip(*d, b, 4096, 32 * 1024, { .layout = Layout::chunked_data, .chunk = 512 });
}

struct FeatureParam {
	uint64_t clear;
};

TEST_VARIANTS(round_trip_with_ring_features, FeatureParam, p,
	      ({ { "no_event_idx", { vblk::bit(vblk::f_event_idx) } },
		 { "no_indirect", { vblk::bit(vblk::f_indirect_desc) } },
		 { "no_event_idx_no_indirect",
		   { vblk::bit(vblk::f_event_idx) | vblk::bit(vblk::f_indirect_desc) } },
		 { "no_flush_write_through", { vblk::bit(VIRTIO_BLK_F_FLUSH) } } }))
{
	auto b = Backend::open(env_nullb);
	auto o = driver_options(1, 64);
	o.features &= ~p.clear;
	vblk::BlkDriver d(o);
	ASSERT_EQ(d.features() & p.clear, 0u);
	d.attach(b.fd());
	// Keep the ring busy enough to exercise notification suppression.
	constexpr unsigned n = 200;
	unsigned done = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = 40000 + i * 8;
		auto spec = vblk::BlkDriver::write_spec(sector, pattern(4096, sector, ktap::seed()));
		while (!d.can_submit(0, spec))
			for (auto &c : d.poll(0)) {
				ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
				done++;
			}
		d.submit(0, spec);
	}
	while (done < n) {
		auto cs = d.poll(0);
		ASSERT_FALSE(cs.empty());
		for (auto &c : cs) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			done++;
		}
	}
	auto disk = b.read_direct(40000 * 512ULL, n * 4096);
	ASSERT_BYTES_EQ(disk, pattern(n * 4096, 40000, ktap::seed()));
}

TEST_TIMEOUT(all_queues_busy_random_writes_then_verify, 180)
{
	constexpr unsigned queues = 4, depth = 64, per_queue = 512;
	constexpr uint32_t bs = 4096;
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, queues, 256); // 64 requests x 3 descriptors
	std::mt19937_64 rng(ktap::seed());
	const uint64_t slots = 16384; // 64 MiB region, 4 KiB slots
	// Each slot is written by at most one request: writes in flight on
	// different queues never overlap, so the final content is defined.
	std::vector<uint64_t> order(slots);
	for (uint64_t i = 0; i < slots; i++)
		order[i] = i;
	std::shuffle(order.begin(), order.end(), rng);
	ktap::diag("seed " + std::to_string(ktap::seed()));

	size_t next = 0;
	unsigned submitted[queues] = {}, completed[queues] = {};
	auto remaining = [&] {
		for (unsigned q = 0; q < queues; q++)
			if (completed[q] < per_queue)
				return true;
		return false;
	};
	while (remaining()) {
		for (unsigned q = 0; q < queues; q++) {
			while (submitted[q] < per_queue && d->pending(q) < depth) {
				uint64_t sector = order[next++] * (bs / 512);
				d->submit(q, vblk::BlkDriver::write_spec(
						     sector, pattern(bs, sector, ktap::seed())),
					  false);
				submitted[q]++;
			}
			d->kick(q);
		}
		for (unsigned q = 0; q < queues; q++) {
			if (completed[q] == per_queue)
				continue;
			for (auto &c : d->poll(q, 1, std::chrono::milliseconds(1))) {
				ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
				completed[q]++;
			}
		}
	}
	for (unsigned q = 0; q < queues; q++) {
		auto st = d->stats(q);
		ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], per_queue);
	}
	// Verify through the module (on every queue) and on the disk.
	for (size_t i = 0; i < next; i++) {
		uint64_t sector = order[i] * (bs / 512);
		std::vector<uint8_t> back(bs);
		ASSERT_EQ(d->read(static_cast<unsigned>(i % queues), sector, back), VIRTIO_BLK_S_OK);
		auto want = pattern(bs, sector, ktap::seed());
		ASSERT_BYTES_EQ(back, want);
		ASSERT_BYTES_EQ(b.read_direct(sector * 512, bs), want);
	}
}

struct QueueParam {
	unsigned queues;
	bool indirect;
};

TEST_VARIANTS(every_queue_serves_io, QueueParam, p,
	      ({ { "1q", { 1, false } },
		 { "2q", { 2, false } },
		 { "4q", { 4, false } },
		 { "1q_indirect", { 1, true } },
		 { "2q_indirect", { 2, true } },
		 { "4q_indirect", { 4, true } } }))
{
	// Data written on one queue is read back on every other one.
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, p.queues);
	if (p.indirect && !d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	IoOptions io{ .indirect = p.indirect };
	for (unsigned q = 0; q < p.queues; q++) {
		uint64_t sector = 300000 + q * 128;
		auto data = pattern(32 * 1024, sector, ktap::seed() + q);
		ASSERT_EQ(d->write(q, sector, data, io), VIRTIO_BLK_S_OK);
		for (unsigned r = 0; r < p.queues; r++) {
			std::vector<uint8_t> back(data.size());
			ASSERT_EQ(d->read(r, sector, back, io), VIRTIO_BLK_S_OK);
			ASSERT_BYTES_EQ(back, data);
		}
		ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
		ASSERT_EQ(d->stats(q).requests[VHOST_BLK_STAT_OUT], 1u);
	}
}
