// SPDX-License-Identifier: GPL-2.0
// libvblk's vhost-user frontend (what the benchmark uses to drive
// qemu-storage-daemon and vhost-blkctl serve) against the bridge's serve
// loop over a real unix socket, the kernel device faked: handshake,
// protocol features, queue count, config space, ring setup and stop.
#include "bridge/daemon.hpp"
#include "common/unix_socket.hpp"
#include "fake_device.hpp"

#include <vblk/blk_driver.hpp>
#include <vblk/error.hpp>
#include <vblk/vhost_user_frontend.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

struct Served {
	fake::State st;
	std::string path;
	std::unique_ptr<bridge::Disk> disk;
	std::unique_ptr<bridge::Daemon> daemon;
	vblk::UniqueFd stop{ ::eventfd(0, EFD_CLOEXEC) };
	std::thread loop;
	std::vector<std::string> log;

	explicit Served(unsigned queues = 2)
	{
		path = "/tmp/vblk-frontend-test-" + std::to_string(::getpid()) + ".sock";
		device::BackendInfo info;
		info.size_bytes = 1ull << 30;
		info.logical_block_size = 4096;
		device::Backend be("/dev/fake", vblk::UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)),
				   info);
		bridge::DiskOptions o{ "d0", path, "frontend-test", { queues, false },
				       bridge::WorkerPlan::single(queues) };
		disk = std::make_unique<bridge::Disk>(o, std::move(be), st.features, fake::factory(st),
						      [this](const std::string &m) { log.push_back(m); });
		daemon = std::make_unique<bridge::Daemon>(*disk, common::listen_unix(path),
							  [](const std::string &) {});
		loop = std::thread([this] { daemon->run(stop.get()); });
	}
	~Served()
	{
		uint64_t one = 1;
		if (::write(stop.get(), &one, sizeof(one)) != sizeof(one))
			std::abort();
		loop.join();
		::unlink(path.c_str());
	}
};

TEST(VhostUserFrontend, negotiates_with_the_bridge)
{
	Served s;
	vblk::VhostUserFrontend fe(s.path);
	EXPECT_TRUE(fe.has_protocol_feature(vhost_user::pf_mq));
	EXPECT_TRUE(fe.has_protocol_feature(vhost_user::pf_reply_ack));
	EXPECT_TRUE(fe.has_protocol_feature(vhost_user::pf_config));
	EXPECT_EQ(fe.queue_num(), 2u);
	EXPECT_EQ(fe.offered_features() & vhost_user::f_protocol_features, 0u);
	EXPECT_EQ(fe.offered_features(), s.disk->offered_features() & ~vhost_user::f_protocol_features);

	auto cfg = fe.get_config(sizeof(virtio_blk_config));
	virtio_blk_config c;
	std::memcpy(&c, cfg.data(), sizeof(c));
	EXPECT_EQ(le64toh(c.capacity), (1ull << 30) / 512);
	EXPECT_EQ(le32toh(c.blk_size), 4096u);
	EXPECT_EQ(le16toh(c.num_queues), 2u);
}

TEST(VhostUserFrontend, blk_driver_sets_up_rings_and_stops_them)
{
	Served s;
	vblk::BlkDriverOptions o;
	o.vhost_user_socket = s.path;
	o.num_queues = 2;
	o.queue_size = 256;
	vblk::BlkDriver drv(o);
	EXPECT_TRUE(drv.is_vhost_user());
	EXPECT_TRUE(drv.has_feature(vblk::f_version_1));
	EXPECT_THROW(drv.device(), std::logic_error);
	// Nothing was submitted: both rings stop at 0.
	EXPECT_EQ(drv.get_vring_base(0), 0u);
	EXPECT_EQ(drv.get_vring_base(1), 0u);
}

TEST(VhostUserFrontend, more_queues_than_the_backend_serves_is_refused)
{
	Served s(1);
	vblk::BlkDriverOptions o;
	o.vhost_user_socket = s.path;
	o.num_queues = 2;
	try {
		vblk::BlkDriver drv(o);
		FAIL() << "2 queues accepted from a 1-queue backend";
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), EINVAL);
		EXPECT_NE(std::string(e.what()).find("GET_QUEUE_NUM"), std::string::npos) << e.what();
	}
}

TEST(VhostUserFrontend, missing_socket_is_enoent)
{
	try {
		vblk::VhostUserFrontend fe("/tmp/vblk-no-such-socket.sock");
		FAIL();
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), ENOENT);
	}
}

TEST(VhostUserFrontend, backend_closing_at_once_is_a_protocol_error)
{
	std::string path = "/tmp/vblk-frontend-close-" + std::to_string(::getpid()) + ".sock";
	vblk::UniqueFd l = common::listen_unix(path);
	std::thread t([&] { vblk::UniqueFd c(::accept(l.get(), nullptr, nullptr)); });
	EXPECT_THROW(vblk::VhostUserFrontend fe(path), std::exception);
	t.join();
	::unlink(path.c_str());
}

} // namespace
