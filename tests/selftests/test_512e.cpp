// SPDX-License-Identifier: GPL-2.0
// 512e (VHOST_BLK_SET_BLOCK_SIZE below the backend's block, kernel/rmw.c):
// a guest with 512-byte sectors on a disk or file with 4 KiB blocks.  Every
// byte checked against a model on a region prefilled with other data;
// concurrent writes into one backend block, from two rings, all land;
// WRITE_ZEROES and DISCARD leave the rest of each block alone; the ioctl's
// errors; release with read-modify-writes queued.
#include "common.hpp"

#include <cstring>

using namespace vbt;
using vblk::BlkDriver;

namespace {

constexpr uint32_t blk4k = 4096;

// A backend with 4 KiB logical blocks: a block device or a regular file.
struct Disk4k {
	const char *env;
	bool file;

	Backend open() const
	{
		auto b = file ? Backend::file(env, 32 << 20) : Backend::open(env);
		if (b.logical_block_size() != blk4k)
			throw std::runtime_error(std::string(env) + ": logical block size " +
						 std::to_string(b.logical_block_size()) +
						 ", want 4096");
		return b;
	}
};

#define DISKS_4K                                                                          \
	({ { "nullb_4k", { env_nullb_4k, false } },                                      \
	   { "file_ext4_4k", { env_ext4_4k_dir, true } } })

// A driver whose guest has `lbs`-byte blocks, every ring attached to b.
std::unique_ptr<BlkDriver> driver_lbs(const Backend &b, uint32_t lbs, unsigned queues = 1,
				      uint16_t queue_size = 128)
{
	auto d = std::make_unique<BlkDriver>(driver_options(queues, queue_size));
	d->device().set_block_size(lbs);
	d->attach(b.fd());
	return d;
}

bool partial(uint64_t off, size_t len)
{
	return off % blk4k || len % blk4k;
}

// Collects n completions from ring q, each with status OK.
void reap_ok(BlkDriver &d, unsigned q, size_t n)
{
	size_t got = 0;
	while (got < n) {
		auto cs = d.poll(q, 1, 20000ms);
		ASSERT_FALSE(cs.empty());
		for (auto &c : cs)
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
		got += cs.size();
	}
	ASSERT_EQ(got, n);
}

} // namespace

TEST(rmw_512e_block_size_ioctl_einval_ebusy_eperm_and_reset)
{
	auto b = Backend::open(env_nullb_4k);
	BlkDriver d(driver_options());
	ASSERT_EQ(d.device().get_block_size(), 0u);
	for (uint32_t bad : { 1u, 256u, 768u, 8192u, 0xffffffffu })
		ASSERT_ERRNO(d.device().set_block_size(bad), EINVAL);
	for (uint32_t good : { 4096u, 1024u, 0u, 512u }) {
		d.device().set_block_size(good);
		ASSERT_EQ(d.device().get_block_size(), good);
	}
	ASSERT_EQ(d.device().try_ioctl(VHOST_BLK_SET_BLOCK_SIZE, nullptr), -EFAULT);
	ASSERT_EQ(d.device().try_ioctl(VHOST_BLK_GET_BLOCK_SIZE, nullptr), -EFAULT);
	d.attach(b.fd());
	// Fixed while a ring has the backend.
	ASSERT_ERRNO(d.device().set_block_size(0), EBUSY);
	ASSERT_EQ(d.device().get_block_size(), 512u);
	int rc = in_child([&] {
		uint32_t v = 0;
		if (d.device().try_ioctl(VHOST_BLK_SET_BLOCK_SIZE, &v) != -EPERM)
			return 2;
		if (d.device().try_ioctl(VHOST_BLK_GET_BLOCK_SIZE, &v) != -EPERM)
			return 3;
		return 0;
	});
	ASSERT_EQ(rc, 0);
	// A 512-byte write is served (read-modify-write) ...
	auto data = pattern(512, 8 * 3 + 1, ktap::seed());
	ASSERT_EQ(d.write(0, 8 * 3 + 1, data), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d.stats(0).rmw, 1u);
	// ... until RESET_OWNER restores the backend's block: then it is IOERR.
	d.reset();
	ASSERT_EQ(d.device().get_block_size(), 0u);
	d.attach(b.fd());
	ASSERT_EQ(d.write(0, 8 * 3 + 1, data), VIRTIO_BLK_S_IOERR);
	// Detached, it may change again.
	d.detach();
	d.device().set_block_size(512);
	d.attach(b.fd());
	ASSERT_EQ(d.write(0, 8 * 3 + 2, data), VIRTIO_BLK_S_OK);
	auto blk = b.read_direct(8 * 3 * 512, blk4k);
	ASSERT_BYTES_EQ(std::span(blk).subspan(1024, 512), data);
	// Before SET_OWNER.
	vblk::VhostBlkDevice fresh(device_path());
	uint32_t v = 512;
	ASSERT_EQ(fresh.try_ioctl(VHOST_BLK_SET_BLOCK_SIZE, &v), -EPERM);
}

