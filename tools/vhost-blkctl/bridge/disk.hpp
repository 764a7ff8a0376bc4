// SPDX-License-Identifier: GPL-2.0
// One served disk: its backend, what it offers, its worker plan, and the
// frontend connection currently using it (at most one).  Implements the
// control operations; a connection that misbehaves is dropped and the
// device reset, the disk keeps serving.
#pragma once

#include "bridge/session.hpp"
#include "control/status.hpp"
#include "device/backend.hpp"
#include "vhost_user/channel.hpp"

#include <memory>
#include <optional>
#include <string>

namespace bridge {

struct DiskOptions {
	std::string name;
	std::string socket_path;
	std::string serial;
	DiskParams params;
	WorkerPlan plan;
};

class Disk : public control::Service {
public:
	// kernel_features: VHOST_GET_FEATURES of the device (read once).
	Disk(DiskOptions opts, device::Backend backend, uint64_t kernel_features,
	     device::DeviceFactory factory, Logger log);
	~Disk() override;

	bool connected() const noexcept { return channel_.has_value(); }
	int connection_fd() const noexcept { return channel_ ? channel_->fd() : -1; }
	// A new frontend; refused (closed) while another one is connected.
	void on_connect(vblk::UniqueFd sock);
	// The connection is readable: handle one message.
	void on_readable();
	// Ends the connection: stops the rings (draining), closes the device.
	void disconnect(const std::string &reason);
	uint64_t offered_features() const noexcept { return ctx_.offered_features; }

	control::DiskStatus status() override;
	void set_workers(unsigned count) override;
	void assign(unsigned vq, unsigned worker) override;
	void set_policy(const std::string &policy) override;
	void set_cpus(std::optional<unsigned> worker, const std::string &cpus) override;
	// Every ring's ceiling now; kept as the disk's poll_us, which rings
	// of later connections (and restarted rings) are given before they
	// start.  A kernel error puts the old ceiling back.
	void set_poll(unsigned us) override;

private:
	void handle_one();
	void replace_plan(WorkerPlan plan);

	DiskOptions opts_;
	device::Backend backend_;
	device::DeviceFactory factory_;
	WorkerPlan plan_;
	DiskContext ctx_;
	std::optional<vhost_user::Channel> channel_;
	std::unique_ptr<Session> session_;
	uint64_t connections_ = 0;
	// The rings' counters as the last frontend left them: status shows
	// them until the next frontend connects (a VM that has shut down can
	// still be inspected).
	std::vector<control::VqStatus> last_vqs_;
};

} // namespace bridge
