// SPDX-License-Identifier: BSD-3-Clause
/*
 * Two dataplane sites for the integration tests (sites.h): configuration, start, the control
 * socket, generators, stream figures, log comparison, and the network namespaces of the
 * af_packet tests. Shared by dataplane:sites and faults:sites.
 */
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "sites.h"

#ifndef VR_AGENT_BIN
#error "VR_AGENT_BIN must name vaultrep-hsm-agent"
#endif

char *root;
char wan_sock[300];

void
stage(const char *what)
{
	static double t0;
	double t = now_s();

	if (!t0)
		t0 = t;
	printf("[%7.2f s] %s\n", t - t0, what);
	fflush(stdout);
}

/* A site's configuration: workers worker lcores (0: 1), wan_queues WAN queue pairs (0: 1). */
void
site_conf_workers(struct site *s, int id, int peer, unsigned workers, unsigned wan_queues)
{
	FILE *f;

	memset(s, 0, sizeof(*s));
	s->id = id;
	snprintf(s->dir, sizeof(s->dir), "%s/site%d", root, id);
	snprintf(s->ctl, sizeof(s->ctl), "%s/ctl.sock", s->dir);
	snprintf(s->wal, sizeof(s->wal), "%s/wal", s->dir);
	snprintf(s->ini, sizeof(s->ini), "%s/dp.ini", s->dir);
	snprintf(s->lan, sizeof(s->lan), "%s/lan.sock", s->dir);
	snprintf(s->prefix, sizeof(s->prefix), "vrt%d_%d", (int)getpid(), id);
	s->workers = workers ? workers : 1;
	ck_assert_int_eq(mkdir(s->dir, 0700), 0);
	f = fopen(s->ini, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
	        "[site]\nid = %d\nlog_dir = %s\ncontrol = %s\n"
	        "[lan]\nport = 0\nip = 198.18.%d.1\n"
	        "[wan]\nport = 1\nip = 198.19.0.%d\nqueues = %u\n"
	        "[batch]\nmax_delay_us = 50\n"
	        "[log]\ncursor_ms = 100\ntrim_records = 2000\n"
	        "[lcores]\nworkers = %u\n"
	        "[crypto]\nsession_idle_ms = 300\n"
	        "[peer %d]\nip = 198.19.0.%d\n",
	        id, s->wal, s->ctl, id, id, wan_queues ? wan_queues : 1, s->workers, peer, peer);
	fclose(f);
}

void
site_conf(struct site *s, int id, int peer)
{
	site_conf_workers(s, id, peer, 0, 0);
}

/*
 * Starts site s. WAN: memif between the sites (site 1 serves, site 2 connects), or, when
 * s->netns is set, net_af_packet on the veth s->iface inside that network namespace.
 */
int
site_start_try(struct site *s)
{
	char lan[400], wan[400], lcores[32], preload[320];
	const char *dp[] = {VR_DP_BIN,
	                    s->workers > 1 ? "--lcores" : "-l",
	                    lcores,
	                    "--no-huge",
	                    "-m",
	                    "256",
	                    "--no-pci",
	                    "--file-prefix",
	                    s->prefix,
	                    "--log-level",
	                    "lib.eal:warning",
	                    "--vdev",
	                    lan,
	                    "--vdev",
	                    wan,
	                    "--",
	                    "--config",
	                    s->ini,
	                    NULL};
	const char *argv[40];
	unsigned n = 0;

	/* The main lcore, then the workers; more lcores than this machine's 2 cores float on both.
	 */
	if (s->workers > 1)
		snprintf(lcores, sizeof(lcores), "(0-%u)@(0-1)", s->workers);
	else
		snprintf(lcores, sizeof(lcores), "0,1");
	if (s->lan_iface[0])
		snprintf(lan, sizeof(lan), "net_af_packet0,iface=%s,qpairs=1", s->lan_iface);
	else
		snprintf(
		    lan, sizeof(lan),
		    "net_memif0,role=server,socket=%s,socket-abstract=no,mac=02:00:00:00:%02x:01",
		    s->lan, s->id);
	if (s->netns[0]) {
		snprintf(wan, sizeof(wan), "net_af_packet1,iface=%s,qpairs=1", s->iface);
		argv[n++] = "/usr/sbin/ip";
		argv[n++] = "netns";
		argv[n++] = "exec";
		argv[n++] = s->netns;
	} else {
		snprintf(wan, sizeof(wan),
		         "net_memif1,role=%s,socket=%s,socket-abstract=no,mac=02:00:00:00:%02x:02",
		         s->id == 1 ? "server" : "client", wan_sock, s->id);
	}
	if (s->preload[0]) {
		snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", s->preload);
		argv[n++] = "/usr/bin/env";
		argv[n++] = preload;
	}
	for (unsigned i = 0; dp[i]; i++)
		argv[n++] = dp[i];
	argv[n] = NULL;
	s->pid = vr_test_spawn(argv, s->ctl);
	return s->pid > 0 ? 0 : -1;
}

