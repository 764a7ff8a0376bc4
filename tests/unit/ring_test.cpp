// SPDX-License-Identifier: GPL-2.0
// Split ring layout, chains, free list, used-ring checks, notifications.
#include "fake_device.hpp"

#include <vblk/error.hpp>
#include <vblk/guest_memory.hpp>
#include <vblk/virtqueue.hpp>

#include <gtest/gtest.h>

using namespace vblk;
using vblk::test::FakeDevice;

namespace {

// The classic vring_size() of the legacy layout.
size_t legacy_vring_size(unsigned num, size_t align)
{
	return ((sizeof(VringDesc) * num + sizeof(uint16_t) * (3 + num) + align - 1) & ~(align - 1)) +
	       sizeof(uint16_t) * 3 + sizeof(VringUsedElem) * num;
}

struct Fixture : ::testing::Test {
	GuestMemory mem{ 4 << 20 };
	SplitVirtqueue vq{ mem, 8, false, true };
	FakeDevice dev{ vq };
	GuestBuffer buf = mem.allocate(4096);

	std::vector<Segment> three() const
	{
		return { { buf.gpa(), 16, false }, { buf.gpa() + 512, 512, true },
			 { buf.gpa() + 1024, 1, true } };
	}
};

} // namespace

TEST(RingLayout, ModernLayoutPacksPartsWithTheirAlignment)
{
	auto l = RingLayout::compute(256);
	EXPECT_EQ(l.desc_offset, 0u);
	EXPECT_EQ(l.desc_size, 16u * 256);
	EXPECT_EQ(l.avail_offset, 4096u);
	EXPECT_EQ(l.avail_size, 6u + 2 * 256); // flags, idx, ring, used_event
	EXPECT_EQ(l.used_offset, 4096u + 520);	// 4614 rounded up to 4
	EXPECT_EQ(l.used_size, 6u + 8 * 256);	// flags, idx, ring, avail_event
	EXPECT_EQ(l.total, l.used_offset + l.used_size);
	EXPECT_EQ(l.used_offset % 4, 0u);
}

TEST(RingLayout, LegacyAlignmentMatchesClassicVringSize)
{
	for (unsigned num : { 1u, 2u, 64u, 128u, 256u, 1024u, 32768u })
		EXPECT_EQ(RingLayout::compute(static_cast<uint16_t>(num), 4096).total,
			  legacy_vring_size(num, 4096))
			<< "num " << num;
}

TEST(RingLayout, RejectsSizesThatAreNotPowersOfTwo)
{
	EXPECT_THROW(RingLayout::compute(0), std::invalid_argument);
	EXPECT_THROW(RingLayout::compute(100), std::invalid_argument);
}

TEST(EventIdx, NeedEventFollowsVirtioDefinition)
{
	// The device asked to be told once idx passes 5.
	EXPECT_TRUE(vblk::vring_need_event(5, 6, 5));
	EXPECT_TRUE(vblk::vring_need_event(5, 10, 0));
	EXPECT_FALSE(vblk::vring_need_event(5, 5, 0));  // reached, not passed
	EXPECT_FALSE(vblk::vring_need_event(5, 7, 6));  // already passed before
	EXPECT_FALSE(vblk::vring_need_event(5, 3, 3));  // no movement
}

TEST(EventIdx, NeedEventHandlesWraparound)
{
	EXPECT_TRUE(vblk::vring_need_event(0xffff, 0x0001, 0xfffe));
	EXPECT_TRUE(vblk::vring_need_event(0x0000, 0x0002, 0xfff0));
	EXPECT_FALSE(vblk::vring_need_event(0x0005, 0x0002, 0xfff0));
}

TEST_F(Fixture, DirectChainIsLinkedThroughNextWithFlags)
{
	auto segs = three();
	auto head = vq.add_chain(segs, 42);
	ASSERT_TRUE(head);
	EXPECT_EQ(dev.avail_idx(), 1u);
	EXPECT_EQ(dev.avail_head(0), *head);
	uint16_t i = *head;
	for (size_t k = 0; k < segs.size(); k++) {
		const VringDesc &d = vq.desc_table()[i];
		EXPECT_EQ(le64toh(d.addr), segs[k].addr);
		EXPECT_EQ(le32toh(d.len), segs[k].len);
		bool last = k + 1 == segs.size();
		uint16_t want = (last ? 0 : desc_f_next) | (segs[k].device_writable ? desc_f_write : 0);
		EXPECT_EQ(le16toh(d.flags), want);
		i = le16toh(d.next);
	}
	EXPECT_EQ(vq.num_free(), 5u);
	EXPECT_EQ(vq.outstanding(), 1u);
}

