// SPDX-License-Identifier: BSD-3-Clause
/*
 * Opening, recovering and closing the store; RocksDB error translation; stream rows.
 *
 * Recovery, in order: RocksDB replays its own WAL in point-in-time mode (it stops at the first
 * corrupt or torn entry and keeps the consistent prefix; it never skips a bad entry to apply
 * later ones, which could leave a hole); then segment.c re-indexes every durable frame after
 * the index's checkpoint and cuts a torn tail; then the stream rows, now the truth, are loaded
 * into memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vr_msg.h"
#include "log_impl.h"

static const char *const cf_names[CF__COUNT] = {"default", "wal", "streams", "meta"};

enum {
	DEFAULT_WRITE_BUFFER = 128 << 20,
	/*
	 * The stream rows and the meta values (marks, cursors, counters) are a few keys that every
	 * append writes again, with values of the same size. As new versions, each went into the
	 * memtable's skip list past thousands of old versions of the same few keys: with 100
	 * streams (tools/bench-dataplane.sh), those inserts were 45 % of the dataplane log writer's
	 * samples at 128 and 64 MiB memtables and 34 % at 2 MiB. So both families update in place
	 * (a put of a key the memtable holds, with a value no larger, overwrites it: no new node),
	 * and the memtable keeps one version a key. A larger value still takes a node; 2 MiB bounds
	 * those. bench-logstore --streams 100 (one writer, 64 B records, two old/new pairs): 256
	 * a call 125-149 k records/s (4.8-5.5 us of CPU a record) before, 201-237 k (3.1-3.5 us)
	 * after; 1 024 a call 444-490 k before, 562-563 k after.
	 */
	ROWS_WRITE_BUFFER = 2 << 20,
	/*
	 * Updated in place, those memtables hardly grow, so RocksDB would flush them only once its
	 * WAL reached max_total_wal_size: it keeps every WAL file that holds something of a
	 * memtable not yet flushed, and replays it all at the next open. The commit leader flushes
	 * them, without waiting, after every ROWS_FLUSH_BYTES of records (vr_log_rows_written).
	 */
	ROWS_FLUSH_BYTES = 128 << 20,
	/* Lock stripes for the in-place updates; a get takes one (the writer is one thread). */
	INPLACE_LOCKS = 64,
	WAL_RECOVERY_POINT_IN_TIME = 2, /* rocksdb::WALRecoveryMode::kPointInTimeRecovery */
};

/* Segments roll at this size: big enough to amortise, small enough to reclaim after trim. */
#define SEG_MAX_SIZE (256ull << 20)

void
vr_log_rows_written(struct vr_log *log, size_t bytes)
{
	rocksdb_flushoptions_t *fo;
	char *err = NULL;

	log->rows_unflushed += bytes;
	if (log->rows_unflushed < ROWS_FLUSH_BYTES)
		return;
	log->rows_unflushed = 0;
	if (!(fo = rocksdb_flushoptions_create()))
		return;
	rocksdb_flushoptions_set_wait(fo, 0);
	for (int cf = CF_STREAMS; cf <= CF_META; cf++) {
		rocksdb_flush_cf(log->db, fo, log->cf[cf], &err);
		if (err) { /* nothing is lost: the WAL keeps it, and the next call tries again */
			vr_warn("logstore", "flush of the %s family: %s", cf_names[cf], err);
			rocksdb_free(err);
			err = NULL;
		}
	}
	rocksdb_flushoptions_destroy(fo);
}

void
vr_log_row_encode(uint8_t *row, size_t *size, uint64_t lsn, const uint8_t *entropy,
                  uint8_t n_members, const uint16_t *members)
{
	row[0] = ROW_FORMAT;
	vr_put_be64(row + 1, lsn);
	memcpy(row + 9, entropy, VR_REC_ENTROPY_SIZE);
	row[25] = n_members;
	for (unsigned i = 0; i < n_members; i++)
		vr_put_be16(row + 26 + 2 * i, members[i]);
	*size = 26 + 2u * n_members;
}

int
vr_log_row_decode(const uint8_t *row, size_t size, struct vr_log_stream *out)
{
	if (size < 26 || row[0] != ROW_FORMAT || row[25] > VR_REC_MAX_MEMBERS ||
	    size != 26u + 2u * row[25])
		return -EUCLEAN;
	out->last_lsn = vr_get_be64(row + 1);
	memcpy(out->last_entropy, row + 9, VR_REC_ENTROPY_SIZE);
	out->n_members = row[25];
	for (unsigned i = 0; i < out->n_members; i++)
		out->members[i] = vr_get_be16(row + 26 + 2 * i);
	return 0;
}