void
site_start(struct site *s)
{
	ck_assert_msg(!site_start_try(s), "vaultrep-dataplane of site %d did not start", s->id);
}

/* The error text of the last call_want(). */
char call_err[256];
unsigned gen_seconds = 150;
unsigned gen_reconnect;

/*
 * One request (consumed) to the socket of a site's dataplane or agent (named who in a
 * failure), which must end with errno want (0: succeed). Returns the answer.
 */
json_t *
call_want(const char *sock, const char *who, int want, json_t *req)
{
	struct vr_hsm *h = vr_hsm_connect(sock);
	json_t *res = NULL;
	int rc;

	ck_assert_ptr_nonnull(h);
	call_err[0] = 0;
	rc = vr_hsm_call(h, req, &res, call_err, sizeof(call_err));
	ck_assert_msg(rc == -want, "%s: %s: %d %s", who,
	              json_string_value(json_object_get(req, "op")), rc, call_err);
	json_decref(req);
	vr_hsm_close(h);
	return res;
}

json_t *
ctl_want(struct site *s, int want, json_t *req)
{
	char who[16];

	snprintf(who, sizeof(who), "site %d", s->id);
	return call_want(s->ctl, who, want, req);
}

json_t *
ctl(struct site *s, json_t *req)
{
	return ctl_want(s, 0, req);
}

/* The payload key of every stream of this test (each test runs in a process of its own). */
static const char *
stream_key(void)
{
	static char *b64;
	uint8_t key[32];

	if (!b64) {
		for (unsigned i = 0; i < sizeof(key); i++)
			key[i] = (uint8_t)(rand() ^ (int)(i * 37));
		b64 = vr_hsm_b64(key, sizeof(key));
	}
	return b64;
}

/*
 * Configures streams account base..base+n-1 (vault 1, primary origin) at site s: the origin
 * (members: rcv) or the receiver. Done again after a restart, as control would.
 */
/* One request (consumed) that may fail, the site with it: 0, or why not (-errno). */
static int
ctl_try(struct site *s, json_t *req)
{
	struct vr_hsm *h = vr_hsm_connect(s->ctl);
	json_t *res = NULL;
	char err[256];
	int rc = h ? vr_hsm_call(h, req, &res, err, sizeof(err)) : -errno;

	json_decref(req);
	json_decref(res);
	vr_hsm_close(h);
	return rc;
}

/* The requests that configure stream (account a, vault 1, primary origin) at site s. */
static void
stream_requests(struct site *s, struct site *origin, struct site *rcv, unsigned a, unsigned sync,
                json_t **add, json_t **key)
{
	*add = s == origin ? json_pack("{s:s, s:i, s:i, s:[i], s:i}", "op", "stream.add", "account",
	                               a, "vault", 1, "members", rcv->id, "sync", sync)
	                   : json_pack("{s:s, s:i, s:i, s:i}", "op", "stream.add", "account", a,
	                               "vault", 1, "primary", origin->id);
	*key = json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "op", "key.set", "account", a, "vault",
	                 1, "primary", origin->id, "key_id", 1, "key", stream_key());
}

void
streams_config_sync(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                    unsigned n, unsigned sync)
{
	for (unsigned a = base; a < base + n; a++) {
		json_t *add, *key;

		stream_requests(s, origin, rcv, a, sync, &add, &key);
		json_decref(ctl(s, add));
		json_decref(ctl(s, key));
	}
}

bool
streams_config_try(struct site *s, struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	for (unsigned a = base; a < base + n; a++) {
		json_t *add, *key;
		int rc;

		stream_requests(s, origin, rcv, a, 0, &add, &key);
		rc = ctl_try(s, add);
		if (rc) {
			json_decref(key);
			return false;
		}
		if (ctl_try(s, key))
			return false;
	}
	return true;
}

