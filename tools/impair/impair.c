// SPDX-License-Identifier: BSD-3-Clause
/* The impairment engine (vr_impair.h): per-frame decisions from a seed, and the late frames. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vr_impair.h"

static const char *const dir_names[VR_IMPAIR_DIRS] = {"ab", "ba"};

void
vr_impair_seed(struct vr_impair *im, uint64_t seed)
{
	im->seed = seed;
	for (int d = 0; d < VR_IMPAIR_DIRS; d++) {
		/* splitmix64's finaliser spreads seed and direction over the 48 bits erand48 keeps.
		 */
		uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(d + 1);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		im->rng[d][0] = (unsigned short)z;
		im->rng[d][1] = (unsigned short)(z >> 16);
		im->rng[d][2] = (unsigned short)(z >> 32);
	}
}

int
vr_impair_init(struct vr_impair *im, uint64_t seed)
{
	memset(im, 0, sizeof(*im));
	for (int d = 0; d < VR_IMPAIR_DIRS; d++)
		for (int k = 0; k < 2; k++) {
			im->q[d][k].slot = calloc(VR_IMPAIR_QUEUE, sizeof(*im->q[d][k].slot));
			if (!im->q[d][k].slot) {
				vr_impair_fini(im);
				return -ENOMEM;
			}
		}
	vr_impair_seed(im, seed);
	return 0;
}

void
vr_impair_fini(struct vr_impair *im)
{
	for (int d = 0; d < VR_IMPAIR_DIRS; d++)
		for (int k = 0; k < 2; k++) {
			free(im->q[d][k].slot);
			im->q[d][k].slot = NULL;
		}
}

/* True with probability p, from the direction's own generator (a draw only when 0 < p < 1). */
static bool
chance(struct vr_impair *im, enum vr_impair_dir dir, double p)
{
	if (p <= 0)
		return false;
	if (p >= 1)
		return true;
	return erand48(im->rng[dir]) < p;
}

static bool
is_ipv4(const uint8_t *f, size_t size)
{
	return size >= 14 && f[12] == 0x08 && f[13] == 0x00;
}

static bool
enqueue(struct vr_impair_queue *q, const uint8_t *frame, size_t size, uint64_t release_us)
{
	struct vr_impair_slot *s;

	if (q->count == VR_IMPAIR_QUEUE)
		return false;
	s = &q->slot[(q->head + q->count) % VR_IMPAIR_QUEUE];
	s->release_us = release_us;
	s->size = (uint16_t)size;
	memcpy(s->b, frame, size);
	q->count++;
	return true;
}

unsigned
vr_impair_frame(struct vr_impair *im, enum vr_impair_dir dir, const uint8_t *frame, size_t size,
                uint64_t now_us)
{
	const struct vr_impair_params *p = &im->p[dir];
	struct vr_impair_stats *st = &im->st[dir];
	unsigned copies = 1, queued = 0;
	uint64_t release = now_us + p->delay_us;
	int k = 0;

	st->rx++;
	if (size > VR_IMPAIR_FRAME_MAX) {
		st->overflow++;
		return 0;
	}
	if (!im->all && !is_ipv4(frame, size)) {
		st->passed++;
		return enqueue(&im->q[dir][0], frame, size, now_us) ? 1 : (st->overflow++, 0);
	}
	if (p->cut) {
		st->cut++;
		return 0;
	}
	if (chance(im, dir, p->loss)) {
		st->lost++;
		return 0;
	}
	if (chance(im, dir, p->dup)) {
		st->dup++;
		copies = 2;
	}
	if (chance(im, dir, p->reorder)) {
		st->held++;
		release += p->hold_us;
		k = 1;
	}
	for (unsigned c = 0; c < copies; c++) {
		if (enqueue(&im->q[dir][k], frame, size, release))
			queued++;
		else
			st->overflow++;
	}
	return queued;
}

