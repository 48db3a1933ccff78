// SPDX-License-Identifier: BSD-3-Clause
/*
 * Peer links and vault replication (V3, V4, V6, K1). A peer link is one vr_api call over
 * mutual TLS to the other site's peer port: this site's certificate as the client's, the
 * other's checked against its pin. Calls are short and blocking on the loop, and a link.*
 * handler never calls back the site that called it, so two sites cannot wait on each other.
 *
 * The masking key travels wrapped under the public half of the key pair that the target's HSM
 * made inside the new partition (vault.create, replica): only that partition unwraps it.
 *
 * The capacity handshake, at the source (vault.replicate), each step kept in the vault's
 * replicas[] entry for that site (status), so that vault.show shows it at both sites:
 *
 *   asking --link.capacity yes--> provisioning --link.provision ready--> ready
 *      |  no: refused, entry removed      |  failed: entry removed           |
 *      v                                  v                                  v
 *   (none)                             (none)      masking --link.masking--> joining
 *                                                     | failed: link.unprovision, removed
 *   joining --stream.members, link.keys--> copying --replica applied the WAL--> in sync
 *
 * The vault is marked "replicated" once the target reported ready (V4), before the masking
 * key goes. The vault's keys need no copy of their own: every key change since the vault was
 * made is an hsm record of its WAL, and a new member of the WAL's stream is sent the stream
 * from LSN 1 by the dataplane. The replica applies them in LSN order (ctl_ops_tick), under
 * the masking key it imported, inside its HSM.
 *
 * At the target, the replica's entry: provisioned -> keyed (masking key in) -> replicating
 * (payload keys in, records arriving) -> in sync (applied all it holds).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "vr_hsm.h"
#include "vr_msg.h"

#define fail vr_hsm_error
#define ok   vr_hsm_ok

/* Records read at once (the dataplane's most), and reads per vault per tick: a WAL that also
 * carries producers' data records is skipped through fast. */
enum { APPLY_MAX = 4096, APPLY_READS = 8 };

/* Tries of a join that a payload-key rotation defers, 100 ms apart. */
enum { JOIN_TRIES = 30 };

/* --- the link --- */

unsigned
ctl_peer_by_pin(struct ctl *c, const char *sha256)
{
	json_t *peers = json_array(), *p;
	unsigned site = 0;
	size_t i;

	ctl_catalog_scan(c->cat, "peer/", peers);
	json_array_foreach(peers, i, p)
	{
		const char *pin = json_string_value(json_object_get(p, "pin"));

		if (pin && !strcasecmp(pin, sha256))
			site = (unsigned)json_integer_value(json_object_get(p, "site"));
	}
	json_decref(peers);
	return site;
}

static json_t *
peer_entry(struct ctl *c, unsigned site)
{
	char path[32];
	json_t *p;

	ctl_peer_path(path, sizeof(path), site);
	return ctl_catalog_get(c->cat, path, &p) ? NULL : p;
}

static void
peer_status(struct ctl *c, json_t *p, const char *status)
{
	char path[32];

	json_object_set_new(p, "status", json_string(status));
	ctl_peer_path(path, sizeof(path), (unsigned)json_integer_value(json_object_get(p, "site")));
	ctl_catalog_put(c->cat, path, p);
}

json_t *
ctl_peer_call(struct ctl *c, unsigned site, json_t *req, json_t **errp)
{
	json_t *p = peer_entry(c, site), *res = NULL;
	const char *op = json_string_value(json_object_get(req, "op"));
	char err[512];
	struct vr_api *a;
	int rc;

	*errp = NULL;
	if (!p) {
		*errp = fail(ENOENT, "site %u is not a peer", site);
		json_decref(req);
		return NULL;
	}
	{
		struct vr_api_tls t = {.cert = c->conf.cert,
		                       .key = c->conf.key,
		                       .pin = json_string_value(json_object_get(p, "pin"))};

		a = vr_api_connect_tls(json_string_value(json_object_get(p, "address")), &t, err,
		                       sizeof(err));
	}
	if (!a) {
		*errp = fail(EHOSTUNREACH, "site %u (%s) is not reachable: %s", site,
		             json_string_value(json_object_get(p, "name")), err);
		json_decref(p);
		json_decref(req);
		return NULL;
	}
	rc = vr_api_call(a, req, &res, err, sizeof(err));
	vr_api_close(a);
	if (rc)
		*errp = fail(-rc, "site %u (%s), %s: %s", site,
		             json_string_value(json_object_get(p, "name")), op, err);
	json_decref(p);
	json_decref(req);
	return rc ? NULL : res;
}

/* This site's public key-encryption key (DER, base64), as the HSM agent gives it. */
static json_t *
own_kek(struct ctl *c, json_t **errp)
{
	char shard[8];

	snprintf(shard, sizeof(shard), "%u", c->conf.shard);
	return ctl_hsm(c, json_pack("{s:s, s:s}", "op", "site.public", "shard", shard), errp);
}

