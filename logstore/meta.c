// SPDX-License-Identifier: BSD-3-Clause
/*
 * Replication cursors and retention (trim).
 *
 * Trim removes whole chunks below the lowest LSN every member has acknowledged, and keeps the
 * entropy of the last removed record as the WAL's chain anchor (meta 't' || stream), so that
 * vr_log_verify can still check the chain from the first remaining record. The index delete,
 * the new anchor and the segments' trimmed-byte counters go in one synced write: after a crash
 * either all happened or none. The latest chunk is always kept, so a WAL's tail stays readable.
 * A segment file is deleted once every record in it is trimmed (segment.c, vr_seg_collect).
 * Not built: relocating the live chunks of a mostly trimmed segment (a WAL that is never
 * acknowledged keeps its segments, and the segments it shares with others, on disk).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vr_msg.h"
#include "log_impl.h"

static void
cursor_key(uint8_t out[1 + VR_STREAM_ID_SIZE + 2], const struct vr_stream_id *id, uint16_t member)
{
	out[0] = META_CURSOR;
	vr_stream_id_pack(id, out + 1);
	vr_put_be16(out + 1 + VR_STREAM_ID_SIZE, member);
}

static int
cursor_read(struct vr_log *log, const uint8_t *key, size_t key_size, uint64_t *lsn)
{
	char *err = NULL;
	size_t vsize;
	char *v;

	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_META], (const char *)key, key_size, &vsize,
	                   &err);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(meta)", err);
	*lsn = 0;
	if (!v)
		return 0;
	if (vsize != 8) {
		rocksdb_free(v);
		return -EUCLEAN;
	}
	*lsn = vr_get_be64((uint8_t *)v);
	rocksdb_free(v);
	return 0;
}

int
vr_log_cursor_get(struct vr_log *log, const struct vr_stream_id *id, uint16_t member, uint64_t *lsn)
{
	uint8_t key[1 + VR_STREAM_ID_SIZE + 2];

	cursor_key(key, id, member);
	return cursor_read(log, key, sizeof(key), lsn);
}

int
vr_log_cursor_set(struct vr_log *log, const struct vr_stream_id *id, uint16_t member, uint64_t lsn)
{
	uint8_t key[1 + VR_STREAM_ID_SIZE + 2], val[8];
	char *err = NULL;
	uint64_t cur;
	int rc;

	if (log->secondary)
		return -EROFS;
	if ((rc = vr_log_error(log)))
		return rc;
	cursor_key(key, id, member);
	pthread_mutex_lock(&log->meta_mu);
	rc = cursor_read(log, key, sizeof(key), &cur);
	if (!rc && lsn > cur) {
		vr_put_be64(val, lsn);
		rocksdb_put_cf(log->db, log->wo_async, log->cf[CF_META], (const char *)key,
		               sizeof(key), (const char *)val, sizeof(val), &err);
		rc = vr_log_rdb_err("rocksdb_put_cf(meta)", err);
	}
	pthread_mutex_unlock(&log->meta_mu);
	return rc;
}

/* Entropy of record lsn, read from the chunk that holds it. */
static int
entropy_at(struct vr_log *log, const uint8_t skey[VR_STREAM_ID_SIZE], uint64_t lsn,
           uint8_t out[VR_REC_ENTROPY_SIZE])
{
	struct vr_stream_id id;
	struct vr_log_iter *it;
	struct vr_rec r;
	int rc;

	vr_stream_id_unpack(skey, &id);
	it = vr_log_iter_open(log, &id, lsn);
	if (!it)
		return -errno;
	rc = vr_log_iter_next(it, &r);
	if (rc == 1 && r.lsn == lsn) {
		memcpy(out, r.entropy, VR_REC_ENTROPY_SIZE);
		rc = 0;
	} else if (rc >= 0) {
		rc = -EUCLEAN;
	}
	vr_log_iter_close(it);
	return rc;
}

/* First LSN of the chunk that holds lsn (the last chunk starting at or before it); 0 if none. */
static int
chunk_start(struct vr_log *log, const uint8_t skey[VR_STREAM_ID_SIZE], uint64_t lsn,
            uint64_t *first)
{
	uint8_t seek[CHUNK_KEY_SIZE];
	rocksdb_iterator_t *it;
	char *err = NULL;

	vr_log_chunk_key(seek, skey, lsn);
	it = rocksdb_create_iterator_cf(log->db, log->ro, log->cf[CF_WAL]);
	rocksdb_iter_seek_for_prev(it, (const char *)seek, sizeof(seek));
	*first = 0;
	if (rocksdb_iter_valid(it)) {
		size_t ksize;
		const char *k = rocksdb_iter_key(it, &ksize);

		if (ksize == CHUNK_KEY_SIZE && !memcmp(k, skey, VR_STREAM_ID_SIZE))
			*first = vr_get_be64((const uint8_t *)k + VR_STREAM_ID_SIZE);
	} else {
		rocksdb_iter_get_error(it, &err);
	}
	rocksdb_iter_destroy(it);
	return vr_log_rdb_err("rocksdb_iter(wal)", err);
}

struct seg_bytes {
	uint64_t seg, bytes;
};

