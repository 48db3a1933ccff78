// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:iofaults — figures 5 and 3 of issue 6 at the log. Figure 5: EIO and ENOSPC injected into
 * a real writer process's writes and syncs (libvr-faultfs, LD_PRELOAD: every file of the log, the
 * segments and RocksDB's own), one in 128 and one in 1 000, under load.
 *
 *   parent (checker)                         writer (this binary, --writer, faultfs preloaded)
 *   ────────────────                         ───────────────────────────────────────────────
 *   switch file "128 EIO" ─────────────────► open the log (verify), resume its 4 WALs
 *   read pipe: "D wal lsn" ◄──────────────── append groups of 1..16 records; report durable
 *              "F err", "S err" ◄─────────── the first failure, then the same call again
 *   start another writer, until 10 failures   (it must fail too: the sticky state), exit
 *   switch removed: one writer, 300 appends ► must all succeed (service resumes)
 *   reopen: every LSN reported durable is there, every WAL verifies, payloads intact
 *
 * Phases: EIO and ENOSPC, each at 1 in 128 and 1 in 1 000 calls. Asserted: no append reported
 * durable is missing (0 acks for failed writes), every failure is -EIO or -ENOSPC with the log's
 * error on stderr, no append succeeds after a failure in the same process, and each phase ends
 * with a writer that is not refused anything once the fault is gone.
 *
 * And figure 3, power cuts (power_cuts_lose_nothing_acknowledged, below): the same writer under
 * faultfs's power-cut mode, killed at a change or sync chosen at random, its unsynced changes
 * then undone by vr-powercut; 1 000 cut points, each reopened.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vr_log.h"
#include "vr_test.h"

#ifndef VR_FAULTFS_LIB
#error "VR_FAULTFS_LIB must name libvr-faultfs.so"
#endif

enum { N_WALS = 4, MAX_GROUP = 16, FAILURES = 10 };

static struct vr_stream_id
wal_id(int i)
{
	return (struct vr_stream_id){.account = 700 + (uint64_t)i, .vault = 1, .primary = 1};
}

/* The writer: appends until max appends are done or one fails; reports on fd 3. */
static int
writer_main(const char *dir, unsigned seed, unsigned max)
{
	static uint8_t buf[MAX_GROUP][1024];
	struct vr_test_wal w[N_WALS];
	struct vr_log *log = vr_log_open(dir, &(struct vr_log_opts){.verify = true});
	FILE *out = fdopen(3, "w");
	/* The largest payload ($VR_TEST_PAYLOAD): short in the power-cut runs. */
	unsigned payload_max = env_u("VR_TEST_PAYLOAD", 300);

	if (!out)
		return 9;
	setvbuf(out, NULL, _IOLBF, 0);
	if (!log) {
		fprintf(out, "O %d\n", errno);
		return 0;
	}
	for (int i = 0; i < N_WALS; i++) {
		struct vr_stream_id id = wal_id(i);
		struct vr_log_stream ls;

		vr_test_wal_init(&w[i], id.account, id.vault, id.primary, 0, NULL);
		if (vr_log_stream_get(log, &id, &ls) == 0)
			vr_test_wal_resume(&w[i], ls.last_lsn, ls.last_entropy);
		else
			ls.last_lsn = 0; /* no such WAL: reported as 0, so a lost one shows */
		fprintf(out, "R %d %llu\n", i, (unsigned long long)ls.last_lsn);
	}
	fprintf(out, "A\n"); /* open: appends follow */
	for (unsigned a = 0; a < max; a++) {
		struct vr_test_wal saved[N_WALS];
		struct iovec iov[MAX_GROUP];
		struct vr_log_durable d[MAX_GROUP];
		unsigned n = 1 + (unsigned)rand_r(&seed) % MAX_GROUP, nd, bad;
		int rc;

		memcpy(saved, w, sizeof(w));
		for (unsigned k = 0; k < n; k++) {
			struct vr_test_wal *x = &w[(unsigned)rand_r(&seed) % N_WALS];

			iov[k].iov_base = buf[k];
			iov[k].iov_len = vr_test_wal_next(
			    x, vr_test_payload_size(&x->id, x->lsn + 1, payload_max), buf[k],
			    sizeof(buf[k]));
		}
		rc = vr_log_append(log, iov, n, d, &nd, &bad);
		if (rc) {
			int again = vr_log_append(log, iov, n, d, &nd, &bad);

			fprintf(out, "F %d\nS %d\n", -rc, -again);
			memcpy(w, saved, sizeof(w));
			break;
		}
		for (unsigned k = 0; k < nd; k++)
			fprintf(out, "D %llu %llu\n",
			        (unsigned long long)(d[k].stream.account - 700),
			        (unsigned long long)d[k].lsn);
	}
	fprintf(out, "E\n");
	fclose(out);
	vr_log_close(log);
	return 0;
}

