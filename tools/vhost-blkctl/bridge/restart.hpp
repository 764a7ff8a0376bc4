// SPDX-License-Identifier: GPL-2.0
// Restart without loss (Documentation/admin-guide.md, "Restarting serve"):
// the hand-off from a previous serve of the same disk, and the ring base
// after the frontend could not ask that serve for it.
//
// The hand-off: each time a session starts its first ring it claims the
// block device with a fresh O_EXCL open and hands that file to the kernel,
// which holds it while any ring runs.  A device whose owner died drops it
// only after it has reported every request it took (kernel/device.c,
// vhost_blk_release_rings()), so a new serve's claim waits for exactly
// that.  The long-lived open for size and config stays shared: two serves
// of one disk coexist (local migration), only their running rings exclude
// each other.
#pragma once

#include "bridge/session.hpp"

#include <vblk/fd.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace bridge {

// How long a ring start waits for the previous owner's device to let go.
inline constexpr std::chrono::milliseconds claim_wait{ 30000 };

// Opens the block device behind `fd` again, same access mode, with O_EXCL
// (through /proc/self/fd).  EBUSY is retried every 10 ms until `wait` has
// passed, then throws Rejected; other errors throw vblk::SysError.
vblk::UniqueFd claim_exclusive(int fd, std::chrono::milliseconds wait, const Logger &log);

// The frontend's base for a ring is stale when the used index in guest
// memory is ahead of it: no backend uses more than it took, so a previous
// backend took at least up to the used index, and the frontend (QEMU after
// a failed GET_VRING_BASE: the used index it read while the dead backend's
// kernel device was still completing) did not see it.  Once the claim
// succeeded the old device has reported all it took, so the used index is
// the true base.  Returns it when 0 < used_idx - base <= num, else nullopt
// (the base stands: equal, or not explainable by one ring of requests).
std::optional<uint16_t> stale_base(uint16_t base, uint16_t used_idx, unsigned num);

} // namespace bridge
