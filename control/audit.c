// SPDX-License-Identifier: BSD-3-Clause
/*
 * The audit log (X8): append-only, hash-chained, one JSON object per line in
 * <state>/audit.log (0600), each line synced before the operation's answer leaves.
 *
 * An entry, keys sorted, compact (jansson's JSON_COMPACT | JSON_SORT_KEYS, which is how the
 * hash input is made, so the bytes are reproducible):
 *
 *   {"args":{...},"error":"...","hash":"<hex>","op":"vault.create","prev":"<hex>",
 *    "role":"admin","seq":7,"status":0,"time":"2026-11-22T13:00:00.123Z","who":"alice"}
 *
 *   seq     1, 2, 3, ... without a gap
 *   prev    the hash of entry seq-1 (64 zeros for entry 1)
 *   hash    SHA-256 of the entry's serialisation without "hash"
 *   args    the request's arguments, never a secret (ops.c passes only names and ids)
 *   status  0 or the errno the caller got; error: its message (absent when 0)
 *
 * Rules, checked on open and by every audit.show:
 *   1. every line parses, its hash is right, its prev is the previous line's hash, its seq is
 *      the previous seq + 1;
 *   2. the file reaches at least the head that the catalog keeps (audit/head, written after
 *      each append): a log cut short, or replaced by a shorter valid one, is caught here.
 * A broken chain is reported (the log line, audit.show "chain") and kept as evidence; new
 * entries chain from the last line that verified, so what follows stays checkable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "control.h"
#include "vr_hsm.h"
#include "vr_msg.h"

struct ctl_audit {
	int fd;
	char path[300];
	struct ctl_catalog *cat;
	uint64_t seq;     /* last entry's */
	char hash[65];    /* last entry's */
	char broken[256]; /* "" while the chain verifies */
};

