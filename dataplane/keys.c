/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Payload keys (K1, K2, D4, D5) on the control thread: made, wrapped and unwrapped by the
 * hsm_agent, kept durable only wrapped, handed to the worker as dp_key.
 *
 * Made at the origin: payload.generate in the site token, payload.wrap for every member
 * ("site<N>") and for this site itself ("site<own id>", imported here from site.public), then
 * payload.delete: the token keeps no copy. This site's own blob is stored and unwrapped at once
 * (payload.unwrap returns the key in clear to the dataplane's uid only).
 *
 * Durable: the meta row 'K' + stream holds the stream's last two keys, each as (id, blob under
 * this site's KEK), at the origin and at every receiver alike. A restarted dataplane unwraps
 * them again; no key is ever written in clear. Key records received are stored only after
 * their key unwrapped.
 *
 * The version of the site KEK a blob was made under is not in the blob: unwrapping tries the
 * shard's current version first, then the older ones still kept (site.rotate, D5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rte_cycles.h>
#include <rte_malloc.h>

#include "dp.h"
#include "vr_hsm.h"
#include "vr_msg.h"

enum {
	STORED = 2,       /* keys kept per stream */
	OLD_VERSIONS = 8, /* older site KEK versions tried when unwrapping */
	ROW_MAX = 1 + STORED * (4 + 2 + VR_WIRE_KEYREC_MAX_BLOB),
};

struct stored {
	uint32_t id;
	uint16_t n;
	uint8_t blob[VR_WIRE_KEYREC_MAX_BLOB];
};

static struct vr_hsm *hsm;
static bool self_imported;

void
dp_keys_close(void)
{
	vr_hsm_close(hsm);
	hsm = NULL;
	self_imported = false;
}

/* One agent call (req consumed); one reconnect when the connection broke. */
static int
call(struct dp *dp, json_t *req, json_t **res, char *err, size_t err_n)
{
	int rc = -ENOTCONN;

	*res = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!hsm && !(hsm = vr_hsm_connect(dp->conf.hsm))) {
			rc = -errno;
			snprintf(err, err_n, "cannot reach the hsm_agent at %s: %s", dp->conf.hsm,
			         strerror(errno));
			continue;
		}
		rc = vr_hsm_call(hsm, req, res, err, err_n);
		if (rc != -EPIPE && rc != -ECONNRESET && rc != -ENOTCONN && rc != -EIO)
			break;
		dp_keys_close();
	}
	json_decref(req);
	return rc;
}

static void
payload_id(const struct dp_stream *st, uint32_t id, char out[64])
{
	snprintf(out, 64, "p%016llx-%08x-%04x-%08x", (unsigned long long)st->id.account,
	         st->id.vault, st->id.primary, id);
}

/* This site's own public key, as the trusted peer "site<id>" its keys are wrapped for. */
static int
import_self(struct dp *dp, char *err, size_t err_n)
{
	json_t *pub, *res;
	char me[16];
	int rc;

	if (self_imported)
		return 0;
	rc = call(dp, json_pack("{s:s, s:s}", "op", "site.public", "shard", dp->conf.hsm_shard),
	          &pub, err, err_n);
	if (rc)
		return rc;
	snprintf(me, sizeof(me), "site%u", dp->conf.site);
	rc = call(dp,
	          json_pack("{s:s, s:s, s:O}", "op", "peer.import", "peer", me, "kek",
	                    json_object_get(pub, "kek")),
	          &res, err, err_n);
	json_decref(pub);
	json_decref(res);
	if (!rc)
		self_imported = true;
	return rc;
}

/*
 * payload.unwrap of a blob made for this site, under the shard's current site key or an older
 * one still kept; keep: into the site token (wrappable again), else the key in *res. 0 with
 * *res, or -errno with err.
 */
