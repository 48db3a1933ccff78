/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * logstore internals shared by its source files; not part of the public API.
 *
 * Layout on disk: <dir>/seg/ holds the records, <dir>/index/ is a RocksDB database that says
 * where they are and what state each WAL is in.
 *
 * Why two parts. Every group commit appends one frame (all records of the group) to the current
 * segment file with a single write and a single fdatasync: that is the disk's sequential
 * bandwidth, which the raw-disk baseline measures. Putting the same bytes through
 * RocksDB costs a copy into a write batch, a software CRC of Debian's portable build over every
 * byte of its WAL, and a copy into freshly faulted memtable pages, all on the one committing
 * thread, and then the flush writes every byte a second time: measured here, synced 1 MiB
 * RocksDB writes reach 180-270 MB/s where the raw disk gives 350-900 MB/s. So the bytes live in
 * segments (frame format in segment.c) and RocksDB keeps only small index entries, written
 * after the frame is synced, without a sync of their own: the frame is the durable truth, and
 * on open every frame after the index's checkpoint is indexed again (segment.c, recovery).
 *
 * Column families of the index (all integers big-endian):
 *
 *   wal      stream id (14) || first LSN (8)  ->  chunk: u64 segment | u64 offset of its records
 *            | u32 size | u32 records | u64 last LSN. A chunk is one stream's records of one
 *            group commit, stored contiguously. A range scan over a stream id reads one WAL in
 *            LSN order; SeekForPrev(stream || L) finds the chunk holding LSN L.
 *   streams  stream id (14)  ->  row: u8 format (1) | u64 last LSN | entropy (16) | u8 n_members
 *            | u16 members[n]. Written in the same batch as the chunk entries.
 *   meta     'h'  ->  checkpoint: u64 segment | u64 offset | u64 next frame sequence: every
 *                     frame before it is indexed (written in the same batch as their entries)
 *            'w' || u64 segment  ->  u64 record bytes written to that segment
 *            'd' || u64 segment  ->  u64 record bytes of it trimmed (a segment is deleted when
 *                     it is not the current one and d >= w)
 *            't' || stream id  ->  u64 trim LSN | entropy (16)          (the chain anchor)
 *            'c' || stream id || u16 member  ->  u64 acknowledged LSN     (cursor)
 *            'u' || caller's key  ->  caller's value          (vr_log_meta_*, and marks)
 */
#ifndef VR_LOG_IMPL_H
#define VR_LOG_IMPL_H

#include <pthread.h>
#include <stdbool.h>

#include <rocksdb/c.h>
#include <uthash.h>

#include "vr_common.h"
#include "vr_log.h"
#include "vr_rdb.h"

enum {
	CF_DEFAULT,
	CF_WAL,
	CF_STREAMS,
	CF_META,
	CF__COUNT,
};

enum {
	CHUNK_KEY_SIZE = VR_STREAM_ID_SIZE + 8,
	CHUNK_VAL_SIZE = 32,
	ROW_FORMAT = 1,
	ROW_MAX_SIZE = 1 + 8 + VR_REC_ENTROPY_SIZE + 1 + 2 * VR_REC_MAX_MEMBERS,
	TRIM_VAL_SIZE = 8 + VR_REC_ENTROPY_SIZE,
	META_CHECKPOINT = 'h',
	META_SEG_WRITTEN = 'w',
	META_SEG_DEAD = 'd',
	META_TRIM = 't',
	META_CURSOR = 'c',
	META_USER = 'u',
};

/* Where a chunk's records are. */
struct chunk_loc {
	uint64_t seg;
	uint64_t off;
	uint32_t size;
	uint32_t n_records;
	uint64_t last_lsn;
};

/* In-memory state of one WAL on the primary. Protected by vr_log.mu. */
struct stream {
	uint8_t key[VR_STREAM_ID_SIZE];
	uint64_t tail_lsn; /* last LSN accepted into the commit queue */
	uint8_t tail_entropy[VR_REC_ENTROPY_SIZE];
	uint64_t durable_lsn; /* last LSN in a synced frame */
	uint64_t gen;         /* bumped on every tail change: detects concurrent appends */
	uint8_t n_members;    /* named by the WAL's latest seed or membership record */
	uint16_t members[VR_REC_MAX_MEMBERS];
	UT_hash_handle hh;
};

/* An open segment file, for reading. */
struct seg_fd {
	uint64_t id;
	int fd;
	UT_hash_handle hh;
};

/* The segment being appended to. Only the commit leader touches it (vr_log.leader_busy). */
struct seg_writer {
	int fd;
	uint64_t id;
	uint64_t off;    /* frames end here */
	uint64_t zeroed; /* the file's size: frames, then zeros written ahead of them (segment.c) */
	uint64_t next_seq; /* sequence number of the next frame */
	uint64_t written;  /* record bytes in this segment (meta 'w') */
	uint8_t *stage;    /* frame being built; reused so its pages stay mapped */
	size_t stage_cap;
	/* A frame's chunks and marks, to index in key order (vr_seg_commit); reused. */
	struct seg_put *puts;
	struct seg_mark *marks;
	size_t puts_cap, marks_cap;
};

struct commit_req;

