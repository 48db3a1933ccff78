// SPDX-License-Identifier: BSD-3-Clause
/*
 * bench-hsm: operations per second of the HSM agent against direct PKCS#11 calls on the same
 * kind of SoftHSMv2 token, measured in the same run, and the time to replicate a vault of N keys
 * from one agent's token to another's (export under the masking key at A, import at B).
 *
 *   this process ──PKCS#11──► SoftHSMv2 (tmp/direct)          "direct"
 *   this process ──unix socket──► agent A ──► SoftHSMv2 (tmp/a)  "agent"
 *                ──unix socket──► agent B ──► SoftHSMv2 (tmp/b)  (replication target)
 *
 * Each figure is the median of --reps runs of --ops operations. The agent does per request what
 * its API promises (for example, looking the key up by label); the direct side does the bare
 * PKCS#11 call with handles at hand, so the ratio is the full cost of going through the agent.
 * The agent is measured twice: one request at a time (each pays a full unix-socket round trip,
 * printed at the end beside the bare floor between two processes), and with DEPTH requests in
 * flight on its one connection (vr_hsm_submit/vr_hsm_result), as a client with many streams to
 * key keeps it busy; the agent still answers them one by one, in order.
 * Note "AES key wrap": the agent keeps every vault key wrapped under the masking key already
 * (keystore.c), so its export returns the stored blob without an HSM operation.
 * This is a benchmark, not a test: it prints figures and never fails on them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p11.h"
#include "vr_hsm.h"
#include "vr_test.h"
#include "bench.h"

enum { MAX_REPS = 9, BATCH = 500, DEPTH = 4 };

static const char SO[] = "bench-so-pin-0000", USER[] = "bench-user-pin-0000";

static void
die(const char *what, int rc)
{
	fprintf(stderr, "bench-hsm: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* --- the agent side --- */

struct agent {
	int pid;
	char *dir;
	char sock[300], state[300];
	struct vr_hsm *h;
};

static void
agent_start(struct agent *ag, const char *bin)
{
	char uid[16];
	const char *argv[] = {bin,       "--socket",        ag->sock, "--state",
	                      ag->state, "--dataplane-uid", uid,      NULL};

	ag->dir = vr_test_softhsm();
	snprintf(ag->sock, sizeof(ag->sock), "%s/agent.sock", ag->dir);
	snprintf(ag->state, sizeof(ag->state), "%s/state", ag->dir);
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
	ag->pid = vr_test_spawn(argv, ag->sock);
	if (ag->pid < 0 || !(ag->h = vr_hsm_connect(ag->sock)))
		die("starting the agent", EIO);
}

static void
agent_stop(struct agent *ag)
{
	vr_hsm_close(ag->h);
	vr_test_stop(ag->pid);
	vr_test_rmdir(ag->dir);
}

/* A call that must succeed; returns the response (caller frees). */
static json_t *
call(struct agent *ag, json_t *req)
{
	char err[512];
	json_t *res;
	int rc = vr_hsm_call(ag->h, req, &res, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "bench-hsm: %s: %s\n",
		        json_string_value(json_object_get(req, "op")), err);
		exit(1);
	}
	json_decref(req);
	return res;
}

static char *
take(json_t *res, const char *key)
{
	char *s = strdup(json_string_value(json_object_get(res, key)));

	json_decref(res);
	return s;
}

/* --- the operations, both ways --- */

struct direct {
	struct vr_p11 *p;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE peer, priv, payload, masking, vkey;
	uint8_t rsa_blob[512], aes_blob[64];
	size_t rsa_n, aes_n;
};

struct ctx {
	struct direct d;
	struct agent a;
	char *rsa_blob, *aes_blob, *data_1k;
	unsigned counter;
};

enum op { RSA_WRAP, RSA_WRAP8, RSA_UNWRAP, AES_WRAP, AES_UNWRAP, KEYGEN, GCM_1K, N_OPS };

static const char *const op_names[N_OPS] = {
    "RSA-OAEP wrap (3072)", "  same, 8 members/req", "RSA-OAEP unwrap",       "AES key wrap",
    "AES key unwrap",       "AES-256 keygen",        "AES-GCM encrypt 1 KiB",
};

/* Wraps an operation does (RSA_WRAP8 is reported per wrap). */
static int
per_op(enum op op)
{
	return op == RSA_WRAP8 ? 8 : 1;
}

