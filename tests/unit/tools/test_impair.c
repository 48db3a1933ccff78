// SPDX-License-Identifier: BSD-3-Clause
/*
 * tools:impair — the impairment engine applies the rates it is given: loss, duplication and
 * reordering measured over 10^6 frames (printed, and within 5 standard deviations of the
 * setting), holds and delays to the microsecond, partitions one way and both ways, the same
 * decisions from the same seed, ARP untouched, full queues counted, and every refused command
 * leaving the engine as it was. vr-impair, the forwarder around it, is run by the fault tests.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vr_impair.h"
#include "vr_test.h"

enum { N = 1000000, STEP_US = 10 };

/* An IPv4 frame carrying its sequence number. */
static size_t
frame_make(uint8_t *f, uint32_t seq, bool ipv4)
{
	memset(f, 0, 64);
	f[12] = 0x08;
	f[13] = ipv4 ? 0x00 : 0x06; /* 0x0806: ARP */
	memcpy(f + 20, &seq, sizeof(seq));
	return 64;
}

static uint32_t
frame_seq(const uint8_t *f)
{
	uint32_t seq;

	memcpy(&seq, f + 20, sizeof(seq));
	return seq;
}

static void
cmd_ok(struct vr_impair *im, const char *line)
{
	char reply[VR_IMPAIR_REPLY_MAX];

	ck_assert_msg(vr_impair_command(im, line, reply, sizeof(reply)) == 0, "%s: %s", line,
	              reply);
}

/* |measured - p| within 5 standard deviations of a binomial over n trials. */
static void
rate_ok(const char *what, uint64_t hits, uint64_t n, double p)
{
	double measured = (double)hits / (double)n, sd = sqrt(p * (1 - p) / (double)n);

	printf("  %-12s set %.4f, applied %.4f over %llu frames\n", what, p, measured,
	       (unsigned long long)n);
	ck_assert_msg(fabs(measured - p) <= 5 * sd, "%s: %.5f applied where %.5f was set", what,
	              measured, p);
}

START_TEST(applies_the_rates_it_is_given)
{
	static struct vr_impair im;
	uint8_t f[64];
	uint64_t out = 0, t = 0;
	const uint8_t *g;
	size_t size;

	ck_assert_int_eq(vr_impair_init(&im, 42), 0);
	cmd_ok(&im, "loss 0.05");
	cmd_ok(&im, "dup 0.01");
	cmd_ok(&im, "reorder 0.25");
	cmd_ok(&im, "hold_ms 3");
	for (uint32_t i = 0; i < N; i++, t += STEP_US) {
		vr_impair_frame(&im, VR_IMPAIR_AB, f, frame_make(f, i, true), t);
		while ((g = vr_impair_due(&im, VR_IMPAIR_AB, t, &size)))
			out++;
	}
	while ((g = vr_impair_due(&im, VR_IMPAIR_AB, UINT64_MAX, &size)))
		out++;
	printf("tools:impair: seed 42, 10^6 frames one way:\n");
	ck_assert_uint_eq(im.st[0].rx, N);
	rate_ok("loss", im.st[0].lost, N, 0.05);
	/* Duplication and reordering are drawn for the frames that were not lost. */
	rate_ok("duplication", im.st[0].dup, N - im.st[0].lost, 0.01);
	rate_ok("reordering", im.st[0].held, N - im.st[0].lost, 0.25);
	ck_assert_uint_eq(out, N - im.st[0].lost + im.st[0].dup);
	ck_assert_uint_eq(im.st[0].overflow, 0);
	ck_assert_uint_eq(im.st[0].cut, 0);
	/* The other direction was not touched. */
	ck_assert_uint_eq(im.st[1].rx, 0);
	vr_impair_fini(&im);
}
END_TEST

