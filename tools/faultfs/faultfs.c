// SPDX-License-Identifier: BSD-3-Clause
/*
 * libvr-faultfs: an LD_PRELOAD library that makes writes and syncs of the files under one
 * directory fail, one in N, with EIO or ENOSPC, while a switch file says so (issue 6, figure 5).
 * It stands between a real process (the log's writer, RocksDB inside it) and the real file
 * system: a faulted call does nothing and returns -1 with the errno; every other call goes
 * through unchanged.
 *
 *   VR_FAULT_DIR     files whose path starts with this directory are faulted (their
 *                    descriptors: classified once per inode through /proc/self/fd); if it
 *                    does not exist yet, it must be given as an absolute path without links
 *   VR_FAULT_SWITCH  a file holding "N ERRNO", e.g. "128 EIO" or "1000 ENOSPC"; while it does
 *                    not exist nothing is faulted. Read again whenever it changes.
 *   VR_FAULT_SEED    the decisions' seed (default 1): call k fails when a hash of (seed, k)
 *                    is 0 modulo N
 *   VR_FAULT_LOG     optional: one line per fault injected, "<call> <errno> <path>"
 *
 * Calls faulted: write, pwrite, writev, pwritev (and their 64-bit and v2 names), fsync,
 * fdatasync, fallocate. Not sync_file_range: it only starts writeback (durability is fsync's
 * and fdatasync's), and RocksDB probes it once per file with an assertion that it works.
 *
 * Power cuts (figure 3): with VR_FAULT_UNDO, every change to a file under VR_FAULT_DIR is first
 * journaled (undo.h): the bytes it overwrites and the size it changes, in a journal per file
 * under that directory, removed when an fsync or fdatasync of the file succeeds; a file created
 * there is listed until an fsync of its directory, and so is a rename (with the file it
 * replaced, kept by a hard link). After the process is killed, vr-powercut undoes every change
 * not covered by a completed sync: the files and names are as a power cut would leave them.
 * Unlinks are taken as durable once made.
 *
 *   VR_FAULT_UNDO    the journal directory (outside VR_FAULT_DIR); power-cut mode when set
 *   VR_FAULT_CUT     N: the process SIGKILLs itself at its Nth change or sync under
 *                    VR_FAULT_DIR (creates, writes, truncates, allocations, syncs), before
 *                    making it; 0 or unset: never. With VR_FAULT_LOG, the count is logged at
 *                    exit ("changes N"), to choose cut points from.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "undo.h"

#define EXPORT __attribute__((visibility("default")))

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char dir[PATH_MAX], sw[PATH_MAX];
static size_t dir_len;
static uint64_t seed = 1;
static int log_fd = -1;
static _Atomic uint64_t calls;

/* Power-cut mode: the journals' directory, the cut point, the changes made so far. */
static char undo[PATH_MAX];
static uint64_t cut_at, changes;

/* The switch as last read: one in `one_in` calls fails with `err` (0: off). */
static struct timespec sw_mtime;
static off_t sw_size = -1;
static unsigned one_in;
static int err;

/* Inodes seen: (dev, ino) -> under dir or not. Open addressing, never shrinks. */
enum { SEEN = 4096 };
static struct {
	dev_t dev;
	ino_t ino;
	uint8_t used, faulted;
	int journal; /* power-cut mode: its open journal (0: none yet) */
} seen[SEEN];

/* POSIX's way to take a function from dlsym (a data pointer). */
#define RESOLVE(fn, name) (*(void **)&(fn) = dlsym(RTLD_NEXT, name))

