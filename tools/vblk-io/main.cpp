// SPDX-License-Identifier: GPL-2.0
// vblk-io: random I/O or a write/read-back/verify pass on a block device,
// served by vhost_blk.ko through libvblk.
//
// Exit codes: 0 all requests OK and all data verified; 1 a request failed
// or data differed; 2 setup failed (device, backend, ioctl).
#include <vblk/vblk.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <bit>
#include <cstdio>
#include <fcntl.h>
#include <iostream>
#include <linux/fs.h>
#include <sys/ioctl.h>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed_io = 1;
constexpr int exit_setup = 2;

struct Options {
	std::string backend;
	std::string device = vblk::VhostBlkDevice::default_path;
	unsigned queues = 1;
	unsigned workers = 0;
	std::string rw = "randread";
	std::string layout = "separate";
	bool indirect = false;
	std::string serial;
	bool json = false;
	vblk::WorkloadOptions work;
	uint64_t seconds = 0;
};

vblk::Layout parse_layout(const std::string &s)
{
	for (auto l : { vblk::Layout::separate, vblk::Layout::split_header,
			vblk::Layout::chunked_data, vblk::Layout::header_with_data })
		if (s == vblk::to_string(l))
			return l;
	throw std::invalid_argument("unknown layout " + s);
}

struct Report {
	const Options &opt;
	vblk::WorkloadResult res;
	std::vector<unsigned> ring_workers;

	nlohmann::json json() const
	{
		return {
			{ "backend", opt.backend },
			{ "rw", opt.rw },
			{ "queues", opt.queues },
			{ "workers", opt.workers },
			{ "ring_workers", ring_workers },
			{ "depth", opt.work.depth },
			{ "bs", opt.work.block_size },
			{ "ops", res.ops },
			{ "bytes", res.bytes },
			{ "seconds", res.seconds },
			{ "iops", res.iops() },
			{ "mib_per_s", res.mib_per_s() },
			{ "errors", res.errors },
			{ "verified_bytes", res.verified_bytes },
			{ "verified_module_bytes", res.verified_module_bytes },
			{ "verified_disk_bytes", res.verified_disk_bytes },
			{ "mismatches", res.mismatches },
			{ "first_error", res.first_error },
			{ "latency_us", { { "mean", res.latency.mean_us },
					  { "p50", res.latency.p50_us },
					  { "p99", res.latency.p99_us },
					  { "max", res.latency.max_us } } },
			{ "ok", res.ok() },
		};
	}

	void print_human() const
	{
		std::printf("%-16s %s\n", "backend", opt.backend.c_str());
		std::printf("%-16s %s  queues %u  workers %u  depth %u  bs %u\n", "workload",
			    opt.rw.c_str(), opt.queues, opt.workers, opt.work.depth,
			    opt.work.block_size);
		std::printf("%-16s %llu in %.3f s\n", "ops", (unsigned long long)res.ops, res.seconds);
		std::printf("%-16s %.0f\n", "IOPS", res.iops());
		std::printf("%-16s %.2f\n", "MiB/s", res.mib_per_s());
		if (res.latency.samples)
			std::printf("%-16s p50 %.1f  p99 %.1f  mean %.1f  max %.1f\n", "latency (us)",
				    res.latency.p50_us, res.latency.p99_us, res.latency.mean_us,
				    res.latency.max_us);
		std::printf("%-16s %llu\n", "errors", (unsigned long long)res.errors);
		std::printf("%-16s %llu (through vhost-blk %llu, on disk %llu)\n", "verified bytes",
			    (unsigned long long)res.verified_bytes,
			    (unsigned long long)res.verified_module_bytes,
			    (unsigned long long)res.verified_disk_bytes);
		std::printf("%-16s %llu\n", "mismatches", (unsigned long long)res.mismatches);
		if (!res.first_error.empty())
			std::printf("%-16s %s\n", "first error", res.first_error.c_str());
		std::printf("%-16s %s\n", "result", res.ok() ? "OK" : "FAILED");
	}
};

uint16_t ring_size_for(unsigned depth, bool indirect)
{
	// Random workloads use 3 descriptors per request; verify's layouts
	// up to 4 (chunked data: more, but at a small depth).
	unsigned need = depth * (indirect ? 1 : 4);
	return static_cast<uint16_t>(std::clamp(std::bit_ceil(need), 64u, 32768u));
}