START_TEST(holds_and_delays_to_the_microsecond)
{
	static struct vr_impair im;
	static uint64_t arrived[20000];
	static bool held[20000];
	uint8_t f[64];
	uint64_t held_seen = 0, overtaken = 0, t;
	uint32_t last = 0, last_plain = 0, tail = 0;
	const uint8_t *g;
	size_t size;

	ck_assert_int_eq(vr_impair_init(&im, 7), 0);
	cmd_ok(&im, "reorder 0.25 ab");
	cmd_ok(&im, "hold_ms 3 ab");
	cmd_ok(&im, "delay_ms 0.5 ab");
	/* 20 000 frames, one every 10 us; collect every release, one microsecond at a time. */
	for (t = 0; t < 20000 * STEP_US + 4000; t++) {
		if (t % STEP_US == 0 && t / STEP_US < 20000) {
			arrived[t / STEP_US] = t;
			vr_impair_frame(&im, VR_IMPAIR_AB, f,
			                frame_make(f, (uint32_t)(t / STEP_US), true), t);
		}
		while ((g = vr_impair_due(&im, VR_IMPAIR_AB, t, &size))) {
			uint32_t seq = frame_seq(g);
			uint64_t waited = t - arrived[seq];

			/* Released the very microsecond it is due: 0.5 ms, or 3.5 ms when held. */
			ck_assert_msg(waited == 500 || waited == 3500, "frame %u waited %llu us",
			              seq, (unsigned long long)waited);
			if (waited == 3500) {
				held_seen++;
				held[seq] = true;
			} else
				last_plain = seq;
			if (seq < last)
				overtaken++;
			else
				last = seq;
		}
	}
	ck_assert_uint_eq(held_seen, im.st[0].held);
	/*
	 * Every held frame was overtaken by the frames behind it (299 of them in 3 ms, at one per
	 * 10 us), but for held frames after the last one that was not held: nothing is behind them.
	 */
	for (uint32_t i = last_plain + 1; i < 20000; i++)
		tail += held[i];
	ck_assert_uint_eq(overtaken, im.st[0].held - tail);
	ck_assert_uint_gt(held_seen, 20000 / 5);
	ck_assert_int_eq(vr_impair_next_us(&im, t), -1);
	vr_impair_fini(&im);
}
END_TEST

START_TEST(partitions_one_way_and_both)
{
	static struct vr_impair im;
	uint8_t f[64];
	size_t size;
	unsigned got[2];

	ck_assert_int_eq(vr_impair_init(&im, 1), 0);
	for (int phase = 0; phase < 4; phase++) {
		static const char *const cmds[] = {"partition ab", "partition ba", "partition both",
		                                   "partition none"};
		static const unsigned want[4][2] = {{0, 100}, {100, 0}, {0, 0}, {100, 100}};

		cmd_ok(&im, cmds[phase]);
		got[0] = got[1] = 0;
		for (int d = 0; d < 2; d++) {
			for (uint32_t i = 0; i < 100; i++)
				vr_impair_frame(&im, (enum vr_impair_dir)d, f,
				                frame_make(f, i, true), phase);
			while (vr_impair_due(&im, (enum vr_impair_dir)d, phase, &size))
				got[d]++;
		}
		ck_assert_msg(got[0] == want[phase][0] && got[1] == want[phase][1],
		              "%s: %u passed ab, %u ba", cmds[phase], got[0], got[1]);
	}
	ck_assert_uint_eq(im.st[0].cut + im.st[1].cut, 400);
	vr_impair_fini(&im);
}
END_TEST

/* The decisions of one direction as a bit string: which of n frames survived. */
static void
survivors(uint64_t seed, bool noise_ba, uint8_t *bits, unsigned n)
{
	static struct vr_impair im;
	uint8_t f[64];
	size_t size;

	ck_assert_int_eq(vr_impair_init(&im, seed), 0);
	cmd_ok(&im, "loss 0.3");
	memset(bits, 0, n);
	for (uint32_t i = 0; i < n; i++) {
		bits[i] = (uint8_t)vr_impair_frame(&im, VR_IMPAIR_AB, f, frame_make(f, i, true), i);
		while (vr_impair_due(&im, VR_IMPAIR_AB, i, &size))
			;
		if (noise_ba && i % 3 == 0) {
			vr_impair_frame(&im, VR_IMPAIR_BA, f, frame_make(f, i, true), i);
			while (vr_impair_due(&im, VR_IMPAIR_BA, i, &size))
				;
		}
	}
	vr_impair_fini(&im);
}

START_TEST(the_same_seed_decides_the_same)
{
	static uint8_t a[5000], b[5000], c[5000], d[5000];

	survivors(99, false, a, 5000);
	survivors(99, false, b, 5000);
	survivors(100, false, c, 5000);
	survivors(99, true, d, 5000);
	ck_assert_mem_eq(a, b, sizeof(a));
	ck_assert_int_ne(memcmp(a, c, sizeof(a)), 0);
	/* Traffic the other way does not change this direction's decisions. */
	ck_assert_mem_eq(a, d, sizeof(a));
}
END_TEST

START_TEST(arp_passes_unless_all_frames_are_impaired)
{
	static struct vr_impair im;
	uint8_t f[64];
	size_t size;
	unsigned got = 0;

	ck_assert_int_eq(vr_impair_init(&im, 3), 0);
	cmd_ok(&im, "loss 1");
	for (uint32_t i = 0; i < 50; i++) {
		vr_impair_frame(&im, VR_IMPAIR_AB, f, frame_make(f, i, false), 0);
		vr_impair_frame(&im, VR_IMPAIR_AB, f, frame_make(f, i, true), 0);
	}
	while (vr_impair_due(&im, VR_IMPAIR_AB, 0, &size))
		got++;
	ck_assert_uint_eq(got, 50);
	ck_assert_uint_eq(im.st[0].passed, 50);
	ck_assert_uint_eq(im.st[0].lost, 50);
	cmd_ok(&im, "all on");
	vr_impair_frame(&im, VR_IMPAIR_AB, f, frame_make(f, 0, false), 0);
	ck_assert_ptr_null(vr_impair_due(&im, VR_IMPAIR_AB, 0, &size));
	ck_assert_uint_eq(im.st[0].lost, 51);
	vr_impair_fini(&im);
}
END_TEST

