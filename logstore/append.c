// SPDX-License-Identifier: BSD-3-Clause
/*
 * Validated, durable append with group commit.
 *
 * An append goes through four steps; only steps 2 and 4 hold the store's mutex, and only for
 * table look-ups and pointer moves, so that the expensive work (CRC32C and SHA-256 over every
 * byte) runs in parallel across calling threads:
 *
 *   1. decode      every record (R1-R3) and group the records by stream, in call order;
 *   2. snapshot    under the mutex, copy each stream's tail (last accepted LSN and entropy, and a
 *                  generation number);
 *   3. validate    W1-W4 against the snapshot: LSN order, entropy chain, origin, seed (or,
 *                  for the records this site originates, finish them: vr_log_append_as);
 *   4. reserve     under the mutex, check that no other call moved those tails meanwhile (else
 *                  go back to 2), move them, and join the commit queue.
 *
 * Commit (leader/follower, as in RocksDB's own write groups and SQLite's WAL): the first queued
 * caller that finds no leader becomes the leader, takes the whole queue, builds one RocksDB
 * write batch from it and writes it with sync; meanwhile new callers queue up behind it, so the
 * slower the disk, the larger the next group. The queue is FIFO and tails were moved in queue
 * order, so a durable write never leaves a gap in a WAL and a stream's row in the batch ends
 * with its latest state.
 *
 *   caller:  queued ──(no leader)──► leader ──write+sync──► done (all of the group)
 *              │                                  ▲
 *              └──────(another leader takes it)───┘
 *
 * A failed write fails the whole group and every later call: the tails in memory are then ahead
 * of the disk, and only reopening (which reloads them from the rows) makes them true again.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "vr_msg.h"
#include "log_impl.h"

enum { MAX_FRAME_BYTES = 64u << 20 };

/* What step 3 needs of each record, kept small: calls carry thousands of records. */
struct slim {
	uint64_t lsn;
	uint32_t next; /* next record of the same group, or UINT32_MAX */
	uint16_t origin;
	uint8_t type, op;
};

static void
set_sticky(struct vr_log *log, int rc)
{
	if (!log->sticky) {
		__atomic_store_n(&log->sticky, rc, __ATOMIC_RELEASE);
		vr_err("logstore", "store is now in error state (%s): appends refused until reopen",
		       strerror(-rc));
	}
}

/* Step 1. */
static int
decode_all(uint16_t site, const struct iovec *recs, unsigned n, struct slim *slim,
           struct group *groups, unsigned *n_groups, unsigned *bad)
{
	struct group *table = NULL, *g = NULL;
	struct vr_rec r;
	unsigned ng = 0;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		uint8_t key[VR_STREAM_ID_SIZE];

		if (site && vr_rec_peek_primary(recs[i].iov_base, recs[i].iov_len) == site)
			rc = vr_rec_decode_unfinished(recs[i].iov_base, recs[i].iov_len, &r);
		else
			rc = vr_rec_decode(recs[i].iov_base, recs[i].iov_len, &r);
		if (rc >= 0 && (size_t)rc != recs[i].iov_len)
			rc = -VR_REC_ERR_SIZE; /* trailing bytes: one record per iovec */
		if (rc < 0) {
			*bad = i;
			HASH_CLEAR(hh, table);
			return rc;
		}
		vr_stream_id_pack(&r.stream, key);
		if (!g || memcmp(g->key, key, sizeof(key))) {
			HASH_FIND(hh, table, key, sizeof(key), g);
			if (!g) {
				g = &groups[ng];
				memset(g, 0, sizeof(*g));
				memcpy(g->key, key, sizeof(key));
				g->id = r.stream;
				g->first = i;
				HASH_ADD(hh, table, key, sizeof(g->key), g);
				ng++;
			} else {
				slim[g->last].next = i;
			}
		} else {
			slim[g->last].next = i;
		}
		slim[i] = (struct slim){
		    .lsn = r.lsn,
		    .next = UINT32_MAX,
		    .origin = r.origin,
		    .type = r.type,
		    .op = r.op,
		};
		g->last = i;
		g->n++;
	}
	HASH_CLEAR(hh, table);
	*n_groups = ng;
	return 0;
}

