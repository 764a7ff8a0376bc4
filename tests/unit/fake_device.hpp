// SPDX-License-Identifier: GPL-2.0
// Plays the device side of a SplitVirtqueue in unit tests.
#pragma once

#include <vblk/virtqueue.hpp>

#include <cstdint>
#include <cstring>
#include <endian.h>

namespace vblk::test {

struct FakeDevice {
	SplitVirtqueue &vq;
	uint16_t used = 0;
	uint16_t last_avail = 0;

	uint16_t *used_idx() const { return reinterpret_cast<uint16_t *>(vq.addresses().used + 2); }
	VringUsedElem *used_ring() const
	{
		return reinterpret_cast<VringUsedElem *>(vq.addresses().used + 4);
	}
	uint16_t *avail_event() const
	{
		return reinterpret_cast<uint16_t *>(vq.addresses().used + 4 + 8 * vq.size());
	}
	uint16_t *used_flags() const { return reinterpret_cast<uint16_t *>(vq.addresses().used); }
	uint16_t avail_idx() const
	{
		return le16toh(*reinterpret_cast<uint16_t *>(vq.addresses().avail + 2));
	}
	uint16_t avail_head(uint16_t i) const
	{
		return le16toh(reinterpret_cast<uint16_t *>(vq.addresses().avail + 4)[i % vq.size()]);
	}
	uint16_t next_avail() { return avail_head(last_avail++); }

	void complete(uint32_t id, uint32_t len)
	{
		VringUsedElem &e = used_ring()[used % vq.size()];
		e.id = htole32(id);
		e.len = htole32(len);
		used++;
		*used_idx() = htole16(used);
	}
};

} // namespace vblk::test