static void
init(void)
{
	const char *d = getenv("VR_FAULT_DIR"), *s = getenv("VR_FAULT_SWITCH"),
	           *sd = getenv("VR_FAULT_SEED"), *lg = getenv("VR_FAULT_LOG"),
	           *u = getenv("VR_FAULT_UNDO"), *c = getenv("VR_FAULT_CUT");

	RESOLVE(real_write, "write");
	RESOLVE(real_pwrite, "pwrite");
	RESOLVE(real_pwrite64, "pwrite64");
	RESOLVE(real_writev, "writev");
	RESOLVE(real_pwritev, "pwritev");
	RESOLVE(real_pwritev64, "pwritev64");
	RESOLVE(real_pwritev2, "pwritev2");
	RESOLVE(real_fsync, "fsync");
	RESOLVE(real_fdatasync, "fdatasync");
	RESOLVE(real_fallocate, "fallocate");
	RESOLVE(real_ftruncate, "ftruncate");
	RESOLVE(real_ftruncate64, "ftruncate64");
	RESOLVE(real_open, "open");
	RESOLVE(real_openat, "openat");
	RESOLVE(real_renameat2, "renameat2");
	/* A directory made later (a process that creates its log) is taken as given. */
	if (d && (realpath(d, dir) || (d[0] == '/' && snprintf(dir, sizeof(dir), "%s", d) > 0))) {
		dir_len = strlen(dir);
		while (dir_len > 1 && dir[dir_len - 1] == '/')
			dir[--dir_len] = 0;
	}
	if (s)
		snprintf(sw, sizeof(sw), "%s", s);
	if (sd)
		seed = strtoull(sd, NULL, 0);
	if (lg)
		log_fd = real_open(lg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (u && dir_len)
		snprintf(undo, sizeof(undo), "%s", u);
	if (c)
		cut_at = strtoull(c, NULL, 0);
}

/* The path fd names now, into path (size bytes); false (path empty) if it has none. */
static bool
fd_path(int fd, char *path, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, size - 1);
	path[n > 0 ? n : 0] = 0;
	return n > 0;
}

/* Is path in dir's tree (or, with itself, dir itself)? */
static bool
path_under(const char *path, bool itself)
{
	return dir_len && !strncmp(path, dir, dir_len) &&
	       (path[dir_len] == '/' ? path[dir_len + 1] != 0 : itself && path[dir_len] == 0);
}

/* Under the mutex: is this descriptor's file under dir? *slot: its entry (-1: none). */
static bool
under_dir_slot(int fd, const struct stat *st, int *slot)
{
	unsigned h = (unsigned)((st->st_ino * 0x9e3779b97f4a7c15ull) >> 52) % SEEN;
	char path[PATH_MAX];
	bool match;

	for (unsigned k = 0; k < SEEN; k++, h = (h + 1) % SEEN) {
		if (!seen[h].used)
			break;
		if (seen[h].dev == st->st_dev && seen[h].ino == st->st_ino) {
			*slot = (int)h;
			return seen[h].faulted;
		}
	}
	*slot = -1;
	if (!fd_path(fd, path, sizeof(path)))
		return false;
	match = path_under(path, false);
	if (!seen[h].used) { /* else the table is full: looked up again next time */
		seen[h].used = 1;
		seen[h].dev = st->st_dev;
		seen[h].ino = st->st_ino;
		seen[h].faulted = match;
		seen[h].journal = 0;
		*slot = (int)h;
	}
	return match;
}

static bool
under_dir(int fd, const struct stat *st)
{
	int slot;

	return under_dir_slot(fd, st, &slot);
}

