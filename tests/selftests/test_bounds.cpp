// SPDX-License-Identifier: GPL-2.0
// What one guest can make the host pay (Documentation/vhost-blk.rst,
// "Limits and bounds"), measured: request and range list sizes, bounce
// memory per ring and whom it is charged to, range segments against the
// backend's limits, the worker's weight in bytes, discard past 4 GiB, the
// iovecs of a chain across memory regions, and how long a killed owner or a
// statistics ioctl waits while hostile requests run.
#include "common.hpp"

#include <fstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

using namespace vbt;
using vblk::Range;
using vblk::Segment;

namespace {

constexpr uint64_t KiB = 1024, MiB = KiB << 10, GiB = MiB << 10;
// MemAvailable and memory.current move by this much on their own (page
// cache, slab, the test's own heap) while a test runs.
constexpr int64_t mem_slack = 16 * MiB;
constexpr uint32_t max_request = VHOST_BLK_MAX_REQUEST_BYTES;

std::vector<uint8_t> prefill(const Backend &b, uint64_t offset, size_t len, uint64_t seed)
{
	auto data = pattern(len, offset / vblk::sector_size, seed);
	b.write_direct(offset, data);
	return data;
}

bool all_zero(std::span<const uint8_t> v)
{
	return std::all_of(v.begin(), v.end(), [](uint8_t x) { return x == 0; });
}

// Sectors one segment may cover on `b` for a limit attribute
// (discard_max_bytes, write_zeroes_max_bytes): capped at
// VHOST_BLK_MAX_RANGE_SECTORS, rounded down to the logical block size.
uint32_t range_limit(const Backend &b, const char *attr)
{
	uint64_t lbs = b.logical_block_size() / vblk::sector_size;
	uint64_t s = std::min<uint64_t>(b.queue_attr(attr).value_or(0) / vblk::sector_size,
					VHOST_BLK_MAX_RANGE_SECTORS);
	return static_cast<uint32_t>(s - s % lbs);
}

// header | data | status as a raw chain, in one submission.
uint64_t submit_raw(vblk::BlkDriver &d, const RawRequest &r, std::span<const Segment> data,
		    bool indirect = false, bool kick = true)
{
	std::vector<Segment> segs{ { r.hdr(), vblk::header_size, false } };
	segs.insert(segs.end(), data.begin(), data.end());
	segs.push_back({ r.status(), 1, true });
	return d.submit_segments(0, segs, indirect, kick);
}

vblk::BlkDriverOptions big_memory(size_t bytes, uint16_t ring = 128)
{
	auto o = driver_options(1, ring);
	o.memory_size = bytes;
	o.timeout = 60000ms;
	return o;
}

// The costliest valid range list: whole-disk segments (the last one
// shorter) until all of them together reach the backend's limit for the
// operation, at most 256 of them.
std::vector<Range> whole_disk_ranges(const Backend &b, uint32_t limit, uint32_t flags)
{
	uint64_t lbs = b.logical_block_size() / vblk::sector_size;
	uint64_t disk = b.sectors() - b.sectors() % lbs;
	std::vector<Range> r;
	for (uint64_t left = limit; left && r.size() < VHOST_BLK_MAX_DISCARD_SEGMENTS;) {
		uint64_t n = std::min(left, disk);
		r.push_back({ 0, static_cast<uint32_t>(n), flags });
		left -= n;
	}
	return r;
}

// Fills ring 0 with DISCARD and WRITE_ZEROES requests, each as costly as
// the module lets one be, and kicks once.  Loop turns write zeroes without
// UNMAP into FALLOC_FL_ZERO_RANGE, which tmpfs refuses and which makes loop
// drop write zeroes for good: those go with UNMAP (a punched hole).
// Without write-zeroes offload (null_blk) they are 256 whole-disk segments.
size_t queue_hostile_ranges(vblk::BlkDriver &d, const Backend &b, bool loop)
{
	auto discards = whole_disk_ranges(b, range_limit(b, "discard_max_bytes"), 0);
	uint32_t wz = range_limit(b, "write_zeroes_max_bytes");
	auto zeroes = wz ? whole_disk_ranges(b, wz, loop ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0)
			 : std::vector<Range>(VHOST_BLK_MAX_DISCARD_SEGMENTS,
					      Range{ 0, static_cast<uint32_t>(b.sectors()), 0 });
	size_t n = 0;
	for (;; n++) {
		auto spec = n % 2 && !discards.empty()
				    ? vblk::BlkDriver::range_spec(VIRTIO_BLK_T_DISCARD, discards)
				    : vblk::BlkDriver::range_spec(VIRTIO_BLK_T_WRITE_ZEROES, zeroes);
		if (!d.can_submit(0, spec))
			break;
		d.submit(0, spec, false);
	}
	d.queue(0).notify();
	return n;
}

// Blocks spread over [first, first + n) sectors plus the block on either
// side, prefilled; checks that exactly the inside ones are zeroes.
class Probes {
public:
	Probes(const Backend &b, uint64_t first, uint64_t n, unsigned count = 32) : b_(b)
	{
		uint64_t lbs = b.logical_block_size() / vblk::sector_size;
		for (unsigned i = 0; i <= count; i++) {
			uint64_t s = first + (n - lbs) * i / count;
			inside_.push_back(s - s % lbs);
		}
		outside_ = { first - lbs, first + n };
		for (uint64_t s : inside_)
			data_.push_back(prefill(b, s * 512, b.logical_block_size(), s));
		for (uint64_t s : outside_)
			data_.push_back(prefill(b, s * 512, b.logical_block_size(), s));
	}

