// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:log — the WAL store on a real RocksDB in a temporary directory: append and read
 * across many streams, validation (V7) with nothing written on failure, group commit under
 * concurrency, recovery on reopen, cursors, trim, secondary readers, corruption detection.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "vr_common.h"
#include "vr_log.h"
#include "vr_test.h"

enum { REC_CAP = 2048 };

/* A batch of encoded records with stable buffers. */
struct batch {
	unsigned n;
	uint8_t buf[512][REC_CAP];
	struct iovec iov[512];
};

static void
batch_add(struct batch *b, struct vr_test_wal *w, size_t payload)
{
	ck_assert_uint_lt(b->n, 512);
	b->iov[b->n].iov_base = b->buf[b->n];
	b->iov[b->n].iov_len = vr_test_wal_next(w, payload, b->buf[b->n], REC_CAP);
	b->n++;
}

static struct vr_log *
open_log(const char *dir)
{
	struct vr_log *log = vr_log_open(dir, NULL);

	ck_assert_msg(log, "vr_log_open: %s", strerror(errno));
	return log;
}

static void
append_ok(struct vr_log *log, struct batch *b)
{
	struct vr_log_durable d[512];
	unsigned nd, bad = 999;
	int rc = vr_log_append(log, b->iov, b->n, d, &nd, &bad);

	ck_assert_msg(rc == 0, "append: %s (record %u)", vr_rec_strerror(rc), bad);
}

/* Reads a whole WAL back and checks order, content and the chain; returns records read. */
static uint64_t
read_all(struct vr_log *log, const struct vr_stream_id *id, uint64_t from)
{
	struct vr_log_iter *it = vr_log_iter_open(log, id, from);
	uint64_t expect = from, n = 0;
	struct vr_rec r;
	int rc;

	ck_assert_ptr_nonnull(it);
	while ((rc = vr_log_iter_next(it, &r)) == 1) {
		ck_assert_uint_eq(r.lsn, expect);
		ck_assert(vr_test_payload_ok(&r));
		ck_assert_uint_eq(r.stream.account, id->account);
		expect++;
		n++;
	}
	ck_assert_int_eq(rc, 0);
	vr_log_iter_close(it);
	return n;
}

START_TEST(append_and_read_many_streams)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w[40];
	uint16_t members[] = {2, 3};

	for (int s = 0; s < 40; s++)
		vr_test_wal_init(&w[s], 1000 + (uint64_t)s, (uint32_t)s % 3, 1, 2, members);
	/* 20 calls, each interleaving records of every stream, 1..6 records per stream. */
	for (int call = 0; call < 20; call++) {
		struct vr_log_durable d[512];
		unsigned nd;

		b.n = 0;
		for (int k = 0; k < 6; k++)
			for (int s = 0; s < 40; s++)
				if (k <= (s + call) % 6)
					batch_add(
					    &b, &w[s],
					    vr_test_payload_size(&w[s].id, w[s].lsn + 1, 200));
		ck_assert_int_eq(vr_log_append(log, b.iov, b.n, d, &nd, NULL), 0);
		ck_assert_uint_eq(nd, 40);
		for (int s = 0; s < 40; s++) {
			ck_assert_uint_eq(d[s].stream.account, 1000 + (uint64_t)s);
			ck_assert_uint_eq(d[s].lsn, w[s].lsn);
		}
	}
	for (int s = 0; s < 40; s++) {
		struct vr_log_stream st;
		uint64_t checked;

		ck_assert_uint_eq(read_all(log, &w[s].id, 1), w[s].lsn);
		ck_assert_int_eq(vr_log_stream_get(log, &w[s].id, &st), 0);
		ck_assert_uint_eq(st.last_lsn, w[s].lsn);
		ck_assert_mem_eq(st.last_entropy, w[s].entropy, 16);
		ck_assert_uint_eq(st.n_members, 2);
		ck_assert_int_eq(vr_log_verify(log, &w[s].id, &checked), 0);
		ck_assert_uint_eq(checked, w[s].lsn);
		/* Reading from the middle starts at exactly that LSN. */
		ck_assert_uint_eq(read_all(log, &w[s].id, w[s].lsn / 2 + 1),
		                  w[s].lsn - w[s].lsn / 2);
	}
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

