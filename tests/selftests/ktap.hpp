// SPDX-License-Identifier: GPL-2.0
// A small C++ equivalent of tools/testing/selftests/kselftest_harness.h:
// registered tests, each run in a forked child with a timeout, KTAP output.
//
//   TEST(name) { ... }                       default timeout
//   TEST_TIMEOUT(name, seconds) { ... }
//   TEST_VARIANTS(name, Type, param, { {"a", A}, {"b", B} }) { ...param... }
//   TEST_VARIANTS_TIMEOUT(name, Type, param, secs, { ... }) { ...param... }
//       registers name.a, name.b
//   ASSERT_EQ/NE/LT/LE/GT/GE/TRUE/FALSE, ASSERT_ERRNO(expr, E), SKIP(reason)
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace ktap {

inline constexpr int default_timeout_s = 60;

struct TestCase {
	std::string name;
	std::function<void()> fn;
	int timeout_s;
};

std::vector<TestCase> &registry();

struct Registrar {
	Registrar(std::string name, std::function<void()> fn, int timeout_s = default_timeout_s)
	{
		registry().push_back({ std::move(name), std::move(fn), timeout_s });
	}
};

template <typename P> struct VariantRegistrar {
	VariantRegistrar(const std::string &base, std::vector<std::pair<std::string, P>> variants,
			 void (*fn)(const P &), int timeout_s = default_timeout_s)
	{
		for (auto &[vname, p] : variants)
			registry().push_back({ base + "." + vname, [fn, p] { fn(p); }, timeout_s });
	}
};

// Thrown inside a test to end it.
struct Skip {
	std::string reason;
};
struct Failure {
	std::string message;
};

[[noreturn]] void skip(const std::string &reason);
[[noreturn]] void fail(const std::string &message, const char *file, int line);
// A "# ..." diagnostic line.
void diag(const std::string &line);
// The run's seed (--seed, or time based); randomized tests use it and print it.
uint64_t seed();

int main(int argc, char **argv);

template <typename T> std::string show(const T &v)
{
	if constexpr (requires(std::ostream &os) { os << v; }) {
		std::ostringstream s;
		if constexpr (std::is_integral_v<T> && sizeof(T) == 1)
			s << int(v);
		else
			s << v;
		return s.str();
	} else {
		return "<value>";
	}
}

} // namespace ktap

#define KTAP_CAT2(a, b) a##b
#define KTAP_CAT(a, b) KTAP_CAT2(a, b)

#define TEST_TIMEOUT(name, secs)                                                          \
	static void name();                                                               \
	static ktap::Registrar KTAP_CAT(ktap_reg_, name)(#name, name, secs);              \
	static void name()
#define TEST(name) TEST_TIMEOUT(name, ktap::default_timeout_s)

#define TEST_VARIANTS(name, Type, param, ...)                                             \
	static void name(const Type &param);                                              \
	static ktap::VariantRegistrar<Type> KTAP_CAT(ktap_reg_, name)(                    \
		#name, std::vector<std::pair<std::string, Type>> __VA_ARGS__, name);        \
	static void name(const Type &param)
#define TEST_VARIANTS_TIMEOUT(name, Type, param, secs, ...)                               \
	static void name(const Type &param);                                              \
	static ktap::VariantRegistrar<Type> KTAP_CAT(ktap_reg_, name)(                    \
		#name, std::vector<std::pair<std::string, Type>> __VA_ARGS__, name, secs);  \
	static void name(const Type &param)

#define SKIP(reason) ktap::skip(reason)

#define KTAP_CMP(a, b, op)                                                                \
	do {                                                                              \
		const auto &ktap_a = (a);                                                 \
		const auto &ktap_b = (b);                                                 \
		if (!(ktap_a op ktap_b))                                                  \
			ktap::fail(std::string(#a " " #op " " #b " (") + ktap::show(ktap_a) + \
					   " vs " + ktap::show(ktap_b) + ")",             \
				   __FILE__, __LINE__);                                   \
	} while (0)

#define ASSERT_EQ(a, b) KTAP_CMP(a, b, ==)
#define ASSERT_NE(a, b) KTAP_CMP(a, b, !=)
#define ASSERT_LT(a, b) KTAP_CMP(a, b, <)
#define ASSERT_LE(a, b) KTAP_CMP(a, b, <=)
#define ASSERT_GT(a, b) KTAP_CMP(a, b, >)
#define ASSERT_GE(a, b) KTAP_CMP(a, b, >=)
#define ASSERT_TRUE(x)                                                                    \
	do {                                                                              \
		if (!(x))                                                                 \
			ktap::fail("expected true: " #x, __FILE__, __LINE__);            \
	} while (0)
#define ASSERT_FALSE(x)                                                                   \
	do {                                                                              \
		if (x)                                                                    \
			ktap::fail("expected false: " #x, __FILE__, __LINE__);           \
	} while (0)
// expr must throw vblk::SysError with code E.
#define ASSERT_ERRNO(expr, E)                                                             \
	do {                                                                              \
		int ktap_err = 0;                                                         \
		try {                                                                     \
			expr;                                                             \
		} catch (const vblk::SysError &ktap_e) {                                  \
			ktap_err = ktap_e.code();                                         \
		}                                                                         \
		if (ktap_err != (E))                                                      \
			ktap::fail(std::string(#expr ": errno ") + std::to_string(ktap_err) + \
					   ", expected " #E " (" + std::to_string(E) + ")", \
				   __FILE__, __LINE__);                                   \
	} while (0)
