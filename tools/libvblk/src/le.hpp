// SPDX-License-Identifier: GPL-2.0
// Little-endian conversions for guest-visible fields.
#pragma once

#include <endian.h>
#include <cstdint>

namespace vblk {

inline uint16_t cpu_to_le16(uint16_t v) { return htole16(v); }
inline uint32_t cpu_to_le32(uint32_t v) { return htole32(v); }
inline uint64_t cpu_to_le64(uint64_t v) { return htole64(v); }
inline uint16_t le16_to_cpu(uint16_t v) { return le16toh(v); }
inline uint32_t le32_to_cpu(uint32_t v) { return le32toh(v); }
inline uint64_t le64_to_cpu(uint64_t v) { return le64toh(v); }

} // namespace vblk
