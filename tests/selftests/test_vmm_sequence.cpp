// SPDX-License-Identifier: GPL-2.0
// The ioctl sequences of VMMs that drive /dev/vhost-blk like any vhost
// device: QEMU's vhost_dev_start()/vhost_dev_stop() as the published
// vhost-blk QEMU patch and tools/qemu/ use them.  Their stop is
// VHOST_GET_VRING_BASE per ring, with no VHOST_BLK_SET_BACKEND(-1) first;
// their start sets every ring up again and attaches the backend to all
// rings; their worker ioctl is the series' VHOST_SET_NWORKERS.
#include "common.hpp"

#include <fstream>
#include <set>

using namespace vbt;

namespace {

// QEMU's vhost_dev_start() after a stop: features, memory table, every
// ring from its saved base, then the device's SET_BACKEND on all rings.
void vmm_start(vblk::BlkDriver &d, const Backend &b, const std::vector<uint16_t> &bases)
{
	auto &dev = d.device();
	dev.set_features(d.features());
	dev.set_mem_table(d.mem_table());
	for (unsigned q = 0; q < d.num_queues(); q++)
		d.restart_ring(q, bases.at(q));
	d.attach(b.fd());
}

// QEMU's vhost_dev_stop(): VHOST_GET_VRING_BASE on every ring.
std::vector<uint16_t> vmm_stop(vblk::BlkDriver &d)
{
	std::vector<uint16_t> bases;
	for (unsigned q = 0; q < d.num_queues(); q++)
		bases.push_back(static_cast<uint16_t>(d.get_vring_base(q)));
	return bases;
}

// Waits (bounded) until the ring's worker has taken requests that are now
// at the backend.
bool wait_inflight(vblk::BlkDriver &d, unsigned q)
{
	auto deadline = std::chrono::steady_clock::now() + 5s;
	while (std::chrono::steady_clock::now() < deadline) {
		if (d.stats(q).inflight > 0)
			return true;
		std::this_thread::sleep_for(1ms);
	}
	return false;
}

unsigned max_queues_param()
{
	std::ifstream f("/sys/module/vhost_blk/parameters/max_queues");
	unsigned n = 0;
	f >> n;
	return n ? n : 16;
}

} // namespace

// The published patch's start: rings set up, then SET_BACKEND on all rings.
TEST(vmm_start_sequence_serves_every_ring)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	for (unsigned q = 0; q < 2; q++)
		write_read_back(*d, b, q, 1 - q, 70000 + q * 64, 8192, ktap::seed());
}

// Stop with writes in flight: GET_VRING_BASE waits for every write the ring
// took, the base is exactly the used index, and nothing completes after
// it.  The writes the ring had not taken run once after the start.
TEST_TIMEOUT(vmm_stop_with_writes_in_flight_base_exact_nothing_after, 60)
{
	auto b = Backend::open(env_delay);
	auto d = attached_driver(b, 1, 256);
	constexpr unsigned n = 64;
	constexpr uint64_t first = 30000;
	b.write_direct(first * 512, pattern(n * 4096, first, 77));
	std::set<uint64_t> tokens;
	for (unsigned i = 0; i < n; i++) {
		uint64_t s = first + i * 8;
		tokens.insert(d->submit(0, vblk::BlkDriver::write_spec(s, pattern(4096, s, ktap::seed())),
					false));
	}
	d->kick(0);
	ASSERT_TRUE(wait_inflight(*d, 0));

	auto t0 = std::chrono::steady_clock::now();
	auto bases = vmm_stop(*d);
	auto took = std::chrono::steady_clock::now() - t0;
	ktap::diag("base " + std::to_string(bases[0]) + " after " +
		   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
		   " ms");
	auto st = d->stats(0);
	ASSERT_EQ(st.attached, 0u);
	ASSERT_EQ(st.inflight, 0u);
	ASSERT_TRUE(bases[0] > 0);
	ASSERT_EQ(d->queue(0).used_idx(), bases[0]);

	std::set<uint64_t> done;
	for (auto &c : d->poll(0, 0, 0ms)) {
		ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
		ASSERT_TRUE(done.insert(c.token).second);
	}
	ASSERT_EQ(done.size(), size_t{ bases[0] });
	// Kicked again and given longer than the backend's latency: nothing.
	d->queue(0).notify();
	ASSERT_TRUE(d->poll(0, 1, delay_latency * 2).empty());
	ASSERT_EQ(d->queue(0).used_idx(), bases[0]);

	// SET_VRING_NUM/BASE no longer EBUSY: the ring restarts from its base.
	vmm_start(*d, b, bases);
	while (done.size() < n) {
		auto cs = d->poll(0);
		ASSERT_FALSE(cs.empty());
		for (auto &c : cs) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			ASSERT_TRUE(tokens.count(c.token) == 1);
			ASSERT_TRUE(done.insert(c.token).second);
		}
	}
	ASSERT_EQ(d->get_vring_base(0), n);
	ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], uint64_t{ n });
	ASSERT_BYTES_EQ(b.read_direct(first * 512, n * 4096), pattern(n * 4096, first, ktap::seed()));
}

