// SPDX-License-Identifier: BSD-3-Clause
/*
 * The agent's operations (list and arguments in vr_hsm.h). Each takes the request object and
 * returns the response object; every failure is a status errno plus a sentence that says what
 * was wrong, and a partition that fails half-way through creation is wiped and returned to the
 * free pool, so no half-made vault or orphaned token is left.
 *
 * Objects, by label:
 *   vault token  "kek"              RSA-3072 pair: the partition's key-encryption key. A replica
 *                                   receives its masking key wrapped under this public key
 *                                   (PKCS#11 unwraps into the token that holds the private key,
 *                                   so the pair must live in the partition itself).
 *                "masking"          AES-256: trusted, made by the SO (see p11.h VR_P11_PUBLIC)
 *                "peer/<hash>"      trusted peer partition KEKs the masking key may go to
 *   vault keys   each version is a blob wrapped under the masking key in the key store
 *                (keystore.c); in use, a session object "vk/<name>/<v>" unwrapped from it:
 *                AES-256, extractable only wrap-with-trusted, so only under the masking key
 *   site token   "site/<shard>/<v>" RSA-3072 site key-encryption key pairs, per shard, versioned
 *                "peer/<site>"      trusted peer site KEKs (payload keys go to them)
 *                "payload/<id>"     payload keys
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>

#include "vr_hsm.h"
#include "vr_msg.h"
#include "agent.h"

enum { RSA_BITS = 3072, BLOB_MAX = 1024, DATA_MAX = 256 * 1024 };

static const char SITE_LABEL[] = "vaultrep-site", FREE_LABEL[] = "vaultrep-free";

#define fail vr_hsm_error
#define ok   vr_hsm_ok

/* Names of vaults, keys, shards, peers: 1..48 of [A-Za-z0-9._-]. */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 48)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* A required name argument, or NULL with *err set. */
static const char *
arg_name(json_t *req, const char *key, json_t **err)
{
	const char *s = json_string_value(json_object_get(req, key));

	if (!s)
		*err = fail(EINVAL, "missing string argument \"%s\"", key);
	else if (!name_ok(s))
		*err = fail(EINVAL, "\"%s\" must be 1-48 characters of [A-Za-z0-9._-]", key);
	else
		return s;
	return NULL;
}

/* A required base64 argument (at most max bytes decoded). */
static int
arg_bytes(json_t *req, const char *key, size_t max, uint8_t **out, size_t *n, json_t **err)
{
	const char *s = json_string_value(json_object_get(req, key));

	if (!s) {
		*err = fail(EINVAL, "missing base64 argument \"%s\"", key);
		return -EINVAL;
	}
	if (vr_hsm_unb64(s, out, n)) {
		*err = fail(EINVAL, "\"%s\" is not valid base64", key);
		return -EINVAL;
	}
	if (*n > max) {
		free(*out);
		*err = fail(EMSGSIZE, "\"%s\" is %zu bytes, more than %zu", key, *n, max);
		return -EMSGSIZE;
	}
	return 0;
}

/* A required positive integer argument. */
static long long
arg_version(json_t *req, const char *key, json_t **err)
{
	json_t *v = json_object_get(req, key);

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000) {
		*err = fail(EINVAL, "\"%s\" must be an integer from 1 to 1000000", key);
		return -1;
	}
	return json_integer_value(v);
}

static void
set_b64(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	char *s = vr_hsm_b64(p, n);

	json_object_set_new(o, key, s ? json_string(s) : json_null());
	free(s);
}

/* RFC 7512 URI of a token, or of an object on it (label, class). */
static char *
uri(const char *token_label, const char *serial, const char *label, CK_OBJECT_CLASS cls)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	char *s = NULL;

	if (!u)
		return NULL;
	ti = p11_kit_uri_get_token_info(u);
	memset(ti->label, ' ', sizeof(ti->label));
	memcpy(ti->label, token_label, strlen(token_label));
	memset(ti->serialNumber, ' ', sizeof(ti->serialNumber));
	memcpy(ti->serialNumber, serial, strlen(serial));
	if (label) {
		CK_ATTRIBUTE a = {CKA_LABEL, (void *)(uintptr_t)label, strlen(label)};
		CK_ATTRIBUTE c = {CKA_CLASS, &cls, sizeof(cls)};

		p11_kit_uri_set_attribute(u, &a);
		p11_kit_uri_set_attribute(u, &c);
	}
	if (p11_kit_uri_format(u, label ? P11_KIT_URI_FOR_OBJECT_ON_TOKEN : P11_KIT_URI_FOR_TOKEN,
	                       &s) != P11_KIT_URI_OK)
		s = NULL;
	p11_kit_uri_free(u);
	return s;
}

static void
set_uri(json_t *o, const char *key, const char *token_label, const char *serial, const char *label,
        CK_OBJECT_CLASS cls)
{
	char *s = uri(token_label, serial, label, cls);

	json_object_set_new(o, key, s ? json_string(s) : json_null());
	free(s);
}

/* A token the agent holds, with its open user session. */
struct tok {
	const char *serial, *so_pin, *user_pin;
	char label[33];
	CK_SESSION_HANDLE s;
};

static void
vault_label(const char *vault, char out[33])
{
	snprintf(out, 33, "vr-%.29s", vault);
}

/* The cached user session of a token (opened and logged in on first use). */
static int
tok_open(struct agent *a, json_t *entry, struct tok *t)
{
	json_t *cached;
	int rc;

	t->serial = json_string_value(json_object_get(entry, "serial"));
	t->so_pin = json_string_value(json_object_get(entry, "so_pin"));
	t->user_pin = json_string_value(json_object_get(entry, "user_pin"));
	if (!t->serial || !t->so_pin || !t->user_pin)
		return -EINVAL;
	cached = json_object_get(a->sessions, t->serial);
	if (cached) {
		t->s = (CK_SESSION_HANDLE)json_integer_value(cached);
		return 0;
	}
	rc = vr_p11_login(a->p11, t->serial, CKU_USER, t->user_pin, &t->s);
	if (!rc)
		json_object_set_new(a->sessions, t->serial, json_integer((json_int_t)t->s));
	return rc;
}

static void
tok_forget(struct agent *a, const char *serial)
{
	json_t *cached = json_object_get(a->sessions, serial);

	json_object_clear(a->cache); /* its session objects go with the session */
	if (cached) {
		vr_p11_session_close(a->p11, (CK_SESSION_HANDLE)json_integer_value(cached));
		json_object_del(a->sessions, serial);
	}
}

