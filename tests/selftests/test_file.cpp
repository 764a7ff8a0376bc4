// SPDX-License-Identifier: GPL-2.0
// Regular files as backends (issue 14): a raw image file opened with
// O_DIRECT on ext4 and on xfs (tests/vm/init mounts both on loop devices
// over tmpfs).  Every request type with the data checked on the file both
// with O_DIRECT and through the page cache, ENOSPC, the errors of
// SET_BACKEND, detach and re-attach, the owner killed with I/O in flight.
#include "common.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

using namespace vbt;

namespace {

struct Fs {
	const char *env;
};

#define FILE_FS ({ { "ext4", { env_ext4_dir } }, { "xfs", { env_xfs_dir } } })
// tmpfs completes direct I/O synchronously (no ki_complete) and has no
// ZERO_RANGE; the debug kernel's config has no ext4 or xfs.
#define FILE_FS_TMPFS                                                              \
	({ { "ext4", { env_ext4_dir } }, { "xfs", { env_xfs_dir } }, { "tmpfs", { env_tmpfs_dir } } })

constexpr uint64_t file_size = 16u << 20;

// The file's first `len` bytes prefilled with `seed`'s pattern, allocated.
std::vector<uint8_t> prefill(const Backend &b, size_t len, uint64_t seed)
{
	auto data = pattern(len, 0, seed);
	b.write_direct(0, data);
	return data;
}

void assert_file_has(const Backend &b, uint64_t offset, std::span<const uint8_t> expect)
{
	ASSERT_BYTES_EQ(b.read_direct(offset, expect.size()), expect);
	ASSERT_BYTES_EQ(b.read_cached(offset, expect.size()), expect);
}

std::span<const uint8_t> part(const std::vector<uint8_t> &v, size_t off, size_t len)
{
	return std::span<const uint8_t>(v).subspan(off, len);
}

} // namespace

