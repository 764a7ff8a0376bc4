// SPDX-License-Identifier: GPL-2.0
// A fresh directory under /tmp for one test, removed with its contents.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace test_util {

struct TempDir {
	std::string path;
	TempDir()
	{
		char t[] = "/tmp/vhost-blkctl-test.XXXXXX";
		path = ::mkdtemp(t);
	}
	~TempDir() { std::filesystem::remove_all(path); }
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
};

} // namespace test_util
