// SPDX-License-Identifier: GPL-2.0
// The write cache mode (VHOST_BLK_SET_WRITE_CACHE / _GET_WRITE_CACHE): which
// writes reach the backend with REQ_FUA (stats.fua_writes counts them where
// the flag is set), data read back in both modes, bad arguments, and
// switching while requests are in flight.
#include "common.hpp"

#include <atomic>
#include <thread>

using namespace vbt;
using vblk::BlkDriver;

namespace {

constexpr uint32_t wt = VHOST_BLK_WRITE_CACHE_WRITETHROUGH;
constexpr uint32_t wb = VHOST_BLK_WRITE_CACHE_WRITEBACK;
constexpr size_t page = 4096;

std::unique_ptr<BlkDriver> driver_with(const Backend &b, uint64_t features, unsigned queues = 1)
{
	auto opts = driver_options(queues);
	opts.features = features;
	auto d = std::make_unique<BlkDriver>(opts);
	d->attach(b.fd());
	return d;
}

constexpr uint64_t without_flush = vblk::default_features & ~vblk::bit(VIRTIO_BLK_F_FLUSH);

// Writes `n` pages from `sector` over a range prefilled with another
// pattern, one request each, reads them back through the ring and from the
// disk; every status OK.
void write_pages_read_back(BlkDriver &d, const Backend &b, uint64_t sector, unsigned n,
			   uint64_t seed)
{
	b.write_direct(sector * 512, pattern(n * page, sector, seed + 1000));
	auto data = pattern(n * page, sector, seed);
	for (unsigned i = 0; i < n; i++) {
		std::span<const uint8_t> p(data.data() + i * page, page);
		ASSERT_EQ(d.write(0, sector + i * 8, p), VIRTIO_BLK_S_OK);
	}
	std::vector<uint8_t> back(n * page);
	ASSERT_EQ(d.read(0, sector, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
}

// Waits until ring q has taken exactly n requests that have not completed.
void wait_inflight(BlkDriver &d, unsigned q, uint32_t n)
{
	for (int i = 0; i < 2000 && d.stats(q).inflight != n; i++)
		::usleep(1000);
	ASSERT_EQ(d.stats(q).inflight, n);
}

} // namespace

TEST(wce_default_follows_flush_feature_as_before)
{
	auto b = Backend::open(env_nullb);
	{
		// FLUSH negotiated: write-back, plain writes.
		auto d = attached_driver(b);
		ASSERT_EQ(d->device().get_write_cache(), wb);
		write_pages_read_back(*d, b, 2048, 3, ktap::seed());
		ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], 3u);
		ASSERT_EQ(d->stats(0).fua_writes, 0u);
	}
	// No FLUSH: write-through, every write FUA, even when write-back is
	// asked for (the guest could never make it stable).
	auto d = driver_with(b, without_flush);
	ASSERT_EQ(d->device().get_write_cache(), wt);
	d->device().set_write_cache(wb);
	ASSERT_EQ(d->device().get_write_cache(), wt);
	write_pages_read_back(*d, b, 4096, 3, ktap::seed());
	ASSERT_EQ(d->stats(0).fua_writes, 3u);
}

TEST(wce_writethrough_sends_every_write_with_fua_and_flush_still_works)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->device().set_write_cache(wt);
	ASSERT_EQ(d->device().get_write_cache(), wt);
	write_pages_read_back(*d, b, 8192, 4, ktap::seed());
	// A bounced write (data off the DMA alignment) too.
	vblk::IoOptions io;
	io.misalign = 4;
	auto data = pattern(page, 9000, ktap::seed());
	ASSERT_EQ(d->write(0, 9000, data, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(9000 * 512, page), data);
	ASSERT_EQ(d->flush(0), VIRTIO_BLK_S_OK);
	auto st = d->stats(0);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], 5u);
	ASSERT_EQ(st.fua_writes, 5u);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_FLUSH], 1u);
	ASSERT_EQ(st.status_ok, 7u);
}

TEST(wce_writeback_again_sends_plain_writes)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	d->device().set_write_cache(wt);
	write_pages_read_back(*d, b, 12288, 2, ktap::seed());
	d->device().set_write_cache(wb);
	ASSERT_EQ(d->device().get_write_cache(), wb);
	write_pages_read_back(*d, b, 16384, 3, ktap::seed() + 1);
	ASSERT_EQ(d->flush(1), VIRTIO_BLK_S_OK);
	auto st = d->stats(0);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], 5u);
	ASSERT_EQ(st.fua_writes, 2u);
	// The mode is the device's: ring 1 follows it too.
	d->device().set_write_cache(wt);
	auto data = pattern(page, 20000, ktap::seed());
	ASSERT_EQ(d->write(1, 20000, data), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(1).fua_writes, 1u);
	ASSERT_BYTES_EQ(b.read_direct(20000 * 512, page), data);
}

