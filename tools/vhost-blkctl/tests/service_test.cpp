// SPDX-License-Identifier: GPL-2.0
// What serve needs to run under a service manager: readiness notification,
// the vhost-user socket's owner, group and mode, a socket path that appears
// only once it accepts connections, and a run directory it never changes.
#include "cli/cli.hpp"
#include "common/notify.hpp"
#include "common/unix_socket.hpp"
#include "control/rundir.hpp"
#include "temp_dir.hpp"

#include <vblk/error.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using test_util::TempDir;

namespace {

// A service manager's end of $NOTIFY_SOCKET: a datagram socket bound to a
// path or an abstract name, exported while the object lives.
class NotifyListener {
public:
	explicit NotifyListener(const std::string &name) : fd_(::socket(AF_UNIX, SOCK_DGRAM, 0))
	{
		sockaddr_un a = {};
		a.sun_family = AF_UNIX;
		std::memcpy(a.sun_path, name.data(), name.size());
		if (name[0] == '@')
			a.sun_path[0] = '\0';
		socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
						       name.size() + (name[0] == '@' ? 0 : 1));
		vblk::check(::bind(fd_.get(), reinterpret_cast<sockaddr *>(&a), len), "bind");
		::setenv(common::notify_socket_env, name.c_str(), 1);
	}
	~NotifyListener() { ::unsetenv(common::notify_socket_env); }

	// The next datagram, or "" if none is queued.
	std::string next()
	{
		char buf[4096];
		ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
		return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
	}

private:
	vblk::UniqueFd fd_;
};

struct stat stat_of(const std::string &path)
{
	struct stat st;
	vblk::check(::lstat(path.c_str(), &st), "stat " + path);
	return st;
}

std::vector<std::string> entries(const std::string &dir)
{
	std::vector<std::string> v;
	for (const auto &e : std::filesystem::directory_iterator(dir))
		v.push_back(e.path().filename().string());
	std::sort(v.begin(), v.end());
	return v;
}

} // namespace

TEST(Notify, sends_one_datagram_to_a_path_socket)
{
	TempDir d;
	NotifyListener l(d.path + "/notify");
	EXPECT_TRUE(common::notify("READY=1\nSTATUS=serving"));
	EXPECT_EQ(l.next(), "READY=1\nSTATUS=serving");
	EXPECT_TRUE(common::notify("STOPPING=1"));
	EXPECT_EQ(l.next(), "STOPPING=1");
	EXPECT_EQ(l.next(), "");
}

TEST(Notify, sends_to_an_abstract_socket)
{
	NotifyListener l("@vhost-blkctl-test-" + std::to_string(::getpid()));
	EXPECT_TRUE(common::notify("READY=1"));
	EXPECT_EQ(l.next(), "READY=1");
}

TEST(Notify, does_nothing_without_a_service_manager)
{
	::unsetenv(common::notify_socket_env);
	EXPECT_FALSE(common::notify("READY=1"));
	::setenv(common::notify_socket_env, "", 1);
	EXPECT_FALSE(common::notify("READY=1"));
	::unsetenv(common::notify_socket_env);
}

TEST(Notify, a_socket_that_is_gone_or_unsupported_throws)
{
	TempDir d;
	::setenv(common::notify_socket_env, (d.path + "/none").c_str(), 1);
	EXPECT_THROW(common::notify("READY=1"), vblk::SysError);
	::setenv(common::notify_socket_env, "vsock:2:1234", 1);
	EXPECT_THROW(common::notify("READY=1"), vblk::SysError);
	::unsetenv(common::notify_socket_env);
}

TEST(ListenUnix, the_socket_gets_the_mode_asked_for)
{
	TempDir d;
	std::string p = d.path + "/vhost-user.sock";
	auto fd = common::listen_unix(p, common::SocketAccess{ 0640 });
	struct stat st = stat_of(p);
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(st.st_mode & 07777, 0640u);
	EXPECT_EQ(st.st_uid, ::geteuid());
	EXPECT_NO_THROW(common::connect_unix(p));
}

TEST(ListenUnix, the_socket_gets_the_owner_and_group_asked_for)
{
	if (::geteuid() != 0)
		GTEST_SKIP() << "chown to another user needs root";
	TempDir d;
	std::string p = d.path + "/vhost-user.sock";
	auto fd = common::listen_unix(p, common::SocketAccess{ 0660, 65534, 65533 });
	struct stat st = stat_of(p);
	EXPECT_EQ(st.st_uid, 65534u);
	EXPECT_EQ(st.st_gid, 65533u);
	EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST(ListenUnix, the_path_appears_by_a_rename_of_a_listening_socket)
{
	TempDir d;
	std::string p = d.path + "/vhost-user.sock";
	vblk::UniqueFd in(static_cast<int>(
		vblk::check(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")));
	vblk::check(::inotify_add_watch(in.get(), d.path.c_str(), IN_CREATE | IN_MOVED_TO),
		    "inotify_add_watch");
	auto fd = common::listen_unix(p, common::SocketAccess{ 0660 });
	// The final name is never created (bind's file, not yet listening),
	// only moved to; whatever was created under another name is gone.
	alignas(inotify_event) char buf[4096];
	ssize_t n = ::read(in.get(), buf, sizeof(buf));
	ASSERT_GT(n, 0);
	int created = 0, moved = 0;
	for (char *e = buf; e < buf + n;) {
		auto *ev = reinterpret_cast<inotify_event *>(e);
		std::string name = ev->len ? ev->name : "";
		if ((ev->mask & IN_CREATE) && name == "vhost-user.sock")
			created++;
		if ((ev->mask & IN_MOVED_TO) && name == "vhost-user.sock")
			moved++;
		e += sizeof(inotify_event) + ev->len;
	}
	EXPECT_EQ(created, 0);
	EXPECT_EQ(moved, 1);
	EXPECT_EQ(entries(d.path), std::vector<std::string>{ "vhost-user.sock" });
	EXPECT_NO_THROW(common::connect_unix(p));
}

TEST(ListenUnix, refuses_a_live_socket_and_anything_not_a_socket_leaving_no_file)
{
	TempDir d;
	std::string p = d.path + "/s";
	auto live = common::listen_unix(p);
	try {
		common::listen_unix(p);
		ADD_FAILURE() << "a second listener on a live socket";
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), EADDRINUSE);
	}
	std::string f = d.path + "/file";
	{
		vblk::UniqueFd::open(f, O_CREAT | O_WRONLY, 0600);
	}
	try {
		common::listen_unix(f);
		ADD_FAILURE() << "a regular file replaced by a socket";
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), EEXIST);
	}
	EXPECT_EQ(entries(d.path), (std::vector<std::string>{ "file", "s" }));
}