/* Step 2. */
static int
snapshot(struct vr_log *log, struct group *groups, unsigned ng)
{
	int rc;

	pthread_mutex_lock(&log->mu);
	rc = log->sticky;
	for (unsigned k = 0; !rc && k < ng; k++) {
		struct group *g = &groups[k];
		struct stream *st;

		HASH_FIND(hh, log->streams, g->key, VR_STREAM_ID_SIZE, st);
		g->st = st;
		if (st) {
			g->snap_gen = st->gen;
			g->snap_lsn = st->tail_lsn;
			memcpy(g->snap_entropy, st->tail_entropy, VR_REC_ENTROPY_SIZE);
			g->n_members = st->n_members;
			memcpy(g->members, st->members, sizeof(g->members));
		} else {
			g->n_members = 0;
			g->snap_gen = 0;
			g->snap_lsn = 0;
		}
	}
	pthread_mutex_unlock(&log->mu);
	return rc;
}

/*
 * Step 3: W1-W4 for one group, against its snapshot. The records of a stream whose primary is
 * `site` are unfinished: they get their entropy and checksum here instead of having them checked.
 */
static int
validate_group(uint16_t site, struct group *g, const struct iovec *recs, const struct slim *slim,
               unsigned *bad)
{
	bool finish = site && g->id.primary == site;
	uint8_t prev[VR_REC_ENTROPY_SIZE];
	uint64_t prev_lsn = g->snap_lsn;

	if (g->st)
		memcpy(prev, g->snap_entropy, sizeof(prev));
	else
		vr_rec_genesis(&g->id, prev);

	for (uint32_t i = g->first; i != UINT32_MAX; i = slim[i].next) {
		const struct slim *s = &slim[i];
		const uint8_t *raw = recs[i].iov_base;
		uint8_t e[VR_REC_ENTROPY_SIZE];
		int rc = 0;
		bool seed = s->type == VR_REC_INFRA && s->op == VR_REC_OP_SEED;

		if (s->origin != g->id.primary)
			rc = -VR_REC_ERR_ORIGIN;
		else if (s->lsn > prev_lsn + 1)
			rc = -VR_REC_ERR_GAP;
		else if (s->lsn <= prev_lsn)
			rc = -VR_REC_ERR_STALE;
		else if ((s->lsn == 1) != seed)
			rc = -VR_REC_ERR_SEED;
		if (!rc && finish) {
			vr_rec_finish(recs[i].iov_base, recs[i].iov_len, prev, e);
		} else if (!rc) {
			vr_rec_entropy(prev, raw, recs[i].iov_len, e);
			if (memcmp(e, raw + 4, sizeof(e)))
				rc = -VR_REC_ERR_CHAIN;
		}
		if (rc) {
			*bad = i;
			return rc;
		}
		memcpy(prev, e, sizeof(prev));
		prev_lsn = s->lsn;
	}
	g->last_lsn = prev_lsn;
	memcpy(g->last_entropy, prev, sizeof(prev));
	return 0;
}

/*
 * The stream row for a validated group: its last record's LSN and entropy, and the members named
 * by the WAL's latest infrastructure record (seed or membership change: data and hsm records
 * name none), from this group or else from before it.
 */
static void
build_row(struct group *g, const struct iovec *recs, const struct slim *slim)
{
	unsigned infra = UINT32_MAX;

	for (uint32_t i = g->first; i != UINT32_MAX; i = slim[i].next)
		if (slim[i].type == VR_REC_INFRA)
			infra = i;
	if (infra != UINT32_MAX) {
		struct vr_rec r;

		/* Decoded once in step 1 (its checksum too, where it had one): cannot fail. */
		vr_rec_decode_unfinished(recs[infra].iov_base, recs[infra].iov_len, &r);
		g->n_members = r.n_members;
		memcpy(g->members, r.members, sizeof(g->members));
	}
	vr_log_row_encode(g->row, &g->row_size, g->last_lsn, g->last_entropy, g->n_members,
	                  g->members);
}

