// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:nonce — nonce discipline: layout, reservations, limits, and no (key, nonce) reuse
 * across crashes, with reservations persisted in a real logstore (RocksDB) and the sealer's
 * memory thrown away at random moments.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vr_log.h"
#include "vr_nonce.h"
#include "vr_test.h"

static const uint8_t SALT[4] = {0xde, 0xad, 0xbe, 0xef};

START_TEST(layout_is_salt_then_big_endian_sequence)
{
	struct vr_nonce n;
	uint8_t nonce[12];
	uint64_t seq;

	vr_nonce_start(&n, SALT, 0, 0);
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), -EAGAIN);
	vr_nonce_reserved(&n, vr_nonce_next_limit(&n));
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), 0);
	ck_assert_uint_eq(seq, 1);
	ck_assert_mem_eq(nonce, SALT, 4);
	ck_assert_uint_eq(vr_get_be64(nonce + 4), 1);
}
END_TEST

START_TEST(reservation_runs_out_then_refills)
{
	struct vr_nonce n;
	uint8_t nonce[12];
	uint64_t seq, last = 0;
	int rc;

	vr_nonce_start(&n, SALT, 0, 0);
	vr_nonce_reserved(&n, vr_nonce_next_limit(&n));
	while ((rc = vr_nonce_take(&n, &seq, nonce)) == 0) {
		ck_assert_uint_eq(seq, last + 1);
		last = seq;
	}
	ck_assert_int_eq(rc, -EAGAIN);
	ck_assert_uint_eq(last, VR_NONCE_RESERVE);
	ck_assert(vr_nonce_low(&n));
	/* -EAGAIN consumed nothing: the next sequence follows on. */
	vr_nonce_reserved(&n, vr_nonce_next_limit(&n));
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), 0);
	ck_assert_uint_eq(seq, last + 1);
	ck_assert(!vr_nonce_low(&n));
}
END_TEST

START_TEST(limits_rekey_soft_and_refuse_hard)
{
	struct vr_nonce n;
	uint8_t nonce[12];
	uint64_t seq;

	vr_nonce_start(&n, SALT, VR_NONCE_SOFT_LIMIT - 1, 1000);
	ck_assert(!vr_nonce_should_rekey(&n, 1000));
	vr_nonce_reserved(&n, VR_NONCE_HARD_LIMIT);
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), 0);
	ck_assert(vr_nonce_should_rekey(&n, 1000));
	/* The reservation never passes the hard limit, and the limit refuses. */
	n.next = VR_NONCE_HARD_LIMIT - 1;
	ck_assert_uint_eq(vr_nonce_next_limit(&n), VR_NONCE_HARD_LIMIT);
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), 0);
	ck_assert_uint_eq(seq, VR_NONCE_HARD_LIMIT - 1);
	ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), -EKEYEXPIRED);
	/* Age alone also asks for a rekey. */
	vr_nonce_start(&n, SALT, 0, 1000);
	ck_assert(!vr_nonce_should_rekey(&n, 1000 + VR_NONCE_MAX_AGE_S - 1));
	ck_assert(vr_nonce_should_rekey(&n, 1000 + VR_NONCE_MAX_AGE_S));
}
END_TEST

/* Persists a limit: the real durable store the dataplane will use. */
static void
persist(struct vr_log *log, uint64_t limit)
{
	uint8_t v[8];

	vr_put_be64(v, limit);
	ck_assert_int_eq(vr_log_meta_put(log, "nonce/k1", 8, v, sizeof(v)), 0);
}

static uint64_t
persisted(struct vr_log *log)
{
	uint8_t v[8];
	size_t n;
	int rc = vr_log_meta_get(log, "nonce/k1", 8, v, sizeof(v), &n);

	if (rc == -ENOENT)
		return 0;
	ck_assert_int_eq(rc, 0);
	return vr_get_be64(v);
}

START_TEST(no_nonce_repeats_across_crashes)
{
	/* 40 lives of at most half a reservation, each crash skipping at most one reservation. */
	enum { LIVES = 40, MAX_SEQ = 2 * LIVES * VR_NONCE_RESERVE };
	char *dir = vr_test_tmpdir("nonce");
	uint8_t *used = calloc(MAX_SEQ, 1);
	unsigned seed = 4242;
	uint64_t sealed = 0, highest = 0;

	ck_assert_ptr_nonnull(used);
	for (int life = 0; life < LIVES; life++) {
		unsigned budget = 1 + (unsigned)rand_r(&seed) % (VR_NONCE_RESERVE / 2);
		struct vr_log *log = vr_log_open(dir, NULL);
		struct vr_nonce n;

		ck_assert_ptr_nonnull(log);
		vr_nonce_start(&n, SALT, persisted(log), 0);
		/* It resumes above everything any earlier life may have used. */
		ck_assert_uint_gt(n.next, highest);
		for (unsigned i = 0; i < budget; i++) {
			uint8_t nonce[12];
			uint64_t seq;

			if (vr_nonce_low(&n)) {
				uint64_t l = vr_nonce_next_limit(&n);

				persist(log, l); /* durable first, then usable */
				vr_nonce_reserved(&n, l);
			}
			ck_assert_int_eq(vr_nonce_take(&n, &seq, nonce), 0);
			ck_assert_uint_lt(seq, MAX_SEQ);
			ck_assert_msg(!used[seq], "nonce with sequence %llu used twice",
			              (unsigned long long)seq);
			used[seq] = 1;
			highest = seq > highest ? seq : highest;
			sealed++;
		}
		/* Crash: the sealer's memory is gone; only what was persisted survives. */
		vr_log_close(log);
	}
	ck_assert_uint_gt(sealed, 100000);
	free(used);
	vr_test_rmdir(dir);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    layout_is_salt_then_big_endian_sequence,
	    reservation_runs_out_then_refills,
	    limits_rekey_soft_and_refuse_hard,
	    no_nonce_repeats_across_crashes,
	};

	return vr_test_run("dataplane:nonce", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
