/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CRC32C (Castagnoli), the checksum of every vaultrep format, through ISA-L (hardware-assisted;
 * link with libisal). vr_crc32c() is the whole thing; _begin/_update/_end chain it over pieces.
 */
#ifndef VR_CRC_H
#define VR_CRC_H

#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

static inline uint32_t
vr_crc32c_begin(void)
{
	return 0xffffffffu;
}

static inline uint32_t
vr_crc32c_update(uint32_t crc, const void *p, size_t n)
{
	return crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, crc);
}

static inline uint32_t
vr_crc32c_end(uint32_t crc)
{
	return crc ^ 0xffffffffu;
}

static inline uint32_t
vr_crc32c(const void *p, size_t n)
{
	return vr_crc32c_end(vr_crc32c_update(vr_crc32c_begin(), p, n));
}

#endif /* VR_CRC_H */