static char self[512];

struct run {
	unsigned durable_reports, failures, refused_opens, appends_after_failure;
	int last_err;
	char stderr_text[4096];
};

/*
 * A writer process with libvr-faultfs preloaded, its reports on *in. cut: power-cut mode with
 * the journals under root/undo, dying at its cut-th change (UINT64_MAX: the other mode, the
 * switch file's faults).
 */
static pid_t
spawn_writer(const char *dir, const char *root, unsigned seed, unsigned max, uint64_t cut,
             FILE **in)
{
	char sw[400], lg[400], errpath[400], undo[400], seed_s[16], max_s[16], cut_s[24];
	int pipefd[2];
	pid_t pid;

	snprintf(sw, sizeof(sw), "%s/switch", root);
	snprintf(lg, sizeof(lg), "%s/faults.log", root);
	snprintf(errpath, sizeof(errpath), "%s/writer.err", root);
	snprintf(undo, sizeof(undo), "%s/undo", root);
	snprintf(seed_s, sizeof(seed_s), "%u", seed);
	snprintf(max_s, sizeof(max_s), "%u", max);
	snprintf(cut_s, sizeof(cut_s), "%llu", (unsigned long long)cut);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		close(pipefd[0]);
		if (dup2(pipefd[1], 3) < 0 || efd < 0 || dup2(efd, 2) < 0)
			_exit(8);
		setenv("LD_PRELOAD", VR_FAULTFS_LIB, 1);
		setenv("VR_FAULT_DIR", dir, 1);
		setenv("VR_FAULT_SEED", seed_s, 1);
		setenv("VR_FAULT_LOG", lg, 1);
		if (cut == UINT64_MAX) {
			setenv("VR_FAULT_SWITCH", sw, 1);
		} else {
			setenv("VR_FAULT_UNDO", undo, 1);
			setenv("VR_FAULT_CUT", cut_s, 1);
		}
		execl(self, self, "--writer", dir, seed_s, max_s, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	*in = fdopen(pipefd[0], "r");
	ck_assert_ptr_nonnull(*in);
	return pid;
}

/* One writer under the switch as it is now; reported[] gets the highest durable LSNs. */
static void
run_writer(const char *dir, const char *root, unsigned seed, unsigned max, uint64_t reported[],
           struct run *r)
{
	char errpath[400], line[128];
	int st;
	FILE *in;
	pid_t pid = spawn_writer(dir, root, seed, max, UINT64_MAX, &in);
	bool ended = false;

	snprintf(errpath, sizeof(errpath), "%s/writer.err", root);
	r->last_err = 0;
	while (fgets(line, sizeof(line), in)) {
		unsigned long long wal, lsn;
		int e;

		if (sscanf(line, "D %llu %llu", &wal, &lsn) == 2) {
			ck_assert_uint_lt(wal, N_WALS);
			ck_assert_msg(!r->last_err, "an append succeeded after a failure");
			if (lsn > reported[wal])
				reported[wal] = lsn;
			r->durable_reports++;
		} else if (sscanf(line, "F %d", &e) == 1) {
			ck_assert_msg(e == EIO || e == ENOSPC, "an append failed with %s",
			              strerror(e));
			r->failures++;
			r->last_err = e;
		} else if (sscanf(line, "S %d", &e) == 1) {
			ck_assert_msg(e == r->last_err,
			              "after %s, the next append gave %s (not sticky)",
			              strerror(r->last_err), strerror(e));
		} else if (sscanf(line, "O %d", &e) == 1) {
			ck_assert_msg(e == EIO || e == ENOSPC || e == EUCLEAN,
			              "the log did not open: %s", strerror(e));
			r->refused_opens++;
			r->last_err = e;
		} else if (line[0] == 'E') {
			ended = true;
		}
	}
	fclose(in);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && (ended || r->refused_opens),
	              "the writer ended with status %d", st);
	if (r->last_err) {
		int fd = open(errpath, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, r->stderr_text, sizeof(r->stderr_text) - 1) : -1;

		r->stderr_text[n > 0 ? n : 0] = 0;
		if (fd >= 0)
			close(fd);
		ck_assert_msg(
		    strstr(r->stderr_text, "logstore") &&
		        (strstr(r->stderr_text, "error") || strstr(r->stderr_text, "rror") ||
		         strstr(r->stderr_text, strerror(r->last_err))),
		    "a failure without the log's error on stderr: \"%s\"", r->stderr_text);
	}
}

