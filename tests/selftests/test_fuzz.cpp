// SPDX-License-Identifier: GPL-2.0
// Ring fuzzer: a hostile guest.  Seeded and reproducible (--seed N replays a
// run; every batch prints its own seed when it fails).  Each case writes a
// random chain -- random flags, lengths, addresses inside, outside and
// straddling the memory table, indirect tables (nested too), loops, next
// indices out of range, random header types and sectors, status bytes in
// read-only descriptors -- and batches also jump the avail index, kick all
// queues at once and swap the memory table while requests run.
//
// What must hold: the module never oopses or warns (the runner checks
// dmesg), the used index never runs ahead of what was published and only
// names heads that exist, the device always closes (no hang: per-test
// timeout), and a well-formed request works on a new device after every
// batch.  The module must unload at the end (the runner checks rmmod).
#include "common.hpp"

#include <map>
#include <random>
#include <sys/mman.h>
#include <thread>
#include <unordered_map>

using namespace vbt;

namespace {

// Half of them on the debug kernel, where KASAN makes each case about four
// times dearer (make check runs both kernels; each run has its own seed).
unsigned fuzz_cases()
{
	return debug_kernel() ? 5120 : 10240;
}
constexpr unsigned cases_per_batch = 16;
constexpr unsigned fuzz_queues = 2;
constexpr uint16_t fuzz_ring = 256;

struct Fuzzer {
	std::mt19937_64 rng;
	vblk::BlkDriver &d;
	vblk::GuestBuffer arena; // where chains point most of the time
	uint64_t completed = 0;	 // used entries the device produced
	uint64_t stopped = 0;	 // rings the device stopped (error eventfd)

	Fuzzer(uint64_t seed, vblk::BlkDriver &drv)
		: rng(seed), d(drv), arena(drv.memory().allocate(1 << 20, 4096))
	{
	}

	uint64_t pick(uint64_t n) { return n ? rng() % n : 0; }
	bool chance(unsigned percent) { return pick(100) < percent; }

	uint64_t address(uint32_t len)
	{
		auto &mem = d.memory();
		switch (pick(10)) {
		case 0:
			return rng(); // anywhere
		case 1:
			return mem.base() + mem.size() - pick(len + 1); // straddles the end
		case 2:
			return mem.base() - 1 - pick(4096); // just below
		case 3:
			return 0;
		default:
			return arena.gpa() + pick(arena.size() - std::min<uint64_t>(len, arena.size()));
		}
	}

	uint32_t length()
	{
		static const uint32_t lens[] = { 0, 1, 15, 16, 17, 512, 4096, 65536, 0xffffffff, 0x80000000 };
		return chance(70) ? lens[pick(std::size(lens))] : static_cast<uint32_t>(pick(1 << 20));
	}

	// Random virtio-blk header bytes at a random place in the arena.
	uint64_t header()
	{
		static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
						  VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD,
						  VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SECURE_ERASE };
		uint32_t type = chance(85) ? types[pick(std::size(types))] : static_cast<uint32_t>(rng());
		uint64_t sector = chance(70) ? pick(1 << 19) : rng();
		auto h = vblk::encode_header(type, static_cast<uint32_t>(rng()), sector);
		uint64_t at = arena.gpa() + pick(arena.size() - 64);
		std::memcpy(reinterpret_cast<void *>(at), h.data(), h.size());
		// Sometimes a segment list follows.
		if (chance(30)) {
			vblk::Range r{ pick(1 << 19), static_cast<uint32_t>(pick(64)),
				       static_cast<uint32_t>(pick(4)) };
			auto seg = vblk::encode_ranges(std::span(&r, 1));
			std::memcpy(reinterpret_cast<void *>(at + 16), seg.data(), seg.size());
		}
		return at;
	}

