// SPDX-License-Identifier: GPL-2.0
#include "bridge/disk.hpp"
#include "bridge/restart.hpp"

#include <vblk/cpu_list.hpp>
#include <vblk/error.hpp>

#include <algorithm>
#include <unistd.h>

namespace bridge {

Disk::Disk(DiskOptions opts, device::Backend backend, uint64_t kernel_features,
	   device::DeviceFactory factory, Logger log)
	: opts_(std::move(opts)), backend_(std::move(backend)), factory_(std::move(factory)),
	  plan_(opts_.plan)
{
	if (backend_.info().read_only)
		opts_.params.read_only = true;
	ctx_.backend_fd = backend_.fd();
	ctx_.info = backend_.info();
	ctx_.params = opts_.params;
	ctx_.serial = opts_.serial;
	ctx_.offered_features = bridge::offered_features(kernel_features, ctx_.info, ctx_.params);
	ctx_.plan = &plan_;
	ctx_.log = std::move(log);
	ctx_.claim = [this] { return claim_exclusive(backend_.fd(), claim_wait, ctx_.log); };
	// Say so now if the disk is claimed (mounted, another serve's rings):
	// rings wait for it rather than failing the start.
	try {
		claim_exclusive(backend_.fd(), std::chrono::milliseconds(0), {});
	} catch (const Rejected &) {
		ctx_.log("the block device is claimed exclusively now (mounted, in use, or another "
			 "serve's rings): rings start once it is free");
	} catch (const std::exception &) {
	}
}

Disk::~Disk()
{
	if (connected())
		disconnect("shutting down");
}

void Disk::on_connect(vblk::UniqueFd sock)
{
	if (connected()) {
		ctx_.log("refusing a second frontend while one is connected");
		return;
	}
	connections_++;
	try {
		session_ = std::make_unique<Session>(ctx_, factory_);
	} catch (const std::exception &e) {
		ctx_.log(std::string("frontend refused: ") + e.what());
		return;
	}
	channel_.emplace(std::move(sock));
	ctx_.log("frontend connected");
}

void Disk::on_readable()
{
	try {
		handle_one();
	} catch (const std::exception &e) {
		// Whatever escaped (a reply that could not be sent, ...) ends
		// this connection, never the daemon.
		disconnect(e.what());
	}
}

void Disk::handle_one()
{
	std::optional<vhost_user::Message> m;
	try {
		m = channel_->receive();
		if (!m) {
			disconnect("frontend closed the connection");
			return;
		}
		auto reply = session_->handle(*m);
		if (reply)
			channel_->send(*reply);
	} catch (const Rejected &e) {
		ctx_.log(std::string("refused: ") + e.what());
		if (m && session_->can_nack(*m))
			channel_->send(vhost_user::reply_u64(*m, 1));
	} catch (const vblk::SysError &e) {
		if (m && session_->can_nack(*m)) {
			ctx_.log(m->name() + " failed, NACKed: " + e.what());
			channel_->send(vhost_user::reply_u64(*m, 1));
			return;
		}
		disconnect(m ? m->name() + ": " + e.what() : e.what());
	}
}

void Disk::disconnect(const std::string &reason)
{
	ctx_.log("closing the frontend connection: " + reason);
	if (session_ && session_->owned()) {
		try {
			last_vqs_ = status().vqs;
			for (auto &v : last_vqs_) {
				v.started = v.attached = v.stopped = false;
				v.inflight = 0;
				v.poll_us = 0;	// no ring polls now
			}
		} catch (const std::exception &) {
			last_vqs_.clear();
		}
	}
	// Session first: its rings drain while the channel is still ours.
	session_.reset();
	channel_.reset();
	ctx_.log("device reset, waiting for the next frontend");
}

control::DiskStatus Disk::status()
{
	control::DiskStatus s;
	s.name = opts_.name;
	s.pid = static_cast<int>(::getpid());
	s.backend = backend_.path();
	s.socket = opts_.socket_path;
	s.serial = opts_.serial;
	s.size_bytes = backend_.info().size_bytes;
	s.block_size = guest_block_size(backend_.info(), ctx_.params);
	s.queues = opts_.params.queues;
	s.read_only = opts_.params.read_only;
	s.poll_us = ctx_.params.poll_us;
	s.connected = session_ && session_->owned();
	s.connections = connections_;
	s.features = session_ ? session_->acked_features() : 0;
	if (s.connected) {
		try {
			s.write_cache = session_->dev().write_cache() ? "write-back"
								      : "write-through";
		} catch (const vblk::SysError &e) {
			throw control::RequestError("device-error", e.what());
		}
	}
	s.policy = plan_.policy;
	s.placement = plan_.placement.source;
	const auto &ids = session_ ? session_->workers().kernel_ids() : std::vector<unsigned>{};
	for (unsigned w = 0; w < plan_.workers; w++) {
		control::WorkerStatus ws;
		ws.index = w;
		if (w < ids.size() && s.connected) {
			ws.kernel_id = ids[w];
			// The thread may have ended with its device (ESRCH):
			// then it has no CPUs to show.
			if (pid_t t = session_->workers().tid(w); t > 0) {
				ws.tid = t;
				try {
					ws.cpus = vblk::format_cpu_list(vblk::thread_cpus(t));
				} catch (const vblk::SysError &) {
				}
			}
		}
		for (unsigned vq = 0; vq < plan_.queues(); vq++)
			if (plan_.map[vq] == w)
				ws.vqs.push_back(vq);
		s.workers.push_back(ws);
	}
	for (unsigned vq = 0; vq < opts_.params.queues; vq++) {
		control::VqStatus v;
		v.index = vq;
		// The module reports polling; no ring has polled yet.
		v.poll_us = v.poll_hits = v.poll_misses = 0;
		if (s.connected) {
			v.started = session_->ring_started(vq);
			try {
				auto k = session_->dev().ring_stats(vq);
				if (k.worker_id != ~0u) {
					v.worker_id = k.worker_id;
					int w = session_->workers().logical(k.worker_id);
					if (w >= 0)
						v.worker = static_cast<unsigned>(w);
				}
				v.attached = k.attached;
				v.stopped = k.stopped;
				v.inflight = k.inflight;
				for (unsigned i = 0; i < control::VqStatus::nr_types; i++) {
					v.requests[i] = k.requests[i];
					v.bytes[i] = k.bytes[i];
				}
				v.status_ok = k.status_ok;
				v.status_ioerr = k.status_ioerr;
				v.status_unsupp = k.status_unsupp;
				v.bounced = k.bounced;
				v.malformed = k.malformed;
				v.batches = k.batches;
				v.throttled = k.throttled;
				v.fua_writes = k.fua_writes;
				// The kernel takes a new ceiling at the ring's next
				// request: until then its window may still be above
				// a ceiling just lowered, which it will never poll
				// for again.
				v.poll_us = std::min<uint64_t>(k.poll_us, ctx_.params.poll_us);
				v.poll_hits = k.poll_hits;
				v.poll_misses = k.poll_misses;
			} catch (const vblk::SysError &e) {
				throw control::RequestError("device-error", e.what());
			}
		}
		s.vqs.push_back(v);
	}
	if (s.connected)
		s.vqs_source = "live";
	else if (last_vqs_.size() == s.vqs.size())
		s.vqs = last_vqs_, s.vqs_source = "last-connection";
	return s;
}

void Disk::replace_plan(WorkerPlan plan)
{
	WorkerPlan old = plan_;
	plan_ = std::move(plan);
	if (!session_ || !session_->owned())
		return;
	try {
		session_->apply_workers(plan_);
		ctx_.log("workers: " + plan_.policy + ", " + std::to_string(plan_.workers) +
			 " worker(s)");
	} catch (const vblk::SysError &e) {
		// Leave the kernel as consistent as it gets with the old plan.
		plan_ = old;
		try {
			session_->apply_workers(plan_);
		} catch (const std::exception &) {
		}
		throw control::RequestError("device-error", e.what());
	}
}

void Disk::set_workers(unsigned count)
{
	try {
		WorkerPlan p = WorkerPlan::round_robin(opts_.params.queues, count);
		p.placement = plan_.placement;
		replace_plan(std::move(p));
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
}

void Disk::assign(unsigned vq, unsigned worker)
{
	WorkerPlan p = plan_;
	try {
		p.assign(vq, worker);
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
	replace_plan(std::move(p));
}

void Disk::set_policy(const std::string &policy)
{
	try {
		WorkerPlan p = WorkerPlan::from_policy(policy, opts_.params.queues);
		p.placement = plan_.placement;
		replace_plan(std::move(p));
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
}

void Disk::set_cpus(std::optional<unsigned> worker, const std::string &cpus)
{
	WorkerPlan p = plan_;
	try {
		vblk::CpuSet set = vblk::parse_cpu_list(cpus);
		check_cpus_online(set);
		if (worker && *worker >= p.workers)
			throw std::invalid_argument("worker " + std::to_string(*worker) +
						    " out of range (0-" +
						    std::to_string(p.workers - 1) + ")");
		if (worker)
			p.placement.worker[*worker] = set;
		else
			p.placement.all = set, p.placement.worker.clear();
		p.placement.source = "admin";
	} catch (const std::invalid_argument &e) {
		throw control::RequestError("invalid-argument", e.what());
	}
	replace_plan(std::move(p));
}

void Disk::set_poll(unsigned us)
{
	if (us > max_poll_us)
		throw control::RequestError("invalid-argument",
					    "poll " + std::to_string(us) + " us out of range (0-" +
						    std::to_string(max_poll_us) + ")");
	unsigned old = ctx_.params.poll_us;
	if (session_) {
		try {
			session_->apply_poll(us);
		} catch (const vblk::SysError &e) {
			try {
				session_->apply_poll(old);
			} catch (const std::exception &) {
			}
			throw control::RequestError("device-error", e.what());
		}
	}
	ctx_.params.poll_us = opts_.params.poll_us = us;
	ctx_.log(us ? "polling: up to " + std::to_string(us) + " us per ring" : "polling: off");
}

} // namespace bridge