/* Every LSN reported durable is in the log, every WAL verifies, payloads are what was written. */
static void
check_log(const char *dir, const uint64_t reported[])
{
	struct vr_log *log = vr_log_open(dir, &(struct vr_log_opts){.verify = true});

	ck_assert_msg(log, "the log does not open after the faults: %s", strerror(errno));
	for (int i = 0; i < N_WALS; i++) {
		struct vr_stream_id id = wal_id(i);
		struct vr_log_stream ls;
		struct vr_log_iter *it;
		struct vr_rec rec;
		uint64_t expect = 1;

		if (!reported[i])
			continue;
		ck_assert_int_eq(vr_log_stream_get(log, &id, &ls), 0);
		ck_assert_msg(ls.last_lsn >= reported[i],
		              "WAL %d ends at LSN %llu; LSN %llu was reported durable", i,
		              (unsigned long long)ls.last_lsn, (unsigned long long)reported[i]);
		it = vr_log_iter_open(log, &id, 1);
		ck_assert_ptr_nonnull(it);
		while (vr_log_iter_next(it, &rec) == 1) {
			ck_assert_uint_eq(rec.lsn, expect);
			ck_assert_msg(rec.lsn == 1 || vr_test_payload_ok(&rec),
			              "WAL %d: LSN %llu is not what was written", i,
			              (unsigned long long)rec.lsn);
			expect++;
		}
		vr_log_iter_close(it);
		ck_assert_uint_eq(expect - 1, ls.last_lsn);
	}
	vr_log_close(log);
}

