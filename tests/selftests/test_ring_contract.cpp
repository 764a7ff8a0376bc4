// SPDX-License-Identifier: GPL-2.0
// What the device promises about a ring around requests in flight: dirty
// logging of everything it may have written, device ioctls that wait for
// the rings, one rule for ring errors, stable pages, and busy polling that
// gives way to the other rings of its worker.
#include "common.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>

using namespace vbt;
using vblk::BlkDriver;
using vblk::Segment;

namespace {

constexpr uint64_t page = 4096;
using clock_type = std::chrono::steady_clock;

long ms_since(clock_type::time_point start)
{
	return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
					 clock_type::now() - start)
					 .count());
}

// Waits until ring q has taken exactly n requests that have not completed.
void wait_inflight(BlkDriver &d, unsigned q, uint32_t n)
{
	auto start = clock_type::now();
	while (d.stats(q).inflight != n && ms_since(start) < 2000)
		::usleep(1000);
	ASSERT_EQ(d.stats(q).inflight, n);
}

// A dirty bitmap for VHOST_F_LOG_ALL.  The bit of guest page p lives at
// log_base + p / 8; only the bytes for the pages of guest memory are
// mapped (guest physical == user virtual addresses, so log_base itself
// points far below the mapping).
class DirtyLog {
public:
	explicit DirtyLog(BlkDriver &d) : first_byte_(d.memory().base() / page / 8)
	{
		uint64_t last_byte = (d.memory().base() + d.memory().size() - 1) / page / 8;
		size_t len = (last_byte - first_byte_ + page) / page * page;
		map_ = vblk::Mmap::map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		uint64_t log_base = reinterpret_cast<uint64_t>(map_.data()) - first_byte_;
		vblk::check(d.device().try_ioctl(VHOST_SET_LOG_BASE, &log_base), "VHOST_SET_LOG_BASE");
	}

	// Turns logging on: the negotiated features plus VHOST_F_LOG_ALL.
	static void enable(BlkDriver &d)
	{
		d.device().set_features(d.features() | vblk::bit(vblk::f_log_all));
	}

	bool dirty(uint64_t gpa) const
	{
		uint64_t p = gpa / page;
		return map_.bytes()[p / 8 - first_byte_] & (1u << (p % 8));
	}

private:
	uint64_t first_byte_;
	vblk::Mmap map_;
};

// `pages` page-aligned guest pages; page 0 holds a request header.
vblk::GuestBuffer header_pages(BlkDriver &d, size_t pages, uint32_t type, uint64_t sector)
{
	auto buf = d.memory().allocate(pages * page, page);
	auto h = vblk::encode_header(type, 0, sector);
	std::memcpy(buf.data(), h.data(), h.size());
	return buf;
}

uint64_t page_gpa(const vblk::GuestBuffer &buf, size_t n) { return buf.gpa() + n * page; }

// 4 KiB reads queued on ring 0 (not kicked): token -> first sector.
using ReadTokens = std::map<uint64_t, uint64_t>;

void queue_read(BlkDriver &d, ReadTokens &reads, uint64_t sector)
{
	reads[d.submit(0, BlkDriver::read_spec(sector, page), false)] = sector;
}

// Every completion is OK; those of `reads` returned the disk's pattern.
void assert_completions_ok(const std::vector<vblk::Completion> &cs, const ReadTokens &reads,
			   uint64_t seed)
{
	for (auto &c : cs) {
		ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
		if (auto it = reads.find(c.token); it != reads.end())
			ASSERT_BYTES_EQ(c.data, pattern(page, it->second, seed));
	}
}

} // namespace

// ---- Dirty log (VHOST_F_LOG_ALL) ----

namespace {

// A read done with dirty logging on.  Guest pages of `buf`: 0 the header,
// 1..n the data, n+1 untouched, n+2 the status.
struct LoggedRead {
	std::unique_ptr<BlkDriver> d;
	std::optional<DirtyLog> log;
	vblk::GuestBuffer buf;
	vblk::Completion c{};