/*
 * A site appends its own streams' records unfinished and its peers' finished, in one call: its
 * own are chained and checksummed in place, exactly as the chained encoding; the others are
 * still checked, and an unfinished record is refused where nobody finishes it.
 */
START_TEST(own_records_are_finished_in_place_others_checked)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b, ref;
	struct vr_test_wal own, peer, own_ref;
	struct vr_log_durable d[4];
	unsigned nd, bad;
	uint64_t checked;

	vr_test_wal_init(&own, 1, 1, 1, 0, NULL);
	vr_test_wal_init(&own_ref, 1, 1, 1, 0, NULL);
	vr_test_wal_init(&peer, 2, 1, 2, 0, NULL);
	for (int call = 0; call < 3; call++) {
		b.n = ref.n = 0;
		for (int k = 0; k < 20; k++) {
			batch_add(&ref, &own_ref, 50 + (size_t)k);
			batch_add(&b, &own, 50 + (size_t)k);
			memset(b.buf[b.n - 1], 0, 20); /* as the worker leaves it */
			batch_add(&b, &peer, 30);
		}
		ck_assert_int_eq(vr_log_append_as(log, 1, b.iov, b.n, d, &nd, &bad), 0);
		ck_assert_uint_eq(nd, 2);
		for (unsigned i = 0; i < ref.n; i++)
			ck_assert_mem_eq(b.buf[2 * i], ref.buf[i], ref.iov[i].iov_len);
	}
	ck_assert_int_eq(vr_log_verify(log, &own.id, &checked), 0);
	ck_assert_uint_eq(checked, 60);
	ck_assert_uint_eq(read_all(log, &own.id, 1), 60);
	/* The peer's records are not finished here: a broken one is refused. */
	b.n = 0;
	batch_add(&b, &peer, 30);
	b.buf[0][5] ^= 1;
	ck_assert_int_eq(vr_log_append_as(log, 1, b.iov, 1, d, &nd, &bad), -VR_REC_ERR_CHECKSUM);
	/* Without a site, an unfinished record of its own stream is refused as it stands. */
	b.n = 0;
	batch_add(&b, &own, 30);
	memset(b.buf[0], 0, 20);
	ck_assert_int_eq(vr_log_append(log, b.iov, 1, d, &nd, &bad), -VR_REC_ERR_CHECKSUM);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

