# SPDX-License-Identifier: GPL-2.0
# vhost-blk top-level build.  See README.md.

# make install and make kmod (what dkms.conf runs) build for any installed
# 6.12+ kernel, the running one unless KVER is given; everything else is for
# the test bed's pinned kernel (scripts/kernel-version.mk).
ifneq ($(filter command line environment,$(origin KVER)),)
INSTALL_KVER := $(KVER)
else
INSTALL_KVER := $(shell uname -r)
endif
include scripts/kernel-version.mk

BUILD       ?= $(CURDIR)/build
KDIR        ?= /lib/modules/$(KVER)/build
CMAKE_BUILD := $(BUILD)/cmake
JOBS        ?= $(shell nproc)

.PHONY: all setup module kmod tools unit vmtest e2e e2e-pci bench check run checkpatch clean install \
	install-module install-udev install-tools debug-kernel qemu deb

all: module tools

setup:
	@bash scripts/setup.sh

module: setup
	$(MAKE) -C $(KDIR) M=$(CURDIR)/kernel VHOST_INC=$(BUILD)/ksrc/drivers/vhost modules

# vhost_blk.ko for $(INSTALL_KVER) from that kernel's installed headers, with
# no apt and no download: scripts/vhost-header.sh provides the vhost core's
# private header from the kernel's exact source (its linux-source package, or
# VHOST_SRC=<source tree>) and refuses a mismatch or a kernel before 6.12.
# kernel/ holds one build: after make kmod for another kernel, make module
# rebuilds it for the test bed.
INSTALL_KDIR := /lib/modules/$(INSTALL_KVER)/build
VHOST_HDR    := $(BUILD)/vhost/$(INSTALL_KVER)
kmod:
	bash scripts/vhost-header.sh $(INSTALL_KVER) $(VHOST_HDR)
	$(MAKE) -C $(INSTALL_KDIR) M=$(CURDIR)/kernel VHOST_INC=$(VHOST_HDR)/drivers/vhost modules