TEST(wce_bad_mode_is_einval_and_non_owner_is_eperm)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->device().set_write_cache(wt);
	for (uint32_t bad : { 2u, 0xffu, 0xffffffffu })
		ASSERT_ERRNO(d->device().set_write_cache(bad), EINVAL);
	ASSERT_EQ(d->device().get_write_cache(), wt);
	ASSERT_EQ(d->device().try_ioctl(VHOST_BLK_SET_WRITE_CACHE, nullptr), -EFAULT);
	ASSERT_EQ(d->device().try_ioctl(VHOST_BLK_GET_WRITE_CACHE, nullptr), -EFAULT);
	int rc = in_child([&] {
		uint32_t m = wb;
		if (d->device().try_ioctl(VHOST_BLK_SET_WRITE_CACHE, &m) != -EPERM)
			return 2;
		if (d->device().try_ioctl(VHOST_BLK_GET_WRITE_CACHE, &m) != -EPERM)
			return 3;
		return 0;
	});
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(d->device().get_write_cache(), wt);
	write_pages_read_back(*d, b, 24576, 1, ktap::seed());
	ASSERT_EQ(d->stats(0).fua_writes, 1u);
	// Before SET_OWNER.
	vblk::VhostBlkDevice fresh(device_path());
	uint32_t m = wt;
	ASSERT_EQ(fresh.try_ioctl(VHOST_BLK_SET_WRITE_CACHE, &m), -EPERM);
}

TEST(wce_reset_owner_restores_writeback)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->device().set_write_cache(wt);
	d->reset();
	ASSERT_EQ(d->device().get_write_cache(), wb);
	d->attach(b.fd());
	write_pages_read_back(*d, b, 28672, 1, ktap::seed());
	ASSERT_EQ(d->stats(0).fua_writes, 0u);
}

// Writes taken under write-back keep it; the switch returns only once they
// have all completed (and the backend was flushed), later writes are FUA.
TEST(wce_switch_to_writethrough_waits_for_writes_in_flight)
{
	auto b = Backend::open(env_delay);
	constexpr unsigned n = 6;
	const uint64_t sector = 4096;
	b.write_direct(sector * 512, pattern(n * page, sector, ktap::seed() + 7));
	auto data = pattern(n * page, sector, ktap::seed());
	auto d = attached_driver(b);
	for (unsigned i = 0; i < n; i++) {
		std::span<const uint8_t> p(data.data() + i * page, page);
		d->submit(0, BlkDriver::write_spec(sector + i * 8, p), false);
	}
	d->kick(0);
	wait_inflight(*d, 0, n);
	d->device().set_write_cache(wt);
	ASSERT_EQ(d->queue(0).used_idx(), n);
	auto cs = d->poll(0, n, 0ms);
	ASSERT_EQ(cs.size(), size_t{ n });
	for (auto &c : cs)
		ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(0).fua_writes, 0u);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
	auto more = pattern(page, 0, ktap::seed() + 1);
	ASSERT_EQ(d->write(0, 0, more), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(0).fua_writes, 1u);
	ASSERT_BYTES_EQ(b.read_direct(0, page), more);
}

// Another thread flips the mode back and forth while two rings write:
// every write completes once with OK and lands; the FUA count is between
// what the flips allow.
TEST_TIMEOUT(wce_switching_under_io_loses_nothing, 120)
{
	auto b = Backend::open(env_nullb);
	constexpr unsigned queues = 2, per_queue = 384;
	const uint64_t base = 1 << 16;
	auto d = attached_driver(b, queues, 64);
	b.write_direct(base * 512, pattern(queues * per_queue * page, base, ktap::seed() + 3));
	auto data = pattern(queues * per_queue * page, base, ktap::seed());

	// One flip per batch of completions the main thread saw, so flips and
	// I/O interleave however the two threads are scheduled.
	std::atomic<bool> stop{ false };
	std::atomic<unsigned> flips{ 0 }, errors{ 0 }, progress{ 0 };
	vblk::VhostBlkDevice &dev = d->device();
	std::thread flipper([&] {
		uint32_t m = wt;
		unsigned seen = 0;
		while (!stop.load()) {
			if (progress.load() == seen) {
				std::this_thread::yield();
				continue;
			}
			seen = progress.load();
			if (dev.try_ioctl(VHOST_BLK_SET_WRITE_CACHE, &m))
				errors++;
			m ^= 1;
			flips++;
		}
	});

	unsigned next[queues] = {}, done[queues] = {};
	bool bad = false;
	while (!bad && (done[0] < per_queue || done[1] < per_queue)) {
		for (unsigned q = 0; q < queues; q++) {
			while (next[q] < per_queue && d->queue(q).num_free() >= 3) {
				size_t i = q * per_queue + next[q]++;
				std::span<const uint8_t> p(data.data() + i * page, page);
				d->submit(q, BlkDriver::write_spec(base + i * 8, p), false);
			}
			d->kick(q);
			if (done[q] == per_queue)
				continue;
			for (auto &c : d->poll(q, 1)) {
				bad |= c.status != VIRTIO_BLK_S_OK;
				done[q]++;
			}
			progress++;
		}
	}
	stop = true;
	flipper.join();
	ASSERT_FALSE(bad);
	ASSERT_EQ(errors.load(), 0u);
	ASSERT_GE(flips.load(), 2u);
	uint64_t fua = 0;
	for (unsigned q = 0; q < queues; q++) {
		auto st = d->stats(q);
		ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], uint64_t{ per_queue });
		ASSERT_EQ(st.inflight, 0u);
		ASSERT_EQ(d->pending(q), size_t{ 0 });
		fua += st.fua_writes;
	}
	ktap::diag("flips " + std::to_string(flips.load()) + ", FUA writes " +
		   std::to_string(fua) + " of " + std::to_string(queues * per_queue));
	ASSERT_BYTES_EQ(b.read_direct(base * 512, data.size()), data);
	// Nothing completes twice or late.
	for (unsigned q = 0; q < queues; q++)
		ASSERT_EQ(d->poll(q, 1, 50ms).size(), size_t{ 0 });
}