TEST(ListenUnix, a_path_too_long_for_the_temporary_name_is_refused)
{
	std::string p = "/tmp/" + std::string(sizeof(sockaddr_un::sun_path) - 8, 'x');
	try {
		common::listen_unix(p);
		ADD_FAILURE() << "listened on " << p;
	} catch (const vblk::SysError &e) {
		EXPECT_EQ(e.code(), ENAMETOOLONG);
	}
}

TEST(RunDir, a_directory_it_creates_is_0755)
{
	TempDir d;
	std::string r = d.path + "/a/run";
	control::make_run_dir(r);
	EXPECT_EQ(stat_of(r).st_mode & 07777, 0755u);
}

TEST(RunDir, an_existing_directory_keeps_its_mode)
{
	TempDir d;
	for (unsigned mode : { 0700u, 01777u, 0750u }) {
		ASSERT_EQ(::chmod(d.path.c_str(), mode), 0);
		EXPECT_NO_THROW(control::make_run_dir(d.path)) << std::oct << mode;
		EXPECT_EQ(stat_of(d.path).st_mode & 07777, mode);
	}
}

TEST(RunDir, a_world_writable_directory_without_the_sticky_bit_is_refused)
{
	TempDir d;
	ASSERT_EQ(::chmod(d.path.c_str(), 0777), 0);
	try {
		control::make_run_dir(d.path);
		ADD_FAILURE() << "accepted a 0777 run directory";
	} catch (const vblk::SysError &e) {
		EXPECT_NE(std::string(e.what()).find("world-writable"), std::string::npos) << e.what();
	}
	EXPECT_EQ(stat_of(d.path).st_mode & 07777, 0777u);
}

TEST(RunDir, a_directory_of_another_user_is_refused)
{
	if (::geteuid() != 0)
		GTEST_SKIP() << "chown to another user needs root";
	TempDir d;
	ASSERT_EQ(::chown(d.path.c_str(), 65534, 65534), 0);
	EXPECT_THROW(control::make_run_dir(d.path), vblk::SysError);
	EXPECT_EQ(stat_of(d.path).st_uid, 65534u);
}

TEST(RunDir, a_file_is_not_a_run_directory)
{
	TempDir d;
	std::string f = d.path + "/f";
	{
		vblk::UniqueFd::open(f, O_CREAT | O_WRONLY, 0600);
	}
	EXPECT_THROW(control::make_run_dir(f), vblk::SysError);
}

TEST(ServeCli, socket_mode_is_octal_up_to_0777)
{
	EXPECT_EQ(cli::parse_mode("660"), 0660u);
	EXPECT_EQ(cli::parse_mode("0600"), 0600u);
	EXPECT_EQ(cli::parse_mode("0777"), 0777u);
	for (const char *bad : { "", "1777", "0o660", "689", "66x", "-1", "0x1ff" })
		EXPECT_FALSE(cli::parse_mode(bad)) << bad;
}

TEST(ServeCli, socket_owner_group_and_mode_options)
{
	CLI::App app{ "vhost-blkctl" };
	cli::Options o;
	cli::setup_cli(app, o);
	std::vector<std::string> args = { "serve", "--backend", "/dev/null", "--socket", "/tmp/a",
					  "--socket-owner", "libvirt-qemu", "--socket-group", "kvm",
					  "--socket-mode", "0600" };
	std::reverse(args.begin(), args.end());
	app.parse(args);
	EXPECT_EQ(o.serve.socket_owner, "libvirt-qemu");
	EXPECT_EQ(o.serve.socket_group, "kvm");
	EXPECT_EQ(o.serve.socket_mode, "0600");

	CLI::App app2{ "vhost-blkctl" };
	cli::Options o2;
	cli::setup_cli(app2, o2);
	std::vector<std::string> bad = { "serve", "--backend", "/dev/null", "--socket", "/tmp/a",
					 "--socket-mode", "0888" };
	std::reverse(bad.begin(), bad.end());
	EXPECT_THROW(app2.parse(bad), CLI::ParseError);
	EXPECT_EQ(o.serve.socket_mode, "0600");
}