/* Record bytes per segment of the chunks in [from, to): what a trim makes dead. */
static int
dead_bytes(struct vr_log *log, const uint8_t *from, const uint8_t *to, struct seg_bytes **out,
           unsigned *n)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	unsigned cap = 0;
	char *err = NULL;
	int rc = 0;

	*out = NULL;
	*n = 0;
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)to, CHUNK_KEY_SIZE);
	it = rocksdb_create_iterator_cf(log->db, ro, log->cf[CF_WAL]);
	for (rocksdb_iter_seek(it, (const char *)from, CHUNK_KEY_SIZE); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		struct chunk_loc c;
		size_t vsize;
		const char *v = rocksdb_iter_value(it, &vsize);
		unsigned i;

		if (vr_log_chunk_val_decode((const uint8_t *)v, vsize, &c)) {
			rc = -EUCLEAN;
			break;
		}
		for (i = 0; i < *n && (*out)[i].seg != c.seg; i++)
			;
		if (i == *n) {
			if (*n == cap) {
				struct seg_bytes *p =
				    realloc(*out, (cap = cap ? 2 * cap : 8) * sizeof(*p));

				if (!p) {
					rc = -ENOMEM;
					break;
				}
				*out = p;
			}
			(*out)[(*n)++] = (struct seg_bytes){c.seg, 0};
		}
		(*out)[i].bytes += c.size;
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		rc = vr_log_rdb_err("rocksdb_iter(wal)", err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rc;
}

int
vr_log_trim(struct vr_log *log, const struct vr_stream_id *id, uint64_t *trim_lsn)
{
	uint8_t skey[VR_STREAM_ID_SIZE], from[CHUNK_KEY_SIZE], to[CHUNK_KEY_SIZE];
	uint8_t tkey[1 + VR_STREAM_ID_SIZE], tval[TRIM_VAL_SIZE];
	uint8_t anchor[VR_REC_ENTROPY_SIZE] = {0};
	rocksdb_writebatch_t *wb;
	struct vr_log_stream s;
	uint64_t acked = UINT64_MAX, first, new_trim;
	struct seg_bytes *dead = NULL;
	unsigned n_members = 0, n_dead = 0;
	char *err = NULL;
	int rc;

	if (log->secondary)
		return -EROFS;
	if ((rc = vr_log_error(log)))
		return rc;
	vr_stream_id_pack(id, skey);
	pthread_mutex_lock(&log->meta_mu);
	rc = vr_log_load_stream(log, skey, &s);
	if (rc)
		goto out;
	new_trim = s.trim_lsn;
	for (unsigned i = 0; i < s.n_members; i++) {
		uint64_t c;

		if (s.members[i] == id->primary)
			continue;
		rc = vr_log_cursor_get(log, id, s.members[i], &c);
		if (rc)
			goto out;
		if (c < acked)
			acked = c;
		n_members++;
	}
	if (!n_members || acked <= s.trim_lsn)
		goto out;
	if (acked > s.last_lsn)
		acked = s.last_lsn;

	/* Whole chunks only: keep the chunk holding acked + 1 (or the last chunk). */
	rc = chunk_start(log, skey, acked + 1, &first);
	if (rc)
		goto out;
	if (first <= s.trim_lsn + 1)
		goto out;
	rc = entropy_at(log, skey, first - 1, anchor);
	if (rc)
		goto out;

	vr_log_chunk_key(from, skey, 0);
	vr_log_chunk_key(to, skey, first);
	rc = dead_bytes(log, from, to, &dead, &n_dead);
	if (rc)
		goto out;
	tkey[0] = META_TRIM;
	memcpy(tkey + 1, skey, VR_STREAM_ID_SIZE);
	vr_put_be64(tval, first - 1);
	memcpy(tval + 8, anchor, VR_REC_ENTROPY_SIZE);
	wb = rocksdb_writebatch_create();
	rocksdb_writebatch_delete_range_cf(wb, log->cf[CF_WAL], (const char *)from, sizeof(from),
	                                   (const char *)to, sizeof(to));
	rocksdb_writebatch_put_cf(wb, log->cf[CF_META], (const char *)tkey, sizeof(tkey),
	                          (const char *)tval, sizeof(tval));
	for (unsigned i = 0; i < n_dead && !rc; i++) {
		uint8_t dkey[9], dval[8];
		uint64_t cur;

		rc = vr_seg_counter(log, META_SEG_DEAD, dead[i].seg, &cur);
		dkey[0] = META_SEG_DEAD;
		vr_put_be64(dkey + 1, dead[i].seg);
		vr_put_be64(dval, cur + dead[i].bytes);
		rocksdb_writebatch_put_cf(wb, log->cf[CF_META], (const char *)dkey, sizeof(dkey),
		                          (const char *)dval, sizeof(dval));
	}
	if (!rc) {
		rocksdb_write(log->db, log->wo_sync, wb, &err);
		rc = vr_log_rdb_err("rocksdb_write(trim)", err);
	}
	rocksdb_writebatch_destroy(wb);
	if (!rc) {
		new_trim = first - 1;
		rc = vr_seg_collect(log);
	}
	s.trim_lsn = new_trim;
out:
	free(dead);
	pthread_mutex_unlock(&log->meta_mu);
	if (!rc && trim_lsn)
		*trim_lsn = s.trim_lsn;
	return rc;
}
