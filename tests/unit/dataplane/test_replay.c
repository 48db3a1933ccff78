// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:replay — the anti-replay window: inside, outside, repeats, bursts and jumps, and a
 * randomised comparison with a brute-force model (a bitmap over all sequence numbers).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vr_replay.h"
#include "vr_test.h"

START_TEST(zero_is_never_valid_and_first_batch_is)
{
	struct vr_replay w = {0};

	ck_assert_int_eq(vr_replay_check(&w, 0), VR_REPLAY_OLD);
	ck_assert_int_eq(vr_replay_accept(&w, 0), VR_REPLAY_OLD);
	ck_assert_int_eq(vr_replay_accept(&w, 1), VR_REPLAY_OK);
	ck_assert_int_eq(vr_replay_accept(&w, 1), VR_REPLAY_DUP);
}
END_TEST

START_TEST(in_order_stream_then_every_repeat_is_caught)
{
	struct vr_replay w = {0};

	for (uint64_t s = 1; s <= 100000; s++)
		ck_assert_int_eq(vr_replay_accept(&w, s), VR_REPLAY_OK);
	for (uint64_t s = 100000 - VR_REPLAY_WINDOW + 1; s <= 100000; s++)
		ck_assert_int_eq(vr_replay_check(&w, s), VR_REPLAY_DUP);
	ck_assert_int_eq(vr_replay_check(&w, 100000 - VR_REPLAY_WINDOW), VR_REPLAY_OLD);
	ck_assert_int_eq(vr_replay_check(&w, 1), VR_REPLAY_OLD);
}
END_TEST

START_TEST(reordering_inside_the_window_is_accepted_once)
{
	struct vr_replay w = {0};

	ck_assert_int_eq(vr_replay_accept(&w, 3000), VR_REPLAY_OK);
	for (uint64_t s = 2999; s > 3000 - VR_REPLAY_WINDOW; s--)
		ck_assert_int_eq(vr_replay_accept(&w, s), VR_REPLAY_OK);
	for (uint64_t s = 2999; s > 3000 - VR_REPLAY_WINDOW; s--)
		ck_assert_int_eq(vr_replay_accept(&w, s), VR_REPLAY_DUP);
	ck_assert_int_eq(vr_replay_accept(&w, 3000 - VR_REPLAY_WINDOW), VR_REPLAY_OLD);
}
END_TEST

START_TEST(the_window_is_at_least_1024_batches)
{
	struct vr_replay w = {0};

	ck_assert_int_ge(VR_REPLAY_WINDOW, 1024);
	ck_assert_int_eq(vr_replay_accept(&w, 5000), VR_REPLAY_OK);
	ck_assert_int_eq(vr_replay_accept(&w, 5000 - 1024), VR_REPLAY_OK);
	ck_assert_int_eq(vr_replay_accept(&w, 5000 - VR_REPLAY_WINDOW + 1), VR_REPLAY_OK);
}
END_TEST

START_TEST(a_jump_forgets_the_old_window)
{
	struct vr_replay w = {0};

	for (uint64_t s = 1; s <= 500; s++)
		vr_replay_accept(&w, s);
	ck_assert_int_eq(vr_replay_accept(&w, 1000000000000ull), VR_REPLAY_OK);
	/* Positions that shared ring words with the old window are free again. */
	for (uint64_t s = 1000000000000ull - 1; s > 1000000000000ull - VR_REPLAY_WINDOW; s -= 7)
		ck_assert_int_eq(vr_replay_check(&w, s), VR_REPLAY_OK);
	ck_assert_int_eq(vr_replay_check(&w, 500), VR_REPLAY_OLD);
	/* A jump of less than the ring still clears exactly what it passes. */
	ck_assert_int_eq(vr_replay_accept(&w, 1000000000000ull + 130), VR_REPLAY_OK);
	ck_assert_int_eq(vr_replay_check(&w, 1000000000000ull), VR_REPLAY_DUP);
	ck_assert_int_eq(vr_replay_check(&w, 1000000000000ull + 64), VR_REPLAY_OK);
}
END_TEST

START_TEST(check_never_moves_the_window)
{
	struct vr_replay w = {0}, before;

	for (uint64_t s = 1; s <= 3000; s += 3)
		vr_replay_accept(&w, s);
	before = w;
	/* A forged batch is checked (maybe) but never accepted: nothing changes. */
	for (uint64_t s = 0; s < 1000000; s += 997)
		(void)vr_replay_check(&w, s * 1000003);
	ck_assert_mem_eq(&w, &before, sizeof(w));
}
END_TEST

START_TEST(matches_a_brute_force_model)
{
	enum { SPAN = 1 << 20 };
	uint8_t *seen = calloc(SPAN, 1);
	struct vr_replay w = {0};
	uint64_t top = 0, base = 1;
	unsigned seed = 12345;

	for (int i = 0; i < 300000; i++) {
		/* Mostly forward with reordering and repeats, sometimes a jump. */
		uint64_t r = (uint64_t)rand_r(&seed), s;
		enum vr_replay_verdict want, got;

		if (r % 1000 == 0)
			base += r % 5000;
		s = base + r % 3000;
		if (r % 7 == 0 && s > 2500)
			s -= 2500;
		if (s >= SPAN)
			break;
		want = s == 0                        ? VR_REPLAY_OLD
		       : s > top                     ? VR_REPLAY_OK
		       : top - s >= VR_REPLAY_WINDOW ? VR_REPLAY_OLD
		       : seen[s]                     ? VR_REPLAY_DUP
		                                     : VR_REPLAY_OK;
		got = vr_replay_accept(&w, s);
		ck_assert_msg(got == want, "seq %llu top %llu: got %d want %d",
		              (unsigned long long)s, (unsigned long long)top, got, want);
		if (want == VR_REPLAY_OK) {
			seen[s] = 1;
			if (s > top)
				top = s;
		}
		base += r % 3 == 0;
	}
	free(seen);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    zero_is_never_valid_and_first_batch_is,
	    in_order_stream_then_every_repeat_is_caught,
	    reordering_inside_the_window_is_accepted_once,
	    the_window_is_at_least_1024_batches,
	    a_jump_forgets_the_old_window,
	    check_never_moves_the_window,
	    matches_a_brute_force_model,
	};

	return vr_test_run("dataplane:replay", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
