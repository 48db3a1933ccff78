/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vaultrep-control's insides: its configuration, the catalog (its own RocksDB), the audit log,
 * the management listeners and the operations. One thread: everything runs on the libevent
 * loop of main.c, so no field here needs a lock. Calls to the HSM agent and the dataplane are
 * short blocking requests on unix sockets (both answer in milliseconds); the loop serves one
 * operation at a time, which also orders every mutation of the catalog.
 */
#ifndef VR_CONTROL_H
#define VR_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "vr_api.h"

enum {
	CTL_MAX_UIDS = 8,
	CTL_MAX_REPLICAS = 4,    /* members a vault's WAL stream is made with room for */
	CTL_SYNC_WAIT_MS = 5000, /* a sync vault's write waits this long for its replicas */
};

struct ctl_conf {
	uint16_t site;            /* [site] id, 1..65535 */
	char name[64];            /* [site] name */
	char state[256];          /* [site] state: the catalog and the audit log live here */
	char hsm[108];            /* [site] hsm: the agent's socket */
	char dp[108];             /* [site] dataplane: its control socket ("" = none) */
	unsigned shard;           /* [site] kek_shard: the site key pair's shard (0) */
	char listen[128];         /* [mgmt] listen: host:port of the management port ("" = none) */
	char socket[108];         /* [mgmt] socket: the console socket */
	char cert[256];           /* [mgmt] cert: the site's TLS certificate (PEM) */
	char key[256];            /* [mgmt] key: its private key (PEM) */
	char op_ca[256];          /* [mgmt] operator_ca: issues operator certificates */
	char peer_listen[128];    /* [peers] listen: host:port of the peer port ("" = none) */
	uid_t uids[CTL_MAX_UIDS]; /* [mgmt] console_uids (default: root and control's own) */
	unsigned n_uids;
	unsigned max_vaults;  /* [limits] vaults */
	unsigned max_tokens;  /* [limits] tokens: HSM partitions this site may hold */
	unsigned min_disk_mb; /* [limits] disk_mb: free space the state directory keeps */
};

/*
 * Reads an ini file at path, or the ini text (path then only names it in messages); on error
 * returns -errno with "file:line: what" in err.
 */
int ctl_conf_load(struct ctl_conf *c, const char *path, const char *text, char *err, size_t err_n);

/* Who is calling, as the audit log names them. */
struct ctl_who {
	char name[128]; /* certificate CN, or console:<uid> */
	enum vr_role role;
};

struct ctl_catalog;
struct ctl_audit;

/* Named counters of the control process (stats "control"). */
#define CTL_COUNTERS(X)                                                                            \
	X(conn_tls, "management connections that completed the TLS handshake")                     \
	X(conn_console, "console connections admitted")                                            \
	X(refused_tls, "TLS handshakes failed: no, expired or foreign client certificate")         \
	X(refused_role, "certificates without a known role (OU)")                                  \
	X(refused_uid, "console connections from a uid not in console_uids")                       \
	X(conn_peer, "peer links admitted (a pinned site certificate)")                            \
	X(refused_peer, "peer links refused: a certificate no peer is pinned to")                  \
	X(dp_restarts, "dataplane restarts seen (its streams given to it again)")                  \
	X(records_applied, "key records of a primary applied at a replica")                        \
	X(apply_failed, "key records that failed to apply (tried again)")                          \
	X(requests, "requests served")                                                             \
	X(request_errors, "requests answered with an error")                                       \
	X(denied, "requests refused for the caller's role")                                        \
	X(bad_frames, "frames too long or not a JSON object (connection closed)")

struct ctl_stats {
#define X(n, d) uint64_t n;
	CTL_COUNTERS(X)
#undef X
};

struct ctl {
	struct ctl_conf conf;
	struct ctl_catalog *cat;
	struct ctl_audit *audit;
	struct ctl_stats stats;
	char tls_sha256[65]; /* of conf.cert */
	char dp_boot[24];    /* the dataplane's boot id (ping), "" before it answered */
	unsigned ticks;
	struct event_base *base;
};

/* catalog.c: the control's own RocksDB. Values are JSON objects. 0 or -errno. */
int ctl_catalog_open(const char *dir, struct ctl_catalog **out);
void ctl_catalog_close(struct ctl_catalog *cat);
int ctl_catalog_put(struct ctl_catalog *cat, const char *key, json_t *val);
/* -ENOENT when absent; *val is a new reference. */
int ctl_catalog_get(struct ctl_catalog *cat, const char *key, json_t **val);
int ctl_catalog_del(struct ctl_catalog *cat, const char *key);
/* Every value whose key starts with prefix, in key order, appended to arr. */
int ctl_catalog_scan(struct ctl_catalog *cat, const char *prefix, json_t *arr);

/*
 * audit.c: the hash-chained audit log. Opening verifies the chain against the head the catalog
 * keeps; a broken chain is reported (ctl_audit_state), not repaired.
 */
int ctl_audit_open(const char *dir, struct ctl_catalog *cat, struct ctl_audit **out);
void ctl_audit_close(struct ctl_audit *a);
/* Appends one entry, synced. args is borrowed (no secrets in it). 0 or -errno. */
int ctl_audit_append(struct ctl_audit *a, const struct ctl_who *who, const char *op, json_t *args,
                     int status, const char *error);
/* Entries from seq `from` (1-based), at most max; chain state and head. */
json_t *ctl_audit_show(struct ctl_audit *a, uint64_t from, unsigned max);

/* mgmt.c: the management port and the console socket on c->base. 0 or -errno. */
int ctl_mgmt_start(struct ctl *c, char *err, size_t err_n);
void ctl_mgmt_stop(struct ctl *c);