START_TEST(a_full_queue_drops_and_counts)
{
	static struct vr_impair im;
	uint8_t f[64];
	static uint8_t big[VR_IMPAIR_FRAME_MAX + 1];

	ck_assert_int_eq(vr_impair_init(&im, 5), 0);
	cmd_ok(&im, "delay_ms 10");
	for (uint32_t i = 0; i < VR_IMPAIR_QUEUE + 10; i++)
		vr_impair_frame(&im, VR_IMPAIR_BA, f, frame_make(f, i, true), 0);
	ck_assert_uint_eq(im.st[1].overflow, 10);
	ck_assert_int_eq(vr_impair_next_us(&im, 0), 10000);
	ck_assert_int_eq(vr_impair_next_us(&im, 20000), 0);
	/* A frame larger than a jumbo frame is not forwarded. */
	big[12] = 0x08;
	ck_assert_uint_eq(vr_impair_frame(&im, VR_IMPAIR_AB, big, sizeof(big), 0), 0);
	ck_assert_uint_eq(im.st[0].overflow, 1);
	vr_impair_fini(&im);
}
END_TEST

START_TEST(refused_commands_change_nothing)
{
	static struct vr_impair im;
	static const char *const bad[] = {
	    "",
	    "   ",
	    "loss",
	    "loss 1.5",
	    "loss -0.1",
	    "loss abc",
	    "loss 0.1 xy",
	    "loss 0.1 ab more",
	    "loss nan",
	    "loss inf",
	    "dup 2",
	    "reorder 0.5 both",
	    "hold_ms",
	    "hold_ms 20000",
	    "delay_ms -1",
	    "partition",
	    "partition sideways",
	    "partition ab ba",
	    "clean now",
	    "seed",
	    "seed -1",
	    "seed 12x",
	    "all maybe",
	    "stats now",
	    "reset all",
	    "explode",
	};
	char reply[VR_IMPAIR_REPLY_MAX], longline[400];
	json_t *st;
	struct vr_impair_params before[VR_IMPAIR_DIRS];

	ck_assert_int_eq(vr_impair_init(&im, 11), 0);
	cmd_ok(&im, "loss 0.2 ba");
	cmd_ok(&im, "delay_ms 1.5");
	cmd_ok(&im, "partition ab");
	memcpy(before, im.p, sizeof(before));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(vr_impair_command(&im, bad[i], reply, sizeof(reply)) == -EINVAL,
		              "\"%s\" was taken", bad[i]);
		ck_assert_msg(!strncmp(reply, "error: ", 7), "\"%s\": %s", bad[i], reply);
		ck_assert_msg(!memcmp(before, im.p, sizeof(before)), "\"%s\" changed a setting",
		              bad[i]);
		ck_assert_uint_eq(im.seed, 11);
	}
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	ck_assert_int_eq(vr_impair_command(&im, longline, reply, sizeof(reply)), -EINVAL);
	/* stats: the settings and every counter, as JSON. */
	cmd_ok(&im, "stats");
	ck_assert_int_eq(vr_impair_command(&im, "stats", reply, sizeof(reply)), 0);
	st = json_loads(reply, 0, NULL);
	ck_assert_ptr_nonnull(st);
	ck_assert(json_is_true(
	    json_object_get(json_object_get(json_object_get(st, "ab"), "params"), "cut")));
	ck_assert(json_real_value(json_object_get(
	              json_object_get(json_object_get(st, "ba"), "params"), "loss")) == 0.2);
	ck_assert(json_real_value(json_object_get(
	              json_object_get(json_object_get(st, "ba"), "params"), "delay_ms")) == 1.5);
	ck_assert(json_is_integer(
	    json_object_get(json_object_get(json_object_get(st, "ab"), "counters"), "tx_failed")));
	json_decref(st);
	cmd_ok(&im, "clean");
	for (int d = 0; d < VR_IMPAIR_DIRS; d++)
		ck_assert(!im.p[d].cut && im.p[d].loss == 0 && im.p[d].delay_us == 0);
	vr_impair_fini(&im);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    applies_the_rates_it_is_given,
	    holds_and_delays_to_the_microsecond,
	    partitions_one_way_and_both,
	    the_same_seed_decides_the_same,
	    arp_passes_unless_all_frames_are_impaired,
	    a_full_queue_drops_and_counts,
	    refused_commands_change_nothing,
	};

	return vr_test_run("tools:impair", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
