// SPDX-License-Identifier: GPL-2.0
// Ownership, close and kill with I/O in flight, RESET_OWNER, worker
// ioctls, statistics.
#include "common.hpp"

#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace vbt;

namespace {

void submit_writes(vblk::BlkDriver &d, unsigned q, uint64_t first_sector, unsigned n)
{
	for (unsigned i = 0; i < n && d.queue(q).num_free() >= 3; i++) {
		uint64_t s = first_sector + i * 128;
		d.submit(q, vblk::BlkDriver::write_spec(s, pattern(65536, s, 1)), false);
	}
	d.kick(q);
}

} // namespace

TEST(non_owner_process_ioctls_are_eperm)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	int rc = in_child([&] {
		// Same fd, different mm: not the owner.
		vblk::VhostBlkDevice &dev = d->device();
		struct vhost_vring_file f = { VHOST_BLK_BACKEND_ALL_VRINGS, -1 };
		if (dev.try_ioctl(VHOST_BLK_SET_BACKEND, &f) != -EPERM)
			return 2;
		if (dev.try_ioctl(VHOST_GET_VRING_BASE, &f) != -EPERM)
			return 3;
		char serial[VIRTIO_BLK_ID_BYTES] = "intruder";
		int r = dev.try_ioctl(VHOST_BLK_SET_SERIAL, serial);
		if (r != -EPERM)
			return 4;
		return 0;
	});
	ASSERT_EQ(rc, 0);
	// And the owner's device still works, serial unchanged.
	std::array<char, VIRTIO_BLK_ID_BYTES> id{};
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	ASSERT_EQ(id[0], 0);
}

TEST(set_owner_twice_is_ebusy)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.device().set_owner(), EBUSY);
}

TEST(ioctls_before_set_owner_are_rejected)
{
	auto b = Backend::open(env_nullb);
	vblk::VhostBlkDevice dev(device_path());
	ASSERT_ERRNO(dev.set_backend(VHOST_BLK_BACKEND_ALL_VRINGS, b.fd()), EPERM);
}

TEST_TIMEOUT(close_with_io_in_flight_then_device_usable, 60)
{
	auto b = Backend::open(env_nullb);
	for (int round = 0; round < 5; round++) {
		auto d = attached_driver(b, 2, 128);
		submit_writes(*d, 0, 0, 40);
		submit_writes(*d, 1, 1 << 20, 40);
		// d goes out of scope: the fd closes with bios in flight.
	}
	assert_device_usable(b);
}

TEST_TIMEOUT(owner_killed_mid_io_then_device_usable, 60)
{
	auto b = Backend::open(env_nullb);
	for (int round = 0; round < 3; round++) {
		int pipefd[2];
		ASSERT_EQ(::pipe(pipefd), 0);
		std::fflush(nullptr);
		pid_t pid = ::fork();
		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			::close(pipefd[0]);
			auto d = attached_driver(b, 2, 256);
			for (;;) {
				submit_writes(*d, 0, 0, 64);
				submit_writes(*d, 1, 1 << 20, 64);
				if (pipefd[1] >= 0) {
					char c = 1;
					if (::write(pipefd[1], &c, 1) != 1)
						::_exit(3);
					::close(pipefd[1]);
					pipefd[1] = -1;
				}
				d->poll(0, 1, 1ms);
				d->poll(1, 1, 1ms);
			}
		}
		::close(pipefd[1]);
		char c;
		ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
		::close(pipefd[0]);
		::usleep(static_cast<useconds_t>(1000 * (round * 7 % 10)));
		::kill(pid, SIGKILL);
		int status = 0;
		ASSERT_EQ(::waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFSIGNALED(status));
	}
	assert_device_usable(b);
}