void
streams_config(struct site *s, struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	streams_config_sync(s, origin, rcv, base, n, 0);
}

/* Streams account base..base+n-1, vault 1, primary origin->id, replicated to rcv. */
void
streams_add(struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	streams_config(origin, origin, rcv, base, n);
	streams_config(rcv, origin, rcv, base, n);
}

/*
 * Starts a generator on site s's LAN as producer; returns its pid. With acks, it writes the
 * LSN of every frame its own ack named there and tolerates LSNs out of order (restarts).
 */
int
gen_start_opts(struct site *s, unsigned producer, unsigned base, unsigned streams, unsigned records,
               const char *report, const char *acks, unsigned rate)
{
	char vdev[400], ip[32], dst[32], acc[16], ns[16], nr[16], prefix[48], pr[16], rt[16];
	char secs[16], recon[16];
	const char *argv[] = {VR_GEN_BIN,
	                      "-l",
	                      "1",
	                      "--no-huge",
	                      "-m",
	                      "128",
	                      "--no-pci",
	                      "--file-prefix",
	                      prefix,
	                      "--log-level",
	                      "lib.eal:warning",
	                      "--vdev",
	                      vdev,
	                      "--",
	                      "--ip",
	                      ip,
	                      "--dst",
	                      dst,
	                      "--account",
	                      acc,
	                      "--streams",
	                      ns,
	                      "--records",
	                      nr,
	                      "--window",
	                      "32",
	                      "--seconds",
	                      secs,
	                      "--report",
	                      report,
	                      "--producer",
	                      pr,
	                      "--rate",
	                      rt,
	                      gen_reconnect ? "--reconnect" : "--lenient",
	                      gen_reconnect ? recon : "--lenient",
	                      acks ? "--acks" : NULL,
	                      acks,
	                      NULL};
	pid_t pid;

	snprintf(recon, sizeof(recon), "%u", gen_reconnect);
	snprintf(rt, sizeof(rt), "%u", rate);
	snprintf(secs, sizeof(secs), "%u", gen_seconds);
	snprintf(pr, sizeof(pr), "%u", producer);
	snprintf(vdev, sizeof(vdev),
	         "net_memif0,role=client,socket=%s,socket-abstract=no,mac=02:00:00:00:%02x:09",
	         s->lan, s->id);
	snprintf(ip, sizeof(ip), "198.18.%d.9", s->id);
	snprintf(dst, sizeof(dst), "198.18.%d.1", s->id);
	snprintf(acc, sizeof(acc), "%u", base);
	snprintf(ns, sizeof(ns), "%u", streams);
	snprintf(nr, sizeof(nr), "%u", records);
	snprintf(prefix, sizeof(prefix), "vrg%d_%d", (int)getpid(), s->id);
	/* A site just (re)started answers its control socket before its LAN's memif is up. */
	for (int i = 0; i < 500 && access(s->lan, F_OK); i++)
		usleep(10000);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	return pid;
}

int
gen_start_as(struct site *s, unsigned producer, unsigned base, unsigned streams, unsigned records,
             const char *report)
{
	return gen_start_opts(s, producer, base, streams, records, report, NULL, 0);
}

int
gen_start(struct site *s, unsigned base, unsigned streams, unsigned records, const char *report)
{
	return gen_start_as(s, 1, base, streams, records, report);
}