static int
count_stream(const struct vr_log_stream *s, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

START_TEST(reopen_recovers_every_tail)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w[10];
	unsigned n = 0;

	for (int s = 0; s < 10; s++) {
		vr_test_wal_init(&w[s], 7, (uint32_t)s, 4, 0, NULL);
		b.n = 0;
		for (int k = 0; k <= s; k++)
			batch_add(&b, &w[s], 64);
		append_ok(log, &b);
	}
	vr_log_close(log);

	log = open_log(dir);
	ck_assert_int_eq(vr_log_stream_foreach(log, count_stream, &n), 0);
	ck_assert_uint_eq(n, 10);
	/* Appending the next LSN works only if the tail (LSN and entropy) was recovered. */
	for (int s = 0; s < 10; s++) {
		b.n = 0;
		batch_add(&b, &w[s], 100);
		append_ok(log, &b);
		ck_assert_uint_eq(read_all(log, &w[s].id, 1), (uint64_t)s + 2);
		ck_assert_int_eq(vr_log_verify(log, &w[s].id, NULL), 0);
	}
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

/*
 * Builds a two-stream call whose record `victim` (of stream B) is spoiled by `spoil`; expects
 * `err` at index victim, and neither stream changed.
 */
static void
expect_refused(void (*spoil)(struct vr_test_wal *b, uint8_t *buf, struct iovec *iov), int err)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal a, x, a_saved, x_saved;
	struct vr_log_durable d[512];
	struct vr_log_stream st;
	struct vr_log_stats stats;
	unsigned nd = 77, bad = 999, victim;
	int rc;

	vr_test_wal_init(&a, 1, 1, 1, 0, NULL);
	vr_test_wal_init(&x, 2, 1, 1, 0, NULL);
	b.n = 0;
	for (int k = 0; k < 3; k++) {
		batch_add(&b, &a, 32);
		batch_add(&b, &x, 32);
	}
	append_ok(log, &b);
	a_saved = a;
	x_saved = x;

	b.n = 0;
	batch_add(&b, &a, 32);
	batch_add(&b, &a, 32);
	victim = b.n;
	b.iov[victim].iov_base = b.buf[victim];
	spoil(&x, b.buf[victim], &b.iov[victim]);
	b.n++;
	batch_add(&b, &a, 32);

	rc = vr_log_append(log, b.iov, b.n, d, &nd, &bad);
	ck_assert_msg(rc == -err, "expected %s, got %s", vr_rec_strerror(-err),
	              vr_rec_strerror(rc));
	ck_assert_uint_eq(bad, victim);
	ck_assert_uint_eq(nd, 0);
	ck_assert_int_eq(vr_log_stream_get(log, &a.id, &st), 0);
	ck_assert_uint_eq(st.last_lsn, a_saved.lsn);
	ck_assert_int_eq(vr_log_stream_get(log, &x.id, &st), 0);
	ck_assert_uint_eq(st.last_lsn, x_saved.lsn);
	ck_assert_uint_eq(read_all(log, &a.id, 1), a_saved.lsn);
	ck_assert_int_eq(vr_log_error(log), 0);
	vr_log_stats_get(log, &stats);
	ck_assert_uint_eq(stats.rejected, 1);
	ck_assert_uint_eq(stats.appends, 1);

	/* The store is unharmed: the valid continuation of both streams goes in. */
	a = a_saved;
	x = x_saved;
	b.n = 0;
	batch_add(&b, &a, 10);
	batch_add(&b, &x, 10);
	append_ok(log, &b);
	ck_assert_int_eq(vr_log_verify(log, &a.id, NULL), 0);
	ck_assert_int_eq(vr_log_verify(log, &x.id, NULL), 0);
	vr_log_close(log);
	vr_test_rmdir(dir);
}

static void
spoil_gap(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	c.lsn++; /* skip one LSN, with an otherwise valid record */
	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP);
}

static void
spoil_stale(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	c.lsn--;
	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP);
}

static void
spoil_chain(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	c.entropy[0] ^= 0x80;
	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP);
}

static void
spoil_checksum(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP);
	buf[iov->iov_len - 1] ^= 1;
}

static void
spoil_origin(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_rec r = {0};
	uint8_t p[8] = {0};

	r.stream = w->id;
	r.origin = (uint16_t)(w->id.primary + 1);
	r.lsn = w->lsn + 1;
	r.type = VR_REC_DATA;
	r.op = VR_REC_OP_PUT;
	r.payload = p;
	r.payload_size = sizeof(p);
	iov->iov_len = (size_t)vr_rec_encode(&r, w->entropy, buf, REC_CAP);
}

static void
spoil_seed(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_rec r = {0};

	r.stream = w->id;
	r.origin = w->id.primary;
	r.lsn = w->lsn + 1;
	r.type = VR_REC_INFRA;
	r.op = VR_REC_OP_SEED;
	iov->iov_len = (size_t)vr_rec_encode(&r, w->entropy, buf, REC_CAP);
}

static void
spoil_truncate(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP) - 1;
}

static void
spoil_trailing(struct vr_test_wal *w, uint8_t *buf, struct iovec *iov)
{
	struct vr_test_wal c = *w;

	iov->iov_len = vr_test_wal_next(&c, 32, buf, REC_CAP) + 1;
}