static int
unwrap_any(struct dp *dp, const struct dp_stream *st, uint32_t id, const uint8_t *blob, size_t n,
           bool keep, json_t **res, char *err, size_t err_n)
{
	char pid[64], *b64 = vr_hsm_b64(blob, n);
	long version;
	int rc;

	if (!b64) {
		snprintf(err, err_n, "out of memory");
		return -ENOMEM;
	}
	rc = call(dp, json_pack("{s:s, s:s}", "op", "site.public", "shard", dp->conf.hsm_shard),
	          res, err, err_n);
	version = rc ? 0 : (long)json_integer_value(json_object_get(*res, "version"));
	json_decref(*res);
	*res = NULL;
	payload_id(st, id, pid);
	for (long v = version; v >= 1 && v > version - OLD_VERSIONS; v--) {
		rc = call(dp,
		          json_pack("{s:s, s:s, s:s, s:i, s:s, s:b}", "op", "payload.unwrap", "id",
		                    pid, "shard", dp->conf.hsm_shard, "version", (int)v, "blob",
		                    b64, "keep", keep),
		          res, err, err_n);
		/* Another version of the site key, or one retired: try the one before. */
		if (rc != -EBADMSG && rc != -ENOENT)
			break;
	}
	if (rc == -EBADMSG || rc == -ENOENT)
		snprintf(err, err_n,
		         "key %u of stream %llu/%u/%u does not unwrap under site key %s", id,
		         (unsigned long long)st->id.account, st->id.vault, st->id.primary,
		         dp->conf.hsm_shard);
	free(b64);
	return rc;
}

/* The key of a blob made for this site; 0, or -errno with err. */
static int
unwrap(struct dp *dp, const struct dp_stream *st, uint32_t id, const uint8_t *blob, size_t n,
       uint8_t key[DP_KEY_SIZE], char *err, size_t err_n)
{
	json_t *res;
	const char *k;
	uint8_t *raw = NULL;
	size_t rn = 0;
	int rc = unwrap_any(dp, st, id, blob, n, false, &res, err, err_n);

	if (rc)
		return rc;
	k = json_string_value(json_object_get(res, "key"));
	if (!k || vr_hsm_unb64(k, &raw, &rn) || rn != DP_KEY_SIZE) {
		snprintf(err, err_n, "the hsm_agent returned no 32-byte key");
		rc = -EPROTO;
	} else {
		memcpy(key, raw, DP_KEY_SIZE);
	}
	if (raw)
		explicit_bzero(raw, rn);
	free(raw);
	json_decref(res);
	return rc;
}

static struct dp_stored_key {
	char tag;
	uint8_t stream[VR_STREAM_ID_SIZE];
} __attribute__((packed)) row_key(const struct dp_stream *st)
{
	struct dp_stored_key k = {.tag = 'K'};

	vr_stream_id_pack(&st->id, k.stream);
	return k;
}

/* The stream's stored keys, oldest first; 0 with *n (0 if none), or -errno. */
static int
stored_get(struct dp *dp, const struct dp_stream *st, struct stored out[STORED], unsigned *n)
{
	struct dp_stored_key k = row_key(st);
	uint8_t v[ROW_MAX];
	size_t len, off = 1;
	int rc = vr_log_meta_get(dp->log, &k, sizeof(k), v, sizeof(v), &len);

	*n = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (len < 1 || v[0] > STORED)
		return -EUCLEAN;
	for (unsigned i = 0; i < v[0]; i++) {
		if (len - off < 6)
			return -EUCLEAN;
		out[i].id = vr_get_be32(v + off);
		out[i].n = vr_get_be16(v + off + 4);
		off += 6;
		if (!out[i].n || out[i].n > VR_WIRE_KEYREC_MAX_BLOB || len - off < out[i].n)
			return -EUCLEAN;
		memcpy(out[i].blob, v + off, out[i].n);
		off += out[i].n;
	}
	if (off != len)
		return -EUCLEAN;
	*n = v[0];
	return 0;
}