	void assert_inside_zero_outside_kept() const
	{
		for (uint64_t s : inside_)
			ASSERT_TRUE(all_zero(b_.read_direct(s * 512, b_.logical_block_size())));
		for (size_t i = 0; i < outside_.size(); i++)
			ASSERT_BYTES_EQ(b_.read_direct(outside_[i] * 512, b_.logical_block_size()),
					data_[inside_.size() + i]);
	}

	void assert_all_kept() const
	{
		for (size_t i = 0; i < inside_.size(); i++)
			ASSERT_BYTES_EQ(b_.read_direct(inside_[i] * 512, b_.logical_block_size()),
					data_[i]);
	}

private:
	const Backend &b_;
	std::vector<uint64_t> inside_, outside_;
	std::vector<std::vector<uint8_t>> data_;
};

struct HostileBackend {
	const char *env;
	bool loop;
};

#define HOSTILE_BACKENDS { { "null_blk", { env_nullb, false } }, { "loop", { env_loop, true } } }

} // namespace

// ---- Sizes ----

TEST(range_list_of_16_times_2_32_plus_1_bytes_is_ioerr_and_never_copied)
{
	// 17 read-only descriptors of ~4 GiB in a sparse 68 GiB region: the
	// list's length is 16 * (2^32 + 1), whose segment count truncated to
	// 32 bits is 1.  It must fail on its length, before a single byte of
	// it is copied (the copy of 64 GiB is what once warned in
	// check_copy_size).
	auto b = Backend::open(env_loop);
	if (range_limit(b, "write_zeroes_max_bytes") == 0)
		SKIP("loop device without write zeroes");
	auto before = prefill(b, 0, 64 * KiB, ktap::seed());
	auto d = attached_driver(b);
	vblk::SparseMemory huge(16 * 4 * GiB + 4 * KiB);
	d->set_mem_table({ d->memory().region(), huge.region() });
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_WRITE_ZEROES, 0, 0);
	std::vector<Segment> list;
	for (uint64_t i = 0; i < 16; i++)
		list.push_back({ huge.base() + i * 4 * GiB, UINT32_MAX, false });
	list.push_back({ huge.base() + 16 * 4 * GiB, 32, false });
	// 16 * (2^32 - 1) + 32 == 16 * (2^32 + 1)
	auto c = d->wait(0, submit_raw(*d, r, list));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
	ASSERT_EQ(d->stats(0).malformed, 1u);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST_VARIANTS(range_list_of_bad_length_is_ioerr_and_counted_malformed, size_t, len,
	      { { "empty", 0 },
		{ "15_bytes", 15 },
		{ "17_bytes", 17 },
		{ "max_segments_plus_one", (VHOST_BLK_MAX_DISCARD_SEGMENTS + 1) * 16 } })
{
	auto b = Backend::open(env_nullb);
	if (range_limit(b, "discard_max_bytes") == 0)
		SKIP("null_blk without discard");
	auto before = prefill(b, 0, 1 * MiB, ktap::seed());
	auto d = attached_driver(b);
	// Valid segments, cut to the length under test.
	std::vector<Range> ranges(VHOST_BLK_MAX_DISCARD_SEGMENTS + 2);
	for (size_t i = 0; i < ranges.size(); i++)
		ranges[i] = { i * 8, 8 };
	auto list = vblk::encode_ranges(ranges);
	list.resize(len);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_DISCARD, 0, len);
	std::memcpy(r.buf.data() + 4096, list.data(), len);
	std::vector<Segment> data;
	if (len)
		data.push_back({ r.data(), static_cast<uint32_t>(len), false });
	auto c = d->wait(0, submit_raw(*d, r, data));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
	ASSERT_EQ(d->stats(0).malformed, 1u);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST(read_of_800_mib_on_one_misaligned_buffer_is_ioerr_without_allocating)
{
	// 200 descriptors on the same 4 MiB buffer, at an odd address so the
	// read would need a bounce buffer of 800 MiB.
	auto b = Backend::open(env_nullb);
	auto d = std::make_unique<vblk::BlkDriver>(big_memory(16 * MiB));
	d->attach(b.fd());
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 4 * MiB + 1);
	std::vector<Segment> data(200, Segment{ r.data() + 1, 4 * MiB, true });
	MemWatch mem;
	auto c = d->wait(0, submit_raw(*d, r, data, true));
	mem.stop();
	ktap::diag("free memory dropped by " + std::to_string(mem.drop() >> 10) + " KiB");
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
	ASSERT_LE(mem.drop(), mem_slack);
}