	// A well-formed chain at `head`, then one field of one descriptor
	// mutated half of the time: gets past the core's checks far more often
	// than random descriptors, into the module's own validation.
	void plausible(vblk::VringDesc *table, uint16_t size, uint16_t head)
	{
		unsigned ndata = static_cast<unsigned>(pick(4));
		bool dev_writes = chance(50);
		uint16_t at = head;

		for (unsigned i = 0; i < ndata + 2; i++) {
			vblk::VringDesc &dsc = table[at];
			bool last = i == ndata + 1;
			if (i == 0) {
				dsc.addr = header();
				dsc.len = 16;
				dsc.flags = 0;
			} else if (last) {
				dsc.addr = arena.gpa() + pick(arena.size());
				dsc.len = 1;
				dsc.flags = vblk::desc_f_write;
			} else {
				dsc.len = static_cast<uint32_t>(512 * (1 + pick(16)) + (chance(10) ? pick(512) : 0));
				dsc.addr = arena.gpa() + pick(arena.size() - dsc.len);
				dsc.flags = dev_writes ? vblk::desc_f_write : 0;
			}
			uint16_t next = static_cast<uint16_t>((at + 1) % size);
			if (!last)
				dsc.flags |= vblk::desc_f_next;
			dsc.next = next;
			at = next;
		}
		if (chance(50)) {
			vblk::VringDesc &dsc = table[(head + pick(ndata + 2)) % size];
			switch (pick(4)) {
			case 0:
				dsc.flags ^= static_cast<uint16_t>(1u << pick(3));
				break;
			case 1:
				dsc.len = length();
				break;
			case 2:
				dsc.addr = address(dsc.len);
				break;
			default:
				dsc.next = static_cast<uint16_t>(rng());
				break;
			}
		}
	}

	// Fills `n` random descriptors of `table` (of `size` entries).
	void fill(vblk::VringDesc *table, uint16_t size, unsigned depth)
	{
		unsigned n = 1 + pick(std::min<uint16_t>(size, 8));
		for (unsigned i = 0; i < n; i++) {
			uint16_t at = static_cast<uint16_t>(pick(size));
			vblk::VringDesc &dsc = table[at];
			dsc.len = length();
			dsc.addr = i == 0 && chance(80) ? header() : address(dsc.len);
			dsc.flags = static_cast<uint16_t>(pick(8));
			if (!chance(20))
				dsc.flags &= ~vblk::desc_f_indirect;
			// next: mostly the following slot, sometimes a loop or out of range.
			switch (pick(6)) {
			case 0:
				dsc.next = at;
				break;
			case 1:
				dsc.next = static_cast<uint16_t>(rng());
				break;
			default:
				dsc.next = static_cast<uint16_t>((at + 1) % size);
				break;
			}
			if ((dsc.flags & vblk::desc_f_indirect) && depth < 2 && chance(50)) {
				// An indirect table in the arena, itself possibly
				// holding indirect descriptors.
				uint16_t isize = static_cast<uint16_t>(1 + pick(16));
				uint64_t t = arena.gpa() + (pick(arena.size() / 4096 - 1) * 4096);
				fill(reinterpret_cast<vblk::VringDesc *>(t), isize, depth + 1);
				dsc.addr = t;
				dsc.len = chance(80) ? isize * 16 : length();
			}
		}
	}