TEST_F(Fixture, IndirectChainTakesOneRingDescriptor)
{
	auto segs = three();
	auto head = vq.add_chain(segs, 1, true);
	ASSERT_TRUE(head);
	EXPECT_EQ(vq.num_free(), 7u);
	const VringDesc &d = vq.desc_table()[*head];
	EXPECT_EQ(le16toh(d.flags), desc_f_indirect);
	EXPECT_EQ(le32toh(d.len), 3 * sizeof(VringDesc));
	auto *table = reinterpret_cast<const VringDesc *>(le64toh(d.addr));
	EXPECT_EQ(le16toh(table[0].flags), desc_f_next);
	EXPECT_EQ(le16toh(table[0].next), 1u);
	EXPECT_EQ(le16toh(table[1].flags), desc_f_next | desc_f_write);
	EXPECT_EQ(le16toh(table[1].next), 2u);
	EXPECT_EQ(le16toh(table[2].flags), desc_f_write);
	EXPECT_EQ(le64toh(table[1].addr), buf.gpa() + 512);
}

TEST(Virtqueue, IndirectWithoutFeatureIsRefused)
{
	GuestMemory mem(1 << 20);
	SplitVirtqueue vq(mem, 8, false, false);
	Segment s{ mem.base(), 16, false };
	EXPECT_THROW(vq.add_chain({ &s, 1 }, 1, true), std::invalid_argument);
}

TEST_F(Fixture, FullRingRefusesChainUntilSomethingIsUsed)
{
	auto segs = three();
	ASSERT_TRUE(vq.add_chain(segs, 1));
	ASSERT_TRUE(vq.add_chain(segs, 2));
	EXPECT_FALSE(vq.add_chain(segs, 3)); // 2 free, 3 needed
	dev.complete(dev.next_avail(), 1);
	auto u = vq.get_used();
	ASSERT_TRUE(u);
	EXPECT_EQ(u->token, 1u);
	EXPECT_TRUE(vq.add_chain(segs, 3));
}

TEST_F(Fixture, FreedDescriptorsAreReused)
{
	auto segs = three();
	for (int round = 0; round < 50; round++) {
		auto head = vq.add_chain(segs, round);
		ASSERT_TRUE(head);
		dev.complete(dev.next_avail(), 17);
		auto u = vq.get_used();
		ASSERT_TRUE(u);
		EXPECT_EQ(u->id, *head);
		EXPECT_EQ(u->len, 17u);
		EXPECT_EQ(u->token, static_cast<uint64_t>(round));
		EXPECT_EQ(vq.num_free(), 8u);
	}
	EXPECT_EQ(vq.last_used_idx(), 50u);
}

TEST_F(Fixture, UsedIdReturnedTwiceIsDetected)
{
	auto segs = three();
	auto head = vq.add_chain(segs, 7);
	ASSERT_TRUE(head);
	dev.complete(*head, 1);
	dev.complete(*head, 1);
	ASSERT_TRUE(vq.get_used());
	EXPECT_THROW(vq.get_used(), ProtocolError);
}

TEST_F(Fixture, UsedIdNeverMadeAvailableIsDetected)
{
	dev.complete(3, 1);
	EXPECT_THROW(vq.get_used(), ProtocolError);
}

TEST_F(Fixture, UsedIdOutOfRangeIsDetected)
{
	ASSERT_TRUE(vq.add_chain(three(), 1));
	dev.complete(vq.size() + 2, 1);
	EXPECT_THROW(vq.get_used(), ProtocolError);
}

TEST_F(Fixture, UsedIndexRunningAheadIsDetected)
{
	*dev.used_idx() = htole16(vq.size() + 1);
	EXPECT_THROW(vq.get_used(), ProtocolError);
}

