/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AES-GCM nonce discipline for sealing WAN batches (D2): nonce = 4-byte salt || 64-bit batch
 * sequence (big-endian), never reused under one key, across restarts included.
 *
 * Rules:
 *   1. Batch sequences start at 1 and only grow; a sequence is used at most once per key.
 *   2. A sequence may be used only below `limit`, the end of a range reserved *durably* before
 *      use (the caller persists the new limit, e.g. with vr_log_meta_put, then calls
 *      vr_nonce_reserved). After a crash the sealer resumes at the persisted limit: sequences
 *      of the lost range are skipped, never repeated.
 *   3. A key is retired at VR_NONCE_HARD_LIMIT batches (sealing refuses with -EKEYEXPIRED) and
 *      a rekey should start at VR_NONCE_SOFT_LIMIT batches or VR_NONCE_MAX_AGE_S seconds (by
 *      default; vr_nonce_policy sets both, the age in the caller's clock), so that
 *      the stream never stops at the hard limit. The limit keeps far below GCM's 2^32
 *      invocations for random nonces; with counter nonces it bounds the data under one key.
 *
 * The fast path (vr_nonce_take) is inline, lock-free and owned by one lcore; the reservation
 * is done off the fast path, ahead of need (vr_nonce_low).
 */
#ifndef VR_NONCE_H
#define VR_NONCE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "vr_common.h"

enum {
	VR_NONCE_SALT = 4,
	VR_NONCE_SIZE = 12,
	VR_NONCE_RESERVE = 1 << 16, /* sequences reserved per durable write */
	VR_NONCE_MAX_AGE_S = 24 * 3600,
};

#define VR_NONCE_HARD_LIMIT (1ull << 32)
#define VR_NONCE_SOFT_LIMIT (VR_NONCE_HARD_LIMIT - (1ull << 24))

struct vr_nonce {
	uint8_t salt[VR_NONCE_SALT];
	uint64_t next;    /* next sequence to use */
	uint64_t limit;   /* sequences < limit are durably reserved */
	uint64_t born;    /* when the key started sealing, in the caller's clock */
	uint64_t soft;    /* rekey at this sequence ... */
	uint64_t max_age; /* ... or this long after born */
};

/*
 * Starts sealing under a key: fresh (persisted_limit 0) or after a restart, from the limit last
 * made durable. Either way nothing may be sealed before a reservation.
 */
static inline void
vr_nonce_start(struct vr_nonce *n, const uint8_t salt[VR_NONCE_SALT], uint64_t persisted_limit,
               uint64_t now)
{
	memcpy(n->salt, salt, VR_NONCE_SALT);
	n->next = persisted_limit ? persisted_limit : 1;
	n->limit = n->next;
	n->born = now;
	n->soft = VR_NONCE_SOFT_LIMIT;
	n->max_age = VR_NONCE_MAX_AGE_S;
}

/* The rekey policy: at sequence soft (at most VR_NONCE_SOFT_LIMIT) or max_age after born. */
static inline void
vr_nonce_policy(struct vr_nonce *n, uint64_t soft, uint64_t max_age)
{
	n->soft = soft < VR_NONCE_SOFT_LIMIT ? soft : VR_NONCE_SOFT_LIMIT;
	n->max_age = max_age;
}

/* The limit to persist next (then call vr_nonce_reserved with it). */
static inline uint64_t
vr_nonce_next_limit(const struct vr_nonce *n)
{
	uint64_t l = n->limit + VR_NONCE_RESERVE;

	return l > VR_NONCE_HARD_LIMIT ? VR_NONCE_HARD_LIMIT : l;
}

/* The new limit is durable: sequences below it may be used. */
static inline void
vr_nonce_reserved(struct vr_nonce *n, uint64_t limit)
{
	if (limit > n->limit)
		n->limit = limit;
}

/* True when less than a quarter of the reservation is left: time to reserve more. */
static inline bool
vr_nonce_low(const struct vr_nonce *n)
{
	return n->limit < VR_NONCE_HARD_LIMIT && n->limit - n->next < VR_NONCE_RESERVE / 4;
}

/* True when a rekey should start (by count or age). */
static inline bool
vr_nonce_should_rekey(const struct vr_nonce *n, uint64_t now)
{
	return n->next >= n->soft || now - n->born >= n->max_age;
}

/*
 * The next nonce: 0 with *seq and nonce filled; -EAGAIN if the reservation is used up (reserve,
 * then try again; nothing was consumed); -EKEYEXPIRED at the hard limit (rekey).
 */
static inline int
vr_nonce_take(struct vr_nonce *n, uint64_t *seq, uint8_t nonce[VR_NONCE_SIZE])
{
	if (vr_unlikely(n->next >= VR_NONCE_HARD_LIMIT))
		return -EKEYEXPIRED;
	if (vr_unlikely(n->next >= n->limit))
		return -EAGAIN;
	*seq = n->next++;
	memcpy(nonce, n->salt, VR_NONCE_SALT);
	vr_put_be64(nonce + VR_NONCE_SALT, *seq);
	return 0;
}

#endif /* VR_NONCE_H */