/* A peer's KEK into the HSM as a trusted wrapping key ("site<N>"), and into its entry. */
static json_t *
import_kek(struct ctl *c, json_t *p, const char *kek)
{
	char name[16];
	json_t *err, *r;

	snprintf(name, sizeof(name), "site%u",
	         (unsigned)json_integer_value(json_object_get(p, "site")));
	r = ctl_hsm(c, json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", name, "kek", kek),
	            &err);
	if (!r && json_integer_value(json_object_get(err, "status")) != EEXIST)
		return err;
	json_decref(r);
	json_decref(err);
	json_object_set_new(p, "kek", json_string(kek));
	peer_status(c, p, "linked");
	return NULL;
}

void
ctl_link_greet(struct ctl *c, unsigned site)
{
	json_t *p = peer_entry(c, site), *mine, *err, *r;
	char status[300];

	if (!p)
		return;
	mine = own_kek(c, &err);
	if (!mine) {
		snprintf(status, sizeof(status), "waiting: %s",
		         json_string_value(json_object_get(err, "error")));
		goto out;
	}
	r = ctl_peer_call(c, site,
	                  json_pack("{s:s, s:i, s:s, s:O}", "op", "link.hello", "site",
	                            c->conf.site, "name", c->conf.name, "kek",
	                            json_object_get(mine, "kek")),
	                  &err);
	json_decref(mine);
	if (!r) {
		snprintf(status, sizeof(status), "waiting: %s",
		         json_string_value(json_object_get(err, "error")));
		goto out;
	}
	err = import_kek(c, p, json_string_value(json_object_get(r, "kek")));
	json_decref(r);
	if (err) {
		snprintf(status, sizeof(status), "waiting: %s",
		         json_string_value(json_object_get(err, "error")));
		goto out;
	}
	json_decref(p);
	return;
out:
	json_decref(err);
	peer_status(c, p, status);
	json_decref(p);
}

/* The site id of a peer caller ("site:<id>", set by mgmt.c from its pin). */
static unsigned
caller(const struct ctl_who *who)
{
	return (unsigned)strtoul(who->name + 5, NULL, 10);
}

json_t *
op_link_hello(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	unsigned site = caller(who);
	json_t *p = peer_entry(c, site), *mine, *err;
	const char *kek = json_string_value(json_object_get(req, "kek"));

	if (!p)
		return fail(ENOENT, "site %u is not a peer here", site);
	if (json_integer_value(json_object_get(req, "site")) != site || !kek) {
		json_decref(p);
		return fail(EINVAL, "link.hello names site %lld, but the certificate is site %u's",
		            (long long)json_integer_value(json_object_get(req, "site")), site);
	}
	mine = own_kek(c, &err);
	if (!mine) {
		json_decref(p);
		return err;
	}
	err = import_kek(c, p, kek);
	json_decref(p);
	if (err) {
		json_decref(mine);
		return err;
	}
	err = json_pack("{s:i, s:s, s:O}", "site", c->conf.site, "name", c->conf.name, "kek",
	                json_object_get(mine, "kek"));
	json_decref(mine);
	return ok(err);
}

/* --- payload keys of a replica's WAL, kept in the catalog (K1, K2) --- */

json_t *
ctl_stream_op(json_t *v, const char *op)
{
	return json_pack("{s:s, s:O, s:O, s:O}", "op", op, "account", json_object_get(v, "account"),
	                 "vault", json_object_get(v, "id"), "primary",
	                 json_object_get(v, "primary"));
}

json_t *
ctl_key_install(struct ctl *c, json_t *v, json_t *k, json_t **errp)
{
	json_t *req = ctl_stream_op(v, "key.install");

	json_object_set(req, "key_id", json_object_get(k, "key_id"));
	json_object_set(req, "blob", json_object_get(k, "blob"));
	return ctl_dp(c, req, errp);
}

/* A key's catalog path (key_id < 0: the prefix of the vault's WAL). */
static void
pkey_path(char *buf, size_t n, json_t *v, json_int_t key_id)
{
	int len = snprintf(buf, n, "pkey/%020llu/%010u/%05u/",
	                   (unsigned long long)json_integer_value(json_object_get(v, "account")),
	                   (unsigned)json_integer_value(json_object_get(v, "id")),
	                   (unsigned)json_integer_value(json_object_get(v, "primary")));

	if (key_id >= 0 && len > 0 && (size_t)len < n)
		snprintf(buf + len, n - (size_t)len, "%010lld", (long long)key_id);
}

/* Keeps keys [{key_id, blob}] (wrapped under this site's KEK, as they came) of v's WAL. */
static void
pkeys_keep(struct ctl *c, json_t *v, json_t *keys)
{
	json_t *k, *old;
	char path[96], when[32];
	size_t i;

	ctl_now(when, sizeof(when));
	json_array_foreach(keys, i, k)
	{
		json_t *id = json_object_get(k, "key_id"), *blob = json_object_get(k, "blob");

		if (!json_is_integer(id) || json_integer_value(id) < 1 || !json_is_string(blob))
			continue;
		pkey_path(path, sizeof(path), v, json_integer_value(id));
		if (!ctl_catalog_get(c->cat, path, &old)) {
			json_decref(old);
			continue;
		}
		old = json_pack("{s:O, s:O, s:s}", "key_id", id, "blob", blob, "kept", when);
		ctl_catalog_put(c->cat, path, old);
		json_decref(old);
	}
}

