// SPDX-License-Identifier: GPL-2.0
// vblk-bench: one cell of the benchmark matrix.  The same random workload,
// from the same userspace virtio-blk driver (libvblk), against
//   kernel      /dev/vhost-blk serving --backend (this process owns it),
//   vhost-user  any vhost-user-blk backend on --socket (qemu-storage-daemon,
//               vhost-blkctl serve); --serving-pid names its process,
//   raw         --backend itself with io_uring + O_DIRECT (the limit),
// repeated --runs times after a warm-up; prints each run and the medians
// of IOPS, p50/p99 latency and CPU time per I/O of the serving side.
//
// Exit codes: 0 all requests completed OK; 1 a request failed;
// 2 setup failed.
#include "cpu.hpp"
#include "raw_uring.hpp"

#include <vblk/cpu_list.hpp>
#include <vblk/vblk.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <map>
#include <set>
#include <sys/ioctl.h>
#include <sys/stat.h>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed_io = 1;
constexpr int exit_setup = 2;

struct Options {
	std::string target = "kernel";
	std::string backend;
	std::string socket;
	std::string device = vblk::VhostBlkDevice::default_path;
	pid_t serving_pid = 0;
	unsigned queues = 1;
	unsigned workers = 1;
	unsigned poll_us = 0;
	unsigned driver_poll_us = 0;
	std::string cpus;		// the driver's threads (and what they create)
	std::string worker_cpus;	// the vhost workers' threads (kernel)
	std::string rw = "randread";
	unsigned depth = 32;
	uint32_t bs = 4096;
	unsigned seconds = 3;
	unsigned warmup = 1;
	unsigned runs = 3;
	uint64_t size = 0;
	std::vector<std::string> tag_args;
	std::map<std::string, std::string> tags;
	bool json = false;
	std::string write_cache;	// kernel: VHOST_BLK_SET_WRITE_CACHE
	uint32_t block_size = 0;	// kernel: VHOST_BLK_SET_BLOCK_SIZE (0: the backend's)
	bool flush_after_write = false;
};

struct Run {
	vblk::WorkloadResult res;
	bench::CpuSample cpu;
};