/* Step 4: 0 if reserved, 1 if another call moved a tail (retry), or the sticky error. */
static int
reserve(struct vr_log *log, struct group *groups, unsigned ng)
{
	int rc;

	rc = log->sticky;
	if (rc)
		return rc;
	for (unsigned k = 0; k < ng; k++) {
		struct group *g = &groups[k];
		struct stream *st;

		HASH_FIND(hh, log->streams, g->key, VR_STREAM_ID_SIZE, st);
		if (st != g->st || (st && st->gen != g->snap_gen))
			return 1;
	}
	for (unsigned k = 0; k < ng; k++) {
		struct group *g = &groups[k];
		struct stream *st = g->st;

		if (!st) {
			st = g->fresh;
			g->fresh = NULL;
			memcpy(st->key, g->key, VR_STREAM_ID_SIZE);
			HASH_ADD(hh, log->streams, key, VR_STREAM_ID_SIZE, st);
			g->st = st;
		}
		st->tail_lsn = g->last_lsn;
		memcpy(st->tail_entropy, g->last_entropy, VR_REC_ENTROPY_SIZE);
		st->n_members = g->n_members;
		memcpy(st->members, g->members, sizeof(st->members));
		st->gen++;
	}
	return 0;
}

/*
 * Leader, without the mutex: one frame for every queued request, written and synced to the
 * current segment; then its index entries, stream rows and checkpoint in one RocksDB write that
 * needs no sync of its own (the frame is the durable copy; recovery re-indexes it).
 */
static int
write_group(struct vr_log *log, struct commit_req *reqs)
{
	/*
	 * RocksDB counts every key comparison in a thread-local perf context unless the thread's
	 * perf level says not to: two thread-local look-ups (a call each, in a shared library) per
	 * comparison of the memtable inserts, which nothing here reads.
	 */
	static __thread bool perf_off;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	char *err = NULL;
	int rc;

	if (!perf_off) {
		rocksdb_set_perf_level(rocksdb_disable);
		perf_off = true;
	}
	rc = vr_seg_commit(log, reqs, wb);
	if (!rc) {
		rocksdb_write(log->db, log->wo_async, wb, &err);
		rc = vr_log_rdb_err("rocksdb_write(index)", err);
	}
	if (!rc) {
		size_t bytes = 0;

		for (struct commit_req *q = reqs; q; q = q->next)
			bytes += q->bytes;
		vr_log_rows_written(log, bytes);
	}
	rocksdb_writebatch_destroy(wb);
	return rc;
}

/* Queue req (mutex held) and return once it is durable or failed. */
static int
commit(struct vr_log *log, struct commit_req *req)
{
	*log->q_tail = req;
	log->q_tail = &req->next;

	while (!req->done) {
		struct commit_req *taken;
		int rc;

		if (log->leader_busy) {
			pthread_cond_wait(&log->cv, &log->mu);
			continue;
		}
		/*
		 * Take the queue, up to a frame of MAX_FRAME_BYTES (at least one request): bounds
		 * the staging buffer and the latency a huge group would add to the small ones
		 * behind it.
		 */
		log->leader_busy = true;
		taken = log->q_head;
		{
			struct commit_req *last = taken;
			size_t bytes = last->bytes + last->mark_bytes;

			while (last->next && bytes + last->next->bytes + last->next->mark_bytes <=
			                         MAX_FRAME_BYTES) {
				last = last->next;
				bytes += last->bytes + last->mark_bytes;
			}
			log->q_head = last->next;
			if (!log->q_head)
				log->q_tail = &log->q_head;
			last->next = NULL;
		}
		pthread_mutex_unlock(&log->mu);

		rc = write_group(log, taken);

		pthread_mutex_lock(&log->mu);
		if (rc)
			set_sticky(log, rc);
		else
			log->stats.commits++;
		for (struct commit_req *q = taken, *next; q; q = next) {
			next = q->next;
			for (unsigned k = 0; !rc && k < q->n_groups; k++) {
				struct stream *st = q->groups[k].st;

				if (q->groups[k].last_lsn > st->durable_lsn)
					st->durable_lsn = q->groups[k].last_lsn;
			}
			if (!rc) {
				log->stats.appends++;
				log->stats.records += q->n_records;
				log->stats.bytes += q->bytes;
			}
			q->status = rc;
			q->done = true;
		}
		log->leader_busy = false;
		pthread_cond_broadcast(&log->cv);
	}
	return req->status;
}

int
vr_log_append(struct vr_log *log, const struct iovec *recs, unsigned n,
              struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad)
{
	return vr_log_append_as(log, 0, recs, n, durable, n_durable, bad);
}

int
vr_log_append_as(struct vr_log *log, uint16_t site, const struct iovec *recs, unsigned n,
                 struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad)
{
	return vr_log_append_marked(log, site, recs, n, NULL, 0, durable, n_durable, bad);
}

