// SPDX-License-Identifier: GPL-2.0
// vhost_blk_test: KTAP selftests of /dev/vhost-blk.
#include "ktap.hpp"

int main(int argc, char **argv) { return ktap::main(argc, argv); }
