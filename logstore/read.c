// SPDX-License-Identifier: BSD-3-Clause
/*
 * Reading one WAL in LSN order, and verifying it end to end.
 *
 * A WAL is a run of chunks keyed stream || first LSN in the index, each pointing at its records
 * in a segment. To read from LSN L the iterator seeks to the last chunk whose first LSN is <= L
 * (SeekForPrev), reads the chunk from its segment and skips the records before L inside it.
 * Every record read is decoded with its checksum, and must carry exactly the next LSN: anything
 * else is corruption of the store and is reported, never skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vr_msg.h"
#include "log_impl.h"

struct vr_log_iter {
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	uint8_t lower[CHUNK_KEY_SIZE];
	uint8_t upper[CHUNK_KEY_SIZE];
	struct vr_log *log;
	uint64_t from_lsn;
	uint64_t next_lsn; /* 0 until the first record is returned */
	bool loaded;       /* buf holds the chunk under the index iterator */
	uint8_t *buf;
	size_t buf_cap, val_size, off;
};

struct vr_log_iter *
vr_log_iter_open(struct vr_log *log, const struct vr_stream_id *id, uint64_t from_lsn)
{
	struct vr_log_iter *it = calloc(1, sizeof(*it));
	uint8_t key[VR_STREAM_ID_SIZE], seek[CHUNK_KEY_SIZE];

	if (!it) {
		errno = ENOMEM;
		return NULL;
	}
	it->log = log;
	vr_stream_id_pack(id, key);
	vr_log_chunk_key(it->lower, key, 0);
	vr_log_chunk_key(it->upper, key, UINT64_MAX);
	it->from_lsn = from_lsn ? from_lsn : 1;

	it->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(it->ro, 1);
	/* Bounds keep the iterator (and RocksDB's read-ahead) inside this WAL. */
	rocksdb_readoptions_set_iterate_lower_bound(it->ro, (const char *)it->lower,
	                                            sizeof(it->lower));
	rocksdb_readoptions_set_iterate_upper_bound(it->ro, (const char *)it->upper,
	                                            sizeof(it->upper));
	it->it = rocksdb_create_iterator_cf(log->db, it->ro, log->cf[CF_WAL]);
	vr_log_chunk_key(seek, key, it->from_lsn);
	rocksdb_iter_seek_for_prev(it->it, (const char *)seek, sizeof(seek));
	if (!rocksdb_iter_valid(it->it))
		rocksdb_iter_seek(it->it, (const char *)seek, sizeof(seek));
	return it;
}

/* Reads the chunk under the index iterator into it->buf. */
static int
load_chunk(struct vr_log_iter *it)
{
	struct chunk_loc loc;
	size_t vsize;
	const char *v = rocksdb_iter_value(it->it, &vsize);
	int rc;

	if (vr_log_chunk_val_decode((const uint8_t *)v, vsize, &loc)) {
		vr_err("logstore", "corrupt index entry");
		return -EUCLEAN;
	}
	rc = vr_seg_read(it->log, &loc, &it->buf, &it->buf_cap);
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	it->val_size = loc.size;
	it->off = 0;
	it->loaded = true;
	return 0;
}

int
vr_log_iter_next(struct vr_log_iter *it, struct vr_rec *rec)
{
	for (;;) {
		char *err = NULL;
		int rc;

		if (it->loaded && it->off < it->val_size) {
			rc = vr_rec_decode(it->buf + it->off, it->val_size - it->off, rec);
			if (rc < 0) {
				vr_err("logstore", "corrupt record in WAL: %s",
				       vr_rec_strerror(rc));
				return -EUCLEAN;
			}
			it->off += (size_t)rc;
			if (rec->lsn < it->from_lsn)
				continue;
			if (it->next_lsn && rec->lsn != it->next_lsn) {
				vr_err(
				    "logstore", "WAL out of sequence: LSN %llu where %llu was due",
				    (unsigned long long)rec->lsn, (unsigned long long)it->next_lsn);
				return -EUCLEAN;
			}
			it->next_lsn = rec->lsn + 1;
			return 1;
		}
		if (it->loaded) {
			rocksdb_iter_next(it->it);
			it->loaded = false;
		}
		if (!rocksdb_iter_valid(it->it)) {
			rocksdb_iter_get_error(it->it, &err);
			return vr_log_rdb_err("rocksdb_iter(wal)", err);
		}
		rc = load_chunk(it);
		if (rc)
			return rc;
	}
}

void
vr_log_iter_close(struct vr_log_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	rocksdb_readoptions_destroy(it->ro);
	free(it->buf);
	free(it);
}

int
vr_log_verify(struct vr_log *log, const struct vr_stream_id *id, uint64_t *n_checked)
{
	struct vr_log_stream s;
	int rc = vr_log_stream_get(log, id, &s);

	return rc ? rc : vr_log_verify_row(log, &s, n_checked);
}

int
vr_log_verify_row(struct vr_log *log, const struct vr_log_stream *row, uint64_t *n_checked)
{
	const struct vr_log_stream s = *row;
	const struct vr_stream_id *id = &row->id;
	struct vr_log_iter *it;
	uint8_t prev[VR_REC_ENTROPY_SIZE];
	uint64_t expect, n = 0;
	struct vr_rec r;
	int rc;

	if (s.trim_lsn)
		memcpy(prev, s.trim_entropy, sizeof(prev));
	else
		vr_rec_genesis(id, prev);
	expect = s.trim_lsn + 1;

	it = vr_log_iter_open(log, id, expect);
	if (!it)
		return -errno;
	while ((rc = vr_log_iter_next(it, &r)) == 1) {
		if (r.lsn != expect || vr_rec_check_chain(prev, &r) ||
		    r.stream.account != id->account || r.stream.vault != id->vault ||
		    r.stream.primary != id->primary) {
			vr_err("logstore", "verify: WAL breaks at LSN %llu",
			       (unsigned long long)expect);
			rc = -EUCLEAN;
			break;
		}
		memcpy(prev, r.entropy, sizeof(prev));
		expect++;
		n++;
		if (expect > s.last_lsn)
			break; /* records appended after the row was read are not ours to check */
	}
	vr_log_iter_close(it);
	if (rc >= 0 && (expect != s.last_lsn + 1 || memcmp(prev, s.last_entropy, sizeof(prev)))) {
		vr_err("logstore", "verify: WAL ends at LSN %llu, its row says %llu",
		       (unsigned long long)expect - 1, (unsigned long long)s.last_lsn);
		rc = -EUCLEAN;
	}
	if (n_checked)
		*n_checked = n;
	return rc < 0 ? rc : 0;
}
