// SPDX-License-Identifier: BSD-3-Clause
/*
 * Segment files: where the records are, one frame per group commit.
 *
 * A segment is <dir>/seg/<id as 16 hex digits>.seg, appended to by the commit leader only, and
 * rolled to id + 1 when the next frame would take it past seg_max_size. All integers are
 * big-endian.
 *
 *   frame   offset  size  field
 *           0       4     magic       "VRF1" (0x56524631)
 *           4       4     crc32c      CRC32C of bytes [8, 32 + body_size)
 *           8       8     seq         frame sequence number: 1, 2, 3, ... across segments
 *           16      4     body_size
 *           20      4     n_chunks
 *           24      4     marks_size  bytes of marks at the end of the body (0: none)
 *           28      4     reserved    0
 *           32      body  n_chunks times: u32 size | u32 n_records | records (vr_record.h),
 *                         then marks_size bytes of marks: u8 key size | u8 value size | key |
 *                         value (vr_log_mark; frames written before marks existed have none)
 *
 * A chunk is one stream's records of the group, in LSN order; its index entry (log_impl.h)
 * points at its records. A mark goes to the meta family ('u' || key) in the same RocksDB
 * write as the chunks' entries, and recovery puts it again with them. A frame is written with
 * one pwrite and made durable with fdatasync before anything of it is reported durable or
 * indexed; a new segment's directory entry is synced before its first frame is reported.
 *
 * Zeros ahead. A frame that would end past what the file holds is written together with up to
 * ZERO_AHEAD bytes of zeros after it (one pwritev), so that the frames after it overwrite
 * blocks that are already allocated, written and inside the file's size: their fdatasync then
 * flushes data alone, where an append must also commit the file system's journal (a new size,
 * new blocks). Only one sync in every ZERO_AHEAD bytes pays for that. On this machine's ext4 with
 * two logs syncing 20 KB frames back to back, it took a sync's median from 0.85-0.97 ms to
 * 0.61-0.68 ms, and 40-50 % more syncs a second (the same trick as PostgreSQL's zero-filled WAL
 * segments). Every byte is written twice, though, which costs more than the journal commit once
 * a frame is large (bench-logstore, 4 096 records a call, ~480 KB frames: 3-10 % slower): a frame
 * of ZERO_BIG_FRAME or more is appended as it is. A segment is cut back to its last frame when the
 * writer moves on to the next one (synced before the next is created, so that only the last segment
 * can end in zeros) and when the store closes; after a crash, the last segment may end in zeros,
 * which are not a torn tail (S2).
 *
 * Rules on open (recovery):
 *   S1. The index checkpoint (segment, offset, next seq) names the first frame not indexed.
 *       Frames from there on are read in order; each must have the magic, the expected seq, a
 *       body inside the file, and a matching CRC.
 *   S2. The first frame that fails S1 in the last segment is a torn tail (a crash during a
 *       write that was never reported durable): the file is truncated there, unless every byte
 *       from there to the end is zero (zeros ahead, kept).
 *   S3. A failing frame in any earlier segment, a segment shorter than the checkpoint, or a
 *       frame whose records do not continue their WAL (LSN and entropy chain) is corruption:
 *       the store refuses to open (EUCLEAN) rather than serve a WAL with a hole.
 *   S4. Each valid frame is indexed again (chunk entries, stream rows, marks, checkpoint: one
 *       RocksDB write per frame, so that a recovery cut short by a crash or a failed write
 *       leaves the index at a frame boundary and the next one replays from there), so after
 *       recovery the index covers every durable frame.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vr_crc.h"
#include "vr_msg.h"
#include "log_impl.h"

enum {
	FRAME_MAGIC = 0x56524631,
	FRAME_HDR_SIZE = 32,
	CHUNK_HDR_SIZE = 8,
	CHECKPOINT_SIZE = 24,
	ZERO_AHEAD = 1 << 20,
	ZERO_BIG_FRAME = 128 << 10,
};

/* What the zeros ahead are written from: never written, so its pages are the kernel's zero page. */
static uint8_t zeros[ZERO_AHEAD];

static void
seg_path(const struct vr_log *log, uint64_t id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 ".seg", log->seg_dir, id);
}

void
vr_log_chunk_val_encode(uint8_t out[CHUNK_VAL_SIZE], const struct chunk_loc *c)
{
	vr_put_be64(out, c->seg);
	vr_put_be64(out + 8, c->off);
	vr_put_be32(out + 16, c->size);
	vr_put_be32(out + 20, c->n_records);
	vr_put_be64(out + 24, c->last_lsn);
}