int
gen_wait(int pid)
{
	int st = 0;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One figure of section ("counters", "memory") of the site's stats. */
static long long
stats_figure(struct site *s, const char *section, const char *name)
{
	json_t *r = ctl(s, json_pack("{s:s}", "op", "stats"));
	long long v = json_integer_value(json_object_get(json_object_get(r, section), name));

	json_decref(r);
	return v;
}

/* One counter of the site's stats. */
long long
counter(struct site *s, const char *name)
{
	return stats_figure(s, "counters", name);
}

/* One figure of stats "memory" at site s. */
long long
memory_figure(struct site *s, const char *name)
{
	return stats_figure(s, "memory", name);
}

/* One figure of stream.show for stream (account, vault 1, primary) at site s. */
long long
show(struct site *s, unsigned account, int primary, const char *field)
{
	json_t *r = ctl(s, json_pack("{s:s, s:i, s:i, s:i}", "op", "stream.show", "account",
	                             account, "vault", 1, "primary", primary));
	long long v = (long long)json_integer_value(json_object_get(r, field));

	json_decref(r);
	return v;
}

uint64_t
durable(struct site *s, unsigned account, int primary)
{
	return (uint64_t)show(s, account, primary, "durable_lsn");
}

/*
 * Waits until the receiver's durable LSN of every stream equals the origin's. Bounded: fails once
 * no stream moved for 30 s (a backlog caught up from the log may take longer than that, but not
 * without moving), or after 600 s.
 */
void
wait_caught_up(struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	double t0 = now_s(), moved = t0;

	for (unsigned a = base; a < base + n; a++) {
		uint64_t want = durable(origin, a, origin->id), got, last = 0;

		while ((got = durable(rcv, a, origin->id)) < want && now_s() - moved < 30 &&
		       now_s() - t0 < 600) {
			if (got != last)
				moved = now_s();
			last = got;
			usleep(50000);
		}
		if (durable(rcv, a, origin->id) != want) {
			/* What each end says of the stream, for the failure's log. */
			for (struct site *x = origin; x; x = x == origin ? rcv : NULL) {
				json_t *r = ctl(x, json_pack("{s:s, s:i, s:i, s:i}", "op",
				                             "stream.show", "account", a, "vault",
				                             1, "primary", origin->id));
				char *d = json_dumps(r, JSON_COMPACT);

				printf("site %d, stream %u: %s\n", x->id, a, d ? d : "?");
				free(d);
				json_decref(r);
				print_stats(x);
			}
		}
		ck_assert_uint_eq(durable(rcv, a, origin->id), want);
	}
}

/* What the origin knows member 0 of a stream acknowledged. */
uint64_t
member_acked(struct site *s, unsigned account)
{
	json_t *r = ctl(
	    s, json_pack("{s:s, s:i, s:i}", "op", "stream.show", "account", account, "vault", 1));
	uint64_t v = (uint64_t)json_integer_value(
	    json_object_get(json_array_get(json_object_get(r, "members"), 0), "acked"));

	json_decref(r);
	return v;
}

/* Waits (bounded) until the origin knows the receiver holds all of every stream. */
void
wait_acked(struct site *origin, unsigned base, unsigned n)
{
	for (unsigned a = base; a < base + n; a++) {
		uint64_t want = durable(origin, a, origin->id);
		int tries = 0;

		while (member_acked(origin, a) < want && tries++ < 600)
			usleep(20000);
		ck_assert_uint_eq(member_acked(origin, a), want);
	}
}

/* NULL if the record (account a) carries the generator's payload for its frame, else why not. */
const char *
payload_bad(unsigned a, const struct vr_rec *r)
{
	uint64_t seq = r->lsn - 1, acc;

	if (r->payload_size != 64)
		return "a payload of the wrong size";
	memcpy(&acc, r->payload, 8);
	if (acc != a || memcmp(r->payload + 8, &seq, 8))
		return "a payload naming another stream or frame";
	for (unsigned i = 16; i < 64; i++)
		if (r->payload[i] != (seq & 0xff))
			return "a payload byte that the generator did not send";
	return NULL;
}

bool
gen_report_next(FILE *f, struct gen_report *r)
{
	char line[256];

	if (!fgets(line, sizeof(line), f))
		return false;
	ck_assert_int_eq(sscanf(line,
	                        "{\"account\": %llu, \"vault\": %u, \"acked\": %llu, "
	                        "\"first_lsn\": %llu, \"last_lsn\": %llu}",
	                        &r->account, &r->vault, &r->acked, &r->first_lsn, &r->last_lsn),
	                 5);
	return true;
}

/*
 * Compares the logs: for each stream, the receiver's records are the origin's byte for byte
 * (LSN 1..last; the origin's from where it trimmed what the receiver acknowledged), both chains
 * verify, and each data record carries the generator's payload for frame lsn - 1 of that
 * stream. Returns the data records checked.
 */
uint64_t
compare_logs(struct site *origin, struct site *rcv, unsigned base, unsigned n, const char *report,
             unsigned per_stream)
{
	struct vr_log *lo = vr_log_open(origin->wal, NULL), *lr = vr_log_open(rcv->wal, NULL);
	FILE *rep = fopen(report, "r");
	uint64_t checked = 0;

	ck_assert_ptr_nonnull(lo);
	ck_assert_ptr_nonnull(lr);
	ck_assert_ptr_nonnull(rep);
	for (unsigned a = base; a < base + n; a++) {
		struct vr_stream_id id = {
		    .account = a, .vault = 1, .primary = (uint16_t)origin->id};
		struct vr_log_iter *io = vr_log_iter_open(lo, &id, 1),
		                   *ir = vr_log_iter_open(lr, &id, 1);
		struct vr_rec ro, rr;
		struct vr_log_stream so;
		uint64_t expect = 1, verified = 0;
		int go = 1, gr;
		struct gen_report gr_line;

		ck_assert_ptr_nonnull(io);
		ck_assert_ptr_nonnull(ir);
		ck_assert_int_eq(vr_log_stream_get(lo, &id, &so), 0);
		ck_assert_int_eq(vr_log_verify(lo, &id, &verified), 0);
		ck_assert_uint_eq(verified, so.last_lsn - so.trim_lsn);
		/* Plain checks in the loop (a ck_assert costs a write per call); one assert after.
		 */
		for (;;) {
			const char *bad = NULL;

			bool both = expect > so.trim_lsn;

			if (both)
				go = vr_log_iter_next(io, &ro);
			gr = vr_log_iter_next(ir, &rr);
			if (go != gr || go < 0)
				bad = "the logs end differently or fail to read";
			else if (!go)
				break;
			else if ((both && ro.lsn != expect) || rr.lsn != expect)
				bad = "an LSN out of sequence";
			else if (both && (ro.raw_size != rr.raw_size ||
			                  memcmp(ro.raw, rr.raw, ro.raw_size)))
				bad = "a record differs between the sites";
			else if (expect > 1) {
				bad = payload_bad(a, &rr);
				checked++;
			}
			if (bad)
				ck_abort_msg("stream %u, LSN %llu: %s", a,
				             (unsigned long long)expect, bad);
			expect++;
		}
		vr_log_iter_close(io);
		vr_log_iter_close(ir);
		ck_assert_int_eq(vr_log_verify(lr, &id, &verified), 0);
		ck_assert_uint_eq(verified, expect - 1);
		/* The generator's acks: every frame, LSNs 2..per_stream+1. */
		ck_assert(gen_report_next(rep, &gr_line));
		ck_assert_uint_eq(gr_line.vault, 1);
		ck_assert_uint_eq(gr_line.account, a);
		ck_assert_uint_eq(gr_line.acked, per_stream);
		ck_assert_uint_eq(gr_line.first_lsn, 2);
		ck_assert_uint_eq(gr_line.last_lsn, expect - 1);
		ck_assert_uint_eq(gr_line.last_lsn, per_stream + 1);
	}
	fclose(rep);
	vr_log_close(lo);
	vr_log_close(lr);
	return checked;
}

/* Two sites over memif, each with workers worker lcores and WAN queue pairs. */
void
setup_workers(struct site *a, struct site *b, unsigned workers, unsigned wan_queues)
{
	root = vr_test_tmpdir("dp");
	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	site_conf_workers(a, 1, 2, workers, wan_queues);
	site_conf_workers(b, 2, 1, workers, wan_queues);
	site_start(a);
	site_start(b);
}

void
setup(struct site *a, struct site *b)
{
	setup_workers(a, b, 1, 1);
}

/* Prints a site's non-zero counters: what a failing run needs to be understood. */
void
print_stats(struct site *s)
{
	json_t *r = ctl(s, json_pack("{s:s}", "op", "stats")), *v;
	const char *k;

	printf("site %d:", s->id);
	json_object_foreach(json_object_get(r, "counters"), k, v)
	{
		if (json_integer_value(v))
			printf(" %s=%lld", k, (long long)json_integer_value(v));
	}
	printf("\n");
	fflush(stdout);
	json_decref(r);
}

void
teardown(struct site *a, struct site *b)
{
	int sa = vr_test_stop(a->pid), sb = vr_test_stop(b->pid);

	ck_assert_msg(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "site 1 exited with %d", sa);
	ck_assert_msg(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "site 2 exited with %d", sb);
}

int
sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

char ns_a[32], ns_b[32];

void
veth_up(void)
{
	/* Namespaces of earlier runs that died before cleaning up (their pid is gone). */
	sh("for n in $(ip netns list | awk '{print $1}' | grep -E '^vr[ab][0-9]+$'); do "
	   "[ -d /proc/${n#vr?} ] || ip netns del $n; done");
	snprintf(ns_a, sizeof(ns_a), "vra%d", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "vrb%d", (int)getpid());
	atexit(veth_down); /* a failed assertion ends the test process with exit() */
	ck_assert_int_eq(sh("ip netns add %s && ip netns add %s", ns_a, ns_b), 0);
	ck_assert_int_eq(sh("ip link add vA netns %s type veth peer name vB netns %s", ns_a, ns_b),
	                 0);
	ck_assert_int_eq(sh("ip -n %s link set vA up && ip -n %s link set vB up && "
	                    "ip netns exec %s ethtool -K vA tx off >/dev/null && "
	                    "ip netns exec %s ethtool -K vB tx off >/dev/null",
	                    ns_a, ns_b, ns_a, ns_b),
	                 0);
}

void
veth_down(void)
{
	if (ns_a[0])
		sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns_a, ns_b);
	ns_a[0] = 0;
}

