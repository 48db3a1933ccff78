/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two real vaultrep-dataplane processes and their producers, for the integration tests: the
 * helpers every two-site test needs (sites.c). A test process runs one test at a time, so the
 * state here (root, the namespaces) is per process.
 *
 *   WAN over memif:      site 1 (memif server) ═══ wan.sock ═══ site 2 (memif client)
 *   WAN over af_packet:  site 1 in ns_a [vA] ──veth── [vB] site 2 in ns_b
 *   LAN (both):          vaultrep-gen ═══ memif lan.sock ═══ site N
 */
#ifndef VR_TEST_SITES_H
#define VR_TEST_SITES_H

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "vr_hsm.h"
#include "vr_common.h"
#include "vr_log.h"
#include "vr_wire.h"
#include "vr_test.h"

#ifndef VR_DP_BIN
#error "VR_DP_BIN must name vaultrep-dataplane"
#endif
#ifndef VR_GEN_BIN
#error "VR_GEN_BIN must name vaultrep-gen"
#endif

struct site {
	int id;
	char dir[256], ctl[300], wal[300], ini[300], lan[300], prefix[32];
	char netns[32], iface[16]; /* af_packet WAN in a namespace of the test's, or memif */
	char lan_iface[16];        /* af_packet LAN (in netns), or memif */
	int pid;
	char hsm[300];    /* the site's hsm_agent socket: payload keys through it (D4) */
	unsigned workers; /* worker lcores ([lcores] workers, D9) */
	/* A library preloaded into this site's dataplane only ("" for none): a global LD_PRELOAD
	 * of a sanitizer build's library would break `ip netns exec` and the generator. */
	char preload[300];
};

extern char *root;           /* the test's temporary directory */
extern char wan_sock[300];   /* the memif WAN socket */
extern char call_err[256];   /* the error text of the last call_want() */
extern unsigned gen_seconds; /* a generator's time limit (default 150 s) */
/* Generators wait this long for a site that went away and go on (--reconnect) instead of
 * ending with 75; 0 (the default): --lenient, and a new session per restart. */
extern unsigned gen_reconnect;
extern char ns_a[32], ns_b[32]; /* the af_packet tests' namespaces (veth_up) */

/* Prints what a test is doing, with the seconds since its first stage. */
void stage(const char *what);
/* now_s() and env_u() are in vr_test.h. */

/* A site's configuration: workers worker lcores (0: 1), wan_queues WAN queue pairs (0: 1). */
void site_conf_workers(struct site *s, int id, int peer, unsigned workers, unsigned wan_queues);
void site_conf(struct site *s, int id, int peer);
/* Starts site s: WAN over memif, or over af_packet on s->iface in s->netns when that is set. */
void site_start(struct site *s);
/* The same, for a site that may end before it serves: -1 then (vr_test_spawn_status says how). */
int site_start_try(struct site *s);

/* One request (consumed) to a dataplane's or agent's socket; must end with errno want. */
json_t *call_want(const char *sock, const char *who, int want, json_t *req);
json_t *ctl_want(struct site *s, int want, json_t *req);
json_t *ctl(struct site *s, json_t *req);

/* Streams account base..base+n-1, vault 1, primary origin: configured at s (again after a
 * restart, as control would), or at both ends (streams_add). */
void streams_config(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                    unsigned n);
/* The same, the origin's streams sync: producers acked once sync members hold a record (X1). */
void streams_config_sync(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                         unsigned n, unsigned sync);
void streams_add(struct site *origin, struct site *rcv, unsigned base, unsigned n);
/* streams_config (async) at a site that may die under it: false if a request failed. */
bool streams_config_try(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                        unsigned n);

/* A generator on site s's LAN; returns its pid (see sites.c for acks and rate). */
int gen_start_opts(struct site *s, unsigned producer, unsigned base, unsigned streams,
                   unsigned records, const char *report, const char *acks, unsigned rate);
int gen_start_as(struct site *s, unsigned producer, unsigned base, unsigned streams,
                 unsigned records, const char *report);
int gen_start(struct site *s, unsigned base, unsigned streams, unsigned records,
              const char *report);
/* Its exit status (128 + signal when killed). */
int gen_wait(int pid);

/* Figures of a site: one stats counter; one field of stream.show; the durable LSN. */
long long counter(struct site *s, const char *name);
long long memory_figure(struct site *s, const char *name);
long long show(struct site *s, unsigned account, int primary, const char *field);
uint64_t durable(struct site *s, unsigned account, int primary);
uint64_t member_acked(struct site *s, unsigned account);
/* Bounded waits: the receiver holds all the origin has; the origin knows it. */
void wait_caught_up(struct site *origin, struct site *rcv, unsigned base, unsigned n);
void wait_acked(struct site *origin, unsigned base, unsigned n);

/* NULL if the record (account a) carries the generator's payload for its frame, else why not. */
const char *payload_bad(unsigned a, const struct vr_rec *r);
/*
 * NULL if the log holds frame seq of stream account (vault 1, primary 1) at lsn, the LSN its ack
 * named; else what is wrong ("missing", "another frame at its LSN").
 */
