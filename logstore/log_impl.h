/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * logstore internals shared by its source files; not part of the public API.
 *
 * Database layout (column families; all integers big-endian):
 *
 *   wal      stream id (14) || first LSN (8)  ->  the encoded records of one append of that
 *            stream, concatenated (a "chunk"). One value per stream per append, not one per
 *            record: RocksDB's cost is per key (memtable insert, index entry, compaction work),
 *            so a 4096-record append costs one key instead of 4096, which is what lets the log
 *            run near the disk's sequential bandwidth. A range scan over a stream id reads one
 *            WAL in LSN order; SeekForPrev(stream || L) finds the chunk holding LSN L.
 *   streams  stream id (14)  ->  row: u8 format (1) | u64 last LSN | entropy (16) | u8 n_members
 *            | u16 members[n]. Written in the same atomic batch as the chunk, so on open it
 *            always agrees with the wal family.
 *   meta     't' || stream id  ->  u64 trim LSN | entropy (16)          (the chain anchor)
 *            'c' || stream id || u16 member  ->  u64 acknowledged LSN     (cursor)
 *            'u' || caller's key  ->  caller's value                      (vr_log_meta_*)
 */
#ifndef VR_LOG_IMPL_H
#define VR_LOG_IMPL_H

#include <pthread.h>
#include <stdbool.h>

#include <rocksdb/c.h>
#include <uthash.h>

#include "vr_common.h"
#include "vr_log.h"

enum {
	CF_DEFAULT,
	CF_WAL,
	CF_STREAMS,
	CF_META,
	CF__COUNT,
};

enum {
	CHUNK_KEY_SIZE = VR_STREAM_ID_SIZE + 8,
	ROW_FORMAT = 1,
	ROW_MAX_SIZE = 1 + 8 + VR_REC_ENTROPY_SIZE + 1 + 2 * VR_REC_MAX_MEMBERS,
	TRIM_VAL_SIZE = 8 + VR_REC_ENTROPY_SIZE,
	META_TRIM = 't',
	META_CURSOR = 'c',
	META_USER = 'u',
};

/* In-memory state of one WAL on the primary. Protected by vr_log.mu. */
struct stream {
	uint8_t key[VR_STREAM_ID_SIZE];
	uint64_t tail_lsn; /* last LSN accepted into the commit queue */
	uint8_t tail_entropy[VR_REC_ENTROPY_SIZE];
	uint64_t durable_lsn; /* last LSN in a synced write */
	uint64_t gen;         /* bumped on every tail change: detects concurrent appends */
	UT_hash_handle hh;
};

struct commit_req;

struct vr_log {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cf_opts[CF__COUNT];
	rocksdb_column_family_handle_t *cf[CF__COUNT];
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_async;
	rocksdb_readoptions_t *ro;
	bool secondary;

	pthread_mutex_t mu; /* streams, commit queue, leader, sticky */
	pthread_cond_t cv;
	struct stream *streams;
	struct commit_req *q_head;
	struct commit_req **q_tail;
	bool leader_busy;
	int sticky; /* 0 or -errno: a failed write; refuse appends until reopened */
	struct vr_log_stats stats; /* under mu */

	pthread_mutex_t meta_mu; /* cursor read-modify-write and trim */
};

/* Translates a RocksDB error string into -errno, logs it naming the callee, frees it. */
int vr_log_rdb_err(const char *callee, char *err);

void vr_log_row_encode(uint8_t *row, size_t *size, uint64_t lsn, const uint8_t *entropy,
		       uint8_t n_members, const uint16_t *members);
int vr_log_row_decode(const uint8_t *row, size_t size, struct vr_log_stream *out);

/* Reads a stream's durable row and trim anchor from the database. 0, -ENOENT or -errno. */
int vr_log_load_stream(struct vr_log *log, const uint8_t key[VR_STREAM_ID_SIZE],
		       struct vr_log_stream *out);

static inline void
vr_log_chunk_key(uint8_t *out, const uint8_t stream_key[VR_STREAM_ID_SIZE], uint64_t lsn)
{
	memcpy(out, stream_key, VR_STREAM_ID_SIZE);
	vr_put_be64(out + VR_STREAM_ID_SIZE, lsn);
}

#endif /* VR_LOG_IMPL_H */
