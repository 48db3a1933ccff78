// SPDX-License-Identifier: BSD-3-Clause
/* Anti-replay window: see vr_replay.h for the rules. */
#include "vr_replay.h"

enum vr_replay_verdict
vr_replay_accept(struct vr_replay *w, uint64_t seq)
{
	enum vr_replay_verdict v = vr_replay_check(w, seq);

	if (v != VR_REPLAY_OK)
		return v;
	if (seq > w->top) {
		uint64_t cur = w->top >> 6, next = seq >> 6, n = next - cur;

		/* Clear the words the window moves over (at most all of them), not the current. */
		if (n > VR_REPLAY_WORDS)
			n = VR_REPLAY_WORDS;
		for (uint64_t i = 1; i <= n; i++)
			w->map[(cur + i) % VR_REPLAY_WORDS] = 0;
		w->top = seq;
	}
	w->map[(seq >> 6) % VR_REPLAY_WORDS] |= 1ull << (seq & 63);
	return VR_REPLAY_OK;
}
