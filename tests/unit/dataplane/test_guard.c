// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:guard — munmap on the EAL interrupt thread waits for the port I/O threads
 * (dp_guard.h). Each test plays the memif PMD's teardown with real EAL: an alarm callback (run by
 * EAL's interrupt thread, as memif_disconnect is) clears a "connected" flag and unmaps a ring,
 * while a poller thread is inside a round that checked the flag before it was cleared and reads
 * the ring at its end. Guarded, the unmap waits for that round and the read lands; unguarded, or
 * from any other thread, munmap does not wait (the poller's round is still open when it
 * returns). And dp_guard_intr_sync waits for what the interrupt thread is doing.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_alarm.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>

#include "dp_guard.h"
#include "vr_test.h"

enum { ROUND_MS = 300, PAGE = 4096 };

struct ring {
	struct rte_rcu_qsbr *q;
	uint8_t *mem;              /* the "shared ring" */
	atomic_bool connected;     /* memif's flag */
	atomic_bool in_round;      /* the poller is inside its slow round */
	atomic_bool round_read;    /* ... and has read the ring at its end */
	atomic_bool unmapped;      /* the teardown's munmap returned */
	atomic_bool open_at_unmap; /* the poller's round was still open when munmap returned */
	atomic_bool stop;
	unsigned long value; /* what the round read */
};

/* EAL once per test process (Check forks one per test; EAL's threads do not survive a fork). */
static void
eal_up(void)
{
	char prefix[32];
	char *argv[] = {"test-guard",
	                "--no-huge",
	                "-m",
	                "64",
	                "--no-pci",
	                "--no-shconf",
	                "--file-prefix",
	                prefix,
	                "--no-telemetry",
	                "-l",
	                "0",
	                "--log-level",
	                "lib.eal:error",
	                NULL};

	snprintf(prefix, sizeof(prefix), "vrguard%d", (int)getpid());
	ck_assert_msg(rte_eal_init((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) >= 0, "EAL: %s",
	              rte_strerror(rte_errno));
}

/* A poller: one round that checked "connected" first, lasts ROUND_MS, then reads the ring. */
static void *
poller(void *arg)
{
	struct ring *r = arg;

	rte_rcu_qsbr_thread_register(r->q, 1);
	rte_rcu_qsbr_thread_online(r->q, 1);
	if (atomic_load(&r->connected)) {
		atomic_store(&r->in_round, true);
		usleep(ROUND_MS * 1000);
		r->value = ((volatile uint8_t *)r->mem)[PAGE - 1];
		atomic_store(&r->round_read, true);
		atomic_store(&r->in_round, false);
	}
	/* Later rounds see the flag cleared and leave the ring alone, as memif's rx/tx do. */
	while (!atomic_load(&r->stop)) {
		rte_rcu_qsbr_quiescent(r->q, 1);
		usleep(100);
	}
	rte_rcu_qsbr_thread_offline(r->q, 1);
	rte_rcu_qsbr_thread_unregister(r->q, 1);
	return NULL;
}

/* memif_disconnect's order: the flag, then the unmap. */
static void
teardown(void *arg)
{
	struct ring *r = arg;

	atomic_store(&r->connected, false);
	ck_assert_int_eq(munmap(r->mem, PAGE), 0);
	atomic_store(&r->open_at_unmap, atomic_load(&r->in_round));
	atomic_store(&r->unmapped, true);
}

static struct ring *
ring_new(bool guarded)
{
	struct ring *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->q = rte_zmalloc("q", rte_rcu_qsbr_get_memsize(2), RTE_CACHE_LINE_SIZE);
	ck_assert_ptr_nonnull(r->q);
	ck_assert_int_eq(rte_rcu_qsbr_init(r->q, 2), 0);
	r->mem = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(r->mem != MAP_FAILED);
	r->mem[PAGE - 1] = 0xa5;
	atomic_store(&r->connected, true);
	dp_guard_unmap(guarded ? r->q : NULL);
	return r;
}

static void
ring_free(struct ring *r)
{
	rte_free(r->q);
	free(r);
}

/* Starts the poller, waits until its round is open, and runs teardown() there or here. */
static void
race(struct ring *r, bool on_intr_thread)
{
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, poller, r), 0);
	for (int i = 0; i < 2000 && !atomic_load(&r->in_round); i++)
		usleep(1000);
	ck_assert(atomic_load(&r->in_round));
	if (on_intr_thread) {
		ck_assert_int_eq(rte_eal_alarm_set(1, teardown, r), 0);
		for (int i = 0; i < 5000 && !atomic_load(&r->unmapped); i++)
			usleep(1000);
	} else {
		teardown(r);
	}
	ck_assert(atomic_load(&r->unmapped));
	if (!atomic_load(&r->open_at_unmap))
		ck_assert(atomic_load(&r->round_read));
	atomic_store(&r->stop, true);
	/* Unguarded, the poller's late read faults: the test then stops it from the outside. */
	if (atomic_load(&r->open_at_unmap))
		pthread_cancel(t);
	pthread_join(t, NULL);
}