	// One batch on every queue; returns the number of cases written.
	unsigned batch(unsigned cases)
	{
		std::vector<unsigned> published(fuzz_queues);
		std::vector<bool> jumped(fuzz_queues);
		for (unsigned c = 0; c < cases; c++) {
			unsigned q = static_cast<unsigned>(pick(fuzz_queues));
			auto &vq = d.queue(q);
			uint16_t head = static_cast<uint16_t>(pick(vq.size()));
			if (chance(60))
				plausible(vq.desc_table(), vq.size(), head);
			else
				fill(vq.desc_table(), vq.size(), 0);
			vq.publish(chance(97) ? head : static_cast<uint16_t>(vq.size() + pick(4)));
			published[q]++;
			if (chance(3)) {
				// The avail index jumps.
				auto *idx = reinterpret_cast<uint16_t *>(vq.addresses().avail + 2);
				*idx = static_cast<uint16_t>(*idx + pick(2 * vq.size()));
				jumped[q] = true; // any used index goes now
			}
			if (chance(10))
				vq.notify();
			if (chance(1)) {
				// The memory table is replaced while requests run.
				const vblk::MemRegion r[] = { d.memory().region() };
				d.device().set_mem_table(r);
			}
		}
		for (unsigned q = 0; q < fuzz_queues; q++)
			d.queue(q).notify();

		// Let the workers chew, then check the used rings.
		for (unsigned q = 0; q < fuzz_queues; q++) {
			auto &vq = d.queue(q);
			uint16_t before;
			int quiet = 0;
			for (int i = 0; i < 200 && quiet < 3; i++) {
				before = vq.used_idx();
				std::this_thread::sleep_for(2ms);
				quiet = vq.used_idx() == before ? quiet + 1 : 0;
			}
			uint16_t used = vq.used_idx();
			completed += used;
			stopped += vq.err_fd().wait(0ms) != 0;
			if (!jumped[q] && used > published[q])
				ktap::fail("queue " + std::to_string(q) + ": used idx " +
					   std::to_string(used) + " > published " +
					   std::to_string(published[q]),
					   __FILE__, __LINE__);
			auto *ring = reinterpret_cast<const vblk::VringUsedElem *>(
				vq.addresses().used + 4);
			for (uint16_t i = 0; i < std::min<uint16_t>(used, vq.size()); i++)
				if (ring[i].id >= vq.size())
					ktap::fail("queue " + std::to_string(q) + ": used id " +
						   std::to_string(ring[i].id) + " out of range",
						   __FILE__, __LINE__);
		}
		return cases;
	}
};

} // namespace

namespace {

// Where the ring fuzzer's requests land: brd with every case, and with a
// quarter of them a raw image file (file.c) and 512-byte guest blocks on a
// 4 KiB disk (rmw.c: most fuzzed sectors and lengths are partial blocks).
struct FuzzDisk {
	const char *env;
	bool file;
	uint32_t block_size; // VHOST_BLK_SET_BLOCK_SIZE, 0: the backend's
	unsigned share;	     // runs fuzz_cases() / share cases

	Backend open() const
	{
		// tmpfs: sparse, so only what the cases write takes memory.
		return file ? Backend::file(env, 256 << 20) : Backend::open(env);
	}
};

} // namespace

TEST_VARIANTS_TIMEOUT(fuzzed_rings_never_break_the_module, FuzzDisk, disk, 900,
		      ({ { "brd", { env_brd, false, 0, 1 } },
			 { "file_tmpfs", { env_tmpfs_dir, true, 0, 4 } },
			 { "nullb_4k_512e", { env_nullb_4k, false, 512, 4 } } }))
{
	auto b = disk.open();
	unsigned done = 0, batches = 0;
	uint64_t completed = 0, stopped = 0;
	std::mt19937_64 seeds(ktap::seed());

	const unsigned cases = fuzz_cases() / disk.share;
	while (done < cases) {
		uint64_t bseed = seeds();
		try {
			auto d = std::make_unique<vblk::BlkDriver>(
				driver_options(fuzz_queues, fuzz_ring));
			if (disk.block_size)
				d->device().set_block_size(disk.block_size);
			d->attach(b.fd());
			{
				Fuzzer f(bseed, *d);
				done += f.batch(cases_per_batch);
				completed += f.completed;
				stopped += f.stopped;
			}
			// Closing with whatever the fuzzer left in flight.
			d.reset();
		} catch (const ktap::Failure &) {
			ktap::diag("failing batch seed " + std::to_string(bseed));
			throw;
		}
		if (++batches % 64 == 0)
			assert_device_usable(b, 400000 + (batches % 1000) * 16);
	}
	assert_device_usable(b, 500000);
	ktap::diag(std::to_string(done) + " cases in " + std::to_string(batches) + " batches: " +
		   std::to_string(completed) + " completions, " + std::to_string(stopped) +
		   " rings stopped by the device");
}