/* Stores (id, blob) as the stream's newest key, keeping the one before it; synced. */
static int
stored_put(struct dp *dp, const struct dp_stream *st, uint32_t id, const uint8_t *blob, size_t n)
{
	struct dp_stored_key k = row_key(st);
	struct stored have[STORED];
	uint8_t v[ROW_MAX];
	unsigned cnt, keep;
	size_t off = 1;
	int rc = stored_get(dp, st, have, &cnt);

	if (rc)
		return rc;
	keep = cnt == STORED ? 1 : cnt; /* the newest one stays */
	v[0] = (uint8_t)(keep + 1);
	for (unsigned i = cnt - keep; i < cnt; i++) {
		vr_put_be32(v + off, have[i].id);
		vr_put_be16(v + off + 4, have[i].n);
		memcpy(v + off + 6, have[i].blob, have[i].n);
		off += 6 + have[i].n;
	}
	vr_put_be32(v + off, id);
	vr_put_be16(v + off + 4, (uint16_t)n);
	memcpy(v + off + 6, blob, n);
	off += 6 + n;
	return vr_log_meta_put(dp->log, &k, sizeof(k), v, off);
}

void
dp_key_free(struct dp *dp, struct dp_key *k)
{
	if (!k)
		return;
	dp_crypto_session_free(&dp->crypto, k->sess);
	explicit_bzero(k, sizeof(*k));
	free(k);
}

struct dp_key *
dp_key_new(struct dp *dp, struct dp_stream *st, uint32_t id, const uint8_t key[DP_KEY_SIZE],
           bool seal, char *err, size_t err_n)
{
	struct dp_key *k = calloc(1, sizeof(*k)); /* the C heap: as a stream (op_stream_add) */
	void *sess;
	uint8_t salt[32];
	unsigned sn = sizeof(salt);
	uint64_t limit;
	int rc;

	if (!k) {
		snprintf(err, err_n, "out of memory for a key");
		return NULL;
	}
	k->id = id;
	vr_wire_ack_key(key, k->ack_key);
	HMAC(EVP_sha256(), key, DP_KEY_SIZE, (const uint8_t *)"vaultrep salt v1", 16, salt, &sn);
	memcpy(k->salt, salt, sizeof(k->salt));
	explicit_bzero(salt, sizeof(salt));
	/* The worker makes the session on first use; the device must take the key now. */
	k->seal = seal;
	memcpy(k->raw, key, DP_KEY_SIZE);
	sess = dp_crypto_session(&dp->crypto, key, seal);
	if (!sess) {
		snprintf(err, err_n, "the crypto device refused the session");
		dp_key_free(dp, k);
		return NULL;
	}
	dp_crypto_session_free(&dp->crypto, sess);
	if (!seal)
		return k;
	/* Resume above every sequence ever reserved under this key, then reserve ahead. */
	rc = dp_nonce_persisted(dp, st, id, &limit);
	if (!rc) {
		vr_nonce_start(&k->nonce, k->salt, limit, rte_rdtsc());
		vr_nonce_policy(&k->nonce, dp->conf.rekey_batches,
		                (uint64_t)dp->conf.rekey_seconds * dp->hz);
		limit = vr_nonce_next_limit(&k->nonce);
		rc = dp_nonce_persist(dp, st, id, limit);
	}
	if (rc) {
		snprintf(err, err_n, "cannot reserve nonces: %s", vr_rec_strerror(rc));
		dp_key_free(dp, k);
		return NULL;
	}
	vr_nonce_reserved(&k->nonce, limit);
	return k;
}

/*
 * Wraps payload key `pid` (in the site token) for every member, into rk's records, and, with
 * self_blob, for this site too; then deletes it from the token either way. 0, or -errno.
 */