TEST(read_of_exactly_max_request_bytes_is_ok_with_data)
{
	auto b = Backend::open(env_nullb);
	auto want = prefill(b, 0, max_request, ktap::seed());
	auto d = std::make_unique<vblk::BlkDriver>(big_memory(max_request + 16 * MiB));
	d->attach(b.fd());
	// 1 MiB descriptors: a request this long cannot keep to size_max.
	vblk::IoOptions io{ .layout = vblk::Layout::chunked_data, .chunk = 1 << 20 };
	auto c = d->execute(0, vblk::BlkDriver::read_spec(0, max_request, io));
	ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(c.used_len, max_request + 1);
	ASSERT_BYTES_EQ(c.data, want);
}

TEST_VARIANTS(request_one_sector_over_max_request_bytes_is_ioerr_untouched, bool, write,
	      { { "read", false }, { "write", true } })
{
	const uint32_t len = max_request + vblk::sector_size;
	auto b = Backend::open(env_nullb);
	auto before = prefill(b, 0, len, ktap::seed());
	auto d = std::make_unique<vblk::BlkDriver>(big_memory(len + 16 * MiB));
	d->attach(b.fd());
	auto r = raw_request(d->memory(), write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0, len);
	fill_pattern({ r.buf.data() + 4096, len }, 0, ktap::seed() + 1);
	auto guest = std::vector<uint8_t>(r.buf.data() + 4096, r.buf.data() + 4096 + len);
	Segment data[] = { { r.data(), len, !write } };
	auto c = d->wait(0, submit_raw(*d, r, data));
	ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(c.used_len, 1u);
	ASSERT_BYTES_EQ(std::span<const uint8_t>(r.buf.data() + 4096, len), guest);
	ASSERT_BYTES_EQ(b.read_direct(0, len), before);
}

namespace {

// `depth` reads of VHOST_BLK_MAX_REQUEST_BYTES at an odd address, so each
// needs a bounce buffer of its full size, all on one ring.  They alias one
// guest buffer (the VM has 2 GiB) and read the same prefilled range, so
// its final contents are every read's.
struct BouncedReads {
	std::vector<uint8_t> want;
	std::unique_ptr<vblk::BlkDriver> d;
	vblk::GuestBuffer buf;
	std::vector<RawRequest> reqs;
	std::vector<uint32_t> used;

	BouncedReads(const Backend &b, unsigned depth)
		: want(prefill(b, 0, max_request, ktap::seed())),
		  d(std::make_unique<vblk::BlkDriver>(big_memory(max_request + 16 * MiB)))
	{
		d->attach(b.fd());
		buf = d->memory().allocate(max_request + 4096, 4096);
		for (unsigned i = 0; i < depth; i++)
			reqs.push_back(raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 0));
	}

	// Queues them all, kicks once, waits for every one.
	void run()
	{
		Segment data[] = { { buf.gpa() + 1, max_request, true } };
		std::vector<uint64_t> tokens;
		for (auto &r : reqs)
			tokens.push_back(submit_raw(*d, r, data, false, false));
		d->queue(0).notify();
		for (auto t : tokens)
			used.push_back(d->wait(0, t).used_len);
	}

	void assert_all_read() const
	{
		for (size_t i = 0; i < reqs.size(); i++) {
			ASSERT_EQ(reqs[i].status_byte(), VIRTIO_BLK_S_OK);
			ASSERT_EQ(used[i], max_request + 1);
		}
		ASSERT_BYTES_EQ(std::span<const uint8_t>(buf.data() + 1, max_request), want);
	}
};

// A child cgroup of a cgroup2 hierarchy with the memory controller, the
// calling process moved into it; moved back and removed on destruction.
// SKIPs when there is no way to get one.
class MemoryCgroup {
public:
	MemoryCgroup()
	{
		cgroup2_with("memory");
		dir_ = std::string(root_) + "/vhost_blk_test." + std::to_string(::getpid());
		if (::mkdir(dir_.c_str(), 0755) != 0)
			SKIP("mkdir " + dir_ + ": " + std::strerror(errno));
		if (::access((dir_ + "/memory.current").c_str(), R_OK) != 0) {
			::rmdir(dir_.c_str());
			SKIP("memory controller not enabled for " + dir_);
		}
		if (!join(dir_)) {
			::rmdir(dir_.c_str());
			SKIP("cannot move the test into " + dir_);
		}
	}
	~MemoryCgroup()
	{
		join(root_);
		::rmdir(dir_.c_str());
	}
	MemoryCgroup(const MemoryCgroup &) = delete;
	MemoryCgroup &operator=(const MemoryCgroup &) = delete;

