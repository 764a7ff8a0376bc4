#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
# Writes the seed corpus of vhost_user_fuzz (tests/fuzz/corpus/vhost_user):
# message sequences as QEMU sends them, framed as vhost_user_fuzz.cpp reads
# its input (a control byte with the fd count, then the message).
import os
import struct
import sys

VERSION, NEED_REPLY = 0x1, 0x8
EVENTFD = 0x10
BASE = 0x7f1200000000		# harness::frontend_base
RAM = 1 << 20			# harness::ram_size
FEATURES = (1 << 32) | (1 << 30) | (1 << 9) | (1 << 6)	# VERSION_1, PROTOCOL_FEATURES, FLUSH, BLK_SIZE
PROTOCOL = (1 << 0) | (1 << 3) | (1 << 9)		# MQ, REPLY_ACK, CONFIG
LOG_SHMFD, LOG_ALL, F_LOG = 1 << 1, 1 << 26, 1


def frame(req, payload=b"", fds=0, flags=VERSION, eventfd=False):
	control = fds | (EVENTFD if eventfd else 0)
	return bytes([control]) + struct.pack("<III", req, flags, len(payload)) + payload


def u64(req, v, **kw):
	return frame(req, struct.pack("<Q", v), **kw)


def state(req, index, num, **kw):
	return frame(req, struct.pack("<II", index, num), **kw)


def mem_table(base=BASE):
	return frame(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, RAM, base, 0), fds=1)


def vring_addr(q, flags=0):
	ring = BASE + 0x10000 * (q + 1)
	log = 0x10000 * (q + 1) + 0x2000 if flags else 0
	return frame(9, struct.pack("<IIQQQQ", q, flags, ring, ring + 0x2000, ring + 0x1000, log),
		     flags=VERSION | (NEED_REPLY if flags else 0))


def ring_up(q):
	return (state(8, q, 256) + state(10, q, 0) + vring_addr(q) +
		u64(12, q, fds=1, eventfd=True) + u64(13, q, fds=1, eventfd=True) +
		state(18, q, 1))


def config(req, offset, data, **kw):
	return frame(req, struct.pack("<III", offset, len(data), 0) + data, **kw)


owner = (u64(1, 0) + u64(15, 0) + u64(16, PROTOCOL) + u64(17, 0) + frame(3) +
	 u64(2, FEATURES) + mem_table())
seeds = {
	# QEMU's start: both rings up, the config space read, wce written.
	"bringup": owner + ring_up(0) + ring_up(1) + config(24, 0, bytes(60)) +
		   config(25, 32, b"\x01", flags=VERSION | NEED_REPLY),
	# A new memory table while the rings run (guest memory hotplug).
	"remap": owner + ring_up(0) + mem_table(BASE + (1 << 30)) + mem_table(),
	# Stop (GET_VRING_BASE), reset and start again, as on a guest reboot.
	# Live migration on the source: the dirty log (a 1 MiB memfd, 32 bytes
	# used), LOG_ALL, logged used rings, the final stop, logging off.
	"migrate": (u64(16, PROTOCOL | LOG_SHMFD) + frame(3) + u64(2, FEATURES) + mem_table() +
		    ring_up(0) + ring_up(1) + frame(6, struct.pack("<QQ", 32, 0), fds=1) +
		    u64(2, FEATURES | LOG_ALL, flags=VERSION | NEED_REPLY) + vring_addr(0, F_LOG) +
		    vring_addr(1, F_LOG) + frame(6, struct.pack("<QQ", 4096, 8192), fds=1) +
		    state(11, 0, 0) + state(11, 1, 0) + u64(2, FEATURES) + vring_addr(0)),
	"reset": owner + ring_up(0) + state(11, 0, 0) + frame(34) + u64(2, FEATURES) +
		 mem_table() + ring_up(0) + state(18, 0, 0),
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
							  "corpus", "vhost_user")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
	with open(os.path.join(out, name), "wb") as f:
		f.write(data)