int
vr_log_chunk_val_decode(const uint8_t *v, size_t size, struct chunk_loc *c)
{
	if (size != CHUNK_VAL_SIZE)
		return -EUCLEAN;
	c->seg = vr_get_be64(v);
	c->off = vr_get_be64(v + 8);
	c->size = vr_get_be32(v + 16);
	c->n_records = vr_get_be32(v + 20);
	c->last_lsn = vr_get_be64(v + 24);
	return 0;
}

static void
counter_key(uint8_t out[9], char kind, uint64_t seg)
{
	out[0] = (uint8_t)kind;
	vr_put_be64(out + 1, seg);
}

int
vr_seg_counter(struct vr_log *log, char kind, uint64_t seg, uint64_t *val)
{
	uint8_t key[9];
	char *err = NULL, *v;
	size_t n;

	counter_key(key, kind, seg);
	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_META], (const char *)key, sizeof(key), &n,
	                   &err);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(meta)", err);
	*val = 0;
	if (v && n == 8)
		*val = vr_get_be64((uint8_t *)v);
	rocksdb_free(v);
	return 0;
}

static void
put_counter(struct vr_log *log, rocksdb_writebatch_t *wb, char kind, uint64_t seg, uint64_t val)
{
	uint8_t key[9], v[8];

	counter_key(key, kind, seg);
	vr_put_be64(v, val);
	rocksdb_writebatch_put_cf(wb, log->cf[CF_META], (const char *)key, sizeof(key),
	                          (const char *)v, sizeof(v));
}

/* A frame's mark into the meta family, where vr_log_meta_get finds it. */
static void
put_mark(struct vr_log *log, rocksdb_writebatch_t *wb, const uint8_t *key, size_t key_size,
         const uint8_t *val, size_t val_size)
{
	char k[1 + VR_LOG_MAX_MARK_KEY];

	k[0] = META_USER;
	memcpy(k + 1, key, key_size);
	rocksdb_writebatch_put_cf(wb, log->cf[CF_META], k, 1 + key_size, (const char *)val,
	                          val_size);
}

static void
put_checkpoint(struct vr_log *log, rocksdb_writebatch_t *wb)
{
	uint8_t key = META_CHECKPOINT, v[CHECKPOINT_SIZE];

	vr_put_be64(v, log->w.id);
	vr_put_be64(v + 8, log->w.off);
	vr_put_be64(v + 16, log->w.next_seq);
	rocksdb_writebatch_put_cf(wb, log->cf[CF_META], (const char *)&key, 1, (const char *)v,
	                          sizeof(v));
}

/*
 * One of the seg_writer's reused arrays (the frame, its chunks, its marks) with room for n > 0
 * elements of size bytes, doubling from first elements so that its pages stay mapped from frame
 * to frame; NULL when out of memory (arr is left as it was).
 */
static void *
grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t c = *cap ? *cap : first;
	void *p;

	if (n <= *cap)
		return arr;
	while (c < n)
		c *= 2;
	p = realloc(arr, c * size);
	if (p)
		*cap = c;
	return p;
}

int
vr_seg_open(struct vr_log *log, const char *dir)
{
	if (asprintf(&log->seg_dir, "%s/seg", dir) < 0)
		return -ENOMEM;
	if (!log->secondary) {
		if (mkdir(log->seg_dir, 0700) == 0) {
			/* The new directory's name must be durable before anything in it. */
			int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (parent < 0 || fsync(parent)) {
				vr_err("logstore", "fsync %s: %s", dir, strerror(errno));
				if (parent >= 0)
					close(parent);
				return -EIO;
			}
			close(parent);
		} else if (errno != EEXIST) {
			vr_err("logstore", "mkdir %s: %s", log->seg_dir, strerror(errno));
			return -errno;
		}
	}
	log->seg_dir_fd = open(log->seg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->seg_dir_fd < 0) {
		vr_err("logstore", "open %s: %s", log->seg_dir, strerror(errno));
		return -errno;
	}
	return 0;
}

void
vr_seg_close(struct vr_log *log)
{
	struct seg_fd *f, *tmp;

	HASH_ITER(hh, log->fds, f, tmp)
	{
		HASH_DEL(log->fds, f);
		close(f->fd);
		free(f);
	}
	if (log->w.fd >= 0) {
		/* Zeros ahead are not needed on disk: a clean close leaves the last frame last. */
		if (log->w.zeroed > log->w.off && ftruncate(log->w.fd, (off_t)log->w.off))
			vr_warn("logstore", "cut zeros after the last frame: %s", strerror(errno));
		close(log->w.fd);
	}
	if (log->seg_dir_fd >= 0)
		close(log->seg_dir_fd);
	free(log->w.stage);
	free(log->w.puts);
	free(log->w.marks);
	free(log->seg_dir);
}