json_t *
ctl_pkeys(struct ctl *c, json_t *v)
{
	json_t *keys = json_array();
	char path[96];

	pkey_path(path, sizeof(path), v, -1);
	ctl_catalog_scan(c->cat, path, keys);
	return keys;
}

void
ctl_pkeys_drop(struct ctl *c, json_t *v)
{
	json_t *keys = ctl_pkeys(c, v), *k;
	char path[96];
	size_t i;

	json_array_foreach(keys, i, k)
	{
		pkey_path(path, sizeof(path), v, json_integer_value(json_object_get(k, "key_id")));
		ctl_catalog_del(c->cat, path);
	}
	json_decref(keys);
}

/* --- the target's side --- */

json_t *
ctl_replica_arg(struct ctl *c, const struct ctl_who *who, json_t *req, json_t **err)
{
	uint64_t account;
	const char *name;
	json_t *v = ctl_vault_arg(c, req, "name", &account, &name, err);

	if (v && (uint64_t)json_integer_value(json_object_get(v, "primary")) != caller(who)) {
		json_decref(v);
		*err = fail(EPERM, "vault %s here is not a replica of site %u", name, caller(who));
		return NULL;
	}
	return v;
}

static void
vault_put(struct ctl *c, json_t *v)
{
	char path[128];

	ctl_vault_path(path, sizeof(path),
	               (uint64_t)json_integer_value(json_object_get(v, "account")),
	               json_string_value(json_object_get(v, "name")));
	ctl_catalog_put(c->cat, path, v);
}

json_t *
op_link_capacity(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *r;
	uint64_t account;
	const char *name;
	struct statvfs fs;
	size_t n, tokens;

	if (ctl_arg_uint(req, "account", UINT64_MAX, &account, &err) ||
	    !(name = ctl_arg_name(req, "name", &err)))
		return err;
	if ((err = ctl_vault_room(c, account, name, &n)))
		return err;
	r = ctl_hsm(c, json_pack("{s:s}", "op", "vault.list"), &err);
	if (!r)
		return err;
	tokens = json_array_size(json_object_get(r, "vaults"));
	json_decref(r);
	if (tokens >= c->conf.max_tokens)
		return fail(ENOSPC,
		            "site %u's HSM holds %zu partitions, its limit ([limits] tokens = %u)",
		            c->conf.site, tokens, c->conf.max_tokens);
	if (!statvfs(c->conf.state, &fs) &&
	    (uint64_t)fs.f_bavail * fs.f_frsize / (1024 * 1024) < c->conf.min_disk_mb)
		return fail(
		    ENOSPC,
		    "site %u has %llu MB free, less than it keeps ([limits] disk_mb "
		    "= %u)",
		    c->conf.site,
		    (unsigned long long)((uint64_t)fs.f_bavail * fs.f_frsize / (1024 * 1024)),
		    c->conf.min_disk_mb);
	if (!c->conf.dp[0])
		return fail(ENOTSUP, "site %u has no dataplane to receive the vault's WAL",
		            c->conf.site);
	return ok(json_pack("{s:s, s:i, s:i}", "capacity", "yes", "vaults", (int)n, "tokens",
	                    (int)tokens));
}

json_t *
op_link_provision(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *cap, *v, *r;
	uint64_t account, id;
	const char *name;
	char hv[48], when[32];

	/* The same checks again: the answer to link.capacity may be stale. */
	cap = op_link_capacity(c, who, req);
	if (json_integer_value(json_object_get(cap, "status")))
		return cap;
	json_decref(cap);
	ctl_arg_uint(req, "account", UINT64_MAX, &account, &err);
	name = ctl_arg_name(req, "name", &err);
	if (ctl_arg_uint(req, "id", UINT32_MAX, &id, &err))
		return err;
	ctl_now(when, sizeof(when));
	v = json_pack("{s:I, s:s, s:I, s:i, s:s, s:s, s:s, s:I}", "account", (json_int_t)account,
	              "name", name, "id", (json_int_t)id, "primary", (int)caller(who), "role",
	              "replica", "status", "provisioning", "created", when, "applied_lsn",
	              (json_int_t)0);
	vault_put(c, v);
	ctl_hsm_vault(hv, v);
	r = ctl_hsm(
	    c, json_pack("{s:s, s:s, s:b}", "op", "vault.create", "vault", hv, "replica", 1), &err);
	if (!r)
		goto undo_entry;
	json_object_set(v, "token", json_object_get(r, "token"));
	json_object_set(v, "serial", json_object_get(r, "serial"));
	/* the partition's own key pair: the masking key comes wrapped under its public half */
	json_object_set(v, "kek", json_object_get(r, "kek"));
	json_decref(r);
	r = ctl_dp(c,
	           json_pack("{s:s, s:I, s:I, s:i}", "op", "stream.add", "account",
	                     (json_int_t)account, "vault", (json_int_t)id, "primary",
	                     (int)caller(who)),
	           &err);
	if (!r && json_integer_value(json_object_get(err, "status")) != EEXIST)
		goto undo_partition;
	json_decref(r);
	json_decref(err);
	json_object_set_new(v, "status", json_string("provisioned"));
	vault_put(c, v);
	return ok(json_pack("{s:o}", "vault", v));
undo_partition:
	json_decref(ctl_hsm(c, json_pack("{s:s, s:s}", "op", "vault.delete", "vault", hv), &r));
	json_decref(r);
undo_entry:
	ctl_vault_path(hv, sizeof(hv), account, name);
	ctl_catalog_del(c->cat, hv);
	json_decref(v);
	return err;
}

