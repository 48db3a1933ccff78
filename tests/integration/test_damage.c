// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:damage — figure 4 of issue 6: a log damaged at its tail or, separately, in its
 * middle, then opened again as the dataplane opens it (vr_log_opts.verify). Each trial writes a
 * fresh log (4 WALs, about 60 group commits over several 64 KiB segments), closes it, damages
 * it one way, and reopens it. Two outcomes are allowed:
 *
 *   prefix   it opens, and every WAL reads back (and verifies) as a gap-free prefix of what was
 *            written, byte for byte, and takes the next record; nothing reported durable is
 *            missing unless the damage reached it (counted: the sender refills those);
 *   refused  it does not open (EUCLEAN or EIO) and says where (segment or WAL) on stderr.
 *
 * Anything else (it opens with a WAL that reads short of its row, breaks its chain, or differs
 * from what was written) is a silent hole, and fails the trial.
 *
 * Damage, tail (even trials): a bit flipped, bytes zeroed or the file cut in the last 4 KiB of
 * the last segment; or bytes appended after its end (a torn frame that was never indexed).
 * Middle (odd trials): a bit flipped or bytes zeroed anywhere before the last 4 KiB, an earlier
 * segment cut short or deleted, or a byte of the RocksDB index changed.
 * Trials: $VR_DAMAGE_TRIALS (default 100). Seed: $VR_TEST_SEED.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vr_log.h"
#include "vr_test.h"

enum { N_WALS = 4, GROUPS = 60, MAX_GROUP = 32, SEG_SIZE = 64 << 10, TAIL = 4096 };

static unsigned seed;

static unsigned
rnd(unsigned n)
{
	return n ? (unsigned)rand_r(&seed) % n : 0;
}

/* The files of dir with a name ending in suffix (NULL: every regular file), sorted. */
static int
files_of(const char *dir, const char *suffix, char names[][300], int max)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_msg(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) && n < max) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.' || e->d_type != DT_REG)
			continue;
		if (suffix &&
		    (l < strlen(suffix) || strcmp(e->d_name + l - strlen(suffix), suffix)))
			continue;
		snprintf(names[n++], 300, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, 300, (int (*)(const void *, const void *))strcmp);
	return n;
}

static off_t
size_of(const char *path)
{
	struct stat sb;

	ck_assert_int_eq(stat(path, &sb), 0);
	return sb.st_size;
}

static void
flip_bit(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, at), 1);
	b ^= (uint8_t)(1u << rnd(8));
	ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void
zero_range(const char *path, off_t at, size_t n)
{
	static const uint8_t zero[512];
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, zero, n, at), (ssize_t)n);
	close(fd);
}

static void
append_garbage(const char *path, size_t n)
{
	uint8_t buf[4096];
	int fd = open(path, O_WRONLY | O_APPEND);

	ck_assert_int_ge(fd, 0);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)rnd(256);
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

/* A fresh log in dir: N_WALS WALs written in GROUPS random group commits; durable[] per WAL. */
static void
write_log(const char *dir, struct vr_test_wal w[N_WALS], uint64_t durable[N_WALS])
{
	static uint8_t buf[MAX_GROUP][1024];
	struct vr_log_opts o = {.segment_size = SEG_SIZE};
	struct vr_log *log = vr_log_open(dir, &o);

	ck_assert_msg(log, "open %s: %s", dir, strerror(errno));
	for (int i = 0; i < N_WALS; i++) {
		vr_test_wal_init(&w[i], 900 + (uint64_t)i, 1, 1, 0, NULL);
		durable[i] = 0;
	}
	for (int g = 0; g < GROUPS; g++) {
		struct iovec iov[MAX_GROUP];
		struct vr_log_durable d[MAX_GROUP];
		unsigned n = 1 + rnd(MAX_GROUP), nd, bad;

		for (unsigned k = 0; k < n; k++) {
			struct vr_test_wal *x = &w[rnd(N_WALS)];

			iov[k].iov_base = buf[k];
			iov[k].iov_len =
			    vr_test_wal_next(x, vr_test_payload_size(&x->id, x->lsn + 1, 400),
			                     buf[k], sizeof(buf[k]));
		}
		ck_assert_int_eq(vr_log_append(log, iov, n, d, &nd, &bad), 0);
		for (unsigned k = 0; k < nd; k++)
			for (int i = 0; i < N_WALS; i++)
				if (d[k].stream.account == w[i].id.account)
					durable[i] = d[k].lsn;
	}
	vr_log_close(log);
}

/* What a trial did, for the failure message. */
static char what[256];

