// SPDX-License-Identifier: GPL-2.0
// Faults and teardown under load: the owner killed at random points with
// every acknowledged write checked on the disk, the backend device removed
// while requests run, a flaky backend.  The kill and detach suites run on
// null_blk and on a file on ext4 (file.c's path).  Nothing may be lost or doubled,
// nothing may hang, and the module must unload afterwards (runner).
#include "common.hpp"

#include <csignal>
#include <fstream>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vbt;

namespace {

// Acknowledged writes, shared with a child that may be killed any time.
struct AckLog {
	static constexpr unsigned max = 1 << 16;
	uint64_t count;
	uint64_t sector[max];
	uint64_t seed[max];
};

// Completions of a run where each request may succeed or fail.
struct Tally {
	uint64_t ok = 0, ioerr = 0, other = 0;

	void add(const std::vector<vblk::Completion> &cs)
	{
		for (auto &c : cs) {
			if (c.status == VIRTIO_BLK_S_OK)
				ok++;
			else if (c.status == VIRTIO_BLK_S_IOERR)
				ioerr++;
			else
				other++;
		}
	}
	uint64_t done() const { return ok + ioerr + other; }
	std::string str(uint64_t submitted) const
	{
		return std::to_string(submitted) + " submitted: " + std::to_string(ok) + " ok, " +
		       std::to_string(ioerr) + " ioerr";
	}
};

// A block device, or a regular file of `size` bytes on a filesystem.
struct Disk {
	const char *env;
	bool file;

	Backend open(uint64_t size) const
	{
		return file ? Backend::file(env, size) : Backend::open(env);
	}
};

#define DISKS ({ { "nullb", { env_nullb, false } }, { "file_ext4", { env_ext4_dir, true } } })

} // namespace

TEST_VARIANTS_TIMEOUT(owner_killed_at_random_points_keeps_every_acknowledged_write, Disk, disk,
		      300, DISKS)
{
	constexpr int rounds = 25;
	constexpr unsigned nq = 2;
	// Round r writes 4 MiB from 2 MiB + r * 4 MiB.
	auto b = disk.open(128 << 20);
	std::mt19937_64 rng(ktap::seed());
	void *p = ::mmap(nullptr, sizeof(AckLog), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	auto *log = static_cast<AckLog *>(p);
	uint64_t checked = 0;

	for (int round = 0; round < rounds; round++) {
		log->count = 0;
		uint64_t base = 4096 + round * 8192; // each round its own sectors
		int ready[2];
		ASSERT_EQ(::pipe(ready), 0);
		std::fflush(nullptr);
		pid_t pid = ::fork();
		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			::close(ready[0]);
			auto d = attached_driver(b, nq, 128);
			std::unordered_map<uint64_t, uint64_t> at; // token -> sector
			uint64_t next = 0;
			bool told = false;
			for (;;) {
				for (unsigned q = 0; q < nq; q++) {
					while (d->queue(q).num_free() >= 3 && next < 1024) {
						uint64_t s = base + next++ * 8;
						at[d->submit(q, vblk::BlkDriver::write_spec(
								    s, pattern(4096, s, round)),
							     false)] = s;
					}
					d->kick(q);
					for (auto &c : d->poll(q, 0, 1ms)) {
						if (c.status != VIRTIO_BLK_S_OK)
							::_exit(4);
						// Acknowledged: it must be on the disk.
						uint64_t i = log->count;
						log->sector[i] = at.at(c.token);
						log->seed[i] = round;
						__atomic_store_n(&log->count, i + 1, __ATOMIC_RELEASE);
						at.erase(c.token);
					}
				}
				if (!told) {
					char c = 1;
					told = ::write(ready[1], &c, 1) == 1;
				}
				if (next >= 1024 && at.empty())
					next = 0; // go round again, same data
			}
		}
		::close(ready[1]);
		char c;
		ASSERT_EQ(::read(ready[0], &c, 1), 1);
		::close(ready[0]);
		std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200000));
		::kill(pid, SIGKILL);
		int status = 0;
		ASSERT_EQ(::waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFSIGNALED(status));

		uint64_t n = __atomic_load_n(&log->count, __ATOMIC_ACQUIRE);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t s = log->sector[i];
			ASSERT_BYTES_EQ(b.read_direct(s * 512, 4096), pattern(4096, s, log->seed[i]));
		}
		checked += n;
	}
	::munmap(p, sizeof(AckLog));
	ktap::diag(std::to_string(rounds) + " owners killed, " + std::to_string(checked) +
		   " acknowledged writes found on the disk");
	ASSERT_GT(checked, 0u); // else nothing was checked
	assert_device_usable(b);
}

