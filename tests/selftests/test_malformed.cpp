// SPDX-License-Identifier: GPL-2.0
// What a buggy or hostile guest can write: short headers, missing status,
// wrong data direction, descriptor loops, bad indices, lengths and
// addresses, too many segments, the same head twice.
#include "common.hpp"

using namespace vbt;
using vblk::Segment;
using vblk::VringDesc;

namespace {

// No used entry shows up within `ms`.
void assert_no_completion(vblk::BlkDriver &d, unsigned q, std::chrono::milliseconds ms = 300ms)
{
	ASSERT_TRUE(d.poll(q, 1, ms).empty());
}

// Writes a chain of raw descriptors; `next` of each is patched to the
// following one unless `keep_next` (then the caller's value stays).
uint16_t write_raw_chain(vblk::SplitVirtqueue &vq, std::vector<VringDesc> descs,
			 std::vector<uint16_t> &ids, bool keep_next = false)
{
	ids = vq.take_descriptors(descs.size());
	for (size_t i = 0; i < descs.size(); i++) {
		VringDesc &d = vq.desc_table()[ids[i]];
		d = descs[i];
		if (!keep_next && i + 1 < descs.size()) {
			d.flags |= vblk::desc_f_next;
			d.next = ids[i + 1];
		}
	}
	return ids.front();
}

// A malformed chain stops the ring: the error eventfd fires, nothing is
// used, and closing the device afterwards is clean.
void expect_ring_stopped(vblk::BlkDriver &d)
{
	ASSERT_TRUE(err_signalled(d, 0));
	assert_no_completion(d, 0);
}

} // namespace

TEST(header_shorter_than_16_bytes_is_ioerr)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
	Segment segs[] = { { r.hdr(), 8, false }, { r.data(), 512, true }, { r.status(), 1, true } };
	auto t = d->submit_segments(0, segs);
	auto c = d->wait(0, t);
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(chain_of_only_a_status_byte_is_ioerr)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 0);
	Segment segs[] = { { r.status(), 1, true } };
	d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
}

TEST(chain_without_writable_status_gets_used_len_0_and_err_event)
{
	auto b = Backend::open(env_nullb);
	auto before = pattern(4096, 64, 1);
	b.write_direct(64 * 512, before);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_OUT, 64, 4096);
	Segment segs[] = { { r.hdr(), 16, false }, { r.data(), 4096, false } };
	auto c = d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(c.used_len, 0u);
	ASSERT_TRUE(err_signalled(*d, 0));
	ASSERT_BYTES_EQ(b.read_direct(64 * 512, 4096), before);
}

TEST(chain_whose_only_writable_descriptor_is_empty_gets_used_len_0)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
	Segment segs[] = { { r.hdr(), 16, false }, { r.data(), 0, true } };
	auto c = d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(c.used_len, 0u);
	ASSERT_TRUE(err_signalled(*d, 0));
}

TEST(ring_keeps_working_after_chain_without_status)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_FLUSH, 0, 0);
	Segment segs[] = { { r.hdr(), 16, false } };
	d->wait(0, d->submit_segments(0, segs));
	auto data = pattern(4096, 200, 5);
	ASSERT_EQ(d->write(0, 200, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(200 * 512, 4096), data);
}

TEST(in_with_device_readable_data_is_ioerr)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 4096);
	std::memset(r.buf.data() + 4096, 0xee, 4096);
	Segment segs[] = { { r.hdr(), 16, false }, { r.data(), 4096, false }, { r.status(), 1, true } };
	auto c = d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
}

TEST(out_with_device_writable_data_is_ioerr_disk_untouched)
{
	auto b = Backend::open(env_nullb);
	auto before = pattern(4096, 300, 2);
	b.write_direct(300 * 512, before);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_OUT, 300, 8192);
	Segment segs[] = { { r.hdr(), 16, false },
			   { r.data(), 4096, false },
			   { r.data() + 4096, 4096, true },
			   { r.status(), 1, true } };
	d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(300 * 512, 4096), before);
}