// ---- Sizes: lengths, counts and ranges at and past the limits ----
//
// Rings that are well formed but hostile in size: descriptor lengths near
// 2^31 and 2^32 over a 16 GiB sparse region, up to seg_max descriptors on
// one buffer (often at an odd address, so bounced), chains over the sparse
// region, range lists at and past VHOST_BLK_MAX_DISCARD_SEGMENTS with
// segments at and past the backend's limit, alone and in total.  None of
// it may stop a ring, so every request completes exactly once, with the
// status the uapi fixes (Documentation/vhost-blk.rst, "Limits and
// bounds").  Measured over the run, checked at its end: GET_VRING_STATS
// from another thread answers within 1 s; MemAvailable never drops by more
// than each ring's bounce budget (+ 16 MiB); the owner SIGKILLed with a
// batch in flight is reaped within owner_exit_bound() (2 s; 5 s on the debug
// kernel).

namespace {

constexpr uint64_t MiB = 1 << 20, GiB = MiB << 10;
unsigned size_batches()	// half on the debug kernel, as fuzz_cases()
{
	return debug_kernel() ? 16 : 32;
}
constexpr unsigned size_cases = 24;	       // per batch, over all queues
constexpr unsigned size_queues = 2;
constexpr uint16_t size_ring = 256;
constexpr uint64_t size_window = 64 * MiB;     // where data may land: prefilled
constexpr uint64_t size_discard_max = 4 * MiB; // the backend's limit meanwhile
constexpr uint64_t size_sparse = 16 * GiB;
constexpr uint64_t max_request = VHOST_BLK_MAX_REQUEST_BYTES;
constexpr int64_t size_mem_slack = 16 * MiB;

// One request in flight: its buffer (header, small payload, status) and
// what the uapi says must come back.
struct SizeCase {
	RawRequest req;
	std::vector<vblk::Segment> segs; // header .. status
	bool indirect = false;
	std::optional<uint8_t> want;	 // status, when the spec fixes it
	uint32_t want_used_ok = 1;	 // used length if the status is OK
	const char *kind;
	std::string what;
};

class SizeFuzzer {
public:
	SizeFuzzer(uint64_t seed, vblk::BlkDriver &d, const Backend &b, vblk::SparseMemory &sparse,
		   const vblk::GuestBuffer &buf)
		: rng_(seed), d_(d), b_(b), sparse_(sparse), buf_(buf),
		  discard_max_(std::min<uint64_t>(b.queue_attr("discard_max_bytes").value_or(0) / 512,
						  VHOST_BLK_MAX_RANGE_SECTORS)),
		  write_zeroes_(b.queue_attr("write_zeroes_max_bytes").value_or(0) != 0)
	{
	}

	SizeCase next()
	{
		switch (pick(8)) {
		case 0:
		case 1:
			return huge_lengths();
		case 2:
		case 3:
		case 4:
			return one_buffer();
		case 5:
			return sparse_chain();
		default:
			return ranges();
		}
	}

private:
	uint64_t pick(uint64_t n) { return n ? rng_() % n : 0; }
	bool chance(unsigned percent) { return pick(100) < percent; }
	template <typename T, size_t N> T one_of(const T (&v)[N]) { return v[pick(N)]; }

	SizeCase start(uint32_t type, uint64_t sector, size_t payload, const char *kind,
		       std::string what)
	{
		SizeCase c{ raw_request(d_.memory(), type, sector, payload), {}, false, {}, 1, kind,
			    std::move(what) };
		c.segs.push_back({ c.req.hdr(), vblk::header_size, false });
		return c;
	}

	void finish(SizeCase &c)
	{
		c.segs.push_back({ c.req.status(), 1, true });
		c.indirect = c.segs.size() > 4;
	}