void
vr_agent_sessions_close(struct agent *a)
{
	const char *serial;
	json_t *v;

	json_object_clear(a->cache);
	json_object_foreach(a->sessions, serial, v)
	    vr_p11_session_close(a->p11, (CK_SESSION_HANDLE)json_integer_value(v));
	json_object_clear(a->sessions);
}

/* Runs the SO-only step fn between a relogin as SO and one back as user. */
static int
as_so(struct agent *a, struct tok *t, int (*fn)(struct agent *, struct tok *, void *), void *arg)
{
	int rc, rc2;

	/* Logging out destroys this token's private session objects: forget their handles. */
	json_object_clear(a->cache);
	rc = vr_p11_relogin(a->p11, t->s, CKU_SO, t->so_pin);
	if (rc)
		return rc;
	rc = fn(a, t, arg);
	rc2 = vr_p11_relogin(a->p11, t->s, CKU_USER, t->user_pin);
	return rc ? rc : rc2;
}

/*
 * vr_p11_find with the handle cached: SoftHSMv2 reads every token object to answer a find.
 * Entries go when the cache is emptied (session closed, user changed) or by forget().
 */
static int
find_cached(struct agent *a, struct tok *t, CK_OBJECT_CLASS cls, const char *label,
            CK_OBJECT_HANDLE *o)
{
	char ck[200];
	json_t *c;
	int rc;

	snprintf(ck, sizeof(ck), "o\x1f%s\x1f%lu\x1f%s", t->serial, (unsigned long)cls, label);
	c = json_object_get(a->cache, ck);
	if (c) {
		*o = (CK_OBJECT_HANDLE)json_integer_value(c);
		return 0;
	}
	rc = vr_p11_find(a->p11, t->s, cls, label, o);
	if (!rc)
		json_object_set_new(a->cache, ck, json_integer((json_int_t)*o));
	return rc;
}

/* Destroys a token object found through find_cached, and its cache entry. */
static int
destroy_cached(struct agent *a, struct tok *t, CK_OBJECT_CLASS cls, const char *label)
{
	CK_OBJECT_HANDLE o;
	char ck[200];
	int rc = find_cached(a, t, cls, label, &o);

	if (rc)
		return rc;
	snprintf(ck, sizeof(ck), "o\x1f%s\x1f%lu\x1f%s", t->serial, (unsigned long)cls, label);
	json_object_del(a->cache, ck);
	return vr_p11_destroy(a->p11, t->s, o);
}

static int masking(struct agent *a, struct tok *t, CK_OBJECT_HANDLE *mk);

static json_t *
vault_entry(struct agent *a, const char *vault)
{
	return json_object_get(json_object_get(a->state, "vaults"), vault);
}

/*
 * The versions of "<prefix><v>" token objects (site keys; low versions may be gone after
 * site.retire): lists every object of the class. Site keys change rarely, so the listing's cost
 * does not matter there.
 */
static int
versions_listed(struct agent *a, struct tok *t, CK_OBJECT_CLASS cls, const char *prefix, long *max,
                size_t *count)
{
	char **labels;
	size_t n;
	int rc = vr_p11_labels(a->p11, t->s, cls, prefix, &labels, &n);

	*max = 0;
	*count = 0;
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		char *end;
		long v = strtol(labels[i] + strlen(prefix), &end, 10);

		if (*end == 0 && v > 0) {
			if (v > *max)
				*max = v;
			(*count)++;
		}
		free(labels[i]);
	}
	free(labels);
	return 0;
}

/* --- partitions --- */

static int
make_masking(struct agent *a, struct tok *t, void *arg)
{
	CK_OBJECT_HANDLE k;

	return vr_p11_aes_generate(
	    a->p11, t->s, "masking",
	    VR_P11_WRAPPING | VR_P11_EXTRACTABLE | VR_P11_TRUSTED | VR_P11_PUBLIC, &k);
}

/* Wipes a token and puts it in the free pool (state saved by the caller). */
static int
release_token(struct agent *a, const char *serial, const char *so_pin)
{
	int rc;

	tok_forget(a, serial);
	rc = vr_p11_token_wipe(a->p11, serial, so_pin, FREE_LABEL);
	if (!rc)
		json_array_append_new(json_object_get(a->state, "free"),
		                      json_pack("{s:s, s:s}", "serial", serial, "so_pin", so_pin));
	return rc;
}

static json_t *
op_vault_create(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *entry, *res, *free_list = json_object_get(a->state, "free");
	const char *vault = arg_name(req, "vault", &err);
	bool replica = json_is_true(json_object_get(req, "replica"));
	char so_pin[33], user_pin[33], serial[17], label[33];
	CK_OBJECT_HANDLE pub, priv;
	uint8_t *der = NULL;
	struct tok t;
	size_t n;
	int rc;

	if (!vault)
		return err;
	if (vault_entry(a, vault))
		return fail(EEXIST, "vault %s already has a partition", vault);
	vault_label(vault, label);
	if (vr_agent_pin(user_pin))
		return fail(EIO, "no randomness for a PIN");
	if (json_array_size(free_list)) {
		json_t *f = json_array_get(free_list, 0);

		snprintf(serial, sizeof(serial), "%s",
		         json_string_value(json_object_get(f, "serial")));
		snprintf(so_pin, sizeof(so_pin), "%s",
		         json_string_value(json_object_get(f, "so_pin")));
		rc = vr_p11_token_wipe(a->p11, serial, so_pin, label);
		if (!rc)
			rc = vr_p11_set_user_pin(a->p11, serial, so_pin, user_pin);
		/* It leaves the pool only once it is ours: a failed reset keeps it there. */
		if (!rc)
			json_array_remove(free_list, 0);
	} else {
		if (vr_agent_pin(so_pin))
			return fail(EIO, "no randomness for a PIN");
		rc = vr_p11_token_create(a->p11, label, so_pin, user_pin, serial);
	}
	if (rc) {
		vr_agent_state_save(a);
		return fail(-rc,
		            rc == -ENOSPC ? "the HSM has no free partition left"
		                          : "cannot initialise a partition: %s",
		            strerror(-rc));
	}
	entry = json_pack("{s:s, s:s, s:s, s:b}", "serial", serial, "so_pin", so_pin, "user_pin",
	                  user_pin, "replica", replica);
	rc = tok_open(a, entry, &t);
	if (!rc)
		rc = vr_p11_rsa_generate(a->p11, t.s, "kek", RSA_BITS, &pub, &priv);
	if (!rc && !replica)
		rc = as_so(a, &t, make_masking, NULL);
	if (!rc)
		rc = vr_p11_rsa_public_der(a->p11, t.s, pub, &der, &n);
	if (!rc) {
		json_object_set(json_object_get(a->state, "vaults"), vault, entry);
		rc = vr_agent_state_save(a);
		if (rc)
			json_object_del(json_object_get(a->state, "vaults"), vault);
	}
	if (rc) {
		/* Roll back: nothing of this vault stays. */
		release_token(a, serial, so_pin);
		vr_agent_state_save(a);
		json_decref(entry);
		free(der);
		return fail(-rc, "cannot create the partition of vault %s: %s", vault,
		            strerror(-rc));
	}
	res = json_object();
	set_uri(res, "token", label, serial, NULL, 0);
	json_object_set_new(res, "serial", json_string(serial));
	set_b64(res, "kek", der, n);
	json_object_set_new(res, "replica", json_boolean(replica));
	json_decref(entry);
	free(der);
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(user_pin, sizeof(user_pin));
	return ok(res);
}