START_TEST(gap_is_refused_and_nothing_written)
{
	expect_refused(spoil_gap, VR_REC_ERR_GAP);
}
END_TEST

START_TEST(repeat_is_refused_and_nothing_written)
{
	expect_refused(spoil_stale, VR_REC_ERR_STALE);
}
END_TEST

START_TEST(broken_chain_is_refused_and_nothing_written)
{
	expect_refused(spoil_chain, VR_REC_ERR_CHAIN);
}
END_TEST

START_TEST(bad_checksum_is_refused_and_nothing_written)
{
	expect_refused(spoil_checksum, VR_REC_ERR_CHECKSUM);
}
END_TEST

START_TEST(foreign_origin_is_refused_and_nothing_written)
{
	expect_refused(spoil_origin, VR_REC_ERR_ORIGIN);
}
END_TEST

START_TEST(late_seed_is_refused_and_nothing_written)
{
	expect_refused(spoil_seed, VR_REC_ERR_SEED);
}
END_TEST

START_TEST(truncated_record_is_refused_and_nothing_written)
{
	expect_refused(spoil_truncate, VR_REC_ERR_SIZE);
}
END_TEST

START_TEST(trailing_bytes_are_refused_and_nothing_written)
{
	expect_refused(spoil_trailing, VR_REC_ERR_SIZE);
}
END_TEST

START_TEST(new_wal_must_start_with_its_seed)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w;
	struct vr_log_durable d[4];
	struct vr_log_stream st;
	unsigned bad;

	/* LSN 2 first: a gap. */
	vr_test_wal_init(&w, 9, 9, 9, 0, NULL);
	w.lsn = 1;
	b.n = 0;
	batch_add(&b, &w, 10);
	ck_assert_int_eq(vr_log_append(log, b.iov, 1, d, NULL, &bad), -VR_REC_ERR_GAP);
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), -ENOENT);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

struct worker {
	struct vr_log *log;
	uint64_t account;
	int calls, per_call;
	int failures;
	pthread_barrier_t *start;
};

static void *
worker_run(void *arg)
{
	struct worker *wk = arg;
	struct batch *b = malloc(sizeof(*b));
	struct vr_test_wal w;

	vr_test_wal_init(&w, wk->account, 1, 1, 0, NULL);
	pthread_barrier_wait(wk->start);
	for (int c = 0; c < wk->calls; c++) {
		struct vr_log_durable d[512];
		unsigned nd;

		b->n = 0;
		for (int k = 0; k < wk->per_call; k++)
			batch_add(b, &w, 100);
		if (vr_log_append(wk->log, b->iov, b->n, d, &nd, NULL) || nd != 1 ||
		    d[0].lsn != w.lsn)
			wk->failures++;
	}
	free(b);
	return NULL;
}