	uint8_t status() const { return buf.data()[buf.size() - page]; }
	bool dirty(size_t n) const { return log->dirty(page_gpa(buf, n)); }
};

LoggedRead logged_read(const Backend &b, uint64_t sector, size_t data_pages)
{
	LoggedRead r;
	r.d = attached_driver(b);
	r.log.emplace(*r.d);
	DirtyLog::enable(*r.d);
	size_t status_page = data_pages + 2;
	r.buf = header_pages(*r.d, status_page + 1, VIRTIO_BLK_T_IN, sector);
	r.buf.data()[status_page * page] = vblk::status_unwritten;
	Segment segs[] = { { page_gpa(r.buf, 0), 16, false },
			   { page_gpa(r.buf, 1), static_cast<uint32_t>(data_pages * page), true },
			   { page_gpa(r.buf, status_page), 1, true } };
	r.c = r.d->wait(0, r.d->submit_segments(0, segs));
	return r;
}

} // namespace

TEST(failed_read_logs_the_page_of_its_status_byte)
{
	// Past the end of the disk: IOERR before any I/O, used_len 1.
	auto b = Backend::open(env_nullb);
	auto r = logged_read(b, b.sectors(), 2);
	ASSERT_EQ(r.status(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(r.c.used_len, 1u);
	ASSERT_TRUE(r.dirty(4));
	ASSERT_FALSE(r.dirty(0));
	ASSERT_FALSE(r.dirty(3));
}

TEST(read_failed_by_the_disk_logs_its_data_and_status_pages)
{
	// The second half of VBLK_FAIL fails every I/O: the read was started
	// and may have written part of its data.
	auto b = Backend::open(env_fail);
	auto r = logged_read(b, b.sectors() / 2 + 64, 2);
	ASSERT_EQ(r.status(), VIRTIO_BLK_S_IOERR);
	ASSERT_EQ(r.c.used_len, 1u);
	for (size_t p : { 1, 2, 4 })
		ASSERT_TRUE(r.dirty(p));
	ASSERT_FALSE(r.dirty(0));
	ASSERT_FALSE(r.dirty(3));
}

TEST(get_id_with_long_buffer_logs_the_page_of_its_status_byte)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	d->set_serial("dirty-log-serial");
	DirtyLog log(*d);
	DirtyLog::enable(*d);
	// One 8 KiB writable descriptor: the id at its start, the status in
	// its last byte, on the next page.
	auto buf = header_pages(*d, 3, VIRTIO_BLK_T_GET_ID, 0);
	uint8_t *status = buf.data() + 3 * page - 1;
	*status = vblk::status_unwritten;
	Segment segs[] = { { page_gpa(buf, 0), 16, false }, { page_gpa(buf, 1), 2 * page, true } };
	d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(*status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(std::string(reinterpret_cast<char *>(buf.data() + page)), "dirty-log-serial");
	ASSERT_TRUE(log.dirty(page_gpa(buf, 2)));
	ASSERT_TRUE(log.dirty(page_gpa(buf, 1)));
	ASSERT_FALSE(log.dirty(page_gpa(buf, 0)));
}

TEST(read_logs_every_data_page_and_the_status_page)
{
	auto b = Backend::open(env_nullb);
	const uint64_t sector = 7000;
	auto data = pattern(3 * page, sector, ktap::seed());
	b.write_direct(sector * 512, data);
	auto r = logged_read(b, sector, 3);
	ASSERT_EQ(r.status(), VIRTIO_BLK_S_OK);
	ASSERT_EQ(r.c.used_len, 3 * page + 1);
	ASSERT_BYTES_EQ(std::span<const uint8_t>(r.buf.data() + page, 3 * page), data);
	for (size_t p : { 1, 2, 3, 5 })
		ASSERT_TRUE(r.dirty(p));
	ASSERT_FALSE(r.dirty(0));
	ASSERT_FALSE(r.dirty(4));
}

TEST(set_features_log_all_waits_for_requests_in_flight)
{
	auto b = Backend::open(env_delay);
	constexpr unsigned n = 8;
	const uint64_t sector = 2048;
	auto data = pattern(n * page, sector, ktap::seed());
	b.write_direct(sector * 512, data);
	auto d = attached_driver(b);
	DirtyLog log(*d);
	ReadTokens reads;
	for (unsigned i = 0; i < n; i++)
		queue_read(*d, reads, sector + i * 8);
	d->kick(0);
	wait_inflight(*d, 0, n);
	DirtyLog::enable(*d);
	// Every request taken before logging began is in the used ring.
	ASSERT_EQ(d->queue(0).used_idx(), n);
	auto cs = d->poll(0, n, 0ms);
	ASSERT_EQ(cs.size(), size_t{ n });
	assert_completions_ok(cs, reads, ktap::seed());
}

// ---- Device ioctls drain the rings ----

namespace {
enum class DrainingIoctl { set_mem_table, set_log_base, set_log_fd };
} // namespace

TEST_VARIANTS(device_ioctl_waits_for_requests_in_flight, DrainingIoctl, which,
	      ({ { "set_mem_table", DrainingIoctl::set_mem_table },
		 { "set_log_base", DrainingIoctl::set_log_base },
		 { "set_log_fd", DrainingIoctl::set_log_fd } }))
{
	auto b = Backend::open(env_delay);
	constexpr unsigned n = 8;
	const uint64_t rsector = 4096, wsector = 8192;
	b.write_direct(rsector * 512, pattern(n / 2 * page, rsector, ktap::seed()));
	auto written = pattern(n / 2 * page, wsector, ktap::seed() + 1);
	auto d = attached_driver(b);
	// Half writes, half reads, all taken by the ring.
	ReadTokens reads;
	for (unsigned i = 0; i < n / 2; i++) {
		std::span<const uint8_t> w(written.data() + i * page, page);
		d->submit(0, BlkDriver::write_spec(wsector + i * 8, w), false);
		queue_read(*d, reads, rsector + i * 8);
	}
	d->kick(0);
	wait_inflight(*d, 0, n);

	std::optional<DirtyLog> log;
	vblk::EventFd log_fd;
	switch (which) {
	case DrainingIoctl::set_mem_table: {
		vblk::MemRegion r = d->memory().region();
		d->device().set_mem_table({ &r, 1 });
		break;
	}
	case DrainingIoctl::set_log_base:
		log.emplace(*d);
		break;
	case DrainingIoctl::set_log_fd: {
		int fd = log_fd.fd();
		vblk::check(d->device().try_ioctl(VHOST_SET_LOG_FD, &fd), "VHOST_SET_LOG_FD");
		break;
	}
	}
	ASSERT_EQ(d->queue(0).used_idx(), n);

	auto cs = d->poll(0, n, 0ms);
	ASSERT_EQ(cs.size(), size_t{ n });
	assert_completions_ok(cs, reads, ktap::seed());
	ASSERT_BYTES_EQ(b.read_direct(wsector * 512, written.size()), written);
	// The ring goes on.
	auto more = pattern(page, 0, ktap::seed() + 2);
	ASSERT_EQ(d->write(0, 0, more), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(page);
	ASSERT_EQ(d->read(0, 0, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, more);
}

// ---- Ring errors: the ring stops until it is set up again ----

namespace {

struct RingFeatures {
	uint64_t features;
};

const std::vector<std::pair<std::string, RingFeatures>> ring_feature_variants = {
	{ "event_idx", { vblk::default_features } },
	{ "no_event_idx", { vblk::default_features & ~vblk::bit(vblk::f_event_idx) } },
};

std::unique_ptr<BlkDriver> driver_with(const Backend &b, uint64_t features)
{
	auto o = driver_options();
	o.features = features;
	auto d = std::make_unique<BlkDriver>(o);
	d->attach(b.fd());
	return d;
}

// After a ring error on ring 0: the error eventfd fired and the ring is
// stopped, a valid write is not taken even when kicked; set up again
// (detach, base at that write, attach) the ring serves it.
// The error eventfd fires (vq_err) while the worker still holds the ring,
// just before it marks the ring stopped and finishes the batch; the stats
// are read without the ring's mutex, so wait for that to show.
vhost_blk_vring_stats settled_stats(BlkDriver &d, unsigned q)
{
	auto start = clock_type::now();
	auto st = d.stats(q);
	while ((!st.stopped || st.inflight) && ms_since(start) < 2000) {
		::usleep(1000);
		st = d.stats(q);
	}
	return st;
}

void expect_stopped_until_set_up_again(BlkDriver &d, const Backend &b)
{
	ASSERT_TRUE(err_signalled(d, 0));
	ASSERT_EQ(settled_stats(d, 0).stopped, 1u);
	const uint64_t sector = 9000;
	auto data = pattern(page, sector, ktap::seed());
	uint16_t slot = d.queue(0).avail_idx();
	auto t = d.submit(0, BlkDriver::write_spec(sector, data), false);
	d.queue(0).notify();
	ASSERT_TRUE(d.poll(0, 1, 500ms).empty());
	ASSERT_EQ(d.stats(0).stopped, 1u);

	d.detach_ring(0);
	d.device().set_vring_base(0, slot);
	d.reattach_ring(0);
	ASSERT_EQ(d.wait(0, t).status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(d.stats(0).stopped, 0u);
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, page), data);
}

} // namespace

TEST_VARIANTS(duplicate_head_stops_ring_until_set_up_again, RingFeatures, p,
	      (ring_feature_variants))
{
	auto b = Backend::open(env_nullb);
	auto d = driver_with(b, p.features);
	auto &vq = d->queue(0);
	// One read, its head published twice: the module sees the copy while
	// the first is in flight.  The first still completes.
	auto t = d->submit(0, BlkDriver::read_spec(0, 1 << 20), false);
	vq.publish(vq.avail_entry(static_cast<uint16_t>(vq.avail_idx() - 1)));
	vq.notify();
	ASSERT_EQ(d->wait(0, t).status, VIRTIO_BLK_S_OK);
	expect_stopped_until_set_up_again(*d, b);
}

TEST_VARIANTS(bad_avail_head_stops_ring_until_set_up_again, RingFeatures, p,
	      (ring_feature_variants))
{
	auto b = Backend::open(env_nullb);
	auto d = driver_with(b, p.features);
	auto &vq = d->queue(0);
	vq.publish(static_cast<uint16_t>(vq.size() + 3));
	vq.notify();
	expect_stopped_until_set_up_again(*d, b);
}

namespace {

// mprotect()s guest pages for a scope; restores read/write on the way out.
class ProtectPages {
public:
	ProtectPages(uint8_t *addr, size_t len, int prot) : addr_(addr), len_(len)
	{
		vblk::check(::mprotect(addr_, len_, prot), "mprotect");
	}
	~ProtectPages() { ::mprotect(addr_, len_, PROT_READ | PROT_WRITE); }
	ProtectPages(const ProtectPages &) = delete;
	ProtectPages &operator=(const ProtectPages &) = delete;

private:
	uint8_t *addr_;
	size_t len_;
};

} // namespace

TEST(unwritable_status_stops_ring_and_other_rings_go_on)
{
	auto b = Backend::open(env_delay);
	auto d = attached_driver(b, 2);
	// header | data | status, each on a page of its own.
	auto buf = header_pages(*d, 3, VIRTIO_BLK_T_IN, 0);
	buf.data()[2 * page] = vblk::status_unwritten;
	Segment segs[] = { { page_gpa(buf, 0), 16, false },
			   { page_gpa(buf, 1), page, true },
			   { page_gpa(buf, 2), 1, true } };
	d->submit_segments(0, segs);
	wait_inflight(*d, 0, 1);
	{
		ProtectPages ro(buf.data() + 2 * page, page, PROT_READ);
		ASSERT_EQ(d->queue(0).used_idx(), 0u); // still in flight
		ASSERT_TRUE(err_signalled(*d, 0, 3000ms));
		auto st = settled_stats(*d, 0);
		ASSERT_EQ(st.stopped, 1u);
		ASSERT_EQ(st.inflight, 0u);
		// Its status could not be written: not reported.
		ASSERT_EQ(d->queue(0).used_idx(), 0u);
	}
	auto data = pattern(page, 64, ktap::seed());
	ASSERT_EQ(d->write(1, 64, data), VIRTIO_BLK_S_OK);
	std::vector<uint8_t> back(page);
	ASSERT_EQ(d->read(1, 64, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	ASSERT_EQ(d->stats(1).stopped, 0u);
	// The device closes at once (the buffer goes back to its memory first).
	buf.reset();
	auto start = clock_type::now();
	d.reset();
	ASSERT_LT(ms_since(start), 2000);
}

TEST(chain_without_writable_byte_gets_used_len_0_and_ring_goes_on)
{
	auto b = Backend::open(env_nullb);
	auto d = attached_driver(b);
	auto r = raw_request(d->memory(), VIRTIO_BLK_T_OUT, 96, page);
	Segment segs[] = { { r.hdr(), 16, false }, { r.data(), page, false } };
	auto c = d->wait(0, d->submit_segments(0, segs));
	ASSERT_EQ(c.used_len, 0u);
	ASSERT_TRUE(err_signalled(*d, 0));
	ASSERT_EQ(d->stats(0).stopped, 0u);
	auto data = pattern(page, 128, ktap::seed());
	ASSERT_EQ(d->write(0, 128, data), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(b.read_direct(128 * 512, page), data);
}

// ---- Stable pages ----

namespace {

// Sets /sys/block/<dev>/queue/<attr> for a scope and restores the old
// value on the way out, also when the test fails.
class QueueAttrOverride {
public:
	QueueAttrOverride(const Backend &b, const std::string &attr, uint64_t value)
	{
		struct stat st;
		vblk::check(::fstat(b.fd(), &st), "fstat " + b.path());
		path_ = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" +
			std::to_string(minor(st.st_rdev)) + "/queue/" + attr;
		auto old = b.queue_attr(attr);
		if (!old)
			SKIP(path_ + " not readable");
		old_ = *old;
		bool ok = write(value) && b.queue_attr(attr) == value;
		if (!ok) {
			write(old_);
			SKIP(path_ + " not writable");
		}
	}
	~QueueAttrOverride() { write(old_); }
	QueueAttrOverride(const QueueAttrOverride &) = delete;
	QueueAttrOverride &operator=(const QueueAttrOverride &) = delete;

private:
	bool write(uint64_t v)
	{
		std::ofstream f(path_);
		f << v;
		f.flush();
		return static_cast<bool>(f);
	}

	std::string path_;
	uint64_t old_ = 0;
};

// Writes `n` page-aligned 4 KiB requests; returns how many were bounced.
uint64_t bounced_writes(const Backend &b, unsigned n)
{
	auto d = attached_driver(b);
	const uint64_t sector = 20000;
	uint64_t before = d->stats(0).bounced;
	auto data = pattern(n * page, sector, ktap::seed());
	for (unsigned i = 0; i < n; i++)
		ASSERT_EQ(d->write(0, sector + i * 8,
				   std::span<const uint8_t>(data.data() + i * page, page)),
			  VIRTIO_BLK_S_OK);
	uint64_t bounced = d->stats(0).bounced - before;
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
	return bounced;
}

} // namespace

TEST(writes_to_backend_with_stable_writes_are_bounced)
{
	auto b = Backend::open(env_nullb);
	QueueAttrOverride stable(b, "stable_writes", 1);
	ASSERT_EQ(bounced_writes(b, 8), 8u);
}

TEST(writes_to_backend_without_stable_writes_are_zero_copy)
{
	auto b = Backend::open(env_nullb);
	QueueAttrOverride stable(b, "stable_writes", 0);
	ASSERT_EQ(bounced_writes(b, 8), 0u);
}

// ---- Busy polling ----

namespace {

// This process's newest vhost worker thread ("vhost-<owner pid>"; the
// worker of a device closed just before may not be reaped yet), or -1.
pid_t vhost_worker_tid()
{
	std::string want = "vhost-" + std::to_string(::getpid());
	pid_t newest = -1;
	for (auto &e : std::filesystem::directory_iterator("/proc/self/task")) {
		std::ifstream f(e.path() / "comm");
		std::string comm;
		if (std::getline(f, comm) && comm == want)
			newest = std::max<pid_t>(newest, std::stoi(e.path().filename()));
	}
	return newest;
}

// CPU time one of our threads has run, nanoseconds (schedstat).
uint64_t thread_runtime_ns(pid_t tid)
{
	std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/schedstat");
	uint64_t ns = 0;
	f >> ns;
	return ns;
}

// Two rings on the default worker, ring 0 busy polling for up to 5 s.
// Polling also ends when the worker's CPU has something else to run
// (need_resched), whatever the kernel does; a worker with a CPU to itself
// is where the other rings waited out the whole timeout.  So the worker
// gets a CPU of its own, the test's threads the others, and SCHED_FIFO so
// that kernel threads waking on its CPU do not end the polling early.
struct PollingDevice {
	std::unique_ptr<BlkDriver> d;
	pid_t worker;
};

PollingDevice polling_device(const Backend &b)
{
	auto d = attached_driver(b, 2);
	ASSERT_EQ(d->stats(0).worker_id, d->stats(1).worker_id);
	pid_t worker = vhost_worker_tid();
	ASSERT_GT(worker, 0);
	long ncpus = ::sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpus < 2)
		SKIP("needs 2 CPUs (the polling worker gets one of its own)");
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET(ncpus - 1, &cpus);
	vblk::check(::sched_setaffinity(worker, sizeof(cpus), &cpus), "sched_setaffinity worker");
	CPU_ZERO(&cpus);
	for (long c = 0; c < ncpus - 1; c++)
		CPU_SET(c, &cpus);
	vblk::check(::sched_setaffinity(0, sizeof(cpus), &cpus), "sched_setaffinity");
	struct sched_param fifo = { 1 };
	vblk::check(::sched_setscheduler(worker, SCHED_FIFO, &fifo), "sched_setscheduler worker");
	// Attaching queued a kick of each ring: a request on each makes sure
	// the worker has run them before ring 0 polls.
	std::vector<uint8_t> buf(page);
	for (unsigned q = 0; q < 2; q++)
		ASSERT_EQ(d->read(q, 0, buf), VIRTIO_BLK_S_OK);
	d->device().set_vring_busyloop_timeout(0, 5000000);
	return { std::move(d), worker };
}

// Kicks ring 0 with nothing available and waits until the worker is
// polling it: running (spinning) most of a 20 ms window.  Only then is the
// kick taken off the worker's queue, so a later kick of ring 1 is work the
// poller can see.
void start_polling(PollingDevice &p)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		p.d->queue(0).notify();
		::usleep(20000);
		uint64_t before = thread_runtime_ns(p.worker);
		::usleep(20000);
		if (thread_runtime_ns(p.worker) - before > 10'000'000)
			return;
	}
	// On the KASAN/lockdep kernel the worker's polling is cut short in
	// the TCG VM (not investigated yet): these are timing tests of the
	// polling, they judge the stock kernel.  Polling's correctness is
	// tested on both (busy_polling_ring_round_trips_every_request).
	if (debug_kernel())
		SKIP("the worker does not keep polling on the debug kernel");
	ktap::fail("the worker does not poll ring 0", __FILE__, __LINE__);
}

// Ends ring 0's polling at once (work queued for the worker stops it), so
// the device closes without waiting out the timeout.
void stop_polling(PollingDevice &p) { p.d->queue(1).notify(); }

} // namespace

// Each round catches ring 0 at another point of its polling.  The
// scheduler still ends a poll now and then (in the test VM a kernel whose
// polling ignores other work held ring 1 back 70-900 ms, not the whole
// 5 s; giving way takes 0-2 ms), so the median of the rounds says whether
// ring 1 waits for the poll, whatever the emulator's host is doing.
TEST_TIMEOUT(busy_polling_ring_does_not_delay_another_ring_on_its_worker, 120)
{
	auto b = Backend::open(env_nullb);
	constexpr int rounds = 8;
	std::vector<long> took;
	std::string line;
	for (int round = 0; round < rounds; round++) {
		auto p = polling_device(b);
		start_polling(p);
		::usleep(static_cast<useconds_t>(round * 10000));
		uint64_t s = 512 + round * 8;
		auto data = pattern(page, s, ktap::seed());
		auto start = clock_type::now();
		ASSERT_EQ(p.d->write(1, s, data), VIRTIO_BLK_S_OK);
		took.push_back(ms_since(start));
		line += " " + std::to_string(took.back());
		ASSERT_BYTES_EQ(b.read_direct(s * 512, page), data);
		stop_polling(p);
	}
	ktap::diag("ring 1 requests while ring 0 polls (ms):" + line);
	std::sort(took.begin(), took.end());
	ASSERT_LT(took[rounds / 2], 100);
}

TEST(busy_polling_ring_with_long_timeout_completes_its_own_requests)
{
	auto b = Backend::open(env_nullb);
	auto p = polling_device(b);
	start_polling(p);
	const uint64_t sector = 30000;
	for (unsigned i = 0; i < 16; i++) {
		uint64_t s = sector + i * 8;
		auto data = pattern(page, s, ktap::seed());
		auto start = clock_type::now();
		ASSERT_EQ(p.d->write(0, s, data), VIRTIO_BLK_S_OK);
		std::vector<uint8_t> back(page);
		ASSERT_EQ(p.d->read(0, s, back), VIRTIO_BLK_S_OK);
		ASSERT_LT(ms_since(start), 1000);
		ASSERT_BYTES_EQ(back, data);
	}
	stop_polling(p);
}

// The kick of ring 1 may already be taken off the worker's queue, in the
// same batch as ring 0's kick, when ring 0 starts to poll: a higher
// priority thread holds the worker's CPU while both rings are kicked.
TEST(busy_polling_ring_does_not_delay_a_ring_kicked_in_the_same_batch)
{
	auto b = Backend::open(env_nullb);
	auto p = polling_device(b);
	long ncpus = ::sysconf(_SC_NPROCESSORS_ONLN);
	std::atomic<bool> holding{ false }, release{ false };
	std::thread hold([&] {
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		CPU_SET(ncpus - 1, &cpus);
		::sched_setaffinity(0, sizeof(cpus), &cpus);
		struct sched_param fifo = { 2 };
		::sched_setscheduler(0, SCHED_FIFO, &fifo);
		holding = true;
		auto start = clock_type::now();
		while (!release && ms_since(start) < 1000)
			;
	});
	while (!holding)
		::usleep(1000);
	::usleep(10000);
	p.d->queue(0).notify();
	auto data = pattern(page, 640, ktap::seed());
	auto t = p.d->submit(1, BlkDriver::write_spec(640, data), false);
	p.d->queue(1).notify();
	::usleep(10000);
	auto start = clock_type::now();
	release = true;
	hold.join();
	ASSERT_EQ(p.d->wait(1, t).status, VIRTIO_BLK_S_OK);
	long took = ms_since(start);
	ktap::diag("ring 1 request kicked with ring 0: " + std::to_string(took) + " ms");
	ASSERT_LT(took, 100);
	stop_polling(p);
}