TEST(flush_with_data_is_ioerr)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_FLUSH, 0, 512);
	Segment segs[] = { { r.hdr(), 16, false }, { r.data(), 512, false }, { r.status(), 1, true } };
	d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
}

TEST(descriptor_loop_stops_ring_and_device_closes_cleanly)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		auto &vq = d->queue(0);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
		std::vector<uint16_t> ids;
		uint16_t head = write_raw_chain(
			vq,
			{ { r.hdr(), 16, vblk::desc_f_next, 0 },
			  { r.data(), 512, vblk::desc_f_write | vblk::desc_f_next, 0 } },
			ids, true);
		vq.desc_table()[ids[0]].next = ids[1];
		vq.desc_table()[ids[1]].next = ids[0]; // loop
		vq.publish(head);
		vq.notify();
		expect_ring_stopped(*d);
	}
	assert_device_usable(b);
}

TEST(next_index_out_of_range_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		auto &vq = d->queue(0);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
		std::vector<uint16_t> ids;
		uint16_t head = write_raw_chain(
			vq, { { r.hdr(), 16, vblk::desc_f_next, static_cast<uint16_t>(vq.size() + 7) } },
			ids, true);
		vq.publish(head);
		vq.notify();
		expect_ring_stopped(*d);
	}
	assert_device_usable(b);
}

TEST(avail_head_out_of_range_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		auto &vq = d->queue(0);
		vq.publish(static_cast<uint16_t>(vq.size() + 1));
		vq.notify();
		expect_ring_stopped(*d);
	}
	assert_device_usable(b);
}

TEST(length_0xffffffff_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
		Segment segs[] = { { r.hdr(), 16, false },
				   { r.data(), 0xffffffffu, true },
				   { r.status(), 1, true } };
		d->submit_segments(0, segs);
		expect_ring_stopped(*d);
		ASSERT_EQ(r.status_byte(), vblk::status_unwritten);
	}
	assert_device_usable(b);
}

TEST(lengths_summing_past_4gib_do_not_reach_the_disk)
{
	// Many descriptors aliasing one 8 MiB buffer add up to more than
	// used.len (32 bits) can express: IOERR, nothing read.
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 1024);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 8 << 20);
	std::vector<Segment> segs{ { r.hdr(), 16, false } };
	for (int i = 0; i < 600; i++) // 600 * 8 MiB = 4.7 GiB > U32_MAX
		segs.push_back({ r.data(), 8u << 20, true });
	segs.push_back({ r.status(), 1, true });
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	auto c = d->wait(0, d->submit_segments(0, segs, true));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
}

// A ring translates a chain into at most 2 * (VHOST_BLK_MAX_SEGMENTS + 2)
// iovecs (every descriptor of a compliant chain may cross a boundary
// between memory regions).
constexpr size_t ring_iov_max = 2 * (VHOST_BLK_MAX_SEGMENTS + 2);

TEST(chain_of_more_data_descriptors_than_seg_max_is_served)
{
	// One data descriptor more than seg_max still fits the ring's iovecs:
	// served like any request, data verified both ways.
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 2048);
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	const size_t n = VHOST_BLK_MAX_SEGMENTS + 1;
	const uint64_t sector = 8192;
	auto data = pattern(n * 512, sector, ktap::seed());
	auto w = raw_request(d->memory(), VIRTIO_BLK_T_OUT, sector, data.size());
	std::memcpy(w.buf.data() + 4096, data.data(), data.size());
	std::vector<Segment> segs{ { w.hdr(), 16, false } };
	for (size_t i = 0; i < n; i++)
		segs.push_back({ w.data() + i * 512, 512, false });
	segs.push_back({ w.status(), 1, true });
	ASSERT_EQ(d->wait(0, d->submit_segments(0, segs, true)).used_len, 1u);
	ASSERT_EQ(w.status_byte(), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);

	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, sector, data.size());
	segs = { { r.hdr(), 16, false } };
	for (size_t i = 0; i < n; i++)
		segs.push_back({ r.data() + i * 512, 512, true });
	segs.push_back({ r.status(), 1, true });
	ASSERT_EQ(d->wait(0, d->submit_segments(0, segs, true)).used_len, data.size() + 1);
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(std::span<const uint8_t>(r.buf.data() + 4096, data.size()), data);
}