// A guest block above the backend's is only a stricter alignment check.
TEST(rmw_512e_guest_block_above_the_backend_only_checks_alignment)
{
	auto b = Backend::open(env_nullb);
	ASSERT_EQ(b.logical_block_size(), 512u);
	auto before = pattern(8 * blk4k, 0, ktap::seed() + 1);
	b.write_direct(0, before);
	auto d = driver_lbs(b, blk4k);
	auto data = pattern(blk4k, 8, ktap::seed());
	ASSERT_EQ(d->write(0, 1, std::span(data).first(512)), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->write(0, 8, std::span(data).first(512)), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->write(0, 9, data), VIRTIO_BLK_S_IOERR);
	vblk::Range r{ 8, 1 };
	ASSERT_EQ(d->discard(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
	ASSERT_EQ(d->write(0, 8, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(blk4k);
	ASSERT_EQ(d->read(0, 8, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_EQ(d->stats(0).rmw, 0u);
}

TEST_VARIANTS_TIMEOUT(rmw_512e_partial_block_reads_and_writes_match_a_model, Disk4k, disk, 120,
		      DISKS_4K)
{
	auto b = disk.open();
	const uint64_t base = 1 << 20;
	const size_t region = 256 << 10;
	auto model = pattern(region, base / 512, ktap::seed() + 1);
	b.write_direct(base, model);
	auto d = driver_lbs(b, 512);
	ASSERT_EQ(d->device().get_block_size(), 512u);

	struct Io {
		uint64_t off;
		size_t len;
		uint32_t misalign;
	};
	const Io ios[] = {
		{ 512, 512, 0 },		  // inside one block
		{ 4096 + 3584, 512, 0 },	  // a block's last sector
		{ 8192, 512, 0 },		  // a block's first sector
		{ 12288 + 1024, 4096, 0 },	  // across two blocks
		{ 20480 + 512, 3 * 4096 + 1024, 0 }, // partial, whole, partial
		{ 40960, 8192, 0 },		  // whole blocks
		{ 57344 + 512, 7 * 512, 0 },	  // to a block's end
		{ 65536, 65536 + 512, 0 },	  // whole blocks, partial tail
		{ 139264 + 1536, 2048, 4 },	  // guest buffer off the alignment too
		{ 200704 + 3072, 40960 + 1024, 0 },
	};
	uint64_t partials = 0;
	for (size_t i = 0; i < std::size(ios); i++) {
		const auto &io = ios[i];
		auto data = pattern(io.len, (base + io.off) / 512, ktap::seed() + 10 + i);
		vblk::IoOptions opt;
		opt.misalign = io.misalign;
		ASSERT_EQ(d->write(0, (base + io.off) / 512, data, opt), VIRTIO_BLK_S_OK);
		std::memcpy(model.data() + io.off, data.data(), io.len);
		partials += partial(io.off, io.len);
	}
	ASSERT_BYTES_EQ(b.read_direct(base, region), model);
	ASSERT_EQ(d->stats(0).rmw, partials);

	// Reads through the ring, at the same places and a few others.
	for (size_t i = 0; i < std::size(ios) + 3; i++) {
		uint64_t off = i < std::size(ios) ? ios[i].off : 512 * (7 + 13 * i);
		size_t len = i < std::size(ios) ? ios[i].len : 512 * (1 + 9 * i);
		std::vector<uint8_t> back(len);
		ASSERT_EQ(d->read(0, (base + off) / 512, back), VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(back, std::span<const uint8_t>(model).subspan(off, len));
		partials += partial(off, len);
	}
	auto st = d->stats(0);
	ASSERT_EQ(st.rmw, partials);
	ASSERT_EQ(st.status_ok, 2 * std::size(ios) + 3);
	if (disk.file)
		ASSERT_BYTES_EQ(b.read_cached(base, region), model);
}

// Eight 512-byte writes into each of 16 blocks, all in flight together on
// two rings: each read-modify-write waits for the one before it on the
// same block, so none writes back a block another has changed meanwhile.
TEST_VARIANTS_TIMEOUT(rmw_512e_concurrent_512b_writes_into_one_block_all_land, Disk4k, disk, 180,
		      DISKS_4K)
{
	auto b = disk.open();
	constexpr unsigned blocks = 16, per_block = blk4k / 512;
	constexpr size_t region = blocks * blk4k;
	// Three descriptors a request, 64 requests a ring.
	auto d = driver_lbs(b, 512, 2, 256);
	for (unsigned round = 0; round < 6; round++) {
		const uint64_t base = (2 << 20) + round * region;
		b.write_direct(base, pattern(region, base / 512, ktap::seed() + 100 + round));
		auto data = pattern(region, base / 512, ktap::seed() + round);
		unsigned n[2] = {};
		// Sector order shuffled per block, rings alternating.
		for (unsigned j = 0; j < blocks; j++)
			for (unsigned k = 0; k < per_block; k++) {
				unsigned s = (k * 3 + j + round) % per_block;
				unsigned q = (k + j) % 2;
				uint64_t off = j * blk4k + s * 512;
				d->submit(q, BlkDriver::write_spec((base + off) / 512,
								   std::span(data).subspan(off, 512)),
					  false);
				n[q]++;
			}
		d->kick(0);
		d->kick(1);
		reap_ok(*d, 0, n[0]);
		reap_ok(*d, 1, n[1]);
		ASSERT_BYTES_EQ(b.read_direct(base, region), data);
	}
	ASSERT_EQ(d->stats(0).rmw + d->stats(1).rmw, 6u * blocks * per_block);
}

// A whole-block write in flight with a 512-byte write into the same block:
// whichever runs last, the whole-block write's other seven sectors stay.
TEST_VARIANTS_TIMEOUT(rmw_512e_whole_block_write_racing_a_read_modify_write_is_never_undone,
		      Disk4k, disk, 120, DISKS_4K)
{
	auto b = disk.open();
	auto d = driver_lbs(b, 512, 2, 64);
	unsigned whole_last = 0, sector_last = 0;
	// Vary who is submitted first, on which ring, and which ring is
	// kicked first; every eighth round both go on one ring.
	for (unsigned r = 0; r < 48; r++) {
		const uint64_t pos = (4 << 20) + r * blk4k;
		const unsigned s = r % 8;
		b.write_direct(pos, pattern(blk4k, pos / 512, ktap::seed() + 1000 + r));
		auto whole = pattern(blk4k, pos / 512, ktap::seed() + r);
		auto one = pattern(512, pos / 512 + s, ktap::seed() + 500 + r);
		unsigned qa = r % 2, qb = r % 8 == 7 ? qa : 1 - qa;
		if (r % 4 < 2) {
			d->submit(qa, BlkDriver::write_spec(pos / 512 + s, one), false);
			d->submit(qb, BlkDriver::write_spec(pos / 512, whole), false);
		} else {
			d->submit(qb, BlkDriver::write_spec(pos / 512, whole), false);
			d->submit(qa, BlkDriver::write_spec(pos / 512 + s, one), false);
		}
		d->kick(r % 3 ? qa : qb);
		d->kick(r % 3 ? qb : qa);
		if (qa == qb) {
			reap_ok(*d, qa, 2);
		} else {
			reap_ok(*d, qa, 1);
			reap_ok(*d, qb, 1);
		}
		auto got = b.read_direct(pos, blk4k);
		auto with_one = whole;
		std::memcpy(with_one.data() + s * 512, one.data(), 512);
		if (first_mismatch(got, whole) == -1)
			whole_last++;
		else if (first_mismatch(got, with_one) == -1)
			sector_last++;
		else
			ktap::fail("block " + std::to_string(r) + " holds neither order (torn at " +
					   std::to_string(first_mismatch(got, with_one)) + ")",
				   __FILE__, __LINE__);
	}
	ktap::diag("whole block last " + std::to_string(whole_last) + ", sector last " +
		   std::to_string(sector_last));
}

// Writes 200 ms late, reads at once: a 512-byte write taken while a
// whole-block write to its block is at the backend must wait for it.
// Without that wait its read-modify-write reads the old block at once and
// writes it back after the whole-block write landed, undoing seven of its
// sectors.
TEST_TIMEOUT(rmw_512e_read_modify_write_waits_for_the_slow_write_it_overlaps, 120)
{
	auto b = Backend::open(env_delay_4k);
	ASSERT_EQ(b.logical_block_size(), blk4k);
	auto d = driver_lbs(b, 512, 2, 64);
	for (unsigned r = 0; r < 6; r++) {
		const uint64_t pos = (1 << 20) + r * blk4k;
		const unsigned s = (r * 5 + 3) % 8;
		b.write_direct(pos, pattern(blk4k, pos / 512, ktap::seed() + 1000 + r));
		auto whole = pattern(blk4k, pos / 512, ktap::seed() + r);
		auto one = pattern(512, pos / 512 + s, ktap::seed() + 500 + r);
		d->submit(0, BlkDriver::write_spec(pos / 512, whole));
		for (int i = 0; i < 2000 && d->stats(0).inflight != 1; i++)
			::usleep(500);
		ASSERT_EQ(d->stats(0).inflight, 1u);
		d->submit(1, BlkDriver::write_spec(pos / 512 + s, one));
		reap_ok(*d, 0, 1);
		reap_ok(*d, 1, 1);
		std::memcpy(whole.data() + s * 512, one.data(), 512);
		ASSERT_BYTES_EQ(b.read_direct(pos, blk4k), whole);
	}
	ASSERT_EQ(d->stats(1).rmw, 6u);
}

// zram: 4 KiB blocks, offloads WRITE_ZEROES and DISCARD.  Zeroes land on
// exactly the guest's sectors; a discard touches only whole blocks inside
// its range, never the other sectors of a block it covers in part.
TEST(rmw_512e_write_zeroes_and_discard_leave_the_rest_of_each_block)
{
	auto b = Backend::open(env_zram);
	ASSERT_EQ(b.logical_block_size(), blk4k);
	if (!b.queue_attr("write_zeroes_max_bytes").value_or(0))
		SKIP("zram does not offload WRITE_ZEROES here");
	const uint64_t base = 1 << 20, s0 = base / 512;
	const size_t region = 16 * blk4k;
	auto model = pattern(region, s0, ktap::seed());
	b.write_direct(base, model);
	auto d = driver_lbs(b, 512);
	auto zero = [&](uint64_t sector, uint32_t n) {
		std::memset(model.data() + (sector - s0) * 512, 0, n * 512);
	};

	// Inside one block; partial + whole + partial; whole blocks only.
	const vblk::Range z1[] = { { s0 + 1, 3 }, { s0 + 8 + 5, 3 + 8 + 2 } };
	ASSERT_EQ(d->write_zeroes(0, z1), VIRTIO_BLK_S_OK);
	for (auto &r : z1)
		zero(r.sector, r.num_sectors);
	const vblk::Range z2[] = { { s0 + 32, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
				   { s0 + 48 + 7, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } };
	ASSERT_EQ(d->write_zeroes(0, z2), VIRTIO_BLK_S_OK);
	for (auto &r : z2)
		zero(r.sector, r.num_sectors);
	ASSERT_BYTES_EQ(b.read_direct(base, region), model);
	ASSERT_EQ(d->stats(0).rmw, 2u);

	// DISCARD of sectors 19..105: whole blocks 3..12 may go, the rest of
	// blocks 2 and 13 must stay.
	const vblk::Range dr{ s0 + 8 * 2 + 3, 8 * 10 + 7 };
	ASSERT_EQ(d->discard(0, { &dr, 1 }), VIRTIO_BLK_S_OK);
	auto got = b.read_direct(base, region);
	const size_t keep_to = 3 * blk4k, keep_from = 13 * blk4k;
	ASSERT_BYTES_EQ(std::span(got).first(keep_to), std::span(model).first(keep_to));
	ASSERT_BYTES_EQ(std::span(got).subspan(keep_from), std::span(model).subspan(keep_from));
	ASSERT_EQ(d->stats(0).rmw, 2u);
	std::vector<uint8_t> back(region);
	ASSERT_EQ(d->read(0, s0, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, got);
}

// SECURE_ERASE cannot be emulated on part of a backend block.
TEST(rmw_512e_partial_block_secure_erase_is_ioerr_disk_untouched)
{
	auto b = Backend::open(env_nullb_4k);
	auto before = pattern(4 * blk4k, 0, ktap::seed());
	b.write_direct(0, before);
	auto d = driver_lbs(b, 512);
	vblk::Range r{ 1, 8 };
	uint8_t st = d->secure_erase(0, { &r, 1 });
	ASSERT_TRUE(st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
	ASSERT_EQ(d->stats(0).rmw, 0u);
}

// The owner closes the device with two rings of read-modify-writes
// queued: release waits for them (bounded) and the module stays usable.
TEST_TIMEOUT(rmw_512e_release_with_read_modify_writes_queued_exits_in_time, 120)
{
	auto b = Backend::open(env_nullb_4k);
	{
		auto d = driver_lbs(b, 512, 2, 256);
		auto data = pattern(512, 0, ktap::seed());
		for (unsigned q = 0; q < 2; q++) {
			for (unsigned i = 0; i < 80; i++)
				d->submit(q, BlkDriver::write_spec(8 * 1024 + i * 3 + q, data),
					  false);
			d->kick(q);
		}
		auto t0 = std::chrono::steady_clock::now();
		d.reset();
		auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
			std::chrono::steady_clock::now() - t0);
		ktap::diag("release took " + std::to_string(took.count()) + " ms");
		ASSERT_LT(took, owner_exit_bound());
	}
	auto d = driver_lbs(b, 512);
	auto data = pattern(1024, 77, ktap::seed() + 1);
	ASSERT_EQ(d->write(0, 77, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(1024);
	ASSERT_EQ(d->read(0, 77, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
}
