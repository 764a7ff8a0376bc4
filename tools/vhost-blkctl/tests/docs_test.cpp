// SPDX-License-Identifier: GPL-2.0
// The man page and the bash completion against the command line itself:
// CLI11's option tree is walked, every subcommand and option must be in
// vhost-blkctl(8)'s SYNOPSIS and body and in the completion script, and
// nothing may be documented or completed that the CLI does not have.
#include "cli/cli.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace {

std::string slurp(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream s;
	s << f.rdbuf();
	return s.str();
}

std::set<std::string> long_options(const std::string &text)
{
	std::set<std::string> out;
	std::regex re("--[a-z][a-z0-9-]*");
	for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
	     ++it)
		out.insert(it->str());
	return out;
}

struct Cli {
	CLI::App app{ "vhost-blkctl" };
	cli::Options o;
	std::set<std::string> global;				// --run-dir, --version, --help
	std::map<std::string, std::set<std::string>> options;	// subcommand -> its own
	std::set<std::string> takes_value;			// options with an argument

	Cli()
	{
		cli::setup_cli(app, o);
		collect(app, global);
		for (auto *sub : app.get_subcommands({}))
			collect(*sub, options[sub->get_name()]);
	}

	void collect(CLI::App &a, std::set<std::string> &into)
	{
		for (const auto *opt : a.get_options())
			for (const auto &n : opt->get_lnames()) {
				into.insert("--" + n);
				if (opt->get_expected_min() > 0)
					takes_value.insert("--" + n);
			}
	}

	std::set<std::string> all() const
	{
		std::set<std::string> s = global;
		for (const auto &[_, o] : options)
			s.insert(o.begin(), o.end());
		return s;
	}
};

// The man page with groff's "\-" as "-".
std::string man_page()
{
	std::string t = slurp(std::string(VHOST_BLKCTL_SOURCE_DIR) + "/Documentation/vhost-blkctl.8");
	return std::regex_replace(t, std::regex(R"(\\-)"), "-");
}

std::string section(const std::string &man, const std::string &name)
{
	auto at = man.find("\n.SH " + name + "\n");
	if (at == std::string::npos)
		return "";
	auto end = man.find("\n.SH ", at + 1);
	return man.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

std::string completion()
{
	return slurp(std::string(VHOST_BLKCTL_SOURCE_DIR) +
		     "/tools/vhost-blkctl/completion/vhost-blkctl.bash");
}

} // namespace

TEST(Docs, every_subcommand_and_option_is_in_the_man_page_synopsis_and_body)
{
	Cli c;
	std::string man = man_page();
	ASSERT_FALSE(man.empty());
	std::string synopsis = section(man, "SYNOPSIS");
	std::string body = man.substr(man.find("\n.SH DESCRIPTION"));
	// SYNOPSIS: one block per subcommand, separated by .br.
	std::map<std::string, std::string> block;
	std::regex cmd_re(R"(\n\.B (?:vhost-blkctl )?([a-z]+)\n)");
	size_t from = 0;
	while (from < synopsis.size()) {
		size_t end = synopsis.find("\n.br", from);
		std::string b = synopsis.substr(from, end == std::string::npos ? std::string::npos
										   : end - from);
		std::smatch m;
		if (std::regex_search(b, m, cmd_re))
			block[m[1]] = b;
		if (end == std::string::npos)
			break;
		from = end + 4;
	}
	for (const auto &[cmd, opts] : c.options) {
		ASSERT_TRUE(block.count(cmd)) << cmd << " has no SYNOPSIS line";
		EXPECT_TRUE(std::regex_search(body, std::regex("\n\\.BI? " + cmd + "[ \n]")))
			<< cmd << " is not under COMMANDS";
		for (const auto &opt : opts) {
			if (opt == "--help")
				continue;
			EXPECT_NE(block[cmd].find(opt), std::string::npos)
				<< cmd << " " << opt << " is not in its SYNOPSIS line";
			EXPECT_NE(body.find(opt), std::string::npos)
				<< cmd << " " << opt << " is not described";
		}
	}
	for (const auto &opt : c.global) {
		if (opt == "--help")
			continue;
		EXPECT_NE(synopsis.find(opt), std::string::npos) << opt << " not in SYNOPSIS";
		EXPECT_NE(body.find(opt), std::string::npos) << opt << " not described";
	}
}

// Examples (.nf) also run other programs (systemctl, qemu): there only
// the lines that run vhost-blkctl count.
TEST(Docs, the_man_page_documents_no_option_the_cli_lacks)
{
	Cli c;
	auto all = c.all();
	std::istringstream man(man_page());
	bool example = false;
	for (std::string line; std::getline(man, line);) {
		if (line == ".nf" || line == ".fi")
			example = line == ".nf";
		if (example && line.find("vhost-blkctl ") == std::string::npos)
			continue;
		for (const auto &opt : long_options(line))
			EXPECT_TRUE(all.count(opt)) << "vhost-blkctl(8) documents " << opt << ": "
						    << line;
	}
}

TEST(Docs, completion_offers_exactly_the_cli_s_commands_and_options)
{
	Cli c;
	std::string comp = completion();
	ASSERT_FALSE(comp.empty());
	std::smatch m;
	ASSERT_TRUE(std::regex_search(comp, m, std::regex(R"re(local commands="([^"]*)")re")));
	std::set<std::string> commands;
	std::istringstream words(m[1].str());
	for (std::string w; words >> w;)
		commands.insert(w);
	std::set<std::string> subs;
	for (const auto &[cmd, _] : c.options)
		subs.insert(cmd);
	EXPECT_EQ(commands, subs);

	ASSERT_TRUE(std::regex_search(comp, m, std::regex(R"re(compgen -W "\$commands ([^"]*)")re")));
	EXPECT_EQ(long_options(m[1].str()), c.global) << "before the subcommand";

	std::regex arm(R"re(\n\t([a-z]+)\)\s*opts="([^"]*)")re");
	std::set<std::string> seen;
	for (auto it = std::sregex_iterator(comp.begin(), comp.end(), arm);
	     it != std::sregex_iterator(); ++it) {
		std::string cmd = (*it)[1];
		seen.insert(cmd);
		ASSERT_TRUE(c.options.count(cmd)) << "completion for unknown command " << cmd;
		auto offered = long_options((*it)[2]);
		for (const auto &opt : c.options[cmd])
			EXPECT_TRUE(offered.count(opt)) << cmd << " " << opt << " is not completed";
		// After the subcommand the global --run-dir is accepted too.
		for (const auto &opt : offered)
			EXPECT_TRUE(c.options[cmd].count(opt) || opt == "--run-dir")
				<< "completion offers " << cmd << " " << opt;
	}
	EXPECT_EQ(seen, subs);
}

// After an option that takes a value the completion must offer a value
// (or nothing), never option names: each such option has a `case $prev`
// arm, and no flag has one.
TEST(Docs, completion_expects_a_value_after_every_option_that_takes_one)
{
	Cli c;
	std::string comp = completion();
	auto start = comp.find("case $prev in");
	ASSERT_NE(start, std::string::npos);
	std::string block = comp.substr(start, comp.find("\n\tesac", start) - start);
	std::set<std::string> arms;
	// A pattern may go on over lines ending in a backslash.
	std::regex pat(R"(\n\t(--[^)]*)\))");
	for (auto it = std::sregex_iterator(block.begin(), block.end(), pat);
	     it != std::sregex_iterator(); ++it)
		for (const auto &o : long_options((*it)[1]))
			arms.insert(o);
	EXPECT_EQ(arms, c.takes_value);
}