// vm stop / cont: the same rings stop and start again, twice, and the data
// written in every phase is on the disk.
TEST_TIMEOUT(vmm_stop_and_start_again_keeps_the_rings, 60)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	uint64_t s = 90000;
	for (int cycle = 0; cycle < 3; cycle++) {
		for (unsigned q = 0; q < 2; q++, s += 16) {
			b.write_direct(s * 512, pattern(8192, s, 5));
			ASSERT_EQ(d->write(q, s, pattern(8192, s, ktap::seed() + cycle)), VIRTIO_BLK_S_OK);
		}
		auto bases = vmm_stop(*d);
		for (unsigned q = 0; q < 2; q++) {
			ASSERT_EQ(bases[q], static_cast<uint16_t>(2 * cycle + 1));
			ASSERT_EQ(d->stats(q).attached, 0u);
		}
		// A request the guest adds while stopped runs after the start.
		b.write_direct(s * 512, pattern(4096, s, 5));
		auto t = d->submit(0, vblk::BlkDriver::write_spec(s, pattern(4096, s, 3)));
		ASSERT_TRUE(d->poll(0, 1, 200ms).empty());
		vmm_start(*d, b, bases);
		ASSERT_EQ(d->wait(0, t).status, VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(b.read_direct(s * 512, 4096), pattern(4096, s, 3));
		s += 16;
		// Balance ring 1's count with ring 0's extra request.
		ASSERT_EQ(d->flush(1), VIRTIO_BLK_S_OK);
	}
	s = 90000;
	for (int cycle = 0; cycle < 3; cycle++) {
		for (unsigned q = 0; q < 2; q++, s += 16)
			ASSERT_BYTES_EQ(b.read_direct(s * 512, 8192),
					pattern(8192, s, ktap::seed() + cycle));
		s += 16;
	}
}

// Guest reboot or device reset: stop with writes in flight, the guest
// abandons its rings, the VMM starts fresh rings from 0.  The old writes
// completed into the old rings before the stop returned; none reaches the
// new rings; the new rings serve data.
TEST_TIMEOUT(vmm_reset_with_writes_in_flight_then_fresh_rings, 60)
{
	auto b = Backend::open(env_delay);
	auto d = attached_driver(b, 2, 128);
	constexpr uint64_t first = 50000;
	for (unsigned q = 0; q < 2; q++)
		for (unsigned i = 0; i < 16; i++) {
			uint64_t s = first + (q * 16 + i) * 8;
			d->submit(q, vblk::BlkDriver::write_spec(s, pattern(4096, s, ktap::seed())),
				  false);
		}
	d->kick(0);
	d->kick(1);
	ASSERT_TRUE(wait_inflight(*d, 0));
	auto bases = vmm_stop(*d);
	for (unsigned q = 0; q < 2; q++) {
		ASSERT_EQ(d->queue(q).used_idx(), bases[q]);
		ASSERT_EQ(d->stats(q).inflight, 0u);
		// What completed is on the disk.
		auto cs = d->poll(q, 0, 0ms);
		ASSERT_EQ(cs.size(), size_t{ bases[q] });
		for (auto &c : cs)
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	}
	// The rings take requests in order: the first bases[q] writes of each.
	for (unsigned q = 0; q < 2; q++)
		for (unsigned i = 0; i < bases[q]; i++) {
			uint64_t s = first + (q * 16 + i) * 8;
			ASSERT_BYTES_EQ(b.read_direct(s * 512, 4096),
					pattern(4096, s, ktap::seed()));
		}
	for (unsigned q = 0; q < 2; q++)
		d->renew_ring(q);
	d->device().set_features(d->features());
	d->device().set_mem_table(d->mem_table());
	d->attach(b.fd());
	for (unsigned q = 0; q < 2; q++) {
		uint64_t s = 60000 + q * 16;
		b.write_direct(s * 512, pattern(4096, s, 8));
		ASSERT_EQ(d->write(q, s, pattern(4096, s, ktap::seed())), VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(b.read_direct(s * 512, 4096), pattern(4096, s, ktap::seed()));
		// Exactly one request in the fresh ring's used ring: nothing old.
		ASSERT_EQ(d->queue(q).used_idx(), 1);
		ASSERT_EQ(d->get_vring_base(q), 1u);
	}
}

// Only the owner stops a ring: another process's GET_VRING_BASE is EPERM
// and the ring stays attached and serving.
TEST(vmm_get_vring_base_of_non_owner_keeps_ring_attached)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	ASSERT_EQ(d->write(0, 0, pattern(4096, 0, 1)), VIRTIO_BLK_S_OK);
	int rc = in_child([&] {
		struct vhost_vring_state s = { 0, 0 };
		return d->device().try_ioctl(VHOST_GET_VRING_BASE, &s) == -EPERM ? 0 : 2;
	});
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(d->stats(0).attached, 1u);
	write_read_back(*d, b, 0, 0, 8, 4096, ktap::seed());
	ASSERT_EQ(d->get_vring_base(0), 3u);
}

