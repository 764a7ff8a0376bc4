// SPDX-License-Identifier: GPL-2.0
// VHOST_BLK_SET_BACKEND: errors, read-only disks, failing disks, logical
// block size checks, per-ring detach and re-attach with I/O in flight.
#include "common.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>

using namespace vbt;

namespace {

uint8_t write_pattern(vblk::BlkDriver &d, uint64_t sector, size_t len, uint64_t seed)
{
	return d.write(0, sector, pattern(len, sector, seed));
}

} // namespace

// Regular files are backends when opened with O_DIRECT (test_file.cpp).
TEST(set_backend_char_device_or_pipe_is_enotblk)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	auto null = vblk::UniqueFd::open("/dev/null", O_RDWR);
	ASSERT_ERRNO(d.attach(null.get()), ENOTBLK);
	int p[2];
	ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
	vblk::UniqueFd rd(p[0]), wr(p[1]);
	ASSERT_ERRNO(d.attach(wr.get()), ENOTBLK);
}

TEST(set_backend_closed_fd_is_ebadf)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.attach(1000000), EBADF);
}

TEST(set_backend_different_disk_while_attached_is_ebusy)
{
	auto a = Backend::open(env_nullb);
	auto other = Backend::open(env_brd);
	auto d = attached_driver(a, 2);
	ASSERT_ERRNO(d->attach(other.fd()), EBUSY);
	ASSERT_ERRNO(d->attach_ring(1, other.fd()), EBUSY);
	// The first disk is still served.
	ASSERT_EQ(write_pattern(*d, 0, 4096, 1), VIRTIO_BLK_S_OK);
	// Once everything is detached, the other disk can be attached.
	d->detach();
	d->attach(other.fd());
	ASSERT_EQ(write_pattern(*d, 8, 4096, 2), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(other.read_direct(8 * 512, 4096), pattern(4096, 8, 2));
}

TEST(set_backend_same_disk_through_another_fd_is_accepted)
{
	auto a = Backend::open(env_nullb);
	auto again = Backend::open(env_nullb);
	auto d = attached_driver(a, 2);
	d->attach_ring(1, again.fd());
	ASSERT_EQ(write_pattern(*d, 0, 4096, 3), VIRTIO_BLK_S_OK);
}

TEST(set_backend_ring_index_out_of_range_is_enobufs)
{
	auto b = Backend::open(env_nullb);
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.device().set_backend(VHOST_BLK_BACKEND_VRING(4096), b.fd()), ENOBUFS);
	ASSERT_ERRNO(d.device().set_backend(VHOST_BLK_BACKEND_VRING(0x7fffffffu), -1), ENOBUFS);
}

TEST(set_backend_index_without_vring_flag_is_einval)
{
	auto b = Backend::open(env_nullb);
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.device().set_backend(3, b.fd()), EINVAL);
}

TEST(set_backend_on_ring_not_set_up_fails)
{
	auto b = Backend::open(env_nullb);
	vblk::BlkDriver d(driver_options(1));
	// Ring 1 exists (max_queues) but was never given addresses.
	ASSERT_ERRNO(d.device().set_backend(VHOST_BLK_BACKEND_VRING(1), b.fd()), EINVAL);
	// The whole-device form skips it and attaches ring 0.
	d.attach(b.fd());
	ASSERT_EQ(d.stats(0).attached, 1u);
	ASSERT_EQ(d.stats(1).attached, 0u);
}

TEST(rdonly_fd_without_f_ro_is_ebadf)
{
	auto b = Backend::open(env_nullb, O_RDONLY);
	vblk::BlkDriver d(driver_options());
	ASSERT_EQ(d.has_feature(VIRTIO_BLK_F_RO), false);
	ASSERT_ERRNO(d.attach(b.fd()), EBADF);
}