/* Under the mutex: the switch, read again when it changed. */
static void
read_switch(void)
{
	struct stat st;
	char buf[64], name[16];
	int fd;
	ssize_t n;

	if (!sw[0] || stat(sw, &st)) {
		one_in = 0;
		sw_size = -1;
		return;
	}
	if (st.st_size == sw_size && st.st_mtim.tv_sec == sw_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == sw_mtime.tv_nsec)
		return;
	sw_size = st.st_size;
	sw_mtime = st.st_mtim;
	one_in = 0;
	fd = open(sw, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (sscanf(buf, "%u %15s", &one_in, name) != 2) {
		one_in = 0;
		return;
	}
	err = !strcmp(name, "ENOSPC") ? ENOSPC : EIO;
}

/* 0 to let the call through, else the errno to fail it with. */
static int
fault(const char *call, int fd)
{
	struct stat st;
	int e = 0;

	pthread_once(&once, init);
	if (!dir_len || fstat(fd, &st) || !S_ISREG(st.st_mode))
		return 0;
	pthread_mutex_lock(&mu);
	read_switch();
	if (one_in && under_dir(fd, &st)) {
		uint64_t x = seed * 0x9e3779b97f4a7c15ull + atomic_fetch_add(&calls, 1) + 1;

		/* splitmix64 */
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		if (x % one_in == 0)
			e = err;
	}
	pthread_mutex_unlock(&mu);
	if (e && log_fd >= 0) {
		char line[PATH_MAX + 64], path[PATH_MAX];
		int len;

		if (!fd_path(fd, path, sizeof(path)))
			snprintf(path, sizeof(path), "?");
		len = snprintf(line, sizeof(line), "%s %s %s\n", call,
		               e == ENOSPC ? "ENOSPC" : "EIO", path);
		if (len > 0 && real_write(log_fd, line, (size_t)len) < 0) {
			/* the log is best effort */
		}
	}
	return e;
}

#define FAULT(call, fd)                                                                            \
	do {                                                                                       \
		int e_ = fault(call, fd);                                                          \
		if (e_) {                                                                          \
			errno = e_;                                                                \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

/* ---- power-cut mode (VR_FAULT_UNDO) ---------------------------------------------------- */

/* Under the mutex: append one record (header, then n bytes of data) to journal j. */
static void
put(int j, uint32_t kind, uint64_t off, uint64_t old_size, const void *data, size_t n)
{
	struct undo_rec h = {UNDO_MAGIC, kind, off, old_size, n};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)(uintptr_t)data, n}};

	/* One writev: a record is whole or, if the process dies in it, the journal's torn end. */
	if (real_writev(j, iov, n ? 2 : 1) < 0) {
		/* Best effort only if the journal's disk is full: the test then sees a loss. */
	}
}

/* The journal of the file st describes: <undo>/f-<dev>-<ino>. */
static void
journal_name(const struct stat *st, char *name, size_t size)
{
	snprintf(name, size, "%s/f-%llx-%llx", undo, (unsigned long long)st->st_dev,
	         (unsigned long long)st->st_ino);
}

/* Under the mutex: the journal of fd's file (st), opened, and started, on first use. */
static int
journal_of(int fd, const struct stat *st, int slot)
{
	char name[PATH_MAX + 64], path[PATH_MAX];
	struct stat js;
	int j;

	if (slot >= 0 && seen[slot].journal > 0)
		return seen[slot].journal;
	journal_name(st, name, sizeof(name));
	j = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j < 0)
		return -1;
	if (!fstat(j, &js) && js.st_size == 0) {
		fd_path(fd, path, sizeof(path));
		put(j, UNDO_PATH, (uint64_t)st->st_dev, (uint64_t)st->st_ino, path, strlen(path));
	}
	if (slot >= 0)
		seen[slot].journal = j;
	return j;
}

/*
 * Under the mutex: before fd's file (st) changes at [off, off + n) (and perhaps its size), the
 * bytes there that exist now and the size now go to its journal.
 */
static void
journal(int fd, const struct stat *st, int slot, uint64_t off, uint64_t n)
{
	uint64_t size = (uint64_t)st->st_size, keep = off < size ? size - off : 0;
	int j = journal_of(fd, st, slot), rfd = fd;
	uint8_t *old = NULL;

	if (j < 0)
		return;
	if (keep > n)
		keep = n;
	if (keep) {
		old = malloc(keep);
		/* A write-only descriptor: the file again, for reading. */
		if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
			char link[64];

			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			rfd = real_open(link, O_RDONLY | O_CLOEXEC);
		}
		if (!old || rfd < 0 || pread(rfd, old, keep, (off_t)off) != (ssize_t)keep)
			keep = 0; /* cannot happen short of memory: then the size alone */
		if (rfd != fd && rfd >= 0)
			close(rfd);
	}
	put(j, UNDO_DATA, off, size, old, keep);
	free(old);
}

