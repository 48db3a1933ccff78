// SPDX-License-Identifier: BSD-3-Clause
/*
 * The operations of the management API (vr_api.h): one table (name, least role, audited,
 * handler). Each handler checks its arguments, asks the HSM agent and the dataplane over their
 * sockets, and keeps the catalog; on a failure part-way it undoes what it did, so that no
 * half-made vault or orphaned partition is left (vault.create).
 *
 * Vault lifecycle at this site (catalog "status"):
 *
 *   (none) --vault.create--> creating --partition + stream made--> ready
 *      ^                        |                                    |
 *      +------ any step fails: partition deleted, entry removed ------+--vault.delete--> (none)
 *
 * A vault is named by (account, name) for people; inside, by (account, id, primary): the
 * numeric id is this site's (seq/vault), and with the primary's site id it names the WAL
 * stream in the dataplane and the partition in the HSM ("s<primary>.a<account>.v<id>").
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "control.h"
#include "vr_hsm.h"
#include "vr_msg.h"

#define fail vr_hsm_error
#define ok   vr_hsm_ok

enum { NAME_MAX_LEN = 32, AUDIT = 1 };

/* --- the HSM agent and the dataplane: one short request each --- */

/* Calls the agent; on failure returns NULL and *errp is the response to give. */
static json_t *
call(const char *sock, const char *who, json_t *req, json_t **errp)
{
	struct vr_hsm *h;
	json_t *res = NULL;
	char err[512];
	int rc;

	*errp = NULL;
	h = vr_hsm_connect(sock);
	if (!h) {
		*errp = fail(errno == ENOENT || errno == ECONNREFUSED ? ENOTCONN : errno,
		             "the %s is not reachable at %s: %s", who, sock, strerror(errno));
		json_decref(req);
		return NULL;
	}
	rc = vr_hsm_call(h, req, &res, err, sizeof(err));
	vr_hsm_close(h);
	json_decref(req);
	if (rc) {
		*errp = fail(-rc, "%s: %s", who, err);
		return NULL;
	}
	return res;
}

json_t *
ctl_hsm(struct ctl *c, json_t *req, json_t **errp)
{
	return call(c->conf.hsm, "HSM agent", req, errp);
}

json_t *
ctl_dp(struct ctl *c, json_t *req, json_t **errp)
{
	if (!c->conf.dp[0]) {
		*errp = fail(ENOTCONN, "this site has no dataplane configured ([site] dataplane)");
		json_decref(req);
		return NULL;
	}
	return call(c->conf.dp, "dataplane", req, errp);
}

/* --- arguments --- */

static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

const char *
ctl_arg_name(json_t *req, const char *k, json_t **err)
{
	const char *s = json_string_value(json_object_get(req, k));

	if (!s)
		*err = fail(EINVAL, "missing argument \"%s\"", k);
	else if (!name_ok(s))
		*err = fail(EINVAL, "\"%s\" must be 1-%d characters of [A-Za-z0-9._-]", k,
		            NAME_MAX_LEN);
	else
		return s;
	return NULL;
}

/* A non-negative integer, given as a number or as a decimal string (the CLI sends strings). */
int
ctl_arg_uint(json_t *req, const char *k, uint64_t max, uint64_t *out, json_t **err)
{
	json_t *v = json_object_get(req, k);
	const char *s = json_string_value(v);
	char *end;

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    (uint64_t)json_integer_value(v) <= max) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (s && isdigit((unsigned char)*s)) {
		errno = 0;
		*out = strtoull(s, &end, 10);
		if (!errno && !*end && *out <= max)
			return 0;
	}
	*err = fail(EINVAL, "\"%s\" must be an integer 0..%" PRIu64, k, max);
	return -EINVAL;
}

/* --- catalog paths --- */

void
ctl_vault_path(char *buf, size_t n, uint64_t account, const char *name)
{
	snprintf(buf, n, "vault/%020" PRIu64 "/%s", account, name);
}

void
ctl_key_path(char *buf, size_t n, uint64_t account, const char *vault, const char *key)
{
	snprintf(buf, n, "key/%020" PRIu64 "/%s/%s", account, vault, key ? key : "");
}

void
ctl_peer_path(char *buf, size_t n, unsigned site)
{
	snprintf(buf, n, "peer/%05u", site);
}

void
ctl_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The HSM's name for a vault's partition. */
void
ctl_hsm_vault(char out[48], json_t *v)
{
	snprintf(out, 48, "s%u.a%" PRIu64 ".v%u",
	         (unsigned)json_integer_value(json_object_get(v, "primary")),
	         (uint64_t)json_integer_value(json_object_get(v, "account")),
	         (unsigned)json_integer_value(json_object_get(v, "id")));
}

/* The vault named by the request's account and `name_key`; NULL with *err. */
json_t *
ctl_vault_arg(struct ctl *c, json_t *req, const char *name_key, uint64_t *account,
              const char **name, json_t **err)
{
	char path[128];
	json_t *v;
	int rc;

	if (ctl_arg_uint(req, "account", UINT64_MAX, account, err))
		return NULL;
	*name = ctl_arg_name(req, name_key, err);
	if (!*name)
		return NULL;
	ctl_vault_path(path, sizeof(path), *account, *name);
	rc = ctl_catalog_get(c->cat, path, &v);
	if (rc == -ENOENT)
		*err = fail(ENOENT, "no vault %s in account %" PRIu64 " at this site", *name,
		            *account);
	else if (rc)
		*err = fail(-rc, "catalog: %s", strerror(-rc));
	return rc ? NULL : v;
}