/* Sites 1 and 2 with their WAN on net_af_packet, on either end of the veth pair. */
void
veth_sites(struct site *a, struct site *b, const char *tag)
{
	root = vr_test_tmpdir(tag);
	veth_up();
	veth_sites_start(a, b);
}

void
veth_sites_conf(struct site *a, struct site *b)
{
	site_conf(a, 1, 2);
	site_conf(b, 2, 1);
	snprintf(a->netns, sizeof(a->netns), "%s", ns_a);
	snprintf(a->iface, sizeof(a->iface), "vA");
	snprintf(b->netns, sizeof(b->netns), "%s", ns_b);
	snprintf(b->iface, sizeof(b->iface), "vB");
}

/* Appends text (INI sections) to the configuration of both sites. */
void
sites_conf_append(struct site *a, struct site *b, const char *text)
{
	for (struct site *s = a; s; s = s == a ? b : NULL) {
		FILE *f = fopen(s->ini, "a");

		ck_assert_ptr_nonnull(f);
		fputs(text, f);
		fclose(f);
	}
}

void
veth_sites_start(struct site *a, struct site *b)
{
	veth_sites_conf(a, b);
	site_start(a);
	site_start(b);
}

/*
 * A packet socket on iface inside namespace ns (the test process moves there; a socket keeps
 * the namespace it was made in). DPDK's af_packet bypasses the qdisc, so taps never see what
 * it sends: batches are captured where they arrive (vB) and injected where they leave (vA).
 */