TEST(reset_owner_then_setup_again_works)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	ASSERT_EQ(d->write(0, 0, pattern(4096, 0, 1)), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], 1u);
	d->reset();
	// RESET_OWNER drops the backend and the counters.
	auto st = d->stats(0);
	ASSERT_EQ(st.attached, 0u);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], 0u);
	d->attach(b.fd());
	auto data = pattern(4096, 8, 2);
	ASSERT_EQ(d->write(1, 8, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(8 * 512, 4096), data);
}

TEST(reset_owner_with_io_in_flight_then_setup_again_works)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	submit_writes(*d, 0, 0, 40);
	d->reset();
	d->attach(b.fd());
	auto data = pattern(4096, 8, 2);
	ASSERT_EQ(d->write(0, 8, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(8 * 512, 4096), data);
}

TEST(new_workers_serve_their_rings_with_data_verified)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 4);
	auto &dev = d->device();
	unsigned w1 = dev.new_worker();
	unsigned w2 = dev.new_worker();
	ASSERT_NE(w1, w2);
	unsigned def = dev.get_vring_worker(0);
	// rings 0,2 -> w1; 1,3 -> w2
	for (unsigned q = 0; q < 4; q++)
		dev.attach_vring_worker(q, q % 2 ? w2 : w1);
	for (unsigned q = 0; q < 4; q++) {
		unsigned want = q % 2 ? w2 : w1;
		ASSERT_EQ(dev.get_vring_worker(q), want);
		ASSERT_EQ(d->stats(q).worker_id, want);
	}
	for (unsigned q = 0; q < 4; q++) {
		uint64_t s = 50000 + q * 64;
		auto data = pattern(16384, s, ktap::seed());
		ASSERT_EQ(d->write(q, s, data), VIRTIO_BLK_S_OK);
		std::vector<uint8_t> back(data.size());
		ASSERT_EQ(d->read((q + 1) % 4, s, back), VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(back, data);
		ASSERT_BYTES_EQ(b.read_direct(s * 512, data.size()), data);
	}
	// Back to the default worker for ring 0 and the data path still works.
	dev.attach_vring_worker(0, def);
	ASSERT_EQ(dev.get_vring_worker(0), def);
	ASSERT_EQ(d->write(0, 0, pattern(4096, 0, 5)), VIRTIO_BLK_S_OK);
}

TEST_TIMEOUT(worker_switch_with_io_in_flight_completes_everything_once, 90)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 1, 256);
	auto &dev = d->device();
	unsigned w[2] = { dev.get_vring_worker(0), dev.new_worker() };
	unsigned done = 0, submitted = 0;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 32; i++, submitted++) {
			uint64_t s = 200000 + (submitted % 512) * 8;
			d->submit(0, vblk::BlkDriver::write_spec(s, pattern(4096, s, 9)));
		}
		dev.attach_vring_worker(0, w[round % 2]);
		for (auto &c : d->poll(0, 0, 0ms)) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			done++;
		}
	}
	while (done < submitted) {
		auto cs = d->poll(0);
		ASSERT_FALSE(cs.empty());
		for (auto &c : cs) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			done++;
		}
	}
	ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], submitted);
}

TEST(free_worker_still_attached_is_ebusy)
{
	require_device();
	vblk::BlkDriver d(driver_options(2));
	auto &dev = d.device();
	unsigned w = dev.new_worker();
	dev.attach_vring_worker(1, w);
	ASSERT_ERRNO(dev.free_worker(w), EBUSY);
	dev.attach_vring_worker(1, dev.get_vring_worker(0));
	dev.free_worker(w);
	ASSERT_ERRNO(dev.free_worker(w), ENODEV);
}

TEST(unknown_worker_is_enodev)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	auto &dev = d.device();
	ASSERT_ERRNO(dev.free_worker(123456), ENODEV);
	ASSERT_ERRNO(dev.attach_vring_worker(0, 123456), ENODEV);
}

