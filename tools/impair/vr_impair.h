/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The impairment stage: what a bad WAN does to frames, from a seed (issue 6). This kernel has no
 * netem and DPDK's af_packet bypasses qdiscs, so the tests put vr-impair in a middle network
 * namespace between the sites' veth pairs; this engine decides, per frame and per direction,
 * what happens to it, and holds the frames that are late. vr-impair (main.c) moves the bytes.
 *
 *   site 1 ns            middle ns (vr-impair)               site 2 ns
 *   [vA] ──veth── [mA] ─► decide ─► queue ─► release ─► [mB] ──veth── [vB]
 *                 [mA] ◄─ release ◄─ queue ◄─ decide ◄─ [mB]
 *
 * Per direction (AB: from port A to port B; BA: back), for each frame, in this order:
 *   1. cut (a partition of that direction): dropped, counted "cut";
 *   2. loss: dropped with probability loss, counted "lost";
 *   3. duplication: with probability dup, two copies go out (counted "dup" once);
 *   4. reordering: with probability reorder, the frame is held hold_us longer than the others
 *      (counted "held"), so the frames behind it overtake it;
 *   5. every copy waits delay_us (plus the hold) before it is sent.
 * Each direction draws from its own generator (erand48, seeded from the seed and the direction),
 * so the same seed and the same frames give the same decisions, and what one direction carries
 * does not change what happens to the other.
 *
 * Frames that are not IPv4 (ARP) pass untouched unless "all" is set: the sites must resolve
 * each other for a test to measure anything, and a WAN's losses are not ARP's.
 *
 * Not thread-safe: one thread (vr-impair's loop) owns an engine.
 */
#ifndef VR_IMPAIR_H
#define VR_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vr_impair_dir { VR_IMPAIR_AB, VR_IMPAIR_BA, VR_IMPAIR_DIRS };

enum {
	VR_IMPAIR_FRAME_MAX = 9216 + 18, /* a jumbo frame with its Ethernet header */
	VR_IMPAIR_QUEUE = 1024,          /* frames one queue holds; more are dropped ("overflow") */
	VR_IMPAIR_REPLY_MAX = 2048,
};

struct vr_impair_params {
	double loss, dup, reorder; /* probabilities, 0..1 */
	uint32_t hold_us;          /* extra wait of a reordered frame */
	uint32_t delay_us;         /* wait of every frame */
	bool cut;                  /* partitioned: nothing passes this way */
};

/* Counters of one direction. */
#define VR_IMPAIR_STATS(X)                                                                         \
	X(rx, "frames that arrived")                                                               \
	X(tx, "frames sent on (copies included)")                                                  \
	X(passed, "frames sent on untouched (not IPv4)")                                           \
	X(cut, "dropped: partition")                                                               \
	X(lost, "dropped: loss")                                                                   \
	X(dup, "duplicated")                                                                       \
	X(held, "held back to be reordered")                                                       \
	X(overflow, "dropped: the queue was full")                                                 \
	X(tx_failed, "dropped: the send failed")

struct vr_impair_stats {
#define X(name, what) uint64_t name;
	VR_IMPAIR_STATS(X)
#undef X
};

/* Frames waiting for their time, in arrival order (a ring): release times only grow in one. */
struct vr_impair_queue {
	struct vr_impair_slot {
		uint64_t release_us;
		uint16_t size;
		uint8_t b[VR_IMPAIR_FRAME_MAX];
	} * slot;
	unsigned head, count;
};

struct vr_impair {
	struct vr_impair_params p[VR_IMPAIR_DIRS];
	struct vr_impair_stats st[VR_IMPAIR_DIRS];
	unsigned short rng[VR_IMPAIR_DIRS][3];
	/* [dir][0]: frames that wait delay_us; [dir][1]: the held ones (delay_us + hold_us). */
	struct vr_impair_queue q[VR_IMPAIR_DIRS][2];
	uint64_t seed;
	bool all; /* impair every frame, ARP too */
};

/* A clean link seeded with seed. 0, or -ENOMEM (the queues are allocated here). */
int vr_impair_init(struct vr_impair *im, uint64_t seed);
void vr_impair_fini(struct vr_impair *im);

/* Restarts both directions' generators from seed (the decisions replay from here). */
void vr_impair_seed(struct vr_impair *im, uint64_t seed);

/*
 * One frame of size bytes arrived at now_us, going dir: decides its fate and queues what is to
 * be sent. Returns the copies queued (0: dropped, and counted why).
 */
unsigned vr_impair_frame(struct vr_impair *im, enum vr_impair_dir dir, const uint8_t *frame,
                         size_t size, uint64_t now_us);

/*
 * The next frame due at now_us going dir, or NULL: its bytes stay valid until the next call
 * for that direction. *size is set. The caller sends it and counts tx or tx_failed.
 */
const uint8_t *vr_impair_due(struct vr_impair *im, enum vr_impair_dir dir, uint64_t now_us,
                             size_t *size);

/* Microseconds from now_us until the next frame is due in either direction, or -1 if none. */
int64_t vr_impair_next_us(const struct vr_impair *im, uint64_t now_us);

/*
 * One command line of the control socket; reply (capacity n) gets "ok ...", a JSON object for
 * "stats", or "error: why". Returns 0, or -EINVAL for a command it refused (the engine is then
 * unchanged). The grammar, one per line:
 *   loss P [ab|ba]       dup P [ab|ba]       reorder P [ab|ba]      (P: 0..1; no dir: both)
 *   hold_ms MS [ab|ba]   delay_ms MS [ab|ba] (MS: 0..10000, may have a fraction)
 *   partition both|ab|ba|none                 clean (every setting back to a clean link)
 *   seed N               all on|off           stats            reset (zero the counters)
 */
int vr_impair_command(struct vr_impair *im, const char *line, char *reply, size_t n);

#endif /* VR_IMPAIR_H */
