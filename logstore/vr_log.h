/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * logstore: the durable, account-specific WAL of vaultrep, a library over the RocksDB C API.
 *
 * One process writes a log database (the dataplane's log writer, or control for its catalog);
 * readers in other processes open it as a RocksDB secondary instance. Every WAL is named by a
 * stream id (account, vault, primary site) and holds records (vr_record.h) in LSN order.
 *
 * Durability: vr_log_append() returns only after the records of the call are in a synced RocksDB
 * write; concurrent calls are coalesced into one synced write (group commit). A failed write
 * puts the store into a sticky error state: every later append fails with that error until the
 * store is closed and opened again, and no failed write is ever reported durable.
 *
 * Threads: every function may be called from any thread unless it says otherwise. Nothing here
 * may be called from a DPDK poll loop: append blocks on a disk sync by design.
 */
#ifndef VR_LOG_H
#define VR_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vr_record.h"

struct vr_log;
struct vr_log_iter;

struct vr_log_opts {
	/* Open read-only as a RocksDB secondary instance that follows the primary at dir. */
	bool secondary;
	/* Secondary only: a directory of its own for the instance's info log and state. */
	const char *secondary_dir;
	/*
	 * Bytes of memtable for the record index; 0 selects the default (128 MiB). The stream rows
	 * and meta values take the same or 2 MiB, whichever is less (log.c: ROWS_WRITE_BUFFER).
	 */
	size_t write_buffer_size;
	/* Segment files roll at this size; 0 selects the default (256 MiB). */
	size_t segment_size;
	/*
	 * Read back every WAL at open (vr_log_verify: each record's checksum, LSN order, the
	 * entropy chain, its row): a store damaged anywhere, not only at its tail, is refused
	 * (EUCLEAN, naming the WAL and the LSN) instead of serving a hole found later.
	 */
	bool verify;
};

/* One call may append at most this many bytes of records (-E2BIG beyond). */
#define VR_LOG_MAX_APPEND_BYTES (256u << 20)

/* Durable LSN of one stream after an append. */
struct vr_log_durable {
	struct vr_stream_id stream;
	uint64_t lsn;
};

/* What the store knows about one WAL. */
struct vr_log_stream {
	struct vr_stream_id id;
	/* The highest durable LSN and its record's entropy. */
	uint64_t last_lsn;
	uint8_t last_entropy[VR_REC_ENTROPY_SIZE];
	/* Records <= trim_lsn were trimmed (0: none); trim_entropy is record trim_lsn's entropy,
	 * the anchor the remaining chain is verified from. */
	uint64_t trim_lsn;
	uint8_t trim_entropy[VR_REC_ENTROPY_SIZE];
	/* The members named by the latest seed or membership record (data records name none). */
	uint8_t n_members;
	uint16_t members[VR_REC_MAX_MEMBERS];
};

/*
 * Opens (creating if missing, unless secondary) the log database in dir and recovers every
 * stream's last LSN and entropy. Returns NULL with errno set: EBUSY if another process has it
 * open for writing, EUCLEAN if it is corrupt beyond point-in-time recovery (a torn tail that
 * was never reported durable is cut off; damage to anything reported durable is refused),
 * EIO otherwise.
 * opts may be NULL for the defaults.
 */
struct vr_log *vr_log_open(const char *dir, const struct vr_log_opts *opts);

/* Closes the store; all appends must have returned. NULL is a no-op. */
void vr_log_close(struct vr_log *log);

/*
 * Appends n encoded records (of any streams, in order per stream) durably.
 *
 * Every record is validated first (vr_record.h rules R1-R3 and W1-W4); if any fails, nothing of
 * the call is written, *bad (if not NULL) is set to its index and its -VR_REC_ERR_* is returned.
 * On success, durable[] (room for n entries) receives the durable LSN of each distinct stream of
 * the call, in order of first appearance, and *n_durable their count.
 *
 * Returns 0, a -VR_REC_ERR_* validation error, -EROFS on a secondary, -EINVAL for bad arguments,
 * -E2BIG past VR_LOG_MAX_APPEND_BYTES, or the store's sticky error (-EIO, -ENOSPC, ...) once a
 * write has failed.
 */
int vr_log_append(struct vr_log *log, const struct iovec *recs, unsigned n,
                  struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad);

/*
 * As vr_log_append, at the site `site`: the records of streams whose primary is `site` arrive
 * unfinished (vr_rec_encode with no previous entropy; vr_record.h) and are finished in place,
 * in recs' buffers, as they are validated: their entropy chains them to the stream's tail and
 * their checksum is set, whatever those fields held. Records of other streams are checked as
 * vr_log_append checks them. site 0 makes it vr_log_append.
 */
int vr_log_append_as(struct vr_log *log, uint16_t site, const struct iovec *recs, unsigned n,
                     struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad);

/*
 * A mark: a small key/value of the caller's, made durable in the same frame as the records of
 * the append that carries it, so that after any crash either both are there or neither (for
 * example the dataplane's "producer P's frame S is LSN L", which makes a producer's retransmit
 * after a restart an ack instead of a second copy). A mark is a meta value (vr_log_meta_get
 * and vr_log_meta_foreach read it); a later mark or meta put of the same key replaces it.
 */
struct vr_log_mark {
	const void *key;
	const void *val;
	uint8_t key_size; /* 1..VR_LOG_MAX_MARK_KEY */
	uint8_t val_size; /* 0..VR_LOG_MAX_MARK_VAL */
};

#define VR_LOG_MAX_MARK_KEY 64
#define VR_LOG_MAX_MARK_VAL 64
/* One call may carry at most this many marks (-E2BIG beyond). */
#define VR_LOG_MAX_MARKS 65536

/*
 * As vr_log_append_as, with n_marks marks made durable with the records (n >= 1: a mark rides
 * on records). Marks are applied in call order, and calls in the order they became durable.
 * -EINVAL for a mark out of bounds; nothing of the call is written then.
 */
int vr_log_append_marked(struct vr_log *log, uint16_t site, const struct iovec *recs, unsigned n,
                         const struct vr_log_mark *marks, unsigned n_marks,
                         struct vr_log_durable *durable, unsigned *n_durable, unsigned *bad);

/* Counters since open; commits < appends shows group commit at work. */
struct vr_log_stats {
	uint64_t appends;  /* calls that became durable */
	uint64_t commits;  /* synced RocksDB writes that made them so */
	uint64_t records;  /* records made durable */
	uint64_t bytes;    /* their encoded bytes */
	uint64_t rejected; /* calls refused by validation (V7) */
	uint64_t failed;   /* calls failed by a write error or the sticky state */
};

void vr_log_stats_get(struct vr_log *log, struct vr_log_stats *out);

/* 0, or the sticky error that makes the store refuse appends. */
int vr_log_error(const struct vr_log *log);

/* Secondary only: catches up with the primary's latest writes. 0 or -errno. */
int vr_log_catch_up(struct vr_log *log);

/* The durable state of one stream; -ENOENT if the store has no such WAL. */
int vr_log_stream_get(struct vr_log *log, const struct vr_stream_id *id, struct vr_log_stream *out);

/* Calls fn for every stream in stream-id order until it returns non-zero (which is returned). */
int vr_log_stream_foreach(struct vr_log *log, int (*fn)(const struct vr_log_stream *, void *),
                          void *arg);

/*
 * Reads one WAL in LSN order from from_lsn (or its first stored record, if that was trimmed).
 * NULL with errno set on failure. An iterator sees the store as of its creation.
 */
struct vr_log_iter *vr_log_iter_open(struct vr_log *log, const struct vr_stream_id *id,
                                     uint64_t from_lsn);

/*
 * Next record: 1 and *rec filled (its pointers valid until the next call), 0 at the end, or
 * -EUCLEAN if the stored WAL is corrupt (bad record, LSN out of sequence), -EIO on read errors.
 */
int vr_log_iter_next(struct vr_log_iter *it, struct vr_rec *rec);

void vr_log_iter_close(struct vr_log_iter *it);

/*
 * Checks one WAL end to end: every stored record decodes, LSNs run without a gap from the trim
 * point (or 1) to the last LSN, and the entropy chain holds from the trim anchor (or genesis).
 * *n_checked (optional) receives the number of records read. 0, -EUCLEAN or -errno.
 */
int vr_log_verify(struct vr_log *log, const struct vr_stream_id *id, uint64_t *n_checked);

/*
 * Replication cursors: the highest LSN a member site acknowledged for a stream. Set only moves
 * a cursor forward (a lower value is ignored); the write is not synced on its own, but is
 * ordered before any later synced write (a cursor can only be behind after a crash, never
 * ahead, which costs at most a retransmission). Get yields 0 for a member never acknowledged.
 */
int vr_log_cursor_set(struct vr_log *log, const struct vr_stream_id *id, uint16_t member,
                      uint64_t lsn);
int vr_log_cursor_get(struct vr_log *log, const struct vr_stream_id *id, uint16_t member,
                      uint64_t *lsn);

/*
 * Deletes the records of a WAL that every member (named by its latest seed or membership
 * record, the primary excepted) has acknowledged, in whole stored groups, always keeping the latest
 * group; the entropy of the last deleted record is kept as the chain anchor so the rest stays
 * verifiable. A WAL without members is never trimmed. *trim_lsn (optional) gets the new trim point.
 */
int vr_log_trim(struct vr_log *log, const struct vr_stream_id *id, uint64_t *trim_lsn);

/*
 * Small durable key/value state for the log's owner (for example the dataplane's reserved nonce
 * ranges). put is synced before it returns. get: -ENOENT if absent, -ENOBUFS if cap is too
 * small (*size then holds the size needed).
 */
int vr_log_meta_put(struct vr_log *log, const void *key, size_t key_size, const void *val,
                    size_t val_size);
int vr_log_meta_get(struct vr_log *log, const void *key, size_t key_size, void *val, size_t cap,
                    size_t *size);

/*
 * Calls fn(key, key_size, val, val_size, arg) for every meta value (put or mark) whose key
 * starts with prefix, in key order, until fn returns non-zero (which is returned). 0 or -errno.
 */
int vr_log_meta_foreach(struct vr_log *log, const void *prefix, size_t prefix_size,
                        int (*fn)(const void *key, size_t key_size, const void *val,
                                  size_t val_size, void *arg),
                        void *arg);

#endif /* VR_LOG_H */
