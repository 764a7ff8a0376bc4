# SPDX-License-Identifier: GPL-2.0
# The one place that picks the target kernel. Image, headers and source must
# all be this exact Debian package version; scripts/setup.sh refuses otherwise.
KVER ?= 6.12.117+deb12-amd64
KPKGVER ?= 6.12.117-1~deb12u1
KSRC_PKG ?= linux-source-6.12