TEST(vmm_get_vring_base_out_of_range_is_enobufs_and_keeps_rings)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	struct vhost_vring_state s = { 100000, 0 };
	ASSERT_EQ(d->device().try_ioctl(VHOST_GET_VRING_BASE, &s), -ENOBUFS);
	ASSERT_EQ(d->stats(0).attached, 1u);
	ASSERT_EQ(d->write(0, 0, pattern(4096, 0, 1)), VIRTIO_BLK_S_OK);
}

// VHOST_SET_NWORKERS (legacy): at least N workers, ring i on the
// (i % N)-th, data verified on every ring; it grows and never frees.
TEST(set_nworkers_spreads_rings_round_robin)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 4);
	auto &dev = d->device();
	int n = 2;
	ASSERT_EQ(dev.try_ioctl(VHOST_SET_NWORKERS, &n), 0);
	unsigned w[4];
	for (unsigned q = 0; q < 4; q++) {
		w[q] = dev.get_vring_worker(q);
		ASSERT_EQ(d->stats(q).worker_id, w[q]);
	}
	ASSERT_EQ(w[0], w[2]);
	ASSERT_EQ(w[1], w[3]);
	ASSERT_NE(w[0], w[1]);
	n = 4;
	ASSERT_EQ(dev.try_ioctl(VHOST_SET_NWORKERS, &n), 0);
	std::set<unsigned> ids;
	for (unsigned q = 0; q < 4; q++)
		ids.insert(dev.get_vring_worker(q));
	ASSERT_EQ(ids.size(), size_t{ 4 });
	// The first two workers are the ones from before.
	ASSERT_EQ(dev.get_vring_worker(0), w[0]);
	ASSERT_EQ(dev.get_vring_worker(1), w[1]);
	for (unsigned q = 0; q < 4; q++)
		write_read_back(*d, b, q, (q + 1) % 4, 40000 + q * 64, 16384, ktap::seed());
	n = 1;
	ASSERT_EQ(dev.try_ioctl(VHOST_SET_NWORKERS, &n), 0);
	for (unsigned q = 0; q < 4; q++)
		ASSERT_EQ(dev.get_vring_worker(q), w[0]);
	ASSERT_EQ(d->write(3, 0, pattern(4096, 0, 2)), VIRTIO_BLK_S_OK);
}

TEST(set_nworkers_bad_counts_and_callers_are_rejected)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	auto &dev = d->device();
	unsigned w0 = dev.get_vring_worker(0);
	for (int n : { 0, -1, static_cast<int>(max_queues_param()) + 1, 1 << 30 }) {
		int v = n;
		ASSERT_EQ(dev.try_ioctl(VHOST_SET_NWORKERS, &v), -EINVAL);
	}
	ASSERT_EQ(dev.try_ioctl(VHOST_SET_NWORKERS, nullptr), -EFAULT);
	int rc = in_child([&] {
		int n = 2;
		return dev.try_ioctl(VHOST_SET_NWORKERS, &n) == -EPERM ? 0 : 2;
	});
	ASSERT_EQ(rc, 0);
	// Before SET_OWNER: not the owner either.
	vblk::VhostBlkDevice fresh(device_path());
	int n = 1;
	ASSERT_EQ(fresh.try_ioctl(VHOST_SET_NWORKERS, &n), -EPERM);
	// Nothing changed on the rejected calls.
	ASSERT_EQ(dev.get_vring_worker(0), w0);
	ASSERT_EQ(dev.get_vring_worker(1), w0);
	ASSERT_EQ(d->write(1, 8, pattern(4096, 8, 1)), VIRTIO_BLK_S_OK);
}

// Rings move between workers while writes are in flight: each completes once.
TEST_TIMEOUT(set_nworkers_while_writes_in_flight_completes_each_once, 60)
{
	auto b = Backend::open(env_delay);
	auto d = attached_driver(b, 2, 128);
	std::set<uint64_t> tokens, done;
	for (unsigned q = 0; q < 2; q++)
		for (unsigned i = 0; i < 32; i++) {
			uint64_t s = 20000 + (q * 32 + i) * 8;
			tokens.insert(d->submit(
				q, vblk::BlkDriver::write_spec(s, pattern(4096, s, ktap::seed()))));
		}
	// Ring 1 is the one that moves to the new worker.
	ASSERT_TRUE(wait_inflight(*d, 1));
	int n = 2;
	ASSERT_EQ(d->device().try_ioctl(VHOST_SET_NWORKERS, &n), 0);
	ASSERT_NE(d->device().get_vring_worker(0), d->device().get_vring_worker(1));
	for (unsigned q = 0; q < 2; q++)
		while (d->pending(q)) {
			auto cs = d->poll(q);
			ASSERT_FALSE(cs.empty());
			for (auto &c : cs) {
				ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
				ASSERT_TRUE(done.insert(c.token).second);
			}
		}
	ASSERT_TRUE(done == tokens);
	ASSERT_BYTES_EQ(b.read_direct(20000 * 512, 64 * 4096),
			pattern(64 * 4096, 20000, ktap::seed()));
}