json_t *
op_link_masking(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v = ctl_replica_arg(c, who, req, &err), *r;
	char hv[48];

	if (!v)
		return err;
	ctl_hsm_vault(hv, v);
	r = ctl_hsm(
	    c,
	    json_pack("{s:s, s:s, s:O}", "op", "masking.import", "vault", hv, "blob",
	              json_object_get(req, "blob") ? json_object_get(req, "blob") : json_null()),
	    &err);
	if (!r) {
		json_decref(v);
		return err;
	}
	json_decref(r);
	json_object_set_new(v, "status", json_string("keyed"));
	vault_put(c, v);
	return ok(json_pack("{s:o}", "vault", v));
}

json_t *
op_link_keys(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v = ctl_replica_arg(c, who, req, &err), *k, *r;
	size_t i;

	if (!v)
		return err;
	json_array_foreach(json_object_get(req, "keys"), i, k)
	{
		r = ctl_key_install(c, v, k, &err);
		if (!r) {
			json_decref(v);
			return err;
		}
		json_decref(r);
	}
	pkeys_keep(c, v, json_object_get(req, "keys"));
	json_object_set_new(v, "status", json_string("replicating"));
	vault_put(c, v);
	return ok(json_pack("{s:o}", "vault", v));
}

json_t *
op_link_status(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v = ctl_replica_arg(c, who, req, &err);

	return v ? ok(json_pack("{s:o}", "vault", v)) : err;
}

json_t *
op_link_unprovision(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v = ctl_replica_arg(c, who, req, &err);

	if (!v)
		return err;
	err = ctl_vault_wipe(c, v);
	json_decref(v);
	return err ? err : ok(NULL);
}

static void replica_drop(json_t *v, unsigned site);

json_t *
ctl_replicas_remove(struct ctl *c, json_t *v)
{
	json_t *r, *err = NULL;

	/* One at a time, each dropped from the entry once gone: a failure leaves a vault whose
	 * entry names exactly the replicas still there, and delete can be asked again. */
	while ((r = json_array_get(json_object_get(v, "replicas"), 0))) {
		unsigned t = (unsigned)json_integer_value(json_object_get(r, "site"));
		json_t *res = ctl_peer_call(c, t,
		                            json_pack("{s:s, s:O, s:O}", "op", "link.unprovision",
		                                      "account", json_object_get(v, "account"),
		                                      "name", json_object_get(v, "name")),
		                            &err);

		if (!res && json_integer_value(json_object_get(err, "status")) != ENOENT) {
			char msg[600];

			snprintf(
			    msg, sizeof(msg),
			    "site %u did not delete its replica (%s): the vault stays, with the "
			    "replicas not yet deleted; delete it again",
			    t, json_string_value(json_object_get(err, "error")));
			json_object_set_new(err, "error", json_string(msg));
			return err;
		}
		json_decref(res);
		json_decref(err);
		err = NULL;
		replica_drop(v, t);
		vault_put(c, v);
	}
	return NULL;
}

/* --- the source's side --- */

/* The vault's replicas[] entry for site (made when absent). */
static json_t *
replica_of(json_t *v, unsigned site, bool make)
{
	json_t *rs = json_object_get(v, "replicas"), *r;
	size_t i;

	json_array_foreach(rs, i, r) if ((unsigned)json_integer_value(json_object_get(r, "site")) ==
	                                 site) return r;
	if (!make)
		return NULL;
	r = json_pack("{s:i}", "site", (int)site);
	json_array_append_new(rs, r);
	return r;
}

static void
replica_drop(json_t *v, unsigned site)
{
	json_t *rs = json_object_get(v, "replicas"), *r;
	size_t i;

	json_array_foreach(rs, i,
	                   r) if ((unsigned)json_integer_value(json_object_get(r, "site")) == site)
	{
		json_array_remove(rs, i);
		return;
	}
}

static void
step(struct ctl *c, json_t *v, unsigned site, const char *status)
{
	json_object_set_new(replica_of(v, site, true), "status", json_string(status));
	vault_put(c, v);
}

