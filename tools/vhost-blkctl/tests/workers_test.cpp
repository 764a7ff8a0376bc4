// SPDX-License-Identifier: GPL-2.0
// Worker plans and their application through the worker ioctls.
#include "bridge/workers.hpp"

#include "fake_device.hpp"

#include <gtest/gtest.h>

using namespace bridge;

TEST(WorkerPlan, policies)
{
	auto s = WorkerPlan::single(4);
	EXPECT_EQ(s.workers, 1u);
	EXPECT_EQ(s.map, (std::vector<unsigned>{ 0, 0, 0, 0 }));
	auto p = WorkerPlan::per_vq(3);
	EXPECT_EQ(p.workers, 3u);
	EXPECT_EQ(p.map, (std::vector<unsigned>{ 0, 1, 2 }));
	EXPECT_EQ(p.policy, "per-vq");
	auto r = WorkerPlan::from_policy("round-robin:2", 5);
	EXPECT_EQ(r.map, (std::vector<unsigned>{ 0, 1, 0, 1, 0 }));
	EXPECT_EQ(r.policy, "round-robin:2");
}

TEST(WorkerPlan, bad_policies_and_counts)
{
	EXPECT_THROW(WorkerPlan::from_policy("fastest", 2), std::invalid_argument);
	EXPECT_THROW(WorkerPlan::from_policy("round-robin:", 2), std::invalid_argument);
	EXPECT_THROW(WorkerPlan::from_policy("round-robin:0", 2), std::invalid_argument);
	EXPECT_THROW(WorkerPlan::from_policy("round-robin:3", 2), std::invalid_argument);
	EXPECT_THROW(WorkerPlan::from_policy("round-robin:-1", 2), std::invalid_argument);
}

TEST(WorkerPlan, assign_list_applies_in_order_and_checks_ranges)
{
	auto p = WorkerPlan::round_robin(4, 2);
	p.assign_list("0:1,3:0");
	EXPECT_EQ(p.map, (std::vector<unsigned>{ 1, 1, 0, 0 }));
	EXPECT_EQ(p.policy, "custom");
	EXPECT_THROW(p.assign_list("4:0"), std::invalid_argument);
	EXPECT_THROW(p.assign_list("0:2"), std::invalid_argument);
	EXPECT_THROW(p.assign_list("0-1"), std::invalid_argument);
	EXPECT_THROW(p.assign_list("a:b"), std::invalid_argument);
}

TEST(WorkerSet, grows_attaches_and_shrinks_in_the_kernel)
{
	fake::State st;
	fake::Device dev(st);
	dev.set_owner();
	WorkerSet ws;
	ws.adopt_default(dev);
	ws.apply(dev, WorkerPlan::per_vq(3));
	ASSERT_EQ(ws.kernel_ids().size(), 3u);
	EXPECT_EQ(st.rings[0].worker, ws.kernel_ids()[0]);
	EXPECT_EQ(st.rings[2].worker, ws.kernel_ids()[2]);
	EXPECT_NE(st.rings[1].worker, st.rings[2].worker);
	// Shrinking moves vqs off the workers before freeing them (else EBUSY).
	ws.apply(dev, WorkerPlan::single(3));
	EXPECT_EQ(ws.kernel_ids().size(), 1u);
	EXPECT_EQ(st.workers.size(), 1u);
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(st.rings[i].worker, ws.kernel_ids()[0]);
	EXPECT_EQ(ws.logical(ws.kernel_ids()[0]), 0);
	EXPECT_EQ(ws.logical(999), -1);
}

TEST(WorkerSet, unchanged_vqs_are_not_reattached)
{
	fake::State st;
	fake::Device dev(st);
	dev.set_owner();
	WorkerSet ws;
	ws.adopt_default(dev);
	st.calls.clear();
	ws.apply(dev, WorkerPlan::single(2));
	for (const auto &c : st.calls)
		EXPECT_EQ(c.find("attach_vring_worker"), std::string::npos) << c;
}
