// SPDX-License-Identifier: GPL-2.0
#include "device/kernel_device.hpp"

namespace device {

const char *const stat_type_names[RingStats::nr_types] = {
	"in", "out", "flush", "get_id", "discard", "write_zeroes", "secure_erase", "other",
};
static_assert(RingStats::nr_types == VHOST_BLK_STAT_NR_TYPES);

RingStats KernelDevice::ring_stats(unsigned index)
{
	vhost_blk_vring_stats k = dev_.get_vring_stats(index);
	RingStats s;
	s.worker_id = k.worker_id;
	s.attached = k.attached != 0;
	s.stopped = k.stopped != 0;
	s.inflight = k.inflight;
	s.fua_writes = k.fua_writes;
	for (unsigned i = 0; i < RingStats::nr_types; i++) {
		s.requests[i] = k.requests[i];
		s.bytes[i] = k.bytes[i];
	}
	s.status_ok = k.status_ok;
	s.status_ioerr = k.status_ioerr;
	s.status_unsupp = k.status_unsupp;
	s.bounced = k.bounced;
	s.malformed = k.malformed;
	s.batches = k.batches;
	s.throttled = k.throttled;
	s.poll_us = k.poll_us;
	s.poll_hits = k.poll_hits;
	s.poll_misses = k.poll_misses;
	return s;
}

} // namespace device