static void
sha256_hex(const char *s, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned mdn = sizeof(md);

	EVP_Digest(s, n, md, &mdn, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The hash an entry must carry: over its serialisation without "hash". */
static int
entry_hash(json_t *e, char out[65])
{
	json_t *c = json_deep_copy(e);
	char *s;

	if (!c)
		return -ENOMEM;
	json_object_del(c, "hash");
	s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(c);
	if (!s)
		return -ENOMEM;
	sha256_hex(s, strlen(s), out);
	free(s);
	return 0;
}

struct walk {
	uint64_t seq;
	char hash[65];
	char broken[256];
	uint64_t from;
	unsigned max;
	json_t *out; /* entries from `from`, or NULL */
};

/* Reads and verifies the whole file (rule 1); collects entries into w->out. */
static int
walk(struct ctl_audit *a, struct walk *w)
{
	FILE *f = fopen(a->path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	memset(w->hash, '0', 64);
	w->hash[64] = 0;
	w->seq = 0;
	w->broken[0] = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_error_t je;
		json_t *e = json_loadb(line, (size_t)n, 0, &je);
		json_t *seq = json_object_get(e, "seq");
		const char *prev = json_string_value(json_object_get(e, "prev")),
		           *hash = json_string_value(json_object_get(e, "hash"));
		char want[65];

		if (!json_is_object(e) || !json_is_integer(seq) || !prev || !hash) {
			if (!w->broken[0])
				snprintf(w->broken, sizeof(w->broken),
				         "broken after seq %llu: a line that is not an audit entry",
				         (unsigned long long)w->seq);
			json_decref(e);
			continue;
		}
		if (entry_hash(e, want)) {
			json_decref(e);
			fclose(f);
			free(line);
			return -ENOMEM;
		}
		if (!w->broken[0]) {
			if ((uint64_t)json_integer_value(seq) != w->seq + 1)
				snprintf(w->broken, sizeof(w->broken),
				         "broken at seq %lld: expected seq %llu",
				         (long long)json_integer_value(seq),
				         (unsigned long long)w->seq + 1);
			else if (strcmp(prev, w->hash))
				snprintf(
				    w->broken, sizeof(w->broken),
				    "broken at seq %lld: its prev is not the hash of the entry "
				    "before",
				    (long long)json_integer_value(seq));
			else if (strcmp(hash, want))
				snprintf(w->broken, sizeof(w->broken),
				         "broken at seq %lld: its contents do not match its hash",
				         (long long)json_integer_value(seq));
		}
		if (!w->broken[0] || !strcmp(hash, want)) {
			/* New entries chain from the last line whose own hash verifies. */
			w->seq = (uint64_t)json_integer_value(seq);
			snprintf(w->hash, sizeof(w->hash), "%s", want);
		}
		if (w->out && (uint64_t)json_integer_value(seq) >= w->from)
			json_array_append(w->out, e);
		json_decref(e);
	}
	free(line);
	fclose(f);
	return 0;
}

/* Rule 2: the catalog's head. */
static void
check_head(struct ctl_audit *a, struct walk *w)
{
	json_t *h;
	uint64_t seq;
	const char *hash;

	if (w->broken[0] || ctl_catalog_get(a->cat, "audit/head", &h))
		return;
	seq = (uint64_t)json_integer_value(json_object_get(h, "seq"));
	hash = json_string_value(json_object_get(h, "hash"));
	if (seq > w->seq)
		snprintf(w->broken, sizeof(w->broken),
		         "broken: the log ends at seq %llu, but seq %llu was written (cut short "
		         "or replaced)",
		         (unsigned long long)w->seq, (unsigned long long)seq);
	else if (seq == w->seq && hash && strcmp(hash, w->hash))
		snprintf(w->broken, sizeof(w->broken),
		         "broken at seq %llu: not the entry that was written",
		         (unsigned long long)seq);
	json_decref(h);
}

int
ctl_audit_open(const char *dir, struct ctl_catalog *cat, struct ctl_audit **out)
{
	struct ctl_audit *a = calloc(1, sizeof(*a));
	struct walk w = {0};
	int rc;

	if (!a)
		return -ENOMEM;
	a->cat = cat;
	snprintf(a->path, sizeof(a->path), "%s/audit.log", dir);
	rc = walk(a, &w);
	if (rc) {
		free(a);
		return rc;
	}
	check_head(a, &w);
	a->seq = w.seq;
	memcpy(a->hash, w.hash, sizeof(a->hash));
	memcpy(a->broken, w.broken, sizeof(a->broken));
	if (a->broken[0])
		vr_err("control", "audit log %s: %s (kept as it is; new entries chain on)", a->path,
		       a->broken);
	a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		rc = -errno;
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void
ctl_audit_close(struct ctl_audit *a)
{
	if (a) {
		close(a->fd);
		free(a);
	}
}

static void
now_iso(char *buf, size_t n)
{
	struct timeval tv;
	struct tm tm;
	char s[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%.19s.%03uZ", s, (unsigned)(tv.tv_usec / 1000) % 1000);
}

int
ctl_audit_append(struct ctl_audit *a, const struct ctl_who *who, const char *op, json_t *args,
                 int status, const char *error)
{
	char when[40], hash[65], *line;
	json_t *e;
	size_t n;
	int rc = 0;

	now_iso(when, sizeof(when));
	/* "o" takes the reference: a borrowed args gets one of its own first. */
	e = json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:i, s:s}", "seq", (json_int_t)(a->seq + 1),
	              "time", when, "who", who->name, "role", vr_api_role_name(who->role), "op", op,
	              "args", args ? json_incref(args) : json_object(), "status", status, "prev",
	              a->hash);
	if (!e)
		return -ENOMEM;
	if (status && error)
		json_object_set_new(e, "error", json_string(error));
	if (entry_hash(e, hash)) {
		json_decref(e);
		return -ENOMEM;
	}
	json_object_set_new(e, "hash", json_string(hash));
	line = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(e);
	if (!line)
		return -ENOMEM;
	n = strlen(line);
	line[n] = '\n'; /* over the NUL: one write, one line */
	errno = 0;
	if (write(a->fd, line, n + 1) != (ssize_t)(n + 1) || fdatasync(a->fd))
		rc = errno ? -errno : -EIO;
	free(line);
	if (rc) {
		vr_err("control", "audit log %s: %s", a->path, strerror(-rc));
		return rc;
	}
	a->seq++;
	memcpy(a->hash, hash, sizeof(hash));
	e = json_pack("{s:I, s:s}", "seq", (json_int_t)a->seq, "hash", a->hash);
	rc = e ? ctl_catalog_put(a->cat, "audit/head", e) : -ENOMEM;
	json_decref(e);
	return rc;
}

json_t *
ctl_audit_show(struct ctl_audit *a, uint64_t from, unsigned max)
{
	struct walk w = {.out = json_array()};
	json_t *res, *tail;
	int rc;

	if (!w.out)
		return NULL;
	w.from = from ? from : (a->seq > max ? a->seq - max + 1 : 1);
	rc = walk(a, &w);
	if (rc) {
		json_decref(w.out);
		return vr_hsm_error(-rc, "cannot read the audit log: %s", strerror(-rc));
	}
	check_head(a, &w);
	/* at most max, from `from` on */
	tail = json_array();
	for (size_t i = 0; i < json_array_size(w.out) && json_array_size(tail) < max; i++)
		json_array_append(tail, json_array_get(w.out, i));
	json_decref(w.out);
	res = json_pack("{s:o, s:{s:I, s:s}, s:s}", "entries", tail, "head", "seq",
	                (json_int_t)a->seq, "hash", a->hash, "chain",
	                w.broken[0] ? w.broken : "intact");
	return vr_hsm_ok(res);
}