int
tap_open(const char *ns, const char *iface)
{
	char path[64];
	int nsfd, fd;
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
	int buf = 32 << 20;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY);
	ck_assert_int_ge(nsfd, 0);
	ck_assert_int_eq(setns(nsfd, CLONE_NEWNET), 0);
	close(nsfd);
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	ck_assert_int_ge(fd, 0);
	sll.sll_ifindex = (int)if_nametoindex(iface);
	ck_assert_int_gt(sll.sll_ifindex, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A capture must keep up with a site at full speed (root may go past rmem_max). */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	return fd;
}

/* --- restarts: SIGKILL a site mid-stream, start it again --- */

void
site_kill_restart_with(struct site *s, struct site *origin, struct site *rcv, unsigned n,
                       streams_fn *config)
{
	int st;

	kill(s->pid, SIGKILL);
	ck_assert_int_eq(waitpid(s->pid, &st, 0), s->pid);
	unlink(s->lan); /* a memif server does not take over the socket file of a dead one */
	site_start(s);
	config(s, origin, rcv, 1, n);
}

void
site_kill_restart(struct site *s, struct site *origin, struct site *rcv, unsigned n)
{
	site_kill_restart_with(s, origin, rcv, n, streams_config);
}

enum { ETH_IP_UDP = 14 + 20 + 8 };

