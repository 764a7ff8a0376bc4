// SPDX-License-Identifier: GPL-2.0
// vhost-blkctl serve as the vhost-user-blk backend of a frontend that does
// what QEMU does (libvblk's vhost-user frontend): data through the bridge
// onto the kernel path, a ring stopped mid-I/O reports an exact base with
// every request below it completed, and frontends that vanish with I/O in
// flight lose no acknowledged write while serve keeps serving.
#include "common.hpp"

#include <vblk/cpu_list.hpp>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <endian.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vbt;

namespace {

// A `vhost-blkctl serve` child process on one backend.
class Serve {
public:
	Serve(const Backend &b, unsigned queues, std::vector<std::string> extra = {})
	{
		const char *build = std::getenv("BUILD");
		bin_ = std::string(build ? build : "/nonexistent") +
		       "/cmake/tools/vhost-blkctl/vhost-blkctl";
		if (::access(bin_.c_str(), X_OK) != 0)
			ktap::skip("vhost-blkctl not built ($BUILD/cmake/tools/vhost-blkctl)");
		// /run: a tmpfs in the test VM (the 9p root is read-only).
		char tmpl[] = "/run/vbt-serve-XXXXXX";
		if (!::mkdtemp(tmpl))
			throw vblk::SysError(errno, "mkdtemp");
		dir_ = tmpl;
		sock_ = dir_ + "/d.sock";
		std::string q = std::to_string(queues), w = std::to_string(std::min(queues, 2u));
		pid_ = ::fork();
		if (pid_ < 0)
			throw vblk::SysError(errno, "fork");
		if (pid_ == 0) {
			::setenv("VHOST_BLKCTL_RUN_DIR", (dir_ + "/run").c_str(), 1);
			int log = ::open((dir_ + "/serve.log").c_str(), O_WRONLY | O_CREAT, 0600);
			::dup2(log, 1);
			::dup2(log, 2);
			std::vector<std::string> args = { "vhost-blkctl", "serve", "--backend",
							  b.path(), "--socket", sock_, "--name", "vbt",
							  "--queues", q, "--workers", w };
			args.insert(args.end(), extra.begin(), extra.end());
			std::vector<char *> argv;
			for (auto &a : args)
				argv.push_back(a.data());
			argv.push_back(nullptr);
			::execv(bin_.c_str(), argv.data());
			::_exit(127);
		}
		struct stat st;
		for (int i = 0; i < 100 && ::stat(sock_.c_str(), &st) != 0; i++)
			std::this_thread::sleep_for(50ms);
	}
	Serve(const Serve &) = delete;
	Serve &operator=(const Serve &) = delete;
	~Serve()
	{
		if (pid_ > 0) {
			::kill(pid_, SIGKILL);
			::waitpid(pid_, nullptr, 0);
		}
		// A failing test (an exception unwinding through us) shows what
		// serve said: its log dies with the tmpfs directory.
		if (std::uncaught_exceptions() > 0) {
			std::ifstream log(dir_ + "/serve.log");
			for (std::string line; std::getline(log, line);)
				ktap::diag("serve: " + line);
		}
		std::error_code ec;
		std::filesystem::remove_all(dir_, ec);
	}

