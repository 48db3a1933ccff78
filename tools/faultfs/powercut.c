// SPDX-License-Identifier: BSD-3-Clause
/*
 * vr-powercut: after a process that ran with libvr-faultfs in power-cut mode (VR_FAULT_UNDO) was
 * killed, leave its files as a power cut would have: every change not covered by a completed
 * fsync or fdatasync undone (newest first, from each file's journal: undo.h), then every create
 * and rename its directory's last fsync does not cover taken back. The journals are consumed.
 *
 *   vr-powercut UNDO_DIR
 *
 * Prints one line of what it did; exit 0, or 1 with the reason.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "undo.h"

struct totals {
	unsigned files, changes, skipped, removed, renames;
	unsigned long long bytes;
};

static void *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	*n = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, f) == (size_t)len) {
		buf[len] = 0;
		*n = (size_t)len;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* One file's journal: its whole records, undone newest first. */
static int
undo_file(const char *jpath, struct totals *t)
{
	size_t n, at = 0, nrec = 0, cap = 0;
	uint8_t *buf = slurp(jpath, &n);
	const struct undo_rec **recs = NULL;
	struct undo_rec where = {0}; /* the last UNDO_PATH: the file's dev, inode and path */
	char path[4096] = "";
	struct stat st;
	int fd, rc = 0;

	if (!buf)
		return n ? -1 : 0;
	while (n - at >= sizeof(struct undo_rec)) {
		struct undo_rec r;

		memcpy(&r, buf + at, sizeof(r));
		if (r.magic != UNDO_MAGIC || (r.kind != UNDO_DATA && r.kind != UNDO_PATH) ||
		    r.len > n - at - sizeof(r))
			break;             /* the torn end: that change was never made */
		if (r.kind == UNDO_PATH) { /* the first record, and again after a rename */
			if (r.len >= sizeof(path))
				break;
			memcpy(path, buf + at + sizeof(r), r.len);
			path[r.len] = 0;
			where = r;
		} else if (!where.magic) {
			break; /* a change before the file's path: not a journal of ours */
		} else {
			if (nrec == cap) {
				const struct undo_rec **m =
				    realloc(recs, (cap = cap ? 2 * cap : 64) * sizeof(*recs));

				if (!m) {
					free(recs);
					free(buf);
					return -1;
				}
				recs = m;
			}
			recs[nrec++] = (const struct undo_rec *)(buf + at);
		}
		at += sizeof(r) + r.len;
	}
	if (!where.magic && n >= sizeof(struct undo_rec)) {
		fprintf(stderr, "vr-powercut: %s: not a journal\n", jpath);
		free(recs);
		free(buf);
		return -1;
	}
	fd = nrec ? open(path, O_WRONLY | O_CLOEXEC) : -1;
	if (nrec && (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_dev != where.off ||
	             (uint64_t)st.st_ino != where.old_size)) {
		t->skipped++; /* unlinked (taken as durable), or another file there now */
	} else if (nrec) {
		for (size_t i = nrec; i-- > 0;) {
			struct undo_rec r;

			memcpy(&r, recs[i], sizeof(r));
			if ((r.len && pwrite(fd, (const uint8_t *)recs[i] + sizeof(r), r.len,
			                     (off_t)r.off) != (ssize_t)r.len) ||
			    ftruncate(fd, (off_t)r.old_size)) {
				fprintf(stderr, "vr-powercut: %s: %s\n", path, strerror(errno));
				rc = -1;
				break;
			}
			t->changes++;
			t->bytes += r.len;
		}
		t->files++;
	}
	if (fd >= 0)
		close(fd);
	free(recs);
	free(buf);
	return rc;
}

/* One create or rename of <undo>/created, and whether a directory sync made it durable. */
struct name_op {
	char *path, *from, *keep; /* a create: path; a rename: from -> path, keep or NULL */
	bool durable;
};

static bool
in_dir(const char *path, const char *dir, size_t dl)
{
	const char *slash = strrchr(path, '/');

	return slash && (size_t)(slash - path) == dl && !strncmp(path, dir, dl);
}

/*
 * <undo>/created: every create and rename no later directory sync covers is taken back, newest
 * first (a created file removed; a renamed one back at its old name, what it replaced back too).
 */
static int
undo_names(const char *cpath, struct totals *t)
{
	size_t n, nops = 0;
	char *buf = slurp(cpath, &n), *line, *save = NULL;
	struct name_op *ops;
	int rc = 0;

	if (!buf)
		return 0;
	ops = calloc(n / 3 + 1, sizeof(*ops));
	if (!ops) {
		free(buf);
		return -1;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == 'C' && line[1] == ' ') {
			ops[nops++] = (struct name_op){.path = line + 2};
		} else if (line[0] == 'R' && line[1] == '\t') {
			char *from = line + 2, *to = strchr(from, '\t'), *keep = NULL;

			if (to) {
				*to++ = 0;
				keep = strchr(to, '\t');
			}
			if (!keep)
				continue; /* a line cut short: its rename, made before, stands */
			*keep++ = 0;
			ops[nops++] = (struct name_op){
			    .path = to, .from = from, .keep = strcmp(keep, "-") ? keep : NULL};
		} else if (line[0] == 'S' && line[1] == ' ') {
			size_t dl = strlen(line + 2);

			for (size_t i = 0; i < nops; i++)
				if (in_dir(ops[i].path, line + 2, dl))
					ops[i].durable = true;
		}
	}
	for (size_t i = nops; i-- > 0;) {
		struct name_op *o = &ops[i];

		if (o->durable) {
			if (o->keep)
				unlink(o->keep);
			continue;
		}
		if (!o->from) {
			if (!unlink(o->path))
				t->removed++;
			else if (errno != ENOENT) {
				fprintf(stderr, "vr-powercut: unlink %s: %s\n", o->path,
				        strerror(errno));
				rc = -1;
			}
			continue;
		}
		if (rename(o->path, o->from) && errno != ENOENT) {
			fprintf(stderr, "vr-powercut: rename %s back: %s\n", o->path,
			        strerror(errno));
			rc = -1;
		}
		if (o->keep && rename(o->keep, o->path)) {
			fprintf(stderr, "vr-powercut: %s back: %s\n", o->path, strerror(errno));
			rc = -1;
		}
		t->renames++;
	}
	free(ops);
	free(buf);
	return rc;
}

int
main(int argc, char **argv)
{
	struct totals t = {0};
	struct dirent *e;
	char p[4096];
	DIR *d;
	int rc = 0;

	if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(
		    argc == 2 ? stdout : stderr,
		    "usage: vr-powercut UNDO_DIR\n"
		    "Undoes what a process run with libvr-faultfs (VR_FAULT_UNDO=UNDO_DIR) changed "
		    "and did not sync,\nas a power cut would, and removes the journals.\n");
		return argc == 2 ? 0 : 1;
	}
	d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "vr-powercut: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "f-", 2))
			continue;
		snprintf(p, sizeof(p), "%s/%s", argv[1], e->d_name);
		if (undo_file(p, &t))
			rc = 1;
		else
			unlink(p);
	}
	closedir(d);
	snprintf(p, sizeof(p), "%s/created", argv[1]);
	if (undo_names(p, &t))
		rc = 1;
	else
		unlink(p);
	printf("vr-powercut: %u files cut back (%u changes, %llu bytes restored), %u unsynced "
	       "files removed, %u renames taken back, %u journals of files gone\n",
	       t.files, t.changes, t.bytes, t.removed, t.renames, t.skipped);
	return rc;
}