START_TEST(concurrent_appends_are_coalesced_into_fewer_syncs)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	struct worker wk[4];
	pthread_t th[4];
	pthread_barrier_t start;
	struct vr_log_stats stats;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		wk[i] = (struct worker){log, 100 + (uint64_t)i, 150, 8, 0, &start};
		pthread_create(&th[i], NULL, worker_run, &wk[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	vr_log_stats_get(log, &stats);
	for (int i = 0; i < 4; i++) {
		struct vr_stream_id id = {100 + (uint64_t)i, 1, 1};

		ck_assert_int_eq(wk[i].failures, 0);
		ck_assert_uint_eq(read_all(log, &id, 1), 150 * 8);
		ck_assert_int_eq(vr_log_verify(log, &id, NULL), 0);
	}
	ck_assert_uint_eq(stats.appends, 600);
	ck_assert_uint_eq(stats.records, 4800);
	ck_assert_msg(stats.commits < stats.appends, "%llu commits for %llu appends",
	              (unsigned long long)stats.commits, (unsigned long long)stats.appends);
	printf("group commit: %llu appends in %llu synced writes\n",
	       (unsigned long long)stats.appends, (unsigned long long)stats.commits);
	pthread_barrier_destroy(&start);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

/* Two threads race the same records into the same WAL: each LSN goes in exactly once. */
struct racer {
	struct vr_log *log;
	struct batch *b;
	int ok, stale, other;
};

static void *
racer_run(void *arg)
{
	struct racer *r = arg;

	for (unsigned i = 0; i < r->b->n; i++) {
		struct vr_log_durable d[1];
		int rc = vr_log_append(r->log, &r->b->iov[i], 1, d, NULL, NULL);

		if (rc == 0)
			r->ok++;
		else if (rc == -VR_REC_ERR_STALE)
			r->stale++;
		else
			r->other++;
	}
	return NULL;
}

START_TEST(racing_writers_of_one_wal_never_duplicate)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w;
	struct racer r1, r2;
	struct vr_log_stream st;
	pthread_t t1, t2;

	vr_test_wal_init(&w, 5, 5, 5, 0, NULL);
	b.n = 0;
	for (int k = 0; k < 300; k++)
		batch_add(&b, &w, 20);
	r1 = (struct racer){log, &b, 0, 0, 0};
	r2 = r1;
	pthread_create(&t1, NULL, racer_run, &r1);
	pthread_create(&t2, NULL, racer_run, &r2);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	/* A loser may also see GAP when it runs ahead of a winner that has not reserved yet. */
	ck_assert_int_eq(r1.ok + r2.ok, 300);
	ck_assert_uint_eq(read_all(log, &w.id, 1), 300);
	ck_assert_int_eq(vr_log_verify(log, &w.id, NULL), 0);
	/*
	 * Reopened, the WAL's head is its last record: where one frame held chunks of both
	 * racers (group commit), the later chunk's row is the one indexed.
	 */
	vr_log_close(log);
	log = open_log(dir);
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
	ck_assert_uint_eq(st.last_lsn, 300);
	ck_assert_uint_eq(read_all(log, &w.id, 1), 300);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(cursors_only_move_forward_and_survive_reopen)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	struct vr_stream_id id = {1, 2, 3};
	uint64_t c;

	ck_assert_int_eq(vr_log_cursor_get(log, &id, 9, &c), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_int_eq(vr_log_cursor_set(log, &id, 9, 50), 0);
	ck_assert_int_eq(vr_log_cursor_set(log, &id, 9, 40), 0);
	ck_assert_int_eq(vr_log_cursor_get(log, &id, 9, &c), 0);
	ck_assert_uint_eq(c, 50);
	ck_assert_int_eq(vr_log_cursor_set(log, &id, 10, 7), 0);
	vr_log_close(log);
	log = open_log(dir);
	ck_assert_int_eq(vr_log_cursor_get(log, &id, 9, &c), 0);
	ck_assert_uint_eq(c, 50);
	ck_assert_int_eq(vr_log_cursor_get(log, &id, 10, &c), 0);
	ck_assert_uint_eq(c, 7);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

/*
 * The dataplane's WALs name their members in the seed only: data records name none. The members
 * a trim waits for are the latest seed's or membership record's, across later records, reopen
 * and re-indexing.
 */
START_TEST(members_come_from_the_latest_infrastructure_record)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w;
	struct vr_log_stream st;
	uint16_t members[] = {2, 3};
	uint64_t t;

	vr_test_wal_init(&w, 7, 1, 1, 2, members);
	b.n = 0;
	batch_add(&b, &w, 0); /* the seed, naming 2 and 3 */
	w.n_members = 0;
	for (int k = 0; k < 9; k++)
		batch_add(&b, &w, 40);
	append_ok(log, &b);
	for (int call = 0; call < 4; call++) { /* chunks from 11, 21, 31, 41 */
		b.n = 0;
		for (int k = 0; k < 10; k++)
			batch_add(&b, &w, 40);
		append_ok(log, &b);
	}
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
	ck_assert_uint_eq(st.n_members, 2);
	ck_assert_uint_eq(st.members[1], 3);
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 2, 45), 0);
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 0); /* site 3 acknowledged nothing */
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 3, 25), 0);
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 20);
	vr_log_close(log);

	log = open_log(dir);
	b.n = 0;
	batch_add(&b, &w, 40); /* after reopen, still no members in the record */
	append_ok(log, &b);
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
	ck_assert_uint_eq(st.n_members, 2);
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 3, 45), 0);
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 40);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(trim_drops_acknowledged_chunks_and_keeps_chain_verifiable)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w, lone;
	struct vr_log_stream st;
	uint16_t members[] = {1, 2, 3}; /* the primary (1) is not waited for */
	uint64_t t, checked;
	struct vr_log_iter *it;
	struct vr_rec r;

	vr_test_wal_init(&w, 1, 1, 1, 3, members);
	for (int call = 0; call < 10; call++) { /* chunks start at 1, 11, 21, ... */
		b.n = 0;
		for (int k = 0; k < 10; k++)
			batch_add(&b, &w, 50);
		append_ok(log, &b);
	}
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 0); /* nobody acknowledged anything */
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 2, 55), 0);
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 3, 35), 0);
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 30); /* 36 lives in the chunk from 31 */

	it = vr_log_iter_open(log, &w.id, 1);
	ck_assert_int_eq(vr_log_iter_next(it, &r), 1);
	ck_assert_uint_eq(r.lsn, 31);
	vr_log_iter_close(it);
	ck_assert_int_eq(vr_log_verify(log, &w.id, &checked), 0);
	ck_assert_uint_eq(checked, 70);

	/* Everything acknowledged: the latest chunk stays. */
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 2, 100), 0);
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 3, 100), 0);
	ck_assert_int_eq(vr_log_trim(log, &w.id, &t), 0);
	ck_assert_uint_eq(t, 90);
	vr_log_close(log);

	log = open_log(dir);
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
	ck_assert_uint_eq(st.trim_lsn, 90);
	ck_assert_uint_eq(st.last_lsn, 100);
	ck_assert_int_eq(vr_log_verify(log, &w.id, &checked), 0);
	ck_assert_uint_eq(checked, 10);
	ck_assert_uint_eq(read_all(log, &w.id, 91), 10);
	/* And the WAL goes on. */
	b.n = 0;
	batch_add(&b, &w, 50);
	append_ok(log, &b);
	ck_assert_int_eq(vr_log_verify(log, &w.id, &checked), 0);
	ck_assert_uint_eq(checked, 11);

	/* A WAL without members is never trimmed. */
	vr_test_wal_init(&lone, 2, 2, 1, 0, NULL);
	b.n = 0;
	for (int k = 0; k < 5; k++)
		batch_add(&b, &lone, 10);
	append_ok(log, &b);
	b.n = 0;
	batch_add(&b, &lone, 10);
	append_ok(log, &b);
	ck_assert_int_eq(vr_log_trim(log, &lone.id, &t), 0);
	ck_assert_uint_eq(t, 0);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(secondary_reader_follows_the_primary)
{
	char *dir = vr_test_tmpdir("log"), *sdir = vr_test_tmpdir("sec");
	struct vr_log *log = open_log(dir), *sec;
	struct vr_log_opts so = {.secondary = true, .secondary_dir = sdir};
	static struct batch b;
	struct vr_test_wal w;
	struct vr_log_stream st;
	struct vr_log_durable d[4];

	vr_test_wal_init(&w, 3, 3, 3, 0, NULL);
	b.n = 0;
	for (int k = 0; k < 20; k++)
		batch_add(&b, &w, 80);
	append_ok(log, &b);

	sec = vr_log_open(dir, &so);
	ck_assert_msg(sec, "secondary open: %s", strerror(errno));
	ck_assert_uint_eq(read_all(sec, &w.id, 1), 20);
	ck_assert_int_eq(vr_log_append(sec, b.iov, 1, d, NULL, NULL), -EROFS);

	b.n = 0;
	for (int k = 0; k < 5; k++)
		batch_add(&b, &w, 80);
	append_ok(log, &b);
	ck_assert_int_eq(vr_log_catch_up(sec), 0);
	ck_assert_int_eq(vr_log_stream_get(sec, &w.id, &st), 0);
	ck_assert_uint_eq(st.last_lsn, 25);
	ck_assert_uint_eq(read_all(sec, &w.id, 1), 25);
	ck_assert_int_eq(vr_log_verify(sec, &w.id, NULL), 0);
	vr_log_close(sec);
	vr_log_close(log);
	vr_test_rmdir(sdir);
	vr_test_rmdir(dir);
}
END_TEST

