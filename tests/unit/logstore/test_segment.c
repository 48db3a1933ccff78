// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:segment — the segment files under the index: rolling, whole-segment reclaim after
 * trim, re-indexing frames whose index writes were lost (S1, S4), cutting a torn tail (S2), and
 * refusing to open over corruption or a missing segment (S3), the marks a frame carries with
 * its records, and the zeros written ahead of the frames (kept after a crash, cut when the
 * writer moves on or closes). Real files, real RocksDB.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vr_crc.h"
#include "vr_log.h"
#include "vr_test.h"

enum { REC_CAP = 1024, PER_CALL = 10, SEG_SIZE = 64 << 10 };

static struct vr_log *
open_small(const char *dir)
{
	struct vr_log_opts o = {.segment_size = SEG_SIZE};
	struct vr_log *log = vr_log_open(dir, &o);

	ck_assert_msg(log, "vr_log_open: %s", strerror(errno));
	return log;
}

static void
append_calls(struct vr_log *log, struct vr_test_wal *w, unsigned n_wals, int calls)
{
	static uint8_t buf[PER_CALL][REC_CAP];
	struct iovec iov[PER_CALL];
	struct vr_log_durable d[PER_CALL];

	for (int c = 0; c < calls; c++) {
		struct vr_test_wal *x = &w[(unsigned)c % n_wals];
		int rc;

		for (int i = 0; i < PER_CALL; i++) {
			iov[i].iov_base = buf[i];
			iov[i].iov_len = vr_test_wal_next(x, 400, buf[i], REC_CAP);
			if (x->lsn == 1)
				x->n_members = 0; /* as the dataplane writes: the seed names them */
		}
		rc = vr_log_append(log, iov, PER_CALL, d, NULL, NULL);
		ck_assert_msg(rc == 0, "append: %s", vr_rec_strerror(rc));
	}
}

static void
check_wal(struct vr_log *log, const struct vr_test_wal *w)
{
	struct vr_log_stream st;
	uint64_t n;

	ck_assert_int_eq(vr_log_stream_get(log, &w->id, &st), 0);
	ck_assert_uint_eq(st.last_lsn, w->lsn);
	ck_assert_mem_eq(st.last_entropy, w->entropy, VR_REC_ENTROPY_SIZE);
	ck_assert_int_eq(vr_log_verify(log, &w->id, &n), 0);
	ck_assert_uint_eq(n, w->lsn - st.trim_lsn);
}

static int
count_segments(const char *dir, char *last, size_t cap)
{
	char path[512];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/seg", dir);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	if (last)
		last[0] = 0;
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, ".seg"))
			continue;
		n++;
		if (last && strcmp(e->d_name, last) > 0)
			snprintf(last, cap, "%.60s", e->d_name);
	}
	closedir(d);
	return n;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

