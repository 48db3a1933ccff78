/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Small helpers every vaultrep module shares: fixed byte order accessors for wire and disk
 * formats, array sizes, branch hints. Formats in vaultrep are big-endian ("network order")
 * so that keys sort numerically in RocksDB and a hex dump reads left to right.
 */
#ifndef VR_COMMON_H
#define VR_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define vr_likely(x)     __builtin_expect(!!(x), 1)
#define vr_unlikely(x)   __builtin_expect(!!(x), 0)

static inline void
vr_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
vr_put_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void
vr_put_be64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint16_t
vr_get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
vr_get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return __builtin_bswap32(v);
}

static inline uint64_t
vr_get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return __builtin_bswap64(v);
}

/*
 * A configuration number: all of v, decimal (or 0x hex), no sign, within lo..hi. 0 with *out,
 * or -1. The one parser of every ini file's numbers (control, dataplane).
 */
static inline int
vr_parse_ulong(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long x;

	if (!*v || *v == '-')
		return -1;
	errno = 0;
	x = strtoul(v, &end, 0);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

#endif /* VR_COMMON_H */