static json_t *
op_vault_list(struct agent *a, json_t *req, uid_t uid)
{
	json_t *list = json_array(), *e;
	const char *vault;

	json_object_foreach(json_object_get(a->state, "vaults"), vault, e)
	{
		json_t *v = json_object();
		char label[33];
		const char *serial = json_string_value(json_object_get(e, "serial"));

		vault_label(vault, label);
		json_object_set_new(v, "vault", json_string(vault));
		set_uri(v, "token", label, serial, NULL, 0);
		json_object_set_new(v, "serial", json_string(serial));
		json_object_set(v, "replica", json_object_get(e, "replica"));
		json_array_append_new(list, v);
	}
	return ok(json_pack("{s:o, s:i}", "vaults", list, "free",
	                    (int)json_array_size(json_object_get(a->state, "free"))));
}

static json_t *
op_vault_delete(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *e;
	const char *vault = arg_name(req, "vault", &err);
	char serial[17], so_pin[33];
	int rc;

	if (!vault)
		return err;
	e = vault_entry(a, vault);
	if (!e)
		return fail(ENOENT, "no vault %s", vault);
	snprintf(serial, sizeof(serial), "%s", json_string_value(json_object_get(e, "serial")));
	snprintf(so_pin, sizeof(so_pin), "%s", json_string_value(json_object_get(e, "so_pin")));
	rc = vr_keystore_delete(a->ks, vault, NULL);
	if (!rc)
		rc = release_token(a, serial, so_pin);
	if (rc)
		return fail(-rc, "cannot delete the partition of vault %s: %s", vault,
		            strerror(-rc));
	json_object_del(json_object_get(a->state, "vaults"), vault);
	rc = vr_agent_state_save(a);
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	return rc ? fail(-rc, "partition wiped but the state was not saved: %s", strerror(-rc))
	          : ok(NULL);
}

/* The open token of a vault, or a response saying why not. */
static json_t *
vault_tok(struct agent *a, json_t *req, const char **vault, struct tok *t)
{
	json_t *err = NULL, *e;
	int rc;

	*vault = arg_name(req, "vault", &err);
	if (!*vault)
		return err;
	e = vault_entry(a, *vault);
	if (!e)
		return fail(ENOENT, "no vault %s", *vault);
	vault_label(*vault, t->label);
	rc = tok_open(a, e, t);
	if (rc)
		return fail(-rc, "cannot open the partition of vault %s: %s", *vault,
		            strerror(-rc));
	return NULL;
}

static bool
is_replica(struct agent *a, const char *vault)
{
	return json_is_true(json_object_get(vault_entry(a, vault), "replica"));
}

struct import_arg {
	const uint8_t *der;
	size_t n;
	const char *label;
	CK_OBJECT_HANDLE key;
};

static int
import_trusted(struct agent *a, struct tok *t, void *arg)
{
	struct import_arg *ia = arg;

	return vr_p11_rsa_public_import(a->p11, t->s, ia->der, ia->n, ia->label, true, &ia->key);
}

/* Finds, or imports as trusted, a peer public key in a token. */
static int
trusted_peer(struct agent *a, struct tok *t, const uint8_t *der, size_t n, const char *label,
             CK_OBJECT_HANDLE *key)
{
	struct import_arg ia = {der, n, label, 0};
	int rc = find_cached(a, t, CKO_PUBLIC_KEY, label, key);

	if (rc != -ENOENT)
		return rc;
	rc = as_so(a, t, import_trusted, &ia);
	if (!rc)
		rc = find_cached(a, t, CKO_PUBLIC_KEY, label, key);
	return rc;
}

static json_t *
op_masking_export(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *res;
	const char *vault;
	struct tok t;
	uint8_t *der, blob[BLOB_MAX], md[32];
	size_t n, blob_n = sizeof(blob);
	unsigned int mdn;
	char label[48];
	CK_OBJECT_HANDLE peer, mk;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	if (arg_bytes(req, "peer", 4096, &der, &n, &err))
		return err;
	EVP_Digest(der, n, md, &mdn, EVP_sha256(), NULL);
	snprintf(label, sizeof(label), "peer/%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
	         md[3], md[4], md[5], md[6], md[7]);
	rc = trusted_peer(a, &t, der, n, label, &peer);
	free(der);
	if (rc)
		return fail(-rc,
		            rc == -EINVAL ? "\"peer\" is not a DER RSA public key"
		                          : "cannot trust the peer key: %s",
		            strerror(-rc));
	rc = masking(a, &t, &mk);
	if (rc)
		return fail(-rc, "vault %s has no masking key", vault);
	rc = vr_p11_wrap(a->p11, t.s, VR_P11_WRAP_RSA, peer, mk, blob, &blob_n);
	if (rc)
		return fail(-rc, "cannot wrap the masking key: %s", strerror(-rc));
	res = json_object();
	set_b64(res, "blob", blob, blob_n);
	return ok(res);
}