TEST(rdonly_fd_with_f_ro_reads_and_refuses_writes)
{
	auto b = Backend::open(env_nullb, O_RDONLY);
	auto data = pattern(4096, 500, ktap::seed());
	b.write_direct(500 * 512, data);
	auto o = driver_options();
	o.features |= vblk::bit(VIRTIO_BLK_F_RO);
	vblk::BlkDriver d(o);
	ASSERT_TRUE(d.has_feature(VIRTIO_BLK_F_RO));
	d.attach(b.fd());
	std::vector<uint8_t> back(4096);
	ASSERT_EQ(d.read(0, 500, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_EQ(write_pattern(d, 500, 4096, ktap::seed() + 1), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(500 * 512, 4096), data);
}

TEST(f_ro_on_writable_disk_refuses_every_write_kind)
{
	auto b = Backend::open(env_nullb);
	auto before = pattern(64 * 1024, 0, ktap::seed());
	b.write_direct(0, before);
	auto o = driver_options();
	o.features |= vblk::bit(VIRTIO_BLK_F_RO);
	vblk::BlkDriver d(o);
	d.attach(b.fd());
	vblk::Range r{ 0, 16 };
	ASSERT_EQ(write_pattern(d, 0, 4096, 9), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d.write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	// DISCARD: UNSUPP where the disk cannot discard at all, else IOERR.
	bool can_discard = b.queue_attr("discard_max_bytes").value_or(0) != 0;
	ASSERT_EQ(d.discard(0, { &r, 1 }), can_discard ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
	std::vector<uint8_t> back(4096);
	ASSERT_EQ(d.read(0, 0, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, std::span<const uint8_t>(before).first(4096));
}

TEST(readonly_disk_reads_ok_writes_ioerr)
{
	auto b = Backend::open(env_ro, O_RDONLY);
	auto o = driver_options();
	o.features |= vblk::bit(VIRTIO_BLK_F_RO);
	vblk::BlkDriver d(o);
	d.attach(b.fd());
	auto before = b.read_direct(0, 8192);
	std::vector<uint8_t> back(8192);
	ASSERT_EQ(d.read(0, 0, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, before);
	ASSERT_EQ(write_pattern(d, 0, 8192, ktap::seed()), VIRTIO_BLK_S_IOERR);
	vblk::Range r{ 0, 8 };
	ASSERT_EQ(d.write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, 8192), before);
}

TEST(readonly_disk_without_f_ro_is_rejected)
{
	auto b = Backend::open(env_ro, O_RDONLY);
	vblk::BlkDriver d(driver_options());
	// An O_RDONLY fd fails the write-access check first (EBADF); an
	// O_RDWR open of a read-only disk reaches EROFS (next test).
	ASSERT_ERRNO(d.attach(b.fd()), EBADF);
}

TEST(readonly_disk_opened_rdwr_without_f_ro_is_erofs)
{
	auto ro = Backend::open(env_ro, O_RDONLY);
	int fd = ::open(ro.path().c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("read-only disk cannot be opened for writing: " +
		     std::string(std::strerror(errno)));
	vblk::UniqueFd rw(fd);
	vblk::BlkDriver d(driver_options());
	ASSERT_ERRNO(d.attach(rw.get()), EROFS);
}

TEST(failing_disk_gives_ioerr_and_guest_continues)
{
	auto b = Backend::open(env_fail);
	// The dm device fails all or part of its range ("error" target, or
	// linear + error): find a failing and, if any, a working block.
	auto fails = [&](uint64_t sector) {
		try {
			b.read_direct(sector * 512, 4096);
			return false;
		} catch (const vblk::SysError &) {
			return true;
		}
	};
	std::optional<uint64_t> bad, good;
	for (uint64_t s : { uint64_t{ 0 }, (b.sectors() / 2) & ~uint64_t{ 7 }, b.sectors() - 8 }) {
		if (fails(s))
			bad = bad.value_or(s);
		else
			good = good.value_or(s);
	}
	if (!bad)
		SKIP(b.path() + " does not fail I/O");
	auto d = attached_driver(b);
	std::vector<uint8_t> buf(4096);
	ASSERT_EQ(d->read(0, *bad, buf), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(write_pattern(*d, *bad, 4096, 1), VIRTIO_BLK_S_IOERR);
	// The ring is fine: the next good request succeeds.
	std::array<char, VIRTIO_BLK_ID_BYTES> id;
	ASSERT_EQ(d->get_id(0, id), VIRTIO_BLK_S_OK);
	if (good)
		ASSERT_EQ(d->read(0, *good, buf), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(0).status_ioerr, 2u);
}

TEST(misaligned_sector_on_4k_disk_is_ioerr_disk_untouched)
{
	auto b = Backend::open(env_nullb_4k);
	ASSERT_EQ(b.logical_block_size(), 4096u);
	auto before = pattern(16384, 0, ktap::seed());
	b.write_direct(0, before);
	auto d = attached_driver(b);
	ASSERT_EQ(write_pattern(*d, 1, 4096, 7), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(write_pattern(*d, 4, 4096, 7), VIRTIO_BLK_S_IOERR);
	std::vector<uint8_t> buf(4096);
	ASSERT_EQ(d->read(0, 7, buf), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

struct Disk4kParam {
	const char *env;
	bool offloads_write_zeroes;
};

// zram offloads WRITE_ZEROES, so its variant proves the length check of a
// range; null_blk answers UNSUPP to any WRITE_ZEROES.
TEST_VARIANTS(length_not_multiple_of_4k_on_4k_disk_is_ioerr_disk_untouched, Disk4kParam, p,
	      ({ { "nullb_4k", { env_nullb_4k, false } }, { "zram", { env_zram, true } } }))
{
	auto b = Backend::open(p.env);
	ASSERT_EQ(b.logical_block_size(), 4096u);
	ASSERT_EQ(b.queue_attr("write_zeroes_max_bytes").value_or(0) != 0, p.offloads_write_zeroes);
	auto before = pattern(16384, 0, ktap::seed());
	b.write_direct(0, before);
	auto d = attached_driver(b);
	ASSERT_EQ(write_pattern(*d, 0, 512, 7), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(write_pattern(*d, 8, 4096 + 512, 7), VIRTIO_BLK_S_IOERR);
	vblk::Range r{ 8, 1 };
	ASSERT_EQ(d->write_zeroes(0, { &r, 1 }),
		  p.offloads_write_zeroes ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST_TIMEOUT(detach_ring_with_io_in_flight_loses_nothing, 120)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2, 256);
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	// 200 requests in flight on ring 0 (one indirect descriptor each),
	// kicked in groups, and the ring detached right after the last kick.
	constexpr unsigned n = 200;
	unsigned completed = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = 100000 + i * 8;
		d->submit(0,
			  vblk::BlkDriver::write_spec(sector, pattern(4096, sector, ktap::seed()),
						      { .indirect = true }),
			  i % 8 == 7);
	}
	d->kick(0);
	d->detach_ring(0);
	// Everything the ring took is in the used ring now: no waiting.
	auto st = d->stats(0);
	ASSERT_EQ(st.attached, 0u);
	ASSERT_EQ(st.inflight, 0u);
	unsigned base = d->get_vring_base(0);
	for (auto &c : d->poll(0, 0, 0ms)) {
		ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
		completed++;
	}
	ktap::diag("consumed before detach: " + std::to_string(base));
	ASSERT_EQ(base, completed);
	ASSERT_EQ(d->queue(0).used_idx(), static_cast<uint16_t>(base));
	// Nothing more completes while detached, even when kicked.
	d->queue(0).notify();
	ASSERT_TRUE(d->poll(0, 1, 200ms).empty());
	// Ring 1 keeps working meanwhile.
	ASSERT_EQ(d->write(1, 0, pattern(4096, 0, 1)), VIRTIO_BLK_S_OK);
	// Re-attach: the rest runs without another kick.
	d->reattach_ring(0);
	while (completed < n) {
		auto cs = d->poll(0);
		ASSERT_FALSE(cs.empty());
		for (auto &c : cs) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			completed++;
		}
	}
	ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], n);
	ASSERT_BYTES_EQ(b.read_direct(100000 * 512ULL, n * 4096), pattern(n * 4096, 100000, ktap::seed()));
}

TEST(requests_added_while_detached_run_after_reattach)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	ASSERT_EQ(write_pattern(*d, 0, 4096, 1), VIRTIO_BLK_S_OK);
	d->detach_ring(0);
	ASSERT_EQ(d->get_vring_base(0), 1u);
	auto t = d->submit(0, vblk::BlkDriver::write_spec(64, pattern(4096, 64, 2)));
	ASSERT_TRUE(d->poll(0, 1, 200ms).empty());
	d->reattach_ring(0);
	auto c = d->wait(0, t);
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(64 * 512, 4096), pattern(4096, 64, 2));
	ASSERT_EQ(d->get_vring_base(0), 2u);
}

TEST(detach_all_then_attach_again_continues)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	ASSERT_EQ(write_pattern(*d, 0, 4096, 1), VIRTIO_BLK_S_OK);
	d->detach();
	ASSERT_EQ(d->stats(0).attached, 0u);
	ASSERT_EQ(d->stats(1).attached, 0u);
	d->attach(b.fd());
	ASSERT_EQ(d->stats(1).attached, 1u);
	auto data = pattern(4096, 8, 3);
	ASSERT_EQ(d->write(1, 8, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(8 * 512, 4096), data);
}

TEST(detach_of_idle_ring_twice_is_harmless)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->detach_ring(0);
	d->detach_ring(0);
	d->reattach_ring(0);
	ASSERT_EQ(write_pattern(*d, 0, 4096, 1), VIRTIO_BLK_S_OK);
}