static void
direct_op(struct ctx *c, enum op op)
{
	struct direct *d = &c->d;
	uint8_t out[1200], key[64], iv[12], in[1024] = {0};
	size_t n = sizeof(out), kn = sizeof(key);
	char label[64];
	CK_OBJECT_HANDLE k;
	int rc = 0;

	snprintf(label, sizeof(label), "d/%u", c->counter++);
	switch (op) {
	case RSA_WRAP:
		rc = vr_p11_wrap(d->p, d->s, VR_P11_WRAP_RSA, d->peer, d->payload, out, &n);
		break;
	case RSA_WRAP8:
		for (int i = 0; i < 8 && !rc; i++, n = sizeof(out))
			rc = vr_p11_wrap(d->p, d->s, VR_P11_WRAP_RSA, d->peer, d->payload, out, &n);
		break;
	case RSA_UNWRAP: /* as payload.unwrap hands a key to the dataplane */
		rc = vr_p11_unwrap(d->p, d->s, VR_P11_WRAP_RSA, d->priv, d->rsa_blob, d->rsa_n,
		                   label, VR_P11_CRYPT | VR_P11_SESSION | VR_P11_READABLE, &k);
		if (!rc)
			rc = vr_p11_value(d->p, d->s, k, key, &kn);
		if (!rc)
			rc = vr_p11_destroy(d->p, d->s, k);
		break;
	case AES_WRAP:
		rc = vr_p11_wrap(d->p, d->s, VR_P11_WRAP_AES, d->masking, d->vkey, out, &n);
		break;
	case AES_UNWRAP: /* as key.import: into a session object (the agent also stores the blob) */
		rc = vr_p11_unwrap(d->p, d->s, VR_P11_WRAP_AES, d->masking, d->aes_blob, d->aes_n,
		                   label, VR_P11_EXTRACTABLE | VR_P11_CRYPT | VR_P11_SESSION, &k);
		break;
	case KEYGEN: /* as key.create: a session object (the agent also wraps and stores it) */
		rc = vr_p11_aes_generate(d->p, d->s, label,
		                         VR_P11_EXTRACTABLE | VR_P11_CRYPT | VR_P11_SESSION, &k);
		break;
	case GCM_1K:
		rc = vr_p11_random(d->p, d->s, iv, sizeof(iv));
		if (!rc)
			rc = vr_p11_gcm(d->p, d->s, d->vkey, true, iv, NULL, 0, in, sizeof(in), out,
			                &n);
		break;
	case N_OPS:
		abort();
	}
	if (rc)
		die(op_names[op], rc);
}

/* The request an operation sends to the agent (the caller sends and frees it). */
static json_t *
agent_req(struct ctx *c, enum op op)
{
	char name[32];

	snprintf(name, sizeof(name), "a%u", c->counter++);
	switch (op) {
	case RSA_WRAP:
		return json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "p", "peer",
		                 "self");
	case RSA_WRAP8:
		return json_pack("{s:s, s:s, s:[s, s, s, s, s, s, s, s]}", "op", "payload.wrap",
		                 "id", "p", "peers", "m0", "m1", "m2", "m3", "m4", "m5", "m6",
		                 "m7");
	case RSA_UNWRAP:
		return json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "p",
		                 "shard", "0", "version", 1, "blob", c->rsa_blob);
	case AES_WRAP:
		return json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v", "name",
		                 "k", "version", 1);
	case AES_UNWRAP:
		return json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "key.import", "vault", "r",
		                 "name", name, "version", 1, "blob", c->aes_blob);
	case KEYGEN:
		return json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v", "name", name);
	case GCM_1K:
		return json_pack("{s:s, s:s, s:s, s:s}", "op", "key.encrypt", "vault", "v", "name",
		                 "k", "data", c->data_1k);
	case N_OPS:
		break;
	}
	abort();
}