TEST(stats_count_exactly_what_was_submitted)
{
	// zram: a 4 KiB disk that serves WRITE_ZEROES (every request below is
	// 4 KiB aligned).
	auto b = Backend::open(env_zram);
	auto d = attached_driver(b, 2);
	auto s0 = d->stats(0);
	ASSERT_EQ(s0.index, 0u);
	ASSERT_EQ(s0.attached, 1u);
	ASSERT_EQ(s0.inflight, 0u);
	for (unsigned i = 0; i < 7; i++)
		ASSERT_EQ(d->write(0, i * 8, pattern(4096, i * 8, 1)), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> buf(8192);
	for (unsigned i = 0; i < 5; i++)
		ASSERT_EQ(d->read(0, 0, buf), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->flush(0), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->flush(0), VIRTIO_BLK_S_OK);
	std::array<char, VIRTIO_BLK_ID_BYTES> id;
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	vblk::Range r{ 0, 16 };
	ASSERT_EQ(d->write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_OK);
	vblk::RequestSpec unknown;
	unknown.type = 0x77;
	ASSERT_EQ(d->execute(0, unknown).status, VIRTIO_BLK_S_UNSUPP);
	ASSERT_EQ(d->read(0, b.sectors(), buf), VIRTIO_BLK_S_IOERR);

	auto st = d->stats(0);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], 7u);
	ASSERT_EQ(st.bytes[VHOST_BLK_STAT_OUT], 7u * 4096);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_IN], 6u); // 5 OK + 1 past capacity
	ASSERT_EQ(st.bytes[VHOST_BLK_STAT_IN], 5u * 8192);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_FLUSH], 2u);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_GET_ID], 1u);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_WRITE_ZEROES], 1u);
	ASSERT_EQ(st.bytes[VHOST_BLK_STAT_WRITE_ZEROES], 16u * 512);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OTHER], 1u);
	ASSERT_EQ(st.status_ok, 16u);
	ASSERT_EQ(st.status_unsupp, 1u);
	ASSERT_EQ(st.status_ioerr, 1u);
	ASSERT_EQ(st.inflight, 0u);
	ASSERT_GE(st.batches, 1u);
	ASSERT_LE(st.batches, 18u);
	// Ring 1 saw nothing.
	auto st1 = d->stats(1);
	for (unsigned t = 0; t < VHOST_BLK_STAT_NR_TYPES; t++)
		ASSERT_EQ(st1.requests[t], 0u);
}

TEST(stats_count_malformed_chains)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 4096);
	vblk::Segment in_wrong_dir[] = { { r.hdr(), 16, false },
					 { r.data(), 4096, false },
					 { r.status(), 1, true } };
	d->wait(0, d->submit_segments(0, in_wrong_dir));
	vblk::Segment short_hdr[] = { { r.hdr(), 4, false }, { r.status(), 1, true } };
	d->wait(0, d->submit_segments(0, short_hdr));
	auto st = d->stats(0);
	ASSERT_EQ(st.malformed, 2u);
	ASSERT_EQ(st.status_ioerr, 2u);
}

TEST(stats_survive_detach)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	ASSERT_EQ(d->write(0, 0, pattern(4096, 0, 1)), VIRTIO_BLK_S_OK);
	d->detach_ring(0);
	auto st = d->stats(0);
	ASSERT_EQ(st.attached, 0u);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_OUT], 1u);
}

TEST(stats_of_ring_out_of_range_is_enobufs)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.device().get_vring_stats(100000), ENOBUFS);
}

TEST(features_offered_are_the_documented_set)
{
	require_device();
	vblk::VhostBlkDevice dev(device_path());
	dev.set_owner();
	uint64_t f = dev.get_features();
	// Documentation/vhost-blk.rst, "Features".  SIZE_MAX is offered but not
	// in default_features: tests put more than size_max in a descriptor.
	uint64_t want = vblk::default_features | vblk::bit(vblk::f_log_all) |
			vblk::bit(VIRTIO_BLK_F_RO) | vblk::bit(VIRTIO_BLK_F_SIZE_MAX) |
			vblk::bit(VIRTIO_BLK_F_CONFIG_WCE);
	ASSERT_EQ(f, want);
	ASSERT_ERRNO(dev.set_features(f | vblk::bit(VIRTIO_BLK_F_GEOMETRY)), EOPNOTSUPP);
}

