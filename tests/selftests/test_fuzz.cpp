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

#include <random>
#include <thread>

using namespace vbt;

namespace {

constexpr unsigned fuzz_cases = 10240;
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

TEST_TIMEOUT(fuzzed_rings_never_break_the_module, 900)
{
	auto b = Backend::open(env_brd);
	unsigned done = 0, batches = 0;
	uint64_t completed = 0, stopped = 0;
	std::mt19937_64 seeds(ktap::seed());

	while (done < fuzz_cases) {
		uint64_t bseed = seeds();
		try {
			auto d = std::make_unique<vblk::BlkDriver>(
				driver_options(fuzz_queues, fuzz_ring));
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
