// SPDX-License-Identifier: BSD-3-Clause
/*
 * libvr-faultfs: an LD_PRELOAD library that makes writes and syncs of the files under one
 * directory fail, one in N, with EIO or ENOSPC, while a switch file says so (issue 6, figure 5).
 * It stands between a real process (the log's writer, RocksDB inside it) and the real file
 * system: a faulted call does nothing and returns -1 with the errno; every other call goes
 * through unchanged.
 *
 *   VR_FAULT_DIR     files whose path starts with this directory are faulted (their
 *                    descriptors: classified once per inode through /proc/self/fd)
 *   VR_FAULT_SWITCH  a file holding "N ERRNO", e.g. "128 EIO" or "1000 ENOSPC"; while it does
 *                    not exist nothing is faulted. Read again whenever it changes.
 *   VR_FAULT_SEED    the decisions' seed (default 1): call k fails when a hash of (seed, k)
 *                    is 0 modulo N
 *   VR_FAULT_LOG     optional: one line per fault injected, "<call> <errno> <path>"
 *
 * Calls faulted: write, pwrite, writev, pwritev (and their 64-bit and v2 names), fsync,
 * fdatasync, fallocate. Not sync_file_range: it only starts writeback (durability is fsync's
 * and fdatasync's), and RocksDB probes it once per file with an assertion that it works.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char dir[PATH_MAX], sw[PATH_MAX];
static size_t dir_len;
static uint64_t seed = 1;
static int log_fd = -1;
static _Atomic uint64_t calls;

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
} seen[SEEN];

/* POSIX's way to take a function from dlsym (a data pointer). */
#define RESOLVE(fn, name) (*(void **)&(fn) = dlsym(RTLD_NEXT, name))

static void
init(void)
{
	const char *d = getenv("VR_FAULT_DIR"), *s = getenv("VR_FAULT_SWITCH"),
	           *sd = getenv("VR_FAULT_SEED"), *lg = getenv("VR_FAULT_LOG");

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
	if (d && realpath(d, dir))
		dir_len = strlen(dir);
	if (s)
		snprintf(sw, sizeof(sw), "%s", s);
	if (sd)
		seed = strtoull(sd, NULL, 0);
	if (lg)
		log_fd = open(lg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* Under the mutex: is this descriptor's file under dir? */
static bool
under_dir(int fd, const struct stat *st)
{
	unsigned h = (unsigned)((st->st_ino * 0x9e3779b97f4a7c15ull) >> 52) % SEEN;
	char link[64], path[PATH_MAX];
	bool match;
	ssize_t n;

	for (unsigned k = 0; k < SEEN; k++, h = (h + 1) % SEEN) {
		if (!seen[h].used)
			break;
		if (seen[h].dev == st->st_dev && seen[h].ino == st->st_ino)
			return seen[h].faulted;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return false;
	path[n] = 0;
	match = (size_t)n > dir_len && !strncmp(path, dir, dir_len) && path[dir_len] == '/';
	if (!seen[h].used) { /* else the table is full: looked up again next time */
		seen[h].used = 1;
		seen[h].dev = st->st_dev;
		seen[h].ino = st->st_ino;
		seen[h].faulted = match;
	}
	return match;
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
		char line[PATH_MAX + 64], link[64], path[PATH_MAX] = "?";
		ssize_t n;
		int len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		path[n > 0 ? n : 1] = 0;
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

EXPORT ssize_t
write(int fd, const void *buf, size_t n)
{
	FAULT("write", fd);
	return real_write(fd, buf, n);
}

EXPORT ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	FAULT("pwrite", fd);
	return real_pwrite(fd, buf, n, off);
}

EXPORT ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	FAULT("pwrite", fd);
	return real_pwrite64(fd, buf, n, off);
}

EXPORT ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	FAULT("writev", fd);
	return real_writev(fd, iov, n);
}

EXPORT ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	FAULT("pwritev", fd);
	return real_pwritev(fd, iov, n, off);
}

EXPORT ssize_t
pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	FAULT("pwritev", fd);
	return real_pwritev64(fd, iov, n, off);
}

EXPORT ssize_t
pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	FAULT("pwritev", fd);
	return real_pwritev2(fd, iov, n, off, flags);
}

EXPORT int
fsync(int fd)
{
	FAULT("fsync", fd);
	return real_fsync(fd);
}

EXPORT int
fdatasync(int fd)
{
	FAULT("fdatasync", fd);
	return real_fdatasync(fd);
}

EXPORT int
fallocate(int fd, int mode, off_t off, off_t n)
{
	FAULT("fallocate", fd);
	return real_fallocate(fd, mode, off, n);
}