// ---- Owner death: release reports what the rings took ----

namespace {

constexpr unsigned owner_death_writes = 40; // of 4 KiB, 3 descriptors each: fits 128
constexpr uint64_t owner_death_sector = 2048;

// The dead owner's ring as the parent sees it through the guest memory
// they share (the child's memfd): what a VMM reconnecting to a new backend
// reads.
class SharedRing {
public:
	SharedRing(OwnerProcess &owner)
	{
		auto word = [&] {
			auto v = owner.next(30000ms);
			if (!v)
				throw std::runtime_error("owner child failed before it was ready");
			return *v;
		};
		int memfd = static_cast<int>(word());
		base_ = word();
		base_ |= uint64_t{ word() } << 32;
		desc_ = word();
		used_ = word();
		num_ = static_cast<uint16_t>(word());
		call_ = owner.take_fd(static_cast<int>(word()));
		auto fd = owner.take_fd(memfd);
		struct stat st;
		vblk::check(::fstat(fd.get(), &st), "fstat memfd");
		map_ = vblk::Mmap::map(static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED,
				       fd.get());
	}

	// In the child: what the constructor above reads.
	static void report(vblk::BlkDriver &d, const OwnerProcess::Report &report)
	{
		uint64_t base = d.memory().base();
		auto a = d.queue(0).addresses();
		report(static_cast<uint32_t>(d.memory().fd()));
		report(static_cast<uint32_t>(base));
		report(static_cast<uint32_t>(base >> 32));
		report(static_cast<uint32_t>(a.desc - base));
		report(static_cast<uint32_t>(a.used - base));
		report(d.queue(0).size());
		report(static_cast<uint32_t>(d.queue(0).call_fd().fd()));
	}

	uint16_t used_idx() const
	{
		return __atomic_load_n(reinterpret_cast<const uint16_t *>(map_.bytes() + used_ + 2),
				       __ATOMIC_ACQUIRE);
	}
	vblk::VringUsedElem used(uint16_t i) const
	{
		vblk::VringUsedElem e;
		std::memcpy(&e, map_.bytes() + used_ + 4 + (i % num_) * sizeof(e), sizeof(e));
		return e;
	}
	uint16_t num() const { return num_; }
	// The status byte of the chain at `head`: its last descriptor's last byte.
	uint8_t status(uint32_t head) const
	{
		const auto *table = reinterpret_cast<const vblk::VringDesc *>(map_.bytes() + desc_);
		const vblk::VringDesc *d = &table[head % num_];
		for (unsigned n = 0; (d->flags & vblk::desc_f_next) && n < num_; n++)
			d = &table[d->next % num_];
		return map_.bytes()[d->addr + d->len - 1 - base_];
	}
	// Whether the call eventfd was signalled since the child last read it.
	bool signalled() const
	{
		struct pollfd p = { .fd = call_.get(), .events = POLLIN, .revents = 0 };
		return ::poll(&p, 1, 0) == 1;
	}
	// Every used entry once: heads unique and in range, status OK.
	void assert_used_once(unsigned n) const
	{
		ASSERT_EQ(used_idx(), n);
		std::vector<bool> seen(num_);
		for (uint16_t i = 0; i < n; i++) {
			auto e = used(i);
			ASSERT_LT(e.id, num_);
			ASSERT_FALSE(seen[e.id]);
			seen[e.id] = true;
			ASSERT_EQ(status(e.id), VIRTIO_BLK_S_OK);
		}
	}

private:
	vblk::Mmap map_;
	vblk::UniqueFd call_;
	uint64_t base_ = 0;
	uint32_t desc_ = 0, used_ = 0;
	uint16_t num_ = 0;
};

// In the owner child: queues the writes and waits until the device took
// them all (in flight, or completed if the backend was quick).
std::unique_ptr<vblk::BlkDriver> owner_death_queue_writes(const Backend &b, uint64_t seed)
{
	auto d = attached_driver(b, 1, 128);
	for (unsigned i = 0; i < owner_death_writes; i++) {
		uint64_t s = owner_death_sector + i * 8;
		d->submit(0, vblk::BlkDriver::write_spec(s, pattern(4096, s, seed)), false);
	}
	d->kick(0);
	for (int ms = 0; ms < 30000; ms++) {
		auto st = d->stats(0);
		if (st.inflight + st.requests[VHOST_BLK_STAT_OUT] == owner_death_writes)
			return d;
		std::this_thread::sleep_for(1ms);
	}
	throw std::runtime_error("the device did not take the writes within 30 s");
}

std::vector<uint8_t> owner_death_prefill(const Backend &b, uint64_t seed)
{
	auto old = pattern(owner_death_writes * 4096, owner_death_sector, seed ^ 0xdead);
	b.write_direct(owner_death_sector * 512, old);
	return pattern(owner_death_writes * 4096, owner_death_sector, seed);
}

} // namespace