/* The vault's WAL members: the sites its replicas joined, in the order they joined. */
static json_t *
wal_members(json_t *v)
{
	json_t *m = json_array(), *r;
	size_t i;

	json_array_foreach(json_object_get(v, "replicas"), i,
	                   r) if (json_is_true(json_object_get(r, "member")))
	    json_array_append(m, json_object_get(r, "site"));
	return m;
}

/*
 * The last step of vault.replicate: the target's payload keys of the vault's WAL (`all`, from
 * this site's dataplane: {"<site>": [{key_id, blob}]}, each wrapped for that member) carried to
 * it. NULL, or the error response.
 */
static json_t *
carry_keys(struct ctl *c, json_t *v, unsigned t, json_t *all)
{
	json_t *err = NULL, *keys, *r;
	char site[8];

	snprintf(site, sizeof(site), "%u", t);
	keys = json_object_get(all, site);
	r = ctl_peer_call(c, t,
	                  json_pack("{s:s, s:O, s:O, s:o}", "op", "link.keys", "account",
	                            json_object_get(v, "account"), "name",
	                            json_object_get(v, "name"), "keys",
	                            keys ? json_incref(keys) : json_array()),
	                  &err);
	json_decref(r);
	return r ? NULL : err;
}

void
ctl_keys_tick(struct ctl *c)
{
	json_t *vaults, *v, *r, *all, *err;
	size_t i, k;

	if (!c->conf.dp[0])
		return;
	vaults = ctl_vaults(c);
	/* replicas: the keys their dataplane holds (carried, or come in the WAL) kept here too */
	json_array_foreach(vaults, i, v)
	{
		const char *role = json_string_value(json_object_get(v, "role"));

		if (!role || strcmp(role, "replica"))
			continue;
		all = ctl_dp(c, ctl_stream_op(v, "stream.keys"), &err);
		if (all)
			pkeys_keep(c, v, json_object_get(all, "stored"));
		json_decref(all);
		json_decref(err);
	}
	/* primaries: keys still to carry to a replica that joined without taking them */
	json_array_foreach(vaults, i, v) json_array_foreach(json_object_get(v, "replicas"), k, r)
	{
		const char *status = json_string_value(json_object_get(r, "status"));
		unsigned t = (unsigned)json_integer_value(json_object_get(r, "site"));

		if (!status || strcmp(status, "keys pending"))
			continue;
		all = ctl_dp(c,
		             json_pack("{s:s, s:O, s:O}", "op", "stream.keys", "account",
		                       json_object_get(v, "account"), "vault",
		                       json_object_get(v, "id")),
		             &err);
		if (all) {
			err = carry_keys(c, v, t, json_object_get(all, "keys"));
			json_decref(all);
		}
		if (err) {
			json_object_set(r, "error", json_object_get(err, "error"));
			vault_put(c, v);
			json_decref(err);
			continue;
		}
		json_object_del(r, "error");
		vr_info("control", "vault %s: site %u took its keys",
		        json_string_value(json_object_get(v, "name")), t);
		step(c, v, t, "copying");
	}
	json_decref(vaults);
}