static json_t *
op_masking_import(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL;
	const char *vault;
	struct tok t;
	uint8_t *blob;
	size_t n;
	CK_OBJECT_HANDLE kek, mk;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	if (!is_replica(a, vault))
		return fail(EPERM, "vault %s is a primary: it makes its own masking key", vault);
	if (vr_p11_find(a->p11, t.s, CKO_SECRET_KEY, "masking", &mk) == 0)
		return fail(EEXIST, "vault %s already has its masking key", vault);
	if (arg_bytes(req, "blob", BLOB_MAX, &blob, &n, &err))
		return err;
	rc = vr_p11_find(a->p11, t.s, CKO_PRIVATE_KEY, "kek", &kek);
	if (!rc)
		rc = vr_p11_unwrap(a->p11, t.s, VR_P11_WRAP_RSA, kek, blob, n, "masking",
		                   VR_P11_WRAPPING, &mk);
	free(blob);
	if (rc)
		return fail(-rc,
		            rc == -EBADMSG ? "the blob does not unwrap under this partition's KEK"
		                           : "cannot import the masking key: %s",
		            strerror(-rc));
	return ok(NULL);
}

/* --- vault keys --- */

/* The masking key of an open vault token (its handle is cached: a public token object). */
static int
masking(struct agent *a, struct tok *t, CK_OBJECT_HANDLE *mk)
{
	int rc = find_cached(a, t, CKO_SECRET_KEY, "masking", mk);

	return rc == -ENOENT ? -ENOKEY : rc;
}

static void
cache_key(char *out, size_t cap, const char *vault, const char *name, long version)
{
	snprintf(out, cap, "%s\x1f%s\x1f%ld", vault, name, version);
}

/* Unwraps a blob under the masking key into a session object and caches its handle. */
static int
key_load(struct agent *a, struct tok *t, const char *vault, const char *name, long version,
         const uint8_t *blob, size_t n, CK_OBJECT_HANDLE *k)
{
	char label[128], ck[200];
	CK_OBJECT_HANDLE mk;
	int rc = masking(a, t, &mk);

	if (rc)
		return rc;
	snprintf(label, sizeof(label), "vk/%s/%ld", name, version);
	rc = vr_p11_unwrap(a->p11, t->s, VR_P11_WRAP_AES, mk, blob, n, label,
	                   VR_P11_EXTRACTABLE | VR_P11_CRYPT | VR_P11_SESSION, k);
	if (rc)
		return rc;
	cache_key(ck, sizeof(ck), vault, name, version);
	json_object_set_new(a->cache, ck, json_integer((json_int_t)*k));
	return 0;
}

/* The session object of key name/version: from the cache, or unwrapped from the key store. */
static int
key_handle(struct agent *a, struct tok *t, const char *vault, const char *name, long version,
           CK_OBJECT_HANDLE *k)
{
	uint8_t blob[BLOB_MAX];
	size_t n = sizeof(blob);
	char ck[200];
	json_t *c;
	int rc;

	cache_key(ck, sizeof(ck), vault, name, version);
	c = json_object_get(a->cache, ck);
	if (c) {
		*k = (CK_OBJECT_HANDLE)json_integer_value(c);
		return 0;
	}
	rc = vr_keystore_get(a->ks, vault, name, version, blob, &n);
	return rc ? rc : key_load(a, t, vault, name, version, blob, n, k);
}

struct scan {
	long max;
	size_t count;
	json_t *list; /* versions, or NULL */
	json_t *keys; /* name -> [versions], or NULL */
};

static int
scan_one(const char *name, long version, void *arg)
{
	struct scan *sc = arg;

	if (version > sc->max)
		sc->max = version;
	sc->count++;
	if (sc->list)
		json_array_append_new(sc->list, json_integer(version));
	if (sc->keys) {
		if (!json_object_get(sc->keys, name))
			json_object_set_new(sc->keys, name, json_array());
		json_array_append_new(json_object_get(sc->keys, name), json_integer(version));
	}
	return 0;
}

static json_t *
key_make(struct agent *a, json_t *req, bool rotate)
{
	json_t *err = NULL, *res;
	const char *vault, *name;
	struct scan sc = {0};
	struct vr_keystore_batch *b;
	struct tok t;
	uint8_t blob[BLOB_MAX];
	size_t n = sizeof(blob);
	char label[128], ck[200];
	CK_OBJECT_HANDLE k, mk;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	if (!(name = arg_name(req, "name", &err)))
		return err;
	if (is_replica(a, vault))
		return fail(EROFS, "vault %s is a replica: change its keys at the primary", vault);
	rc = vr_keystore_scan(a->ks, vault, name, scan_one, &sc);
	if (rc)
		return fail(-rc, "cannot read the keys of vault %s", vault);
	if (!rotate && sc.count)
		return fail(EEXIST, "vault %s already has a key %s", vault, name);
	if (rotate && !sc.count)
		return fail(ENOENT, "vault %s has no key %s", vault, name);
	snprintf(label, sizeof(label), "vk/%s/%ld", name, sc.max + 1);
	rc = masking(a, &t, &mk);
	if (!rc)
		rc = vr_p11_aes_generate(a->p11, t.s, label,
		                         VR_P11_EXTRACTABLE | VR_P11_CRYPT | VR_P11_SESSION, &k);
	if (rc)
		return fail(-rc, "cannot generate key %s: %s", name, strerror(-rc));
	rc = vr_p11_wrap(a->p11, t.s, VR_P11_WRAP_AES, mk, k, blob, &n);
	b = rc ? NULL : vr_keystore_batch();
	if (!rc && !b)
		rc = -ENOMEM;
	if (!rc)
		rc = vr_keystore_batch_put(b, vault, name, sc.max + 1, blob, n);
	if (!rc) {
		rc = vr_keystore_commit(a->ks, b);
		b = NULL;
	}
	vr_keystore_batch_free(b);
	if (rc) {
		vr_p11_destroy(a->p11, t.s, k);
		return fail(-rc, "cannot store key %s: %s", name, strerror(-rc));
	}
	cache_key(ck, sizeof(ck), vault, name, sc.max + 1);
	json_object_set_new(a->cache, ck, json_integer((json_int_t)k));
	res = json_pack("{s:I}", "version", (json_int_t)(sc.max + 1));
	set_uri(res, "uri", t.label, t.serial, label, CKO_SECRET_KEY);
	return ok(res);
}

static json_t *
op_key_create(struct agent *a, json_t *req, uid_t uid)
{
	return key_make(a, req, false);
}

static json_t *
op_key_rotate(struct agent *a, json_t *req, uid_t uid)
{
	return key_make(a, req, true);
}