static int
create_segment(struct vr_log *log, uint64_t id)
{
	char path[4096];
	int fd;

	/*
	 * The segment left behind ends at its last frame, durably, before the next one exists:
	 * recovery takes anything after the last frame of an earlier segment for damage (S3).
	 */
	if (log->w.fd >= 0 && log->w.zeroed > log->w.off) {
		if (ftruncate(log->w.fd, (off_t)log->w.off) || fdatasync(log->w.fd)) {
			int rc = -errno;

			vr_err("logstore", "segment %016" PRIx64 ": cut after its last frame: %s",
			       log->w.id, strerror(errno));
			return rc;
		}
		log->w.zeroed = log->w.off;
	}
	seg_path(log, id, path, sizeof(path));
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		vr_err("logstore", "create %s: %s", path, strerror(errno));
		return -errno;
	}
	/* The frame's fdatasync does not cover the new name: sync the directory first. */
	if (fsync(log->seg_dir_fd)) {
		int rc = -errno;

		vr_err("logstore", "fsync %s: %s", log->seg_dir, strerror(errno));
		close(fd);
		return rc;
	}
	if (log->w.fd >= 0)
		close(log->w.fd);
	log->w.fd = fd;
	/* Read without the leader's exclusion by vr_seg_collect (trim): atomic. */
	__atomic_store_n(&log->w.id, id, __ATOMIC_RELEASE);
	log->w.off = 0;
	log->w.zeroed = 0;
	log->w.written = 0;
	return 0;
}

static int
pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/*
 * Writes frame f (n bytes) at the writer's offset and, when it would end past the file's
 * written size and is not big, zeros ahead of it (see the top of this file). Without room for the
 * zeros (a full disk), the frame alone. 0 or -errno.
 */
static int
write_frame(struct vr_log *log, const uint8_t *f, size_t n)
{
	struct seg_writer *w = &log->w;
	uint64_t end = w->off + n, ahead = 0;
	int rc;

	if (end > w->zeroed && n < ZERO_BIG_FRAME && end < log->seg_max_size)
		ahead = log->seg_max_size - end < ZERO_AHEAD ? log->seg_max_size - end : ZERO_AHEAD;
	if (ahead) {
		struct iovec iov[2] = {{(void *)(uintptr_t)f, n}, {zeros, ahead}};
		ssize_t k;

		do
			k = pwritev(w->fd, iov, 2, (off_t)w->off);
		while (k < 0 && errno == EINTR);
		if (k == (ssize_t)(n + ahead)) {
			w->zeroed = end + ahead;
			return 0;
		}
		/* Short or failed: whatever it wrote is rewritten below or cut. */
		if (ftruncate(w->fd, (off_t)w->off))
			return -errno;
		w->zeroed = w->off;
	}
	rc = pwrite_all(w->fd, f, n, w->off);
	if (rc)
		return rc;
	if (end > w->zeroed)
		w->zeroed = end;
	return 0;
}

/*
 * A frame's chunks and marks, indexed in key order (vr_seg_commit). Of two with one key (two
 * calls in one frame), the later in the frame must be put last: order breaks the tie.
 */
struct seg_put {
	const struct group *g;
	unsigned order;
	uint8_t val[CHUNK_VAL_SIZE];
};

struct seg_mark {
	const uint8_t *key, *val; /* in the frame */
	uint8_t key_size, val_size;
	unsigned order;
};

static int
by_order(unsigned a, unsigned b)
{
	return (a > b) - (a < b);
}

static int
put_cmp(const void *a, const void *b)
{
	const struct seg_put *x = a, *y = b;
	int c = memcmp(x->g->key, y->g->key, VR_STREAM_ID_SIZE);

	return c ? c : by_order(x->order, y->order);
}

static int
mark_cmp(const void *a, const void *b)
{
	const struct seg_mark *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->key_size < y->key_size ? x->key_size : y->key_size);

	if (!c)
		c = by_order(x->key_size, y->key_size);
	return c ? c : by_order(x->order, y->order);
}