int run(Options &opt)
{
	opt.work.kind = vblk::parse_workload(opt.rw);
	opt.work.duration = std::chrono::seconds(opt.seconds);
	opt.work.io.layout = parse_layout(opt.layout);
	opt.work.io.indirect = opt.indirect;
	if (opt.work.io.layout == vblk::Layout::chunked_data)
		opt.work.io.chunk = 512;
	if (!opt.work.ops && !opt.seconds && opt.work.kind != vblk::Workload::verify)
		opt.work.ops = 10000;
	if (opt.work.kind == vblk::Workload::verify && !opt.work.region_bytes && !opt.work.ops)
		opt.work.region_bytes = uint64_t{ 64 } << 20;

	vblk::UniqueFd backend = vblk::UniqueFd::open(opt.backend, O_RDWR);
	uint64_t bytes = 0;
	vblk::check(::ioctl(backend.get(), BLKGETSIZE64, &bytes), "BLKGETSIZE64 " + opt.backend);

	vblk::BlkDriverOptions d;
	d.device_path = opt.device;
	d.num_queues = opt.queues;
	d.queue_size = ring_size_for(opt.work.depth, opt.indirect);
	size_t per_req = opt.work.block_size + 3 * 4096;
	d.memory_size = std::max<size_t>(size_t{ 64 } << 20,
					 opt.queues * opt.work.depth * per_req * 2 + (16 << 20));
	vblk::BlkDriver drv(d);
	if (opt.indirect && !drv.has_feature(vblk::f_indirect_desc))
		throw std::invalid_argument("the device does not offer indirect descriptors");

	Report rep{ opt, {}, {} };
	rep.ring_workers = drv.spread_workers(opt.workers);
	if (!opt.serial.empty())
		drv.set_serial(opt.serial);
	drv.attach(backend.get());

	rep.res = vblk::run_workload(drv, opt.backend, bytes, opt.work);
	if (opt.json)
		std::cout << rep.json().dump(2) << std::endl;
	else
		rep.print_human();
	return rep.res.ok() ? exit_ok : exit_failed_io;
}

} // namespace

int main(int argc, char **argv)
{
	Options opt;
	CLI::App app{ "Drive a block device through /dev/vhost-blk and check the data", "vblk-io" };
	app.add_option("--backend", opt.backend, "block device to serve")
		->required()
		->check(CLI::ExistingFile);
	app.add_option("--device", opt.device, "vhost-blk device node")->capture_default_str();
	app.add_option("--queues", opt.queues, "virtqueues")->check(CLI::Range(1u, 256u))
		->capture_default_str();
	app.add_option("--workers", opt.workers,
		       "extra vhost workers (VHOST_NEW_WORKER), rings attached round-robin; "
		       "0 keeps the device's default worker")
		->check(CLI::Range(0u, 256u));
	app.add_option("--depth", opt.work.depth, "requests in flight per queue")
		->check(CLI::Range(1u, 8192u))
		->capture_default_str();
	app.add_option("--bs", opt.work.block_size, "bytes per request")
		->check(CLI::Range(512u, 64u << 20))
		->capture_default_str();
	auto *ops = app.add_option("--ops", opt.work.ops, "number of requests (verify: blocks)");
	auto *secs = app.add_option("--seconds", opt.seconds, "run time");
	ops->excludes(secs);
	app.add_option("--rw", opt.rw, "workload")
		->check(CLI::IsMember({ "randread", "randwrite", "verify" }))
		->capture_default_str();
	app.add_option("--size", opt.work.region_bytes, "bytes of the disk to use (default: all; verify: 64 MiB)");
	app.add_option("--seed", opt.work.seed, "pattern and offset seed")->capture_default_str();
	app.add_option("--layout", opt.layout, "descriptor layout (verify)")
		->check(CLI::IsMember({ "separate", "split_header", "chunked_data",
					"header_with_data" }))
		->capture_default_str();
	app.add_flag("--indirect", opt.indirect, "use indirect descriptor tables (verify)");
	app.add_option("--serial", opt.serial, "VHOST_BLK_SET_SERIAL string");
	app.add_flag("--json", opt.json, "print one JSON document");
	CLI11_PARSE(app, argc, argv);

	try {
		return run(opt);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "vblk-io: %s\n", e.what());
		return exit_setup;
	}
}