	std::string memory_current() const { return dir_ + "/memory.current"; }

private:
	static bool join(const std::string &dir)
	{
		std::ofstream f(dir + "/cgroup.procs");
		f << ::getpid();
		f.flush();
		return static_cast<bool>(f);
	}

	static constexpr const char *root_ = "/sys/fs/cgroup";
	std::string dir_;
};

} // namespace

TEST_TIMEOUT(misaligned_max_size_reads_at_depth_16_wait_for_bounce_budget, 300)
{
	// 16 bounced reads of the maximum size on one ring, one kick: the ring
	// may have VHOST_BLK_RING_BOUNCE_BYTES of bounce buffers in flight.
	// The rest wait in the avail ring (stats.throttled), none fails, and
	// the owner's memory cgroup, which the owner (and so its vhost
	// workers) joined before the device existed, is charged the bounce
	// pages (GFP_KERNEL_ACCOUNT), never more than the ring's budget.
	// Not the VM's free memory: it fell by 64-72 MiB in most runs and by
	// 80.1 in one, past the slack, with one 64 MiB request in flight
	// (memory.current: +64 MiB in every run).  loop completes
	// from its own worker, so bounced reads stay in flight across handler
	// runs (null_blk and brd finish them before the run ends).
	auto b = Backend::open(env_loop);
	MemoryCgroup cg;
	BouncedReads reads(b, 16);
	MemWatch mem(cg.memory_current());
	reads.run();
	mem.stop();
	auto st = reads.d->stats(0);
	ktap::diag("memory.current rose by " + std::to_string(mem.rise() >> 20) + " MiB, " +
		   "free memory dropped by " + std::to_string(mem.drop() >> 20) + " MiB, " +
		   std::to_string(st.throttled) + " waits for bounce budget");
	reads.assert_all_read();
	ASSERT_EQ(st.bounced, reads.reqs.size());
	ASSERT_GT(st.throttled, 0u);
	ASSERT_GE(mem.rise(), int64_t{ max_request } / 2);
	ASSERT_LE(mem.rise(), int64_t{ VHOST_BLK_RING_BOUNCE_BYTES } + mem_slack);
}

// ---- Ranges ----

TEST_TIMEOUT(write_zeroes_of_256_whole_disk_segments_without_offload_is_unsupp_at_once, 120)
{
	// null_blk cannot write zeroes itself: 256 segments over the whole
	// disk are UNSUPP at once, no zero page is written.
	auto b = Backend::open(env_nullb);
	if (b.queue_attr("write_zeroes_max_bytes").value_or(1) != 0)
		SKIP("null_blk offloads write zeroes here");
	auto head = prefill(b, 0, 64 * KiB, ktap::seed());
	auto tail = prefill(b, b.size_bytes() - 64 * KiB, 64 * KiB, ktap::seed() + 1);
	auto d = attached_driver(b);
	std::vector<Range> ranges(VHOST_BLK_MAX_DISCARD_SEGMENTS,
				  Range{ 0, static_cast<uint32_t>(b.sectors()), 0 });
	auto t0 = std::chrono::steady_clock::now();
	uint8_t status = d->write_zeroes(0, ranges);
	auto took = std::chrono::steady_clock::now() - t0;
	ASSERT_EQ(status, VIRTIO_BLK_S_UNSUPP);
	ASSERT_LT(took, std::chrono::seconds(1));
	ASSERT_BYTES_EQ(b.read_direct(0, head.size()), head);
	ASSERT_BYTES_EQ(b.read_direct(b.size_bytes() - 64 * KiB, tail.size()), tail);
}

TEST(discard_segment_over_backend_discard_max_bytes_is_ioerr_disk_untouched)
{
	// discard_max_bytes lowered to 1 MiB: a list whose second segment is
	// one block longer fails whole, the first segment is not discarded.
	auto b = Backend::open(env_loop);
	if (range_limit(b, "discard_max_bytes") == 0)
		SKIP("loop device without discard");
	DiscardLimit limit(b, 1 * MiB);
	auto before = prefill(b, 1 * MiB, 4 * MiB, ktap::seed());
	auto d = attached_driver(b);
	Range ranges[] = { { 2048, 8 }, { 4096, 2048 + 8 } };
	ASSERT_EQ(d->discard(0, ranges), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(1 * MiB, before.size()), before);
}