static json_t *
op_key_delete(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *v;
	const char *vault, *name;
	struct scan sc = {0};
	struct tok t;
	size_t i;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)) || !(name = arg_name(req, "name", &err)))
		return err;
	if (is_replica(a, vault) && !json_is_true(json_object_get(req, "replicated")))
		return fail(EROFS, "vault %s is a replica: delete keys at the primary", vault);
	sc.list = json_array();
	rc = vr_keystore_scan(a->ks, vault, name, scan_one, &sc);
	if (!rc && !sc.count)
		rc = -ENOENT;
	if (!rc)
		rc = vr_keystore_delete(a->ks, vault, name);
	json_array_foreach(sc.list, i, v)
	{
		char ck[200];
		json_t *c;

		cache_key(ck, sizeof(ck), vault, name, (long)json_integer_value(v));
		c = json_object_get(a->cache, ck);
		if (!rc && c) {
			vr_p11_destroy(a->p11, t.s, (CK_OBJECT_HANDLE)json_integer_value(c));
			json_object_del(a->cache, ck);
		}
	}
	json_decref(sc.list);
	if (rc)
		return fail(-rc, rc == -ENOENT ? "vault %s has no key %s" : "cannot delete %s/%s",
		            vault, name);
	return ok(json_pack("{s:I}", "versions", (json_int_t)sc.count));
}

static json_t *
op_key_list(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *out, *v;
	const char *vault, *name;
	struct scan sc = {0};
	struct tok t;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	sc.keys = json_object();
	rc = vr_keystore_scan(a->ks, vault, NULL, scan_one, &sc);
	if (rc) {
		json_decref(sc.keys);
		return fail(-rc, "cannot read the keys of vault %s", vault);
	}
	out = json_array();
	json_object_foreach(sc.keys, name, v)
	    json_array_append_new(out, json_pack("{s:s, s:O}", "name", name, "versions", v));
	json_decref(sc.keys);
	return ok(json_pack("{s:o}", "keys", out));
}

/* The latest version of a key (0 if none). */
static long
latest(struct agent *a, const char *vault, const char *name)
{
	struct scan sc = {0};

	return vr_keystore_scan(a->ks, vault, name, scan_one, &sc) ? 0 : sc.max;
}

/*
 * key.export: the stored blob is the key wrapped under the masking key. One key (name,
 * version) or many ("keys": [{name, version}]) -> blob or "blobs".
 */
static json_t *
export_one(struct agent *a, const char *vault, json_t *item, json_t **blob_out)
{
	json_t *err = NULL;
	const char *name = arg_name(item, "name", &err);
	uint8_t blob[BLOB_MAX];
	size_t n = sizeof(blob);
	long version;
	char *b64;
	int rc;

	if (!name || (version = arg_version(item, "version", &err)) < 0)
		return err;
	rc = vr_keystore_get(a->ks, vault, name, version, blob, &n);
	if (rc)
		return fail(-rc, "vault %s has no key %s version %ld", vault, name, version);
	b64 = vr_hsm_b64(blob, n);
	*blob_out = b64 ? json_string(b64) : NULL;
	free(b64);
	return *blob_out ? NULL : fail(ENOMEM, "out of memory");
}

static json_t *
op_key_export(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *keys = json_object_get(req, "keys"), *item, *blob, *blobs;
	const char *vault;
	struct tok t;
	size_t i;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	if (!keys) {
		if ((err = export_one(a, vault, req, &blob)))
			return err;
		return ok(json_pack("{s:o}", "blob", blob));
	}
	if (!json_is_array(keys) || json_array_size(keys) > 4096)
		return fail(EINVAL, "\"keys\" must be an array of at most 4096 {name, version}");
	blobs = json_array();
	json_array_foreach(keys, i, item)
	{
		if ((err = export_one(a, vault, item, &blob))) {
			json_decref(blobs);
			return err;
		}
		json_array_append_new(blobs, blob);
	}
	return ok(json_pack("{s:o}", "blobs", blobs));
}

/*
 * key.import: one key (name, version, blob) or many ("keys": [{name, version, blob}]). Every
 * blob is unwrapped under the masking key first (which proves it is one of this vault's keys),
 * then all are stored in one synced write: all or nothing.
 */
static json_t *
op_key_import(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *keys = json_object_get(req, "keys"), *item, *one = NULL, *res;
	const char *vault;
	struct vr_keystore_batch *b;
	CK_OBJECT_HANDLE *loaded;
	struct tok t;
	size_t i, n_loaded = 0;
	int rc = 0;

	if ((err = vault_tok(a, req, &vault, &t)))
		return err;
	if (!keys)
		keys = one = json_pack("[O]", req);
	if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 4096) {
		json_decref(one);
		return fail(EINVAL, "\"keys\" must be an array of 1 to 4096 {name, version, blob}");
	}
	b = vr_keystore_batch();
	loaded = calloc(json_array_size(keys), sizeof(*loaded));
	if (!b || !loaded)
		err = fail(ENOMEM, "out of memory");
	json_array_foreach(keys, i, item)
	{
		const char *name;
		long version;
		uint8_t *blob, probe[BLOB_MAX];
		size_t n, pn = sizeof(probe);

		if (err)
			break;
		if (!(name = arg_name(item, "name", &err)) ||
		    (version = arg_version(item, "version", &err)) < 0 ||
		    arg_bytes(item, "blob", BLOB_MAX, &blob, &n, &err))
			break;
		if (vr_keystore_get(a->ks, vault, name, version, probe, &pn) != -ENOENT) {
			free(blob);
			err = fail(EEXIST, "vault %s already has %s version %ld", vault, name,
			           version);
			break;
		}
		rc = key_load(a, &t, vault, name, version, blob, n, &loaded[n_loaded]);
		if (!rc) {
			n_loaded++;
			rc = vr_keystore_batch_put(b, vault, name, version, blob, n);
		}
		free(blob);
		if (rc) {
			err = fail(-rc,
			           rc == -EBADMSG  ? "%s/%ld does not unwrap under the masking key"
			           : rc == -ENOKEY ? "%s/%ld: vault has no masking key yet"
			                           : "cannot import %s/%ld",
			           name, version);
			break;
		}
	}
	if (!err) {
		rc = vr_keystore_commit(a->ks, b);
		b = NULL;
		if (rc)
			err = fail(-rc, "cannot store the imported keys: %s", strerror(-rc));
	}
	if (err) {
		/* All or nothing: drop what was unwrapped. */
		for (i = 0; i < n_loaded; i++)
			vr_p11_destroy(a->p11, t.s, loaded[i]);
		json_object_clear(a->cache);
		res = err;
	} else {
		res = ok(json_pack("{s:I}", "imported", (json_int_t)n_loaded));
	}
	vr_keystore_batch_free(b);
	free(loaded);
	json_decref(one);
	return res;
}