static void
direct_setup(struct ctx *c)
{
	struct direct *d = &c->d;
	char serial[17];
	CK_OBJECT_HANDLE pub;
	uint8_t *der = NULL;
	size_t n;
	int rc;

	d->p = vr_p11_open(NULL);
	if (!d->p)
		die("vr_p11_open", errno);
	rc = vr_p11_token_create(d->p, "direct", SO, USER, serial);
	if (!rc)
		rc = vr_p11_login(d->p, serial, CKU_USER, USER, &d->s);
	if (!rc)
		rc = vr_p11_rsa_generate(d->p, d->s, "kek", 3072, &pub, &d->priv);
	if (!rc)
		rc = vr_p11_rsa_public_der(d->p, d->s, pub, &der, &n);
	if (!rc)
		rc = vr_p11_relogin(d->p, d->s, CKU_SO, SO);
	if (!rc)
		rc = vr_p11_rsa_public_import(d->p, d->s, der, n, "peer", true, &d->peer);
	if (!rc)
		rc = vr_p11_aes_generate(d->p, d->s, "masking",
		                         VR_P11_WRAPPING | VR_P11_EXTRACTABLE | VR_P11_TRUSTED |
		                             VR_P11_PUBLIC,
		                         &d->masking);
	if (!rc)
		rc = vr_p11_relogin(d->p, d->s, CKU_USER, USER);
	/* A relogin invalidates the handles of private objects: look the key up again. */
	if (!rc)
		rc = vr_p11_find(d->p, d->s, CKO_PRIVATE_KEY, "kek", &d->priv);
	if (!rc)
		rc = vr_p11_aes_generate(d->p, d->s, "payload", VR_P11_EXTRACTABLE | VR_P11_CRYPT,
		                         &d->payload);
	if (!rc)
		rc = vr_p11_aes_generate(d->p, d->s, "vk", VR_P11_EXTRACTABLE | VR_P11_CRYPT,
		                         &d->vkey);
	d->rsa_n = sizeof(d->rsa_blob);
	d->aes_n = sizeof(d->aes_blob);
	if (!rc)
		rc = vr_p11_wrap(d->p, d->s, VR_P11_WRAP_RSA, d->peer, d->payload, d->rsa_blob,
		                 &d->rsa_n);
	if (!rc)
		rc = vr_p11_wrap(d->p, d->s, VR_P11_WRAP_AES, d->masking, d->vkey, d->aes_blob,
		                 &d->aes_n);
	if (rc)
		die("direct setup", rc);
	free(der);
}