int
vr_seg_commit(struct vr_log *log, struct commit_req *reqs, rocksdb_writebatch_t *wb)
{
	struct seg_writer *w = &log->w;
	size_t body = 0, pos = FRAME_HDR_SIZE, rec_bytes = 0, mark_bytes = 0;
	unsigned n_chunks = 0, n_marks = 0;
	uint8_t *f;
	void *p;
	int rc;

	for (struct commit_req *q = reqs; q; q = q->next) {
		for (unsigned k = 0; k < q->n_groups; k++)
			body += CHUNK_HDR_SIZE + q->groups[k].bytes;
		n_chunks += q->n_groups;
		n_marks += q->n_marks;
		mark_bytes += q->mark_bytes;
	}
	body += mark_bytes;
	if (w->off && w->off + FRAME_HDR_SIZE + body > log->seg_max_size) {
		rc = create_segment(log, w->id + 1);
		if (rc)
			return rc;
	}
	if (!(p = grow(w->stage, &w->stage_cap, FRAME_HDR_SIZE + body, 1, 1 << 20)))
		return -ENOMEM;
	w->stage = p;
	if (n_chunks) {
		if (!(p = grow(w->puts, &w->puts_cap, n_chunks, sizeof(*w->puts), 256)))
			return -ENOMEM;
		w->puts = p;
	}
	if (n_marks) {
		if (!(p = grow(w->marks, &w->marks_cap, n_marks, sizeof(*w->marks), 256)))
			return -ENOMEM;
		w->marks = p;
	}
	f = w->stage;
	n_chunks = 0;
	n_marks = 0;

	for (struct commit_req *q = reqs; q; q = q->next) {
		for (unsigned k = 0; k < q->n_groups; k++) {
			struct group *g = &q->groups[k];
			struct chunk_loc loc = {
			    .seg = w->id,
			    .off = w->off + pos + CHUNK_HDR_SIZE,
			    .size = (uint32_t)g->bytes,
			    .n_records = g->n,
			    .last_lsn = g->last_lsn,
			};

			vr_put_be32(f + pos, (uint32_t)g->bytes);
			vr_put_be32(f + pos + 4, g->n);
			pos += CHUNK_HDR_SIZE;
			for (unsigned j = g->off; j < g->off + g->n; j++) {
				memcpy(f + pos, q->parts[j], q->part_sizes[j]);
				pos += q->part_sizes[j];
			}
			rec_bytes += g->bytes;
			w->puts[n_chunks] = (struct seg_put){.g = g, .order = n_chunks};
			vr_log_chunk_val_encode(w->puts[n_chunks++].val, &loc);
		}
	}
	/*
	 * The index in key order, the marks below too: each column family's memtable is a skip
	 * list that keeps where its last insert went and starts the next search from there where
	 * it can, which keys in arrival order (WALs interleaved) never allow. Searching the skip
	 * list was the dataplane's log writer's largest cost under many streams of small batches:
	 * 16 % of the two sites' samples before, 9 % after (perf, tools/bench-dataplane.sh).
	 */
	if (n_chunks > 1) /* none: no array yet */
		qsort(w->puts, n_chunks, sizeof(*w->puts), put_cmp);
	for (unsigned i = 0; i < n_chunks; i++)
		rocksdb_writebatch_put_cf(wb, log->cf[CF_WAL],
		                          (const char *)w->puts[i].g->chunk_key, CHUNK_KEY_SIZE,
		                          (const char *)w->puts[i].val, CHUNK_VAL_SIZE);
	for (unsigned i = 0; i < n_chunks; i++)
		rocksdb_writebatch_put_cf(wb, log->cf[CF_STREAMS], (const char *)w->puts[i].g->key,
		                          VR_STREAM_ID_SIZE, (const char *)w->puts[i].g->row,
		                          w->puts[i].g->row_size);
	/* The marks, in call order and the calls in queue order: a later one replaces (order). */
	for (struct commit_req *q = reqs; q; q = q->next)
		for (unsigned i = 0; i < q->n_marks; i++) {
			const struct vr_log_mark *m = &q->marks[i];

			f[pos] = m->key_size;
			f[pos + 1] = m->val_size;
			memcpy(f + pos + VR_LOG_MARK_HDR, m->key, m->key_size);
			if (m->val_size)
				memcpy(f + pos + VR_LOG_MARK_HDR + m->key_size, m->val,
				       m->val_size);
			w->marks[n_marks] = (struct seg_mark){
			    .key = f + pos + VR_LOG_MARK_HDR,
			    .val = f + pos + VR_LOG_MARK_HDR + m->key_size,
			    .key_size = m->key_size,
			    .val_size = m->val_size,
			    .order = n_marks,
			};
			n_marks++;
			pos += VR_LOG_MARK_HDR + m->key_size + m->val_size;
		}
	if (n_marks > 1)
		qsort(w->marks, n_marks, sizeof(*w->marks), mark_cmp);
	for (unsigned i = 0; i < n_marks; i++)
		put_mark(log, wb, w->marks[i].key, w->marks[i].key_size, w->marks[i].val,
		         w->marks[i].val_size);
	vr_put_be32(f, FRAME_MAGIC);
	vr_put_be64(f + 8, w->next_seq);
	vr_put_be32(f + 16, (uint32_t)body);
	vr_put_be32(f + 20, n_chunks);
	vr_put_be32(f + 24, (uint32_t)mark_bytes);
	vr_put_be32(f + 28, 0);
	vr_put_be32(f + 4, vr_crc32c(f + 8, pos - 8));

	rc = write_frame(log, f, pos);
	if (!rc && fdatasync(w->fd))
		rc = -errno;
	if (rc) {
		vr_err("logstore", "segment %016" PRIx64 ": write or fdatasync of %zu bytes: %s",
		       w->id, pos, strerror(-rc));
		/* Best effort: leave no torn frame behind (recovery would cut it anyway). */
		if (ftruncate(w->fd, (off_t)w->off))
			vr_err("logstore", "ftruncate after failed write: %s", strerror(errno));
		else
			w->zeroed = w->off;
		return rc;
	}
	w->off += pos;
	w->next_seq++;
	w->written += rec_bytes;
	put_counter(log, wb, META_SEG_WRITTEN, w->id, w->written);
	put_checkpoint(log, wb);
	return 0;
}