/* Reader process: opens the log as a secondary and checks `expect` records of the WAL. */
static int
reader_process(const char *dir, const struct vr_stream_id *id, uint64_t expect)
{
	char *sdir = vr_test_tmpdir("sec");
	struct vr_log_opts so = {.secondary = true, .secondary_dir = sdir};
	struct vr_log *sec = vr_log_open(dir, &so);
	struct vr_log_stream st;
	uint64_t checked = 0;
	int ok;

	ok = sec && vr_log_stream_get(sec, id, &st) == 0 && st.last_lsn == expect &&
	     vr_log_verify(sec, id, &checked) == 0 && checked == expect;
	vr_log_close(sec);
	vr_test_rmdir(sdir);
	return ok ? 0 : 1;
}

START_TEST(secondary_reader_in_another_process)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w;
	int status;
	pid_t pid;

	vr_test_wal_init(&w, 4, 4, 4, 0, NULL);
	b.n = 0;
	for (int k = 0; k < 30; k++)
		batch_add(&b, &w, 120);
	append_ok(log, &b);
	/* The writer keeps the log open (and locked) while another process reads it. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(reader_process(dir, &w.id, 30));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader process failed");
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(second_writer_is_refused_busy)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);

	errno = 0;
	ck_assert_ptr_null(vr_log_open(dir, NULL));
	ck_assert_int_eq(errno, EBUSY);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(meta_put_get)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	char val[16];
	size_t n;

	ck_assert_int_eq(vr_log_meta_get(log, "nonce", 5, val, sizeof(val), &n), -ENOENT);
	ck_assert_int_eq(vr_log_meta_put(log, "nonce", 5, "0123456789", 10), 0);
	vr_log_close(log);
	log = open_log(dir);
	ck_assert_int_eq(vr_log_meta_get(log, "nonce", 5, val, 4, &n), -ENOBUFS);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(vr_log_meta_get(log, "nonce", 5, val, sizeof(val), &n), 0);
	ck_assert_mem_eq(val, "0123456789", 10);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(bad_arguments)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	struct vr_log_opts so = {.secondary = true};
	struct iovec iov = {0};
	unsigned nd = 5;

	ck_assert_int_eq(vr_log_append(log, NULL, 0, NULL, &nd, NULL), 0);
	ck_assert_uint_eq(nd, 0);
	ck_assert_int_eq(vr_log_append(log, &iov, 1, NULL, NULL, NULL), -EINVAL);
	errno = 0;
	ck_assert_ptr_null(vr_log_open(dir, &so));
	ck_assert_int_eq(errno, EINVAL);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

/*
 * Flips the last byte of the stored chunk of a WAL that starts at `first`: finds it through the
 * index (RocksDB, read-only) and changes the segment file under it.
 */