# RelWithDebInfo with line tables and function names only (-g1): backtraces,
# sanitizer reports and perf keep file:line, and the build takes a third
# less time than with -g (test_workers.cpp: 5.8 s against 8.4 s), which
# make check pays on 2 cores.  For gdb's variables, a Debug build.
TOOLS_FLAGS := -O2 -g1 -DNDEBUG
tools: setup
	cmake -S . -B $(CMAKE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		"-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$(TOOLS_FLAGS)" -DVHOST_BLK_WERROR=ON >/dev/null
	cmake --build $(CMAKE_BUILD) -j $(JOBS)

# GoogleTest unit tests: no kernel module needed.
unit: tools
	cd $(CMAKE_BUILD) && ctest --output-on-failure

# One sanitized build (clang, ASan+UBSan, every report fatal) for both the
# GoogleTest binaries and the libFuzzer targets (tests/fuzz): only libvblk,
# vhost-blkctl and the test binaries, line tables only, -O1 (one build
# instead of two: about 4 minutes less in make check on 2 cores).
# `make unit-asan` runs each test binary once, not one process per test as
# under ctest (7 s instead of 190 s: ASan's start-up per process); a new
# test binary goes in ASAN_TESTS.  `make fuzz` runs each fuzz target on its
# seed corpus and then for FUZZ_SECONDS of mutations.
SAN_BUILD    := $(BUILD)/cmake-sanitize
ASAN_TESTS   := tests/unit/vblk_unit_tests tools/vhost-blkctl/tests/vhost_blkctl_tests
FUZZ_TARGETS := vhost_user_fuzz
FUZZ_SECONDS ?= 30
sanitize: setup
	cmake -S . -B $(SAN_BUILD) -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug \
		"-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
		-DVHOST_BLK_FUZZ=ON -DVHOST_BLK_WERROR=ON >/dev/null
	cmake --build $(SAN_BUILD) -j $(JOBS) --target $(notdir $(ASAN_TESTS)) $(FUZZ_TARGETS)

unit-asan: sanitize
	set -e; for t in $(ASAN_TESTS); do $(SAN_BUILD)/$$t --gtest_brief=1; done

fuzz: sanitize
	bash scripts/fuzz.sh --build $(BUILD) --seconds $(FUZZ_SECONDS)

.PHONY: sanitize unit-asan fuzz

# Boots the target kernel in QEMU (TCG), loads vhost + vhost_blk and runs the
# KTAP selftests against real block devices.  KERNEL=debug runs them on the
# KASAN/lockdep/kmemleak kernel (built by `make debug-kernel`).
KERNEL ?= stock
ifeq ($(KERNEL),debug)
VM_KERNEL := --kernel-dir $(BUILD)/kernel/$(KVER)-debug
VM_DEPS   := debug-kernel
endif
vmtest: all $(VM_DEPS)
	bash tests/vm/run.sh --build $(BUILD) --kver $(KVER) $(VM_KERNEL) selftests

# End-to-end: inside the test VM, vhost-blkctl serve on null_blk and an
# unmodified nested QEMU guest on vhost-user-blk-pci (about 6 minutes).
e2e: all
	bash tests/vm/run.sh --build $(BUILD) --kver $(KVER) --timeout 1200 --nested-tcg \
		script tests/e2e/vhost_user_blk.sh

# End-to-end on the project's QEMU device: inside the test VM, a nested guest
# on -device vhost-blk-pci (QEMU owns /dev/vhost-blk, no daemon) on null_blk:
# data checks, a guest reboot, worker re-mapping through QMP, stop/cont and
# live migration (two nested TCG boots: ~20 minutes on a loaded 2-core host).
# (--nested-tcg: tests/vm/run.sh says why.)
e2e-pci: all qemu
	bash tests/vm/run.sh --build $(BUILD) --kver $(KVER) --timeout 2400 --nested-tcg \
		script tests/e2e/vhost_blk_pci.sh

# The benchmark matrix in the test VM (about 12 minutes): raw device,
# /dev/vhost-blk, vhost-blkctl serve and qemu-storage-daemon, same driver.
# Writes build/bench/results.json, table.md and iops-by-depth.png.
bench: all
	bash scripts/bench.sh --build $(BUILD) --kver $(KVER)

# The debug kernel: cached in build/, rebuilt when source or config changes.
debug-kernel: setup
	BUILD=$(BUILD) bash scripts/debug-kernel.sh

# QEMU 7.2 (Debian's source, scripts/qemu-version.mk) with the vhost-blk-pci
# device (tools/qemu/patches/): build/qemu/bin/qemu-system-x86_64, cached.
qemu: setup
	BUILD=$(BUILD) bash scripts/qemu-build.sh

# Debian packages vhost-blk-dkms and vhost-blkctl (debian/, dpkg-buildpackage
# on a copy of the tree): build/deb/*.deb.
deb: setup
	BUILD=$(BUILD) JOBS=$(JOBS) bash scripts/deb.sh

# The main job: a VM with the module loaded serving a disk that does real I/O.
run: all
	bash tests/vm/run.sh --build $(BUILD) --kver $(KVER) demo

# Everything CI runs; the last line is "N passed, N failed".
check: all debug-kernel deb sanitize
	bash scripts/check.sh --build $(BUILD) --kver $(KVER)

checkpatch: setup
	perl $(BUILD)/ksrc/scripts/checkpatch.pl --no-tree --strict -f \
		$(filter-out %.mod.c,$(wildcard kernel/*.c)) kernel/*.h include/uapi/linux/vhost_blk.h

# Installs the module for $(INSTALL_KVER) (the running kernel unless KVER=
# is given) into /lib/modules/KVER/updates and runs depmod, the udev rule and
# the tools (from the existing CMake build, else a fresh one in
# $(BUILD)/cmake-install).  No apt, no download.  With DESTDIR (packaging)
# depmod is left to whoever installs the tree (Debian's headers have no
# System.map, so Kbuild's own depmod step skips itself).
DESTDIR ?=
PREFIX  ?= /usr/local
install: install-module install-udev install-tools

install-module: kmod
	$(MAKE) -C $(INSTALL_KDIR) M=$(CURDIR)/kernel INSTALL_MOD_PATH=$(DESTDIR) \
		INSTALL_MOD_DIR=updates modules_install
	$(if $(DESTDIR),,depmod -a $(INSTALL_KVER))

install-udev:
	install -D -m 0644 udev/60-vhost-blk.rules \
		$(DESTDIR)/etc/udev/rules.d/60-vhost-blk.rules

install-tools:
	if [ -f $(CMAKE_BUILD)/cmake_install.cmake ]; then b=$(CMAKE_BUILD); else \
		b=$(BUILD)/cmake-install; \
		cmake -S . -B $$b -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && \
		cmake --build $$b -j $(JOBS) || exit 1; \
	fi; DESTDIR=$(DESTDIR) cmake --install $$b --prefix $(PREFIX)

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR)/kernel clean
	rm -rf $(BUILD)