/* A replica refuses mutations and names its primary (V6). */
json_t *
ctl_refuse_replica(struct ctl *c, json_t *v)
{
	const char *role = json_string_value(json_object_get(v, "role"));
	unsigned primary = (unsigned)json_integer_value(json_object_get(v, "primary"));
	char path[32], pname[80] = "";
	json_t *p;

	if (!role || !strcmp(role, "primary"))
		return NULL;
	ctl_peer_path(path, sizeof(path), primary);
	if (!ctl_catalog_get(c->cat, path, &p)) {
		snprintf(pname, sizeof(pname), " (%s)",
		         json_string_value(json_object_get(p, "name")));
		json_decref(p);
	}
	return fail(EROFS, "vault %s is a replica here: change it at its primary, site %u%s",
	            json_string_value(json_object_get(v, "name")), primary, pname);
}

/* --- site --- */

static json_t *
op_ping(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	return ok(json_pack("{s:i, s:s, s:i, s:s, s:s}", "site", c->conf.site, "name", c->conf.name,
	                    "version", VR_API_PROTOCOL, "who", who->name, "role",
	                    vr_api_role_name(who->role)));
}

json_t *
ctl_site_entry(struct ctl *c)
{
	json_t *s;

	if (ctl_catalog_get(c->cat, "site", &s))
		s = json_pack("{s:b}", "initialized", 0);
	return s;
}

static json_t *
op_site_init(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *s = ctl_site_entry(c), *err, *r;
	unsigned char md[32];
	unsigned mdn = sizeof(md);
	uint8_t *der = NULL;
	size_t n = 0;
	char hex[65], when[32], shard[8];
	int rc;

	snprintf(shard, sizeof(shard), "%u", c->conf.shard);
	if (json_is_true(json_object_get(s, "initialized"))) {
		json_decref(s);
		return fail(EALREADY, "site %u (%s) is initialized already", c->conf.site,
		            c->conf.name);
	}
	json_decref(s);
	/* The key pair may exist from an init that failed after it: use it then. */
	r = ctl_hsm(c, json_pack("{s:s, s:s}", "op", "site.public", "shard", shard), &err);
	if (!r) {
		json_decref(err);
		r = ctl_hsm(c, json_pack("{s:s, s:s}", "op", "site.generate", "shard", shard),
		            &err);
		if (!r)
			return err;
	}
	if (vr_hsm_unb64(json_string_value(json_object_get(r, "kek")), &der, &n)) {
		json_decref(r);
		return fail(EPROTO, "HSM agent: its public key is not base64");
	}
	EVP_Digest(der, n, md, &mdn, EVP_sha256(), NULL);
	free(der);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	ctl_now(when, sizeof(when));
	s = json_pack("{s:i, s:s, s:b, s:i, s:I, s:s, s:s}", "id", c->conf.site, "name",
	              c->conf.name, "initialized", 1, "kek_shard", c->conf.shard, "kek_version",
	              json_integer_value(json_object_get(r, "version")), "kek_sha256", hex,
	              "initialized_at", when);
	json_decref(r);
	rc = ctl_catalog_put(c->cat, "site", s);
	if (rc) {
		json_decref(s);
		return fail(-rc, "catalog: %s", strerror(-rc));
	}
	return ok(json_pack("{s:o}", "site", s));
}

static json_t *
op_site_show(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *s = ctl_site_entry(c), *vaults = json_array(), *peers = json_array();

	ctl_catalog_scan(c->cat, "vault/", vaults);
	ctl_catalog_scan(c->cat, "peer/", peers);
	json_object_set_new(s, "id", json_integer(c->conf.site));
	json_object_set_new(s, "name", json_string(c->conf.name));
	json_object_set_new(s, "tls_sha256", json_string(c->tls_sha256));
	json_object_set_new(s, "mgmt", json_string(c->conf.listen[0] ? c->conf.listen : "-"));
	json_object_set_new(s, "vaults", json_integer((json_int_t)json_array_size(vaults)));
	json_object_set_new(s, "peers", json_integer((json_int_t)json_array_size(peers)));
	json_object_set_new(s, "limits",
	                    json_pack("{s:i, s:i, s:i}", "vaults", c->conf.max_vaults, "tokens",
	                              c->conf.max_tokens, "disk_mb", c->conf.min_disk_mb));
	json_decref(vaults);
	json_decref(peers);
	return ok(json_pack("{s:o}", "site", s));
}

/* --- peers --- */