	const std::string &socket() const { return sock_; }
	pid_t pid() const { return pid_; }
	// `vhost-blkctl ARGS...` against this serve's run directory: the exit
	// status and what it printed on stdout.
	std::pair<int, std::string> ctl(std::vector<std::string> args) const
	{
		int out[2];
		if (::pipe2(out, O_CLOEXEC) != 0)
			throw vblk::SysError(errno, "pipe2");
		pid_t c = ::fork();
		if (c < 0)
			throw vblk::SysError(errno, "fork");
		if (c == 0) {
			::setenv("VHOST_BLKCTL_RUN_DIR", (dir_ + "/run").c_str(), 1);
			::dup2(out[1], 1);
			args.insert(args.begin(), "vhost-blkctl");
			std::vector<char *> argv;
			for (auto &a : args)
				argv.push_back(a.data());
			argv.push_back(nullptr);
			::execv(bin_.c_str(), argv.data());
			::_exit(127);
		}
		::close(out[1]);
		std::string text;
		char buf[4096];
		for (ssize_t n; (n = ::read(out[0], buf, sizeof(buf))) > 0;)
			text.append(buf, static_cast<size_t>(n));
		::close(out[0]);
		int status = 0;
		::waitpid(c, &status, 0);
		return { WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text };
	}
	// `vhost-blkctl status vbt --json`, parsed; throws unless it exits 0.
	nlohmann::json status() const
	{
		auto [rc, out] = ctl({ "status", "vbt", "--json" });
		if (rc != 0)
			throw std::runtime_error("status exited " + std::to_string(rc));
		return nlohmann::json::parse(out);
	}
	bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
	// SIGTERM; the exit status (-1: did not exit within 10 s).
	int stop()
	{
		::kill(pid_, SIGTERM);
		for (int i = 0; i < 200; i++) {
			int status;
			if (::waitpid(pid_, &status, WNOHANG) == pid_) {
				pid_ = -1;
				return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			}
			std::this_thread::sleep_for(50ms);
		}
		return -1;
	}

private:
	std::string bin_, dir_, sock_;
	pid_t pid_ = -1;
};

std::unique_ptr<vblk::BlkDriver> frontend(const Serve &s, unsigned queues)
{
	vblk::BlkDriverOptions o = driver_options(queues, 256);
	o.vhost_user_socket = s.socket();
	return std::make_unique<vblk::BlkDriver>(o);
}

// 8 KiB written through each of the first two rings at `sector` (+16 per
// ring), read back through the same ring and from the backend: true when
// every byte is there.
bool two_ring_round_trip(vblk::BlkDriver &d, const Backend &b, uint64_t sector)
{
	for (unsigned q = 0; q < 2; q++) {
		uint64_t at = sector + q * 16;
		auto data = pattern(8192, at, ktap::seed() + q);
		std::vector<uint8_t> back(data.size());
		if (d.write(q, at, data) != VIRTIO_BLK_S_OK || d.read(q, at, back) != VIRTIO_BLK_S_OK)
			return false;
		if (back != data || b.read_direct(at * 512, data.size()) != data)
			return false;
	}
	return true;
}

} // namespace