static json_t *
key_crypt(struct agent *a, json_t *req, bool encrypt)
{
	json_t *err = NULL, *res;
	const char *vault, *name, *aad_s = json_string_value(json_object_get(req, "aad"));
	struct tok t;
	long version = 0;
	uint8_t *in = NULL, *iv = NULL, *out = NULL, *aad = NULL, ivb[VR_P11_GCM_IV];
	size_t n, iv_n = VR_P11_GCM_IV, aad_n = 0, out_n = 0;
	CK_OBJECT_HANDLE k;
	int rc;

	if ((err = vault_tok(a, req, &vault, &t)) || !(name = arg_name(req, "name", &err)))
		return err;
	if (!encrypt && (version = arg_version(req, "version", &err)) < 0)
		return err;
	if (arg_bytes(req, "data", DATA_MAX, &in, &n, &err))
		return err;
	if (aad_s && vr_hsm_unb64(aad_s, &aad, &aad_n)) {
		free(in);
		return fail(EINVAL, "\"aad\" is not valid base64");
	}
	if (encrypt) {
		iv = ivb;
	} else if (arg_bytes(req, "iv", VR_P11_GCM_IV, &iv, &iv_n, &err) || iv_n != VR_P11_GCM_IV ||
	           n < VR_P11_GCM_TAG) {
		if (!err)
			err = fail(EINVAL, "\"iv\" must be 12 bytes and \"data\" at least 16");
		goto out;
	}
	if (encrypt)
		version = latest(a, vault, name);
	rc = version ? key_handle(a, &t, vault, name, version, &k) : -ENOENT;
	if (rc) {
		err = fail(-rc, "vault %s has no key %s%s", vault, name,
		           encrypt ? "" : " in that version");
		goto out;
	}
	if (encrypt && (rc = vr_p11_random(a->p11, t.s, iv, VR_P11_GCM_IV))) {
		err = fail(-rc, "no IV from the HSM: %s", strerror(-rc));
		goto out;
	}
	out_n = n + VR_P11_GCM_TAG;
	out = malloc(out_n);
	rc =
	    out ? vr_p11_gcm(a->p11, t.s, k, encrypt, iv, aad, aad_n, in, n, out, &out_n) : -ENOMEM;
	if (rc) {
		err = fail(-rc,
		           rc == -EBADMSG ? "the data does not authenticate under %s/%ld"
		                          : "AES-GCM with %s/%ld failed",
		           name, version);
		goto out;
	}
	res = json_pack("{s:I}", "version", (json_int_t)version);
	if (encrypt)
		set_b64(res, "iv", iv, VR_P11_GCM_IV);
	set_b64(res, "data", out, out_n);
	err = ok(res);
out:
	if (out && !encrypt)
		OPENSSL_cleanse(out, out_n);
	free(out);
	if (iv != ivb)
		free(iv);
	free(in);
	free(aad);
	return err;
}

static json_t *
op_key_encrypt(struct agent *a, json_t *req, uid_t uid)
{
	return key_crypt(a, req, true);
}

static json_t *
op_key_decrypt(struct agent *a, json_t *req, uid_t uid)
{
	return key_crypt(a, req, false);
}

/* --- the site token: site KEKs, peers, payload keys --- */

static int
site_tok(struct agent *a, struct tok *t)
{
	snprintf(t->label, sizeof(t->label), "%s", SITE_LABEL);
	return tok_open(a, json_object_get(a->state, "site"), t);
}

int
vr_agent_init_site(struct agent *a)
{
	char so_pin[33], user_pin[33], serial[17];
	struct tok t;
	int rc;

	if (json_object_get(a->state, "site"))
		return site_tok(a, &t);
	if (vr_agent_pin(so_pin) || vr_agent_pin(user_pin))
		return -EIO;
	rc = vr_p11_token_create(a->p11, SITE_LABEL, so_pin, user_pin, serial);
	if (rc)
		return rc;
	json_object_set_new(
	    a->state, "site",
	    json_pack("{s:s, s:s, s:s}", "serial", serial, "so_pin", so_pin, "user_pin", user_pin));
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(user_pin, sizeof(user_pin));
	rc = vr_agent_state_save(a);
	return rc ? rc : site_tok(a, &t);
}

static json_t *
site_public(struct agent *a, struct tok *t, const char *shard, long version, json_t *res)
{
	char label[128];
	CK_OBJECT_HANDLE pub;
	uint8_t *der;
	size_t n;
	int rc;

	snprintf(label, sizeof(label), "site/%s/%ld", shard, version);
	rc = vr_p11_find(a->p11, t->s, CKO_PUBLIC_KEY, label, &pub);
	if (!rc)
		rc = vr_p11_rsa_public_der(a->p11, t->s, pub, &der, &n);
	if (rc) {
		json_decref(res);
		return fail(-rc, "no site key %s version %ld", shard, version);
	}
	json_object_set_new(res, "version", json_integer(version));
	set_uri(res, "uri", t->label, t->serial, label, CKO_PRIVATE_KEY);
	set_b64(res, "kek", der, n);
	{
		const unsigned char *q = der;
		EVP_PKEY *pk = d2i_PUBKEY(NULL, &q, (long)n);
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem;
		long len;

		if (pk && bio && PEM_write_bio_PUBKEY(bio, pk) &&
		    (len = BIO_get_mem_data(bio, &pem)) > 0)
			json_object_set_new(res, "pem", json_stringn(pem, (size_t)len));
		BIO_free(bio);
		EVP_PKEY_free(pk);
	}
	free(der);
	return ok(res);
}