/* Under the mutex: one change or sync; the process dies at the cut point, before making it. */
static void
cut_point(void)
{
	if (++changes == cut_at)
		kill(getpid(), SIGKILL);
}

/*
 * Power-cut mode and fd is a regular file under dir: true with the mutex held (the caller makes
 * its change and unlocks), *st and *slot filled.
 */
static bool
pc_begin(int fd, struct stat *st, int *slot)
{
	pthread_once(&once, init);
	if (!undo[0] || fstat(fd, st) || !S_ISREG(st->st_mode))
		return false;
	pthread_mutex_lock(&mu);
	/* Again under the mutex: the size another thread's change left. */
	if (!fstat(fd, st) && under_dir_slot(fd, st, slot))
		return true;
	pthread_mutex_unlock(&mu);
	return false;
}

/* Where a write() without an offset lands. */
static uint64_t
cur_off(int fd, const struct stat *st)
{
	off_t o;

	if (fcntl(fd, F_GETFL) & O_APPEND)
		return (uint64_t)st->st_size;
	o = lseek(fd, 0, SEEK_CUR);
	return o < 0 ? (uint64_t)st->st_size : (uint64_t)o;
}

static size_t
iov_len(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Under the mutex: a line of <undo>/created (kind 0: path is the whole line). */
static void
created_line(char kind, const char *path)
{
	static int cfd = -1;
	char line[PATH_MAX * 5 + 4];
	int len;

	if (cfd < 0) {
		char name[PATH_MAX + 16];

		snprintf(name, sizeof(name), "%s/created", undo);
		cfd = real_open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	len = kind ? snprintf(line, sizeof(line), "%c %s\n", kind, path)
	           : snprintf(line, sizeof(line), "%s\n", path);
	if (cfd >= 0 && len > 0 && real_write(cfd, line, (size_t)len) < 0) {
		/* as put() */
	}
}

/*
 * Under the mutex: the file's journal goes, with nothing left to undo (its changes are durable,
 * or it is a new file); the next change starts another. slot: its entry, or -1.
 */
static void
journal_drop(const struct stat *st, int slot)
{
	char name[PATH_MAX + 64];

	if (slot >= 0 && seen[slot].journal > 0) {
		close(seen[slot].journal);
		seen[slot].journal = 0;
	}
	journal_name(st, name, sizeof(name));
	unlink(name);
}

/* Under the mutex: a new file at this inode; what was known of an earlier one there goes. */
static void
forget(const struct stat *st)
{
	for (unsigned h = 0; h < SEEN; h++)
		if (seen[h].used && seen[h].dev == st->st_dev && seen[h].ino == st->st_ino) {
			journal_drop(st, (int)h);
			/* Kept used (a probe chain goes on through it), matching nothing. */
			seen[h].dev = (dev_t)-1;
			seen[h].ino = 0;
		}
	journal_drop(st, -1);
}

/* The full path open() would create, its parent resolved; false if not under dir. */
static bool
target_under_dir(int dirfd, const char *path, char *full, size_t size)
{
	char base[PATH_MAX * 2], parent[PATH_MAX];
	const char *slash;

	if (path[0] == '/')
		snprintf(base, sizeof(base), "%s", path);
	else if (dirfd == AT_FDCWD) {
		if (!getcwd(parent, sizeof(parent)))
			return false;
		snprintf(base, sizeof(base), "%s/%s", parent, path);
	} else {
		fd_path(dirfd, parent, sizeof(parent));
		snprintf(base, sizeof(base), "%s/%s", parent, path);
	}
	slash = strrchr(base, '/');
	base[slash - base] = 0;
	if (!realpath(base[0] ? base : "/", parent))
		return false;
	snprintf(full, size, "%s/%s", parent, slash + 1);
	return path_under(parent, true);
}

/* open and openat in power-cut mode: creating or truncating a file under dir is a change. */
static int
pc_open(int dirfd, const char *path, int flags, mode_t mode)
{
	char full[PATH_MAX * 2];
	struct stat before, st;
	bool existed;
	int fd;

	pthread_once(&once, init);
	if (!undo[0] || !(flags & (O_CREAT | O_TRUNC)) ||
	    !target_under_dir(dirfd, path, full, sizeof(full)))
		return real_openat(dirfd, path, flags, mode);
	pthread_mutex_lock(&mu);
	existed = fstatat(dirfd, path, &before, 0) == 0;
	if (existed && (flags & O_TRUNC) && S_ISREG(before.st_mode) && before.st_size > 0 &&
	    (flags & O_ACCMODE) != O_RDONLY) {
		int rfd = real_openat(dirfd, path, O_RDONLY | O_CLOEXEC, 0), slot;

		if (rfd >= 0 && !fstat(rfd, &st) && under_dir_slot(rfd, &st, &slot))
			journal(rfd, &st, slot, 0, (uint64_t)st.st_size);
		if (rfd >= 0)
			close(rfd);
		cut_point();
	} else if (!existed && (flags & O_CREAT)) {
		cut_point();
	}
	fd = real_openat(dirfd, path, flags, mode);
	if (fd >= 0 && !existed && !fstat(fd, &st)) {
		forget(&st);
		created_line('C', full);
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

/* fsync and fdatasync in power-cut mode: what a completed sync covers is not undone. */
static int
pc_sync(int fd, int (*sync_fn)(int))
{
	struct stat st;
	int slot, rc;

	pthread_once(&once, init);
	if (!undo[0] || fstat(fd, &st))
		return sync_fn(fd);
	if (S_ISDIR(st.st_mode)) {
		char path[PATH_MAX];

		if (!fd_path(fd, path, sizeof(path)) || !path_under(path, true))
			return sync_fn(fd);
		pthread_mutex_lock(&mu);
		cut_point();
		rc = sync_fn(fd);
		if (!rc)
			created_line('S', path);
		pthread_mutex_unlock(&mu);
		return rc;
	}
	if (!pc_begin(fd, &st, &slot))
		return sync_fn(fd);
	cut_point();
	rc = sync_fn(fd);
	if (!rc)
		journal_drop(&st, slot);
	pthread_mutex_unlock(&mu);
	return rc;
}

/*
 * rename in power-cut mode: a name under dir that a power cut could take back until its
 * directory is synced. The file it replaces is kept (a hard link in the journal directory) to be
 * put back; the renamed file's journal learns its new name.
 */
static int
pc_rename(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags)
{
	char from[PATH_MAX * 2], to[PATH_MAX * 2], keep[PATH_MAX + 32] = "-", line[PATH_MAX * 5];
	static unsigned kept;
	struct stat st;
	int rc, len;

	pthread_once(&once, init);
	if (!undo[0] || !target_under_dir(olddir, oldpath, from, sizeof(from)) ||
	    !target_under_dir(newdir, newpath, to, sizeof(to)))
		return real_renameat2(olddir, oldpath, newdir, newpath, flags);
	pthread_mutex_lock(&mu);
	cut_point();
	if (!(flags & RENAME_EXCHANGE) && !lstat(to, &st) && S_ISREG(st.st_mode)) {
		snprintf(keep, sizeof(keep), "%s/keep-%u-%u", undo, (unsigned)getpid(), kept++);
		if (link(to, keep))
			snprintf(keep, sizeof(keep), "-");
	}
	rc = real_renameat2(olddir, oldpath, newdir, newpath, flags);
	if (!rc) {
		len = snprintf(line, sizeof(line), "R\t%s\t%s\t%s", from, to, keep);
		if (len > 0 && (size_t)len < sizeof(line))
			created_line('\0', line);
		if (!stat(to, &st)) {
			char name[PATH_MAX + 64];
			int j;

			journal_name(&st, name, sizeof(name));
			j = real_open(name, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (j >= 0) {
				put(j, UNDO_PATH, (uint64_t)st.st_dev, (uint64_t)st.st_ino, to,
				    strlen(to));
				close(j);
			}
		}
	} else if (strcmp(keep, "-")) {
		unlink(keep);
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

EXPORT int
rename(const char *oldpath, const char *newpath)
{
	return pc_rename(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

EXPORT int
renameat(int olddir, const char *oldpath, int newdir, const char *newpath)
{
	return pc_rename(olddir, oldpath, newdir, newpath, 0);
}

EXPORT int
renameat2(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags)
{
	return pc_rename(olddir, oldpath, newdir, newpath, flags);
}

__attribute__((destructor)) static void
report_changes(void)
{
	char line[64];
	int len;

	if (!undo[0] || log_fd < 0)
		return;
	len = snprintf(line, sizeof(line), "changes %llu\n", (unsigned long long)changes);
	if (len > 0 && real_write(log_fd, line, (size_t)len) < 0) {
		/* best effort */
	}
}

/* A change at [off, off + n) of fd's file, journaled first in power-cut mode. */
#define CHANGE(fd, off_expr, n_expr, call)                                                         \
	do {                                                                                       \
		struct stat st_;                                                                   \
		int slot_;                                                                         \
		ssize_t r_;                                                                        \
		if (!pc_begin(fd, &st_, &slot_))                                                   \
			return call;                                                               \
		journal(fd, &st_, slot_, (uint64_t)(off_expr), (uint64_t)(n_expr));                \
		cut_point();                                                                       \
		r_ = call;                                                                         \
		pthread_mutex_unlock(&mu);                                                         \
		return r_;                                                                         \
	} while (0)

EXPORT ssize_t
write(int fd, const void *buf, size_t n)
{
	FAULT("write", fd);
	CHANGE(fd, cur_off(fd, &st_), n, real_write(fd, buf, n));
}

EXPORT ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	FAULT("pwrite", fd);
	CHANGE(fd, off, n, real_pwrite(fd, buf, n, off));
}

EXPORT ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	FAULT("pwrite", fd);
	CHANGE(fd, off, n, real_pwrite64(fd, buf, n, off));
}

EXPORT ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	FAULT("writev", fd);
	CHANGE(fd, cur_off(fd, &st_), iov_len(iov, n), real_writev(fd, iov, n));
}

EXPORT ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	FAULT("pwritev", fd);
	CHANGE(fd, off, iov_len(iov, n), real_pwritev(fd, iov, n, off));
}

EXPORT ssize_t
pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	FAULT("pwritev", fd);
	CHANGE(fd, off, iov_len(iov, n), real_pwritev64(fd, iov, n, off));
}

EXPORT ssize_t
pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	FAULT("pwritev", fd);
	CHANGE(fd, off < 0 ? cur_off(fd, &st_) : (uint64_t)off, iov_len(iov, n),
	       real_pwritev2(fd, iov, n, off, flags));
}

EXPORT int
fsync(int fd)
{
	FAULT("fsync", fd);
	return pc_sync(fd, real_fsync);
}

EXPORT int
fdatasync(int fd)
{
	FAULT("fdatasync", fd);
	return pc_sync(fd, real_fdatasync);
}

EXPORT int
fallocate(int fd, int mode, off_t off, off_t n)
{
	FAULT("fallocate", fd);
	CHANGE(fd, off, n, real_fallocate(fd, mode, off, n));
}

EXPORT int
ftruncate(int fd, off_t len)
{
	CHANGE(fd, len, st_.st_size > len ? st_.st_size - len : 0, real_ftruncate(fd, len));
}

EXPORT int
ftruncate64(int fd, off_t len)
{
	CHANGE(fd, len, st_.st_size > len ? st_.st_size - len : 0, real_ftruncate64(fd, len));
}

static mode_t
mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

EXPORT int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return pc_open(AT_FDCWD, path, flags, mode);
}

/* The 64-bit names are the same calls on this ABI. */
EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open")));

EXPORT int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return pc_open(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