TEST(chain_of_more_iovecs_than_a_ring_translates_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b, 1, 2048);
		if (!d->has_feature(vblk::f_indirect_desc))
			SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
		// header + n + status = ring_iov_max + 1 descriptors, one
		// iovec each (one memory region).
		const size_t n = ring_iov_max - 1;
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, n * 512);
		std::vector<Segment> segs{ { r.hdr(), 16, false } };
		for (size_t i = 0; i < n; i++)
			segs.push_back({ r.data() + i * 512, 512, true });
		segs.push_back({ r.status(), 1, true });
		d->submit_segments(0, segs, true);
		expect_ring_stopped(*d);
		ASSERT_EQ(r.status_byte(), vblk::status_unwritten);
	}
	assert_device_usable(b);
}

TEST(address_outside_mem_table_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 0);
		uint64_t outside = d->memory().base() + d->memory().size() + 4096;
		Segment segs[] = { { r.hdr(), 16, false }, { outside, 4096, true }, { r.status(), 1, true } };
		d->submit_segments(0, segs);
		expect_ring_stopped(*d);
		ASSERT_EQ(r.status_byte(), vblk::status_unwritten);
	}
	assert_device_usable(b);
}

TEST(nested_indirect_table_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		if (!d->has_feature(vblk::f_indirect_desc))
			SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
		auto &vq = d->queue(0);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 512);
		auto inner = d->memory().allocate(2 * sizeof(VringDesc), 16);
		auto outer = d->memory().allocate(sizeof(VringDesc), 16);
		auto *in = reinterpret_cast<VringDesc *>(inner.data());
		in[0] = { r.hdr(), 16, vblk::desc_f_next, 1 };
		in[1] = { r.status(), 1, vblk::desc_f_write, 0 };
		*reinterpret_cast<VringDesc *>(outer.data()) = { inner.gpa(), 32, vblk::desc_f_indirect,
								 0 };
		std::vector<uint16_t> ids;
		uint16_t head = write_raw_chain(
			vq, { { outer.gpa(), sizeof(VringDesc), vblk::desc_f_indirect, 0 } }, ids);
		vq.publish(head);
		vq.notify();
		expect_ring_stopped(*d);
	}
	assert_device_usable(b);
}

TEST(indirect_table_length_not_multiple_of_16_stops_ring)
{
	auto b = Backend::open(env_nullb);
	{
		auto d = attached_driver(b);
		if (!d->has_feature(vblk::f_indirect_desc))
			SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
		auto &vq = d->queue(0);
		auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 0);
		auto table = d->memory().allocate(2 * sizeof(VringDesc), 16);
		auto *t = reinterpret_cast<VringDesc *>(table.data());
		t[0] = { r.hdr(), 16, vblk::desc_f_next, 1 };
		t[1] = { r.status(), 1, vblk::desc_f_write, 0 };
		std::vector<uint16_t> ids;
		uint16_t head =
			write_raw_chain(vq, { { table.gpa(), 24, vblk::desc_f_indirect, 0 } }, ids);
		vq.publish(head);
		vq.notify();
		expect_ring_stopped(*d);
	}
	assert_device_usable(b);
}

TEST(same_head_twice_in_flight_is_reported_and_completes_once)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto &vq = d->queue(0);
	// One request, its head published twice before the kick: the module
	// sees the second copy while the first is still in flight.
	auto t = d->submit(0, vblk::BlkDriver::read_spec(0, 1 << 20), false);
	uint16_t dup = vq.avail_entry(static_cast<uint16_t>(vq.avail_idx() - 1));
	vq.publish(dup);
	vq.notify();
	auto c = d->wait(0, t);
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_TRUE(err_signalled(*d, 0));
	// A second completion of the same head would throw ProtocolError.
	ASSERT_TRUE(d->poll(0, 1, 500ms).empty());
}