double median(std::vector<double> v)
{
	if (v.empty())
		return 0;
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool regular_file(const std::string &path)
{
	struct stat st;
	return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A block device's size, or a raw image file's.
uint64_t device_bytes(const std::string &path)
{
	vblk::UniqueFd fd = vblk::UniqueFd::open(path, O_RDONLY);
	uint64_t bytes = 0;
	if (regular_file(path)) {
		struct stat st;
		vblk::check(::fstat(fd.get(), &st), "fstat " + path);
		return static_cast<uint64_t>(st.st_size);
	}
	vblk::check(::ioctl(fd.get(), BLKGETSIZE64, &bytes), "BLKGETSIZE64 " + path);
	return bytes;
}

uint16_t ring_size_for(unsigned depth)
{
	return static_cast<uint16_t>(std::clamp(std::bit_ceil(depth * 3), 64u, 32768u));
}

// The object a cell runs against; measure() is one timed run.
class Target {
public:
	virtual ~Target() = default;
	virtual vblk::WorkloadResult measure(const vblk::WorkloadOptions &w) = 0;
	virtual nlohmann::json describe() const = 0;
};

class DriverTarget : public Target {
public:
	explicit DriverTarget(const Options &o)
	{
		vblk::BlkDriverOptions d;
		d.num_queues = o.queues;
		d.queue_size = ring_size_for(o.depth);
		d.memory_size = std::max<size_t>(size_t{ 64 } << 20,
						 o.queues * o.depth * (o.bs + 4096) * 2 + (16 << 20));
		if (o.target == "kernel") {
			d.device_path = o.device;
			// A raw image file is attached opened with O_DIRECT.
			backend_ = vblk::UniqueFd::open(
				o.backend, O_RDWR | (regular_file(o.backend) ? O_DIRECT : 0));
			bytes_ = device_bytes(o.backend);
			drv_ = std::make_unique<vblk::BlkDriver>(d);
			ring_workers_ = drv_->spread_workers(o.workers);
			for (unsigned q = 0; q < o.queues && o.poll_us; q++)
				drv_->device().set_vring_busyloop_timeout(q, o.poll_us);
			polling_ = o.poll_us != 0;
			if (o.block_size)
				drv_->device().set_block_size(o.block_size);
			drv_->attach(backend_.get());
			// Attached, every worker serves a ring: its thread has a name.
			if (!o.worker_cpus.empty()) {
				auto cpus = vblk::parse_cpu_list(o.worker_cpus);
				std::set<unsigned> ids(ring_workers_.begin(), ring_workers_.end());
				if (ids.empty())
					ids.insert(drv_->device().get_vring_worker(0));
				for (unsigned id : ids)
					vblk::set_thread_cpus(drv_->device().worker_tid(id), cpus);
			}
			if (!o.write_cache.empty())
				drv_->device().set_write_cache(
					o.write_cache == "writeback"
						? VHOST_BLK_WRITE_CACHE_WRITEBACK
						: VHOST_BLK_WRITE_CACHE_WRITETHROUGH);
		} else {
			d.vhost_user_socket = o.socket;
			drv_ = std::make_unique<vblk::BlkDriver>(d);
			bytes_ = o.size;
			if (drv_->vhost_user().has_protocol_feature(vhost_user::pf_config)) {
				auto cfg = drv_->vhost_user().get_config(sizeof(uint64_t));
				uint64_t sectors;
				std::memcpy(&sectors, cfg.data(), sizeof(sectors));
				bytes_ = le64toh(sectors) * 512;
			}
			if (!bytes_)
				throw std::invalid_argument("backend has no CONFIG: give --size");
		}
	}

	vblk::WorkloadResult measure(const vblk::WorkloadOptions &w) override
	{
		return vblk::run_workload(*drv_, "", bytes_, w);
	}

	nlohmann::json describe() const override
	{
		nlohmann::json j{ { "features", drv_->features() }, { "device_bytes", bytes_ } };
		if (!ring_workers_.empty())
			j["ring_workers"] = ring_workers_;
		// Adaptive busy polling, after the last run: each ring's window
		// and how often a poll found the next request or ran out.
		if (polling_) {
			nlohmann::json polls = nlohmann::json::array();
			for (unsigned q = 0; q < drv_->num_queues(); q++) {
				auto st = drv_->stats(q);
				polls.push_back({ { "window_us", st.poll_us },
						  { "hits", st.poll_hits },
						  { "misses", st.poll_misses } });
			}
			j["poll"] = polls;
		}
		return j;
	}

private:
	vblk::UniqueFd backend_;
	uint64_t bytes_ = 0;
	std::unique_ptr<vblk::BlkDriver> drv_;
	std::vector<unsigned> ring_workers_;
	bool polling_ = false;
};

class RawTarget : public Target {
public:
	explicit RawTarget(const Options &o) : path_(o.backend), queues_(o.queues)
	{
		bytes_ = device_bytes(o.backend);
	}
	vblk::WorkloadResult measure(const vblk::WorkloadOptions &w) override
	{
		return bench::run_raw_uring(path_, bytes_, queues_, w);
	}
	nlohmann::json describe() const override { return { { "device_bytes", bytes_ } }; }

private:
	std::string path_;
	unsigned queues_;
	uint64_t bytes_ = 0;
};

int run(const Options &o)
{
	if (o.target == "kernel" || o.target == "raw") {
		if (o.backend.empty())
			throw std::invalid_argument("--target " + o.target + " needs --backend");
	} else if (o.socket.empty()) {
		throw std::invalid_argument("--target vhost-user needs --socket");
	}
	if (o.target != "kernel" && o.poll_us)
		throw std::invalid_argument("--poll-us is for --target kernel");
	if (o.target != "kernel" && !o.write_cache.empty())
		throw std::invalid_argument("--write-cache is for --target kernel");
	if (o.target != "kernel" && o.block_size)
		throw std::invalid_argument("--block-size is for --target kernel");
	if (o.target == "raw" && o.flush_after_write)
		throw std::invalid_argument("--flush-after-write is for a virtio target");
	if (o.target != "kernel" && o.workers != 1)
		throw std::invalid_argument("--workers is for --target kernel (a daemon's workers "
					    "are its own: tag them with --tag)");
	if (o.target != "kernel" && !o.worker_cpus.empty())
		throw std::invalid_argument("--worker-cpus is for --target kernel");
	// Before any thread or worker exists: they inherit it.
	if (!o.cpus.empty())
		vblk::set_thread_cpus(0, vblk::parse_cpu_list(o.cpus));
	std::unique_ptr<Target> t;
	if (o.target == "raw")
		t = std::make_unique<RawTarget>(o);
	else
		t = std::make_unique<DriverTarget>(o);

	vblk::WorkloadOptions w;
	w.kind = vblk::parse_workload(o.rw);
	w.depth = o.depth;
	w.block_size = o.bs;
	w.region_bytes = o.size;
	w.poll_us = o.driver_poll_us;
	w.flush_after_write = o.flush_after_write;
	if (o.warmup) {
		w.duration = std::chrono::seconds(o.warmup);
		t->measure(w);
	}
	w.duration = std::chrono::seconds(o.seconds);
	bench::CpuMeter meter(o.target == "vhost-user" ? o.serving_pid : 0);
	std::vector<Run> runs;
	bool ok = true;
	for (unsigned i = 0; i < o.runs; i++) {
		auto c0 = meter.sample();
		Run r{ t->measure(w), {} };
		auto c1 = meter.sample();
		r.cpu = c1 - c0;
		ok &= r.res.ok();
		runs.push_back(std::move(r));
		w.seed++;
	}

	// raw: the kernel's share runs in the submitting threads; their CPU
	// is the serving side's.
	const bool raw = o.target == "raw";
	auto per_io = [](uint64_t ns, uint64_t ops) { return ops ? ns / 1000.0 / ops : 0.0; };
	nlohmann::json jr = nlohmann::json::array();
	std::vector<double> iops, p50, p99, mean, scpu, dcpu, ssleep, dsleep;
	for (const Run &r : runs) {
		uint64_t serving = raw ? r.cpu.driver_ns : r.cpu.serving_ns;
		uint64_t serving_sleeps = raw ? r.cpu.driver_sleeps : r.cpu.serving_sleeps;
		jr.push_back(nlohmann::json{ { "iops", r.res.iops() },
			       { "ops", r.res.ops },
			       { "errors", r.res.errors },
			       { "seconds", r.res.seconds },
			       { "p50_us", r.res.latency.p50_us },
			       { "p99_us", r.res.latency.p99_us },
			       { "mean_us", r.res.latency.mean_us },
			       { "serving_cpu_s", serving / 1e9 },
			       { "driver_cpu_s", r.cpu.driver_ns / 1e9 },
			       { "serving_sleeps", serving_sleeps },
			       { "driver_sleeps", r.cpu.driver_sleeps } });
		iops.push_back(r.res.iops());
		p50.push_back(r.res.latency.p50_us);
		p99.push_back(r.res.latency.p99_us);
		mean.push_back(r.res.latency.mean_us);
		scpu.push_back(per_io(serving, r.res.ops));
		dcpu.push_back(per_io(r.cpu.driver_ns, r.res.ops));
		auto ratio = [](uint64_t n, uint64_t ops) { return ops ? double(n) / ops : 0.0; };
		ssleep.push_back(ratio(serving_sleeps, r.res.ops));
		dsleep.push_back(ratio(r.cpu.driver_sleeps, r.res.ops));
	}
	nlohmann::json out{
		{ "target", o.target },
		{ "backend", o.backend },
		{ "socket", o.socket },
		{ "rw", o.rw },
		{ "bs", o.bs },
		{ "block_size", o.block_size },
		{ "depth", o.depth },
		{ "queues", o.queues },
		{ "workers", o.target == "kernel" ? nlohmann::json(o.workers) : nlohmann::json() },
		{ "poll_us", o.poll_us },
		{ "driver_poll_us", o.driver_poll_us },
		{ "cpus", o.cpus.empty() ? nlohmann::json() : nlohmann::json(o.cpus) },
		{ "worker_cpus", o.worker_cpus.empty() ? nlohmann::json() : nlohmann::json(o.worker_cpus) },
		{ "seconds", o.seconds },
		{ "tags", o.tags },
		{ "setup", t->describe() },
		{ "runs", jr },
		{ "median",
		  { { "iops", median(iops) },
		    { "p50_us", median(p50) },
		    { "p99_us", median(p99) },
		    { "mean_us", median(mean) },
		    { "serving_cpu_us_per_io", median(scpu) },
		    { "driver_cpu_us_per_io", median(dcpu) },
		    // Sleeps (voluntary context switches) per I/O: each is
		    // a wake-up; raw's are the submitting threads'.
		    { "serving_sleeps_per_io", median(ssleep) },
		    { "driver_sleeps_per_io", median(dsleep) } } },
		{ "ok", ok },
	};
	if (!ok)
		for (const Run &r : runs)
			if (!r.res.first_error.empty()) {
				out["first_error"] = r.res.first_error;
				break;
			}
	if (o.json) {
		std::cout << out.dump() << std::endl;
	} else {
		std::printf("%s %s bs %u depth %u queues %u%s: %u runs of %u s\n", o.target.c_str(),
			    o.rw.c_str(), o.bs, o.depth, o.queues,
			    o.target == "kernel" ? (" workers " + std::to_string(o.workers)).c_str() : "",
			    o.runs, o.seconds);
		for (const auto &r : jr)
			std::printf("  %10.0f IOPS  p50 %8.1f us  p99 %8.1f us  serving CPU %.3f s\n",
				    r["iops"].get<double>(), r["p50_us"].get<double>(),
				    r["p99_us"].get<double>(), r["serving_cpu_s"].get<double>());
		const auto &m = out["median"];
		std::printf("median %10.0f IOPS  p50 %8.1f us  p99 %8.1f us  serving CPU %.2f us/IO  "
			    "driver CPU %.2f us/IO  sleeps/IO serving %.2f driver %.2f  %s\n",
			    m["iops"].get<double>(), m["p50_us"].get<double>(), m["p99_us"].get<double>(),
			    m["serving_cpu_us_per_io"].get<double>(),
			    m["driver_cpu_us_per_io"].get<double>(),
			    m["serving_sleeps_per_io"].get<double>(),
			    m["driver_sleeps_per_io"].get<double>(), ok ? "OK" : "ERRORS");
	}
	return ok ? exit_ok : exit_failed_io;
}

} // namespace

int main(int argc, char **argv)
{
	Options o;
	CLI::App app{ "One benchmark cell: a random workload against /dev/vhost-blk, a vhost-user-blk "
		      "backend or the raw device, measured the same way",
		      "vblk-bench" };
	app.add_option("--target", o.target, "what serves the I/O")
		->check(CLI::IsMember({ "kernel", "vhost-user", "raw" }))
		->capture_default_str();
	app.add_option("--backend", o.backend, "block device or raw image file (kernel, raw)")
		->check(CLI::ExistingFile);
	app.add_option("--socket", o.socket, "vhost-user-blk socket (vhost-user)");
	app.add_option("--serving-pid", o.serving_pid,
		       "process serving the socket, for its CPU time (vhost-user)");
	app.add_option("--device", o.device, "vhost-blk device node (kernel)")->capture_default_str();
	app.add_option("--queues", o.queues, "virtqueues (raw: io_uring threads)")
		->check(CLI::Range(1u, 64u))
		->capture_default_str();
	app.add_option("--workers", o.workers, "vhost workers, rings spread round-robin (kernel)")
		->check(CLI::Range(1u, 64u))
		->capture_default_str();
	app.add_option("--poll-us", o.poll_us,
		       "busy-poll idle rings this long (VHOST_SET_VRING_BUSYLOOP_TIMEOUT; kernel)")
		->check(CLI::Range(0u, 100000u));
	app.add_option("--driver-poll-us", o.driver_poll_us,
		       "driver spins on the used ring this long before sleeping (a guest's "
		       "virtio-blk poll queues; kernel, vhost-user)")
		->check(CLI::Range(0u, 100000u));
	app.add_option("--cpus", o.cpus,
		       "CPU list the driver's threads run on (and the vhost workers, which "
		       "inherit it, unless --worker-cpus)")
		->check(vblk::cpu_list_error);
	app.add_option("--worker-cpus", o.worker_cpus,
		       "CPU list for every vhost worker's thread, named by "
		       "VHOST_BLK_GET_WORKER_TID (kernel)")
		->check(vblk::cpu_list_error);
	app.add_option("--rw", o.rw, "workload")
		->check(CLI::IsMember({ "randread", "randwrite" }))
		->capture_default_str();
	app.add_option("--write-cache", o.write_cache,
		       "the device's write cache mode, VHOST_BLK_SET_WRITE_CACHE (kernel; default: "
		       "the module's, write-back with FLUSH)")
		->check(CLI::IsMember({ "writeback", "writethrough" }));
	app.add_option("--block-size", o.block_size,
		       "the guest's logical block size, VHOST_BLK_SET_BLOCK_SIZE (kernel; below the "
		       "backend's: 512e read-modify-write)")
		->check(CLI::IsMember({ 512u, 1024u, 2048u, 4096u }));
	app.add_flag("--flush-after-write", o.flush_after_write,
		     "randwrite: follow each write by a FLUSH, the pair counted as one I/O "
		     "(durable writes without FUA)");
	app.add_option("--depth", o.depth, "requests in flight per queue")
		->check(CLI::Range(1u, 1024u))
		->capture_default_str();
	app.add_option("--bs", o.bs, "bytes per request")
		->check(CLI::Range(512u, 1u << 20))
		->capture_default_str();
	app.add_option("--seconds", o.seconds, "length of each run")
		->check(CLI::Range(1u, 3600u))
		->capture_default_str();
	app.add_option("--warmup", o.warmup, "seconds of unmeasured I/O first")->capture_default_str();
	app.add_option("--runs", o.runs, "measured runs (medians are reported)")
		->check(CLI::Range(1u, 100u))
		->capture_default_str();
	app.add_option("--size", o.size, "bytes of the disk to use (default: all)");
	app.add_option("--tag", o.tag_args, "KEY=VALUE[,KEY=VALUE...] copied into the JSON's tags")
		->delimiter(',')
		->check([](const std::string &s) {
			auto eq = s.find('=');
			return eq == std::string::npos || eq == 0 ? "tag '" + s + "' is not KEY=VALUE"
								  : std::string();
		});
	app.add_flag("--json", o.json, "one JSON line");
	CLI11_PARSE(app, argc, argv);
	for (const auto &t : o.tag_args)
		o.tags[t.substr(0, t.find('='))] = t.substr(t.find('=') + 1);

	try {
		return run(o);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "vblk-bench: %s\n", e.what());
		return exit_setup;
	}
}