static void
damage_tail(const char *seg)
{
	off_t size = size_of(seg), from = size > TAIL ? size - TAIL : 0;

	switch (rnd(4)) {
	case 0:
		snprintf(what, sizeof(what), "tail: bit flipped in %s", seg);
		flip_bit(seg, from + (off_t)rnd((unsigned)(size - from)));
		break;
	case 1: {
		off_t at = from + (off_t)rnd((unsigned)(size - from));
		size_t n = 1 + rnd(512);

		if (at + (off_t)n > size)
			n = (size_t)(size - at);
		snprintf(what, sizeof(what), "tail: %zu bytes zeroed at %lld of %s", n,
		         (long long)at, seg);
		zero_range(seg, at, n);
		break;
	}
	case 2: {
		off_t at = from + (off_t)rnd((unsigned)(size - from));

		snprintf(what, sizeof(what), "tail: %s cut at %lld of %lld", seg, (long long)at,
		         (long long)size);
		ck_assert_int_eq(truncate(seg, at), 0);
		break;
	}
	default: {
		size_t n = 1 + rnd(4096);

		snprintf(what, sizeof(what), "tail: %zu bytes of a torn frame after %s", n, seg);
		append_garbage(seg, n);
		break;
	}
	}
}

static void
damage_middle(const char *dir, char segs[][300], int n_segs)
{
	char index[512], files[64][300];
	const char *seg = segs[rnd((unsigned)n_segs)];
	off_t size = size_of(seg),
	      end = seg == segs[n_segs - 1] && size > TAIL ? size - TAIL : size;
	unsigned kind = rnd(5);
	int n;

	if (n_segs == 1 && (kind == 2 || kind == 3))
		kind = 4; /* no earlier segment to cut or delete */
	switch (kind) {
	case 0:
		snprintf(what, sizeof(what), "middle: bit flipped in %s", seg);
		flip_bit(seg, (off_t)rnd((unsigned)end));
		break;
	case 1: {
		off_t at = (off_t)rnd((unsigned)end);
		size_t k = 1 + rnd(512);

		if (at + (off_t)k > end)
			k = (size_t)(end - at);
		snprintf(what, sizeof(what), "middle: %zu bytes zeroed at %lld of %s", k,
		         (long long)at, seg);
		zero_range(seg, at, k ? k : 1);
		break;
	}
	case 2:
		seg = segs[rnd((unsigned)n_segs - 1)];
		snprintf(what, sizeof(what), "middle: %s cut to half", seg);
		ck_assert_int_eq(truncate(seg, size_of(seg) / 2), 0);
		break;
	case 3:
		seg = segs[rnd((unsigned)n_segs - 1)];
		snprintf(what, sizeof(what), "middle: %s deleted", seg);
		ck_assert_int_eq(unlink(seg), 0);
		break;
	default:
		snprintf(index, sizeof(index), "%s/index", dir);
		n = files_of(index, NULL, files, 64);
		ck_assert_int_gt(n, 0);
		seg = files[rnd((unsigned)n)];
		if (!size_of(seg)) {
			snprintf(what, sizeof(what), "middle: index file %s (empty) left alone",
			         seg);
			break;
		}
		snprintf(what, sizeof(what), "middle: bit flipped in index file %s", seg);
		flip_bit(seg, (off_t)rnd((unsigned)size_of(seg)));
		break;
	}
}

static char self[512];

/* --open: a fresh process opens dir as the dataplane does; exit 0, or the errno of a refusal. */
static int
open_main(const char *dir)
{
	struct vr_log *log =
	    vr_log_open(dir, &(struct vr_log_opts){.segment_size = SEG_SIZE, .verify = true});

	if (!log)
		return errno ? errno : 1;
	vr_log_close(log);
	return 0;
}

/*
 * Opens dir as the dataplane does, first in a process of its own (as the dataplane is: its
 * messages are not held back by this process's rate limit on a call site that 100 trials
 * reach), with what it says on stderr captured into buf. NULL with *err when it refused.
 */
static struct vr_log *
open_capturing(const char *dir, char *buf, size_t cap, int *err)
{
	char path[512];
	struct vr_log *log;
	int fd, st;
	ssize_t n;
	pid_t pid;

	snprintf(path, sizeof(path), "%s.stderr", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (dup2(fd, 2) < 0)
			_exit(125);
		execl(self, self, "--open", dir, (char *)NULL);
		_exit(126);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) < 125, "%s: the opener ended with %d", what,
	              st);
	n = pread(fd, buf, cap - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	*err = WEXITSTATUS(st);
	if (*err)
		return NULL;
	log = vr_log_open(dir, &(struct vr_log_opts){.segment_size = SEG_SIZE, .verify = true});
	ck_assert_msg(log, "%s: opened once, then refused: %s", what, strerror(errno));
	return log;
}

/*
 * The store opened: every WAL must be a gap-free, chained prefix of what was written, and take
 * its next record. Returns the records reported durable that are missing.
 */
