// SPDX-License-Identifier: BSD-3-Clause
/*
 * Rate-limited diagnostics. The limiter is deliberately simple: a one-second window per call
 * site, VR_MSG_BURST messages in it, and one line reporting how many were suppressed when the
 * next window opens.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vr_msg.h"

static int max_level = -1;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void
vr_msg_set_level(enum vr_msg_level level)
{
	max_level = (int)level;
}

static int
current_level(void)
{
	if (max_level < 0) {
		const char *env = getenv("VR_MSG_LEVEL");
		int l = env ? atoi(env) : VR_MSG_WARN;

		max_level = l < 0 ? 0 : l > VR_MSG_DEBUG ? VR_MSG_DEBUG : l;
	}
	return max_level;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
vr_msg_emit(struct vr_msg_limit *rl, enum vr_msg_level level, const char *topic, const char *fmt,
            ...)
{
	uint64_t now;
	va_list ap;
	char line[1024];

	if ((int)level > current_level())
		return;
	now = now_ns();
	if (now - rl->window_start_ns >= 1000000000ull) {
		if (rl->suppressed)
			fprintf(stderr, "vaultrep %s: %u similar messages suppressed\n", topic,
			        rl->suppressed);
		rl->window_start_ns = now;
		rl->in_window = 0;
		rl->suppressed = 0;
	}
	if (rl->in_window >= VR_MSG_BURST) {
		rl->suppressed++;
		return;
	}
	rl->in_window++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vaultrep %s: %s: %s\n", topic, level_names[level], line);
}