	// A sector for `bytes` of data inside the prefilled window.
	uint64_t window_sector(uint64_t bytes)
	{
		uint64_t room = (size_window - std::min(bytes, size_window)) / 512;
		return pick(room + 1);
	}

	// Data of 2^31 - 2^32 bytes per descriptor, 1-4 of them, in the sparse
	// region: too long, IOERR before anything is pinned or copied.
	SizeCase huge_lengths()
	{
		static const uint64_t lens[] = { (1ull << 31) - 512, 1ull << 31, (1ull << 31) + 512,
						 (1ull << 32) - 4096, (1ull << 32) - 512,
						 (1ull << 32) - 1 };
		bool in = chance(50);
		SizeCase c = start(in ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, pick(b_.sectors()), 0,
				   "huge", "huge lengths");
		unsigned k = 1 + static_cast<unsigned>(pick(4));
		for (unsigned i = 0; i < k; i++) {
			uint64_t len = one_of(lens);
			c.segs.push_back({ sparse_.base() + pick(sparse_.size() - len + 1),
					   static_cast<uint32_t>(len), in });
		}
		finish(c);
		c.want = VIRTIO_BLK_S_IOERR;
		return c;
	}

	// n descriptors all on the same buffer, totals around the request
	// limit; odd addresses are bounced.
	SizeCase one_buffer()
	{
		static const uint32_t counts[] = { 1, 2, 16, 64, 255, 256, 1021, 1022 };
		uint32_t n = one_of(counts);
		uint64_t len;
		switch (pick(4)) {
		case 0: // exactly the limit, or one sector either side
			len = max_request / n + (chance(50) ? 0 : 512 * (chance(50) ? 1 : -1));
			break;
		case 1:
			len = 512 * (1 + pick(128));
			break;
		case 2:
			len = 1 + pick(1 << 16);
			break;
		default:
			len = 512 * (1 + pick(max_request / 512));
			break;
		}
		len = std::min<uint64_t>(len, buf_.size() - 1);
		uint64_t total = n * len;
		bool in = chance(50), odd = chance(50);
		bool fits = total <= max_request && total % b_.logical_block_size() == 0;
		// Writes stay in the prefilled window (no backend memory grows);
		// some requests end past the disk instead and must fail.
		bool past_end = chance(15);
		uint64_t sector = past_end ? b_.sectors() - std::min(total / 512, b_.sectors()) + 1 + pick(16)
					   : window_sector(total);
		SizeCase c = start(in ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, sector, 0, "one-buffer",
				   std::to_string(n) + " x " + std::to_string(len) + " bytes on one buffer");
		for (uint32_t i = 0; i < n; i++)
			c.segs.push_back({ buf_.gpa() + (odd ? 1 : 0), static_cast<uint32_t>(len), in });
		finish(c);
		bool ok = fits && !past_end && sector * 512 + total <= size_window;
		c.want = ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
		c.want_used_ok = in ? static_cast<uint32_t>(total + 1) : 1;
		return c;
	}

	// A write gathered from all over the sparse region (reads as zeroes,
	// costs no memory): within the limit, so OK.
	SizeCase sparse_chain()
	{
		unsigned k = 1 + static_cast<unsigned>(pick(64));
		std::vector<vblk::Segment> data;
		uint64_t total = 0;
		for (unsigned i = 0; i < k; i++) {
			uint32_t len = static_cast<uint32_t>(512 * (1 + pick(2048)));
			uint64_t addr = sparse_.base() + pick(sparse_.size() - len) / 512 * 512;
			if (chance(20))
				addr += 1; // bounced
			data.push_back({ addr, len, false });
			total += len;
		}
		SizeCase c = start(VIRTIO_BLK_T_OUT, window_sector(total), 0, "sparse",
				   std::to_string(k) + "-descriptor write over the sparse region");
		c.segs.insert(c.segs.end(), data.begin(), data.end());
		finish(c);
		c.want = VIRTIO_BLK_S_OK;
		return c;
	}