static bool
hex64_ok(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

static json_t *
op_peer_add(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *p;
	uint64_t site;
	const char *name, *addr = json_string_value(json_object_get(req, "address")),
	                  *pin = json_string_value(json_object_get(req, "pin"));
	char path[32];
	int rc;

	if (ctl_arg_uint(req, "site", 65535, &site, &err))
		return err;
	if (!(name = ctl_arg_name(req, "name", &err)))
		return err;
	if (site == 0 || site == c->conf.site)
		return fail(EINVAL, "a peer's site id is 1..65535 and not this site's (%u)",
		            c->conf.site);
	if (!addr || !strchr(addr, ':') || strlen(addr) > 120)
		return fail(EINVAL, "\"address\" must be host:port of the peer's control");
	if (!hex64_ok(pin))
		return fail(EINVAL, "\"pin\" must be the SHA-256 of the peer's site certificate, "
		                    "64 hex digits (vr-pki fingerprint CERT)");
	ctl_peer_path(path, sizeof(path), (unsigned)site);
	if (!ctl_catalog_get(c->cat, path, &p)) {
		json_decref(p);
		return fail(EEXIST, "peer %u exists (peer remove it first)", (unsigned)site);
	}
	p = json_pack("{s:i, s:s, s:s, s:s, s:s}", "site", (int)site, "name", name, "address", addr,
	              "pin", pin, "status", "added");
	rc = ctl_catalog_put(c->cat, path, p);
	json_decref(p);
	if (rc)
		return fail(-rc, "catalog: %s", strerror(-rc));
	/* The public keys go both ways now, or when the other site adds this one. */
	ctl_link_greet(c, (unsigned)site);
	if (ctl_catalog_get(c->cat, path, &p))
		return fail(EIO, "catalog: the peer just added is gone");
	return ok(json_pack("{s:o}", "peer", p));
}

/* Every catalog entry under prefix, as the response's array `field`. */
static json_t *
list_of(struct ctl *c, const char *prefix, const char *field)
{
	json_t *all = json_array();
	int rc = ctl_catalog_scan(c->cat, prefix, all);

	if (rc) {
		json_decref(all);
		return fail(-rc, "catalog: %s", strerror(-rc));
	}
	return ok(json_pack("{s:o}", field, all));
}

static json_t *
op_peer_list(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	return list_of(c, "peer/", "peers");
}

static json_t *
op_peer_remove(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *p, *vaults = json_array(), *v;
	uint64_t site;
	char path[32];
	size_t i;
	int rc;

	if (ctl_arg_uint(req, "site", 65535, &site, &err)) {
		json_decref(vaults);
		return err;
	}
	ctl_peer_path(path, sizeof(path), (unsigned)site);
	if (ctl_catalog_get(c->cat, path, &p)) {
		json_decref(vaults);
		return fail(ENOENT, "no peer %u", (unsigned)site);
	}
	json_decref(p);
	ctl_catalog_scan(c->cat, "vault/", vaults);
	json_array_foreach(vaults, i, v)
	{
		json_t *r, *rs = json_object_get(v, "replicas");
		size_t k;

		if ((uint64_t)json_integer_value(json_object_get(v, "primary")) == site) {
			rc = EBUSY;
			goto busy;
		}
		json_array_foreach(
		    rs, k, r) if ((uint64_t)json_integer_value(json_object_get(r, "site")) == site)
		{
			rc = EBUSY;
			goto busy;
		}
	}
	json_decref(vaults);
	rc = ctl_catalog_del(c->cat, path);
	return rc ? fail(-rc, "catalog: %s", strerror(-rc)) : ok(NULL);
busy:
	err = fail(rc, "peer %u still shares vault %s (account %lld): delete it first",
	           (unsigned)site, json_string_value(json_object_get(v, "name")),
	           (long long)json_integer_value(json_object_get(v, "account")));
	json_decref(vaults);
	return err;
}

/* --- vaults --- */

json_t *
ctl_vault_room(struct ctl *c, uint64_t account, const char *name, size_t *n)
{
	json_t *v, *all = json_array();
	char path[128];

	ctl_vault_path(path, sizeof(path), account, name);
	if (!ctl_catalog_get(c->cat, path, &v)) {
		json_decref(v);
		json_decref(all);
		return fail(EEXIST, "vault %s exists in account %" PRIu64 " at site %u", name,
		            account, c->conf.site);
	}
	ctl_catalog_scan(c->cat, "vault/", all);
	*n = json_array_size(all);
	json_decref(all);
	if (*n >= c->conf.max_vaults)
		return fail(ENOSPC, "site %u holds %zu vaults, its limit ([limits] vaults = %u)",
		            c->conf.site, *n, c->conf.max_vaults);
	return NULL;
}

/*
 * X1: "mode" async (the default: a write is acked once durable here) or sync (once durable at
 * "sites" sites, this one included: 2 by default). The sites beyond this one are the vault's
 * replicas, in the order they joined; until it has that many, a write waits for all it has
 * (with none yet, for this site alone).
 */
static json_t *
vault_mode_arg(json_t *req, uint64_t *sites)
{
	const char *mode = json_string_value(json_object_get(req, "mode"));
	json_t *err = NULL;

	*sites = 1;
	if (mode && strcmp(mode, "async") && strcmp(mode, "sync"))
		return fail(EINVAL, "\"mode\" is async or sync, not \"%s\"", mode);
	if (!json_object_get(req, "sites")) {
		if (mode && !strcmp(mode, "sync"))
			*sites = 2;
		return NULL;
	}
	if (!mode || strcmp(mode, "sync"))
		return fail(EINVAL, "\"sites\" is for a sync vault (mode sync)");
	if (ctl_arg_uint(req, "sites", 1 + CTL_MAX_REPLICAS, sites, &err))
		return err;
	if (*sites < 2)
		return fail(EINVAL,
		            "a sync vault's writes are durable at 2..%d sites (\"sites\" %" PRIu64
		            ")",
		            1 + CTL_MAX_REPLICAS, *sites);
	return NULL;
}

static json_t *
op_vault_create(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *seq, *r, *site = ctl_site_entry(c);
	uint64_t account, id = 1, sites;
	const char *name;
	char path[128], hv[48], when[32];
	size_t n;
	int rc;

	bool inited = json_is_true(json_object_get(site, "initialized"));

	json_decref(site);
	if (!inited)
		return fail(EAGAIN, "the site is not initialized: site init first");
	if (ctl_arg_uint(req, "account", UINT64_MAX, &account, &err) ||
	    !(name = ctl_arg_name(req, "name", &err)) || (err = vault_mode_arg(req, &sites)))
		return err;
	if ((err = ctl_vault_room(c, account, name, &n)))
		return err;
	ctl_vault_path(path, sizeof(path), account, name);
	if (!ctl_catalog_get(c->cat, "seq/vault", &seq)) {
		id = (uint64_t)json_integer_value(json_object_get(seq, "next"));
		json_decref(seq);
	}
	if (id == 0 || id > UINT32_MAX)
		return fail(EOVERFLOW, "vault ids are exhausted at this site");
	seq = json_pack("{s:I}", "next", (json_int_t)(id + 1));
	rc = ctl_catalog_put(c->cat, "seq/vault", seq);
	json_decref(seq);
	if (rc)
		return fail(-rc, "catalog: %s", strerror(-rc));
	ctl_now(when, sizeof(when));
	v = json_pack("{s:I, s:s, s:I, s:i, s:s, s:s, s:s, s:[], s:s, s:I}", "account",
	              (json_int_t)account, "name", name, "id", (json_int_t)id, "primary",
	              c->conf.site, "role", "primary", "status", "creating", "created", when,
	              "replicas", "mode", sites > 1 ? "sync" : "async", "sync_sites",
	              (json_int_t)sites);
	/* Written first: a crash part-way leaves a "creating" entry that names what to undo. */
	rc = ctl_catalog_put(c->cat, path, v);
	if (rc) {
		json_decref(v);
		return fail(-rc, "catalog: %s", strerror(-rc));
	}
	ctl_hsm_vault(hv, v);
	r = ctl_hsm(c, json_pack("{s:s, s:s}", "op", "vault.create", "vault", hv), &err);
	if (!r)
		goto undo_entry;
	json_object_set(v, "token", json_object_get(r, "token"));
	json_object_set(v, "serial", json_object_get(r, "serial"));
	json_decref(r);
	if (c->conf.dp[0]) {
		/* The account WAL, its seed record first (V2); members come with replication. */
		r = ctl_dp(c,
		           json_pack("{s:s, s:I, s:I, s:[], s:i, s:I}", "op", "stream.add",
		                     "account", (json_int_t)account, "vault", (json_int_t)id,
		                     "members", "room", CTL_MAX_REPLICAS, "sync",
		                     (json_int_t)(sites - 1)),
		           &err);
		if (!r)
			goto undo_partition;
		json_object_set(v, "stream_lsn", json_object_get(r, "durable_lsn"));
		json_decref(r);
	}
	json_object_set_new(v, "status", json_string("ready"));
	rc = ctl_catalog_put(c->cat, path, v);
	if (rc) {
		err = fail(-rc, "catalog: %s", strerror(-rc));
		goto undo_partition;
	}
	return ok(json_pack("{s:o}", "vault", v));
undo_partition:
	json_decref(ctl_hsm(c, json_pack("{s:s, s:s}", "op", "vault.delete", "vault", hv), &r));
	if (r) {
		vr_err("control", "vault %s: the partition %s could not be deleted: %s", name, hv,
		       json_string_value(json_object_get(r, "error")));
		json_decref(r);
	}
undo_entry:
	ctl_catalog_del(c->cat, path);
	json_decref(v);
	return err;
}

static json_t *
op_vault_list(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	return list_of(c, "vault/", "vaults");
}

static json_t *
op_vault_show(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *keys = json_array();
	uint64_t account;
	const char *name;
	char path[160];

	v = ctl_vault_arg(c, req, "name", &account, &name, &err);
	if (!v) {
		json_decref(keys);
		return err;
	}
	ctl_key_path(path, sizeof(path), account, name, NULL);
	ctl_catalog_scan(c->cat, path, keys);
	if (json_array_size(json_object_get(v, "replicas")))
		ctl_replicas_live(c, v);
	if (json_string_value(json_object_get(v, "role")) &&
	    !strcmp(json_string_value(json_object_get(v, "role")), "replica")) {
		/* the WAL's payload keys this site keeps (ids; their blobs are not shown) */
		json_t *pk = ctl_pkeys(c, v), *ids = json_array(), *k;
		size_t i;

		json_array_foreach(pk, i, k) json_array_append(ids, json_object_get(k, "key_id"));
		json_decref(pk);
		json_object_set_new(v, "payload_keys", ids);
	}
	return ok(json_pack("{s:o, s:o}", "vault", v, "keys", keys));
}

json_t *
ctl_vault_wipe(struct ctl *c, json_t *v)
{
	uint64_t account = (uint64_t)json_integer_value(json_object_get(v, "account"));
	const char *name = json_string_value(json_object_get(v, "name"));
	json_t *err = NULL, *r, *keys = json_array(), *k;
	char path[160], hv[48];
	size_t i;
	int rc;

	/* A primary's WAL first: no producer writes to a vault on its way out. A dataplane that
	 * is down forgets the stream anyway (control gives it only the vaults it has). */
	if (c->conf.dp[0] && json_string_value(json_object_get(v, "role")) &&
	    !strcmp(json_string_value(json_object_get(v, "role")), "primary")) {
		r = ctl_dp(c, ctl_stream_op(v, "stream.close"), &err);
		if (!r && json_integer_value(json_object_get(err, "status")) != ENOENT &&
		    json_integer_value(json_object_get(err, "status")) != ENOTCONN) {
			json_decref(keys);
			return err;
		}
		json_decref(r);
		json_decref(err);
		err = NULL;
	}
	ctl_hsm_vault(hv, v);
	r = ctl_hsm(c, json_pack("{s:s, s:s}", "op", "vault.delete", "vault", hv), &err);
	if (!r && json_integer_value(json_object_get(err, "status")) != ENOENT) {
		json_decref(keys);
		return err;
	}
	json_decref(r);
	json_decref(err);
	ctl_key_path(path, sizeof(path), account, name, NULL);
	ctl_catalog_scan(c->cat, path, keys);
	json_array_foreach(keys, i, k)
	{
		ctl_key_path(path, sizeof(path), account, name,
		             json_string_value(json_object_get(k, "name")));
		ctl_catalog_del(c->cat, path);
	}
	json_decref(keys);
	ctl_pkeys_drop(c, v);
	ctl_vault_path(path, sizeof(path), account, name);
	rc = ctl_catalog_del(c->cat, path);
	return rc ? fail(-rc, "catalog: %s", strerror(-rc)) : NULL;
}

static json_t *
op_vault_delete(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v;
	uint64_t account;
	const char *name;

	v = ctl_vault_arg(c, req, "name", &account, &name, &err);
	if (!v)
		return err;
	if (!(err = ctl_refuse_replica(c, v)) && !(err = ctl_replicas_remove(c, v)))
		err = ctl_vault_wipe(c, v);
	json_decref(v);
	return err ? err : ok(NULL);
}

/* --- keys --- */

/* The vault and key of a key operation; NULL with *err. mutate: refuse at a replica. */
static json_t *
key_args(struct ctl *c, json_t *req, bool mutate, const char **key, json_t **err)
{
	uint64_t account;
	const char *vname;
	json_t *v = ctl_vault_arg(c, req, "vault", &account, &vname, err);

	if (!v)
		return NULL;
	if (mutate && (*err = ctl_refuse_replica(c, v))) {
		json_decref(v);
		return NULL;
	}
	if (key && !(*key = ctl_arg_name(req, "key", err))) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static json_t *
key_entry(struct ctl *c, json_t *v, const char *key, char *path, size_t n)
{
	json_t *k;

	ctl_key_path(path, n, (uint64_t)json_integer_value(json_object_get(v, "account")),
	             json_string_value(json_object_get(v, "name")), key);
	return ctl_catalog_get(c->cat, path, &k) ? NULL : k;
}

/*
 * The vault (*v), the key name and the catalog entry (its path in path) of a change to an
 * existing key; NULL with *err (and *v released) when any is missing.
 */
static json_t *
existing_key(struct ctl *c, json_t *req, json_t **v, const char **key, char *path, size_t n,
             json_t **err)
{
	json_t *k;

	if (!(*v = key_args(c, req, true, key, err)))
		return NULL;
	if (!(k = key_entry(c, *v, *key, path, n))) {
		json_decref(*v);
		*err = fail(ENOENT, "no key %s in this vault", *key);
		return NULL;
	}
	return k;
}

/*
 * A key change in the vault's partition (hsm_op), then its record in the vault's WAL (V6,
 * wal_op). Returns the HSM's answer, or NULL with *err when the HSM refused; *wal_err is the
 * WAL's refusal of a change the HSM made already (the caller undoes it or says so); *sync what
 * a sync vault adds to the answer (ctl_wal_key). Takes v.
 */
static json_t *
key_change(struct ctl *c, json_t *v, const char *hsm_op, const char *wal_op, const char *key,
           json_t **err, json_t **wal_err, json_t **sync)
{
	char hv[48];
	json_t *r;

	*wal_err = *sync = NULL;
	ctl_hsm_vault(hv, v);
	r = ctl_hsm(c, json_pack("{s:s, s:s, s:s}", "op", hsm_op, "vault", hv, "name", key), err);
	if (r)
		*wal_err = ctl_wal_key(c, v, wal_op, key,
		                       json_integer_value(json_object_get(r, "version")), sync);
	json_decref(v);
	return r;
}

/* An answer, with what a sync vault's wait added to it (taken). */
static json_t *
ok_sync(json_t *res, json_t *sync)
{
	if (sync)
		json_object_update(res, sync);
	json_decref(sync);
	return ok(res);
}

/* A refusal of the WAL's, its message prefixed with what was done here all the same. */
static json_t *
done_here(json_t *err, const char *what)
{
	char msg[700];

	snprintf(msg, sizeof(msg), "%s: %s", what,
	         json_string_value(json_object_get(err, "error")));
	json_object_set_new(err, "error", json_string(msg));
	return err;
}

static json_t *
op_key_create(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *k, *r, *wal_err, *sync;
	const char *key;
	char path[200], hv[48], when[32];
	int rc;

	if (!(v = key_args(c, req, true, &key, &err)))
		return err;
	if ((k = key_entry(c, v, key, path, sizeof(path)))) {
		json_decref(k);
		json_decref(v);
		return fail(EEXIST, "key %s exists (key rotate makes a new version)", key);
	}
	ctl_hsm_vault(hv, v);
	r = key_change(c, v, "key.create", "key.insert", key, &err, &wal_err, &sync);
	if (!r)
		return err;
	if (wal_err) {
		/* In the vault's WAL, or no key at all. */
		err = wal_err;
		json_decref(r);
		json_decref(ctl_hsm(
		    c, json_pack("{s:s, s:s, s:s}", "op", "key.delete", "vault", hv, "name", key),
		    &r));
		json_decref(r);
		return err;
	}
	ctl_now(when, sizeof(when));
	k = json_pack("{s:s, s:s, s:[O], s:s, s:s}", "name", key, "type", "aes-256-gcm", "versions",
	              json_object_get(r, "version"), "created", when, "updated", when);
	json_decref(r);
	rc = ctl_catalog_put(c->cat, path, k);
	if (rc) {
		json_decref(k);
		json_decref(sync);
		return fail(-rc, "catalog: %s (the key exists in the HSM)", strerror(-rc));
	}
	return ok_sync(json_pack("{s:o}", "key", k), sync);
}

static json_t *
op_key_rotate(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *k, *r, *wal_err, *sync;
	const char *key;
	char path[200], when[32];
	int rc;

	if (!(k = existing_key(c, req, &v, &key, path, sizeof(path), &err)))
		return err;
	r = key_change(c, v, "key.rotate", "key.rotate", key, &err, &wal_err, &sync);
	if (!r) {
		json_decref(k);
		return err;
	}
	if (wal_err) {
		/* The version exists here and is not in the WAL: say so, loudly. */
		char what[160];

		snprintf(what, sizeof(what),
		         "version %lld was made here but is not in the vault's WAL, so replicas do "
		         "not have it",
		         (long long)json_integer_value(json_object_get(r, "version")));
		json_decref(r);
		json_decref(k);
		return done_here(wal_err, what);
	}
	ctl_now(when, sizeof(when));
	json_array_append(json_object_get(k, "versions"), json_object_get(r, "version"));
	json_object_set_new(k, "updated", json_string(when));
	json_decref(r);
	rc = ctl_catalog_put(c->cat, path, k);
	if (rc) {
		json_decref(k);
		json_decref(sync);
		return fail(-rc, "catalog: %s", strerror(-rc));
	}
	return ok_sync(json_pack("{s:o}", "key", k), sync);
}

static json_t *
op_key_delete(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *k, *r, *wal_err, *sync;
	const char *key;
	char path[200];
	int rc;

	if (!(k = existing_key(c, req, &v, &key, path, sizeof(path), &err)))
		return err;
	json_decref(k);
	r = key_change(c, v, "key.delete", "key.delete", key, &err, &wal_err, &sync);
	if (!r)
		return err;
	if (wal_err) {
		ctl_catalog_del(c->cat, path);
		json_decref(r);
		return done_here(
		    wal_err, "deleted here, but not in the vault's WAL, so replicas still have it");
	}
	rc = ctl_catalog_del(c->cat, path);
	if (rc) {
		json_decref(r);
		json_decref(sync);
		return fail(-rc, "catalog: %s", strerror(-rc));
	}
	v = json_pack("{s:O?}", "destroyed", json_object_get(r, "versions"));
	json_decref(r);
	return ok_sync(v, sync);
}

static json_t *
op_key_list(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *keys = json_array();
	char path[200];

	if (!(v = key_args(c, req, false, NULL, &err))) {
		json_decref(keys);
		return err;
	}
	ctl_key_path(path, sizeof(path),
	             (uint64_t)json_integer_value(json_object_get(v, "account")),
	             json_string_value(json_object_get(v, "name")), NULL);
	json_decref(v);
	ctl_catalog_scan(c->cat, path, keys);
	return ok(json_pack("{s:o}", "keys", keys));
}

static json_t *
op_key_encrypt(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *r, *hr;
	const char *key, *text = json_string_value(json_object_get(req, "data")),
	                 *b64 = json_string_value(json_object_get(req, "data_b64")),
	                 *aad = json_string_value(json_object_get(req, "aad"));
	char hv[48], *data = NULL, *ct;
	size_t n;

	if (!(v = key_args(c, req, false, &key, &err)))
		return err;
	if (!!text == !!b64) {
		json_decref(v);
		return fail(EINVAL, "give the plaintext as \"data\" (text) or \"data_b64\"");
	}
	ctl_hsm_vault(hv, v);
	json_decref(v);
	if (text)
		data = vr_hsm_b64((const uint8_t *)text, strlen(text));
	hr = json_pack("{s:s, s:s, s:s, s:s}", "op", "key.encrypt", "vault", hv, "name", key,
	               "data", text ? data : b64);
	free(data);
	if (aad) {
		char *a = vr_hsm_b64((const uint8_t *)aad, strlen(aad));

		json_object_set_new(hr, "aad", json_string(a));
		free(a);
	}
	r = ctl_hsm(c, hr, &err);
	if (!r)
		return err;
	n = strlen(json_string_value(json_object_get(r, "iv"))) +
	    strlen(json_string_value(json_object_get(r, "data"))) + 32;
	ct = malloc(n);
	if (!ct) {
		json_decref(r);
		return fail(ENOMEM, "out of memory");
	}
	snprintf(ct, n, "vr1:%lld:%s:%s",
	         (long long)json_integer_value(json_object_get(r, "version")),
	         json_string_value(json_object_get(r, "iv")),
	         json_string_value(json_object_get(r, "data")));
	json_decref(r);
	r = json_pack("{s:s}", "ciphertext", ct);
	free(ct);
	return ok(r);
}

static json_t *
op_key_decrypt(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *r, *hr;
	const char *key, *ct = json_string_value(json_object_get(req, "ciphertext")),
	                 *aad = json_string_value(json_object_get(req, "aad"));
	char hv[48], *copy, *ver, *iv, *data, *end;
	const char *out;
	uint8_t *plain = NULL;
	size_t n = 0;
	long version;

	if (!(v = key_args(c, req, false, &key, &err)))
		return err;
	if (!ct || strncmp(ct, "vr1:", 4)) {
		json_decref(v);
		return fail(EINVAL, "\"ciphertext\" must be what key encrypt printed (vr1:...)");
	}
	copy = strdup(ct + 4);
	ver = copy;
	iv = copy ? strchr(copy, ':') : NULL;
	data = iv ? strchr(iv + 1, ':') : NULL;
	if (!data) {
		free(copy);
		json_decref(v);
		return fail(EINVAL, "\"ciphertext\" must be vr1:<version>:<iv>:<data>");
	}
	*iv++ = 0;
	*data++ = 0;
	version = strtol(ver, &end, 10);
	if (*end || version < 1) {
		free(copy);
		json_decref(v);
		return fail(EINVAL, "\"ciphertext\" names no key version");
	}
	ctl_hsm_vault(hv, v);
	json_decref(v);
	hr = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "op", "key.decrypt", "vault", hv, "name",
	               key, "version", (int)version, "iv", iv, "data", data);
	free(copy);
	if (aad) {
		char *a = vr_hsm_b64((const uint8_t *)aad, strlen(aad));

		json_object_set_new(hr, "aad", json_string(a));
		free(a);
	}
	r = ctl_hsm(c, hr, &err);
	if (!r)
		return err;
	out = json_string_value(json_object_get(r, "data"));
	hr = json_pack("{s:s}", "data_b64", out ? out : "");
	if (out && !vr_hsm_unb64(out, &plain, &n)) {
		json_t *t = json_stringn((const char *)plain, n); /* NULL unless valid UTF-8 */

		if (t && !memchr(plain, 0, n))
			json_object_set_new(hr, "data", t);
		else
			json_decref(t);
		vr_hsm_wipe_free(plain);
	}
	json_decref(r);
	return ok(hr);
}

/* --- the dataplane, stats, audit --- */

static json_t *
op_stream_list(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err, *r = ctl_dp(c, json_pack("{s:s}", "op", "stream.list"), &err);

	return r ? r : err;
}

static json_t *
op_stream_show(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *r, *q;
	uint64_t account, vault, primary = c->conf.site;

	if (ctl_arg_uint(req, "account", UINT64_MAX, &account, &err) ||
	    ctl_arg_uint(req, "vault", UINT32_MAX, &vault, &err))
		return err;
	if (json_object_get(req, "primary") && ctl_arg_uint(req, "primary", 65535, &primary, &err))
		return err;
	q = json_pack("{s:s, s:I, s:I, s:I}", "op", "stream.show", "account", (json_int_t)account,
	              "vault", (json_int_t)vault, "primary", (json_int_t)primary);
	r = ctl_dp(c, q, &err);
	return r ? r : err;
}

static const char *const counter_names[] = {
#define X(n, d) #n,
    CTL_COUNTERS(X)
#undef X
};

static json_t *
op_stats(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *cs = json_object(), *res, *err = NULL, *d = NULL;
	const uint64_t *v = (const uint64_t *)&c->stats;

	for (unsigned i = 0; i < sizeof(counter_names) / sizeof(counter_names[0]); i++)
		json_object_set_new(cs, counter_names[i], json_integer((json_int_t)v[i]));
	res = json_pack("{s:o}", "control", cs);
	if (c->conf.dp[0]) {
		d = ctl_dp(c, json_pack("{s:s}", "op", "stats"), &err);
		if (d) {
			json_object_del(d, "status");
			json_object_set_new(res, "dataplane", d);
		} else {
			json_object_set_new(res, "dataplane_error",
			                    json_copy(json_object_get(err, "error")));
			json_decref(err);
		}
	}
	return ok(res);
}

static json_t *
op_audit_show(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *r;
	uint64_t from = 0, max = 20;

	if (json_object_get(req, "from") && ctl_arg_uint(req, "from", UINT64_MAX, &from, &err))
		return err;
	if (json_object_get(req, "max") && ctl_arg_uint(req, "max", 1000, &max, &err))
		return err;
	r = ctl_audit_show(c->audit, from, (unsigned)(max ? max : 1));
	return r ? r : fail(ENOMEM, "out of memory");
}

/* --- the table --- */

struct op {
	const char *name;
	enum vr_role role;
	unsigned flags;
	json_t *(*fn)(struct ctl *c, const struct ctl_who *who, json_t *req);
};

static const struct op ops[] = {
    {"ping", VR_ROLE_READER, 0, op_ping},
    {"site.init", VR_ROLE_ADMIN, AUDIT, op_site_init},
    {"site.show", VR_ROLE_READER, 0, op_site_show},
    {"peer.add", VR_ROLE_ADMIN, AUDIT, op_peer_add},
    {"peer.list", VR_ROLE_READER, 0, op_peer_list},
    {"peer.remove", VR_ROLE_ADMIN, AUDIT, op_peer_remove},
    {"vault.create", VR_ROLE_OPERATOR, AUDIT, op_vault_create},
    {"vault.list", VR_ROLE_READER, 0, op_vault_list},
    {"vault.show", VR_ROLE_READER, 0, op_vault_show},
    {"vault.delete", VR_ROLE_ADMIN, AUDIT, op_vault_delete},
    {"key.create", VR_ROLE_OPERATOR, AUDIT, op_key_create},
    {"key.rotate", VR_ROLE_OPERATOR, AUDIT, op_key_rotate},
    {"key.delete", VR_ROLE_OPERATOR, AUDIT, op_key_delete},
    {"key.list", VR_ROLE_READER, 0, op_key_list},
    {"key.encrypt", VR_ROLE_OPERATOR, AUDIT, op_key_encrypt},
    {"key.decrypt", VR_ROLE_OPERATOR, AUDIT, op_key_decrypt},
    {"stream.list", VR_ROLE_READER, 0, op_stream_list},
    {"stream.show", VR_ROLE_READER, 0, op_stream_show},
    {"stats", VR_ROLE_READER, 0, op_stats},
    {"audit.show", VR_ROLE_READER, 0, op_audit_show},
    {"vault.replicate", VR_ROLE_ADMIN, AUDIT, op_vault_replicate},
    {"vault.verify", VR_ROLE_READER, AUDIT, op_vault_verify},
    {"link.hello", VR_ROLE_PEER, AUDIT, op_link_hello},
    {"link.capacity", VR_ROLE_PEER, AUDIT, op_link_capacity},
    {"link.provision", VR_ROLE_PEER, AUDIT, op_link_provision},
    {"link.masking", VR_ROLE_PEER, AUDIT, op_link_masking},
    {"link.keys", VR_ROLE_PEER, AUDIT, op_link_keys},
    {"link.status", VR_ROLE_PEER, 0, op_link_status},
    {"link.unprovision", VR_ROLE_PEER, AUDIT, op_link_unprovision},
    {"link.verify", VR_ROLE_PEER, 0, op_link_verify},
};

/* What the audit log keeps of a request: every argument but customer data and key blobs (their
 * sizes instead; link.keys' list of blobs as its length). */
static json_t *
audit_args(json_t *req)
{
	/* customer data, and wrapped key material (no secret, but no business of an audit log) */
	static const char *const data_keys[] = {"data", "data_b64", "ciphertext",
	                                        "aad",  "blob",     "kek"};
	json_t *a = json_copy(req);

	json_object_del(a, "op");
	if (json_is_array(json_object_get(a, "keys"))) {
		json_object_set_new(
		    a, "keys_count",
		    json_integer((json_int_t)json_array_size(json_object_get(a, "keys"))));
		json_object_del(a, "keys");
	}
	for (unsigned i = 0; i < sizeof(data_keys) / sizeof(data_keys[0]); i++) {
		const char *s = json_string_value(json_object_get(a, data_keys[i]));
		char k[32];

		if (!s)
			continue;
		snprintf(k, sizeof(k), "%s_size", data_keys[i]);
		json_object_set_new(a, k, json_integer((json_int_t)strlen(s)));
		json_object_del(a, data_keys[i]);
	}
	return a;
}

json_t *
ctl_dispatch(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "op"));
	static const char *fault;
	static bool fault_read;
	const struct op *op = NULL;
	json_t *res, *args;
	int status;

	if (!fault_read) {
		fault = getenv("VAULTREP_FAULT_OP");
		fault_read = true;
	}

	c->stats.requests++;
	for (unsigned i = 0; name && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, name))
			op = &ops[i];
	if (!op) {
		c->stats.request_errors++;
		return fail(ENOSYS, "unknown operation \"%s\"", name ? name : "(none)");
	}
	/* A peer may call link.* and nothing else; an operator never link.* */
	if (fault && !strcmp(fault, op->name)) {
		/* tests: this operation fails as if what it drives had (VAULTREP_FAULT_OP) */
		res = fail(EIO, "%s: a fault injected by VAULTREP_FAULT_OP", op->name);
	} else if ((op->role == VR_ROLE_PEER) != (who->role == VR_ROLE_PEER) ||
	           who->role < op->role) {
		c->stats.denied++;
		res = fail(EPERM, "%s needs the %s role; %s has %s", op->name,
		           vr_api_role_name(op->role), who->name, vr_api_role_name(who->role));
	} else {
		res = op->fn(c, who, req);
	}
	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status)
		c->stats.request_errors++;
	if ((op->flags & AUDIT) || status == EPERM) {
		args = audit_args(req);
		if (ctl_audit_append(c->audit, who, op->name, args, status,
		                     json_string_value(json_object_get(res, "error"))) &&
		    !status) {
			/* Done but not recorded: say so rather than answer as if all were well. */
			json_decref(res);
			res = fail(EIO, "%s was done, but the audit log could not record it",
			           op->name);
		}
		json_decref(args);
	}
	return res;
}