json_t *
op_vault_replicate(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *p = NULL, *r, *args, *members, *kek = NULL;
	uint64_t account, site;
	const char *name, *vs;
	char hv[48], msg[600];
	unsigned t;

	v = ctl_vault_arg(c, req, "name", &account, &name, &err);
	if (!v)
		return err;
	if (ctl_arg_uint(req, "site", 65535, &site, &err))
		goto out;
	t = (unsigned)site;
	if ((err = ctl_refuse_replica(c, v)))
		goto out;
	vs = json_string_value(json_object_get(v, "status"));
	if (!vs || (strcmp(vs, "ready") && strcmp(vs, "replicated"))) {
		err = fail(EAGAIN, "vault %s is %s", name, vs ? vs : "in no state");
		goto out;
	}
	if (replica_of(v, t, false)) {
		err = fail(EEXIST, "vault %s is replicated to site %u already", name, t);
		goto out;
	}
	if (!c->conf.dp[0]) {
		err = fail(ENOTSUP, "replication needs this site's dataplane ([site] dataplane)");
		goto out;
	}
	p = peer_entry(c, t);
	if (!p || !json_object_get(p, "kek")) {
		err = fail(EHOSTUNREACH,
		           "site %u is not linked: peer add at both sites (it is %s here)", t,
		           p ? json_string_value(json_object_get(p, "status")) : "not a peer");
		goto out;
	}
	args = json_pack("{s:I, s:s, s:O}", "account", (json_int_t)account, "name", name, "id",
	                 json_object_get(v, "id"));

	/* 1. capacity (V4) */
	step(c, v, t, "asking");
	r = json_deep_copy(args);
	json_object_set_new(r, "op", json_string("link.capacity"));
	r = ctl_peer_call(c, t, r, &err);
	if (!r) {
		snprintf(msg, sizeof(msg), "site %u has no capacity for vault %s: %s", t, name,
		         json_string_value(json_object_get(err, "error")));
		json_object_set_new(err, "error", json_string(msg));
		goto undo_entry;
	}
	json_decref(r);

	/* 2. the target's partition */
	step(c, v, t, "provisioning");
	r = json_deep_copy(args);
	json_object_set_new(r, "op", json_string("link.provision"));
	r = ctl_peer_call(c, t, r, &err);
	if (!r)
		goto undo_entry;
	kek = json_incref(json_object_get(json_object_get(r, "vault"), "kek"));
	json_decref(r);
	step(c, v, t, "ready");
	json_object_set_new(v, "status", json_string("replicated"));

	/* 3. the masking key, under the target's KEK (V5) */
	step(c, v, t, "masking");
	ctl_hsm_vault(hv, v);
	r = kek ? ctl_hsm(c,
	                  json_pack("{s:s, s:s, s:O}", "op", "masking.export", "vault", hv, "peer",
	                            kek),
	                  &err)
	        : NULL;
	if (!kek)
		err = fail(EPROTO, "site %u made the partition but sent no key to wrap for it", t);
	if (r) {
		json_t *m = json_deep_copy(args);

		json_object_set_new(m, "op", json_string("link.masking"));
		json_object_set(m, "blob", json_object_get(r, "blob"));
		json_decref(r);
		r = ctl_peer_call(c, t, m, &err);
	}
	if (!r)
		goto undo_target;
	json_decref(r);

	/* 4. the target joins the vault's WAL; its payload keys go over the link (K1) */
	step(c, v, t, "joining");
	/* A payload-key rotation under way defers a join (EAGAIN): it ends within moments. */
	for (int tries = 0;; tries++) {
		members = wal_members(v);
		json_array_append_new(members, json_integer(t));
		r = ctl_dp(c,
		           json_pack("{s:s, s:I, s:O, s:o}", "op", "stream.members", "account",
		                     (json_int_t)account, "vault", json_object_get(v, "id"),
		                     "members", members),
		           &err);
		if (r || tries == JOIN_TRIES ||
		    json_integer_value(json_object_get(err, "status")) != EAGAIN)
			break;
		json_decref(err);
		usleep(100000);
	}
	if (!r)
		goto undo_target;
	json_object_set_new(replica_of(v, t, true), "member", json_true());
	json_object_set(replica_of(v, t, true), "joined_lsn", json_object_get(r, "lsn"));
	err = carry_keys(c, v, t, json_object_get(r, "keys"));
	json_decref(r);
	if (err) {
		/* Undo the join: the newest member leaves the WAL's member set, then the rest. */
		json_t *e2 = NULL;

		json_object_del(replica_of(v, t, true), "member");
		json_object_del(replica_of(v, t, true), "joined_lsn");
		r = ctl_dp(c,
		           json_pack("{s:s, s:I, s:O, s:o}", "op", "stream.members", "account",
		                     (json_int_t)account, "vault", json_object_get(v, "id"),
		                     "members", wal_members(v)),
		           &e2);
		if (r) {
			json_decref(r);
			goto undo_target;
		}
		vr_err("control", "vault %s: site %u cannot leave the WAL it joined: %s", name, t,
		       json_string_value(json_object_get(e2, "error")));
		json_decref(e2);
		json_object_set_new(replica_of(v, t, true), "member", json_true());
		/*
		 * It stays a member of the WAL: instead of an undo, control carries the keys
		 * again every second until the target takes them (ctl_keys_tick); the operator
		 * sees why in vault show.
		 */
		json_object_set(replica_of(v, t, true), "error", json_object_get(err, "error"));
		step(c, v, t, "keys pending");
		snprintf(msg, sizeof(msg),
		         "site %u joined the vault's WAL but did not take its keys (%s): they are "
		         "carried again every second until it does (vault show)",
		         t, json_string_value(json_object_get(err, "error")));
		json_object_set_new(err, "error", json_string(msg));
		goto out_args;
	}
	step(c, v, t, "copying");
	json_decref(args);
	json_decref(kek);
	json_decref(p);
	return ok(json_pack("{s:o}", "vault", v));

undo_target:
	r = json_deep_copy(args);
	json_object_set_new(r, "op", json_string("link.unprovision"));
	{
		json_t *e2;

		json_decref(ctl_peer_call(c, t, r, &e2));
		if (e2)
			vr_err("control", "vault %s: site %u could not undo its partition: %s",
			       name, t, json_string_value(json_object_get(e2, "error")));
		json_decref(e2);
	}
undo_entry:
	replica_drop(v, t);
	if (!json_array_size(json_object_get(v, "replicas")))
		json_object_set_new(v, "status", json_string("ready"));
	vault_put(c, v);
out_args:
	json_decref(args);
out:
	json_decref(kek);
	json_decref(p);
	json_decref(v);
	return err;
}

