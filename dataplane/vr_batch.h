/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Batching bounds for one stream (D2): records are packed into a batch until the next one would
 * not fit (bytes: the batch must fit one datagram at the WAN MTU; count), or until the batch's
 * time bound expires (a deadline in the caller's clock, the TSC on an lcore).
 *
 *   empty ──offer──► open (deadline = now + max_wait) ──offer fits──► open
 *                      │  ▲                                  │
 *                      │  └──────── reset (after flush) ◄────┤ full, would not fit, or due
 *
 * Pure bookkeeping: the caller keeps the records and seals what it flushes. One owner (the
 * stream's lcore); no locks.
 */
#ifndef VR_BATCH_H
#define VR_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "vr_wire.h"

struct vr_batcher {
	/* limits, set once */
	uint32_t max_bytes;   /* sealed bytes per batch: at most VR_WIRE_MAX_SEALED */
	uint16_t max_records; /* at most VR_WIRE_MAX_RECORDS */
	uint64_t max_wait;    /* ticks a record may wait for its batch to fill */
	/* state */
	uint32_t bytes;
	uint16_t n;
	uint64_t deadline; /* valid while n > 0 */
};

enum vr_batch_verdict {
	VR_BATCH_ADDED,      /* in the batch; more may follow */
	VR_BATCH_ADDED_FULL, /* in the batch, which is now full: flush it */
	VR_BATCH_FLUSH,      /* does not fit: flush the batch, reset, then offer it again */
	VR_BATCH_TOO_BIG,    /* can never fit a batch: refuse the record (nack) */
};

/* Limits for a WAN MTU (1500 or 9000): one datagram of IPv4 + UDP + header + sealed + tag. */
static inline void
vr_batch_init(struct vr_batcher *b, unsigned mtu, uint16_t max_records, uint64_t max_wait)
{
	unsigned room = mtu - 20 - 8 - VR_WIRE_BATCH_HDR - VR_WIRE_TAG;

	b->max_bytes = room > VR_WIRE_MAX_SEALED ? VR_WIRE_MAX_SEALED : room;
	b->max_records = max_records > VR_WIRE_MAX_RECORDS ? VR_WIRE_MAX_RECORDS : max_records;
	b->max_wait = max_wait;
	b->bytes = 0;
	b->n = 0;
	b->deadline = 0;
}

static inline enum vr_batch_verdict
vr_batch_offer(struct vr_batcher *b, uint32_t rec_size, uint64_t now)
{
	if (rec_size > b->max_bytes || b->max_records == 0)
		return VR_BATCH_TOO_BIG;
	if (b->n && (b->bytes + rec_size > b->max_bytes || b->n == b->max_records))
		return VR_BATCH_FLUSH;
	if (b->n == 0)
		b->deadline = now + b->max_wait;
	b->bytes += rec_size;
	b->n++;
	return b->n == b->max_records || b->bytes == b->max_bytes ? VR_BATCH_ADDED_FULL
	                                                          : VR_BATCH_ADDED;
}

/* True when a partial batch has waited long enough: flush it. */
static inline bool
vr_batch_due(const struct vr_batcher *b, uint64_t now)
{
	return b->n && now >= b->deadline;
}

static inline void
vr_batch_reset(struct vr_batcher *b)
{
	b->bytes = 0;
	b->n = 0;
}

#endif /* VR_BATCH_H */