static int
get_fd(struct vr_log *log, uint64_t id)
{
	struct seg_fd *f;
	char path[4096];
	int fd;

	pthread_mutex_lock(&log->fd_mu);
	HASH_FIND(hh, log->fds, &id, sizeof(id), f);
	if (f) {
		fd = f->fd;
		pthread_mutex_unlock(&log->fd_mu);
		return fd;
	}
	seg_path(log, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;

		pthread_mutex_unlock(&log->fd_mu);
		vr_err("logstore", "open %s: %s", path, strerror(-rc));
		return rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		pthread_mutex_unlock(&log->fd_mu);
		return -ENOMEM;
	}
	f->id = id;
	f->fd = fd;
	HASH_ADD(hh, log->fds, id, sizeof(f->id), f);
	pthread_mutex_unlock(&log->fd_mu);
	return fd;
}

static void
drop_fd(struct vr_log *log, uint64_t id)
{
	struct seg_fd *f;

	pthread_mutex_lock(&log->fd_mu);
	HASH_FIND(hh, log->fds, &id, sizeof(id), f);
	if (f) {
		HASH_DEL(log->fds, f);
		close(f->fd);
		free(f);
	}
	pthread_mutex_unlock(&log->fd_mu);
}

int
vr_seg_read(struct vr_log *log, const struct chunk_loc *c, uint8_t **buf, size_t *cap)
{
	size_t done = 0;
	int fd = get_fd(log, c->seg);

	if (fd < 0)
		return fd;
	if (c->size > *cap) {
		uint8_t *p = realloc(*buf, c->size);

		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = c->size;
	}
	while (done < c->size) {
		ssize_t k = pread(fd, *buf + done, c->size - done, (off_t)(c->off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			vr_err("logstore", "read segment %016" PRIx64 ": %s", c->seg,
			       strerror(errno));
			return -EIO;
		}
		if (k == 0) {
			vr_err("logstore", "segment %016" PRIx64 " ends before its indexed chunk",
			       c->seg);
			return -EUCLEAN;
		}
		done += (size_t)k;
	}
	return 0;
}

/* A WAL's row as a frame being replayed left it (replay_frame). */
struct replayed_row {
	uint8_t key[VR_STREAM_ID_SIZE];
	struct vr_log_stream st;
	UT_hash_handle hh;
};

/*
 * Re-indexes one valid frame (S4) into wb, checking that its records continue their WALs (S3).
 * The caller writes wb with the checkpoint past the frame: a frame is indexed whole or not at
 * all, so a recovery cut short (a crash, a failed write) replays it again from the same rows.
 */
static int
replay_frame(struct vr_log *log, const uint8_t *f, size_t size, uint64_t frame_off,
             uint64_t *rec_bytes, rocksdb_writebatch_t *wb)
{
	struct replayed_row *rows = NULL, *sr = NULL, *tmp;
	unsigned n_chunks = vr_get_be32(f + 20);
	size_t pos = FRAME_HDR_SIZE, marks_size = vr_get_be32(f + 24), end;
	int rc = 0;

	if (marks_size > size - FRAME_HDR_SIZE) {
		vr_err("logstore",
		       "segment %016" PRIx64 " offset %" PRIu64 ": marks past the frame", log->w.id,
		       frame_off);
		return -EUCLEAN;
	}
	/* The chunks, then the marks. */
	end = size - marks_size;
	for (unsigned k = 0; k < n_chunks && !rc; k++) {
		uint8_t skey[VR_STREAM_ID_SIZE], ckey[CHUNK_KEY_SIZE], val[CHUNK_VAL_SIZE];
		uint8_t row[ROW_MAX_SIZE], prev[VR_REC_ENTROPY_SIZE];
		struct vr_log_stream st;
		struct vr_stream_id cid = {0};
		struct chunk_loc loc;
		struct vr_rec r = {0};
		uint64_t expect = 0;
		size_t csize, cpos, row_size;
		unsigned n;

		sr = NULL;
		if (pos + CHUNK_HDR_SIZE > end) {
			rc = -EUCLEAN;
			break;
		}
		csize = vr_get_be32(f + pos);
		n = vr_get_be32(f + pos + 4);
		pos += CHUNK_HDR_SIZE;
		if (csize > end - pos || n == 0) {
			rc = -EUCLEAN;
			break;
		}
		for (cpos = 0; cpos < csize; cpos += r.raw_size) {
			int d = vr_rec_decode(f + pos + cpos, csize - cpos, &r);

			if (d < 0) {
				rc = -EUCLEAN;
				break;
			}
			if (cpos == 0) {
				vr_stream_id_pack(&r.stream, skey);
				/* Its row as this frame left it, or as the index has it. */
				HASH_FIND(hh, rows, skey, VR_STREAM_ID_SIZE, sr);
				rc = sr ? (st = sr->st, 0) : vr_log_load_stream(log, skey, &st);
				if (rc == -ENOENT) {
					st.last_lsn = 0;
					vr_rec_genesis(&r.stream, st.last_entropy);
					rc = 0;
				}
				if (rc)
					break;
				if (st.last_lsn == 0)
					st.n_members = 0;
				memcpy(prev, st.last_entropy, sizeof(prev));
				expect = st.last_lsn + 1;
				cid = r.stream;
				vr_log_chunk_key(ckey, skey, r.lsn);
			}
			if (r.lsn != expect || vr_rec_check_chain(prev, &r) ||
			    r.stream.account != cid.account || r.stream.vault != cid.vault ||
			    r.stream.primary != cid.primary || r.origin != cid.primary ||
			    (r.lsn == 1) != (r.type == VR_REC_INFRA && r.op == VR_REC_OP_SEED)) {
				rc = -EUCLEAN;
				break;
			}
			memcpy(prev, r.entropy, sizeof(prev));
			expect++;
			if (r.type == VR_REC_INFRA) {
				st.n_members = r.n_members;
				memcpy(st.members, r.members, sizeof(st.members));
			}
		}
		if (rc)
			break;
		loc = (struct chunk_loc){.seg = log->w.id,
		                         .off = frame_off + pos,
		                         .size = (uint32_t)csize,
		                         .n_records = n,
		                         .last_lsn = r.lsn};
		vr_log_chunk_val_encode(val, &loc);
		vr_log_row_encode(row, &row_size, r.lsn, r.entropy, st.n_members, st.members);
		rocksdb_writebatch_put_cf(wb, log->cf[CF_WAL], (const char *)ckey, sizeof(ckey),
		                          (const char *)val, sizeof(val));
		rocksdb_writebatch_put_cf(wb, log->cf[CF_STREAMS], (const char *)skey, sizeof(skey),
		                          (const char *)row, row_size);
		*rec_bytes += csize;
		pos += csize;
		/* The row, for a later chunk of the same WAL in this frame. */
		if (!sr) {
			sr = calloc(1, sizeof(*sr));
			if (!sr) {
				rc = -ENOMEM;
				break;
			}
			memcpy(sr->key, skey, sizeof(skey));
			HASH_ADD(hh, rows, key, VR_STREAM_ID_SIZE, sr);
		}
		sr->st = st;
		sr->st.last_lsn = r.lsn;
		memcpy(sr->st.last_entropy, r.entropy, VR_REC_ENTROPY_SIZE);
	}
	HASH_ITER(hh, rows, sr, tmp)
	{
		HASH_DEL(rows, sr);
		free(sr);
	}
	if (!rc && pos != end)
		rc = -EUCLEAN;
	if (rc == -EUCLEAN) {
		vr_err("logstore",
		       "segment %016" PRIx64 " offset %" PRIu64
		       ": frame records do not continue their WAL",
		       log->w.id, frame_off);
		return rc;
	}
	while (!rc && pos < size) {
		size_t ks = pos + VR_LOG_MARK_HDR <= size ? f[pos] : 0;
		size_t vs = ks ? f[pos + 1] : 0;

		if (!ks || ks > VR_LOG_MAX_MARK_KEY || vs > VR_LOG_MAX_MARK_VAL ||
		    VR_LOG_MARK_HDR + ks + vs > size - pos) {
			vr_err("logstore", "segment %016" PRIx64 " offset %" PRIu64 ": a bad mark",
			       log->w.id, frame_off);
			return -EUCLEAN;
		}
		put_mark(log, wb, f + pos + VR_LOG_MARK_HDR, ks, f + pos + VR_LOG_MARK_HDR + ks,
		         vs);
		pos += VR_LOG_MARK_HDR + ks + vs;
	}
	return rc;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Segment ids present on disk, sorted. */
static int
list_segments(struct vr_log *log, uint64_t **ids, size_t *n)
{
	DIR *d = opendir(log->seg_dir);
	struct dirent *e;
	size_t cap = 0;

	*ids = NULL;
	*n = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		uint64_t id = strtoull(e->d_name, &end, 16);

		if (strlen(e->d_name) != 20 || strcmp(end, ".seg"))
			continue;
		if (*n == cap) {
			uint64_t *p = realloc(*ids, (cap = cap ? cap * 2 : 16) * sizeof(*p));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			*ids = p;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	if (*n > 1)
		qsort(*ids, *n, sizeof(**ids), cmp_u64);
	return 0;
}

/* *zero: every byte of fd in [from, to) is zero (zeros ahead, S2). 0 or -errno. */
static int
all_zero(int fd, uint64_t from, uint64_t to, bool *zero)
{
	enum { CHUNK = 64 << 10 };
	uint8_t *buf = malloc(CHUNK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	*zero = true;
	while (from < to && *zero) {
		size_t n = to - from < CHUNK ? (size_t)(to - from) : CHUNK;
		ssize_t k = pread(fd, buf, n, (off_t)from);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EIO;
			break;
		}
		*zero = buf[0] == 0 && !memcmp(buf, buf + 1, (size_t)k - 1);
		from += (uint64_t)k;
	}
	free(buf);
	return rc;
}

int
vr_seg_recover(struct vr_log *log)
{
	struct seg_writer *w = &log->w;
	uint8_t ckey = META_CHECKPOINT;
	uint64_t *ids = NULL, replayed = 0, cut = 0;
	bool seen_ckpt = false;
	char *err = NULL, *v;
	size_t n_ids = 0, vsize;
	int rc;

	v = rocksdb_get_cf(log->db, log->ro, log->cf[CF_META], (const char *)&ckey, 1, &vsize,
	                   &err);
	if (err)
		return vr_log_rdb_err("rocksdb_get_cf(meta)", err);
	w->id = 1;
	w->off = 0;
	w->next_seq = 1;
	if (v) {
		if (vsize != CHECKPOINT_SIZE) {
			rocksdb_free(v);
			return -EUCLEAN;
		}
		w->id = vr_get_be64((uint8_t *)v);
		w->off = vr_get_be64((uint8_t *)v + 8);
		w->next_seq = vr_get_be64((uint8_t *)v + 16);
		rocksdb_free(v);
	}
	rc = list_segments(log, &ids, &n_ids);
	if (rc)
		return rc;

	rc = 0;
	for (size_t i = 0; i < n_ids && !rc; i++) {
		bool last = i + 1 == n_ids, zero_tail;
		uint64_t pos, written;
		char path[4096];
		struct stat sb;
		int fd;

		if (ids[i] < w->id)
			continue;
		if (ids[i] > w->id) {
			/* A segment after the checkpoint's: it starts at its beginning. */
			if (w->off && !seen_ckpt) {
				vr_err("logstore",
				       "segment %016" PRIx64 " named by the index is missing",
				       w->id);
				rc = -EUCLEAN;
				break;
			}
			w->id = ids[i];
			w->off = 0;
		}
		seen_ckpt = true;
		seg_path(log, ids[i], path, sizeof(path));
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb)) {
			rc = -errno;
			vr_err("logstore", "open %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			break;
		}
		if ((uint64_t)sb.st_size < w->off) {
			vr_err("logstore", "%s is shorter than its indexed part", path);
			close(fd);
			rc = -EUCLEAN;
			break;
		}
		rc = vr_seg_counter(log, META_SEG_WRITTEN, ids[i], &written);
		pos = w->off;
		while (!rc && pos < (uint64_t)sb.st_size) {
			uint8_t hdr[FRAME_HDR_SIZE];
			uint64_t body, rec_bytes = 0;
			struct chunk_loc whole;
			rocksdb_writebatch_t *wb;

			if (pread(fd, hdr, sizeof(hdr), (off_t)pos) != (ssize_t)sizeof(hdr) ||
			    vr_get_be32(hdr) != FRAME_MAGIC || vr_get_be64(hdr + 8) != w->next_seq)
				break;
			body = vr_get_be32(hdr + 16);
			if (body > (uint64_t)sb.st_size - pos - FRAME_HDR_SIZE)
				break;
			whole = (struct chunk_loc){
			    .seg = ids[i], .off = pos, .size = (uint32_t)(FRAME_HDR_SIZE + body)};
			rc = vr_seg_read(log, &whole, &w->stage, &w->stage_cap);
			if (rc)
				break;
			if (vr_crc32c(w->stage + 8, FRAME_HDR_SIZE - 8 + body) !=
			    vr_get_be32(hdr + 4))
				break;
			w->id = ids[i];
			wb = rocksdb_writebatch_create();
			rc =
			    replay_frame(log, w->stage, FRAME_HDR_SIZE + body, pos, &rec_bytes, wb);
			if (rc) {
				rocksdb_writebatch_destroy(wb);
				break;
			}
			pos += FRAME_HDR_SIZE + body;
			w->off = pos;
			w->next_seq++;
			written += rec_bytes;
			replayed++;
			put_counter(log, wb, META_SEG_WRITTEN, ids[i], written);
			put_checkpoint(log, wb);
			rocksdb_write(log->db, log->wo_async, wb, &err);
			rocksdb_writebatch_destroy(wb);
			if (err)
				rc = vr_log_rdb_err("rocksdb_write(recovery)", err);
		}
		zero_tail = false;
		if (!rc && pos < (uint64_t)sb.st_size && last) {
			rc = all_zero(fd, pos, (uint64_t)sb.st_size, &zero_tail);
			if (rc)
				vr_err("logstore", "read %s: %s", path, strerror(-rc));
		}
		if (!rc && pos < (uint64_t)sb.st_size && !zero_tail) {
			if (!last) {
				vr_err("logstore",
				       "%s: bad frame at offset %" PRIu64
				       " before the last segment: refusing to open",
				       path, pos);
				rc = -EUCLEAN;
			} else if (ftruncate(fd, (off_t)pos) || fdatasync(fd)) {
				rc = -errno;
				vr_err("logstore", "truncate torn tail of %s: %s", path,
				       strerror(errno));
			} else {
				cut = (uint64_t)sb.st_size - pos;
			}
		}
		if (!rc && last) {
			w->fd = fd;
			w->id = ids[i];
			w->off = pos;
			w->zeroed = zero_tail ? (uint64_t)sb.st_size : pos;
			w->written = written;
		} else {
			close(fd);
		}
	}
	free(ids);
	if (!rc && !seen_ckpt && w->off) {
		vr_err("logstore", "segment %016" PRIx64 " named by the index is missing", w->id);
		rc = -EUCLEAN;
	}
	if (rc)
		return rc;
	if (w->fd < 0) {
		rc = create_segment(log, w->id);
		if (rc)
			return rc;
	}
	if (replayed || cut) {
		vr_warn("logstore",
		        "recovery: %" PRIu64 " frames re-indexed, %" PRIu64
		        " bytes of torn tail discarded",
		        replayed, cut);
		rocksdb_flush_wal(log->db, 1, &err);
		rc = vr_log_rdb_err("rocksdb_flush_wal", err);
	}
	return rc;
}

int
vr_seg_collect(struct vr_log *log)
{
	uint8_t lo[1] = {META_SEG_WRITTEN}, hi[1] = {META_SEG_WRITTEN + 1};
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	/* Segments at or after the one being appended to are never collected. A stale value is
	 * only older, which collects less. */
	uint64_t active = __atomic_load_n(&log->w.id, __ATOMIC_ACQUIRE);
	char *err = NULL;
	int rc = 0;

	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 1);
	it = rocksdb_create_iterator_cf(log->db, ro, log->cf[CF_META]);
	for (rocksdb_iter_seek(it, (const char *)lo, 1); rocksdb_iter_valid(it) && !rc;
	     rocksdb_iter_next(it)) {
		size_t ksize, vsize;
		const char *k = rocksdb_iter_key(it, &ksize);
		const char *v = rocksdb_iter_value(it, &vsize);
		uint64_t id, written, dead;
		uint8_t wkey[9], dkey[9];
		char path[4096];
		rocksdb_writebatch_t *wb;

		if (ksize != 9 || vsize != 8)
			continue;
		id = vr_get_be64((const uint8_t *)k + 1);
		written = vr_get_be64((const uint8_t *)v);
		if (id >= active)
			continue;
		rc = vr_seg_counter(log, META_SEG_DEAD, id, &dead);
		if (rc || dead < written)
			continue;
		drop_fd(log, id);
		seg_path(log, id, path, sizeof(path));
		if (unlink(path) && errno != ENOENT) {
			rc = -errno;
			vr_err("logstore", "unlink %s: %s", path, strerror(errno));
			break;
		}
		counter_key(wkey, META_SEG_WRITTEN, id);
		counter_key(dkey, META_SEG_DEAD, id);
		wb = rocksdb_writebatch_create();
		rocksdb_writebatch_delete_cf(wb, log->cf[CF_META], (const char *)wkey, 9);
		rocksdb_writebatch_delete_cf(wb, log->cf[CF_META], (const char *)dkey, 9);
		rocksdb_write(log->db, log->wo_async, wb, &err);
		rocksdb_writebatch_destroy(wb);
		rc = vr_log_rdb_err("rocksdb_write(collect)", err);
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		rc = vr_log_rdb_err("rocksdb_iter(meta)", err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rc;
}