/* A mark in a frame: u8 key size | u8 value size | key | value (segment.c). */
enum { VR_LOG_MARK_HDR = 2 };

struct vr_log {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cf_opts[CF__COUNT];
	rocksdb_column_family_handle_t *cf[CF__COUNT];
	uint64_t rows_unflushed; /* record bytes since the rows and meta were flushed (leader) */
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_async;
	rocksdb_readoptions_t *ro;
	bool secondary;
	char *seg_dir;
	int seg_dir_fd;
	uint64_t seg_max_size;

	pthread_mutex_t mu; /* streams, commit queue, leader, sticky, stats */
	pthread_cond_t cv;
	struct stream *streams;
	struct commit_req *q_head;
	struct commit_req **q_tail;
	bool leader_busy;
	int sticky; /* 0 or -errno: a failed write; refuse appends until reopened */
	struct vr_log_stats stats;
	struct seg_writer w;

	pthread_mutex_t fd_mu; /* fds */
	struct seg_fd *fds;

	pthread_mutex_t meta_mu; /* cursor read-modify-write and trim */
};

/* Translates a RocksDB error string into -errno, logs it naming the callee, frees it. */
static inline int
vr_log_rdb_err(const char *callee, char *err)
{
	return vr_rdb_err("logstore", callee, err);
}

void vr_log_row_encode(uint8_t *row, size_t *size, uint64_t lsn, const uint8_t *entropy,
                       uint8_t n_members, const uint16_t *members);
int vr_log_row_decode(const uint8_t *row, size_t size, struct vr_log_stream *out);

/* vr_log_verify of the WAL whose row (and trim anchor) the caller has read already. */
int vr_log_verify_row(struct vr_log *log, const struct vr_log_stream *row, uint64_t *n_checked);

/*
 * The commit leader, after an index write: counts the group's record bytes and flushes the
 * in-place families every so often (log.c, ROWS_FLUSH_BYTES).
 */
void vr_log_rows_written(struct vr_log *log, size_t bytes);

/* Reads a stream's durable row and trim anchor from the index. 0, -ENOENT or -errno. */
int vr_log_load_stream(struct vr_log *log, const uint8_t key[VR_STREAM_ID_SIZE],
                       struct vr_log_stream *out);

void vr_log_chunk_val_encode(uint8_t out[CHUNK_VAL_SIZE], const struct chunk_loc *c);
int vr_log_chunk_val_decode(const uint8_t *v, size_t size, struct chunk_loc *c);

/* segment.c */
int vr_seg_open(struct vr_log *log, const char *dir);
void vr_seg_close(struct vr_log *log);
int vr_seg_recover(struct vr_log *log);
/* Leader only: writes and syncs one frame of every request; adds index entries to wb. */
int vr_seg_commit(struct vr_log *log, struct commit_req *reqs, rocksdb_writebatch_t *wb);
/* Reads a chunk's bytes into *buf (grown as needed). 0, -EUCLEAN or -errno. Any thread. */
int vr_seg_read(struct vr_log *log, const struct chunk_loc *c, uint8_t **buf, size_t *cap);
/* Deletes segment files all of whose records were trimmed. */
int vr_seg_collect(struct vr_log *log);
int vr_seg_counter(struct vr_log *log, char kind, uint64_t seg, uint64_t *val);

static inline void
vr_log_chunk_key(uint8_t *out, const uint8_t stream_key[VR_STREAM_ID_SIZE], uint64_t lsn)
{
	memcpy(out, stream_key, VR_STREAM_ID_SIZE);
	vr_put_be64(out + VR_STREAM_ID_SIZE, lsn);
}

/* What the leader needs of a request; defined here so segment.c can build frames. */
struct group {
	uint8_t key[VR_STREAM_ID_SIZE];
	uint8_t chunk_key[CHUNK_KEY_SIZE];
	struct vr_stream_id id;
	unsigned first, last;        /* first and last record (indices into the call) */
	unsigned n;                  /* records */
	unsigned off;                /* first of this group's slots in the part arrays */
	size_t bytes;                /* encoded bytes of its records */
	struct stream *st;           /* the store's entry, once known */
	struct stream *fresh;        /* pre-allocated entry for a WAL this call creates */
	uint64_t snap_gen, snap_lsn; /* the WAL's tail when validation started (step 2) */
	uint8_t snap_entropy[VR_REC_ENTROPY_SIZE];
	uint8_t n_members; /* the WAL's members after this group (its row's) */
	uint16_t members[VR_REC_MAX_MEMBERS];
	uint64_t last_lsn; /* the group's last record, once validated (step 3) */
	uint8_t last_entropy[VR_REC_ENTROPY_SIZE];
	uint8_t row[ROW_MAX_SIZE];
	size_t row_size;
	UT_hash_handle hh;
};

struct commit_req {
	struct group *groups;
	unsigned n_groups;
	const uint8_t **parts;
	size_t *part_sizes;
	unsigned n_records;
	size_t bytes;
	const struct vr_log_mark *marks; /* written after the records, in the same frame */
	unsigned n_marks;
	size_t mark_bytes; /* their encoded size (segment.c) */
	int status;
	bool done;
	struct commit_req *next;
};

#endif /* VR_LOG_IMPL_H */