void
ctl_replicas_live(struct ctl *c, json_t *v)
{
	json_t *r, *err, *res, *st;
	size_t i;

	st = c->conf.dp[0] ? ctl_dp(c,
	                            json_pack("{s:s, s:O, s:O}", "op", "stream.show", "account",
	                                      json_object_get(v, "account"), "vault",
	                                      json_object_get(v, "id")),
	                            &err)
	                   : NULL;
	if (st)
		json_object_set(v, "wal_lsn", json_object_get(st, "durable_lsn"));
	else
		json_decref(err);
	json_decref(st);
	json_array_foreach(json_object_get(v, "replicas"), i, r)
	{
		res = ctl_peer_call(c, (unsigned)json_integer_value(json_object_get(r, "site")),
		                    json_pack("{s:s, s:O, s:O}", "op", "link.status", "account",
		                              json_object_get(v, "account"), "name",
		                              json_object_get(v, "name")),
		                    &err);
		if (!res) {
			json_object_set_new(r, "remote", json_string("unreachable"));
			json_decref(err);
			continue;
		}
		json_object_set(r, "remote",
		                json_object_get(json_object_get(res, "vault"), "status"));
		json_object_set(r, "applied_lsn",
		                json_object_get(json_object_get(res, "vault"), "applied_lsn"));
		json_decref(res);
	}
}

/* --- the WAL: records of a primary, applied at its replicas --- */

/*
 * A sync vault (X1): waits, at most CTL_SYNC_WAIT_MS, until as many replicas as its mode asks
 * (or all it has, when fewer) hold the record at lsn. The dataplane answered stream.append once
 * the record was durable here; what it may not be yet is durable at the other sites. Returns
 * {"sites": n} (durable at n sites, this one included), and a "warning" when the wait ran out:
 * the record stays in the WAL and reaches the replicas when they come back (it cannot be undone
 * any more than a committed write of a database whose synchronous standby is away).
 */
static json_t *
sync_wait(struct ctl *c, json_t *v, json_int_t lsn)
{
	json_int_t sites = json_integer_value(json_object_get(v, "sync_sites"));
	json_t *err = NULL, *r, *m;
	struct timespec t0, t;
	size_t need, held = 0, n = 0, i;
	long ms = 0;

	if (sites < 2)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = ctl_dp(c, ctl_stream_op(v, "stream.show"), &err);
		if (!r)
			break;
		n = json_array_size(json_object_get(r, "members"));
		held = 0;
		json_array_foreach(json_object_get(r, "members"), i, m)
		{
			if (json_integer_value(json_object_get(m, "acked")) >= lsn)
				held++;
		}
		json_decref(r);
		need = (size_t)sites - 1 < n ? (size_t)sites - 1 : n;
		if (held >= need)
			return json_pack("{s:I}", "sites", (json_int_t)(1 + held));
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= CTL_SYNC_WAIT_MS)
			break;
		usleep(2000);
	}
	{
		const char *why = json_string_value(json_object_get(err, "error"));
		char w[400], tmo[32];

		snprintf(tmo, sizeof(tmo), "not within %d ms", CTL_SYNC_WAIT_MS);
		snprintf(w, sizeof(w),
		         "LSN %lld is durable here and at %zu of %zu replicas, not yet at the %lld "
		         "sites this sync vault asks for (%s); it reaches them when they catch up",
		         (long long)lsn, held, n, (long long)sites, why ? why : tmo);
		json_decref(err);
		return json_pack("{s:I, s:s}", "sites", (json_int_t)(1 + held), "warning", w);
	}
}

json_t *
ctl_wal_key(struct ctl *c, json_t *v, const char *op, const char *key, json_int_t version,
            json_t **sync)
{
	json_t *err = NULL, *r, *pl;
	char hv[48], *s, *b64;

	*sync = NULL;

	if (!c->conf.dp[0])
		return NULL;
	ctl_hsm_vault(hv, v);
	if (strcmp(op, "key.delete")) {
		r = ctl_hsm(c,
		            json_pack("{s:s, s:s, s:s, s:I}", "op", "key.export", "vault", hv,
		                      "name", key, "version", version),
		            &err);
		if (!r)
			return err;
		pl = json_pack("{s:s, s:I, s:O}", "key", key, "version", version, "blob",
		               json_object_get(r, "blob"));
		json_decref(r);
	} else {
		pl = json_pack("{s:s}", "key", key);
	}
	s = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(pl);
	b64 = s ? vr_hsm_b64((const uint8_t *)s, strlen(s)) : NULL;
	free(s);
	if (!b64)
		return fail(ENOMEM, "out of memory");
	r = ctl_dp(c,
	           json_pack("{s:s, s:O, s:O, s:s, s:s, s:s}", "op", "stream.append", "account",
	                     json_object_get(v, "account"), "vault", json_object_get(v, "id"),
	                     "type", "hsm", "rec_op", op, "payload", b64),
	           &err);
	free(b64);
	if (!r)
		return err;
	*sync = sync_wait(c, v, json_integer_value(json_object_get(r, "lsn")));
	json_decref(r);
	return NULL;
}