static uint64_t
check_prefix(struct vr_log *log, struct vr_test_wal w[N_WALS], const uint64_t durable[N_WALS])
{
	uint64_t lost = 0;

	for (int i = 0; i < N_WALS; i++) {
		struct vr_log_stream ls;
		struct vr_log_iter *it;
		struct vr_rec r;
		uint64_t expect = 1;
		int rc;

		rc = vr_log_stream_get(log, &w[i].id, &ls);
		if (rc == -ENOENT) {
			lost += durable[i];
			continue;
		}
		ck_assert_msg(rc == 0, "%s: stream_get %d", what, rc);
		ck_assert_msg(ls.last_lsn <= w[i].lsn, "%s: WAL %d longer than written", what, i);
		ck_assert_msg(vr_log_verify(log, &w[i].id, NULL) == 0,
		              "%s: opened, but WAL %d does not verify: a silent hole", what, i);
		it = vr_log_iter_open(log, &w[i].id, 1);
		ck_assert_ptr_nonnull(it);
		while ((rc = vr_log_iter_next(it, &r)) == 1) {
			ck_assert_msg(r.lsn == expect, "%s: WAL %d: LSN %llu after %llu", what, i,
			              (unsigned long long)r.lsn, (unsigned long long)expect - 1);
			ck_assert_msg(r.lsn == 1 || vr_test_payload_ok(&r),
			              "%s: WAL %d: LSN %llu is not what was written", what, i,
			              (unsigned long long)r.lsn);
			expect++;
		}
		vr_log_iter_close(it);
		ck_assert_msg(
		    rc == 0 && expect == ls.last_lsn + 1,
		    "%s: WAL %d reads to LSN %llu (rc %d), its row says %llu: a silent hole", what,
		    i, (unsigned long long)expect - 1, rc, (unsigned long long)ls.last_lsn);
		if (ls.last_lsn < durable[i])
			lost += durable[i] - ls.last_lsn;
		/* It goes on from its tail. */
		{
			struct vr_test_wal x;
			struct vr_log_durable d;
			uint8_t buf[1024];
			struct iovec iov = {.iov_base = buf};
			unsigned nd, bad;

			x = w[i];
			vr_test_wal_resume(&x, ls.last_lsn, ls.last_entropy);
			iov.iov_len = vr_test_wal_next(&x, 100, buf, sizeof(buf));
			ck_assert_msg(vr_log_append(log, &iov, 1, &d, &nd, &bad) == 0,
			              "%s: WAL %d takes no next record", what, i);
		}
	}
	return lost;
}

START_TEST(damaged_log_is_a_prefix_or_refused)
{
	const char *env = getenv("VR_DAMAGE_TRIALS"), *s = getenv("VR_TEST_SEED");
	int trials = env ? atoi(env) : 100;
	unsigned prefix[2] = {0}, refused[2] = {0}, whole[2] = {0};
	uint64_t lost[2] = {0};
	char *root = vr_test_tmpdir("damage");

	seed = s ? (unsigned)strtoul(s, NULL, 0) : 4242;
	printf("logstore:damage: %d trials, seed %u\n", trials, seed);
	for (int t = 0; t < trials; t++) {
		struct vr_test_wal w[N_WALS];
		uint64_t durable[N_WALS];
		char dir[400], segdir[420], segs[64][300], msg[8192];
		struct vr_log *log;
		int n_segs, err, mid = t & 1;

		snprintf(dir, sizeof(dir), "%s/t%d", root, t);
		write_log(dir, w, durable);
		snprintf(segdir, sizeof(segdir), "%s/seg", dir);
		n_segs = files_of(segdir, ".seg", segs, 64);
		ck_assert_int_gt(n_segs, 1);
		if (mid)
			damage_middle(dir, segs, n_segs);
		else
			damage_tail(segs[n_segs - 1]);

		log = open_capturing(dir, msg, sizeof(msg), &err);
		if (!log) {
			ck_assert_msg(err == EUCLEAN || err == EIO, "%s: refused with %s", what,
			              strerror(err));
			ck_assert_msg(strstr(msg, "segment") || strstr(msg, "WAL") ||
			                  strstr(msg, ".seg") || strstr(msg, "index") ||
			                  strstr(msg, "rocksdb"),
			              "%s: refused without saying where: %s", what, msg);
			refused[mid]++;
		} else {
			uint64_t l = check_prefix(log, w, durable);

			vr_log_close(log);
			lost[mid] += l;
			prefix[mid]++;
			whole[mid] += !l;
		}
		vr_test_rmdir(strdup(dir));
	}
	vr_test_figure("4", "log damaged at its tail and, separately, in its middle, then reopened",
	               "100 trials: a consistent prefix (the sender refills the rest) or a clear "
	               "refusal; never a silent hole",
	               1,
	               "%d trials, 0 silent holes; tail: %u opened as a prefix (%u whole, %llu "
	               "durable records cut off), %u refused naming where; middle: %u opened as a "
	               "prefix (%u whole, %llu cut off), %u refused naming where",
	               trials, prefix[0], whole[0], (unsigned long long)lost[0], refused[0],
	               prefix[1], whole[1], (unsigned long long)lost[1], refused[1]);
	vr_test_rmdir(root);
}
END_TEST

int
main(int argc, char **argv)
{
	const TTest *tests[] = {damaged_log_is_a_prefix_or_refused};
	ssize_t n;

	if (argc == 3 && !strcmp(argv[1], "--open"))
		return open_main(argv[2]);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	return vr_test_run("logstore:damage", 600, tests, sizeof(tests) / sizeof(tests[0]));
}
