// SPDX-License-Identifier: BSD-3-Clause
/* Helpers for vaultrep's Check suites; see vr_test.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vr_test.h"

int
vr_test_run(const char *name, int timeout, const TTest *const *tests, size_t n)
{
	const char *colon = strchr(name, ':');
	Suite *s = suite_create(name);
	TCase *tc = tcase_create(colon ? colon + 1 : name);
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, timeout);
	/* VR_TEST_ONLY=name runs that test alone (to reproduce or measure one). */
	for (size_t i = 0; i < n; i++)
		if (!getenv("VR_TEST_ONLY") || !strcmp(getenv("VR_TEST_ONLY"), tests[i]->name))
			_tcase_add_test(tc, tests[i], 0, 0, 0, 1);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void
vr_test_figure(const char *id, const char *what, const char *target, int met,
               const char *measured_fmt, ...)
{
	const char *path = getenv("VR_FIGURES");
	char measured[512], line[1024];
	va_list ap;
	int n, fd;

	va_start(ap, measured_fmt);
	vsnprintf(measured, sizeof(measured), measured_fmt, ap);
	va_end(ap);
	printf("figure %s: %s: %s (target %s): %s\n", id, what, measured, target,
	       met ? "met" : "NOT MET");
	fflush(stdout);
	if (!path || !*path)
		return;
	/* One write on an O_APPEND file: lines of concurrent suites do not mix. */
	n = snprintf(line, sizeof(line), "%s\t%s\t%s\t%s\t%s\n", id, what, target, measured,
	             met ? "met" : "NOT MET");
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || n < 0 ||
	    write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		fprintf(stderr, "vr_test_figure: %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

char *
vr_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/vaultrep-%s-XXXXXX", base, tag) < 0 || !mkdtemp(path)) {
		perror("vr_test_tmpdir");
		abort();
	}
	return path;
}

char *
vr_test_softhsm(void)
{
	char *dir = vr_test_tmpdir("hsm"), path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tokens", dir);
	if (mkdir(path, 0700)) {
		perror(path);
		abort();
	}
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		abort();
	}
	fprintf(f,
	        "directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
	        "log.level = ERROR\nslots.removable = false\n",
	        dir);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);
	return dir;
}

int vr_test_spawn_status;

int
vr_test_spawn(const char *const argv[], const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	for (int i = 0; i < 400; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;

		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return pid;
		if (waitpid(pid, &vr_test_spawn_status, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int
vr_test_stop(int pid)
{
	int status = 0;

	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	return status;
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

void
vr_test_rmdir(char *path)
{
	if (!path)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

void
vr_test_wal_init(struct vr_test_wal *w, uint64_t account, uint32_t vault, uint16_t primary,
                 unsigned n_members, const uint16_t *members)
{
	memset(w, 0, sizeof(*w));
	w->id.account = account;
	w->id.vault = vault;
	w->id.primary = primary;
	w->n_members = (uint8_t)n_members;
	if (n_members)
		memcpy(w->members, members, n_members * sizeof(*members));
	vr_rec_genesis(&w->id, w->entropy);
}

void
vr_test_wal_resume(struct vr_test_wal *w, uint64_t lsn, const uint8_t *entropy)
{
	w->lsn = lsn;
	if (lsn)
		memcpy(w->entropy, entropy, VR_REC_ENTROPY_SIZE);
	else
		vr_rec_genesis(&w->id, w->entropy);
}

uint8_t
vr_test_payload_byte(const struct vr_stream_id *id, uint64_t lsn, size_t i)
{
	uint64_t x = id->account * 0x9e3779b97f4a7c15ull ^ (uint64_t)id->vault << 17 ^
	             lsn * 0xbf58476d1ce4e5b9ull ^ (uint64_t)i * 0x94d049bb133111ebull;

	x ^= x >> 31;
	return (uint8_t)(x ^ x >> 17);
}

size_t
vr_test_payload_size(const struct vr_stream_id *id, uint64_t lsn, size_t base)
{
	return base / 2 + (size_t)(vr_test_payload_byte(id, lsn, 12345) % (base + 1));
}

size_t
vr_test_wal_next(struct vr_test_wal *w, size_t payload_size, uint8_t *buf, size_t cap)
{
	struct vr_rec r = {0};
	int rc;

	r.stream = w->id;
	r.origin = w->id.primary;
	r.lsn = w->lsn + 1;
	r.n_members = w->n_members;
	memcpy(r.members, w->members, sizeof(r.members));
	if (r.lsn == 1) {
		r.type = VR_REC_INFRA;
		r.op = VR_REC_OP_SEED;
		r.payload_size = 0;
	} else {
		uint8_t *p = buf + VR_REC_HDR_SIZE + 2 * r.n_members;

		r.type = VR_REC_DATA;
		r.op = VR_REC_OP_PUT;
		r.payload_size = (uint32_t)payload_size;
		if (VR_REC_HDR_SIZE + 2u * r.n_members + payload_size > cap)
			abort();
		for (size_t i = 0; i < payload_size; i++)
			p[i] = vr_test_payload_byte(&w->id, r.lsn, i);
		r.payload = p;
	}
	rc = vr_rec_encode(&r, w->entropy, buf, cap);
	if (rc < 0) {
		fprintf(stderr, "vr_test_wal_next: %s\n", vr_rec_strerror(rc));
		abort();
	}
	w->lsn = r.lsn;
	memcpy(w->entropy, r.entropy, VR_REC_ENTROPY_SIZE);
	return (size_t)rc;
}

int
vr_test_payload_ok(const struct vr_rec *rec)
{
	if (rec->lsn == 1)
		return rec->payload_size == 0;
	for (size_t i = 0; i < rec->payload_size; i++)
		if (rec->payload[i] != vr_test_payload_byte(&rec->stream, rec->lsn, i))
			return 0;
	return 1;
}

double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned
env_u(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 0) : dflt;
}

unsigned
vr_test_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned n = 0;
	int c;

	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	return n;
}