static int
wrap_out(struct dp *dp, struct dp_stream *st, const char *pid, struct dp_rekey *rk,
         uint8_t **self_blob, size_t *self_n, char *err, size_t err_n)
{
	json_t *peers = json_array(), *res = NULL, *blobs, *d = NULL;
	char name[16];
	int rc = 0;

	for (unsigned i = 0; i < st->n_members; i++) {
		snprintf(name, sizeof(name), "site%u", st->members[i].site);
		json_array_append_new(peers, json_string(name));
	}
	if (self_blob) {
		snprintf(name, sizeof(name), "site%u", dp->conf.site);
		json_array_append_new(peers, json_string(name));
	}
	if (json_array_size(peers))
		rc = call(
		    dp,
		    json_pack("{s:s, s:s, s:O}", "op", "payload.wrap", "id", pid, "peers", peers),
		    &res, err, err_n);
	call(dp, json_pack("{s:s, s:s}", "op", "payload.delete", "id", pid), &d, NULL, 0);
	json_decref(d);
	blobs = json_object_get(res, "blobs");
	for (unsigned i = 0; !rc && i <= st->n_members; i++) {
		bool self = i == st->n_members;
		const char *b;
		uint8_t *raw = NULL;
		size_t rn = 0;

		if (self && !self_blob)
			break;
		snprintf(name, sizeof(name), "site%u", self ? dp->conf.site : st->members[i].site);
		b = json_string_value(json_object_get(blobs, name));
		if (!b || vr_hsm_unb64(b, &raw, &rn) || !rn || rn > VR_WIRE_KEYREC_MAX_BLOB) {
			free(raw);
			snprintf(err, err_n, "the hsm_agent returned no blob for %s", name);
			rc = -EPROTO;
		} else if (self) {
			*self_blob = raw;
			*self_n = rn;
		} else {
			rk->rec[i].site = st->members[i].site;
			rk->rec[i].blob_size = (uint16_t)rn;
			memcpy(rk->rec[i].blob, raw, rn);
			free(raw);
		}
	}
	rk->n = st->n_members;
	json_decref(res);
	json_decref(peers);
	return rc;
}

/*
 * Makes key `id` at the origin: generated in the site token, wrapped for every member (into
 * rk) and for this site (stored), then deleted from the token. Returns the dp_key, or NULL
 * with err.
 */
static struct dp_key *
make(struct dp *dp, struct dp_stream *st, uint32_t id, struct dp_rekey *rk, char *err, size_t err_n)
{
	json_t *res = NULL;
	char pid[64];
	uint8_t key[DP_KEY_SIZE], *blob = NULL;
	size_t n = 0;
	struct dp_key *k = NULL;
	int rc;

	if ((rc = import_self(dp, err, err_n)))
		return NULL;
	payload_id(st, id, pid);
	/* A crash between generate and delete leaves the object: it is nobody's key. */
	call(dp, json_pack("{s:s, s:s}", "op", "payload.delete", "id", pid), &res, NULL, 0);
	json_decref(res);
	rc = call(dp, json_pack("{s:s, s:s}", "op", "payload.generate", "id", pid), &res, err,
	          err_n);
	json_decref(res);
	if (rc || wrap_out(dp, st, pid, rk, &blob, &n, err, err_n) ||
	    unwrap(dp, st, id, blob, n, key, err, err_n))
		goto out;
	if ((rc = stored_put(dp, st, id, blob, n))) {
		snprintf(err, err_n, "cannot store the key: %s", vr_rec_strerror(rc));
		goto out;
	}
	k = dp_key_new(dp, st, id, key, true, err, err_n);
out:
	explicit_bzero(key, sizeof(key));
	free(blob);
	return k;
}

/* A stream's records for its members, as control carries them: {"<site>": {key_id, blob}}. */
static json_t *
records_json(const struct dp_rekey *rk)
{
	json_t *o = json_object();

	for (unsigned i = 0; i < rk->n; i++) {
		char site[8], *b = vr_hsm_b64(rk->rec[i].blob, rk->rec[i].blob_size);

		snprintf(site, sizeof(site), "%u", rk->rec[i].site);
		json_object_set_new(
		    o, site, json_pack("{s:i, s:s?}", "key_id", (int)rk->key->id, "blob", b));
		free(b);
	}
	return o;
}

/* The stored key of an origin stream, wrapped again for its members (after a restart). */
static int
rewrap(struct dp *dp, struct dp_stream *st, const struct stored *s, struct dp_rekey *rk, char *err,
       size_t err_n)
{
	json_t *res = NULL;
	char pid[64];
	int rc = unwrap_any(dp, st, s->id, s->blob, s->n, true, &res, err, err_n);

	json_decref(res);
	if (rc)
		return rc;
	payload_id(st, s->id, pid);
	return wrap_out(dp, st, pid, rk, NULL, NULL, err, err_n);
}

