/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vault verify: a vault's digest at its primary and at each replica, compared, and what
 * differs named.
 *
 * A site's digest of a vault is the node (vr_merkle.h) over two RFC 6962 roots:
 *   keys  every version of every key the HSM agent holds in the vault's partition, sorted by
 *         name, then version; a leaf covers the name, the version and the stored blob (the
 *         version under the vault's masking key: the bytes the WAL carried to the replica)
 *   WAL   the vault's WAL records, from the first the primary's log still holds to the last
 *         that both sites hold, hashed by each site's dataplane (stream.digest)
 * Keys are compared leaf by leaf (a vault holds few). WAL roots that differ are narrowed, at
 * most VERIFY_CHUNKS chunk roots a call, down to the first record that differs.
 *
 * A replica that is behind is not a difference: its WAL is compared as far as it goes and the
 * lag is named; its keys are compared as they stand (a key change not yet applied shows as a
 * difference, with the lag beside it to explain it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "vr_hsm.h"
#include "vr_merkle.h"

#define fail vr_hsm_error
#define ok   vr_hsm_ok

enum { VERIFY_CHUNKS = 4096, EXPORT_MAX = 4096 };

/* The smallest power of two that cuts n records into at most VERIFY_CHUNKS chunks. */
static json_int_t
chunk_for(json_int_t n)
{
	json_int_t c = 1;

	while ((n + c - 1) / c > VERIFY_CHUNKS)
		c <<= 1;
	return c;
}

struct kv {
	const char *name;
	json_int_t version;
};

static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int d = strcmp(x->name, y->name);

	return d ? d : (x->version > y->version) - (x->version < y->version);
}

/* The leaves of n keys (one key.export): their hashes into hashes, {key, version, hash} into out.
 */
static json_t *
hash_keys(struct ctl *c, const char *hv, const struct kv *kv, size_t n, json_t *out,
          uint8_t *hashes)
{
	json_t *req = json_array(), *err = NULL, *r, *blobs;
	char hex[VR_MERKLE_HEX];

	for (size_t i = 0; i < n; i++)
		json_array_append_new(
		    req, json_pack("{s:s, s:I}", "name", kv[i].name, "version", kv[i].version));
	r = ctl_hsm(c, json_pack("{s:s, s:s, s:o}", "op", "key.export", "vault", hv, "keys", req),
	            &err);
	if (!r)
		return err;
	blobs = json_object_get(r, "blobs");
	for (size_t i = 0; i < n; i++) {
		uint8_t *raw = NULL;
		size_t size = 0;

		if (vr_hsm_unb64(json_string_value(json_array_get(blobs, i)), &raw, &size)) {
			json_decref(r);
			return fail(EPROTO, "the HSM agent gave no blob for key %s version %lld",
			            kv[i].name, (long long)kv[i].version);
		}
		vr_merkle_key(kv[i].name, (uint64_t)kv[i].version, raw, size,
		              hashes + i * VR_MERKLE_SIZE);
		free(raw);
		vr_merkle_hex(hashes + i * VR_MERKLE_SIZE, hex);
		json_array_append_new(out, json_pack("{s:s, s:I, s:s}", "key", kv[i].name,
		                                     "version", kv[i].version, "hash", hex));
	}
	json_decref(r);
	return NULL;
}

/* This site's keys of vault v: {keys: [{key, version, hash}], root}; NULL with *errp. */
static json_t *
keys_digest(struct ctl *c, json_t *v, json_t **errp)
{
	json_t *r, *k, *ver, *out = json_array();
	char hv[48], hex[VR_MERKLE_HEX];
	struct kv *kv = NULL;
	uint8_t *hashes = NULL;
	vr_merkle_t root;
	size_t i, j, n = 0;

	ctl_hsm_vault(hv, v);
	r = ctl_hsm(c, json_pack("{s:s, s:s}", "op", "key.list", "vault", hv), errp);
	if (!r) {
		json_decref(out);
		return NULL;
	}
	json_array_foreach(json_object_get(r, "keys"), i, k) n +=
	    json_array_size(json_object_get(k, "versions"));
	kv = calloc(n ? n : 1, sizeof(*kv));
	hashes = malloc((n ? n : 1) * VR_MERKLE_SIZE);
	if (!kv || !hashes) {
		*errp = fail(ENOMEM, "out of memory");
		goto out;
	}
	n = 0;
	json_array_foreach(json_object_get(r, "keys"), i, k)
	{
		json_array_foreach(json_object_get(k, "versions"), j, ver)
		{
			kv[n].name = json_string_value(json_object_get(k, "name"));
			kv[n++].version = json_integer_value(ver);
		}
	}
	qsort(kv, n, sizeof(*kv), kv_cmp);
	for (i = 0; i < n; i += EXPORT_MAX)
		if ((*errp = hash_keys(c, hv, kv + i, n - i < EXPORT_MAX ? n - i : EXPORT_MAX, out,
		                       hashes + i * VR_MERKLE_SIZE)))
			goto out;
	vr_merkle_root(hashes, n, root);
	vr_merkle_hex(root, hex);
out:
	free(kv);
	free(hashes);
	json_decref(r);
	if (*errp) {
		json_decref(out);
		return NULL;
	}
	return json_pack("{s:o, s:s}", "keys", out, "root", hex);
}

/* This site's dataplane digest of v's WAL, records from..to (to 0: its last) in chunks. */
static json_t *
wal_digest(struct ctl *c, json_t *v, json_int_t from, json_int_t to, json_int_t chunk,
           json_t **errp)
{
	json_t *req = ctl_stream_op(v, "stream.digest");

	json_object_set_new(req, "from", json_integer(from));
	json_object_set_new(req, "chunk", json_integer(chunk));

	if (to)
		json_object_set_new(req, "to", json_integer(to));
	return ctl_dp(c, req, errp);
}

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* The vault's digest: node(keys root, WAL root), hex. */
static void
vault_root(json_t *keys, json_t *wal, char out[VR_MERKLE_HEX])
{
	vr_merkle_t k, w, root;

	if (vr_merkle_unhex(str(keys, "root"), k) || vr_merkle_unhex(str(wal, "root"), w)) {
		snprintf(out, VR_MERKLE_HEX, "-");
		return;
	}
	vr_merkle_node(k, w, root);
	vr_merkle_hex(root, out);
}

/*
 * link.verify (at a replica, asked by its primary): account, name, from, [to], chunk,
 * [keys: false] -> keys {keys, root} (unless keys is false), wal (stream.digest's answer),
 * applied_lsn, status.
 */
json_t *
op_link_verify(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v = ctl_replica_arg(c, who, req, &err), *res, *part;
	uint64_t from, to = 0, chunk;

	if (!v)
		return err;
	if (ctl_arg_uint(req, "from", INT64_MAX, &from, &err) ||
	    ctl_arg_uint(req, "chunk", INT64_MAX, &chunk, &err) ||
	    (json_object_get(req, "to") && ctl_arg_uint(req, "to", INT64_MAX, &to, &err))) {
		json_decref(v);
		return err;
	}
	if (!c->conf.dp[0]) {
		json_decref(v);
		return fail(ENOTSUP, "this site has no dataplane ([site] dataplane)");
	}
	res = json_object();
	json_object_set(res, "applied_lsn", json_object_get(v, "applied_lsn"));
	json_object_set(res, "status", json_object_get(v, "status"));
	if (!json_is_false(json_object_get(req, "keys"))) {
		if (!(part = keys_digest(c, v, &err)))
			goto fail;
		json_object_set_new(res, "keys", part);
	}
	if (!(part = wal_digest(c, v, (json_int_t)from, (json_int_t)to, (json_int_t)chunk, &err)))
		goto fail;
	json_object_set_new(res, "wal", part);
	json_decref(v);
	return ok(res);
fail:
	json_decref(res);
	json_decref(v);
	return err;
}

/* Differences of two sorted key lists, each a line naming the key and the version. */
static void
compare_keys(unsigned site, json_t *mine, json_t *theirs, json_t *diffs)
{
	size_t i = 0, j = 0, n = json_array_size(mine), m = json_array_size(theirs);
	char line[400];

	while (i < n || j < m) {
		json_t *a = json_array_get(mine, i), *b = json_array_get(theirs, j);
		struct kv x = {str(a, "key"), json_integer_value(json_object_get(a, "version"))},
		          y = {str(b, "key"), json_integer_value(json_object_get(b, "version"))};
		int d = i == n ? 1 : j == m ? -1 : kv_cmp(&x, &y);

		if (d < 0)
			snprintf(line, sizeof(line), "site %u: key %s version %lld is missing",
			         site, x.name, (long long)x.version);
		else if (d > 0)
			snprintf(line, sizeof(line),
			         "site %u: key %s version %lld is there only, not at the primary",
			         site, y.name, (long long)y.version);
		else if (strcmp(str(a, "hash"), str(b, "hash")))
			snprintf(line, sizeof(line), "site %u: key %s version %lld differs", site,
			         x.name, (long long)x.version);
		else
			line[0] = 0;
		if (line[0])
			json_array_append_new(diffs, json_string(line));
		i += d <= 0;
		j += d >= 0;
	}
}

/* The first index at which two arrays of hex strings differ (*n_diff: how many do); -1: none. */
static long
first_diff(json_t *a, json_t *b, size_t *n_diff)
{
	size_t n =
	    json_array_size(a) > json_array_size(b) ? json_array_size(a) : json_array_size(b);
	long first = -1;

	*n_diff = 0;
	for (size_t i = 0; i < n; i++) {
		const char *x = json_string_value(json_array_get(a, i)),
		           *y = json_string_value(json_array_get(b, i));

		if (!x || !y || strcmp(x, y)) {
			(*n_diff)++;
			if (first < 0)
				first = (long)i;
		}
	}
	return first;
}

/*
 * The WAL digests of both sites differ: narrow it down, chunk by chunk, to the first record
 * that differs. mine and theirs are stream.digest answers over the same range; *n_diff: how
 * many of their chunks differ. The LSN, or 0 with *errp.
 */
static json_int_t
narrow(struct ctl *c, json_t *v, unsigned site, json_t *mine, json_t *theirs, size_t *n_diff,
       json_t **errp)
{
	json_int_t from = json_integer_value(json_object_get(mine, "from")),
	           to = json_integer_value(json_object_get(mine, "to")),
	           chunk = json_integer_value(json_object_get(mine, "chunk"));
	json_t *m = json_incref(mine), *t = json_incref(theirs);
	json_int_t lsn = 0;

	for (int depth = 0; depth < 8 && chunk >= 1; depth++) {
		size_t n;
		long i = first_diff(json_object_get(m, "chunks"), json_object_get(t, "chunks"), &n);

		if (!depth)
			*n_diff = n;
		if (i < 0) {
			*errp = fail(EAGAIN,
			             "the WAL's roots differ but none of its chunks do; try again");
			break;
		}
		from += (json_int_t)i * chunk;
		if (chunk == 1) {
			lsn = from;
			break;
		}
		to = from + chunk - 1 < to ? from + chunk - 1 : to;
		chunk = chunk_for(to - from + 1);
		json_decref(m);
		json_decref(t);
		t = NULL;
		m = wal_digest(c, v, from, to, chunk, errp);
		if (m) {
			json_t *r = ctl_peer_call(
			    c, site,
			    json_pack("{s:s, s:O, s:O, s:I, s:I, s:I, s:b}", "op", "link.verify",
			              "account", json_object_get(v, "account"), "name",
			              json_object_get(v, "name"), "from", from, "to", to, "chunk",
			              chunk, "keys", 0),
			    errp);

			t = r ? json_incref(json_object_get(r, "wal")) : NULL;
			json_decref(r);
		}
		if (!m || !t)
			break;
	}
	json_decref(m);
	json_decref(t);
	return lsn;
}

/* One replica against this site (the primary): its row of the table; lines into diffs. */
static json_t *
compare_site(struct ctl *c, json_t *v, unsigned site, json_t *keys, json_t *wal, json_t *diffs)
{
	json_int_t from = json_integer_value(json_object_get(wal, "from")),
	           to = json_integer_value(json_object_get(wal, "to")),
	           chunk = json_integer_value(json_object_get(wal, "chunk")), their_to;
	json_t *err = NULL, *r, *tw, *mw = json_incref(wal), *row;
	size_t before = json_array_size(diffs);
	char line[400], root[VR_MERKLE_HEX];

	row = json_pack("{s:i, s:s}", "site", (int)site, "role", "replica");
	r = ctl_peer_call(c, site,
	                  json_pack("{s:s, s:O, s:O, s:I, s:I, s:I}", "op", "link.verify",
	                            "account", json_object_get(v, "account"), "name",
	                            json_object_get(v, "name"), "from", from, "to", to, "chunk",
	                            chunk),
	                  &err);
	if (!r) {
		snprintf(line, sizeof(line), "site %u: not verified: %s", site, str(err, "error"));
		json_array_append_new(diffs, json_string(line));
		json_object_set_new(row, "match", json_false());
		json_decref(err);
		json_decref(mw);
		return row;
	}
	tw = json_object_get(r, "wal");
	their_to = json_integer_value(json_object_get(tw, "to"));
	json_object_set_new(row, "keys",
	                    json_integer((json_int_t)json_array_size(
	                        json_object_get(json_object_get(r, "keys"), "keys"))));
	json_object_set_new(row, "from", json_integer(from));
	json_object_set_new(row, "to", json_integer(their_to));
	json_object_set(row, "applied_lsn", json_object_get(r, "applied_lsn"));
	json_object_set_new(row, "behind", json_integer(to - their_to));
	compare_keys(site, json_object_get(keys, "keys"),
	             json_object_get(json_object_get(r, "keys"), "keys"), diffs);
	/* Behind: this site's digest over as much as the replica holds. */
	if (their_to < to && their_to >= from) {
		json_decref(mw);
		mw = wal_digest(c, v, from, their_to, chunk, &err);
	}
	if (!mw) {
		snprintf(line, sizeof(line), "site %u: WAL not compared: %s", site,
		         str(err, "error"));
		json_array_append_new(diffs, json_string(line));
		json_decref(err);
	} else if (strcmp(str(mw, "root"), str(tw, "root"))) {
		size_t n_diff = 0;
		json_int_t lsn = narrow(c, v, site, mw, tw, &n_diff, &err);

		if (lsn && chunk == 1)
			snprintf(
			    line, sizeof(line),
			    "site %u: WAL record %lld is the first that differs (%zu of the %zu "
			    "records from LSN %lld differ)",
			    site, (long long)lsn, n_diff,
			    json_array_size(json_object_get(mw, "chunks")), (long long)from);
		else if (lsn)
			snprintf(line, sizeof(line),
			         "site %u: WAL record %lld is the first that differs (%zu of %zu "
			         "chunks of %lld records from LSN %lld differ)",
			         site, (long long)lsn, n_diff,
			         json_array_size(json_object_get(mw, "chunks")), (long long)chunk,
			         (long long)from);
		else
			snprintf(line, sizeof(line), "site %u: WAL differs (LSN %lld..%lld): %s",
			         site, (long long)from, (long long)their_to, str(err, "error"));
		json_array_append_new(diffs, json_string(line));
		json_decref(err);
	}
	vault_root(json_object_get(r, "keys"), tw, root);
	json_object_set_new(row, "root", json_string(root));
	json_object_set_new(row, "match", json_boolean(json_array_size(diffs) == before));
	if (to > their_to) {
		snprintf(line, sizeof(line),
		         "site %u holds the WAL to LSN %lld of %lld and has applied %lld: compared "
		         "as far as it goes",
		         site, (long long)their_to, (long long)to,
		         (long long)json_integer_value(json_object_get(r, "applied_lsn")));
		json_object_set_new(row, "note", json_string(line));
	}
	json_decref(mw);
	json_decref(r);
	return row;
}

/*
 * vault.verify: account, name, [site] -> the vault's digest here (root, from, to, keys), a row
 * per site (sites), match, and differences: one line for each thing that differs.
 */
json_t *
op_vault_verify(struct ctl *c, const struct ctl_who *who, json_t *req)
{
	json_t *err = NULL, *v, *st = NULL, *keys = NULL, *wal = NULL, *sites, *diffs, *r, *res;
	uint64_t account, only = 0;
	json_int_t from, to;
	const char *name;
	char root[VR_MERKLE_HEX];
	size_t i;

	if (!(v = ctl_vault_arg(c, req, "name", &account, &name, &err)))
		return err;
	if (json_object_get(req, "site") && ctl_arg_uint(req, "site", 65535, &only, &err))
		goto out;
	if (strcmp(str(v, "role"), "primary")) {
		err =
		    fail(EREMOTE, "vault %s is a replica here: verify it at its primary, site %lld",
		         name, (long long)json_integer_value(json_object_get(v, "primary")));
		goto out;
	}
	if (!c->conf.dp[0]) {
		err = fail(ENOTSUP, "verify needs this site's dataplane ([site] dataplane)");
		goto out;
	}
	st = ctl_dp(c,
	            json_pack("{s:s, s:O, s:O}", "op", "stream.show", "account",
	                      json_object_get(v, "account"), "vault", json_object_get(v, "id")),
	            &err);
	if (!st)
		goto out;
	from = json_integer_value(json_object_get(st, "trim_lsn")) + 1;
	to = json_integer_value(json_object_get(st, "durable_lsn"));
	if (!(keys = keys_digest(c, v, &err)) ||
	    !(wal = wal_digest(c, v, from, to, chunk_for(to - from + 1), &err)))
		goto out;
	vault_root(keys, wal, root);
	sites =
	    json_pack("[{s:i, s:s, s:I, s:I, s:I, s:s, s:b}]", "site", (int)c->conf.site, "role",
	              "primary", "keys", (json_int_t)json_array_size(json_object_get(keys, "keys")),
	              "from", from, "to", to, "root", root, "match", 1);
	diffs = json_array();
	json_array_foreach(json_object_get(v, "replicas"), i, r)
	{
		unsigned site = (unsigned)json_integer_value(json_object_get(r, "site"));

		if (only && site != only)
			continue;
		json_array_append_new(sites, compare_site(c, v, site, keys, wal, diffs));
	}
	if (only && json_array_size(sites) == 1) {
		json_decref(sites);
		json_decref(diffs);
		err = fail(ENOENT, "vault %s has no replica at site %llu", name,
		           (unsigned long long)only);
		goto out;
	}
	res = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:b, s:o, s:o}", "vault", name, "account",
	                (json_int_t)account, "root", root, "from", from, "to", to, "keys",
	                (json_int_t)json_array_size(json_object_get(keys, "keys")), "match",
	                !json_array_size(diffs), "sites", sites, "differences", diffs);
	json_decref(st);
	json_decref(keys);
	json_decref(wal);
	json_decref(v);
	return ok(res);
out:
	json_decref(st);
	json_decref(keys);
	json_decref(wal);
	json_decref(v);
	return err;
}
