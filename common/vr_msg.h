/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Diagnostics: one topic per module, levels, and a per-call-site rate limit so that a fault
 * that repeats at line rate cannot flood the console (Open vSwitch's VLOG_RL in spirit).
 * Messages go to stderr; a daemon's stderr is the journal. Never pass key material here.
 */
#ifndef VR_MSG_H
#define VR_MSG_H

#include <stdint.h>

enum vr_msg_level {
	VR_MSG_ERR = 0,
	VR_MSG_WARN = 1,
	VR_MSG_INFO = 2,
	VR_MSG_DEBUG = 3,
};

/* Per-call-site limiter: at most `burst` messages per second, then a count of those suppressed. */
struct vr_msg_limit {
	uint64_t window_start_ns;
	uint32_t in_window;
	uint32_t suppressed;
};

#define VR_MSG_BURST 10

/* Sets the most verbose level printed (default VR_MSG_WARN, or $VR_MSG_LEVEL 0..3). */
void vr_msg_set_level(enum vr_msg_level level);

/* Thread-safe enough for diagnostics: the limiter may let a message or two extra through. */
void vr_msg_emit(struct vr_msg_limit *rl, enum vr_msg_level level, const char *topic,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define vr_msg(level, topic, ...)                                                                  \
	do {                                                                                       \
		static struct vr_msg_limit vr_msg_rl_;                                             \
		vr_msg_emit(&vr_msg_rl_, (level), (topic), __VA_ARGS__);                           \
	} while (0)

#define vr_err(topic, ...)  vr_msg(VR_MSG_ERR, topic, __VA_ARGS__)
#define vr_warn(topic, ...) vr_msg(VR_MSG_WARN, topic, __VA_ARGS__)
#define vr_info(topic, ...) vr_msg(VR_MSG_INFO, topic, __VA_ARGS__)

#endif /* VR_MSG_H */