/* Records (stream, key id, sequence) of every WAN batch arriving until told to stop. */
static void *
nonce_watch_run(void *arg)
{
	struct nonce_watch *nw = arg;
	uint8_t b[2048];

	while (!nw->stop) {
		ssize_t r = recv(nw->fd, b, sizeof(b), 0);
		struct nonce_seen *e;

		if (r > ETH_IP_UDP + VR_WIRE_BATCH_HDR && b[12] == 0x08 && b[13] == 0 &&
		    b[14 + 9] == 17 && vr_get_be16(b + ETH_IP_UDP) == VR_WIRE_MAGIC_BATCH) {
			/* More than the caller guessed (retransmits): grow; out of memory, the
			 * frame counts as one the tap missed. */
			if (nw->n == nw->cap) {
				void *v = realloc(nw->v, 2 * nw->cap * sizeof(*nw->v));

				if (!v) {
					nw->drops++;
					continue;
				}
				nw->v = v;
				nw->cap *= 2;
			}
			e = &nw->v[nw->n];
			e->account = vr_get_be64(b + ETH_IP_UDP + 8);
			e->key_id = vr_get_be32(b + ETH_IP_UDP + 24);
			e->seq = vr_get_be64(b + ETH_IP_UDP + 32);
			nw->n++;
			if (nw->kept && e->account == nw->keep_account &&
			    b[ETH_IP_UDP + 3] == VR_WIRE_DATA && e->key_id < NONCE_WATCH_KEEP &&
			    (size_t)r <= sizeof(nw->kept->b)) {
				memcpy(nw->kept[e->key_id].b, b, (size_t)r);
				nw->kept[e->key_id].n = (size_t)r;
			}
		}
	}
	return NULL;
}

void
nonce_watch_start_keep(struct nonce_watch *nw, const char *ns, const char *iface, size_t cap,
                       uint64_t keep_account)
{
	memset(nw, 0, sizeof(*nw));
	nw->fd = tap_open(ns, iface);
	nw->cap = cap;
	nw->v = calloc(cap, sizeof(*nw->v));
	ck_assert_ptr_nonnull(nw->v);
	if (keep_account) {
		nw->keep_account = keep_account;
		nw->kept = calloc(NONCE_WATCH_KEEP, sizeof(*nw->kept));
		ck_assert_ptr_nonnull(nw->kept);
	}
	{
		/* Reading the statistics resets them: from here on. */
		struct tpacket_stats ps;
		socklen_t len = sizeof(ps);

		getsockopt(nw->fd, SOL_PACKET, PACKET_STATISTICS, &ps, &len);
	}
	ck_assert_int_eq(pthread_create(&nw->th, NULL, nonce_watch_run, nw), 0);
}

void
nonce_watch_start(struct nonce_watch *nw, const char *ns, const char *iface, size_t cap)
{
	nonce_watch_start_keep(nw, ns, iface, cap, 0);
}

static int
cmp_nonce(const void *x, const void *y)
{
	const struct nonce_seen *a = x, *b = y;

	if (a->account != b->account)
		return a->account < b->account ? -1 : 1;
	if (a->key_id != b->key_id)
		return a->key_id < b->key_id ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

size_t
nonce_watch_stop(struct nonce_watch *nw)
{
	struct tpacket_stats ps = {0};
	socklen_t len = sizeof(ps);
	size_t repeats = 0;

	nw->stop = true;
	pthread_join(nw->th, NULL);
	if (!getsockopt(nw->fd, SOL_PACKET, PACKET_STATISTICS, &ps, &len))
		nw->drops += ps.tp_drops;
	close(nw->fd);
	qsort(nw->v, nw->n, sizeof(*nw->v), cmp_nonce);
	for (size_t i = 1; i < nw->n; i++)
		repeats += !cmp_nonce(&nw->v[i - 1], &nw->v[i]);
	return repeats;
}

void
nonce_watch_free(struct nonce_watch *nw)
{
	free(nw->v);
	free(nw->kept);
	nw->v = NULL;
	nw->kept = NULL;
}

const char *
acked_frame_bad(struct vr_log *l, uint64_t account, uint64_t seq, uint64_t lsn)
{
	struct vr_stream_id id = {.account = account, .vault = 1, .primary = 1};
	struct vr_log_iter *it = vr_log_iter_open(l, &id, lsn);
	const char *bad = NULL;
	struct vr_rec rec;
	uint64_t acc = 0, s = 0;

	if (!it)
		return "its stream cannot be read";
	if (vr_log_iter_next(it, &rec) != 1 || rec.lsn != lsn || rec.payload_size != 64) {
		bad = "missing";
	} else {
		memcpy(&acc, rec.payload, 8);
		memcpy(&s, rec.payload + 8, 8);
		if (acc != account || s != seq)
			bad = "another frame at its LSN";
	}
	vr_log_iter_close(it);
	return bad;
}

/* --- payload keys through hsm_agents (K1, K2, D4, D5) --- */

/* An hsm_agent with a SoftHSMv2 of its own and a site key pair for shard 0. */
void
agent_start(struct agent *ag)
{
	ag->dir = vr_test_softhsm(); /* SOFTHSM2_CONF for this child */
	snprintf(ag->sock, sizeof(ag->sock), "%s/agent.sock", ag->dir);
	snprintf(ag->state, sizeof(ag->state), "%s/state", ag->dir);
	{
		const char *argv[] = {VR_AGENT_BIN, "--socket",        ag->sock, "--state",
		                      ag->state,    "--dataplane-uid", "0",      NULL};

		ag->pid = vr_test_spawn(argv, ag->sock);
	}
	ck_assert_msg(ag->pid > 0, "hsm_agent did not come up");
}

json_t *
agent_call(struct agent *ag, int want, json_t *req)
{
	return call_want(ag->sock, "agent", want, req);
}

/* Each site's key pair, and each one's public key known to the other as "site<id>". */
void
agents_pair(struct agent *a, struct agent *b)
{
	json_t *ka = agent_call(a, 0, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "0"));
	json_t *kb = agent_call(b, 0, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "0"));

	json_decref(agent_call(a, 0,
	                       json_pack("{s:s, s:s, s:O}", "op", "peer.import", "peer", "site2",
	                                 "kek", json_object_get(kb, "kek"))));
	json_decref(agent_call(b, 0,
	                       json_pack("{s:s, s:s, s:O}", "op", "peer.import", "peer", "site1",
	                                 "kek", json_object_get(ka, "kek"))));
	json_decref(ka);
	json_decref(kb);
}