static int
load_trim(struct vr_log *log, const uint8_t key[VR_STREAM_ID_SIZE], struct vr_log_stream *out)
{
	uint8_t mkey[1 + VR_STREAM_ID_SIZE];
	char *err = NULL;
	size_t vsize;
	char *v;

	mkey[0] = META_TRIM;
	memcpy(mkey + 1, key, VR_STREAM_ID_SIZE);
	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_META], (const char *)mkey, sizeof(mkey),
	                   &vsize, &err);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(meta)", err);
	out->trim_lsn = 0;
	memset(out->trim_entropy, 0, sizeof(out->trim_entropy));
	if (!v)
		return 0;
	if (vsize != TRIM_VAL_SIZE) {
		rocksdb_free(v);
		return -EUCLEAN;
	}
	out->trim_lsn = vr_get_be64((uint8_t *)v);
	memcpy(out->trim_entropy, v + 8, VR_REC_ENTROPY_SIZE);
	rocksdb_free(v);
	return 0;
}

int
vr_log_load_stream(struct vr_log *log, const uint8_t key[VR_STREAM_ID_SIZE],
                   struct vr_log_stream *out)
{
	char *err = NULL;
	size_t vsize;
	char *v;
	int rc;

	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_STREAMS], (const char *)key,
	                   VR_STREAM_ID_SIZE, &vsize, &err);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(streams)", err);
	if (!v)
		return -ENOENT;
	vr_stream_id_unpack(key, &out->id);
	rc = vr_log_row_decode((uint8_t *)v, vsize, out);
	rocksdb_free(v);
	if (rc)
		return rc;
	return load_trim(log, key, out);
}

int
vr_log_stream_get(struct vr_log *log, const struct vr_stream_id *id, struct vr_log_stream *out)
{
	uint8_t key[VR_STREAM_ID_SIZE];

	vr_stream_id_pack(id, key);
	return vr_log_load_stream(log, key, out);
}

int
vr_log_stream_foreach(struct vr_log *log, int (*fn)(const struct vr_log_stream *, void *),
                      void *arg)
{
	rocksdb_iterator_t *it;
	char *err = NULL;
	int rc = 0;

	it = rocksdb_create_iterator_cf(log->db, log->ro, log->cf[CF_STREAMS]);
	if (!it)
		return -ENOMEM;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		struct vr_log_stream s;
		size_t ksize, vsize;
		const char *k = rocksdb_iter_key(it, &ksize);
		const char *v = rocksdb_iter_value(it, &vsize);

		if (ksize != VR_STREAM_ID_SIZE) {
			rc = -EUCLEAN;
			break;
		}
		vr_stream_id_unpack((const uint8_t *)k, &s.id);
		rc = vr_log_row_decode((const uint8_t *)v, vsize, &s);
		if (!rc)
			rc = load_trim(log, (const uint8_t *)k, &s);
		if (!rc)
			rc = fn(&s, arg);
		if (rc)
			break;
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		rc = vr_log_rdb_err("rocksdb_iter(streams)", err);
	}
	rocksdb_iter_destroy(it);
	return rc;
}

static int
remember_stream(const struct vr_log_stream *s, void *arg)
{
	struct vr_log *log = arg;
	struct stream *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	vr_stream_id_pack(&s->id, st->key);
	st->tail_lsn = st->durable_lsn = s->last_lsn;
	memcpy(st->tail_entropy, s->last_entropy, VR_REC_ENTROPY_SIZE);
	st->n_members = s->n_members;
	memcpy(st->members, s->members, sizeof(st->members));
	HASH_ADD(hh, log->streams, key, VR_STREAM_ID_SIZE, st);
	return 0;
}

/* vr_log_opts.verify: one WAL read back whole at open. */
static int
verify_stream(const struct vr_log_stream *s, void *arg)
{
	uint64_t n = 0;
	int rc = vr_log_verify_row(arg, s, &n);

	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		vr_err(
		    "logstore",
		    "WAL %llu/%u/%u is damaged after LSN %llu (%s; its last durable LSN is %llu): "
		    "refusing to open the store",
		    (unsigned long long)s->id.account, s->id.vault, s->id.primary,
		    (unsigned long long)(s->trim_lsn + n), vr_rec_strerror(rc),
		    (unsigned long long)s->last_lsn);
		return -EUCLEAN;
	}
	return 0;
}