	// DISCARD (mostly), WRITE_ZEROES, SECURE_ERASE with lists at and past
	// 256 segments, odd lengths, segments at and past the backend's limit
	// alone and together.
	SizeCase ranges()
	{
		static const uint32_t types[] = { VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_DISCARD,
						  VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
						  VIRTIO_BLK_T_SECURE_ERASE };
		static const size_t counts[] = { 0, 1, 2, 255, 256, 257, 300 };
		uint32_t type = one_of(types);
		const uint64_t limit = discard_max_;
		const uint64_t sizes[] = { 1,
					   8,
					   limit - 8,
					   limit,
					   limit + 1,
					   limit + 8,
					   VHOST_BLK_MAX_RANGE_SECTORS,
					   uint64_t{ VHOST_BLK_MAX_RANGE_SECTORS } + 1,
					   UINT32_MAX };
		if (chance(5))
			return huge_range_list(type);
		size_t nseg = one_of(counts);
		std::vector<vblk::Range> r(nseg);
		bool ok = nseg > 0 && nseg <= VHOST_BLK_MAX_DISCARD_SEGMENTS;
		// The limit bounds all segments of a request together: short
		// segments mostly, so that many of them still fit.
		uint64_t total = 0, each = std::max<uint64_t>(limit / std::max<size_t>(nseg, 1), 1);
		for (auto &seg : r) {
			uint64_t n = chance(70) ? 1 + pick(each) : one_of(sizes);
			uint64_t s = chance(90) ? pick(b_.sectors()) : b_.sectors() - pick(16);
			seg = { s, static_cast<uint32_t>(n), 0 };
			total += n;
			ok = ok && s + n <= b_.sectors();
		}
		ok = ok && total <= limit;
		auto list = vblk::encode_ranges(r);
		if (chance(10) && !list.empty()) {
			list.resize(list.size() - 1 - pick(15)); // not a multiple of 16
			ok = false;
		}
		SizeCase c = start(type, 0, list.size(), "ranges",
				   std::to_string(nseg) + "-segment range list of " +
					   std::to_string(list.size()) + " bytes");
		std::memcpy(c.req.buf.data() + 4096, list.data(), list.size());
		if (!list.empty())
			c.segs.push_back({ c.req.data(), static_cast<uint32_t>(list.size()), false });
		finish(c);
		c.want = range_status(type, ok);
		return c;
	}

	// A range list of gigabytes (read-only descriptors in the sparse
	// region): refused on its length, never copied.
	SizeCase huge_range_list(uint32_t type)
	{
		SizeCase c = start(type, 0, 0, "ranges", "range list of gigabytes");
		unsigned k = 1 + static_cast<unsigned>(pick(17));
		for (unsigned i = 0; i < k; i++)
			c.segs.push_back({ sparse_.base() + pick(sparse_.size() - UINT32_MAX),
					   UINT32_MAX - static_cast<uint32_t>(pick(2)) * 15, false });
		finish(c);
		c.want = range_status(type, false);
		return c;
	}

	std::optional<uint8_t> range_status(uint32_t type, bool ok)
	{
		switch (type) {
		case VIRTIO_BLK_T_DISCARD:
			if (!discard_max_)
				return VIRTIO_BLK_S_UNSUPP;
			return ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
		case VIRTIO_BLK_T_WRITE_ZEROES:
			if (!write_zeroes_)
				return VIRTIO_BLK_S_UNSUPP;
			return std::nullopt; // its own limit is not the one used here
		default:
			return std::nullopt; // secure erase: whatever the backend can do
		}
	}

	std::mt19937_64 rng_;
	vblk::BlkDriver &d_;
	const Backend &b_;
	vblk::SparseMemory &sparse_;
	const vblk::GuestBuffer &buf_;
	uint64_t discard_max_;
	bool write_zeroes_;
};

// The driver the size fuzzer runs on: brd, its discard limit lowered, the
// window prefilled, all guest memory populated and a sparse region added.
struct SizeRig {
	vblk::SparseMemory sparse{ size_sparse };
	std::unique_ptr<vblk::BlkDriver> d;
	vblk::GuestBuffer buf;