static void
agent_setup(struct ctx *c)
{
	static uint8_t kb[1024];
	char *kek, *rkek, *mk;

	kek =
	    take(call(&c->a, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "0")), "kek");
	json_decref(call(
	    &c->a, json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", "self", "kek", kek)));
	/* Eight member sites (the same key under eight names) for the batched wrap. */
	for (int i = 0; i < 8; i++) {
		char peer[8];

		snprintf(peer, sizeof(peer), "m%d", i);
		json_decref(call(&c->a, json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer",
		                                  peer, "kek", kek)));
	}
	json_decref(call(&c->a, json_pack("{s:s, s:s}", "op", "payload.generate", "id", "p")));
	c->rsa_blob = take(call(&c->a, json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "p",
	                                         "peer", "self")),
	                   "blob");
	json_decref(call(&c->a, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v")));
	json_decref(call(
	    &c->a, json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v", "name", "k")));
	/* A replica partition "r" in the same agent receives imports (AES unwrap). */
	rkek = take(call(&c->a, json_pack("{s:s, s:s, s:b}", "op", "vault.create", "vault", "r",
	                                  "replica", 1)),
	            "kek");
	mk = take(call(&c->a, json_pack("{s:s, s:s, s:s}", "op", "masking.export", "vault", "v",
	                                "peer", rkek)),
	          "blob");
	json_decref(call(
	    &c->a, json_pack("{s:s, s:s, s:s}", "op", "masking.import", "vault", "r", "blob", mk)));
	c->aes_blob = take(call(&c->a, json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export",
	                                         "vault", "v", "name", "k", "version", 1)),
	                   "blob");
	c->data_1k = vr_hsm_b64(kb, sizeof(kb));
	free(kek);
	free(rkek);
	free(mk);
}

static double
rate(struct ctx *c, enum op op, int n)
{
	double t0 = bench_now();

	for (int i = 0; i < n; i++)
		direct_op(c, op);
	return n * per_op(op) / (bench_now() - t0);
}

/* The agent's rate with up to depth requests in flight on the one connection (1: one by one). */
static double
agent_rate(struct ctx *c, enum op op, int n, int depth)
{
	double t0 = bench_now();
	int sent = 0, done = 0;

	while (done < n) {
		char err[512];
		json_t *res;
		int rc = 0;

		while (!rc && sent < n && sent - done < depth) {
			json_t *req = agent_req(c, op);

			rc = vr_hsm_submit(c->a.h, req);
			json_decref(req);
			sent++;
		}
		if (!rc)
			rc = vr_hsm_result(c->a.h, &res, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "sending: %s", strerror(-rc));
		if (rc) {
			fprintf(stderr, "bench-hsm: %s: %s\n", op_names[op], err);
			exit(1);
		}
		json_decref(res);
		done++;
	}
	return n * per_op(op) / (bench_now() - t0);
}

/*
 * The floor under any agent in a process of its own: microseconds per round trip of 4 bytes
 * over a unix socket pair between this process and a forked child that echoes them (the
 * median of reps runs of n). The agent's round trip adds framing, JSON and its handler.
 */
static double
rtt_floor(int n, int reps)
{
	double v[MAX_REPS];
	int sv[2];
	pid_t pid;
	char b[4] = {0};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair", errno);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(sv[0]);
		while (read(sv[1], b, sizeof(b)) == (ssize_t)sizeof(b))
			if (write(sv[1], b, sizeof(b)) != (ssize_t)sizeof(b))
				break;
		_exit(0);
	}
	close(sv[1]);
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now();

		for (int i = 0; i < n; i++)
			if (write(sv[0], b, sizeof(b)) != (ssize_t)sizeof(b) ||
			    read(sv[0], b, sizeof(b)) != (ssize_t)sizeof(b))
				die("round trip", EIO);
		v[r] = (bench_now() - t0) / n * 1e6;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return bench_median(v, reps);
}

/* Microseconds per "ping" request to the agent, one at a time. */
static double
agent_ping(struct ctx *c, int n, int reps)
{
	double v[MAX_REPS];

	for (int r = 0; r < reps; r++) {
		double t0 = bench_now();

		for (int i = 0; i < n; i++)
			json_decref(call(&c->a, json_pack("{s:s}", "op", "ping")));
		v[r] = (bench_now() - t0) / n * 1e6;
	}
	return bench_median(v, reps);
}

/*
 * Replicates a vault of n keys from agent a to agent b; returns the total seconds and prints
 * the phases: the replica partition (its RSA-3072 KEK generation takes a random time, the
 * search for primes), the masking key transfer, the keys.
 */
static double
replicate(const char *bin, int n)
{
	struct agent a = {0}, b = {0};
	char *kek, *mk;
	double t0, t1, t_part, t_mask;

	agent_start(&a, bin);
	agent_start(&b, bin);
	json_decref(call(&a, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "big")));
	fprintf(stderr, "creating %d keys at A ...", n);
	for (int i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "key-%d", i);
		json_decref(call(&a, json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault",
		                               "big", "name", name)));
	}
	fprintf(stderr, " done\n");
	t0 = bench_now();
	kek = take(call(&b, json_pack("{s:s, s:s, s:b}", "op", "vault.create", "vault", "big",
	                              "replica", 1)),
	           "kek");
	t_part = bench_now();
	mk = take(call(&a, json_pack("{s:s, s:s, s:s}", "op", "masking.export", "vault", "big",
	                             "peer", kek)),
	          "blob");
	json_decref(call(
	    &b, json_pack("{s:s, s:s, s:s}", "op", "masking.import", "vault", "big", "blob", mk)));
	t_mask = bench_now();
	/* Batches of BATCH keys: one export request at A, one import (one synced write) at B. */
	for (int i = 0; i < n; i += BATCH) {
		json_t *want = json_array(), *got, *keys = json_array(), *blobs;

		for (int k = i; k < n && k < i + BATCH; k++) {
			char name[32];

			snprintf(name, sizeof(name), "key-%d", k);
			json_array_append_new(want,
			                      json_pack("{s:s, s:i}", "name", name, "version", 1));
		}
		got = call(&a, json_pack("{s:s, s:s, s:O}", "op", "key.export", "vault", "big",
		                         "keys", want));
		blobs = json_object_get(got, "blobs");
		for (size_t j = 0; j < json_array_size(want); j++)
			json_array_append_new(
			    keys, json_pack("{s:O, s:i, s:O}", "name",
			                    json_object_get(json_array_get(want, j), "name"),
			                    "version", 1, "blob", json_array_get(blobs, j)));
		json_decref(call(&b, json_pack("{s:s, s:s, s:o}", "op", "key.import", "vault",
		                               "big", "keys", keys)));
		json_decref(got);
		json_decref(want);
	}
	t1 = bench_now();
	printf("  replica partition %.2f s, masking key %.3f s, %d keys in batches of %d %.2f s\n",
	       t_part - t0, t_mask - t_part, n, BATCH, t1 - t_mask);
	free(kek);
	free(mk);
	agent_stop(&a);
	agent_stop(&b);
	return t1 - t0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"ops", required_argument, 0, 'n'},  {"reps", required_argument, 0, 'r'},
	    {"keys", required_argument, 0, 'k'}, {"agent", required_argument, 0, 'a'},
	    {"quick", no_argument, 0, 'q'},      {"only", required_argument, 0, 'o'},
	    {"help", no_argument, 0, 'h'},       {0, 0, 0, 0},
	};
	const char *bin = VR_AGENT_BIN;
	int ops = 200, reps = 3, keys = 10000, only = -1, c;
	struct ctx ctx = {0};
	char conf[400];

	while ((c = getopt_long(argc, argv, "n:r:k:a:qo:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			ops = atoi(optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'k':
			keys = atoi(optarg);
			break;
		case 'a':
			bin = optarg;
			break;
		case 'q':
			ops = 30;
			reps = 1;
			keys = 200;
			break;
		case 'o':
			only = atoi(optarg);
			break;
		case 'h':
			printf("usage: bench-hsm [--ops N] [--reps R] [--keys N] [--agent PATH] "
			       "[--quick] [--only ROW]\n"
			       "  --only ROW   run only that row of the table (0 = the first) and "
			       "skip the replication\n");
			return 0;
		default:
			return 2;
		}
	}
	if (ops < 1 || reps < 1 || reps > MAX_REPS || keys < 1 || only >= N_OPS) {
		fprintf(stderr, "bench-hsm: --ops and --keys >= 1, --reps 1..%d\n", MAX_REPS);
		return 2;
	}

	/* The agent gets its own SoftHSMv2; then this process loads one of its own. */
	agent_start(&ctx.a, bin);
	agent_setup(&ctx);
	{
		char *dir = vr_test_softhsm();

		snprintf(conf, sizeof(conf), "%s", dir);
		free(dir);
	}
	direct_setup(&ctx);

	printf("bench-hsm: SoftHSMv2, %d ops per run, median of %d runs; AGENT: one request at a "
	       "time, PIPELINED: %d in flight on the connection\n\n",
	       ops, reps, DEPTH);
	printf("%-24s %12s %12s %10s %12s %10s\n", "OPERATION", "DIRECT OP/S", "AGENT OP/S",
	       "OVERHEAD", "PIPELINED", "OVERHEAD");
	for (int op = 0; op < N_OPS; op++) {
		double d[MAX_REPS], g[MAX_REPS], p[MAX_REPS], md, mg, mp;

		if (only >= 0 && op != only)
			continue;
		for (int r = 0; r < reps; r++) {
			d[r] = rate(&ctx, (enum op)op, ops);
			g[r] = agent_rate(&ctx, (enum op)op, ops, 1);
			p[r] = agent_rate(&ctx, (enum op)op, ops, DEPTH);
		}
		md = bench_median(d, reps);
		mg = bench_median(g, reps);
		mp = bench_median(p, reps);
		printf("%-24s %12.0f %12.0f %9.1f%% %12.0f %9.1f%%\n", op_names[op], md, mg,
		       (md / mg - 1) * 100, mp, (md / mp - 1) * 100);
		fflush(stdout);
	}
	{
		int n = only >= 0 ? 2000 : 20 * ops;

		printf("\nround trip: agent ping %.1f us; bare unix socket between two processes "
		       "%.1f us (4 B, the floor)\n",
		       agent_ping(&ctx, n, reps), rtt_floor(n, reps));
	}
	agent_stop(&ctx.a);
	vr_p11_session_close(ctx.d.p, ctx.d.s);
	vr_p11_close(ctx.d.p);

	if (only < 0) {
		double s;

		printf("\nreplicate a vault of %d keys A -> B\n", keys);
		fflush(stdout);
		s = replicate(bin, keys);
		printf("  total %.2f s (%.0f keys/s; target 10 000 in <= 10 s)\n", s, keys / s);
	}
	free(ctx.rsa_blob);
	free(ctx.aes_blob);
	free(ctx.data_1k);
	(void)conf;
	return 0;
}
