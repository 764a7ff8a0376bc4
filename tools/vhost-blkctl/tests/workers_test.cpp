// SPDX-License-Identifier: GPL-2.0
// Worker plans and their application through the worker ioctls.
#include "bridge/workers.hpp"

#include "fake_device.hpp"

#include <vblk/cpu_list.hpp>
#include <vblk/error.hpp>

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

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

TEST(CpuList, parses_and_prints_the_kernel_s_format)
{
	EXPECT_EQ(vblk::parse_cpu_list("0"), (vblk::CpuSet{ 0 }));
	EXPECT_EQ(vblk::parse_cpu_list("0-3,8,10-11"),
		  (vblk::CpuSet{ 0, 1, 2, 3, 8, 10, 11 }));
	EXPECT_EQ(vblk::parse_cpu_list("3,1-2,2"), (vblk::CpuSet{ 1, 2, 3 }));
	EXPECT_EQ(vblk::format_cpu_list({ 0, 1, 2, 3, 8, 10, 11 }), "0-3,8,10-11");
	EXPECT_EQ(vblk::format_cpu_list({ 5 }), "5");
	EXPECT_EQ(vblk::format_cpu_list({}), "");
	for (const char *bad : { "", ",", "1,", "-1", "1-", "3-1", "a", "0x1", "1024", "1 2",
				 "99999999" })
		EXPECT_THROW(vblk::parse_cpu_list(bad), std::invalid_argument) << bad;
}


TEST(WorkerSet, places_each_worker_serving_a_ring_on_its_cpus)
{
	fake::State st;
	fake::Device dev(st);
	dev.set_owner();
	WorkerSet ws;
	ws.adopt_default(dev);
	auto plan = WorkerPlan::per_vq(2);
	ws.apply(dev, plan);
	fake::StandIn w0, w1;
	st.tids[ws.kernel_ids()[0]] = w0.tid;
	st.tids[ws.kernel_ids()[1]] = w1.tid;
	const vblk::CpuSet everywhere = vblk::thread_cpus(::gettid());
	const unsigned first = *everywhere.begin();

	// Every worker, then one worker of its own.
	plan.placement.all = vblk::CpuSet{ first };
	ws.apply(dev, plan);
	EXPECT_EQ(vblk::thread_cpus(w0.tid), vblk::CpuSet{ first });
	EXPECT_EQ(vblk::thread_cpus(w1.tid), vblk::CpuSet{ first });
	plan.placement.worker[1] = everywhere;
	ws.apply(dev, plan);
	EXPECT_EQ(vblk::thread_cpus(w0.tid), vblk::CpuSet{ first });
	EXPECT_EQ(vblk::thread_cpus(w1.tid), everywhere);
	EXPECT_EQ(ws.tid(0), w0.tid);
	EXPECT_EQ(ws.tid(7), 0);

	// A worker without rings has no thread to place yet: skipped.
	auto idle = plan;
	idle.map = { 0, 0 };
	st.calls.clear();
	ws.apply(dev, idle);
	EXPECT_EQ(ws.tid(1), 0);

	// A CPU the kernel refuses is an error of apply().
	plan.placement.all = vblk::CpuSet{ CPU_SETSIZE - 1 };
	plan.placement.worker.clear();
	EXPECT_THROW(ws.apply(dev, plan), vblk::SysError);
}

TEST(WorkerSet, a_module_without_thread_names_is_fine_until_placement_is_asked)
{
	fake::State st;
	fake::Device dev(st);
	dev.set_owner();
	WorkerSet ws;
	ws.adopt_default(dev);
	st.fail["worker_tid"] = ENOTTY;
	auto plan = WorkerPlan::per_vq(2);
	EXPECT_NO_THROW(ws.apply(dev, plan));
	EXPECT_EQ(ws.tid(0), 0);
	plan.placement.all = vblk::CpuSet{ 0 };
	EXPECT_THROW(ws.apply(dev, plan), vblk::SysError);
}

TEST(WorkerSet, offline_cpus_are_named)
{
	EXPECT_NO_THROW(check_cpus_online(vblk::CpuSet{ 0 }));
	try {
		check_cpus_online(vblk::CpuSet{ CPU_SETSIZE - 1 });
		FAIL();
	} catch (const std::invalid_argument &e) {
		EXPECT_NE(std::string(e.what()).find("is not online"), std::string::npos)
			<< e.what();
	}
}