/*
 * A stream being added (not yet visible to the worker) gets its keys:
 *   - stored ones (a restart) are unwrapped again: the newest is current, the one before it
 *     previous; an origin with two sends the newest one's records again (members that hold it
 *     answer at once), sealed under the previous;
 *   - an origin stream without any makes key 1;
 * and *records, for an origin, are the current key's records for its members (control hands
 * them to the members' sites, K1). 0, or -errno with err.
 */
int
dp_keys_bootstrap(struct dp *dp, struct dp_stream *st, json_t **records, char *err, size_t err_n)
{
	struct stored s[STORED];
	struct dp_key *k[STORED] = {0};
	struct dp_rekey *rk = NULL;
	unsigned n;
	int rc = stored_get(dp, st, s, &n);

	*records = NULL;
	if (rc) {
		snprintf(err, err_n, "cannot read the stream's keys: %s", vr_rec_strerror(rc));
		return rc;
	}
	if (st->origin && (rk = calloc(1, sizeof(*rk))) == NULL) {
		snprintf(err, err_n, "out of memory");
		return -ENOMEM;
	}
	if (!n && st->origin) {
		k[0] = make(dp, st, 1, rk, err, err_n);
		if (!k[0]) {
			free(rk);
			return -EIO;
		}
		DP_INC(&dp->stats[DP_STATS_CTL], rekeys);
		rk->key = k[0];
		*records = records_json(rk);
		free(rk);
		atomic_store(&st->key, k[0]);
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t key[DP_KEY_SIZE];

		rc = unwrap(dp, st, s[i].id, s[i].blob, s[i].n, key, err, err_n);
		if (!rc && !(k[i] = dp_key_new(dp, st, s[i].id, key, st->origin, err, err_n)))
			rc = -EIO;
		explicit_bzero(key, sizeof(key));
		if (rc)
			goto fail;
	}
	if (st->origin && n) {
		rc = rewrap(dp, st, &s[n - 1], rk, err, err_n);
		if (rc)
			goto fail;
		rk->key = k[n - 1];
		*records = records_json(rk);
	}
	if (n == 2 && st->origin && st->n_members) {
		/* The worker takes it from here (dp_msg NEXT_KEY, already sealing under it). */
		st->rekey = rk;
		rk = NULL;
	}
	free(rk);
	if (n == 2)
		atomic_store(&st->prev_key, k[0]);
	if (n)
		atomic_store(&st->key, k[n - 1]);
	return 0;
fail:
	for (unsigned i = 0; i < STORED; i++)
		dp_key_free(dp, k[i]);
	free(rk);
	return rc;
}

/*
 * An origin stream's stored keys (the newest two, oldest first), each wrapped again for every
 * member: what control carries to a member that joins (stream.members), which installs them
 * in that order. *out = {"<site>": [{key_id, blob}, ...]}. 0, or -errno with err.
 */
