// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:diskfull — a real full disk: the store lives on a 24 MiB tmpfs mounted in a private
 * mount namespace (so nothing leaks to the host, even if the test dies), pre-filled with a
 * filler file. Appends run until the disk is full; the store must fail with ENOSPC, refuse
 * further work (sticky), never report the failed write durable; once the filler is deleted it
 * must reopen with everything it reported durable, intact, and take appends again.
 *
 *   [private mount ns] tmpfs 24M: filler (14M) + log/  ──append until ENOSPC──► rm filler ──►
 * reopen
 *
 * Needs CAP_SYS_ADMIN (root), as CI has: without it the test fails saying so.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "vr_log.h"
#include "vr_test.h"

enum { PER_CALL = 64, PAYLOAD = 900 };

static void
private_tmpfs(const char *dir, const char *size)
{
	char opts[64];

	ck_assert_msg(unshare(CLONE_NEWNS) == 0,
	              "unshare(CLONE_NEWNS): %s (the disk-full test needs root)", strerror(errno));
	/* Private propagation, or the tmpfs would appear in the host's namespace too. */
	ck_assert_msg(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0,
	              "make / private in a new mount namespace: %s (in a chroot, / must be a mount "
	              "point: bind-mount the root onto itself)",
	              strerror(errno));
	snprintf(opts, sizeof(opts), "size=%s", size);
	ck_assert_msg(mount("tmpfs", dir, "tmpfs", 0, opts) == 0, "mount tmpfs: %s",
	              strerror(errno));
}

static void
fill(const char *path, size_t bytes)
{
	static char block[1 << 20];
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	memset(block, 0xa5, sizeof(block));
	for (size_t done = 0; done < bytes; done += sizeof(block))
		ck_assert_int_eq(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
}

static int
append_one(struct vr_log *log, struct vr_test_wal *w, uint64_t *durable)
{
	static uint8_t buf[PER_CALL][1024];
	struct iovec iov[PER_CALL];
	struct vr_log_durable d[PER_CALL];
	struct vr_test_wal saved = *w;
	unsigned nd;
	int rc;

	for (int i = 0; i < PER_CALL; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = vr_test_wal_next(w, PAYLOAD, buf[i], sizeof(buf[i]));
	}
	rc = vr_log_append(log, iov, PER_CALL, d, &nd, NULL);
	if (rc) {
		*w = saved;
		return rc;
	}
	ck_assert_uint_eq(nd, 1);
	ck_assert_uint_eq(d[0].lsn, w->lsn);
	*durable = d[0].lsn;
	return 0;
}

START_TEST(full_disk_fails_cleanly_and_recovers)
{
	char *dir = vr_test_tmpdir("full"), path[512], filler[512];
	struct vr_log_opts o = {.write_buffer_size = 1 << 20};
	struct vr_test_wal w;
	struct vr_log_stream st;
	struct vr_log *log;
	uint64_t durable = 0, checked;
	int rc = 0, calls = 0;

	private_tmpfs(dir, "24m");
	snprintf(path, sizeof(path), "%s/log", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	fill(filler, 14u << 20);

	log = vr_log_open(path, &o);
	ck_assert_msg(log, "open: %s", strerror(errno));
	vr_test_wal_init(&w, 77, 1, 1, 0, NULL);
	while (calls < 5000 && (rc = append_one(log, &w, &durable)) == 0)
		calls++;
	printf("diskfull: %d appends durable (LSN %llu), then %s\n", calls,
	       (unsigned long long)durable, strerror(-rc));
	ck_assert_int_gt(calls, 10);
	ck_assert_msg(rc == -ENOSPC, "expected ENOSPC, got %d (%s)", rc, strerror(-rc));
	/* Sticky: every later write is refused with the same error, nothing reported durable. */
	ck_assert_int_eq(vr_log_error(log), -ENOSPC);
	for (int i = 0; i < 3; i++) {
		uint64_t before = durable;

		ck_assert_int_eq(append_one(log, &w, &durable), -ENOSPC);
		ck_assert_uint_eq(durable, before);
	}
	ck_assert_int_eq(vr_log_cursor_set(log, &w.id, 2, 1), -ENOSPC);
	ck_assert_int_eq(vr_log_meta_put(log, "k", 1, "v", 1), -ENOSPC);
	vr_log_close(log);

	/* Still full: a reopen either fails cleanly or comes back intact; it must not crash. */
	log = vr_log_open(path, &o);
	if (log) {
		ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
		ck_assert_uint_ge(st.last_lsn, durable);
		vr_log_close(log);
	} else {
		printf("diskfull: reopen while full refused: %s\n", strerror(errno));
	}

	/* Space comes back; the store reopens with all it reported, and works. */
	ck_assert_int_eq(unlink(filler), 0);
	log = vr_log_open(path, &o);
	ck_assert_msg(log, "reopen after freeing space: %s", strerror(errno));
	ck_assert_int_eq(vr_log_stream_get(log, &w.id, &st), 0);
	ck_assert_uint_ge(st.last_lsn, durable);
	ck_assert_int_eq(vr_log_verify(log, &w.id, &checked), 0);
	ck_assert_uint_eq(checked, st.last_lsn);
	vr_test_wal_resume(&w, st.last_lsn, st.last_entropy);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(append_one(log, &w, &durable), 0);
	ck_assert_int_eq(vr_log_verify(log, &w.id, NULL), 0);
	vr_log_close(log);
	umount2(dir, MNT_DETACH);
	vr_test_rmdir(dir);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    full_disk_fails_cleanly_and_recovers,
	};

	return vr_test_run("logstore:diskfull", 300, tests, sizeof(tests) / sizeof(tests[0]));
}