static json_t *
site_make(struct agent *a, json_t *req, bool rotate)
{
	json_t *err = NULL;
	const char *shard = arg_name(req, "shard", &err);
	char prefix[64], label[128];
	CK_OBJECT_HANDLE pub, priv;
	struct tok t;
	size_t count;
	long max;
	int rc;

	if (!shard)
		return err;
	if ((rc = site_tok(a, &t)))
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	snprintf(prefix, sizeof(prefix), "site/%s/", shard);
	rc = versions_listed(a, &t, CKO_PRIVATE_KEY, prefix, &max, &count);
	if (rc)
		return fail(-rc, "cannot list the site keys");
	if (!rotate && count)
		return fail(EEXIST, "shard %s already has a site key (rotate it instead)", shard);
	if (rotate && !count)
		return fail(ENOENT, "shard %s has no site key to rotate", shard);
	snprintf(label, sizeof(label), "%s%ld", prefix, max + 1);
	rc = vr_p11_rsa_generate(a->p11, t.s, label, RSA_BITS, &pub, &priv);
	if (rc)
		return fail(-rc, "cannot generate the site key: %s", strerror(-rc));
	return site_public(a, &t, shard, max + 1, json_object());
}

static json_t *
op_site_generate(struct agent *a, json_t *req, uid_t uid)
{
	return site_make(a, req, false);
}

static json_t *
op_site_rotate(struct agent *a, json_t *req, uid_t uid)
{
	return site_make(a, req, true);
}

static json_t *
op_site_public(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *v = json_object_get(req, "version");
	const char *shard = arg_name(req, "shard", &err);
	char prefix[64];
	struct tok t;
	size_t count;
	long version;
	int rc;

	if (!shard)
		return err;
	if ((rc = site_tok(a, &t)))
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	if (v) {
		if ((version = arg_version(req, "version", &err)) < 0)
			return err;
	} else {
		snprintf(prefix, sizeof(prefix), "site/%s/", shard);
		rc = versions_listed(a, &t, CKO_PUBLIC_KEY, prefix, &version, &count);
		if (rc || !count)
			return fail(rc ? -rc : ENOENT, "shard %s has no site key", shard);
	}
	return site_public(a, &t, shard, version, json_object());
}

static json_t *
op_site_retire(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL;
	const char *shard = arg_name(req, "shard", &err);
	char prefix[64], label[128];
	struct tok t;
	size_t count;
	long version, max;
	int rc;

	if (!shard || (version = arg_version(req, "version", &err)) < 0)
		return err;
	if ((rc = site_tok(a, &t)))
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	snprintf(prefix, sizeof(prefix), "site/%s/", shard);
	rc = versions_listed(a, &t, CKO_PRIVATE_KEY, prefix, &max, &count);
	if (rc)
		return fail(-rc, "cannot list the site keys");
	if (version == max)
		return fail(EBUSY, "version %ld is shard %s's current key: rotate first", version,
		            shard);
	snprintf(label, sizeof(label), "%s%ld", prefix, version);
	rc = destroy_cached(a, &t, CKO_PRIVATE_KEY, label);
	if (!rc && destroy_cached(a, &t, CKO_PUBLIC_KEY, label) == -ENOENT)
		rc = 0;
	if (rc)
		return fail(-rc, "shard %s has no site key version %ld", shard, version);
	return ok(NULL);
}

static json_t *
op_peer_import(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *res;
	const char *peer = arg_name(req, "peer", &err);
	char label[128];
	CK_OBJECT_HANDLE k;
	struct tok t;
	uint8_t *der;
	size_t n;
	int rc;

	if (!peer || arg_bytes(req, "kek", 4096, &der, &n, &err))
		return err;
	if ((rc = site_tok(a, &t))) {
		free(der);
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	}
	snprintf(label, sizeof(label), "peer/%s", peer);
	/* A peer's new key replaces its old one. */
	destroy_cached(a, &t, CKO_PUBLIC_KEY, label);
	rc = trusted_peer(a, &t, der, n, label, &k);
	free(der);
	if (rc)
		return fail(-rc,
		            rc == -EINVAL ? "\"kek\" is not a DER RSA public key"
		                          : "cannot import the key of peer %s: %s",
		            peer, strerror(-rc));
	res = json_object();
	set_uri(res, "uri", t.label, t.serial, label, CKO_PUBLIC_KEY);
	return ok(res);
}

/*
 * A payload key request's "id", the site token opened into *t and the key's label: NULL, or the
 * error response.
 */
static json_t *
payload_target(struct agent *a, json_t *req, const char **id, struct tok *t, char label[128])
{
	json_t *err = NULL;
	int rc;

	if (!(*id = arg_name(req, "id", &err)))
		return err;
	if ((rc = site_tok(a, t)))
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	snprintf(label, 128, "payload/%s", *id);
	return NULL;
}

static json_t *
op_payload_generate(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err, *res;
	const char *id;
	char label[128];
	CK_OBJECT_HANDLE k;
	struct tok t;
	int rc;

	if ((err = payload_target(a, req, &id, &t, label)))
		return err;
	if (vr_p11_find(a->p11, t.s, CKO_SECRET_KEY, label, &k) == 0)
		return fail(EEXIST, "payload key %s exists", id);
	rc = vr_p11_aes_generate(a->p11, t.s, label, VR_P11_EXTRACTABLE | VR_P11_CRYPT, &k);
	if (rc)
		return fail(-rc, "cannot generate payload key %s: %s", id, strerror(-rc));
	res = json_object();
	set_uri(res, "uri", t.label, t.serial, label, CKO_SECRET_KEY);
	return ok(res);
}

/*
 * payload.wrap: the payload key under one peer's site KEK ("peer" -> blob), or under several
 * at once ("peers": [..] -> "blobs": {peer: blob}), as a stream's key record goes to every
 * member site.
 */
