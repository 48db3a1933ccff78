/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers for vaultrep's Check suites: temporary directories, and a WAL writer that produces
 * valid, chained records whose payload is a pure function of (stream, LSN) so that a test (or
 * a parent process after a crash) can check every byte it reads back.
 */
#ifndef VR_TEST_H
#define VR_TEST_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "vr_record.h"

/*
 * Runs one Check suite named `name` ("component:file") of n tests, each with `timeout` seconds,
 * and returns the process exit status: a suite's main() is `return vr_test_run(...)`.
 */
int vr_test_run(const char *name, int timeout, const TTest *const *tests, size_t n);

/* Seconds on the monotonic clock. */
double now_s(void);
/* The unsigned value of environment variable name, or dflt when it is unset or empty. */
unsigned env_u(const char *name, unsigned dflt);

/* A fresh directory under $TMPDIR (or /tmp); aborts the test process on failure. */
char *vr_test_tmpdir(const char *tag);
/* rm -rf path; then free(path). */
void vr_test_rmdir(char *path);

/*
 * A SoftHSMv2 of the test's own: a temporary directory with tokens/ and softhsm2.conf, and
 * SOFTHSM2_CONF pointing at it (read by the module at C_Initialize). Returns the directory.
 */
char *vr_test_softhsm(void);

/*
 * Starts argv[0] with argv (NULL-terminated) in a child that dies with its parent, and waits (at
 * most 20 s) until a unix socket at sock accepts a connection. Returns the pid, or -1 if the
 * server did not come up (it is killed then).
 */
int vr_test_spawn(const char *const argv[], const char *sock);
/* Lines in a file so far (0 if it cannot be read), e.g. a generator's --acks file. */
unsigned vr_test_lines(const char *path);
/* The wait status of the last server vr_test_spawn() saw end before its socket came up. */
extern int vr_test_spawn_status;
/* SIGTERM, then wait; returns the child's wait status. */
int vr_test_stop(int pid);

/*
 * One figure of the fault suites (issue 6), for the table tools/test.sh prints at the end of the
 * run: printed here, and appended as one tab-separated line "id, what, target, measured, met"
 * to the file $VR_FIGURES when that is set. The caller asserts met as well: a figure not met is
 * a failing test.
 */
void vr_test_figure(const char *id, const char *what, const char *target, int met,
                    const char *measured_fmt, ...) __attribute__((format(printf, 5, 6)));

struct vr_test_wal {
	struct vr_stream_id id;
	uint64_t lsn; /* last LSN produced */
	uint8_t entropy[VR_REC_ENTROPY_SIZE];
	uint8_t n_members;
	uint16_t members[VR_REC_MAX_MEMBERS];
};

/* A writer for a new WAL; its first record will be the seed. */
void vr_test_wal_init(struct vr_test_wal *w, uint64_t account, uint32_t vault, uint16_t primary,
                      unsigned n_members, const uint16_t *members);
/* Continues a WAL whose last record had lsn and entropy. */
void vr_test_wal_resume(struct vr_test_wal *w, uint64_t lsn, const uint8_t *entropy);

/* The deterministic payload byte i of record (id, lsn). */
uint8_t vr_test_payload_byte(const struct vr_stream_id *id, uint64_t lsn, size_t i);
/* Payload size of record (id, lsn) when a test asks for sizes varying around `base`. */
size_t vr_test_payload_size(const struct vr_stream_id *id, uint64_t lsn, size_t base);

/*
 * Encodes the next record (the seed if none yet, else a data PUT with payload_size bytes of the
 * deterministic payload) into buf. Returns its size; aborts on failure.
 */
size_t vr_test_wal_next(struct vr_test_wal *w, size_t payload_size, uint8_t *buf, size_t cap);

/* 1 if rec's payload is the deterministic payload of its (stream, LSN). */
int vr_test_payload_ok(const struct vr_rec *rec);

#endif /* VR_TEST_H */
