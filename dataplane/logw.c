/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The log writer: the only thread that writes the dataplane's WAL database. It takes jobs from
 * dp->log_ring (many producers: the workers), appends every record job it has in one
 * vr_log_append (group commit: one write and one fdatasync for all of them), persists nonce
 * reservations with vr_log_meta_put, and hands each job back with its status on the completion
 * ring of the worker that owns the job's stream. When the ring is empty it sleeps a little
 * (adaptive, bounded by [idle] max_sleep_us), because waking it costs less than a core spinning
 * beside two sites.
 *
 * A failed write or sync of the log stops the dataplane (fail-stop). The store refuses every
 * append after one (vr_log.h), and what the kernel kept of a write whose fdatasync failed is not
 * known (PostgreSQL came to the same rule in 2018: after a failed fsync, crash and recover from
 * the log, never retry the sync). So the log writer says why, sets quit, and main exits with
 * DP_EXIT_LOG; whatever started it again (systemd's Restart=on-failure on an appliance) gets a
 * process that reopens the log, cuts what was never reported durable, and carries on from the
 * producers' marks: a frame nacked by the failure is taken when its producer sends it again,
 * one logged before is acked. Meanwhile every frame of a failed batch is nacked with the errno.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>

#include "dp.h"
#include "vr_crc.h"
#include "vr_msg.h"

enum {
	LOGW_BURST = 256,
	LOGW_MAX_RECS = 65536,
	LOGW_MARK_SLOTS = 2 * LOGW_MAX_RECS, /* open addressing, at most half full */
};

/* What one append call is built in, allocated once. */
struct logw_bufs {
	struct iovec *iov;
	struct vr_log_durable *dur;
	struct vr_log_mark *marks;
	struct dp_producer_mark *kv;
	uint32_t *slots; /* marks_last's table: LOGW_MARK_SLOTS, 0 = free, else mark index + 1 */
	uint32_t *used;  /* the slots it filled, to free them after */
};

static pthread_t logw_tid;

static struct dp_nonce_key {
	char tag;
	uint8_t stream[VR_STREAM_ID_SIZE];
	uint8_t key_id[4];
} __attribute__((packed)) nonce_key(const struct dp_stream *st, uint32_t key_id)
{
	struct dp_nonce_key k = {.tag = 'n'};

	vr_stream_id_pack(&st->id, k.stream);
	vr_put_be32(k.key_id, key_id);
	return k;
}

/* Each job to the worker that owns its stream. */
static void
hand_back(struct dp *dp, struct dp_job **jobs, unsigned n)
{
	/* A done ring is as large as the job pool: it cannot stay full. */
	for (unsigned i = 0; i < n; i++)
		while (rte_ring_sp_enqueue(dp->done_ring[jobs[i]->st->worker], jobs[i]))
			rte_pause();
}

/* Fills a catch-up job with the stored records from j->read_from, as many as a batch holds. */
static void
read_job(struct dp *dp, struct dp_job *j)
{
	struct vr_log_iter *it = vr_log_iter_open(dp->log, &j->st->id, j->read_from);
	struct vr_rec r;
	int rc = 0;

	j->n = 0;
	j->bytes = 0;
	if (!it) {
		j->status = -errno;
		return;
	}
	while (j->n < dp->job_acks && (rc = vr_log_iter_next(it, &r)) == 1) {
		if (r.lsn < j->read_from)
			continue;
		if (j->bytes + r.raw_size > dp->job_bytes)
			break;
		if (!j->n)
			j->first_lsn = r.lsn;
		memcpy(j->data + j->bytes, r.raw, r.raw_size);
		j->bytes += r.raw_size;
		j->last_lsn = r.lsn;
		j->n++;
	}
	vr_log_iter_close(it);
	j->status = rc < 0 ? rc : 0;
}

/*
 * The members' acks of an origin stream (a put each), then, once they are [log] trim_records
 * past the last trim, a trim of the log below the lowest: a trim reads and deletes ranges of
 * the index, far dearer than a put, so it is worth doing only for many records at once.
 */
static void
save_cursors(struct dp *dp, struct dp_job *j)
{
	struct dp_stream *st = j->st;
	uint64_t low = UINT64_MAX, trim = atomic_load_explicit(&st->trim_lsn, memory_order_relaxed);
	int rc = 0;

	for (unsigned m = 0; m < j->n && !rc; m++) {
		uint64_t acked = vr_get_be64(j->data + 8 * m);

		rc = vr_log_cursor_set(dp->log, &st->id, st->members[m].site, acked);
		low = RTE_MIN(low, acked);
	}
	if (!rc && j->n && low >= trim + dp->conf.trim_records) {
		rc = vr_log_trim(dp->log, &st->id, &trim);
		if (!rc)
			atomic_store_explicit(&st->trim_lsn, trim, memory_order_relaxed);
	}
	j->status = rc;
}

/*
 * The marks of an origin job: for each producer, its last frame in the job and that frame's LSN
 * (the last of a run of its frames is enough: acks are cumulative), durable with the records
 * themselves, so that a restarted dataplane knows what each producer's retransmits are.
 * Control's own records (port 0) have no producer.
 */
static unsigned
job_marks(const struct dp_job *j, struct vr_log_mark *marks, struct dp_producer_mark *kv)
{
	unsigned n = 0;

	for (unsigned i = 0; i < j->n; i++) {
		const struct dp_ackto *a = &j->acks[i];

		if (!a->port ||
		    (i + 1 < j->n && j->acks[i + 1].producer == a->producer && j->acks[i + 1].port))
			continue;
		dp_producer_mark(&kv[n], &j->st->id, a->producer, a->producer_seq,
		                 j->first_lsn + i);
		marks[n] = (struct vr_log_mark){.key = kv[n].key,
		                                .key_size = sizeof(kv[n].key),
		                                .val = kv[n].val,
		                                .val_size = sizeof(kv[n].val)};
		n++;
	}
	return n;
}

/*
 * Keeps, of the marks with the same key, the last one (in order): the log takes a later mark
 * over an earlier one anyway, and each mark is a row in its index. A job is one batch, so a
 * stream of small batches makes as many marks per call as it has jobs in it, all for the same
 * producer (at 100 000 frames/s over 100 streams, that was 12 % of a core).
 */
static unsigned
marks_last(struct vr_log_mark *m, unsigned n, const struct logw_bufs *b)
{
	unsigned kept = 0, n_used = 0;

	for (unsigned i = n; i-- > 0;) {
		uint32_t h = vr_crc32c(m[i].key, m[i].key_size) & (LOGW_MARK_SLOTS - 1);

		for (;; h = (h + 1) & (LOGW_MARK_SLOTS - 1)) {
			const struct vr_log_mark *o;

			if (!b->slots[h]) {
				b->slots[h] = i + 1;
				b->used[n_used++] = h;
				break;
			}
			o = &m[b->slots[h] - 1];
			if (o->key_size == m[i].key_size &&
			    !memcmp(o->key, m[i].key, o->key_size)) {
				m[i].key = NULL; /* superseded */
				break;
			}
		}
	}
	for (unsigned i = 0; i < n_used; i++)
		b->slots[b->used[i]] = 0;
	for (unsigned i = 0; i < n; i++)
		if (m[i].key)
			m[kept++] = m[i];
	return kept;
}

/* A group commit took `ticks`: into the histogram `stats` gives (commit_log2_us). */
static void
commit_time(struct dp *dp, uint64_t ticks)
{
	uint64_t us = ticks * 1000000 / dp->hz;

	dp_count(&dp->commit_hist[dp_hist_bucket(us)], 1);
	if (us > atomic_load_explicit(&dp->commit_max_us, memory_order_relaxed))
		atomic_store_explicit(&dp->commit_max_us, us, memory_order_relaxed);
}

static void
write_jobs(struct dp *dp, struct dp_job **jobs, unsigned n, const struct logw_bufs *b)
{
	struct iovec *iov = b->iov;
	unsigned nrec = 0, ndur = 0, bad = 0, first = 0, nmarks = 0;
	uint64_t t0;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		struct dp_job *j = jobs[i];

		if (j->kind == DP_JOB_READ) {
			read_job(dp, j);
			continue;
		}
		if (j->kind == DP_JOB_CURSOR) {
			save_cursors(dp, j);
			continue;
		}
		if (j->kind == DP_JOB_RESERVE) {
			struct dp_nonce_key k = nonce_key(j->st, j->key->id);
			uint8_t v[8];

			vr_put_be64(v, j->reserve_limit);
			j->status = vr_log_meta_put(dp->log, &k, sizeof(k), v, sizeof(v));
			continue;
		}
		for (uint8_t *p = j->data; p < j->data + j->bytes;) {
			int sz = vr_rec_span(p, (size_t)(j->data + j->bytes - p));

			/* Cannot fail: the worker encoded or decoded them; the log checks them. */
			if (sz <= 0)
				break;
			iov[nrec++] = (struct iovec){.iov_base = p, .iov_len = (size_t)sz};
			p += sz;
		}
		if (j->origin)
			nmarks += job_marks(j, b->marks + nmarks, b->kv + nmarks);
	}
	if (!nrec)
		return;
	nmarks = marks_last(b->marks, nmarks, b);
	/* This site's own records arrive unfinished: the log chains them, checks the rest. */
	t0 = rte_rdtsc();
	rc = vr_log_append_marked(dp->log, dp->conf.site, iov, nrec, b->marks, nmarks, b->dur,
	                          &ndur, &bad);
	commit_time(dp, rte_rdtsc() - t0);
	if (rc == 0) {
		for (unsigned i = 0; i < n; i++)
			if (jobs[i]->kind == DP_JOB_RECORDS)
				jobs[i]->status = 0;
		return;
	}
	if (rc > 0 || rc == -EINVAL)
		rc = -EIO;
	/*
	 * A validation error names one record: fail its job and retry the others alone, so that
	 * one stream's bad job (a receiver's stale batch after a reset) never fails the rest.
	 */
	if (bad < nrec && n > 1) {
		for (unsigned i = 0; i < n; i++) {
			struct dp_job *j = jobs[i];
			unsigned cnt = j->kind == DP_JOB_RECORDS ? j->n : 0;

			if (!cnt)
				continue;
			if (bad >= first && bad < first + cnt)
				j->status = rc;
			first += cnt;
		}
		for (unsigned i = 0; i < n; i++)
			if (jobs[i]->kind == DP_JOB_RECORDS && jobs[i]->status != rc)
				write_jobs(dp, jobs + i, 1, b);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (jobs[i]->kind == DP_JOB_RECORDS)
			jobs[i]->status = rc;
}

/* Once the log is in its sticky error state: stop the process (the comment at the top). */
static void
fail_stop(struct dp *dp)
{
	int rc = vr_log_error(dp->log), none = 0;

	if (!rc || !atomic_compare_exchange_strong(&dp->log_error, &none, rc))
		return;
	vr_err("dataplane",
	       "the log failed (%s): stopping, so that a restart recovers it from its last durable "
	       "frame (exit %d)",
	       strerror(-rc), DP_EXIT_LOG);
	atomic_store(&dp->quit, true);
}

static void *
logw_main(void *arg)
{
	struct dp *dp = arg;
	struct dp_job *jobs[LOGW_BURST];
	struct logw_bufs b = {
	    .iov = calloc(LOGW_MAX_RECS, sizeof(*b.iov)),
	    .dur = calloc(LOGW_MAX_RECS, sizeof(*b.dur)),
	    .marks = calloc(LOGW_MAX_RECS, sizeof(*b.marks)),
	    .kv = calloc(LOGW_MAX_RECS, sizeof(*b.kv)),
	    .slots = calloc(LOGW_MARK_SLOTS, sizeof(*b.slots)),
	    .used = calloc(LOGW_MAX_RECS, sizeof(*b.used)),
	};
	unsigned idle_us = 0;

	if (!b.iov || !b.dur || !b.marks || !b.kv || !b.slots || !b.used) {
		vr_err("dataplane", "log writer: out of memory");
		atomic_store(&dp->quit, true);
		goto out;
	}
	/* Until the worker has stopped (its last jobs are the clean stop's cursors) and all done.
	 */
	while (!atomic_load_explicit(&dp->logw_quit, memory_order_relaxed) ||
	       rte_ring_count(dp->log_ring)) {
		unsigned n = 0, nrec = 0;

		fail_stop(dp); /* whoever's call failed: the log's state is the store's */
		/* As many jobs as fit one append call. */
		while (n < LOGW_BURST) {
			struct dp_job *j;

			if (rte_ring_dequeue(dp->log_ring, (void **)&j))
				break;
			jobs[n++] = j;
			j->status = -EINPROGRESS;
			nrec += j->kind == DP_JOB_RECORDS ? j->n : 0;
			if (nrec + VR_WIRE_MAX_RECORDS > LOGW_MAX_RECS)
				break;
		}
		if (!n) {
			struct timespec ts;

			idle_us = idle_us ? idle_us * 2 : 5;
			if (idle_us > 200)
				idle_us = 200;
			ts = (struct timespec){.tv_nsec = (long)idle_us * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		idle_us = 0;
		write_jobs(dp, jobs, n, &b);
		hand_back(dp, jobs, n);
	}
out:
	free(b.iov);
	free(b.dur);
	free(b.marks);
	free(b.kv);
	free(b.slots);
	free(b.used);
	return NULL;
}

int
dp_logw_start(struct dp *dp)
{
	int rc = pthread_create(&logw_tid, NULL, logw_main, dp);

	if (!rc)
		pthread_setname_np(logw_tid, "vr-logw");
	return -rc;
}

void
dp_logw_stop(struct dp *dp)
{
	atomic_store(&dp->logw_quit, true);
	pthread_join(logw_tid, NULL);
}

int
dp_nonce_persisted(struct dp *dp, const struct dp_stream *st, uint32_t key_id, uint64_t *limit)
{
	struct dp_nonce_key k = nonce_key(st, key_id);
	uint8_t v[8];
	size_t n;
	int rc = vr_log_meta_get(dp->log, &k, sizeof(k), v, sizeof(v), &n);

	if (rc == -ENOENT) {
		*limit = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (n != 8)
		return -EUCLEAN;
	*limit = vr_get_be64(v);
	return 0;
}

int
dp_nonce_persist(struct dp *dp, const struct dp_stream *st, uint32_t key_id, uint64_t limit)
{
	struct dp_nonce_key k = nonce_key(st, key_id);
	uint8_t v[8];

	vr_put_be64(v, limit);
	return vr_log_meta_put(dp->log, &k, sizeof(k), v, sizeof(v));
}

void
dp_producer_mark(struct dp_producer_mark *m, const struct vr_stream_id *id, uint32_t producer,
                 uint64_t seq, uint64_t lsn)
{
	m->key[0] = 'P';
	vr_stream_id_pack(id, m->key + 1);
	vr_put_be32(m->key + 1 + VR_STREAM_ID_SIZE, producer);
	vr_put_be64(m->val, seq);
	vr_put_be64(m->val + 8, lsn);
}

/* Keeps the DP_PRODUCERS marks of highest LSN (the producers heard from last). */
static int
load_mark(const void *key, size_t key_size, const void *val, size_t val_size, void *arg)
{
	struct dp_stream *st = arg;
	struct dp_producer p, *slot = &st->prod[0];

	if (key_size != sizeof(((struct dp_producer_mark *)0)->key) || val_size != 16)
		return -EUCLEAN;
	p = (struct dp_producer){
	    .id = vr_get_be32((const uint8_t *)key + 1 + VR_STREAM_ID_SIZE),
	    .seq = vr_get_be64(val),
	    .durable_lsn = vr_get_be64((const uint8_t *)val + 8),
	};
	if (!p.seq || !p.durable_lsn || p.durable_lsn > st->durable_lsn)
		return -EUCLEAN; /* a mark rides on its records: never ahead of them */
	p.logged_seq = p.durable_seq = p.seq;
	for (unsigned k = 1; k < DP_PRODUCERS; k++)
		if (st->prod[k].durable_lsn < slot->durable_lsn)
			slot = &st->prod[k];
	if (p.durable_lsn > slot->durable_lsn)
		*slot = p;
	return 0;
}

int
dp_producers_load(struct dp *dp, struct dp_stream *st)
{
	struct dp_producer_mark m;

	dp_producer_mark(&m, &st->id, 0, 0, 0);
	return vr_log_meta_foreach(dp->log, m.key, 1 + VR_STREAM_ID_SIZE, load_mark, st);
}
