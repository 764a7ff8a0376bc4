// SPDX-License-Identifier: GPL-2.0
// libvblk: userspace virtio-blk driver for /dev/vhost-blk.
#pragma once

#include "vblk/blk_driver.hpp"
#include "vblk/error.hpp"
#include "vblk/fd.hpp"
#include "vblk/guest_memory.hpp"
#include "vblk/request.hpp"
#include "vblk/vhost_device.hpp"
#include "vblk/virtqueue.hpp"
#include "vblk/workload.hpp"
