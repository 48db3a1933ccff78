// SPDX-License-Identifier: BSD-3-Clause
/*
 * bench-logstore: durable records/s and MB/s of vr_log_append for record sizes x group sizes,
 * against two baselines measured in the same run:
 *   (a) the same records through the RocksDB C API, one key per record (stream || LSN), one
 *       synced write batch per group — what a naive log on RocksDB does;
 *   (b) the raw disk: appending 1 MiB blocks to a file with fdatasync after each.
 * Every cell runs --reps times, each rep measuring baseline (b), the logstore and baseline (a)
 * back to back (each store on a fresh database), so that each ratio compares runs a few seconds
 * apart on a disk whose speed drifts by 2x over minutes; medians are printed with the ratios
 * the targets are stated in. Records are encoded
 * before the clock starts; the clock covers append calls until the last one returned durable.
 * This is a benchmark, not a test: it prints figures and never fails on them.
 *
 * --streams S: each thread's records belong to S WALs, taken in turn (record i to WAL i % S), so
 * that an append of a group of G records holds min(S, G) chunks: the shape of the dataplane's log
 * writer, whose group commits carry a few records of each of many streams.
 *
 * --latency S: instead, the logstore's own ack latency floor. Each of --threads writers has a log
 * of its own (as two sites on one disk do) and appends groups of --groups (first value) records
 * of --sizes (first value) bytes back to back for S seconds, nothing else running. A record that
 * arrives at a random moment is durable at the end of the first append that starts after it
 * arrives: the time from arrival to then, over arrivals evenly spread over the run, is the least
 * ack latency any group commit on this disk can give, whatever runs above it. Its percentiles
 * are printed with those of the appends themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "vr_common.h"
#include "vr_log.h"
#include "vr_test.h"
#include "bench.h"

enum { MAX_REPS = 15, MAX_THREADS = 16, LAT_MAX_APPENDS = 400000, LAT_ARRIVALS = 200000 };

struct opts {
	int reps, threads;
	unsigned streams; /* WALs per thread, records taken in turn */
	const char *dir;
	size_t sizes[8], n_sizes;
	unsigned groups[8], n_groups;
	size_t thread_bytes; /* per thread per cell: bounds run time and memory */
	size_t raw_mib;
	int no_baseline;
	double latency_s; /* > 0: the latency floor instead (see the top) */
};

struct recs {
	uint8_t *buf;
	struct iovec *iov;
	unsigned n;
	struct vr_stream_id id; /* the first WAL's (baseline (a) keys every record by it) */
};

struct worker {
	pthread_barrier_t *start;
	struct recs *r;
	unsigned group;
	struct vr_log *log;
	rocksdb_t *db;
	rocksdb_writeoptions_t *wo;
	int err;
};

static void
rm_rf(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", path);
}

/*
 * Records of exactly `size` bytes (the seeds excepted), `streams` new WALs per thread, record i
 * of WAL i % streams.
 */
static void
make_records(struct recs *r, int thread, size_t size, unsigned n, unsigned streams)
{
	struct vr_test_wal *w = calloc(streams, sizeof(*w));
	uint16_t members[] = {2};
	size_t payload = size - VR_REC_HDR_SIZE - 2, off = 0;

	r->n = n;
	r->buf = malloc((size_t)n * size);
	r->iov = malloc(n * sizeof(*r->iov));
	if (!w || !r->buf || !r->iov) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	for (unsigned s = 0; s < streams; s++)
		vr_test_wal_init(&w[s], 1000 + (uint64_t)thread * 100000 + s, 1, 1, 1, members);
	r->id = w[0].id;
	for (unsigned i = 0; i < n; i++) {
		size_t len = vr_test_wal_next(&w[i % streams], payload, r->buf + off, size);

		r->iov[i].iov_base = r->buf + off;
		r->iov[i].iov_len = len;
		off += size;
	}
	free(w);
}

static void *
run_logstore(void *arg)
{
	struct worker *w = arg;
	struct vr_log_durable *d = malloc(w->group * sizeof(*d));

	pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < w->r->n && !w->err; i += w->group) {
		unsigned n = w->r->n - i < w->group ? w->r->n - i : w->group;

		w->err = vr_log_append(w->log, w->r->iov + i, n, d, NULL, NULL);
	}
	free(d);
	return NULL;
}