static rocksdb_options_t *
make_cf_opts(int cf, const struct vr_log_opts *o)
{
	rocksdb_options_t *opt = rocksdb_options_create();

	/* Payloads are mostly ciphertext or key material: compression would only cost CPU. */
	rocksdb_options_set_compression(opt, 0);
	if (cf == CF_WAL || cf == CF_STREAMS || cf == CF_META) {
		size_t size =
		    o && o->write_buffer_size ? o->write_buffer_size : DEFAULT_WRITE_BUFFER;

		if (cf != CF_WAL && size > ROWS_WRITE_BUFFER)
			size = ROWS_WRITE_BUFFER;
		rocksdb_options_set_write_buffer_size(opt, size);
		rocksdb_options_set_max_write_buffer_number(opt, 4);
	}
	/*
	 * In place (ROWS_WRITE_BUFFER above). A get takes the key's lock stripe; an iterator does
	 * not, and sees a value as it is when read. The iterations over these families never meet
	 * a write of the key they read: the rows at open, a stream's producer marks at its
	 * stream.add (before it takes a record), the counters of segments no longer written to.
	 */
	if (cf == CF_STREAMS || cf == CF_META) {
		rocksdb_options_set_inplace_update_support(opt, 1);
		rocksdb_options_set_inplace_update_num_locks(opt, INPLACE_LOCKS);
	}
	return opt;
}

struct vr_log *
vr_log_open(const char *dir, const struct vr_log_opts *o)
{
	const rocksdb_options_t *cfo[CF__COUNT];
	struct vr_log *log;
	char *err = NULL, index[4096];
	int rc = -ENOMEM;

	log = calloc(1, sizeof(*log));
	if (!log)
		goto err;
	log->w.fd = -1;
	log->seg_dir_fd = -1;
	log->secondary = o && o->secondary;
	if (log->secondary && !o->secondary_dir) {
		rc = -EINVAL;
		goto err_free;
	}
	if (!log->secondary && mkdir(dir, 0700) && errno != EEXIST) {
		rc = -errno;
		vr_err("logstore", "mkdir %s: %s", dir, strerror(errno));
		goto err_free;
	}
	snprintf(index, sizeof(index), "%s/index", dir);
	log->seg_max_size = o && o->segment_size ? o->segment_size : SEG_MAX_SIZE;
	pthread_mutex_init(&log->mu, NULL);
	pthread_mutex_init(&log->meta_mu, NULL);
	pthread_mutex_init(&log->fd_mu, NULL);
	pthread_cond_init(&log->cv, NULL);
	log->q_tail = &log->q_head;

	log->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(log->opts, 1);
	rocksdb_options_set_create_missing_column_families(log->opts, 1);
	rocksdb_options_set_paranoid_checks(log->opts, 1);
	rocksdb_options_set_wal_recovery_mode(log->opts, WAL_RECOVERY_POINT_IN_TIME);
	rocksdb_options_increase_parallelism(log->opts, 2);
	rocksdb_options_set_max_background_jobs(log->opts, 2);
	rocksdb_options_set_bytes_per_sync(log->opts, 1 << 20);
	rocksdb_options_set_max_total_wal_size(log->opts, 1ull << 30);
	/* In-place updates (make_cf_opts) need memtable writes made one at a time. */
	rocksdb_options_set_allow_concurrent_memtable_write(log->opts, 0);
	/*
	 * RocksDB's own info LOG lives on the data disk; on a full disk its writer fails and, in
	 * Debian's build (assertions enabled), the next message aborts the process. Errors reach
	 * our log through vr_log_rdb_err() anyway, so RocksDB writes only its open-time header.
	 */
	rocksdb_options_set_info_log_level(log->opts, 5 /* HEADER_LEVEL */);
	if (log->secondary)
		rocksdb_options_set_max_open_files(log->opts, -1);
	for (int i = 0; i < CF__COUNT; i++) {
		log->cf_opts[i] = make_cf_opts(i, o);
		cfo[i] = log->cf_opts[i];
	}

	if (log->secondary)
		log->db = rocksdb_open_as_secondary_column_families(
		    log->opts, index, o->secondary_dir, CF__COUNT, cf_names, cfo, log->cf, &err);
	else
		log->db = rocksdb_open_column_families(log->opts, index, CF__COUNT, cf_names, cfo,
		                                       log->cf, &err);
	if (err) {
		rc = vr_log_rdb_err(log->secondary ? "rocksdb_open_as_secondary" : "rocksdb_open",
		                    err);
		goto err_opts;
	}

	log->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(log->wo_sync, 1);
	log->wo_async = rocksdb_writeoptions_create();
	log->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(log->ro, 1);

	rc = vr_seg_open(log, dir);
	if (rc)
		goto err_close;
	if (!log->secondary) {
		rc = vr_seg_recover(log);
		if (!rc)
			rc = vr_log_stream_foreach(log, remember_stream, log);
		if (!rc && o && o->verify)
			rc = vr_log_stream_foreach(log, verify_stream, log);
		if (!rc)
			rc = vr_seg_collect(log);
		if (rc)
			goto err_close;
	}
	return log;

err_close:
	vr_log_close(log);
	errno = -rc;
	return NULL;
err_opts:
	for (int i = 0; i < CF__COUNT; i++)
		rocksdb_options_destroy(log->cf_opts[i]);
	rocksdb_options_destroy(log->opts);
err_free:
	free(log);
err:
	errno = -rc;
	return NULL;
}

