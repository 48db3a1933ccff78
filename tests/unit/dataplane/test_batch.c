// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:batch — batching bounds: size (one datagram at the MTU), count and time; records
 * that can never fit; and a randomised check that batches partition the records in order, each
 * within bounds and each as full as the next record allowed (greedy).
 */
#include <check.h>
#include <stdlib.h>

#include "vr_batch.h"
#include "vr_test.h"

START_TEST(limits_follow_the_mtu)
{
	struct vr_batcher b;

	vr_batch_init(&b, 1500, 64, 100);
	ck_assert_uint_eq(b.max_bytes, 1500 - 20 - 8 - 48 - 16);
	vr_batch_init(&b, 9000, 10000, 100);
	ck_assert_uint_eq(b.max_bytes, VR_WIRE_MAX_SEALED);
	ck_assert_uint_eq(b.max_records, VR_WIRE_MAX_RECORDS);
}
END_TEST

START_TEST(size_bound)
{
	struct vr_batcher b;

	vr_batch_init(&b, 1500, 64, 1000);
	ck_assert_int_eq(vr_batch_offer(&b, 1000, 0), VR_BATCH_ADDED);
	ck_assert_int_eq(vr_batch_offer(&b, 500, 0), VR_BATCH_FLUSH); /* 1500 > 1408 */
	ck_assert_uint_eq(b.n, 1);
	vr_batch_reset(&b);
	ck_assert_int_eq(vr_batch_offer(&b, 500, 0), VR_BATCH_ADDED);
	ck_assert_int_eq(vr_batch_offer(&b, b.max_bytes - 500, 0), VR_BATCH_ADDED_FULL);
	ck_assert_int_eq(vr_batch_offer(&b, b.max_bytes + 1, 0), VR_BATCH_TOO_BIG);
}
END_TEST

START_TEST(count_bound)
{
	struct vr_batcher b;

	vr_batch_init(&b, 9000, 4, 1000);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vr_batch_offer(&b, 10, 0), VR_BATCH_ADDED);
	ck_assert_int_eq(vr_batch_offer(&b, 10, 0), VR_BATCH_ADDED_FULL);
	ck_assert_int_eq(vr_batch_offer(&b, 10, 0), VR_BATCH_FLUSH);
}
END_TEST

START_TEST(time_bound_counts_from_the_first_record)
{
	struct vr_batcher b;

	vr_batch_init(&b, 9000, 64, 50);
	ck_assert(!vr_batch_due(&b, 1000000)); /* empty: never due */
	ck_assert_int_eq(vr_batch_offer(&b, 10, 100), VR_BATCH_ADDED);
	ck_assert_int_eq(vr_batch_offer(&b, 10, 140), VR_BATCH_ADDED);
	ck_assert(!vr_batch_due(&b, 149));
	ck_assert(vr_batch_due(&b, 150));
	vr_batch_reset(&b);
	ck_assert(!vr_batch_due(&b, 1000));
	ck_assert_int_eq(vr_batch_offer(&b, 10, 1000), VR_BATCH_ADDED);
	ck_assert(!vr_batch_due(&b, 1049));
}
END_TEST

START_TEST(batches_partition_records_greedily)
{
	enum { N = 100000 };
	static uint32_t size[N];
	struct vr_batcher b;
	unsigned seed = 777, i = 0, batches = 0;

	vr_batch_init(&b, 1500, 16, 1000);
	for (unsigned k = 0; k < N; k++)
		size[k] = 58 + (uint32_t)rand_r(&seed) % 700;
	while (i < N) {
		unsigned first = i, bytes = 0;
		enum vr_batch_verdict v = VR_BATCH_ADDED;

		while (i < N && v == VR_BATCH_ADDED) {
			v = vr_batch_offer(&b, size[i], 0);
			if (v == VR_BATCH_ADDED || v == VR_BATCH_ADDED_FULL) {
				bytes += size[i];
				i++;
			}
		}
		ck_assert_uint_gt(i, first);
		ck_assert_uint_le(bytes, b.max_bytes);
		ck_assert_uint_le(i - first, 16);
		ck_assert_uint_eq(b.bytes, bytes);
		/* Greedy: the next record would not have fitted. */
		if (i < N && v == VR_BATCH_FLUSH)
			ck_assert(bytes + size[i] > b.max_bytes || i - first == 16);
		vr_batch_reset(&b);
		batches++;
	}
	ck_assert_uint_gt(batches, N / 16);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    limits_follow_the_mtu,
	    size_bound,
	    count_bound,
	    time_bound_counts_from_the_first_record,
	    batches_partition_records_greedily,
	};

	return vr_test_run("dataplane:batch", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