int
vr_log_append_marked(struct vr_log *log, uint16_t site, const struct iovec *recs, unsigned n,
                     const struct vr_log_mark *marks, unsigned n_marks,
                     struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad)
{
	struct commit_req req = {0};
	struct slim *slim = NULL;
	struct group *groups = NULL;
	unsigned ng = 0, unused;
	int rc;

	if (n_durable)
		*n_durable = 0;
	if (!bad)
		bad = &unused;
	if (log->secondary)
		return -EROFS;
	if (n == 0)
		return vr_log_error(log);
	if (!recs || !durable || n > INT_MAX / 2 || (n_marks && !marks))
		return -EINVAL;
	if (n_marks > VR_LOG_MAX_MARKS)
		return -E2BIG;
	for (unsigned i = 0; i < n_marks; i++) {
		const struct vr_log_mark *m = &marks[i];

		if (!m->key || !m->key_size || m->key_size > VR_LOG_MAX_MARK_KEY ||
		    m->val_size > VR_LOG_MAX_MARK_VAL || (m->val_size && !m->val))
			return -EINVAL;
		req.mark_bytes += VR_LOG_MARK_HDR + m->key_size + m->val_size;
	}
	req.marks = marks;
	req.n_marks = n_marks;

	slim = malloc(n * sizeof(*slim));
	groups = malloc(n * sizeof(*groups));
	req.parts = malloc(n * sizeof(*req.parts));
	req.part_sizes = malloc(n * sizeof(*req.part_sizes));
	rc = -ENOMEM;
	if (!slim || !groups || !req.parts || !req.part_sizes)
		goto out;

	rc = decode_all(site, recs, n, slim, groups, &ng, bad);
	if (rc)
		goto out;

	/* Lay out each group's records contiguously in the part arrays (chunk = one value). */
	for (unsigned k = 0, off = 0; k < ng; k++) {
		struct group *g = &groups[k];
		unsigned j = off;

		g->off = off;
		for (uint32_t i = g->first; i != UINT32_MAX; i = slim[i].next, j++) {
			req.parts[j] = recs[i].iov_base;
			req.part_sizes[j] = recs[i].iov_len;
			g->bytes += recs[i].iov_len;
		}
		off += g->n;
		req.bytes += g->bytes;
		g->fresh = NULL;
		if (req.bytes > VR_LOG_MAX_APPEND_BYTES) {
			rc = -E2BIG;
			goto out;
		}
		vr_log_chunk_key(g->chunk_key, g->key, slim[g->first].lsn);
	}

	for (;;) {
		rc = snapshot(log, groups, ng);
		if (rc)
			goto out;
		for (unsigned k = 0; k < ng; k++) {
			rc = validate_group(site, &groups[k], recs, slim, bad);
			if (rc)
				goto out;
			build_row(&groups[k], recs, slim);
			if (!groups[k].st && !groups[k].fresh) {
				groups[k].fresh = calloc(1, sizeof(struct stream));
				if (!groups[k].fresh) {
					rc = -ENOMEM;
					goto out;
				}
			}
		}
		pthread_mutex_lock(&log->mu);
		rc = reserve(log, groups, ng);
		if (rc != 1)
			break;
		pthread_mutex_unlock(&log->mu);
	}
	if (rc) {
		pthread_mutex_unlock(&log->mu);
		goto out;
	}

	req.groups = groups;
	req.n_groups = ng;
	req.n_records = n;
	rc = commit(log, &req);
	pthread_mutex_unlock(&log->mu);
	if (rc)
		goto out;

	for (unsigned k = 0; k < ng; k++) {
		durable[k].stream = groups[k].id;
		durable[k].lsn = groups[k].last_lsn;
	}
	if (n_durable)
		*n_durable = ng;

out:
	if (rc) {
		bool refused = rc != -ENOMEM && rc != vr_log_error(log);

		pthread_mutex_lock(&log->mu);
		if (refused)
			log->stats.rejected++;
		else
			log->stats.failed++;
		pthread_mutex_unlock(&log->mu);
	}
	for (unsigned k = 0; groups && k < ng; k++)
		free(groups[k].fresh);
	free(req.part_sizes);
	free(req.parts);
	free(groups);
	free(slim);
	return rc;
}

void
vr_log_stats_get(struct vr_log *log, struct vr_log_stats *out)
{
	pthread_mutex_lock(&log->mu);
	*out = log->stats;
	pthread_mutex_unlock(&log->mu);
}