	explicit SizeRig(const Backend &b)
	{
		auto o = driver_options(size_queues, size_ring);
		o.memory_size = max_request + 64 * MiB;
		d = std::make_unique<vblk::BlkDriver>(o);
		if (!d->has_feature(vblk::f_indirect_desc))
			SKIP("VIRTIO_RING_F_INDIRECT_DESC not offered");
		::madvise(reinterpret_cast<void *>(d->memory().base()), d->memory().size(),
			  MADV_POPULATE_WRITE);
		d->set_mem_table({ d->memory().region(), sparse.region() });
		d->attach(b.fd());
		buf = d->memory().allocate(max_request + 8192, 4096);
	}

	// Submits `cases` spread over the queues, kicks each queue once.
	std::vector<std::unordered_map<uint64_t, SizeCase>> submit(SizeFuzzer &f, unsigned cases,
								    std::mt19937_64 &rng)
	{
		std::vector<std::unordered_map<uint64_t, SizeCase>> inflight(size_queues);
		for (unsigned i = 0; i < cases; i++) {
			unsigned q = static_cast<unsigned>(rng() % size_queues);
			SizeCase c = f.next();
			uint64_t t = d->submit_segments(q, c.segs, c.indirect, false);
			inflight[q].emplace(t, std::move(c));
		}
		for (unsigned q = 0; q < size_queues; q++)
			d->queue(q).notify();
		return inflight;
	}
};

} // namespace