int
dp_keys_records(struct dp *dp, struct dp_stream *st, json_t **out, char *err, size_t err_n)
{
	struct stored s[STORED];
	struct dp_rekey *rk = calloc(1, sizeof(*rk));
	unsigned n;
	int rc = rk ? stored_get(dp, st, s, &n) : -ENOMEM;

	*out = NULL;
	if (rc) {
		snprintf(err, err_n, "cannot read the stream's keys: %s", vr_rec_strerror(rc));
		free(rk);
		return rc;
	}
	*out = json_object();
	for (unsigned i = 0; i < n && !rc; i++) {
		memset(rk, 0, sizeof(*rk));
		rc = rewrap(dp, st, &s[i], rk, err, err_n);
		for (unsigned m = 0; !rc && m < rk->n; m++) {
			char site[8], *b = vr_hsm_b64(rk->rec[m].blob, rk->rec[m].blob_size);
			json_t *list;

			snprintf(site, sizeof(site), "%u", rk->rec[m].site);
			list = json_object_get(*out, site);
			if (!list) {
				list = json_array();
				json_object_set_new(*out, site, list);
			}
			json_array_append_new(
			    list, json_pack("{s:i, s:s?}", "key_id", (int)s[i].id, "blob", b));
			free(b);
		}
	}
	free(rk);
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

int
dp_keys_stored(struct dp *dp, const struct dp_stream *st, json_t **out)
{
	struct stored s[STORED];
	unsigned n;
	int rc = stored_get(dp, st, s, &n);

	*out = NULL;
	if (rc)
		return rc;
	*out = json_array();
	for (unsigned i = 0; i < n; i++) {
		char *b = vr_hsm_b64(s[i].blob, s[i].n);

		if (!b) {
			json_decref(*out);
			*out = NULL;
			return -ENOMEM;
		}
		json_array_append_new(*out,
		                      json_pack("{s:i, s:s}", "key_id", (int)s[i].id, "blob", b));
		free(b);
	}
	return 0;
}

/*
 * A receiver installs key `id` of a key record (or of control, K1): unwrapped, stored, then
 * published as the current key; the current one becomes the previous, and the previous one is
 * freed after a grace period of the worker. 0, or -errno with err.
 */
int
dp_keys_install(struct dp *dp, struct dp_stream *st, uint32_t id, const uint8_t *blob, size_t n,
                char *err, size_t err_n)
{
	struct dp_key *k, *cur = atomic_load(&st->key), *old;
	uint8_t key[DP_KEY_SIZE];
	int rc;

	if (cur && id <= cur->id) {
		snprintf(err, err_n, "key %u is not newer than the stream's key %u", id, cur->id);
		return -EALREADY;
	}
	if (!n || n > VR_WIRE_KEYREC_MAX_BLOB) {
		snprintf(err, err_n, "a wrapped key is 1..%d bytes", VR_WIRE_KEYREC_MAX_BLOB);
		return -EINVAL;
	}
	rc = unwrap(dp, st, id, blob, n, key, err, err_n);
	if (rc)
		return rc;
	k = dp_key_new(dp, st, id, key, st->origin, err, err_n);
	explicit_bzero(key, sizeof(key));
	if (!k)
		return -EIO;
	rc = stored_put(dp, st, id, blob, n);
	if (rc) {
		snprintf(err, err_n, "cannot store the key: %s", vr_rec_strerror(rc));
		dp_key_free(dp, k);
		return rc;
	}
	old = dp_key_push(st, k);
	if (old) {
		rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
		dp_key_free(dp, old);
	}
	return 0;
}

/* The origin's next key, with its records for the members; NULL with err. */
struct dp_rekey *
dp_keys_next(struct dp *dp, struct dp_stream *st, char *err, size_t err_n)
{
	struct dp_key *cur = atomic_load(&st->key);
	struct dp_rekey *rk = calloc(1, sizeof(*rk));
	struct stored s[STORED];
	unsigned n = 0;
	uint32_t id = cur ? cur->id : 0;

	if (!rk) {
		snprintf(err, err_n, "out of memory");
		return NULL;
	}
	/* Above every key ever stored: a key id is never made twice for a stream. */
	if (stored_get(dp, st, s, &n) == 0 && n && s[n - 1].id > id)
		id = s[n - 1].id;
	if (id == UINT32_MAX) {
		snprintf(err, err_n, "the stream's key ids are used up");
		free(rk);
		return NULL;
	}
	rk->key = make(dp, st, id + 1, rk, err, err_n);
	if (!rk->key) {
		free(rk);
		return NULL;
	}
	return rk;
}

int
dp_msg_to_worker(struct dp *dp, struct dp_msg *m)
{
	return rte_ring_enqueue(dp->to_worker[m->st->worker], m);
}

int
dp_msg_to_ctl(struct dp *dp, struct dp_msg *m)
{
	uint64_t one = 1;

	if (rte_ring_enqueue(dp->to_ctl, m))
		return -ENOBUFS;
	if (write(dp->ctl_wake, &one, sizeof(one)) < 0) {
		/* the counter is full: the control thread is already woken */
	}
	return 0;
}