TEST_TIMEOUT(backend_removed_under_io_fails_requests_and_unwinds, 120)
{
	const std::string cfg = "/sys/kernel/config/nullb";
	struct stat st;
	if (::stat(cfg.c_str(), &st) != 0)
		SKIP("null_blk configfs not available");
	if (::geteuid() != 0)
		SKIP("needs root");
	const std::string dir = cfg + "/vblkrm";
	::rmdir(dir.c_str());
	ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
	write_file(dir + "/size", "64");
	write_file(dir + "/memory_backed", "1");
	write_file(dir + "/power", "1");
	std::this_thread::sleep_for(100ms);

	uint64_t submitted = 0;
	Tally t;
	{
		vblk::UniqueFd fd(::open("/dev/vblkrm", O_RDWR));
		ASSERT_TRUE(fd.get() >= 0);
		vblk::BlkDriver d(driver_options(2, 128));
		d.attach(fd.get());
		auto data = pattern(4096, 0, 3);
		bool removed = false;
		for (int round = 0; round < 200; round++) {
			for (unsigned q = 0; q < 2; q++) {
				while (d.queue(q).num_free() >= 3) {
					uint64_t s = (submitted % 8192) * 8 % 131072;
					d.submit(q, vblk::BlkDriver::write_spec(s, data), false);
					submitted++;
				}
				d.kick(q);
			}
			if (round == 20) {
				// The disk goes away with requests in flight.
				write_file(dir + "/power", "0");
				removed = true;
			}
			for (unsigned q = 0; q < 2; q++)
				t.add(d.poll(q, 0, 2ms));
			if (removed && round > 60)
				break;
		}
		for (unsigned q = 0; q < 2; q++)
			while (d.pending(q))
				t.add(d.poll(q, 1, 10000ms));
	}
	::rmdir(dir.c_str());
	ktap::diag(t.str(submitted));
	ASSERT_EQ(t.done(), submitted);
	ASSERT_EQ(t.other, 0u);
	ASSERT_GT(t.ok, 0u);
	ASSERT_GT(t.ioerr, 0u);
}

TEST_TIMEOUT(flaky_backend_fails_some_requests_and_loses_none, 120)
{
	auto b = Backend::open("VBLK_FLAKEY");
	auto d = attached_driver(b, 2, 128);
	uint64_t submitted = 0;
	Tally t;
	auto data = pattern(4096, 0, 5);
	auto until = std::chrono::steady_clock::now() + 5s; // up 1 s, down 1 s
	while (std::chrono::steady_clock::now() < until) {
		for (unsigned q = 0; q < 2; q++) {
			for (int i = 0; i < 8 && d->queue(q).num_free() >= 3; i++) {
				uint64_t s = (submitted % 4096) * 8;
				if (submitted % 2)
					d->submit(q, vblk::BlkDriver::read_spec(s, 4096), false);
				else
					d->submit(q, vblk::BlkDriver::write_spec(s, data), false);
				submitted++;
			}
			d->kick(q);
			t.add(d->poll(q, 0, 5ms));
		}
	}
	for (unsigned q = 0; q < 2; q++)
		while (d->pending(q))
			t.add(d->poll(q, 1, 10000ms));
	ktap::diag(t.str(submitted));
	ASSERT_EQ(t.done(), submitted);
	ASSERT_EQ(t.other, 0u);
	ASSERT_GT(t.ok, 0u);
	ASSERT_GT(t.ioerr, 0u);
	auto st0 = d->stats(0), st1 = d->stats(1);
	ASSERT_EQ(st0.status_ioerr + st1.status_ioerr, t.ioerr);
	ASSERT_EQ(st0.status_ok + st1.status_ok, t.ok);
}

TEST_VARIANTS_TIMEOUT(rings_detached_and_reattached_under_load_many_times_lose_nothing, Disk,
		      disk, 300, DISKS)
{
	constexpr unsigned nq = 2, cycles = 100;
	const uint64_t region = 1u << 15; // sectors per queue: 16 MiB, 6.25 used
	auto b = disk.open(nq * region * 512);
	auto d = attached_driver(b, nq, 256);
	std::vector<uint64_t> next(nq), submitted(nq), done(nq);
	std::vector<std::vector<unsigned>> seed_of(nq); // per written block

	auto reap = [&](unsigned q, size_t min, std::chrono::milliseconds t) {
		for (auto &c : d->poll(q, min, t)) {
			ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
			done[q]++;
		}
	};
	for (unsigned cycle = 0; cycle < cycles; cycle++) {
		for (unsigned q = 0; q < nq; q++) {
			for (unsigned i = 0; i < 16 && d->queue(q).num_free() >= 3; i++) {
				uint64_t s = q * region + next[q]++ * 8;
				seed_of[q].push_back(cycle);
				d->submit(q, vblk::BlkDriver::write_spec(s, pattern(4096, s, cycle)),
					  i % 4 == 3);
				submitted[q]++;
			}
			d->kick(q);
		}
		// Stop one ring mid-flight: its base must match what it completed.
		unsigned q = cycle % nq;
		d->detach_ring(q);
		ASSERT_EQ(d->stats(q).inflight, 0u);
		uint16_t base = static_cast<uint16_t>(d->get_vring_base(q));
		ASSERT_EQ(d->queue(q).used_idx(), base);
		reap(q, 0, 0ms);
		d->reattach_ring(q);
		for (unsigned r = 0; r < nq; r++)
			reap(r, 0, 0ms);
	}
	for (unsigned q = 0; q < nq; q++) {
		while (done[q] < submitted[q])
			reap(q, 1, 10000ms);
		ASSERT_EQ(d->stats(q).requests[VHOST_BLK_STAT_OUT], submitted[q]);
		auto disk = b.read_direct(q * region * 512, next[q] * 4096);
		for (uint64_t i = 0; i < next[q]; i++) {
			uint64_t s = q * region + i * 8;
			ASSERT_BYTES_EQ(std::span<const uint8_t>(disk).subspan(i * 4096, 4096),
					pattern(4096, s, seed_of[q][i]));
		}
	}
	ktap::diag(std::to_string(cycles) + " detach/re-attach cycles, " +
		   std::to_string(submitted[0] + submitted[1]) + " writes");
}