TEST(write_zeroes_segment_over_write_zeroes_max_bytes_is_ioerr_disk_untouched)
{
	// On a disk of more than 4 GiB a segment one block past its
	// write_zeroes_max_bytes still fits: it must fail, not zero.
	auto b = Backend::open(env_loop_big);
	uint32_t max = range_limit(b, "write_zeroes_max_bytes");
	if (max == 0)
		SKIP("big loop device without write zeroes");
	uint64_t first = 4096, n = max + b.logical_block_size() / vblk::sector_size;
	if ((first + n) * vblk::sector_size > b.size_bytes())
		SKIP("big loop device not big enough");
	Probes probes(b, first, n);
	auto d = attached_driver(b);
	Range r{ first, static_cast<uint32_t>(n), VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	ASSERT_EQ(d->write_zeroes(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	probes.assert_all_kept();
}

TEST(range_list_over_the_limit_in_total_is_ioerr_disk_untouched)
{
	// discard_max_bytes lowered to 1 MiB bounds a request's segments
	// together: 256 segments of 8 sectors are the limit, one sector more
	// on the last one fails the request whole.
	auto b = Backend::open(env_loop);
	if (range_limit(b, "discard_max_bytes") == 0)
		SKIP("loop device without discard");
	DiscardLimit limit(b, 1 * MiB);
	std::vector<Range> ranges;
	for (uint64_t i = 0; i < VHOST_BLK_MAX_DISCARD_SEGMENTS; i++)
		ranges.push_back({ i * 64, 8 });
	ranges.back().num_sectors += 1;
	auto before = prefill(b, 0, VHOST_BLK_MAX_DISCARD_SEGMENTS * 64 * 512, ktap::seed());
	auto d = attached_driver(b);
	ASSERT_EQ(d->discard(0, ranges), VIRTIO_BLK_S_IOERR);
	ASSERT_BYTES_EQ(b.read_direct(0, before.size()), before);
}

TEST_VARIANTS(max_segments_within_the_limit_zero_exactly_their_ranges, uint32_t, type,
	      { { "discard", VIRTIO_BLK_T_DISCARD }, { "write_zeroes", VIRTIO_BLK_T_WRITE_ZEROES } })
{
	// 256 segments of 4 and 12 sectors, 2048 in all: exactly the discard
	// limit (discard_max_bytes lowered to 1 MiB), well within write
	// zeroes'.  Those ranges read back as zeroes, everything between them
	// keeps its pattern.  Write zeroes with UNMAP (loop punches a hole).
	auto b = Backend::open(env_loop);
	if (range_limit(b, "discard_max_bytes") == 0 ||
	    range_limit(b, "write_zeroes_max_bytes") == 0)
		SKIP("loop device without discard or write zeroes");
	DiscardLimit limit(b, 1 * MiB);
	uint32_t flags = type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
	std::vector<Range> ranges;
	for (uint64_t i = 0; i < VHOST_BLK_MAX_DISCARD_SEGMENTS; i++)
		ranges.push_back({ i * 64 + 8, i % 2 ? 12u : 4u, flags });
	const size_t len = VHOST_BLK_MAX_DISCARD_SEGMENTS * 64 * 512;
	auto before = prefill(b, 0, len, ktap::seed());
	auto d = attached_driver(b);
	ASSERT_EQ(d->execute(0, vblk::BlkDriver::range_spec(type, ranges)).status,
		  VIRTIO_BLK_S_OK);
	auto expect = before;
	uint64_t bytes = 0;
	for (auto &r : ranges) {
		std::memset(&expect[r.sector * 512], 0, r.num_sectors * 512);
		bytes += r.num_sectors * 512;
	}
	ASSERT_EQ(bytes, 1 * MiB);
	ASSERT_BYTES_EQ(b.read_direct(0, len), expect);
	auto st = d->stats(0);
	ASSERT_EQ(st.bytes[type == VIRTIO_BLK_T_DISCARD ? VHOST_BLK_STAT_DISCARD
							: VHOST_BLK_STAT_WRITE_ZEROES],
		  bytes);
}

TEST_VARIANTS(owner_killed_with_hostile_range_requests_queued_exits_within_2s, HostileBackend,
	      hb, HOSTILE_BACKENDS)
{
	auto b = Backend::open(hb.env);
	auto took = time_to_reap_killed_owner(
		[&](const std::function<void()> &ready) {
			auto d = attached_driver(b);
			queue_hostile_ranges(*d, b, hb.loop);
			ready();
		},
		200ms);
	ASSERT_TRUE(took.has_value());
	ktap::diag("reaped " + std::to_string(took->count()) + " ms after SIGKILL");
	ASSERT_LE(took->count(), owner_exit_bound().count());
	assert_device_usable(b);
}

TEST_VARIANTS(hostile_range_requests_hold_the_worker_within_the_bound, HostileBackend, hb,
	      HOSTILE_BACKENDS)
{
	// A ring full of the costliest valid range requests: every one
	// completes, and no kick-handler run or completion batch held the
	// ring longer than the documented bound (stats.max_hold_ns).
	auto b = Backend::open(hb.env);
	auto d = attached_driver(b);
	size_t n = queue_hostile_ranges(*d, b, hb.loop);
	size_t done = 0;
	while (done < n) {
		auto got = d->poll(0, 1, 40000ms);
		ASSERT_FALSE(got.empty());
		done += got.size();
	}
	auto held = std::chrono::nanoseconds(d->stats(0).max_hold_ns);
	ktap::diag(std::to_string(n) + " requests, longest hold " +
		   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(held).count()) +
		   " ms");
	ASSERT_LT(held.count(), std::chrono::nanoseconds(worker_hold_bound()).count());
}

TEST_VARIANTS(vring_stats_answer_within_1s_while_hostile_range_requests_run, HostileBackend,
	      hb, HOSTILE_BACKENDS)
{
	// An admin's GET_VRING_STATS never waits for the data path.  From a
	// second thread of the owner, while a ring full of 256-segment
	// whole-disk ranges is worked on, it must answer within a second
	// each time.  The owner is a child that reports each
	// latency, so a stuck ioctl is seen after 1 s, not at the timeout.
	constexpr uint32_t all_completed = UINT32_MAX, completions_lost = UINT32_MAX - 1;
	auto b = Backend::open(hb.env);
	OwnerProcess owner([&](const OwnerProcess::Report &report) {
		auto d = attached_driver(b);
		size_t n = queue_hostile_ranges(*d, b, hb.loop);
		std::jthread poller([&](std::stop_token stop) {
			while (!stop.stop_requested()) {
				auto t0 = std::chrono::steady_clock::now();
				d->device().get_vring_stats(0);
				report(static_cast<uint32_t>(
					std::chrono::duration_cast<std::chrono::milliseconds>(
						std::chrono::steady_clock::now() - t0)
						.count()));
				std::this_thread::sleep_for(1ms);
			}
		});
		size_t done = 0;
		while (done < n) {
			auto got = d->poll(0, 1, 40000ms);
			if (got.empty())
				break;
			done += got.size();
		}
		poller.request_stop();
		poller.join();
		report(done == n ? all_completed : completions_lost);
	});
	uint32_t worst = 0, samples = 0;
	for (;;) {
		// The first answer also waits for the child's setup; later ones
		// for the child's scheduling, which on the debug kernel can lag
		// while the worker discards (the answer's own latency is what
		// is asserted below).
		auto ms = owner.next(samples ? std::max<std::chrono::milliseconds>(
						       1000ms, worker_hold_bound())
					     : 30000ms);
		if (!ms) {
			// Stuck: wait a while longer to say for how long.
			auto late = owner.next(30000ms);
			ktap::fail("GET_VRING_STATS did not answer within 1 s: " +
					   (late ? "it took " + std::to_string(*late) + " ms"
						 : std::string("not even within 31 s")) +
					   " (after " + std::to_string(samples) + " answers)",
				   __FILE__, __LINE__);
		}
		if (*ms == all_completed)
			break;
		ASSERT_NE(*ms, completions_lost);
		worst = std::max(worst, *ms);
		samples++;
	}
	ktap::diag(std::to_string(samples) + " answers, slowest " + std::to_string(worst) + " ms");
	ASSERT_LT(worst, 1000u);
}

// ---- Weight ----

TEST(requests_of_4_gib_minus_512_bytes_take_one_handler_run_each)
{
	// Each counts its full length against the 32 MiB byte weight of a
	// handler run (it is IOERR, too long): one kick, N runs, one used-ring
	// update each.
	constexpr unsigned n = 16;
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	vblk::SparseMemory huge(4 * GiB);
	d->set_mem_table({ d->memory().region(), huge.region() });
	std::vector<RawRequest> reqs;
	std::vector<uint64_t> tokens;
	Segment data[] = { { huge.base(), UINT32_MAX - 511, true } };
	for (unsigned i = 0; i < n; i++) {
		reqs.push_back(raw_request(d->memory(), VIRTIO_BLK_T_IN, 0, 0));
		tokens.push_back(submit_raw(*d, reqs.back(), data, false, false));
	}
	d->queue(0).notify();
	for (auto t : tokens)
		ASSERT_EQ(d->wait(0, t).used_len, 1u);
	for (auto &r : reqs)
		ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(d->stats(0).batches, n);
}

// ---- Discard and secure erase past 4 GiB ----

namespace {

// The backend over 4 GiB with discard, or SKIP.
Backend big_discard_backend()
{
	auto b = Backend::open(env_loop_big);
	if (b.size_bytes() <= 4 * GiB + 8 * MiB)
		SKIP(b.path() + " is not larger than 4 GiB");
	if (range_limit(b, "discard_max_bytes") == 0)
		SKIP(b.path() + " cannot discard");
	return b;
}

} // namespace

TEST_TIMEOUT(discard_of_the_longest_segment_past_4_gib_discards_every_sector, 120)
{
	// The longest segment the module takes (the backend's limit, at most
	// VHOST_BLK_MAX_RANGE_SECTORS, in whole blocks) from 2 GiB on: across
	// the 4 GiB mark, every block of it discarded, its neighbours kept.
	auto b = big_discard_backend();
	uint64_t n = range_limit(b, "discard_max_bytes"), first = 2 * GiB / 512;
	ktap::diag("segment of " + std::to_string(n) + " sectors");
	Probes probes(b, first, n);
	auto d = attached_driver(b);
	Range r{ first, static_cast<uint32_t>(n) };
	ASSERT_EQ(d->discard(0, { &r, 1 }), VIRTIO_BLK_S_OK);
	probes.assert_inside_zero_outside_kept();
	ASSERT_EQ(d->stats(0).bytes[VHOST_BLK_STAT_DISCARD], n * 512);
}

TEST(discard_segment_of_2_23_plus_8_sectors_is_ioerr_disk_untouched)
{
	// 4 GiB + 4 KiB in one segment: past VHOST_BLK_MAX_RANGE_SECTORS and
	// the backend's discard_max_bytes (4 GiB - 512 for loop).
	auto b = big_discard_backend();
	uint64_t n = (uint64_t{ 1 } << 23) + 8, first = 2 * GiB / 512;
	Probes probes(b, first, n);
	auto d = attached_driver(b);
	Range r{ first, static_cast<uint32_t>(n) };
	ASSERT_EQ(d->discard(0, { &r, 1 }), VIRTIO_BLK_S_IOERR);
	probes.assert_all_kept();
}

TEST(secure_erase_of_the_longest_segment_is_ok)
{
	// No backend of the test VM can secure erase; on one that can, the
	// longest segment the module takes must go through in bios of at most
	// UINT_MAX >> 9 sectors, in whole blocks.
	const char *envs[] = { env_nullb, env_nullb_4k, env_brd, env_loop, env_loop_big };
	for (const char *env : envs) {
		std::optional<Backend> b;
		try {
			b = Backend::open(env);
		} catch (const ktap::Skip &) {
			continue;
		}
		auto d = attached_driver(*b);
		uint64_t lbs = b->logical_block_size() / vblk::sector_size;
		Range probe{ b->sectors() - lbs, static_cast<uint32_t>(lbs) };
		if (d->secure_erase(0, { &probe, 1 }) == VIRTIO_BLK_S_UNSUPP)
			continue;
		uint64_t n = std::min<uint64_t>(VHOST_BLK_MAX_RANGE_SECTORS, b->sectors());
		Range r{ 0, static_cast<uint32_t>(n - n % lbs) };
		ktap::diag(std::string(env) + " secure erases " + std::to_string(r.num_sectors) +
			   " sectors");
		ASSERT_EQ(d->secure_erase(0, { &r, 1 }), VIRTIO_BLK_S_OK);
		return;
	}
	SKIP("no backend in this VM supports secure erase (all answer UNSUPP)");
}

// ---- iovecs ----

TEST(chain_of_1022_descriptors_across_memory_regions_writes_and_reads_back)
{
	// 1022 data descriptors of 512 bytes (+ header + status: the most a
	// chain may have), with 16 of them straddling a boundary between two
	// memory table regions: 1040 iovecs, more than the vhost core's
	// UIO_MAXIOV.
	constexpr size_t nseg = VHOST_BLK_MAX_SEGMENTS, stride = 64;
	auto b = Backend::open(env_nullb);
	auto o = driver_options();
	o.timeout = 5000ms;
	vblk::BlkDriver d(o);
	if (!d.has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	auto buf = d.memory().allocate(nseg * 512, 4096);
	std::vector<uint64_t> cuts;
	for (size_t k = 0; k * stride < nseg; k++)
		cuts.push_back(buf.gpa() - d.memory().base() + k * stride * 512 + 256);
	d.set_mem_table(vblk::split_region(d.memory().region(), cuts));
	d.attach(b.fd());
	ktap::diag(std::to_string(cuts.size()) + " descriptors straddle a region boundary");

	const uint64_t sector = 8192;
	auto want = pattern(nseg * 512, sector, ktap::seed());
	auto transfer = [&](uint32_t type) {
		auto r = raw_request(d.memory(), type, sector, 0);
		std::vector<Segment> segs{ { r.hdr(), vblk::header_size, false } };
		for (size_t i = 0; i < nseg; i++)
			segs.push_back({ buf.gpa() + i * 512, 512, type == VIRTIO_BLK_T_IN });
		segs.push_back({ r.status(), 1, true });
		auto c = d.wait(0, d.submit_segments(0, segs, true));
		ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_OK);
		return c.used_len;
	};
	std::memcpy(buf.data(), want.data(), want.size());
	transfer(VIRTIO_BLK_T_OUT);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, want.size()), want);
	std::memset(buf.data(), 0x5a, want.size());
	ASSERT_EQ(transfer(VIRTIO_BLK_T_IN), nseg * 512 + 1);
	ASSERT_BYTES_EQ(buf.bytes(), want);
}