/* The queue of dir whose head is due first at or before now_us, or NULL. */
static struct vr_impair_queue *
due_queue(struct vr_impair *im, enum vr_impair_dir dir, uint64_t now_us)
{
	struct vr_impair_queue *best = NULL;

	for (int k = 0; k < 2; k++) {
		struct vr_impair_queue *q = &im->q[dir][k];

		if (q->count && q->slot[q->head].release_us <= now_us &&
		    (!best || q->slot[q->head].release_us < best->slot[best->head].release_us))
			best = q;
	}
	return best;
}

const uint8_t *
vr_impair_due(struct vr_impair *im, enum vr_impair_dir dir, uint64_t now_us, size_t *size)
{
	struct vr_impair_queue *q = due_queue(im, dir, now_us);
	struct vr_impair_slot *s;

	if (!q)
		return NULL;
	s = &q->slot[q->head];
	q->head = (q->head + 1) % VR_IMPAIR_QUEUE;
	q->count--;
	*size = s->size;
	return s->b;
}

int64_t
vr_impair_next_us(const struct vr_impair *im, uint64_t now_us)
{
	int64_t best = -1;

	for (int d = 0; d < VR_IMPAIR_DIRS; d++)
		for (int k = 0; k < 2; k++) {
			const struct vr_impair_queue *q = &im->q[d][k];
			int64_t wait;

			if (!q->count)
				continue;
			wait = q->slot[q->head].release_us > now_us
			           ? (int64_t)(q->slot[q->head].release_us - now_us)
			           : 0;
			if (best < 0 || wait < best)
				best = wait;
		}
	return best;
}

/* --- the control commands --- */

static int
refuse(char *reply, size_t n, const char *why)
{
	snprintf(reply, n, "error: %s", why);
	return -EINVAL;
}

/* A whole number or decimal in [lo, hi]; 0 or -EINVAL. */
static int
number(const char *s, double lo, double hi, double *v)
{
	char *end;

	if (!s)
		return -EINVAL;
	errno = 0;
	*v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(*v) || *v < lo || *v > hi)
		return -EINVAL;
	return 0;
}

/* Which directions a command names: "ab", "ba", or none (both). -1 if it names something else. */
static int
dirs_named(const char *s, bool on[VR_IMPAIR_DIRS])
{
	on[0] = on[1] = !s;
	for (int d = 0; s && d < VR_IMPAIR_DIRS; d++)
		on[d] = !strcmp(s, dir_names[d]);
	return on[0] || on[1] ? 0 : -1;
}

static int
stats_reply(const struct vr_impair *im, char *reply, size_t n)
{
	json_t *o = json_object();
	char *s;
	int rc = 0;

	for (int d = 0; d < VR_IMPAIR_DIRS; d++) {
		const struct vr_impair_params *p = &im->p[d];
		const struct vr_impair_stats *st = &im->st[d];

		json_object_set_new(
		    o, dir_names[d],
		    json_pack("{s:{s:f, s:f, s:f, s:f, s:f, s:b}, s:{s:I, s:I, s:I, s:I, s:I, s:I, "
		              "s:I, s:I, s:I}, s:i}",
		              "params", "loss", p->loss, "dup", p->dup, "reorder", p->reorder,
		              "hold_ms", p->hold_us / 1000.0, "delay_ms", p->delay_us / 1000.0,
		              "cut", p->cut, "counters",
#define X(name, what) #name, (json_int_t)st->name,
		              VR_IMPAIR_STATS(X)
#undef X
		                  "queued",
		              (int)(im->q[d][0].count + im->q[d][1].count)));
	}
	json_object_set_new(o, "seed", json_integer((json_int_t)im->seed));
	json_object_set_new(o, "all", json_boolean(im->all));
	s = json_dumps(o, JSON_COMPACT);
	if (!s || strlen(s) >= n)
		rc = refuse(reply, n, "the statistics do not fit the reply");
	else
		snprintf(reply, n, "%s", s);
	free(s);
	json_decref(o);
	return rc;
}