/*
 * The dataplane's boot id (ping); a new one is a dataplane that (re)started and knows no
 * streams: every vault's stream is given to it again. Returns true when it answered.
 */
static bool
dp_check(struct ctl *c, bool restore)
{
	json_t *err = NULL, *r;
	const char *boot;

	if (!c->conf.dp[0])
		return false;
	r = ctl_dp(c, json_pack("{s:s}", "op", "ping"), &err);
	json_decref(err);
	if (!r)
		return false;
	boot = json_string_value(json_object_get(r, "boot"));
	if (boot && strcmp(boot, c->dp_boot)) {
		if (c->dp_boot[0]) {
			c->stats.dp_restarts++;
			vr_warn("control", "the dataplane restarted: its streams are given again");
		}
		snprintf(c->dp_boot, sizeof(c->dp_boot), "%s", boot);
		if (restore)
			ctl_dp_restore(c);
	}
	json_decref(r);
	return true;
}

json_t *
ctl_vaults(struct ctl *c)
{
	json_t *vaults = json_array();

	ctl_catalog_scan(c->cat, "vault/", vaults);
	return vaults;
}

void
ctl_dp_watch(struct ctl *c)
{
	dp_check(c, true);
}

void
ctl_ops_start(struct ctl *c)
{
	json_t *vaults = json_array(), *v;
	size_t i;

	dp_check(c, false);
	ctl_catalog_scan(c->cat, "vault/", vaults);
	json_array_foreach(vaults, i, v)
	{
		const char *status = json_string_value(json_object_get(v, "status"));

		if (status && !strcmp(status, "creating")) {
			/* A create that did not finish: undo it (no half-made vault). */
			char path[128], hv[48];
			json_t *err = NULL;

			ctl_hsm_vault(hv, v);
			json_decref(ctl_hsm(
			    c, json_pack("{s:s, s:s}", "op", "vault.delete", "vault", hv), &err));
			json_decref(err);
			ctl_vault_path(path, sizeof(path),
			               (uint64_t)json_integer_value(json_object_get(v, "account")),
			               json_string_value(json_object_get(v, "name")));
			ctl_catalog_del(c->cat, path);
			vr_warn("control", "vault %s: a create that did not finish was undone",
			        json_string_value(json_object_get(v, "name")));
		}
	}
	json_decref(vaults);
	ctl_dp_restore(c);
}