TEST_TIMEOUT(fuzzed_sizes_keep_every_bound, 600)
{
	auto b = Backend::open(env_brd);
	if (b.queue_attr("discard_max_bytes").value_or(0) == 0)
		SKIP(b.path() + " cannot discard");
	DiscardLimit discard_max(b, size_discard_max);
	{
		auto fill = pattern(size_window, 0, ktap::seed());
		b.write_direct(0, fill);
	}
	ktap::diag("seed " + std::to_string(ktap::seed()) + ", " + std::to_string(size_batches()) +
		   " batches of " + std::to_string(size_cases) + " requests on " +
		   std::to_string(size_queues) + " rings");
	using clock = std::chrono::steady_clock;
	auto t0 = clock::now();
	std::mt19937_64 seeds(ktap::seed());
	std::map<std::string, unsigned> tally; // kind:status -> completions
	// The bounds are measured over the whole run and checked at the end,
	// so a failure reports all of them.
	clock::duration worst_stats{};
	uint64_t max_hold = 0; // stats.max_hold_ns over every ring and batch
	std::string worst_batch;
	std::vector<std::string> worst_listing;
	int64_t mem_drop = 0;
	{
		SizeRig rig(b);
		MemWatch mem;
		for (unsigned batch = 0, nb = size_batches(); batch < nb; batch++) {
			uint64_t bseed = seeds();
			std::vector<std::string> listing; // the batch, for a failure report
			try {
				SizeFuzzer f(bseed, *rig.d, b, rig.sparse, rig.buf);
				auto inflight = rig.submit(f, size_cases, seeds);
				for (unsigned q = 0; q < size_queues; q++)
					for (auto &[t, c] : inflight[q])
						listing.push_back("  ring " + std::to_string(q) + ": " + c.what);

				clock::duration worst{};
				std::jthread poller([&](std::stop_token stop) {
					while (!stop.stop_requested()) {
						for (unsigned q = 0; q < size_queues; q++) {
							auto s = clock::now();
							rig.d->device().get_vring_stats(q);
							worst = std::max(worst, clock::now() - s);
						}
						std::this_thread::sleep_for(1ms);
					}
				});
				for (unsigned q = 0; q < size_queues; q++) {
					while (!inflight[q].empty()) {
						auto got = rig.d->poll(q, 1, 20000ms);
						if (got.empty())
							break;
						for (auto &c : got) {
							auto it = inflight[q].find(c.token);
							ASSERT_TRUE(it != inflight[q].end());
							const SizeCase &sc = it->second;
							uint8_t st = sc.req.status_byte();
							tally[std::string(sc.kind) + ":" + std::to_string(st)]++;
							if (sc.want && st != *sc.want)
								ktap::fail(sc.what + ": status " + std::to_string(st) +
									   ", expected " + std::to_string(*sc.want),
									   __FILE__, __LINE__);
							uint32_t used = st == VIRTIO_BLK_S_OK ? sc.want_used_ok : 1;
							if (c.used_len != used)
								ktap::fail(sc.what + ": used_len " +
									   std::to_string(c.used_len) + ", expected " +
									   std::to_string(used),
									   __FILE__, __LINE__);
							inflight[q].erase(it);
						}
					}
				}
				poller.request_stop();
				poller.join();
				for (unsigned q = 0; q < size_queues; q++) {
					if (!inflight[q].empty())
						ktap::fail("queue " + std::to_string(q) + ": " +
							   std::to_string(inflight[q].size()) +
							   " requests never completed, first: " +
							   inflight[q].begin()->second.what,
							   __FILE__, __LINE__);
					ASSERT_EQ(rig.d->stats(q).stopped, 0u);
				}
				for (unsigned q = 0; q < size_queues; q++)
					max_hold = std::max<uint64_t>(max_hold, rig.d->stats(q).max_hold_ns);
				if (worst > worst_stats) {
					worst_stats = worst;
					worst_batch = "batch " + std::to_string(batch) + ", seed " +
						      std::to_string(bseed);
					worst_listing = listing;
				}
				rig.sparse.drop_pages();
			} catch (const ktap::Failure &) {
				ktap::diag("failing batch " + std::to_string(batch) + ", seed " +
					   std::to_string(bseed) + ":");
				for (auto &l : listing)
					ktap::diag(l);
				throw;
			}
		}
		mem.stop();
		mem_drop = mem.drop();
	}
	auto secs = std::chrono::duration_cast<std::chrono::seconds>(clock::now() - t0).count();
	std::string counts;
	for (auto &[k, n] : tally)
		counts += " " + k + "=" + std::to_string(n);
	ktap::diag("completions by kind:status" + counts);

	// The owner killed with a batch in flight.
	uint64_t kseed = seeds();
	auto took = time_to_reap_killed_owner(
		[&](const std::function<void()> &ready) {
			SizeRig rig(b);
			SizeFuzzer f(kseed, *rig.d, b, rig.sparse, rig.buf);
			std::mt19937_64 rng(kseed);
			auto inflight = rig.submit(f, size_cases, rng);
			ready();
		},
		50ms);

	auto worst_ms = std::chrono::duration_cast<std::chrono::milliseconds>(worst_stats).count();
	ktap::diag(std::to_string(secs) + " s; MemAvailable dropped by at most " +
		   std::to_string(mem_drop >> 20) + " MiB; slowest GET_VRING_STATS " +
		   std::to_string(worst_ms) + " ms (" + worst_batch + "); killed owner reaped " +
		   (took ? std::to_string(took->count()) + " ms" : std::string("never")) +
		   " after SIGKILL (seed " + std::to_string(kseed) + ")");
	if (worst_ms >= 1000)
		for (auto &l : worst_listing)
			ktap::diag(l);
	ASSERT_LE(mem_drop, int64_t{ size_queues } * VHOST_BLK_RING_BOUNCE_BYTES + size_mem_slack);
	ASSERT_LT(worst_ms, 1000);
	ktap::diag("longest hold of a ring by its worker " + std::to_string(max_hold / 1000000) +
		   " ms");
	ASSERT_LT(max_hold, uint64_t(std::chrono::nanoseconds(worker_hold_bound()).count()));
	ASSERT_TRUE(took.has_value());
	ASSERT_LE(took->count(), owner_exit_bound().count());
	assert_device_usable(b, 100000);
}