TEST_TIMEOUT(owner_death_reports_every_request_in_flight_exactly_once, 120)
{
	// The owner SIGKILLed with writes in flight on a slow disk: release
	// writes their status bytes and used entries through the owner's
	// memory (still mapped, the core holds the mm) and signals the call
	// eventfd, so a VMM reconnecting to a new owner (base = used->idx)
	// loses and repeats nothing.
	auto b = Backend::open(env_delay);
	uint64_t seed = ktap::seed();
	auto expect = owner_death_prefill(b, seed);
	OwnerProcess owner([&](const OwnerProcess::Report &report) {
		auto d = owner_death_queue_writes(b, seed);
		SharedRing::report(*d, report);
	});
	SharedRing ring(owner);
	uint16_t before = ring.used_idx();
	auto took = owner.kill(30000ms);
	ASSERT_TRUE(took.has_value());
	ktap::diag(std::to_string(owner_death_writes - before) + " of " +
		   std::to_string(owner_death_writes) + " writes in flight at SIGKILL, reaped after " +
		   std::to_string(took->count()) + " ms");
	// dm-delay holds each write 300 ms; the child reported once all were taken.
	ASSERT_LT(before, owner_death_writes);
	ring.assert_used_once(owner_death_writes);
	ASSERT_TRUE(ring.signalled());
	ASSERT_BYTES_EQ(b.read_direct(owner_death_sector * 512, expect.size()), expect);
}

TEST_TIMEOUT(killed_owner_with_nothing_in_flight_leaves_the_used_ring_as_it_was, 120)
{
	auto b = Backend::open(env_delay);
	uint64_t seed = ktap::seed() + 1;
	auto expect = owner_death_prefill(b, seed);
	OwnerProcess owner([&](const OwnerProcess::Report &report) {
		auto d = owner_death_queue_writes(b, seed);
		size_t done = 0;
		while (done < owner_death_writes) {
			auto got = d->poll(0, 1, 30000ms);
			if (got.empty())
				throw std::runtime_error("writes did not complete");
			done += got.size();
		}
		SharedRing::report(*d, report);
	});
	SharedRing ring(owner);
	ring.assert_used_once(owner_death_writes);
	std::vector<vblk::VringUsedElem> before;
	for (uint16_t i = 0; i < ring.num(); i++)
		before.push_back(ring.used(i));
	ASSERT_TRUE(owner.kill(30000ms).has_value());
	ring.assert_used_once(owner_death_writes);
	for (uint16_t i = 0; i < ring.num(); i++) {
		ASSERT_EQ(ring.used(i).id, before[i].id);
		ASSERT_EQ(ring.used(i).len, before[i].len);
	}
	ASSERT_BYTES_EQ(b.read_direct(owner_death_sector * 512, expect.size()), expect);
	assert_device_usable(b);
}