void
ctl_dp_restore(struct ctl *c)
{
	json_t *vaults, *v;
	size_t i;

	if (!c->conf.dp[0])
		return;
	vaults = ctl_vaults(c);
	json_array_foreach(vaults, i, v)
	{
		json_t *err = NULL, *r;
		const char *status = json_string_value(json_object_get(v, "status"));

		if (status && !strcmp(status, "creating"))
			continue;
		if (!strcmp(json_string_value(json_object_get(v, "role")), "primary")) {
			/* the WAL's members: the replicas that joined, in the order they did */
			json_t *m = json_array(), *rp;
			size_t k;

			json_array_foreach(json_object_get(v, "replicas"), k,
			                   rp) if (json_is_true(json_object_get(rp, "member")))
			    json_array_append(m, json_object_get(rp, "site"));
			json_int_t sites = json_integer_value(json_object_get(v, "sync_sites"));

			r = ctl_dp(c,
			           json_pack("{s:s, s:O, s:O, s:o, s:i, s:I}", "op", "stream.add",
			                     "account", json_object_get(v, "account"), "vault",
			                     json_object_get(v, "id"), "members", m, "room",
			                     CTL_MAX_REPLICAS, "sync", sites > 1 ? sites - 1 : 0),
			           &err);
		} else {
			/* a replica: its stored payload keys come back with the stream, and the
			 * catalog's are given again (a dataplane that lost its log) */
			json_t *keys = ctl_pkeys(c, v), *k;
			size_t j;

			r = ctl_dp(c, ctl_stream_op(v, "stream.add"), &err);
			json_array_foreach(keys, j, k)
			{
				json_t *e2 = NULL, *r2 = ctl_key_install(c, v, k, &e2);

				if (!r2)
					vr_warn("control",
					        "vault %s: payload key %lld not given again: %s",
					        json_string_value(json_object_get(v, "name")),
					        (long long)json_integer_value(
					            json_object_get(k, "key_id")),
					        json_string_value(json_object_get(e2, "error")));
				json_decref(r2);
				json_decref(e2);
			}
			json_decref(keys);
		}
		if (!r && json_integer_value(json_object_get(err, "status")) != EEXIST)
			vr_warn("control", "vault %s: the dataplane does not have its stream: %s",
			        json_string_value(json_object_get(v, "name")),
			        json_string_value(json_object_get(err, "error")));
		json_decref(r);
		json_decref(err);
	}
	json_decref(vaults);
}