void
vr_log_close(struct vr_log *log)
{
	struct stream *st, *tmp;

	if (!log)
		return;
	HASH_ITER(hh, log->streams, st, tmp)
	{
		HASH_DEL(log->streams, st);
		free(st);
	}
	vr_seg_close(log);
	for (int i = 0; i < CF__COUNT; i++)
		if (log->cf[i])
			rocksdb_column_family_handle_destroy(log->cf[i]);
	rocksdb_close(log->db);
	rocksdb_writeoptions_destroy(log->wo_sync);
	rocksdb_writeoptions_destroy(log->wo_async);
	rocksdb_readoptions_destroy(log->ro);
	for (int i = 0; i < CF__COUNT; i++)
		rocksdb_options_destroy(log->cf_opts[i]);
	rocksdb_options_destroy(log->opts);
	pthread_mutex_destroy(&log->mu);
	pthread_mutex_destroy(&log->meta_mu);
	pthread_mutex_destroy(&log->fd_mu);
	pthread_cond_destroy(&log->cv);
	free(log);
}

int
vr_log_error(const struct vr_log *log)
{
	return __atomic_load_n(&log->sticky, __ATOMIC_ACQUIRE);
}

int
vr_log_catch_up(struct vr_log *log)
{
	char *err = NULL;

	if (!log->secondary)
		return -EINVAL;
	rocksdb_try_catch_up_with_primary(log->db, &err);
	return vr_log_rdb_err("rocksdb_try_catch_up_with_primary", err);
}

int
vr_log_meta_put(struct vr_log *log, const void *key, size_t key_size, const void *val,
                size_t val_size)
{
	char *err = NULL;
	char *k;
	int rc;

	if (log->secondary)
		return -EROFS;
	if ((rc = vr_log_error(log)))
		return rc;
	k = malloc(key_size + 1);
	if (!k)
		return -ENOMEM;
	k[0] = META_USER;
	memcpy(k + 1, key, key_size);
	rocksdb_put_cf(log->db, log->wo_sync, log->cf[CF_META], k, key_size + 1, val, val_size,
	               &err);
	free(k);
	return vr_log_rdb_err("rocksdb_put_cf(meta)", err);
}

int
vr_log_meta_get(struct vr_log *log, const void *key, size_t key_size, void *val, size_t cap,
                size_t *size)
{
	char *err = NULL;
	size_t vsize;
	char *k, *v;

	k = malloc(key_size + 1);
	if (!k)
		return -ENOMEM;
	k[0] = META_USER;
	memcpy(k + 1, key, key_size);
	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_META], k, key_size + 1, &vsize, &err);
	free(k);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(meta)", err);
	if (!v)
		return -ENOENT;
	if (size)
		*size = vsize;
	if (vsize > cap) {
		rocksdb_free(v);
		return -ENOBUFS;
	}
	memcpy(val, v, vsize);
	rocksdb_free(v);
	return 0;
}

int
vr_log_meta_foreach(struct vr_log *log, const void *prefix, size_t prefix_size,
                    int (*fn)(const void *key, size_t key_size, const void *val, size_t val_size,
                              void *arg),
                    void *arg)
{
	rocksdb_iterator_t *it;
	char *err = NULL, *p;
	int rc = 0;

	if (!fn || (prefix_size && !prefix))
		return -EINVAL;
	p = malloc(prefix_size + 1);
	if (!p)
		return -ENOMEM;
	p[0] = META_USER;
	if (prefix_size)
		memcpy(p + 1, prefix, prefix_size);
	it = rocksdb_create_iterator_cf(log->db, log->ro, log->cf[CF_META]);
	if (!it) {
		free(p);
		return -ENOMEM;
	}
	for (rocksdb_iter_seek(it, p, prefix_size + 1); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t ksize, vsize;
		const char *k = rocksdb_iter_key(it, &ksize);
		const char *v = rocksdb_iter_value(it, &vsize);

		if (ksize < prefix_size + 1 || memcmp(k, p, prefix_size + 1))
			break;
		rc = fn(k + 1, ksize - 1, v, vsize, arg);
		if (rc)
			break;
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		rc = vr_log_rdb_err("rocksdb_iter(meta)", err);
	}
	rocksdb_iter_destroy(it);
	free(p);
	return rc;
}
