// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:keycache — a stream's key-id cache (dp_key_by_id, dp_key_push in dp.h): the
 * current key and the one before it by id, what falls out of it, and lookups by a reader
 * thread while a writer rotates keys (a worker lcore beside the control thread).
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include "dp.h"
#include "vr_test.h"

static struct dp_key *
key(uint32_t id)
{
	struct dp_key *k = calloc(1, sizeof(*k));

	ck_assert_ptr_nonnull(k);
	k->id = id;
	return k;
}

START_TEST(current_and_previous_by_id)
{
	struct dp_stream st = {0};
	struct dp_key *k1 = key(1), *k2 = key(2), *k3 = key(3);

	ck_assert_ptr_null(dp_key_by_id(&st, 1));
	ck_assert_ptr_null(dp_key_push(&st, k1));
	ck_assert_ptr_eq(dp_key_by_id(&st, 1), k1);
	ck_assert_ptr_null(dp_key_by_id(&st, 2));
	ck_assert_ptr_null(dp_key_by_id(&st, 0));
	/* A rotation: the old key still opens batches in flight. */
	ck_assert_ptr_null(dp_key_push(&st, k2));
	ck_assert_ptr_eq(dp_key_by_id(&st, 2), k2);
	ck_assert_ptr_eq(dp_key_by_id(&st, 1), k1);
	ck_assert_ptr_eq(atomic_load(&st.key), k2);
	/* The next one: the oldest falls out, to be freed after a grace period. */
	ck_assert_ptr_eq(dp_key_push(&st, k3), k1);
	ck_assert_ptr_null(dp_key_by_id(&st, 1));
	ck_assert_ptr_eq(dp_key_by_id(&st, 2), k2);
	ck_assert_ptr_eq(dp_key_by_id(&st, 3), k3);
	ck_assert_ptr_eq(dp_key_push(&st, NULL), k2);
	ck_assert_ptr_null(dp_key_by_id(&st, 2));
	ck_assert_ptr_eq(dp_key_by_id(&st, 3), k3); /* now the previous one */
	free(k1);
	free(k2);
	free(k3);
}
END_TEST

enum { ROTATIONS = 200000 };

struct race {
	struct dp_stream *st;
	struct dp_key *keys;
	_Atomic bool done;
	unsigned long lookups, found, wrong, backwards;
};

/* A worker: looks up the newest id it saw and the next one; a hit must be that very key. */
static void *
reader(void *arg)
{
	struct race *r = arg;
	uint32_t seen = 0;

	while (!atomic_load(&r->done)) {
		struct dp_key *cur = atomic_load_explicit(&r->st->key, memory_order_acquire);
		uint32_t id = cur ? cur->id : 0;

		if (id < seen)
			r->backwards++;
		seen = id;
		for (uint32_t want = id; want <= id + 1; want++) {
			struct dp_key *k = dp_key_by_id(r->st, want);

			r->lookups++;
			if (k) {
				r->found++;
				if (k->id != want || k != &r->keys[want])
					r->wrong++;
			}
		}
	}
	return NULL;
}

START_TEST(lookups_while_keys_rotate)
{
	struct race *r = calloc(1, sizeof(*r));
	pthread_t t;

	ck_assert_ptr_nonnull(r);
	r->st = calloc(1, sizeof(*r->st));
	ck_assert_ptr_nonnull(r->st);
	r->keys = calloc(ROTATIONS + 2, sizeof(*r->keys));
	ck_assert_ptr_nonnull(r->keys);
	for (uint32_t i = 0; i < ROTATIONS + 2; i++)
		r->keys[i].id = i;
	dp_key_push(r->st, &r->keys[1]);
	ck_assert_int_eq(pthread_create(&t, NULL, reader, r), 0);
	for (uint32_t i = 2; i <= ROTATIONS; i++) {
		/* What falls out is always the key two rotations back (never freed here). */
		ck_assert_ptr_eq(dp_key_push(r->st, &r->keys[i]), i > 2 ? &r->keys[i - 2] : NULL);
	}
	atomic_store(&r->done, true);
	pthread_join(t, NULL);
	printf("keycache: %lu lookups during %u rotations, %lu hits, %lu wrong, %lu backwards\n",
	       r->lookups, ROTATIONS, r->found, r->wrong, r->backwards);
	ck_assert_uint_gt(r->lookups, 0);
	ck_assert_uint_gt(r->found, 0);
	ck_assert_uint_eq(r->wrong, 0);
	ck_assert_uint_eq(r->backwards, 0);
	ck_assert_ptr_eq(dp_key_by_id(r->st, ROTATIONS), &r->keys[ROTATIONS]);
	ck_assert_ptr_eq(dp_key_by_id(r->st, ROTATIONS - 1), &r->keys[ROTATIONS - 1]);
	free(r->keys);
	free(r->st);
	free(r);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {current_and_previous_by_id, lookups_while_keys_rotate};

	return vr_test_run("dataplane:keycache", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
