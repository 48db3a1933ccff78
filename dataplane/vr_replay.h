/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Anti-replay window for WAN batches (D3), RFC 6479 style: a ring of 64-bit words indexed by
 * sequence number, so that moving the window clears whole words instead of shifting a bitmap.
 *
 * Rules:
 *   1. Batch sequence numbers start at 1; 0 is never valid.
 *   2. vr_replay_check() is read-only and may run before authentication, to drop repeats cheaply.
 *   3. vr_replay_accept() is called only after the batch's tag verified: a forged batch must
 *      never move the window (an attacker could otherwise push it forward and make every genuine
 *      batch "too old").
 *   4. Accepted: any sequence above the highest seen, or one within VR_REPLAY_WINDOW below it
 *      that was not accepted before. Everything else is a repeat or too old.
 *
 * One window per (stream, key) on the receiving lcore; no locks (one owner).
 */
#ifndef VR_REPLAY_H
#define VR_REPLAY_H

#include <stdint.h>

enum {
	VR_REPLAY_WORDS = 32,
	VR_REPLAY_BITS = VR_REPLAY_WORDS * 64,
	/* One word is the one being filled at the top: the guaranteed window is one word less. */
	VR_REPLAY_WINDOW = VR_REPLAY_BITS - 64,
};

enum vr_replay_verdict {
	VR_REPLAY_OK = 0,
	VR_REPLAY_DUP = 1, /* seen before, inside the window */
	VR_REPLAY_OLD = 2, /* below the window, or 0 */
};

struct vr_replay {
	uint64_t top; /* highest accepted sequence, 0 before the first */
	uint64_t map[VR_REPLAY_WORDS];
};

_Static_assert(VR_REPLAY_WINDOW >= 1024, "the issue asks for a window of at least 1024 batches");

static inline enum vr_replay_verdict
vr_replay_check(const struct vr_replay *w, uint64_t seq)
{
	if (seq == 0)
		return VR_REPLAY_OLD;
	if (seq > w->top)
		return VR_REPLAY_OK;
	if (w->top - seq >= VR_REPLAY_WINDOW)
		return VR_REPLAY_OLD;
	return (w->map[(seq >> 6) % VR_REPLAY_WORDS] >> (seq & 63)) & 1 ? VR_REPLAY_DUP
	                                                                : VR_REPLAY_OK;
}

/* Marks seq as received (after its tag verified); returns the verdict it had. */
enum vr_replay_verdict vr_replay_accept(struct vr_replay *w, uint64_t seq);

#endif /* VR_REPLAY_H */