START_TEST(guarded_unmap_waits_for_the_round_in_progress)
{
	struct ring *r;
	unsigned long before;

	eal_up();
	r = ring_new(true);
	before = dp_guard_waits();
	race(r, true);
	/* The round that checked the flag before the teardown read the ring whole. */
	ck_assert(!atomic_load(&r->open_at_unmap));
	ck_assert(atomic_load(&r->round_read));
	ck_assert_uint_eq(r->value, 0xa5);
	ck_assert_uint_eq(dp_guard_waits(), before + 1);
	dp_guard_unmap(NULL);
	ring_free(r);
}
END_TEST

START_TEST(unguarded_unmap_does_not_wait)
{
	struct ring *r;
	unsigned long before;

	eal_up();
	r = ring_new(false);
	before = dp_guard_waits();
	race(r, true);
	/* Without the guard the ring went while the round was open: the race memif has. */
	ck_assert(atomic_load(&r->open_at_unmap));
	ck_assert(!atomic_load(&r->round_read));
	ck_assert_uint_eq(dp_guard_waits(), before);
	ring_free(r);
}
END_TEST

START_TEST(other_threads_unmap_at_once)
{
	struct ring *r;
	unsigned long before;

	eal_up();
	r = ring_new(true);
	before = dp_guard_waits();
	race(r, false);
	/* The test's own thread is not EAL's interrupt thread: no wait, nothing counted. */
	ck_assert(atomic_load(&r->open_at_unmap));
	ck_assert_uint_eq(dp_guard_waits(), before);
	dp_guard_unmap(NULL);
	ring_free(r);
}
END_TEST

static void
slow_teardown(void *arg)
{
	usleep(200 * 1000);
	atomic_store((atomic_bool *)arg, true);
}

START_TEST(intr_sync_waits_for_a_teardown_in_progress)
{
	static atomic_bool done;

	eal_up();
	ck_assert_int_eq(rte_eal_alarm_set(1, slow_teardown, &done), 0);
	usleep(20 * 1000); /* the interrupt thread is inside it now */
	ck_assert_int_eq(dp_guard_intr_sync(5000), 0);
	ck_assert(atomic_load(&done));
	/* With nothing in progress it returns at once; a stuck thread is a timeout, not a hang. */
	ck_assert_int_eq(dp_guard_intr_sync(5000), 0);
	atomic_store(&done, false);
	ck_assert_int_eq(rte_eal_alarm_set(1, slow_teardown, &done), 0);
	usleep(20 * 1000);
	ck_assert_int_eq(dp_guard_intr_sync(50), -ETIMEDOUT);
	ck_assert(!atomic_load(&done));
	ck_assert_int_eq(dp_guard_intr_sync(5000), 0);
	ck_assert(atomic_load(&done));
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {guarded_unmap_waits_for_the_round_in_progress,
	                        unguarded_unmap_does_not_wait, other_threads_unmap_at_once,
	                        intr_sync_waits_for_a_teardown_in_progress};

	return vr_test_run("dataplane:guard", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