static void
tamper_chunk(const char *dir, const struct vr_stream_id *id, uint64_t first,
             void (*fn)(uint8_t *v, size_t n))
{
	const char *names[] = {"default", "wal", "streams", "meta"};
	const rocksdb_options_t *cfo[4];
	rocksdb_column_family_handle_t *cf[4];
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	char index[512], seg[512];
	uint8_t key[22], byte;
	uint64_t segid, off;
	uint32_t size;
	char *err = NULL, *v;
	size_t n;
	rocksdb_t *db;
	int fd;

	for (int i = 0; i < 4; i++)
		cfo[i] = o;
	snprintf(index, sizeof(index), "%s/index", dir);
	db = rocksdb_open_for_read_only_column_families(o, index, 4, names, cfo, cf, 0, &err);
	ck_assert_msg(!err, "%s", err);
	vr_stream_id_pack(id, key);
	vr_put_be64(key + 14, first);
	v = rocksdb_get_cf(db, ro, cf[1], (char *)key, 22, &n, &err);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, 32);
	segid = vr_get_be64((uint8_t *)v);
	off = vr_get_be64((uint8_t *)v + 8);
	size = vr_get_be32((uint8_t *)v + 16);
	rocksdb_free(v);
	for (int i = 0; i < 4; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	rocksdb_options_destroy(o);
	rocksdb_readoptions_destroy(ro);

	snprintf(seg, sizeof(seg), "%s/seg/%016llx.seg", dir, (unsigned long long)segid);
	fd = open(seg, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &byte, 1, (off_t)(off + size - 1)), 1);
	fn(&byte, 1);
	ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)(off + size - 1)), 1);
	close(fd);
}