const char *acked_frame_bad(struct vr_log *l, uint64_t account, uint64_t seq, uint64_t lsn);
/* One stream's line of a generator's --report: false at its end. */
struct gen_report {
	unsigned long long account, acked, first_lsn, last_lsn;
	unsigned vault;
};
bool gen_report_next(FILE *f, struct gen_report *r);
/* Both logs hold the same records, byte for byte, with the generator's payloads (sites.c). */
uint64_t compare_logs(struct site *origin, struct site *rcv, unsigned base, unsigned n,
                      const char *report, unsigned per_stream);

/* Two sites over memif (root made here). */
void setup_workers(struct site *a, struct site *b, unsigned workers, unsigned wan_queues);
void setup(struct site *a, struct site *b);
void print_stats(struct site *s);
/* Stops both sites; each must exit 0. */
void teardown(struct site *a, struct site *b);

/* A shell command; its status. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Namespaces ns_a and ns_b with the veth pair vA-vB (removed at exit too), and sites in them. */
void veth_up(void);
void veth_down(void);
void veth_sites(struct site *a, struct site *b, const char *tag);
/* The sites part of veth_sites(): configured for vA (ns_a) and vB (ns_b), and started. */
void veth_sites_start(struct site *a, struct site *b);
/* Its configuration part alone, for a test that starts the sites its own way. */
void veth_sites_conf(struct site *a, struct site *b);
void sites_conf_append(struct site *a, struct site *b, const char *text);
/* A packet socket on iface inside namespace ns. */
int tap_open(const char *ns, const char *iface);

typedef void streams_fn(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                        unsigned n);
/* SIGKILL site s, start it again, and configure its n streams again as control would. */
void site_kill_restart_with(struct site *s, struct site *origin, struct site *rcv, unsigned n,
                            streams_fn *config);
void site_kill_restart(struct site *s, struct site *origin, struct site *rcv, unsigned n);

/*
 * Every (key, nonce) a receiver is sent: the (stream, key id, sequence) of each WAN batch
 * arriving at iface in namespace ns, gathered by a thread until nonce_watch_stop(), which
 * returns how many of them were seen more than once (0 for a sender that never reuses one) and
 * leaves v sorted by (stream, key id, sequence) until nonce_watch_free().
 */
struct nonce_seen {
	uint64_t account;
	uint32_t key_id;
	uint64_t seq;
};

/* A captured WAN frame: Ethernet to the tag. */
struct wan_frame {
	size_t n;
	uint8_t b[1600];
};

struct nonce_watch {
	int fd;
	pthread_t th;
	volatile bool stop;
	struct nonce_seen *v;
	size_t n, cap;
	unsigned drops; /* frames not seen: dropped by the tap's socket (PACKET_STATISTICS), or no
	                   memory */
	/* Set before the start to keep, of stream keep_account, the last data batch seen under
	 * each key id below NONCE_WATCH_KEEP (kept[id].n 0: none). */
	uint64_t keep_account;
	struct wan_frame *kept;
};

enum { NONCE_WATCH_KEEP = 4096 };

void nonce_watch_start(struct nonce_watch *nw, const char *ns, const char *iface, size_t cap);
/* Like nonce_watch_start, and keeps the batches of stream keep_account (vault 1) by key id. */
void nonce_watch_start_keep(struct nonce_watch *nw, const char *ns, const char *iface, size_t cap,
                            uint64_t keep_account);
size_t nonce_watch_stop(struct nonce_watch *nw);
void nonce_watch_free(struct nonce_watch *nw);

/* --- payload keys through hsm_agents (K1, K2, D4, D5) --- */

struct agent {
	int pid;
	char *dir;
	char sock[300], state[300];
};

/* An hsm_agent with a SoftHSMv2 of its own (SOFTHSM2_CONF in its directory). */
void agent_start(struct agent *ag);
/* Stops it (it must exit 0) and removes its directory. */
void agent_stop(struct agent *ag);
json_t *agent_call(struct agent *ag, int want, json_t *req);
/* Each site's key pair for shard 0, and each one's public key known to the other. */
void agents_pair(struct agent *a, struct agent *b);
/* Site s takes its payload keys through agent ag, a new one every rekey_batches batches
 * (grace 200 ms); site_conf_hsm configures the site first. */
void site_use_hsm(struct site *s, const struct agent *ag, unsigned rekey_batches);
void site_conf_hsm(struct site *s, int id, int peer, const struct agent *ag,
                   unsigned rekey_batches);
/* streams_config with keys from the agents: the origin's stream.add makes each stream's key
 * and returns its record for the receiver, which the receiver's stream.add installs. */
void streams_config_hsm(struct site *s, struct site *origin, struct site *rcv, unsigned base,
                        unsigned n);
/* The key id a site holds for a stream; the key records kept by streams_config_hsm, freed. */
int key_id(struct site *s, unsigned account, int primary);
void carried_free(void);

#endif /* VR_TEST_SITES_H */
