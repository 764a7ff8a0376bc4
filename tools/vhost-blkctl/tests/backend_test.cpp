// SPDX-License-Identifier: GPL-2.0
// device::Backend::open on raw image files: what serve offers for a file
// (size, block size, read-only, discard and write-zeroes) and what it
// refuses.  The kernel side is in tests/selftests/test_file.cpp.
#include "device/backend.hpp"
#include "temp_dir.hpp"

#include <vblk/error.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/vhost_blk.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// A file of `size` bytes in `dir`; skips where the filesystem has no O_DIRECT.
std::string image(const test_util::TempDir &dir, off_t size)
{
	std::string p = dir.path + "/disk.img";
	vblk::UniqueFd fd(::open(p.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
	EXPECT_TRUE(static_cast<bool>(fd));
	EXPECT_EQ(::ftruncate(fd.get(), size), 0);
	return p;
}

bool has_o_direct(const std::string &p)
{
	vblk::UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
	return static_cast<bool>(fd);
}

} // namespace

TEST(Backend, an_image_file_is_opened_o_direct_with_its_size_in_whole_blocks)
{
	test_util::TempDir dir;
	auto p = image(dir, (1 << 20) + 100);
	if (!has_o_direct(p))
		GTEST_SKIP() << dir.path << ": no O_DIRECT on this filesystem";
	auto b = device::Backend::open(p, false);
	const auto &i = b.info();
	int fl = ::fcntl(b.fd(), F_GETFL);
	EXPECT_TRUE(fl & O_DIRECT);
	EXPECT_EQ(fl & O_ACCMODE, O_RDWR);
	EXPECT_FALSE(i.read_only);
	EXPECT_GE(i.logical_block_size, 512u);
	EXPECT_EQ(i.logical_block_size & (i.logical_block_size - 1), 0u);
	EXPECT_EQ(i.size_bytes, (1u << 20) / i.logical_block_size * i.logical_block_size);
	EXPECT_EQ(i.physical_block_size % i.logical_block_size, 0u);
	// Offered at the module's range limit, or not at all.
	uint64_t range_max = uint64_t{ VHOST_BLK_MAX_RANGE_SECTORS } * 512 /
			     i.logical_block_size * i.logical_block_size;
	EXPECT_TRUE(i.discard_max_bytes == 0 || i.discard_max_bytes == range_max);
	EXPECT_TRUE(i.write_zeroes_max_bytes == 0 || i.write_zeroes_max_bytes == range_max);
	EXPECT_TRUE(i.write_cache);
	// The probes left nothing beside the image.
	size_t entries = 0;
	for ([[maybe_unused]] auto &e : std::filesystem::directory_iterator(dir.path))
		entries++;
	EXPECT_EQ(entries, 1u);
}

TEST(Backend, an_image_file_served_read_only_is_opened_read_only)
{
	test_util::TempDir dir;
	auto p = image(dir, 1 << 20);
	if (!has_o_direct(p))
		GTEST_SKIP() << dir.path << ": no O_DIRECT on this filesystem";
	auto b = device::Backend::open(p, true);
	EXPECT_TRUE(b.info().read_only);
	EXPECT_EQ(::fcntl(b.fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST(Backend, neither_a_block_device_nor_a_file_is_enotblk)
{
	test_util::TempDir dir;
	std::string fifo = dir.path + "/fifo";
	ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
	try {
		device::Backend::open(fifo, false);
		FAIL() << "a FIFO was accepted";
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), ENOTBLK);
	}
}