TEST_TIMEOUT(writes_over_the_inflight_budget_wait_and_a_stop_drains_only_the_budget, 180)
{
	// 16 writes of 32 MiB, twice, on a backend that completes every bio
	// 300 ms late.  At most VHOST_BLK_RING_INFLIGHT_BYTES of them (8) are
	// at the backend at once; the rest wait in the avail ring
	// (stats.throttled).  So a stop (VHOST_GET_VRING_BASE) waits for
	// those 8, not for all 16, and the others run after the restart.
	auto b = Backend::open(env_delay);
	constexpr size_t len = 32 * MiB;
	constexpr unsigned n = 16;
	constexpr unsigned fit = VHOST_BLK_RING_INFLIGHT_BYTES / len;
	if (b.size_bytes() < fit * len)
		SKIP("VBLK_DELAY is smaller than the in-flight budget");
	auto d = std::make_unique<vblk::BlkDriver>(big_memory(len + 16 * MiB));
	d->attach(b.fd());
	if (!d->has_feature(vblk::f_indirect_desc))
		SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
	auto buf = d->memory().allocate(len, 4096);
	fill_pattern({ buf.data(), len }, 0, ktap::seed());
	std::vector<Segment> data;
	for (size_t off = 0; off < len; off += MiB)
		data.push_back({ buf.gpa() + off, static_cast<uint32_t>(MiB), false });
	for (unsigned slot = 0; slot < fit; slot++) {
		prefill(b, slot * len, 64 * 1024, ktap::seed() + 1);
		prefill(b, (slot + 1) * len - 64 * 1024, 64 * 1024, ktap::seed() + 1);
	}
	std::vector<RawRequest> reqs;
	auto submit_all = [&] {
		reqs.clear();
		for (unsigned i = 0; i < n; i++) {
			reqs.push_back(raw_request(d->memory(), VIRTIO_BLK_T_OUT,
						   (i % fit) * (len / vblk::sector_size), 0));
			submit_raw(*d, reqs.back(), data, true, false);
		}
		d->kick(0);
	};

	// Round 1: everything completes, never more than the budget at once.
	submit_all();
	unsigned max_inflight = 0;
	size_t done = 0;
	auto deadline = std::chrono::steady_clock::now() + 120s;
	while (done < n && std::chrono::steady_clock::now() < deadline) {
		max_inflight = std::max(max_inflight, d->stats(0).inflight);
		done += d->poll(0, 1, 5ms).size();
	}
	ASSERT_EQ(done, size_t{ n });
	for (auto &r : reqs)
		ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_OK);
	auto st = d->stats(0);
	ktap::diag("at most " + std::to_string(max_inflight) + " requests taken, " +
		   std::to_string(st.throttled) + " waits for budget");
	ASSERT_GE(max_inflight, 1u);
	// stats.inflight also counts, for a moment, the request the worker is
	// examining when it finds the budget spent and puts it back.
	ASSERT_LE(max_inflight, fit + 1);
	ASSERT_GT(st.throttled, 0u);
	for (unsigned slot = 0; slot < fit; slot++)
		ASSERT_BYTES_EQ(b.read_direct(slot * len, len),
				std::span<const uint8_t>(buf.data(), len));

	// Round 2: stopped while the first ones are at the backend.
	submit_all();
	auto wait_start = std::chrono::steady_clock::now() + 10s;
	while (d->stats(0).inflight == 0 && std::chrono::steady_clock::now() < wait_start)
		std::this_thread::sleep_for(1ms);
	unsigned base = d->get_vring_base(0);
	ktap::diag("the stop took " + std::to_string(base - n) + " writes");
	ASSERT_GE(base - n, 1u);
	ASSERT_LE(base - n, fit);
	ASSERT_EQ(d->queue(0).used_idx(), static_cast<uint16_t>(base));
	d->restart_ring(0, static_cast<uint16_t>(base));
	d->attach(b.fd());
	done = d->poll(0, 0, 0ms).size();
	while (done < n) {
		auto got = d->poll(0, 1, 60000ms);
		ASSERT_FALSE(got.empty());
		done += got.size();
	}
	for (auto &r : reqs)
		ASSERT_EQ(r.status_byte(), VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->stats(0).requests[VHOST_BLK_STAT_OUT], uint64_t{ 2 * n });
}