START_TEST(segments_roll_and_reads_cross_them)
{
	char *dir = vr_test_tmpdir("seg");
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w[3];

	for (unsigned i = 0; i < 3; i++)
		vr_test_wal_init(&w[i], 10 + i, 1, 1, 0, NULL);
	append_calls(log, w, 3, 120); /* ~550 KB: nine segments or so */
	ck_assert_int_gt(count_segments(dir, NULL, 0), 5);
	for (unsigned i = 0; i < 3; i++)
		check_wal(log, &w[i]);
	vr_log_close(log);
	log = open_small(dir);
	for (unsigned i = 0; i < 3; i++)
		check_wal(log, &w[i]);
	append_calls(log, w, 3, 30);
	for (unsigned i = 0; i < 3; i++)
		check_wal(log, &w[i]);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(trim_deletes_segments_whose_records_are_all_trimmed)
{
	char *dir = vr_test_tmpdir("seg");
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w[2];
	uint16_t members[] = {2};
	uint64_t t;
	int before, after;

	for (unsigned i = 0; i < 2; i++)
		vr_test_wal_init(&w[i], 20 + i, 1, 1, 1, members);
	append_calls(log, w, 2, 120);
	before = count_segments(dir, NULL, 0);
	/* One WAL acknowledged: segments shared with the other stay. */
	ck_assert_int_eq(vr_log_cursor_set(log, &w[0].id, 2, w[0].lsn), 0);
	ck_assert_int_eq(vr_log_trim(log, &w[0].id, &t), 0);
	ck_assert_uint_eq(t, w[0].lsn - PER_CALL);
	ck_assert_int_eq(count_segments(dir, NULL, 0), before);
	/* Both acknowledged: all but the segments holding each WAL's last chunk go. */
	ck_assert_int_eq(vr_log_cursor_set(log, &w[1].id, 2, w[1].lsn), 0);
	ck_assert_int_eq(vr_log_trim(log, &w[1].id, &t), 0);
	after = count_segments(dir, NULL, 0);
	ck_assert_msg(after <= 2 && after < before, "%d segments before, %d after", before, after);
	check_wal(log, &w[0]);
	check_wal(log, &w[1]);
	vr_log_close(log);
	log = open_small(dir);
	check_wal(log, &w[0]);
	check_wal(log, &w[1]);
	append_calls(log, w, 2, 4);
	check_wal(log, &w[1]);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(frames_whose_index_writes_were_lost_are_reindexed)
{
	char *dir = vr_test_tmpdir("seg"), saved[600];
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w[4], w_a[4];
	struct vr_log_stream st;

	for (unsigned i = 0; i < 4; i++) {
		uint16_t member = (uint16_t)(2 + i);

		vr_test_wal_init(&w[i], 30 + i, 1, 1, 1, &member);
	}
	append_calls(log, w, 2, 10); /* phase A: WALs 0 and 1 */
	vr_log_close(log);
	memcpy(w_a, w, sizeof(w));
	snprintf(saved, sizeof(saved), "%s.index-a", dir);
	sh("cp -a '%s/index' '%s'", dir, saved);

	log = open_small(dir);
	append_calls(log, w, 4, 100); /* phase B: all four, across several segments */
	vr_log_close(log);

	/* The index forgets phase B (as after a power cut before its unsynced write landed). */
	sh("rm -rf '%s/index'", dir);
	sh("mv '%s' '%s/index'", saved, dir);
	log = open_small(dir);
	for (unsigned i = 0; i < 4; i++) {
		ck_assert_uint_gt(w[i].lsn, w_a[i].lsn);
		check_wal(log, &w[i]);
		/* The members: from the indexed row (0, 1) or the re-indexed seed (2, 3). */
		ck_assert_int_eq(vr_log_stream_get(log, &w[i].id, &st), 0);
		ck_assert_uint_eq(st.n_members, 1);
		ck_assert_uint_eq(st.members[0], 2 + i);
	}
	append_calls(log, w, 4, 8);
	for (unsigned i = 0; i < 4; i++)
		check_wal(log, &w[i]);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

static off_t
file_size(const char *path)
{
	struct stat sb;

	ck_assert_int_eq(stat(path, &sb), 0);
	return sb.st_size;
}

START_TEST(torn_tail_is_cut_and_the_log_goes_on)
{
	char *dir = vr_test_tmpdir("seg"), last[64], path[700];
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w;
	uint8_t junk[300];
	off_t good;
	int fd;

	vr_test_wal_init(&w, 40, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 3);
	vr_log_close(log);
	count_segments(dir, last, sizeof(last));
	snprintf(path, sizeof(path), "%s/seg/%s", dir, last);
	good = file_size(path);

	/* A torn frame: a plausible header (magic, next seq, body size) and half a body. */
	memset(junk, 0x77, sizeof(junk));
	memcpy(junk, "VRF1", 4);
	memset(junk + 8, 0, 8);
	junk[15] = 4; /* seq 4 follows three frames */
	memset(junk + 16, 0, 4);
	junk[18] = 0x10; /* body 4096 bytes: more than is there */
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);

	log = open_small(dir);
	ck_assert_int_eq(file_size(path), good);
	check_wal(log, &w);
	append_calls(log, &w, 1, 2);
	check_wal(log, &w);
	vr_log_close(log);

	/* Same with a complete frame whose CRC is wrong. */
	good = file_size(path);
	fd = open(path, O_RDWR);
	ck_assert_int_eq(pread(fd, junk, 200, 0), 200); /* first frame's bytes, at the end */
	junk[15] = 6;
	junk[16] = 0;
	junk[17] = 0;
	junk[18] = 0;
	junk[19] = 100;
	ck_assert_int_eq(pwrite(fd, junk, 132, good), 132);
	close(fd);
	log = open_small(dir);
	ck_assert_int_eq(file_size(path), good);
	check_wal(log, &w);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(corrupt_frame_before_the_last_segment_refuses_open)
{
	char *dir = vr_test_tmpdir("seg"), saved[600], path[700];
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w;
	uint8_t b;
	int fd;

	vr_test_wal_init(&w, 50, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 1);
	vr_log_close(log);
	snprintf(saved, sizeof(saved), "%s.index-a", dir);
	sh("cp -a '%s/index' '%s'", dir, saved);
	log = open_small(dir);
	append_calls(log, &w, 1, 60); /* several segments */
	vr_log_close(log);
	sh("rm -rf '%s/index'", dir);
	sh("mv '%s' '%s/index'", saved, dir);

	/* Flip a byte inside the second segment's first frame: not a torn tail, a hole. */
	snprintf(path, sizeof(path), "%s/seg/%016llx.seg", dir, 2ull);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, 100), 1);
	b ^= 0x20;
	ck_assert_int_eq(pwrite(fd, &b, 1, 100), 1);
	close(fd);
	errno = 0;
	ck_assert_ptr_null(vr_log_open(dir, &(struct vr_log_opts){.segment_size = SEG_SIZE}));
	ck_assert_int_eq(errno, EUCLEAN);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(missing_indexed_segment_refuses_open)
{
	char *dir = vr_test_tmpdir("seg"), last[64], path[700];
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w;

	vr_test_wal_init(&w, 60, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 3);
	vr_log_close(log);
	count_segments(dir, last, sizeof(last));
	snprintf(path, sizeof(path), "%s/seg/%s", dir, last);
	ck_assert_int_eq(unlink(path), 0);
	errno = 0;
	ck_assert_ptr_null(vr_log_open(dir, &(struct vr_log_opts){.segment_size = SEG_SIZE}));
	ck_assert_int_eq(errno, EUCLEAN);
	vr_test_rmdir(dir);
}
END_TEST

/* One call of PER_CALL records of w carrying marks. */
static int
append_marked(struct vr_log *log, struct vr_test_wal *w, const struct vr_log_mark *marks,
              unsigned n_marks)
{
	static uint8_t buf[PER_CALL][REC_CAP];
	struct iovec iov[PER_CALL];
	struct vr_log_durable d[PER_CALL];
	struct vr_test_wal before = *w;
	int rc;

	for (int i = 0; i < PER_CALL; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = vr_test_wal_next(w, 100, buf[i], REC_CAP);
		if (w->lsn == 1)
			w->n_members = 0;
	}
	rc = vr_log_append_marked(log, 0, iov, PER_CALL, marks, n_marks, d, NULL, NULL);
	if (rc)
		*w = before;
	return rc;
}

static void
mark_is(struct vr_log *log, const char *key, const char *val)
{
	char got[VR_LOG_MAX_MARK_VAL + 1];
	size_t n = 0;
	int rc = vr_log_meta_get(log, key, strlen(key), got, sizeof(got) - 1, &n);

	if (!val) {
		ck_assert_msg(rc == -ENOENT, "mark %s: %d, want none", key, rc);
		return;
	}
	ck_assert_msg(rc == 0, "mark %s: %s", key, strerror(-rc));
	got[n] = 0;
	ck_assert_str_eq(got, val);
}

#define MARK(k, v)                                                                                 \
	{                                                                                          \
		.key = (k), .key_size = sizeof(k) - 1, .val = (v), .val_size = sizeof(v) - 1       \
	}

struct listed {
	char keys[8][VR_LOG_MAX_MARK_KEY + 1];
	unsigned n;
};

static int
list_key(const void *key, size_t key_size, const void *val, size_t val_size, void *arg)
{
	struct listed *l = arg;

	(void)val;
	(void)val_size;
	ck_assert_uint_lt(l->n, 8);
	memcpy(l->keys[l->n], key, key_size);
	l->keys[l->n++][key_size] = 0;
	return 0;
}

/* The last frame of the only segment: its offset and size. */
static void
last_frame(int fd, off_t *off, size_t *size)
{
	uint8_t hdr[32];
	off_t pos = 0;

	/* Up to the first offset without a frame's magic: zeros ahead, or the file's end. */
	while (pread(fd, hdr, sizeof(hdr), pos) == (ssize_t)sizeof(hdr) &&
	       !memcmp(hdr, "VRF1", 4)) {
		size_t body =
		    (size_t)hdr[16] << 24 | (size_t)hdr[17] << 16 | (size_t)hdr[18] << 8 | hdr[19];

		*off = pos;
		*size = 32 + body;
		pos += (off_t)(32 + body);
	}
}

/* Where the frames of a segment file end. */
static off_t
frames_end(const char *path)
{
	int fd = open(path, O_RDONLY);
	off_t off = 0;
	size_t size = 0;

	ck_assert_int_ge(fd, 0);
	last_frame(fd, &off, &size);
	close(fd);
	return off + (off_t)size;
}

START_TEST(marks_ride_with_their_frame)
{
	char *dir = vr_test_tmpdir("seg"), saved[600], last[64], path[700];
	struct vr_log *log = vr_log_open(dir, NULL);
	struct vr_log_mark m1[] = {MARK("pa", "one"), MARK("pb", "b1")}, m2[] = {MARK("pa", "two")},
	                   m3[] = {MARK("pc", "c"), MARK("pa", "x"), MARK("pa", "three")},
	                   bad_key[] = {{.key = "k", .key_size = 0}},
	                   bad_val[] = {{.key = "k", .key_size = 1, .val = saved, .val_size = 65}};
	struct vr_test_wal w;
	struct listed l = {0};
	uint8_t *frame;
	size_t size = 0;
	off_t off = 0;
	int fd;

	ck_assert_ptr_nonnull(log);
	vr_test_wal_init(&w, 80, 1, 1, 0, NULL);
	ck_assert_int_eq(append_marked(log, &w, m1, 2), 0);
	mark_is(log, "pa", "one");
	mark_is(log, "pb", "b1");
	/* A mark out of bounds refuses the whole call: no records, no marks, no sticky error. */
	ck_assert_int_eq(append_marked(log, &w, bad_key, 1), -EINVAL);
	ck_assert_int_eq(append_marked(log, &w, bad_val, 1), -EINVAL);
	ck_assert_int_eq(vr_log_error(log), 0);
	check_wal(log, &w);
	vr_log_close(log);
	snprintf(saved, sizeof(saved), "%s.index-a", dir);
	sh("cp -a '%s/index' '%s'", dir, saved);

	/* Later marks replace earlier ones, in call order within a call too. */
	log = vr_log_open(dir, NULL);
	ck_assert_int_eq(append_marked(log, &w, m2, 1), 0);
	ck_assert_int_eq(vr_log_meta_put(log, "qz", 2, "other", 5), 0);
	ck_assert_int_eq(append_marked(log, &w, m3, 3), 0);
	mark_is(log, "pa", "three");
	mark_is(log, "pc", "c");
	vr_log_close(log);

	/* The index forgets the last two calls: their marks come back from their frames. */
	sh("rm -rf '%s/index'", dir);
	sh("mv '%s' '%s/index'", saved, dir);
	log = vr_log_open(dir, NULL);
	ck_assert_ptr_nonnull(log);
	check_wal(log, &w);
	mark_is(log, "pa", "three");
	mark_is(log, "pb", "b1");
	mark_is(log, "pc", "c");
	mark_is(log, "qz", NULL); /* a meta put is not in a frame: it was in the lost index */
	ck_assert_int_eq(vr_log_meta_foreach(log, "p", 1, list_key, &l), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.keys[0], "pa");
	ck_assert_str_eq(l.keys[1], "pb");
	ck_assert_str_eq(l.keys[2], "pc");
	vr_log_close(log);

	/*
	 * A frame whose records are whole and whose CRC matches but whose mark is malformed
	 * (key size 0) is corruption, not a torn tail: the store refuses to open over it.
	 */
	sh("cp -a '%s/index' '%s'", dir, saved);
	log = vr_log_open(dir, NULL);
	ck_assert_int_eq(append_marked(log, &w, m2, 1), 0);
	vr_log_close(log);
	sh("rm -rf '%s/index'", dir);
	sh("mv '%s' '%s/index'", saved, dir);
	ck_assert_int_eq(count_segments(dir, last, sizeof(last)), 1);
	snprintf(path, sizeof(path), "%s/seg/%s", dir, last);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	last_frame(fd, &off, &size);
	frame = malloc(size);
	ck_assert_int_eq(pread(fd, frame, size, off), (ssize_t)size);
	ck_assert_uint_eq(frame[27], 2 + 2 + 3); /* marks_size: one mark, "pa" -> "two" */
	frame[size - 7] = 0;
	{
		uint32_t crc = vr_crc32c(frame + 8, size - 8);

		frame[4] = (uint8_t)(crc >> 24);
		frame[5] = (uint8_t)(crc >> 16);
		frame[6] = (uint8_t)(crc >> 8);
		frame[7] = (uint8_t)crc;
	}
	ck_assert_int_eq(pwrite(fd, frame, size, off), (ssize_t)size);
	close(fd);
	free(frame);
	errno = 0;
	ck_assert_ptr_null(vr_log_open(dir, NULL));
	ck_assert_int_eq(errno, EUCLEAN);
	vr_test_rmdir(dir);
}
END_TEST

/* Every byte of path in [from, to) is zero. */
static bool
zeros_between(const char *path, off_t from, off_t to)
{
	static uint8_t buf[1 << 20];
	int fd = open(path, O_RDONLY);
	bool zero = true;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_le(to - from, (off_t)sizeof(buf));
	ck_assert_int_eq(pread(fd, buf, (size_t)(to - from), from), (ssize_t)(to - from));
	for (off_t i = 0; i < to - from; i++)
		zero = zero && !buf[i];
	close(fd);
	return zero;
}

START_TEST(zeros_ahead_are_written_while_open_and_cut_on_close)
{
	char *dir = vr_test_tmpdir("seg"), last[64], path[700];
	struct vr_log *log = vr_log_open(dir, NULL);
	struct vr_test_wal w;
	off_t end, size;

	vr_test_wal_init(&w, 80, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 5);
	count_segments(dir, last, sizeof(last));
	snprintf(path, sizeof(path), "%s/seg/%s", dir, last);
	end = frames_end(path);
	size = file_size(path);
	ck_assert_int_gt(end, 5 * 32);
	/* The first frame wrote 1 MiB of zeros after itself; the next four went into them. */
	ck_assert_int_gt(size, end);
	ck_assert_int_le(size, end + (1 << 20));
	ck_assert(zeros_between(path, end, size));
	vr_log_close(log);
	ck_assert_int_eq(file_size(path), end);
	log = vr_log_open(dir, NULL);
	check_wal(log, &w);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(zero_tail_left_by_a_crash_is_kept_and_written_over)
{
	char *dir = vr_test_tmpdir("seg"), crash[600], last[64], path[700];
	struct vr_log *log = vr_log_open(dir, NULL);
	struct vr_test_wal w, w2;
	off_t end, size;

	/* A copy taken while the log is open is the log as a crash would leave it. */
	vr_test_wal_init(&w, 81, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 3);
	snprintf(crash, sizeof(crash), "%s.crash", dir);
	sh("cp -a '%s' '%s'", dir, crash);
	vr_log_close(log);
	count_segments(crash, last, sizeof(last));
	snprintf(path, sizeof(path), "%s/seg/%s", crash, last);
	end = frames_end(path);
	size = file_size(path);
	ck_assert_int_gt(size, end);
	w2 = w;

	log = vr_log_open(crash, NULL);
	ck_assert_int_eq(file_size(path), size); /* zeros are not a torn tail: nothing cut */
	check_wal(log, &w);
	append_calls(log, &w, 1, 2);
	check_wal(log, &w);
	ck_assert_int_eq(file_size(path), size); /* the new frames went into the zeros */
	ck_assert_int_gt(frames_end(path), end);
	vr_log_close(log);
	ck_assert_int_eq(file_size(path), frames_end(path));
	log = vr_log_open(crash, NULL);
	check_wal(log, &w);
	vr_log_close(log);
	sh("rm -rf '%s'", crash);

	/* A torn frame inside the zeros is a torn tail: cut at the last whole frame. */
	sh("cp -a '%s' '%s'", dir, crash);
	{
		uint8_t junk[200];
		int fd;

		/* The closed original has no zeros: put them back, then a torn frame into them. */
		snprintf(path, sizeof(path), "%s/seg/%s", crash, last);
		ck_assert_int_eq(truncate(path, size), 0);
		memset(junk, 0x5a, sizeof(junk));
		memcpy(junk, "VRF1", 4);
		fd = open(path, O_WRONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), end + 4096), (ssize_t)sizeof(junk));
		close(fd);
	}
	log = vr_log_open(crash, NULL);
	ck_assert_int_eq(file_size(path), end);
	check_wal(log, &w2);
	vr_log_close(log);
	sh("rm -rf '%s'", crash);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(earlier_segments_end_at_their_last_frame)
{
	char *dir = vr_test_tmpdir("seg"), last[64], path[700];
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w;
	int n;

	vr_test_wal_init(&w, 82, 1, 1, 0, NULL);
	append_calls(log, &w, 1, 40);
	n = count_segments(dir, last, sizeof(last));
	ck_assert_int_ge(n, 3);
	/* While the log is open: every segment it moved on from was cut back to its last frame. */
	for (int id = 1; id < n; id++) {
		snprintf(path, sizeof(path), "%s/seg/%016llx.seg", dir, (unsigned long long)id);
		ck_assert_int_eq(file_size(path), frames_end(path));
	}
	snprintf(path, sizeof(path), "%s/seg/%s", dir, last);
	ck_assert_int_ge(file_size(path), frames_end(path));
	ck_assert_int_le(file_size(path), SEG_SIZE + 4096 * PER_CALL);
	vr_log_close(log);
	log = open_small(dir);
	check_wal(log, &w);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(oversized_append_is_refused)
{
	char *dir = vr_test_tmpdir("seg");
	struct vr_log *log = open_small(dir);
	struct vr_test_wal w;
	static uint8_t rec[4096];
	struct iovec *iov;
	struct vr_log_durable *d;
	size_t len;
	unsigned n;

	vr_test_wal_init(&w, 70, 1, 1, 0, NULL);
	vr_test_wal_next(&w, 0, rec, sizeof(rec));
	len = vr_test_wal_next(&w, 3900, rec, sizeof(rec));
	n = (unsigned)(VR_LOG_MAX_APPEND_BYTES / len + 1);
	iov = malloc(n * sizeof(*iov));
	d = malloc(n * sizeof(*d));
	for (unsigned i = 0; i < n; i++)
		iov[i] = (struct iovec){rec, len};
	ck_assert_int_eq(vr_log_append(log, iov, n, d, NULL, NULL), -E2BIG);
	ck_assert_int_eq(vr_log_error(log), 0);
	free(iov);
	free(d);
	vr_log_close(log);
	vr_test_rmdir(dir);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    segments_roll_and_reads_cross_them,
	    trim_deletes_segments_whose_records_are_all_trimmed,
	    frames_whose_index_writes_were_lost_are_reindexed,
	    torn_tail_is_cut_and_the_log_goes_on,
	    corrupt_frame_before_the_last_segment_refuses_open,
	    missing_indexed_segment_refuses_open,
	    oversized_append_is_refused,
	    marks_ride_with_their_frame,
	    zeros_ahead_are_written_while_open_and_cut_on_close,
	    zero_tail_left_by_a_crash_is_kept_and_written_over,
	    earlier_segments_end_at_their_last_frame,
	};

	return vr_test_run("logstore:segment", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