START_TEST(io_faults_ack_only_what_is_durable)
{
	static const struct {
		unsigned one_in;
		const char *err;
	} phases[] = {{128, "EIO"}, {128, "ENOSPC"}, {1000, "EIO"}, {1000, "ENOSPC"}};
	const char *s = getenv("VR_TEST_SEED");
	unsigned seed = s ? (unsigned)strtoul(s, NULL, 0) : 5150, writers = 0;
	char *root = vr_test_tmpdir("iofaults"), dir[400], sw[400], lg[400], measured[1024];
	uint64_t reported[N_WALS] = {0};
	size_t off = 0;
	bool met = true;

	snprintf(dir, sizeof(dir), "%s/log", root);
	snprintf(sw, sizeof(sw), "%s/switch", root);
	snprintf(lg, sizeof(lg), "%s/faults.log", root);
	printf("logstore:iofaults: seed %u\n", seed);
	measured[0] = 0;
	for (size_t p = 0; p < sizeof(phases) / sizeof(phases[0]); p++) {
		struct run r = {0}, clean = {0};
		double t0 = (double)time(NULL);
		FILE *f = fopen(sw, "w");
		unsigned injected = 0;
		char line[600];

		ck_assert_ptr_nonnull(f);
		fprintf(f, "%u %s\n", phases[p].one_in, phases[p].err);
		fclose(f);
		unlink(lg);
		/* Writers under the fault until it has failed FAILURES appends (or 60 s). */
		while (r.failures < FAILURES && (double)time(NULL) - t0 < 60) {
			run_writer(dir, root, seed + writers, 2000, reported, &r);
			writers++;
		}
		f = fopen(lg, "r");
		while (f && fgets(line, sizeof(line), f))
			injected++;
		if (f)
			fclose(f);
		/* The fault clears: the next writer must not be refused anything. */
		unlink(sw);
		run_writer(dir, root, seed + writers++, 300, reported, &clean);
		ck_assert_msg(!clean.failures && !clean.refused_opens &&
		                  clean.durable_reports >= 300,
		              "1 in %u %s: after the fault cleared, %u failures, %u refused opens",
		              phases[p].one_in, phases[p].err, clean.failures, clean.refused_opens);
		check_log(dir, reported);
		met = met && r.failures >= FAILURES;
		off += (size_t)snprintf(measured + off, sizeof(measured) - off,
		                        "%s1 in %u %s: %u faults injected, %u appends failed (%u "
		                        "opens refused), %u durable reports, 0 lost; resumed",
		                        p ? "; " : "", phases[p].one_in, phases[p].err, injected,
		                        r.failures, r.refused_opens, r.durable_reports);
		printf("1 in %u %s: %u faults, %u failed appends, %u refused opens, %u durable "
		       "reports\n",
		       phases[p].one_in, phases[p].err, injected, r.failures, r.refused_opens,
		       r.durable_reports);
	}
	vr_test_figure("5",
	               "EIO and ENOSPC injected into the log's writes and syncs (libvr-faultfs), "
	               "at the log (logstore)",
	               "0 acks for failed writes; a clear error; service resumes when the fault "
	               "clears",
	               met, "%s (%u writer processes)", measured, writers);
	ck_assert_msg(met, "a phase did not reach %d failures in 60 s", FAILURES);
	vr_test_rmdir(root);
}
END_TEST

/* vr-powercut on root/undo; adds up what it undid. */
static void
power_cut(const char *root, unsigned long long *undone, unsigned long long *bytes,
          unsigned *removed, unsigned *renames)
{
	char cmd[600], line[400];
	unsigned files, changes, rm, rn, gone;
	unsigned long long b;
	FILE *p;
	bool seen = false;

	snprintf(cmd, sizeof(cmd), "%s %s/undo", VR_POWERCUT_BIN, root);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p))
		if (sscanf(line,
		           "vr-powercut: %u files cut back (%u changes, %llu bytes restored), %u "
		           "unsynced files removed, %u renames taken back, %u journals",
		           &files, &changes, &b, &rm, &rn, &gone) == 6) {
			*undone += changes;
			*bytes += b;
			*removed += rm;
			*renames += rn;
			seen = true;
		}
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_msg(seen, "vr-powercut printed no summary");
}

/*
 * Figure 3: power cuts. A writer under libvr-faultfs in power-cut mode dies (SIGKILL) at a
 * change or sync of its files chosen at random, from the open (RocksDB's recovery, the log's
 * re-indexing) to its appends; vr-powercut then drops every byte no completed fsync or
 * fdatasync covered, and every file whose directory was not synced since it was made. The next
 * writer opens that log (verify at open): it must open, and hold every LSN reported durable
 * before the cut. A fresh log every 100 cuts keeps each open's read-back short.
 */
