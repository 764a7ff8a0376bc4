// SPDX-License-Identifier: GPL-2.0
#include "cli/cli.hpp"

int main(int argc, char **argv)
{
	return cli::main_entry(argc, argv);
}