TEST_F(Fixture, KickRespectsNoNotifyFlag)
{
	ASSERT_TRUE(vq.add_chain(three(), 1));
	EXPECT_TRUE(vq.kick());
	EXPECT_EQ(vq.kick_fd().consume(), 1u);
	*dev.used_flags() = htole16(used_f_no_notify);
	ASSERT_TRUE(vq.add_chain(three(), 2));
	EXPECT_FALSE(vq.kick());
	EXPECT_EQ(vq.kick_fd().consume(), 0u);
}

TEST(Virtqueue, EventIdxKickOnlyWhenAvailEventPassed)
{
	GuestMemory mem(1 << 20);
	SplitVirtqueue vq(mem, 8, true, false);
	FakeDevice dev{ vq };
	auto b = mem.allocate(64);
	Segment s[] = { { b.gpa(), 16, false }, { b.gpa() + 16, 1, true } };
	// The device wants a kick when avail idx passes 0 (it expects entry 0).
	*dev.avail_event() = htole16(0);
	ASSERT_TRUE(vq.add_chain(s, 1));
	EXPECT_TRUE(vq.kick());
	// It has not caught up (still wants to hear about index 0): no kick.
	ASSERT_TRUE(vq.add_chain(s, 2));
	EXPECT_FALSE(vq.kick());
	// It processed both and asks for the next one.
	*dev.avail_event() = htole16(2);
	ASSERT_TRUE(vq.add_chain(s, 3));
	EXPECT_TRUE(vq.kick());
	EXPECT_EQ(vq.kick_fd().consume(), 2u);
}

TEST(Virtqueue, EventIdxPublishesUsedEventAfterConsuming)
{
	GuestMemory mem(1 << 20);
	SplitVirtqueue vq(mem, 8, true, false);
	FakeDevice dev{ vq };
	auto b = mem.allocate(64);
	Segment s[] = { { b.gpa(), 16, false }, { b.gpa() + 16, 1, true } };
	ASSERT_TRUE(vq.add_chain(s, 1));
	ASSERT_TRUE(vq.add_chain(s, 2));
	dev.complete(dev.next_avail(), 1);
	dev.complete(dev.next_avail(), 1);
	ASSERT_TRUE(vq.get_used());
	EXPECT_EQ(vq.used_event(), 1u);
	ASSERT_TRUE(vq.get_used());
	EXPECT_EQ(vq.used_event(), 2u);
	EXPECT_FALSE(vq.get_used());
}

TEST_F(Fixture, WaitUsedTimesOutThenSeesCallSignal)
{
	EXPECT_FALSE(vq.wait_used(std::chrono::milliseconds(10)));
	ASSERT_TRUE(vq.add_chain(three(), 1));
	dev.complete(dev.next_avail(), 1);
	vq.call_fd().signal();
	EXPECT_TRUE(vq.wait_used(std::chrono::milliseconds(10)));
}

TEST_F(Fixture, RawPublishAndTrackMakeHeadsUsable)
{
	auto ids = vq.take_descriptors(2);
	EXPECT_EQ(vq.num_free(), 6u);
	vq.desc_table()[ids[0]] = { buf.gpa(), 16, desc_f_next, ids[1] };
	vq.desc_table()[ids[1]] = { buf.gpa() + 16, 1, desc_f_write, 0 };
	vq.track(ids[0], ids, 99);
	vq.publish(ids[0]);
	vq.publish(ids[0]); // the guest bug: same head twice
	EXPECT_EQ(dev.avail_idx(), 2u);
	EXPECT_EQ(vq.avail_entry(1), ids[0]);
	dev.complete(ids[0], 1);
	auto u = vq.get_used();
	ASSERT_TRUE(u);
	EXPECT_EQ(u->token, 99u);
	EXPECT_EQ(vq.num_free(), 8u);
}

TEST_F(Fixture, TrackingAnOutstandingHeadAgainIsALogicError)
{
	auto head = vq.add_chain(three(), 1);
	ASSERT_TRUE(head);
	EXPECT_THROW(vq.track(*head, {}, 2), std::logic_error);
}