int
vr_impair_command(struct vr_impair *im, const char *line, char *reply, size_t n)
{
	char buf[256], *save = NULL, *cmd, *arg, *arg2, *extra;
	bool on[VR_IMPAIR_DIRS];
	double v;

	if (strlen(line) >= sizeof(buf))
		return refuse(reply, n, "command too long");
	snprintf(buf, sizeof(buf), "%s", line);
	cmd = strtok_r(buf, " \t\r\n", &save);
	arg = strtok_r(NULL, " \t\r\n", &save);
	arg2 = strtok_r(NULL, " \t\r\n", &save);
	extra = strtok_r(NULL, " \t\r\n", &save);
	if (!cmd)
		return refuse(reply, n, "empty command");
	if (extra)
		return refuse(reply, n, "too many arguments");
	if (!strcmp(cmd, "loss") || !strcmp(cmd, "dup") || !strcmp(cmd, "reorder")) {
		if (number(arg, 0, 1, &v))
			return refuse(reply, n,
			              "a probability from 0 to 1, then ab or ba (or neither)");
		if (dirs_named(arg2, on))
			return refuse(reply, n, "the direction is ab or ba (or neither, for both)");
		for (int d = 0; d < VR_IMPAIR_DIRS; d++) {
			if (!on[d])
				continue;
			if (cmd[0] == 'l')
				im->p[d].loss = v;
			else if (cmd[0] == 'd')
				im->p[d].dup = v;
			else
				im->p[d].reorder = v;
		}
	} else if (!strcmp(cmd, "hold_ms") || !strcmp(cmd, "delay_ms")) {
		if (number(arg, 0, 10000, &v))
			return refuse(reply, n,
			              "milliseconds from 0 to 10000, then ab or ba (or neither)");
		if (dirs_named(arg2, on))
			return refuse(reply, n, "the direction is ab or ba (or neither, for both)");
		for (int d = 0; d < VR_IMPAIR_DIRS; d++) {
			if (!on[d])
				continue;
			if (cmd[0] == 'h')
				im->p[d].hold_us = (uint32_t)llround(v * 1000);
			else
				im->p[d].delay_us = (uint32_t)llround(v * 1000);
		}
	} else if (!strcmp(cmd, "partition")) {
		if (arg2 || !arg)
			return refuse(reply, n, "partition both, ab, ba or none");
		if (!strcmp(arg, "both"))
			im->p[0].cut = im->p[1].cut = true;
		else if (!strcmp(arg, "none"))
			im->p[0].cut = im->p[1].cut = false;
		else if (!dirs_named(arg, on)) {
			im->p[0].cut = on[0];
			im->p[1].cut = on[1];
		} else
			return refuse(reply, n, "partition both, ab, ba or none");
	} else if (!strcmp(cmd, "clean")) {
		if (arg)
			return refuse(reply, n, "clean takes no argument");
		memset(im->p, 0, sizeof(im->p));
	} else if (!strcmp(cmd, "seed")) {
		char *end;
		unsigned long long s;

		errno = 0;
		s = arg && !arg2 && *arg != '-' ? strtoull(arg, &end, 0) : 0;
		if (!arg || arg2 || *arg == '-' || errno || *end)
			return refuse(reply, n, "seed takes one whole number");
		vr_impair_seed(im, s);
	} else if (!strcmp(cmd, "all")) {
		if (arg2 || !arg || (strcmp(arg, "on") && strcmp(arg, "off")))
			return refuse(reply, n, "all on or all off");
		im->all = !strcmp(arg, "on");
	} else if (!strcmp(cmd, "stats")) {
		if (arg)
			return refuse(reply, n, "stats takes no argument");
		return stats_reply(im, reply, n);
	} else if (!strcmp(cmd, "reset")) {
		if (arg)
			return refuse(reply, n, "reset takes no argument");
		memset(im->st, 0, sizeof(im->st));
	} else {
		return refuse(reply, n,
		              "unknown command (loss, dup, reorder, hold_ms, delay_ms, partition, "
		              "clean, seed, all, stats, reset)");
	}
	snprintf(reply, n, "ok");
	return 0;
}