static json_t *
op_payload_wrap(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *peers = json_object_get(req, "peers"), *one = NULL, *p, *blobs;
	const char *id = arg_name(req, "id", &err);
	char label[128];
	CK_OBJECT_HANDLE k;
	struct tok t;
	size_t i;
	int rc;

	if (!id)
		return err;
	if (!peers) {
		const char *peer = arg_name(req, "peer", &err);

		if (!peer)
			return err;
		peers = one = json_pack("[s]", peer);
	}
	if (!json_is_array(peers) || !json_array_size(peers) || json_array_size(peers) > 64) {
		json_decref(one);
		return fail(EINVAL, "\"peers\" must be an array of 1 to 64 peer names");
	}
	if ((rc = site_tok(a, &t))) {
		json_decref(one);
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	}
	snprintf(label, sizeof(label), "payload/%s", id);
	if (find_cached(a, &t, CKO_SECRET_KEY, label, &k)) {
		json_decref(one);
		return fail(ENOENT, "no payload key %s", id);
	}
	blobs = json_object();
	json_array_foreach(peers, i, p)
	{
		const char *peer = json_string_value(p);
		char plabel[128];
		uint8_t blob[BLOB_MAX];
		size_t n = sizeof(blob);
		CK_OBJECT_HANDLE pk;

		if (!peer || !name_ok(peer)) {
			err = fail(EINVAL, "peer names are 1-48 characters of [A-Za-z0-9._-]");
			break;
		}
		snprintf(plabel, sizeof(plabel), "peer/%s", peer);
		if (find_cached(a, &t, CKO_PUBLIC_KEY, plabel, &pk)) {
			err = fail(ENOENT, "no key of peer %s: import it first", peer);
			break;
		}
		rc = vr_p11_wrap(a->p11, t.s, VR_P11_WRAP_RSA, pk, k, blob, &n);
		if (rc) {
			err = fail(-rc, "cannot wrap payload key %s for %s: %s", id, peer,
			           strerror(-rc));
			break;
		}
		set_b64(blobs, peer, blob, n);
	}
	if (err) {
		json_decref(blobs);
		json_decref(one);
		return err;
	}
	if (one) {
		json_t *res =
		    json_pack("{s:O}", "blob",
		              json_object_get(blobs, json_string_value(json_array_get(one, 0))));

		json_decref(blobs);
		json_decref(one);
		return ok(res);
	}
	return ok(json_pack("{s:o}", "blobs", blobs));
}

/* payload.delete: the origin's token copy, once wrapped for every member and for itself. */
static json_t *
op_payload_delete(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err;
	const char *id;
	char label[128];
	struct tok t;
	int rc;

	if ((err = payload_target(a, req, &id, &t, label)))
		return err;
	rc = destroy_cached(a, &t, CKO_SECRET_KEY, label);
	if (rc)
		return fail(
		    -rc, rc == -ENOENT ? "no payload key %s" : "cannot delete payload key %s: %s",
		    id, strerror(-rc));
	return ok(json_object());
}

static json_t *
op_payload_unwrap(struct agent *a, json_t *req, uid_t uid)
{
	json_t *err = NULL, *res;
	const char *id = arg_name(req, "id", &err),
	           *shard = id ? arg_name(req, "shard", &err) : NULL;
	bool keep = json_is_true(json_object_get(req, "keep"));
	char label[128], klabel[128];
	CK_OBJECT_HANDLE priv, k;
	uint8_t *blob, key[64];
	size_t n, key_n = sizeof(key);
	struct tok t;
	long version;
	int rc;

	if (!id || !shard || (version = arg_version(req, "version", &err)) < 0)
		return err;
	if (!keep && !(a->dataplane_uid_set && uid == a->dataplane_uid))
		return fail(EACCES,
		            "only the dataplane (uid %ld) may receive a payload key in clear",
		            a->dataplane_uid_set ? (long)a->dataplane_uid : -1L);
	if ((rc = site_tok(a, &t)))
		return fail(-rc, "cannot open the site token: %s", strerror(-rc));
	snprintf(klabel, sizeof(klabel), "site/%s/%ld", shard, version);
	if (find_cached(a, &t, CKO_PRIVATE_KEY, klabel, &priv))
		return fail(ENOENT, "no site key %s version %ld (retired?)", shard, version);
	if (arg_bytes(req, "blob", BLOB_MAX, &blob, &n, &err))
		return err;
	snprintf(label, sizeof(label), keep ? "payload/%s" : "payload-out/%s", id);
	/*
	 * Kept, it is a payload key like one payload.generate made: it may be wrapped again, for
	 * trusted peers only (an origin after a restart, a member passing it on).
	 */
	if (keep)
		destroy_cached(a, &t, CKO_SECRET_KEY, label);
	rc = vr_p11_unwrap(a->p11, t.s, VR_P11_WRAP_RSA, priv, blob, n, label,
	                   keep ? VR_P11_CRYPT | VR_P11_EXTRACTABLE
	                        : VR_P11_CRYPT | VR_P11_SESSION | VR_P11_READABLE,
	                   &k);
	free(blob);
	if (rc)
		return fail(-rc, "payload key %s does not unwrap under site key %s/%ld: %s", id,
		            shard, version, strerror(-rc));
	res = json_object();
	if (keep) {
		set_uri(res, "uri", t.label, t.serial, label, CKO_SECRET_KEY);
		return ok(res);
	}
	rc = vr_p11_value(a->p11, t.s, k, key, &key_n);
	vr_p11_destroy(a->p11, t.s, k);
	if (rc) {
		json_decref(res);
		return fail(-rc, "cannot read the unwrapped payload key");
	}
	set_b64(res, "key", key, key_n);
	OPENSSL_cleanse(key, sizeof(key));
	return ok(res);
}

static json_t *
op_ping(struct agent *a, json_t *req, uid_t uid)
{
	return ok(json_pack("{s:i, s:s}", "version", VR_HSM_PROTOCOL, "module", a->p11->path));
}

/* The operation table: vr_hsm.h lists the same names with their arguments. */
static const struct {
	const char *name;
	json_t *(*fn)(struct agent *, json_t *, uid_t);
} ops[] = {
    {"ping", op_ping},
    {"vault.create", op_vault_create},
    {"vault.list", op_vault_list},
    {"vault.delete", op_vault_delete},
    {"masking.export", op_masking_export},
    {"masking.import", op_masking_import},
    {"key.create", op_key_create},
    {"key.rotate", op_key_rotate},
    {"key.delete", op_key_delete},
    {"key.list", op_key_list},
    {"key.export", op_key_export},
    {"key.import", op_key_import},
    {"key.encrypt", op_key_encrypt},
    {"key.decrypt", op_key_decrypt},
    {"site.generate", op_site_generate},
    {"site.rotate", op_site_rotate},
    {"site.retire", op_site_retire},
    {"site.public", op_site_public},
    {"peer.import", op_peer_import},
    {"payload.generate", op_payload_generate},
    {"payload.wrap", op_payload_wrap},
    {"payload.unwrap", op_payload_unwrap},
    {"payload.delete", op_payload_delete},
};

json_t *
vr_agent_handle(struct agent *a, json_t *req, uid_t uid)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *res = NULL;

	if (!json_is_object(req) || !op)
		return fail(EINVAL, "a request is a JSON object with a string \"op\"");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(ops[i].name, op))
			continue;
		pthread_mutex_lock(&a->mu);
		res = ops[i].fn(a, req, uid);
		pthread_mutex_unlock(&a->mu);
		return res;
	}
	return fail(EOPNOTSUPP, "unknown op \"%.64s\"", op);
}