TEST(vhost_user_bridge_round_trips_data_on_every_queue)
{
	require_device();
	auto b = Backend::open(env_nullb);
	Serve s(b, 2);
	auto d = frontend(s, 2);
	for (unsigned q = 0; q < 2; q++) {
		uint64_t sector = 700000 + q * 256;
		auto data = pattern(64 * 1024, sector, ktap::seed() + q);
		ASSERT_EQ(d->write(q, sector, data), VIRTIO_BLK_S_OK);
		std::vector<uint8_t> back(data.size());
		ASSERT_EQ(d->read(1 - q, sector, back), VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(back, data);
		ASSERT_BYTES_EQ(b.read_direct(sector * 512, data.size()), data);
	}
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}

// serve --block-size 512 on a disk with 4 KiB blocks: the frontend sees
// 512-byte logical and 4 KiB physical blocks, and a 512-byte write lands
// with the rest of its block intact.
TEST(vhost_user_serve_block_size_512_on_a_4k_disk_is_512e)
{
	require_device();
	auto b = Backend::open(env_nullb_4k);
	ASSERT_EQ(b.logical_block_size(), 4096u);
	Serve s(b, 1, { "--block-size", "512" });
	auto d = frontend(s, 1);
	auto raw = d->vhost_user().get_config(sizeof(virtio_blk_config));
	virtio_blk_config cfg;
	std::memcpy(&cfg, raw.data(), sizeof(cfg));
	ASSERT_EQ(le32toh(cfg.blk_size), 512u);
	ASSERT_EQ(cfg.physical_block_exp, 3);
	const uint64_t sector = 8 * 4000;
	auto before = pattern(4096, sector, ktap::seed() + 1);
	b.write_direct(sector * 512, before);
	auto data = pattern(1024, sector + 3, ktap::seed());
	ASSERT_EQ(d->write(0, sector + 3, data), VIRTIO_BLK_S_OK);
	std::memcpy(before.data() + 3 * 512, data.data(), data.size());
	ASSERT_BYTES_EQ(b.read_direct(sector * 512, 4096), before);
	std::vector<uint8_t> back(1024);
	ASSERT_EQ(d->read(0, sector + 3, back), VIRTIO_BLK_S_OK);
	ASSERT_BYTES_EQ(back, data);
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}

TEST(vhost_user_stop_ring_mid_io_base_is_exact)
{
	require_device();
	auto b = Backend::open(env_nullb);
	Serve s(b, 1);
	auto d = frontend(s, 1);
	const unsigned n = 64;
	const uint64_t base_sector = 720000;
	for (unsigned i = 0; i < n; i++) {
		uint64_t sector = base_sector + i * 8;
		d->submit(0, vblk::BlkDriver::write_spec(sector, pattern(4096, sector, ktap::seed())),
			  i % 4 == 3);
	}
	// GET_VRING_BASE with requests in flight: the bridge stops the ring,
	// waits for what the kernel took, then answers.
	unsigned base = d->get_vring_base(0);
	ASSERT_LE(base, n);
	auto done = d->poll(0, base, 2000ms);
	ASSERT_EQ(done.size(), base);
	for (auto &c : done)
		ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
	ASSERT_EQ(d->pending(0), n - base);
	// The first `base` chains were the consumed ones: all on disk.
	for (unsigned i = 0; i < base; i++) {
		uint64_t sector = base_sector + i * 8;
		ASSERT_BYTES_EQ(b.read_direct(sector * 512, 4096), pattern(4096, sector, ktap::seed()));
	}
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}

TEST_TIMEOUT(vhost_user_frontends_vanishing_mid_io_lose_no_acknowledged_write, 240)
{
	require_device();
	auto b = Backend::open(env_nullb);
	Serve s(b, 2);
	const unsigned rounds = 8, per_round = 64;
	std::vector<std::pair<uint64_t, uint64_t>> acked; // sector, seed
	for (unsigned r = 0; r < rounds; r++) {
		auto d = frontend(s, 2);
		std::unordered_map<uint64_t, uint64_t> sector_of;
		for (unsigned i = 0; i < per_round; i++) {
			uint64_t sector = 740000 + (r * per_round + i) * 8;
			uint64_t seed = ktap::seed() + r * 1000 + i;
			unsigned q = i % 2;
			uint64_t tok = d->submit(
				q, vblk::BlkDriver::write_spec(sector, pattern(4096, sector, seed)), i % 8 == 7);
			sector_of[tok] = sector;
			(void)seed;
		}
		d->kick(0);
		d->kick(1);
		// Take some completions, then vanish with the rest in flight.
		for (unsigned q = 0; q < 2; q++)
			for (auto &c : d->poll(q, 4 + r, 2000ms)) {
				ASSERT_EQ(c.status, VIRTIO_BLK_S_OK);
				uint64_t sector = sector_of.at(c.token);
				uint64_t i = (sector - 740000) / 8 - r * per_round;
				acked.emplace_back(sector, ktap::seed() + r * 1000 + i);
			}
		d.reset();
		ASSERT_TRUE(s.alive());
	}
	ASSERT_GE(acked.size(), rounds * 8);
	// The next frontend gets a working disk holding every acknowledged write.
	auto d = frontend(s, 2);
	for (auto [sector, seed] : acked) {
		std::vector<uint8_t> back(4096);
		ASSERT_EQ(d->read(sector % 2, sector, back), VIRTIO_BLK_S_OK);
		ASSERT_BYTES_EQ(back, pattern(4096, sector, seed));
	}
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}

// serve --worker-cpus puts every worker's thread on those CPUs; `workers
// NAME --cpus LIST --worker W` moves one live; status shows each worker's
// thread and CPUs as the kernel has them; a CPU that is not online is
// refused and changes nothing; I/O goes on with every byte verified.
TEST(vhost_user_serve_places_workers_on_the_cpus_asked)
{
	require_device();
	auto b = Backend::open(env_nullb);
	Serve s(b, 2, { "--worker-cpus", "0" });
	auto d = frontend(s, 2);
	auto io = [&](uint64_t sector) { return two_ring_round_trip(*d, b, sector); };
	ASSERT_TRUE(io(810000));
	auto j = s.status();
	ASSERT_EQ(j["placement"].get<std::string>(), "admin");
	ASSERT_EQ(j["workers"].size(), 2u);
	const std::string comm = "vhost-" + std::to_string(s.pid());
	pid_t tid[2];
	for (unsigned w = 0; w < 2; w++) {
		tid[w] = j["workers"][w]["tid"].get<pid_t>();
		std::ifstream f("/proc/" + std::to_string(tid[w]) + "/comm");
		std::string name;
		std::getline(f, name);
		ASSERT_EQ(name, comm);
		ASSERT_EQ(j["workers"][w]["cpus"].get<std::string>(), "0");
		ASSERT_EQ(vblk::thread_cpus(tid[w]), vblk::CpuSet{ 0 });
	}
	ASSERT_TRUE(tid[0] != tid[1]);

	const long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
	const std::string last = std::to_string(ncpu - 1);
	auto [rc, out] = s.ctl({ "workers", "vbt", "--cpus", last, "--worker", "1", "--json" });
	ASSERT_EQ(rc, 0);
	j = nlohmann::json::parse(out);
	ASSERT_EQ(j["status"].is_object() ? j["status"]["workers"][1]["cpus"] : j["workers"][1]["cpus"],
		  last);
	ASSERT_EQ(vblk::thread_cpus(tid[1]), vblk::CpuSet{ static_cast<unsigned>(ncpu - 1) });
	ASSERT_EQ(vblk::thread_cpus(tid[0]), vblk::CpuSet{ 0 });
	ASSERT_TRUE(io(820000));

	// Not online: refused by serve (exit 5), nothing moves.
	std::tie(rc, out) = s.ctl({ "workers", "vbt", "--cpus", std::to_string(ncpu + 7) });
	ASSERT_EQ(rc, 5);
	ASSERT_EQ(vblk::thread_cpus(tid[1]), vblk::CpuSet{ static_cast<unsigned>(ncpu - 1) });
	// Not a CPU list: the command line is wrong (exit 2).
	std::tie(rc, out) = s.ctl({ "workers", "vbt", "--cpus", "1-0" });
	ASSERT_EQ(rc, 2);

	// A new worker count keeps the placement: the one worker left is on CPU 0.
	std::tie(rc, out) = s.ctl({ "workers", "vbt", "--count", "1" });
	ASSERT_EQ(rc, 0);
	j = s.status();
	ASSERT_EQ(j["workers"].size(), 1u);
	ASSERT_EQ(j["workers"][0]["cpus"].get<std::string>(), "0");
	ASSERT_TRUE(io(830000));
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}

// `poll NAME --us N` retunes the busy-polling ceiling of every ring of a
// running serve: the disk reports the new ceiling, each ring's adaptive
// window stays at or below it (0 once polling is off), and I/O goes on with
// every byte verified.  Each ring carries a request after each change, so
// the window status shows is one the kernel has applied.
TEST(vhost_user_serve_poll_retunes_every_ring_live)
{
	require_device();
	auto b = Backend::open(env_nullb);
	Serve s(b, 2);
	auto d = frontend(s, 2);
	ASSERT_TRUE(two_ring_round_trip(*d, b, 840000));
	auto j = s.status();
	ASSERT_EQ(j["poll_us"].get<unsigned>(), 0u);

	auto [rc, out] = s.ctl({ "poll", "vbt", "--us", "200", "--json" });
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(nlohmann::json::parse(out)["poll_us"].get<unsigned>(), 200u);
	ASSERT_TRUE(two_ring_round_trip(*d, b, 850000));
	j = s.status();
	ASSERT_EQ(j["poll_us"].get<unsigned>(), 200u);
	ASSERT_EQ(j["vqs"].size(), 2u);
	for (const auto &v : j["vqs"]) {
		ktap::diag("vq " + v["index"].dump() + " at 200: window " + v["poll_us"].dump() +
			   " us, hits " + v["poll_hits"].dump() + ", misses " +
			   v["poll_misses"].dump());
		ASSERT_LE(v["poll_us"].get<uint64_t>(), 200u);
	}

	std::tie(rc, out) = s.ctl({ "poll", "vbt", "--us", "0" });
	ASSERT_EQ(rc, 0);
	ASSERT_TRUE(two_ring_round_trip(*d, b, 860000));
	j = s.status();
	ASSERT_EQ(j["poll_us"].get<unsigned>(), 0u);
	for (const auto &v : j["vqs"])
		ASSERT_EQ(v["poll_us"].get<uint64_t>(), 0u);

	// Out of bounds: the command line is wrong (exit 2), nothing changes.
	std::tie(rc, out) = s.ctl({ "poll", "vbt", "--us", "100001" });
	ASSERT_EQ(rc, 2);
	ASSERT_EQ(s.status()["poll_us"].get<unsigned>(), 0u);
	d.reset();
	ASSERT_EQ(s.stop(), 0);
}