TEST_VARIANTS(file_backend_write_read_verified_direct_and_cached, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	ASSERT_EQ(b.logical_block_size() % 512, 0u);
	auto before = prefill(b, 1 << 20, ktap::seed());
	auto d = attached_driver(b);
	const uint64_t sector = 64;
	auto data = pattern(256 << 10, sector, ktap::seed() + 1);
	ASSERT_EQ(d->write(0, sector, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, sector, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	assert_file_has(b, sector * 512, data);
	// Around the write, the prefill is intact.
	assert_file_has(b, 0, part(before, 0, sector * 512));
	size_t end = sector * 512 + data.size();
	assert_file_has(b, end, part(before, end, before.size() - end));
	// A read of what the prefill wrote, through the ring.
	std::vector<uint8_t> head(sector * 512);
	ASSERT_EQ(d->read(0, 0, head), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(head, part(before, 0, head.size()));
	auto st = d->stats(0);
	ASSERT_EQ(st.bounced, 0u);
}

TEST_VARIANTS(file_backend_misaligned_guest_buffers_are_bounced, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	prefill(b, 1 << 20, ktap::seed());
	auto d = attached_driver(b);
	vblk::IoOptions io;
	io.misalign = 1;
	auto data = pattern(64 << 10, 200, ktap::seed() + 2);
	ASSERT_EQ(d->write(0, 200, data, io), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(0, 200, back, io), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	assert_file_has(b, 200 * 512, data);
	ASSERT_EQ(d->stats(0).bounced, 2u);
}

TEST_VARIANTS(file_backend_flush_completes_ok, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	auto d = attached_driver(b);
	auto data = pattern(4096, 8, ktap::seed());
	ASSERT_EQ(d->write(0, 8, data), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->flush(0), VIRTIO_BLK_S_OK);
	assert_file_has(b, 8 * 512, data);
	auto st = d->stats(0);
	ASSERT_EQ(st.requests[VHOST_BLK_STAT_FLUSH], 1u);
	ASSERT_EQ(st.status_ok, 2u);
}

// A ring full of FLUSHes between writes, on two rings: the device's one
// fsync work item takes them in batches (file.c).  Every request completes
// once with OK, every write is on the file, and the flushes are counted.
TEST_VARIANTS(file_backend_rings_full_of_flushes_and_writes_complete_each_once, Fs, fs,
	      FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	prefill(b, 4 << 20, ktap::seed());
	auto d = attached_driver(b, 2, 256);
	vblk::RequestSpec flush;
	flush.type = VIRTIO_BLK_T_FLUSH;
	std::vector<std::vector<uint8_t>> written;
	// 16 * (3 + 4 * 2) = 176 of the 256 descriptors per ring.
	const unsigned writes = 16, per_write = 4; // flushes after each write
	for (unsigned q = 0; q < 2; q++) {
		for (unsigned i = 0; i < writes; i++) {
			uint64_t sector = (q * writes + i) * 64;
			written.push_back(pattern(4096, sector, ktap::seed() + 1));
			d->submit(q, vblk::BlkDriver::write_spec(sector, written.back()), false);
			for (unsigned f = 0; f < per_write; f++)
				d->submit(q, flush, false);
		}
	}
	d->kick(0);
	d->kick(1);
	const size_t each = writes * (1 + per_write);
	for (unsigned q = 0; q < 2; q++) {
		auto done = d->poll(q, each, 30s);
		ASSERT_EQ(done.size(), each);
		for (auto &c : done)
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
		ASSERT_EQ(d->pending(q), 0u);
		auto st = d->stats(q);
		ASSERT_EQ(st.requests[VHOST_BLK_STAT_FLUSH], uint64_t(writes * per_write));
		ASSERT_EQ(st.status_ok, uint64_t(each));
	}
	// Nothing more arrives.
	ASSERT_EQ(d->poll(0, 1, 200ms).size() + d->poll(1, 1, 0ms).size(), 0u);
	for (unsigned i = 0; i < written.size(); i++)
		assert_file_has(b, uint64_t(i) * 64 * 512, written[i]);
}

TEST_VARIANTS(file_backend_discard_punches_a_hole_secure_erase_is_unsupp, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	auto before = prefill(b, 1 << 20, ktap::seed());
	auto d = attached_driver(b);
	// 256 KiB at 256 KiB: whole filesystem blocks, so a real hole.
	vblk::Range r{ 512, 512 };
	ASSERT_EQ(d->secure_erase(0, { &r, 1 }), VIRTIO_BLK_S_UNSUPP);
	assert_file_has(b, 0, before);
	ASSERT_EQ(d->discard(0, { &r, 1 }), VIRTIO_BLK_S_OK);
	ASSERT_EQ(::lseek(b.cached_fd(), 0, SEEK_HOLE), 256 << 10);
	ASSERT_EQ(::lseek(b.cached_fd(), 256 << 10, SEEK_DATA), 512 << 10);
	std::vector<uint8_t> zeroes(256 << 10);
	assert_file_has(b, 256 << 10, zeroes);
	assert_file_has(b, 0, part(before, 0, 256 << 10));
	assert_file_has(b, 512 << 10, part(before, 512 << 10, 512 << 10));
	std::vector<uint8_t> back(zeroes.size());
	ASSERT_EQ(d->read(0, 512, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, zeroes);
}

TEST_VARIANTS(file_backend_write_zeroes_zeroes_and_unmap_punches, Fs, fs, FILE_FS)
{
	auto b = Backend::file(fs.env, file_size);
	auto before = prefill(b, 1 << 20, ktap::seed());
	auto d = attached_driver(b);
	std::vector<uint8_t> zeroes(128 << 10);
	// Without the unmap flag the range stays allocated: no hole.
	vblk::Range keep{ 256, 256 };
	ASSERT_EQ(d->write_zeroes(0, { &keep, 1 }), VIRTIO_BLK_S_OK);
	assert_file_has(b, 128 << 10, zeroes);
	ASSERT_EQ(::lseek(b.cached_fd(), 0, SEEK_HOLE), 1 << 20);
	// With it, a hole.
	vblk::Range unmap{ 1024, 256, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	ASSERT_EQ(d->write_zeroes(0, { &unmap, 1 }), VIRTIO_BLK_S_OK);
	ASSERT_EQ(::lseek(b.cached_fd(), 0, SEEK_HOLE), 512 << 10);
	assert_file_has(b, 512 << 10, zeroes);
	assert_file_has(b, 0, part(before, 0, 128 << 10));
	assert_file_has(b, 256 << 10, part(before, 256 << 10, 256 << 10));
	assert_file_has(b, 640 << 10, part(before, 640 << 10, before.size() - (640 << 10)));
	auto st = d->stats(0);
	ASSERT_EQ(st.bytes[VHOST_BLK_STAT_WRITE_ZEROES], 256u << 10);
}

TEST_VARIANTS(file_backend_capacity_is_i_size, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	auto d = attached_driver(b);
	auto data = pattern(4096, 0, ktap::seed());
	uint64_t last = file_size / 512 - 8;
	ASSERT_EQ(d->write(0, last, data), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->write(0, last + 8, data), VIRTIO_BLK_S_IOERR);
	std::vector<uint8_t> back(4096);
	ASSERT_EQ(d->read(0, last + 8, back), VIRTIO_BLK_S_IOERR);
	// The file never grows through the device.
	ASSERT_EQ(::lseek(b.cached_fd(), 0, SEEK_END), static_cast<off_t>(file_size));
	// A resize (Documentation/vhost-blk.rst): the next request sees it.
	ASSERT_EQ(::ftruncate(b.cached_fd(), file_size + (1 << 20)), 0);
	ASSERT_EQ(d->write(0, last + 8, data), VIRTIO_BLK_S_OK);
	assert_file_has(b, (last + 8) * 512, data);
}

TEST(file_without_o_direct_is_einval_char_device_is_enotblk)
{
	require_device();
	vblk::BlkDriver d(driver_options());
	auto b = Backend::file(env_tmpfs_dir, file_size, O_RDWR);
	ASSERT_ERRNO(d.attach(b.fd()), EINVAL);
	vblk::UniqueFd mem(::memfd_create("not-o-direct", MFD_CLOEXEC));
	ASSERT_TRUE(static_cast<bool>(mem));
	ASSERT_ERRNO(d.attach(mem.get()), EINVAL);
	auto null = vblk::UniqueFd::open("/dev/null", O_RDWR);
	ASSERT_ERRNO(d.attach(null.get()), ENOTBLK);
	ASSERT_EQ(d.stats(0).attached, 0u);
}

TEST_VARIANTS(file_backend_readonly_fd_needs_f_ro, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size, O_RDONLY | O_DIRECT);
	auto before = prefill(b, 64 << 10, ktap::seed());
	{
		vblk::BlkDriver d(driver_options());
		ASSERT_ERRNO(d.attach(b.fd()), EBADF);
	}
	auto o = driver_options();
	o.features |= vblk::bit(VIRTIO_BLK_F_RO);
	vblk::BlkDriver d(o);
	d.attach(b.fd());
	std::vector<uint8_t> back(4096);
	ASSERT_EQ(d.read(0, 8, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, part(before, 4096, 4096));
	ASSERT_EQ(d.write(0, 8, pattern(4096, 8, 1)), VIRTIO_BLK_S_IOERR);
	vblk::Range r{ 0, 8 };
	ASSERT_EQ(d.discard(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	assert_file_has(b, 0, before);
}

TEST_VARIANTS(file_backend_detach_reattach_and_other_backend_is_ebusy, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, file_size);
	auto other = Backend::file(fs.env, file_size);
	auto nullb = Backend::open(env_nullb);
	auto d = attached_driver(b, 2);
	auto data = pattern(8192, 16, ktap::seed());
	ASSERT_EQ(d->write(0, 16, data), VIRTIO_BLK_S_OK);
	ASSERT_ERRNO(d->attach(other.fd()), EBUSY);
	ASSERT_ERRNO(d->attach_ring(1, nullb.fd()), EBUSY);
	// The same file through another O_DIRECT fd is the same backend.
	auto again = vblk::UniqueFd::open("/proc/self/fd/" + std::to_string(b.cached_fd()),
					  O_RDWR | O_DIRECT);
	d->detach_ring(1);
	d->attach_ring(1, again.get());
	std::vector<uint8_t> back(data.size());
	ASSERT_EQ(d->read(1, 16, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	// Detached, the device takes a block device, then the file again.
	d->detach();
	d->attach(nullb.fd());
	ASSERT_EQ(d->write(0, 16, pattern(4096, 16, 5)), VIRTIO_BLK_S_OK);
	d->detach();
	d->attach(b.fd());
	ASSERT_EQ(d->read(0, 16, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	assert_file_has(b, 16 * 512, data);
}

TEST_VARIANTS(file_backend_enospc_is_ioerr_and_the_ring_goes_on, Fs, fs, FILE_FS)
{
	// A file far larger than the filesystem's free space, which a filler
	// file brings down to a few MiB (f_bfree: the tests run as root, who
	// may use ext4's reserved blocks).
	auto probe = Backend::file(fs.env, 0);
	struct statvfs sv {};
	ASSERT_EQ(::fstatvfs(probe.cached_fd(), &sv), 0);
	uint64_t free_bytes = sv.f_bfree * sv.f_frsize;
	ASSERT_GT(free_bytes, 16u << 20);
	auto filler = Backend::file(fs.env, 0);
	ASSERT_EQ(::fallocate(filler.cached_fd(), 0, 0, free_bytes - (8 << 20)), 0);
	auto b = Backend::file(fs.env, 64 << 20);
	auto d = attached_driver(b);
	auto data = pattern(1 << 20, 0, ktap::seed());
	std::vector<uint8_t> back(data.size());
	uint64_t sector = 0, written = 0;
	uint8_t st = VIRTIO_BLK_S_OK;
	for (; sector < (64u << 20) / 512; sector += 2048) {
		st = d->write(0, sector, data);
		if (st != VIRTIO_BLK_S_OK)
			break;
		written += data.size();
	}
	ktap::diag(std::to_string(written >> 20) + " MiB written before ENOSPC");
	ASSERT_EQ(st, VIRTIO_BLK_S_IOERR);
	ASSERT_GT(written, 0u);
	// Nothing else lost: what was written reads back, and overwriting
	// allocated blocks still works.
	ASSERT_EQ(d->read(0, 0, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	auto again = pattern(1 << 20, 0, ktap::seed() + 1);
	ASSERT_EQ(d->write(0, 0, again), VIRTIO_BLK_S_OK);
	assert_file_has(b, 0, again);
	auto stats = d->stats(0);
	ASSERT_EQ(stats.status_ioerr, 1u);
	ASSERT_EQ(stats.stopped, 0u);
}

TEST_VARIANTS(file_backend_owner_killed_mid_io_exits_and_file_is_usable, Fs, fs, FILE_FS_TMPFS)
{
	auto b = Backend::file(fs.env, 64 << 20);
	auto took = time_to_reap_killed_owner(
		[&](const std::function<void()> &ready) {
			auto d = attached_driver(b, 1, 128);
			auto data = pattern(512 << 10, 0, ktap::seed());
			// 3 descriptors each: 41 requests fill 123 of the 128.
			for (uint64_t i = 0; i < 40; i++) {
				auto spec = i % 2 ? vblk::BlkDriver::write_spec(i * 1024, data)
						  : vblk::BlkDriver::read_spec(i * 1024, 512 << 10);
				d->submit(0, spec);
			}
			vblk::RequestSpec flush;
			flush.type = VIRTIO_BLK_T_FLUSH;
			d->submit(0, flush);
			ready();
		},
		100ms);
	ASSERT_TRUE(took.has_value());
	ktap::diag("reaped " + std::to_string(took->count()) + " ms after SIGKILL");
	ASSERT_LE(took->count(), owner_exit_bound().count());
	assert_device_usable(b, 4096);
}