static void
flip_last_byte(uint8_t *v, size_t n)
{
	v[n - 1] ^= 0x01;
}

START_TEST(stored_corruption_is_reported_not_skipped)
{
	char *dir = vr_test_tmpdir("log");
	struct vr_log *log = open_log(dir);
	static struct batch b;
	struct vr_test_wal w;
	struct vr_log_iter *it;
	struct vr_rec r;
	int rc, n = 0;

	vr_test_wal_init(&w, 8, 8, 8, 0, NULL);
	for (int call = 0; call < 3; call++) {
		b.n = 0;
		for (int k = 0; k < 4; k++)
			batch_add(&b, &w, 40);
		append_ok(log, &b);
	}
	vr_log_close(log);
	tamper_chunk(dir, &w.id, 5, flip_last_byte);

	log = open_log(dir);
	it = vr_log_iter_open(log, &w.id, 1);
	while ((rc = vr_log_iter_next(it, &r)) == 1)
		n++;
	vr_log_iter_close(it);
	ck_assert_int_eq(rc, -EUCLEAN);
	ck_assert_int_eq(n, 7); /* 1..4 fine, 5..7 fine, 8 is the flipped one */
	ck_assert_int_eq(vr_log_verify(log, &w.id, NULL), -EUCLEAN);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    append_and_read_many_streams,
	    own_records_are_finished_in_place_others_checked,
	    reopen_recovers_every_tail,
	    gap_is_refused_and_nothing_written,
	    repeat_is_refused_and_nothing_written,
	    broken_chain_is_refused_and_nothing_written,
	    bad_checksum_is_refused_and_nothing_written,
	    foreign_origin_is_refused_and_nothing_written,
	    late_seed_is_refused_and_nothing_written,
	    truncated_record_is_refused_and_nothing_written,
	    trailing_bytes_are_refused_and_nothing_written,
	    new_wal_must_start_with_its_seed,
	    concurrent_appends_are_coalesced_into_fewer_syncs,
	    racing_writers_of_one_wal_never_duplicate,
	    cursors_only_move_forward_and_survive_reopen,
	    members_come_from_the_latest_infrastructure_record,
	    trim_drops_acknowledged_chunks_and_keeps_chain_verifiable,
	    secondary_reader_follows_the_primary,
	    secondary_reader_in_another_process,
	    second_writer_is_refused_busy,
	    meta_put_get,
	    bad_arguments,
	    stored_corruption_is_reported_not_skipped,
	};

	return vr_test_run("logstore:log", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