int
ctl_apply_record(struct ctl *c, json_t *v, json_t *rec)
{
	json_int_t type = json_integer_value(json_object_get(rec, "type")),
	           op = json_integer_value(json_object_get(rec, "op"));
	uint8_t *raw = NULL;
	size_t n = 0;
	json_t *pl, *err = NULL, *r, *k;
	json_error_t je;
	const char *key;
	char hv[48], path[200], when[32];
	int rc = 0;

	if (type != 2) /* VR_REC_HSM: seed and membership records change nothing here */
		return 0;
	if (vr_hsm_unb64(json_string_value(json_object_get(rec, "payload")), &raw, &n))
		return -EPROTO;
	pl = json_loadb((const char *)raw, n, 0, &je);
	free(raw);
	key = json_string_value(json_object_get(pl, "key"));
	if (!key) {
		json_decref(pl);
		return -EPROTO;
	}
	ctl_hsm_vault(hv, v);
	ctl_key_path(path, sizeof(path),
	             (uint64_t)json_integer_value(json_object_get(v, "account")),
	             json_string_value(json_object_get(v, "name")), key);
	ctl_now(when, sizeof(when));
	if (op == 6) { /* VR_REC_OP_KEY_DELETE */
		r = ctl_hsm(c,
		            json_pack("{s:s, s:s, s:s, s:b}", "op", "key.delete", "vault", hv,
		                      "name", key, "replicated", 1),
		            &err);
		if (r || json_integer_value(json_object_get(err, "status")) == ENOENT)
			ctl_catalog_del(c->cat, path);
		else
			rc = -(int)json_integer_value(json_object_get(err, "status"));
	} else {
		r = ctl_hsm(c,
		            json_pack("{s:s, s:s, s:s, s:O, s:O}", "op", "key.import", "vault", hv,
		                      "name", key, "version", json_object_get(pl, "version"),
		                      "blob", json_object_get(pl, "blob")),
		            &err);
		if (r || json_integer_value(json_object_get(err, "status")) == EEXIST) {
			if (ctl_catalog_get(c->cat, path, &k))
				k = json_pack("{s:s, s:s, s:[], s:s}", "name", key, "type",
				              "aes-256-gcm", "versions", "created", when);
			json_array_append(json_object_get(k, "versions"),
			                  json_object_get(pl, "version"));
			json_object_set_new(k, "updated", json_string(when));
			ctl_catalog_put(c->cat, path, k);
			json_decref(k);
		} else {
			rc = -(int)json_integer_value(json_object_get(err, "status"));
		}
	}
	if (rc)
		vr_warn("control", "vault %s: record %lld: %s (tried again)",
		        json_string_value(json_object_get(v, "name")),
		        (long long)json_integer_value(json_object_get(rec, "lsn")),
		        json_string_value(json_object_get(err, "error")));
	json_decref(r);
	json_decref(err);
	json_decref(pl);
	return rc ? rc : 0;
}

void
ctl_ops_tick(struct ctl *c)
{
	json_t *vaults, *v;
	size_t i;

	if (!c->conf.dp[0])
		return;
	vaults = ctl_vaults(c);
	json_array_foreach(vaults, i, v)
	{
		const char *role = json_string_value(json_object_get(v, "role")),
		           *status = json_string_value(json_object_get(v, "status"));
		json_int_t applied = json_integer_value(json_object_get(v, "applied_lsn"));
		json_t *r, *err, *rec;
		size_t k;
		bool stuck = false;
		unsigned reads = 0;

		if (!role || strcmp(role, "replica") || !status ||
		    (strcmp(status, "replicating") && strcmp(status, "in sync")))
			continue;
	again:
		r = ctl_stream_op(v, "stream.read");
		json_object_set_new(r, "from", json_integer(applied + 1));
		json_object_set_new(r, "max", json_integer(APPLY_MAX));
		r = ctl_dp(c, r, &err);
		if (!r) {
			json_decref(err);
			continue;
		}
		json_array_foreach(json_object_get(r, "records"), k, rec)
		{
			if (ctl_apply_record(c, v, rec)) {
				c->stats.apply_failed++;
				stuck = true;
				break;
			}
			c->stats.records_applied++;
			applied = json_integer_value(json_object_get(rec, "lsn"));
		}
		/* In sync: it applied all its dataplane holds, and that is more than nothing yet
		 * (the seed record comes first). */
		if (applied != json_integer_value(json_object_get(v, "applied_lsn")) ||
		    (!stuck && applied && !json_array_size(json_object_get(r, "records")) &&
		     strcmp(status, "in sync"))) {
			json_object_set_new(v, "applied_lsn", json_integer(applied));
			json_object_set_new(
			    v, "status",
			    json_string(json_array_size(json_object_get(r, "records"))
			                    ? "replicating"
			                    : "in sync"));
			vault_put(c, v);
		}
		if (!stuck && json_array_size(json_object_get(r, "records")) == APPLY_MAX &&
		    ++reads < APPLY_READS) {
			json_decref(r);
			goto again;
		}
		json_decref(r);
	}
	json_decref(vaults);
}