static void *
run_rocksdb(void *arg)
{
	struct worker *w = arg;
	uint8_t key[VR_STREAM_ID_SIZE + 8];

	vr_stream_id_pack(&w->r->id, key);
	pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < w->r->n && !w->err; i += w->group) {
		unsigned n = w->r->n - i < w->group ? w->r->n - i : w->group;
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		char *err = NULL;

		for (unsigned k = 0; k < n; k++) {
			vr_put_be64(key + VR_STREAM_ID_SIZE, i + k + 1);
			rocksdb_writebatch_put(wb, (const char *)key, sizeof(key),
			                       w->r->iov[i + k].iov_base, w->r->iov[i + k].iov_len);
		}
		rocksdb_write(w->db, w->wo, wb, &err);
		rocksdb_writebatch_destroy(wb);
		if (err) {
			fprintf(stderr, "bench: rocksdb_write: %s\n", err);
			free(err);
			w->err = -EIO;
		}
	}
	return NULL;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/*
 * One timed run over all threads' records; returns seconds, or < 0 on error. *cores gets the
 * CPU the process used meanwhile (all threads, RocksDB's included) over the wall time.
 */
static double
timed(struct opts *o, struct recs *r, unsigned group, int use_rocksdb, double *cores)
{
	char path[512];
	struct worker w[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	struct vr_log *log = NULL;
	rocksdb_t *db = NULL;
	rocksdb_options_t *ro = NULL;
	rocksdb_writeoptions_t *wo = NULL;
	double t0, t1, c0;
	int err = 0;

	snprintf(path, sizeof(path), "%s/bench-%s", o->dir, use_rocksdb ? "rocksdb" : "logstore");
	rm_rf(path);
	if (use_rocksdb) {
		char *e = NULL;

		ro = rocksdb_options_create();
		rocksdb_options_set_create_if_missing(ro, 1);
		rocksdb_options_set_compression(ro, 0);
		rocksdb_options_set_write_buffer_size(ro, 128 << 20);
		rocksdb_options_set_max_write_buffer_number(ro, 4);
		rocksdb_options_increase_parallelism(ro, 2);
		rocksdb_options_set_max_background_jobs(ro, 2);
		rocksdb_options_set_info_log_level(ro, 5);
		db = rocksdb_open(ro, path, &e);
		if (e) {
			fprintf(stderr, "bench: rocksdb_open: %s\n", e);
			exit(1);
		}
		wo = rocksdb_writeoptions_create();
		rocksdb_writeoptions_set_sync(wo, 1);
	} else {
		log = vr_log_open(path, NULL);
		if (!log) {
			fprintf(stderr, "bench: vr_log_open: %s\n", strerror(errno));
			exit(1);
		}
	}
	pthread_barrier_init(&start, NULL, (unsigned)o->threads + 1);
	for (int t = 0; t < o->threads; t++) {
		w[t] = (struct worker){&start, &r[t], group, log, db, wo, 0};
		pthread_create(&th[t], NULL, use_rocksdb ? run_rocksdb : run_logstore, &w[t]);
	}
	pthread_barrier_wait(&start);
	t0 = bench_now();
	c0 = cpu_s();
	for (int t = 0; t < o->threads; t++) {
		pthread_join(th[t], NULL);
		err |= w[t].err;
	}
	t1 = bench_now();
	*cores = (cpu_s() - c0) / (t1 - t0);
	pthread_barrier_destroy(&start);
	if (use_rocksdb) {
		rocksdb_writeoptions_destroy(wo);
		rocksdb_close(db);
		rocksdb_options_destroy(ro);
	} else {
		vr_log_close(log);
	}
	rm_rf(path);
	if (err) {
		fprintf(stderr, "bench: a writer failed: %s\n", strerror(-err));
		return -1;
	}
	return t1 - t0;
}

static double
raw_disk_mbs(struct opts *o)
{
	char path[512];
	size_t block = 1 << 20;
	char *buf = malloc(block);
	double t0, t1;
	int fd;

	snprintf(path, sizeof(path), "%s/bench-raw", o->dir);
	memset(buf, 0x5a, block);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	t0 = bench_now();
	for (size_t i = 0; i < o->raw_mib; i++) {
		if (write(fd, buf, block) != (ssize_t)block || fdatasync(fd)) {
			perror("bench: raw write");
			exit(1);
		}
	}
	t1 = bench_now();
	close(fd);
	unlink(path);
	free(buf);
	return (double)o->raw_mib * (double)block / (t1 - t0) / 1e6;
}

struct lat_writer {
	pthread_barrier_t *start;
	const char *dir;
	int idx;
	size_t size;
	unsigned group;
	double secs;
	double *t_start, *t_end; /* per append */
	unsigned n;
	int err;
};

static void *
run_latency(void *arg)
{
	struct lat_writer *lw = arg;
	struct vr_test_wal w;
	uint16_t members[] = {2};
	size_t payload = lw->size - VR_REC_HDR_SIZE - 2;
	uint8_t *buf = malloc((size_t)lw->group * lw->size);
	struct iovec *iov = malloc(lw->group * sizeof(*iov));
	struct vr_log_durable *d = malloc(lw->group * sizeof(*d));
	struct vr_log *log = vr_log_open(lw->dir, NULL);
	double until;

	if (!buf || !iov || !d || !log) {
		fprintf(stderr, "bench: latency writer %d: %s\n", lw->idx,
		        log ? "out of memory" : strerror(errno));
		lw->err = -ENOMEM;
	}
	vr_test_wal_init(&w, 2000 + (uint64_t)lw->idx, 1, 1, 1, members);
	pthread_barrier_wait(lw->start);
	until = bench_now() + lw->secs;
	/* Bounded in time and in count. The next group is encoded inside the measured gap. */
	while (!lw->err && lw->n < LAT_MAX_APPENDS && bench_now() < until) {
		for (unsigned i = 0; i < lw->group; i++) {
			iov[i].iov_base = buf + (size_t)i * lw->size;
			iov[i].iov_len = vr_test_wal_next(&w, payload, iov[i].iov_base, lw->size);
		}
		lw->t_start[lw->n] = bench_now();
		lw->err = vr_log_append(log, iov, lw->group, d, NULL, NULL);
		lw->t_end[lw->n++] = bench_now();
	}
	if (log)
		vr_log_close(log);
	free(buf);
	free(iov);
	free(d);
	return NULL;
}

static double
pct(const double *sorted, size_t n, double p)
{
	size_t i = (size_t)(p * (double)n);

	return sorted[i < n ? i : n - 1];
}

/* The latency floor (see the top of this file). 0, or 1 on failure. */
static int
latency_floor(struct opts *o)
{
	struct lat_writer lw[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	char dirs[MAX_THREADS][600];
	double *lat = malloc(LAT_ARRIVALS * sizeof(*lat)), *dur = NULL;
	int rc = 0;

	printf("bench-logstore: ack latency floor, %d logs on %s, each appending %u records of %zu "
	       "B a call back to back for %.0f s\n",
	       o->threads, o->dir, o->groups[0], o->sizes[0], o->latency_s);
	pthread_barrier_init(&start, NULL, (unsigned)o->threads);
	for (int t = 0; t < o->threads; t++) {
		snprintf(dirs[t], sizeof(dirs[t]), "%s/bench-lat-%d", o->dir, t);
		rm_rf(dirs[t]);
		lw[t] = (struct lat_writer){
		    .start = &start,
		    .dir = dirs[t],
		    .idx = t,
		    .size = o->sizes[0],
		    .group = o->groups[0],
		    .secs = o->latency_s,
		    .t_start = malloc(LAT_MAX_APPENDS * sizeof(double)),
		    .t_end = malloc(LAT_MAX_APPENDS * sizeof(double)),
		};
		if (!lw[t].t_start || !lw[t].t_end || !lat) {
			fprintf(stderr, "bench: out of memory\n");
			exit(1);
		}
		pthread_create(&th[t], NULL, run_latency, &lw[t]);
	}
	for (int t = 0; t < o->threads; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	printf("%6s %8s %10s %10s %10s %10s %12s %12s %12s\n", "LOG", "APPENDS", "APPEND p50",
	       "p99", "max", "REC/S", "FLOOR p50", "p99", "p99.9");
	for (int t = 0; t < o->threads && !rc; t++) {
		struct lat_writer *x = &lw[t];
		double span, step;
		size_t i = 0;

		if (x->err || x->n < 2) {
			fprintf(stderr, "bench: latency writer %d failed: %s\n", t,
			        x->err ? strerror(-x->err) : "fewer than two appends");
			rc = 1;
			break;
		}
		/* Arrivals evenly spread over [first start, last start): each waits for the first
		 * append that starts at or after it. */
		span = x->t_start[x->n - 1] - x->t_start[0];
		step = span / LAT_ARRIVALS;
		for (size_t k = 0; k < LAT_ARRIVALS; k++) {
			double a = x->t_start[0] + (double)k * step;

			while (x->t_start[i] < a)
				i++;
			lat[k] = x->t_end[i] - a;
		}
		qsort(lat, LAT_ARRIVALS, sizeof(*lat), bench_cmp_double);
		dur = malloc(x->n * sizeof(*dur));
		if (!dur) {
			rc = 1;
			break;
		}
		for (unsigned k = 0; k < x->n; k++)
			dur[k] = x->t_end[k] - x->t_start[k];
		qsort(dur, x->n, sizeof(*dur), bench_cmp_double);
		printf("%6d %8u %8.2f ms %7.2f ms %7.2f ms %10.0f %9.2f ms %9.2f ms %9.2f ms\n", t,
		       x->n, pct(dur, x->n, 0.5) * 1e3, pct(dur, x->n, 0.99) * 1e3,
		       dur[x->n - 1] * 1e3,
		       (double)x->n * x->group / (x->t_end[x->n - 1] - x->t_start[0]),
		       pct(lat, LAT_ARRIVALS, 0.5) * 1e3, pct(lat, LAT_ARRIVALS, 0.99) * 1e3,
		       pct(lat, LAT_ARRIVALS, 0.999) * 1e3);
		free(dur);
	}
	for (int t = 0; t < o->threads; t++) {
		free(lw[t].t_start);
		free(lw[t].t_end);
		rm_rf(dirs[t]);
	}
	free(lat);
	return rc;
}

static void
parse_list(const char *s, size_t *out, size_t *n, size_t max)
{
	char *copy = strdup(s), *save = NULL;

	*n = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok && *n < max;
	     tok = strtok_r(NULL, ",", &save))
		out[(*n)++] = strtoul(tok, NULL, 10);
	free(copy);
}

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bench-logstore [--reps N] [--threads T] [--dir DIR] [--sizes 64,256,1024]\n"
	    "                      [--groups 1,16,256,4096] [--mib-per-thread M] [--quick]\n"
	    "                      [--no-baseline] [--latency SECONDS] [--streams S]\n"
	    "Prints durable records/s and MB/s, baselines (a) and (b), and the ratios; with\n"
	    "--latency, the ack latency floor of --threads logs instead (first size and group).\n"
	    "--streams S spreads each thread's records over S WALs, in turn (default 1).\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"reps", required_argument, 0, 'r'},    {"threads", required_argument, 0, 't'},
	    {"dir", required_argument, 0, 'd'},     {"sizes", required_argument, 0, 's'},
	    {"groups", required_argument, 0, 'g'},  {"mib-per-thread", required_argument, 0, 'm'},
	    {"quick", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
	    {"no-baseline", no_argument, 0, 'n'},   {"latency", required_argument, 0, 'l'},
	    {"streams", required_argument, 0, 'S'}, {0, 0, 0, 0},
	};
	struct opts o = {.reps = 3,
	                 .threads = 2,
	                 .streams = 1,
	                 .dir = "/var/tmp",
	                 .thread_bytes = 256u << 20,
	                 .raw_mib = 512};
	size_t groups_tmp[8];
	double at4096_256 = 0;
	int c;

	parse_list("64,256,1024", o.sizes, &o.n_sizes, 8);
	o.n_groups = 4;
	o.groups[0] = 1, o.groups[1] = 16, o.groups[2] = 256, o.groups[3] = 4096;
	while ((c = getopt_long(argc, argv, "r:t:d:s:g:m:qhnl:S:", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.reps = atoi(optarg);
			break;
		case 't':
			o.threads = atoi(optarg);
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 's':
			parse_list(optarg, o.sizes, &o.n_sizes, 8);
			break;
		case 'g': {
			size_t n;

			parse_list(optarg, groups_tmp, &n, 8);
			o.n_groups = (unsigned)n;
			for (size_t i = 0; i < n; i++)
				o.groups[i] = (unsigned)groups_tmp[i];
			break;
		}
		case 'm':
			o.thread_bytes = strtoul(optarg, NULL, 10) << 20;
			break;
		case 'n':
			o.no_baseline = 1;
			break;
		case 'l':
			o.latency_s = strtod(optarg, NULL);
			if (!(o.latency_s > 0 && o.latency_s <= 600)) {
				fprintf(stderr, "bench: --latency takes 0 < SECONDS <= 600\n");
				return 2;
			}
			break;
		case 'S':
			o.streams = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			o.reps = 1;
			o.thread_bytes = 32u << 20;
			o.raw_mib = 64;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.reps < 1 || o.reps > MAX_REPS || o.threads < 1 || o.threads > MAX_THREADS ||
	    o.streams < 1 || o.streams > 100000) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < o.n_sizes; i++)
		if (o.sizes[i] < VR_REC_HDR_SIZE + 2 || o.sizes[i] > 65536) {
			fprintf(stderr, "bench: record size %zu out of range [%d, 65536]\n",
			        o.sizes[i], VR_REC_HDR_SIZE + 2);
			return 2;
		}

	if (o.latency_s > 0)
		return latency_floor(&o);
	printf("bench-logstore: %d writer threads, %u WAL%s each, %d reps (median), dir %s\n",
	       o.threads, o.streams, o.streams > 1 ? "s" : "", o.reps, o.dir);
	printf(
	    "(a) RocksDB, one key per record, synced batch per group; (b) raw disk, 1 MiB appends "
	    "+ fdatasync\n\n");
	printf("%6s %6s %12s %9s %9s %12s %9s %9s %8s %8s\n", "SIZE", "GROUP", "LOG REC/S",
	       "LOG MB/S", "LOG CPU", "(a) REC/S", "(a) MB/S", "(b) MB/S", "LOG/(a)", "LOG/(b)");

	for (size_t si = 0; si < o.n_sizes; si++) {
		for (unsigned gi = 0; gi < o.n_groups; gi++) {
			size_t size = o.sizes[si];
			unsigned group = o.groups[gi];
			/* Small groups are slow (one sync each): fewer records keep the cell short.
			 */
			size_t want = group == 1    ? 2000
			              : group == 16 ? 16000
			                            : o.thread_bytes / size;
			unsigned n =
			    (unsigned)(want < o.thread_bytes / size ? want : o.thread_bytes / size);
			struct recs r[MAX_THREADS];
			double tl[MAX_REPS], ta[MAX_REPS], raw[MAX_REPS], cl[MAX_REPS], ca;
			double ml, ma = 0, mb = 0, total;

			if (n < group)
				n = group;
			for (int t = 0; t < o.threads; t++)
				make_records(&r[t], t, size, n, o.streams);
			for (int i = 0; i < o.reps; i++) {
				if (!o.no_baseline)
					raw[i] = raw_disk_mbs(&o);
				tl[i] = timed(&o, r, group, 0, &cl[i]);
				ta[i] = o.no_baseline ? 1 : timed(&o, r, group, 1, &ca);
				if (tl[i] < 0 || ta[i] < 0)
					return 1;
			}
			total = (double)n * o.threads;
			ml = total / bench_median(tl, o.reps);
			if (!o.no_baseline) {
				ma = total / bench_median(ta, o.reps);
				mb = bench_median(raw, o.reps);
			}
			printf("%6zu %6u %12.0f %9.1f %9.2f %12.0f %9.1f %9.0f %7.2fx %7.2fx\n",
			       size, group, ml, ml * (double)size / 1e6, bench_median(cl, o.reps),
			       ma, ma * (double)size / 1e6, mb, ma > 0 ? ml / ma : 0,
			       mb > 0 ? ml * (double)size / 1e6 / mb : 0);
			fflush(stdout);
			if (size == 256 && group == 4096)
				at4096_256 = ml;
			for (int t = 0; t < o.threads; t++) {
				free(r[t].buf);
				free(r[t].iov);
			}
		}
	}
	if (at4096_256 > 0)
		printf("\n256 B records at group 4096: %.2f M durable records/s (target >= 2 M)\n",
		       at4096_256 / 1e6);
	return 0;
}
