// SPDX-License-Identifier: GPL-2.0
#include "control/rundir.hpp"

#include <vblk/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace control {

std::string resolve_run_dir(const std::string &option)
{
	if (!option.empty())
		return option;
	const char *env = std::getenv(run_dir_env);
	if (env && *env)
		return env;
	return default_run_dir;
}

std::string socket_path(const std::string &run_dir, const std::string &name)
{
	return run_dir + "/" + name + ".sock";
}

bool valid_name(const std::string &name)
{
	if (name.empty() || name.size() > 64 || name[0] == '.')
		return false;
	return std::all_of(name.begin(), name.end(), [](char c) {
		return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
		       c == '-';
	});
}

std::vector<std::string> list_names(const std::string &run_dir)
{
	std::vector<std::string> names;
	std::error_code ec;
	for (const auto &e : std::filesystem::directory_iterator(run_dir, ec)) {
		auto p = e.path();
		if (p.extension() == ".sock" && e.is_socket(ec))
			names.push_back(p.stem().string());
	}
	std::sort(names.begin(), names.end());
	return names;
}

void make_run_dir(const std::string &run_dir)
{
	std::error_code ec;
	if (std::filesystem::create_directories(run_dir, ec)) {
		// Ours: readable by all, so `list` works for everyone; the
		// sockets in it are 0600.
		vblk::check(::chmod(run_dir.c_str(), 0755), "chmod " + run_dir);
		return;
	}
	if (ec)
		throw vblk::SysError(ec.value(), "mkdir " + run_dir);
	// Someone else's directory: used as it is, if nobody but its owner
	// (us or root) can replace the sockets in it.
	struct stat st;
	vblk::check(::stat(run_dir.c_str(), &st), "stat " + run_dir);
	if (!S_ISDIR(st.st_mode))
		throw vblk::SysError(ENOTDIR, "run directory " + run_dir);
	if (st.st_uid != ::geteuid() && st.st_uid != 0)
		throw vblk::SysError(EPERM, "run directory " + run_dir + " belongs to uid " +
						    std::to_string(st.st_uid) +
						    ", neither root nor us; refusing it");
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		throw vblk::SysError(EPERM, "run directory " + run_dir +
						    " is world-writable without the sticky bit; "
						    "refusing it");
}

} // namespace control