START_TEST(power_cuts_lose_nothing_acknowledged)
{
	enum { APPENDS = 40, PER_LOG = 100 };
	unsigned cuts = env_u("VR_CUTS", 1000), seed = env_u("VR_TEST_SEED", 5150), done = 0,
	         in_open = 0, clean = 0, removed = 0, renames = 0, logs = 0;
	unsigned long long bytes = 0, undone = 0, durable_reports = 0, lsn_checks = 0, changes = 0;
	char *root = vr_test_tmpdir("powercut"), dir[400], undo[400], lg[400], line[128];
	uint64_t reported[N_WALS] = {0};
	double t0 = now_s();
	bool met;

	snprintf(undo, sizeof(undo), "%s/undo", root);
	snprintf(lg, sizeof(lg), "%s/faults.log", root);
	ck_assert_int_eq(mkdir(undo, 0700), 0);
	setenv("VR_TEST_PAYLOAD", "120", 1);
	printf("logstore:powercut: seed %u, %u cuts\n", seed, cuts);
	for (unsigned i = 0; done < cuts && i < 4 * cuts; i++) {
		FILE *in, *f;
		pid_t pid;
		int st;
		bool opened = false;
		uint64_t cut;

		if (i % PER_LOG == 0) {
			if (logs)
				check_log(dir, reported);
			snprintf(dir, sizeof(dir), "%s/log%u", root, logs++);
			memset(reported, 0, sizeof(reported));
			/* How many changes a whole run makes: the range cut points are drawn from.
			 */
			unlink(lg);
			pid = spawn_writer(dir, root, seed + i, APPENDS, 0, &in);
			while (fgets(line, sizeof(line), in))
				;
			fclose(in);
			ck_assert_int_eq(waitpid(pid, &st, 0), pid);
			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
			power_cut(root, &undone, &bytes, &removed, &renames);
			f = fopen(lg, "r");
			while (f && fgets(line, sizeof(line), f))
				sscanf(line, "changes %llu", &changes);
			if (f)
				fclose(f);
			ck_assert_uint_gt(changes, 0);
			continue;
		}
		cut = 1 + (uint64_t)rand_r(&seed) % (changes + changes / 8);
		pid = spawn_writer(dir, root, seed + i, APPENDS, cut, &in);
		while (fgets(line, sizeof(line), in)) {
			unsigned long long wal, lsn;

			if (sscanf(line, "R %llu %llu", &wal, &lsn) == 2) {
				ck_assert_uint_lt(wal, N_WALS);
				/* After the cut, the log still holds all it reported durable. */
				ck_assert_msg(lsn >= reported[wal],
				              "cut %u: WAL %llu reopened at LSN %llu; LSN %llu was "
				              "reported durable before the cut",
				              done, wal, lsn, (unsigned long long)reported[wal]);
				lsn_checks++;
			} else if (line[0] == 'A') {
				opened = true;
			} else if (sscanf(line, "D %llu %llu", &wal, &lsn) == 2) {
				ck_assert_uint_lt(wal, N_WALS);
				if (lsn > reported[wal])
					reported[wal] = lsn;
				durable_reports++;
			} else if (sscanf(line, "O %llu", &lsn) == 1) {
				ck_assert_msg(
				    0, "cut %u: the log refused to open after a power cut: %s",
				    done, strerror((int)lsn));
			}
		}
		fclose(in);
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			done++;
			in_open += !opened;
		} else {
			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			              "the writer ended with %d", st);
			clean++;
		}
		power_cut(root, &undone, &bytes, &removed, &renames);
		if (done % 200 == 0 && WIFSIGNALED(st))
			printf("[%7.2f s] %u cuts\n", now_s() - t0, done);
	}
	check_log(dir, reported);
	met = done >= cuts && done >= 1000; /* fewer ($VR_CUTS) is a shorter run, not the figure */
	vr_test_figure("3",
	               "power cut: libvr-faultfs journals every change, the writer dies at one "
	               "chosen at random, vr-powercut drops what no completed sync covered",
	               ">= 1 000 cut points: 0 acknowledged records lost", met,
	               "%u cut points (%u in the open: RocksDB's and the log's recovery), %u runs "
	               "uncut, in %u logs; %llu durable reports, %llu reopen checks, 0 lost; "
	               "%llu unsynced changes undone (%llu bytes put back), %u unsynced files "
	               "removed, %u renames taken back; %.0f s",
	               done, in_open, clean, logs, durable_reports, lsn_checks, undone, bytes,
	               removed, renames, now_s() - t0);
	ck_assert_msg(met, "%u cut points (%u asked, in at most %u runs; the figure needs 1 000)",
	              done, cuts, 4 * cuts);
	vr_test_rmdir(root);
}
END_TEST

int
main(int argc, char **argv)
{
	const TTest *tests[] = {io_faults_ack_only_what_is_durable,
	                        power_cuts_lose_nothing_acknowledged};
	ssize_t n;

	if (argc == 5 && !strcmp(argv[1], "--writer"))
		return writer_main(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
		                   (unsigned)strtoul(argv[4], NULL, 0));
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	return vr_test_run("logstore:iofaults", 1200, tests, sizeof(tests) / sizeof(tests[0]));
}