void
site_use_hsm(struct site *s, const struct agent *ag, unsigned rekey_batches)
{
	FILE *f = fopen(s->ini, "a");

	snprintf(s->hsm, sizeof(s->hsm), "%s", ag->sock);
	ck_assert_ptr_nonnull(f);
	/* [site] is the first section: a second [site] adds to it. */
	fprintf(f, "[site]\nhsm = %s\n[keys]\nrekey_batches = %u\ngrace_ms = 200\n", ag->sock,
	        rekey_batches);
	fclose(f);
}

void
site_conf_hsm(struct site *s, int id, int peer, const struct agent *ag, unsigned rekey_batches)
{
	site_conf(s, id, peer);
	site_use_hsm(s, ag, rekey_batches);
}

void
agent_stop(struct agent *ag)
{
	ck_assert_int_eq(WEXITSTATUS(vr_test_stop(ag->pid)), 0);
	vr_test_rmdir(ag->dir);
	ag->dir = NULL;
}

/* The key records an origin's stream.add returned, which control carries to the member (K1). */
static json_t *carried[64];

void
streams_config_hsm(struct site *s, struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	char site[8];

	snprintf(site, sizeof(site), "%d", rcv->id);
	for (unsigned a = base; a < base + n; a++) {
		json_t *r, *rec;

		if (s == origin) {
			r = ctl(s, json_pack("{s:s, s:i, s:i, s:[i]}", "op", "stream.add",
			                     "account", a, "vault", 1, "members", rcv->id));
			rec = json_object_get(json_object_get(r, "keys"), site);
			ck_assert_msg(rec,
			              "stream.add of an origin returns the member's key record");
			json_decref(carried[a % 64]);
			carried[a % 64] = json_incref(rec);
		} else {
			rec = carried[a % 64];
			ck_assert_ptr_nonnull(rec);
			r = ctl(s, json_pack("{s:s, s:i, s:i, s:i, s:O, s:O}", "op", "stream.add",
			                     "account", a, "vault", 1, "primary", origin->id,
			                     "key_id", json_object_get(rec, "key_id"), "blob",
			                     json_object_get(rec, "blob")));
		}
		ck_assert_int_gt(json_integer_value(json_object_get(r, "key_id")), 0);
		json_decref(r);
	}
}

int
key_id(struct site *s, unsigned account, int primary)
{
	return (int)show(s, account, primary, "key_id");
}

void
carried_free(void)
{
	for (unsigned i = 0; i < 64; i++) {
		json_decref(carried[i]);
		carried[i] = NULL;
	}
}
