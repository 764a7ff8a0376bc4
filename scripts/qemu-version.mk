# SPDX-License-Identifier: GPL-2.0
# The one place that picks the QEMU source the vhost-blk device is built on:
# Debian bookworm's qemu, the source version of the installed
# qemu-system-x86 (binNMU 1:7.2+dfsg-7+deb12u18+b3).  tools/qemu/patches/
# must apply to exactly this version; scripts/qemu-build.sh fails with a
# message when apt can no longer fetch it.
QEMU_PKGVER ?= 1:7.2+dfsg-7+deb12u18