/* The pinned peer whose certificate has this SHA-256 (hex): its site id, or 0. */
unsigned ctl_peer_by_pin(struct ctl *c, const char *sha256);

/*
 * ops.c: helpers the operations share. The HSM agent's and the dataplane's answer, or NULL
 * with *errp the response to give (req consumed).
 */
json_t *ctl_hsm(struct ctl *c, json_t *req, json_t **errp);
json_t *ctl_dp(struct ctl *c, json_t *req, json_t **errp);
/* Arguments: NULL / -EINVAL with *err the response. */
const char *ctl_arg_name(json_t *req, const char *k, json_t **err);
int ctl_arg_uint(json_t *req, const char *k, uint64_t max, uint64_t *out, json_t **err);
/* Catalog paths, the HSM's name of a vault's partition, the time now (UTC, ISO 8601). */
void ctl_vault_path(char *buf, size_t n, uint64_t account, const char *name);
void ctl_key_path(char *buf, size_t n, uint64_t account, const char *vault, const char *key);
void ctl_peer_path(char *buf, size_t n, unsigned site);
void ctl_hsm_vault(char out[48], json_t *v);
void ctl_now(char *buf, size_t n);
json_t *ctl_site_entry(struct ctl *c);
/* Every vault in the catalog (a new array). */
json_t *ctl_vaults(struct ctl *c);
/* The vault of a request's account and name_key; NULL with *err. */
json_t *ctl_vault_arg(struct ctl *c, json_t *req, const char *name_key, uint64_t *account,
                      const char **name, json_t **err);
/* Room for vault (account, name) here: NULL (*n: the vaults held), or EEXIST / ENOSPC. */
json_t *ctl_vault_room(struct ctl *c, uint64_t account, const char *name, size_t *n);
/* EROFS naming the primary when v is a replica; NULL at the primary. */
json_t *ctl_refuse_replica(struct ctl *c, json_t *v);

/*
 * link.c: peer links and replication. ctl_link_greet: link.hello to a peer just added (its
 * status in the catalog says how it went). ctl_wal_key: a key change of a primary vault as
 * an hsm record of its WAL (no-op without a dataplane); NULL or the error response; for a sync
 * vault, *sync is what to add to the answer: the sites that hold the record, or a warning.
 */
void ctl_link_greet(struct ctl *c, unsigned site);
json_t *ctl_wal_key(struct ctl *c, json_t *v, const char *op, const char *key, json_int_t version,
                    json_t **sync);
/*
 * Every second: a replica that joined a vault's WAL but did not take its payload keys (status
 * "keys pending") is carried them again; a replica keeps its WAL's payload keys (ctl_pkeys).
 */
void ctl_keys_tick(struct ctl *c);
/*
 * The payload keys of replica v's WAL kept in the catalog: [{key_id, blob, kept}], blobs
 * wrapped under this site's KEK, oldest first. Kept as link.keys carries them and, every
 * second, as the dataplane holds them (stream.keys); given back to a restarted dataplane.
 */
json_t *ctl_pkeys(struct ctl *c, json_t *v);
void ctl_pkeys_drop(struct ctl *c, json_t *v);
/*
 * Every replica of primary vault v deleted at its site (link.unprovision), one at a time; NULL,
 * or the error of the first that failed (v then names the replicas still there).
 */
json_t *ctl_replicas_remove(struct ctl *c, json_t *v);
/* Vault v gone from this site: its HSM partition, its keys' and payload keys' entries, itself. */
json_t *ctl_vault_wipe(struct ctl *c, json_t *v);
/* A dataplane request `op` naming vault v's WAL stream (account, vault id, primary). */
json_t *ctl_stream_op(json_t *v, const char *op);
/* One of v's WAL payload keys ({key_id, blob}) given to the dataplane (key.install). */
json_t *ctl_key_install(struct ctl *c, json_t *v, json_t *k, json_t **errp);
/* One call to a peer's control (req consumed); NULL with *errp. */
json_t *ctl_peer_call(struct ctl *c, unsigned site, json_t *req, json_t **errp);
/* The replica of (account, name) whose primary is the calling peer; NULL with *err. */
json_t *ctl_replica_arg(struct ctl *c, const struct ctl_who *who, json_t *req, json_t **err);
json_t *op_vault_replicate(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_hello(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_capacity(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_provision(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_masking(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_keys(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_status(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_unprovision(struct ctl *c, const struct ctl_who *who, json_t *req);
/* verify.c: vault verify (the primary) and link.verify (a replica's digest). */
json_t *op_vault_verify(struct ctl *c, const struct ctl_who *who, json_t *req);
json_t *op_link_verify(struct ctl *c, const struct ctl_who *who, json_t *req);
/*
 * One record of a primary's WAL (stream.read's {lsn, type, op, payload}) applied at replica v:
 * 0 applied (or already, or nothing to apply), -errno to try again.
 */
int ctl_apply_record(struct ctl *c, json_t *v, json_t *rec);
/* vault.show's live figures of each replica (asked over the links). */
void ctl_replicas_live(struct ctl *c, json_t *v);

/* ops.c: one request -> one response (never NULL), audited as the table says. */
json_t *ctl_dispatch(struct ctl *c, const struct ctl_who *who, json_t *req);
/* Work on start: undo creates cut short, then ctl_dp_restore. */
void ctl_ops_start(struct ctl *c);
/* Every vault's stream given to the dataplane (after its start or restart). */
void ctl_dp_restore(struct ctl *c);
/* Every second on the loop: a dataplane that restarted gets its streams again. */
void ctl_dp_watch(struct ctl *c);
/* Every 100 ms on the loop: replicas apply their primaries' key records. */
void ctl_ops_tick(struct ctl *c);

#endif /* VR_CONTROL_H */
