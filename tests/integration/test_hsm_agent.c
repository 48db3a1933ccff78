// SPDX-License-Identifier: BSD-3-Clause
/*
 * hsm_agent:agent — real vaultrep-hsm-agent processes on real SoftHSMv2 token directories,
 * driven through the client library only.
 *
 *   test ──vr_hsm (unix socket)──► agent A ──PKCS#11──► SoftHSMv2 tokens in tmp/a
 *        ──vr_hsm (unix socket)──► agent B ──PKCS#11──► SoftHSMv2 tokens in tmp/b
 *
 * Blobs travel between the agents through the test, as they will through control's peer link.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "vr_hsm.h"
#include "vr_test.h"

struct agent {
	pid_t pid;
	char *hsm_dir;
	char sock[300], state[300];
	struct vr_hsm *h;
};

/* Starts an agent with its own SoftHSMv2 and state; extra: more arguments (NULL-terminated). */
static void
start(struct agent *ag, const char *const *extra)
{
	const char *argv[16] = {VR_AGENT_BIN, "--socket", ag->sock, "--state", ag->state};
	int argc = 5;

	if (!ag->hsm_dir) {
		ag->hsm_dir = vr_test_softhsm(); /* sets SOFTHSM2_CONF for the child to inherit */
		snprintf(ag->sock, sizeof(ag->sock), "%s/agent.sock", ag->hsm_dir);
		snprintf(ag->state, sizeof(ag->state), "%s/state", ag->hsm_dir);
	} else {
		char conf[400];

		snprintf(conf, sizeof(conf), "%s/softhsm2.conf", ag->hsm_dir);
		setenv("SOFTHSM2_CONF", conf, 1);
	}
	for (; extra && *extra && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	ag->pid = vr_test_spawn(argv, ag->sock);
	ck_assert_msg(ag->pid > 0, "agent did not come up on %s", ag->sock);
	ag->h = vr_hsm_connect(ag->sock);
	ck_assert_ptr_nonnull(ag->h);
}

static void
stop(struct agent *ag)
{
	int status;

	vr_hsm_close(ag->h);
	ag->h = NULL;
	status = vr_test_stop(ag->pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "agent did not stop cleanly (status %d)", status);
}

static void
finish(struct agent *ag)
{
	stop(ag);
	vr_test_rmdir(ag->hsm_dir);
}

/* One call: expects status `want` (0 or an errno); returns the response when 0. */
static json_t *
rq(struct agent *ag, int want, json_t *req)
{
	char err[512] = "";
	json_t *res = NULL;
	int rc;

	ck_assert_ptr_nonnull(req);
	rc = vr_hsm_call(ag->h, req, &res, err, sizeof(err));
	ck_assert_msg(rc == -want, "%s: status %d (%s), wanted %d",
	              json_string_value(json_object_get(req, "op")), -rc, err, want);
	if (want)
		ck_assert_msg(err[0], "an error must say what was wrong");
	json_decref(req);
	return res;
}

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	ck_assert_msg(s, "response has no \"%s\"", key);
	return s;
}

START_TEST(payload_key_from_a_opens_at_b)
{
	struct agent a = {0}, b = {0};
	const char *dp_root[] = {"--dataplane-uid", "0", NULL};
	json_t *kb, *wrapped, *ka, *kbr;
	uint8_t *key_a, *key_b, iv[12] = {7}, tag[16], ct[64], pt[64], msg[64];
	size_t na, nb;
	int len;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	start(&a, dp_root);
	start(&b, dp_root);
	/* B makes its key pair; A fetches the public key (here, through the test). */
	kb = rq(&b, 0, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "0"));
	ck_assert_int_eq(json_integer_value(json_object_get(kb, "version")), 1);
	ck_assert(strstr(str(kb, "pem"), "BEGIN PUBLIC KEY"));
	ck_assert(!strncmp(str(kb, "uri"), "pkcs11:", 7));
	json_decref(rq(&a, 0,
	               json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", "site-b", "kek",
	                         str(kb, "kek"))));
	/* A's own KEK too, so its dataplane can have the key it seals with. */
	ka = rq(&a, 0, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "0"));
	json_decref(rq(&a, 0,
	               json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", "self", "kek",
	                         str(ka, "kek"))));
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "payload.generate", "id", "s1-k1")));
	/* One request wraps for every member site. */
	{
		json_t *both = rq(&a, 0,
		                  json_pack("{s:s, s:s, s:[s, s]}", "op", "payload.wrap", "id",
		                            "s1-k1", "peers", "site-b", "self"));
		json_t *blobs = json_object_get(both, "blobs");

		ck_assert_uint_eq(json_object_size(blobs), 2);
		ck_assert_ptr_nonnull(json_string_value(json_object_get(blobs, "site-b")));
		json_decref(both);
		json_decref(rq(&a, ENOENT,
		               json_pack("{s:s, s:s, s:[s]}", "op", "payload.wrap", "id", "s1-k1",
		                         "peers", "site-z")));
	}
	wrapped =
	    rq(&a, 0,
	       json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "s1-k1", "peer", "site-b"));
	kbr = rq(&b, 0,
	         json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "s1-k1",
	                   "shard", "0", "version", 1, "blob", str(wrapped, "blob")));
	json_decref(wrapped);
	wrapped =
	    rq(&a, 0,
	       json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "s1-k1", "peer", "self"));
	json_decref(ka);
	ka = rq(&a, 0,
	        json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "s1-k1",
	                  "shard", "0", "version", 1, "blob", str(wrapped, "blob")));
	ck_assert_int_eq(vr_hsm_unb64(str(ka, "key"), &key_a, &na), 0);
	ck_assert_int_eq(vr_hsm_unb64(str(kbr, "key"), &key_b, &nb), 0);
	ck_assert_uint_eq(na, 32);
	ck_assert_uint_eq(nb, 32);

	/* Data sealed at A with its key opens at B with B's. */
	memset(msg, 0x33, sizeof(msg));
	ck_assert(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key_a, iv));
	ck_assert(EVP_EncryptUpdate(c, ct, &len, msg, sizeof(msg)) && len == sizeof(msg));
	ck_assert(EVP_EncryptFinal_ex(c, ct + len, &len));
	ck_assert(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag));
	ck_assert(EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key_b, iv));
	ck_assert(EVP_DecryptUpdate(c, pt, &len, ct, sizeof(ct)));
	ck_assert(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag));
	ck_assert(EVP_DecryptFinal_ex(c, pt + len, &len) > 0);
	ck_assert_mem_eq(pt, msg, sizeof(msg));

	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(key_a, na);
	OPENSSL_cleanse(key_b, nb);
	free(key_a);
	free(key_b);
	json_decref(ka);
	json_decref(kb);
	json_decref(kbr);
	json_decref(wrapped);
	finish(&a);
	finish(&b);
}
END_TEST

/* Exports key name/version from a and imports it into b. */
static void
carry_key(struct agent *a, struct agent *b, const char *name, int version)
{
	json_t *e = rq(a, 0,
	               json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v1", "name",
	                         name, "version", version));

	json_decref(rq(b, 0,
	               json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "key.import", "vault", "v1",
	                         "name", name, "version", version, "blob", str(e, "blob"))));
	json_decref(e);
}

static json_t *
encrypt(struct agent *ag, const char *name, const char *data_b64)
{
	return rq(ag, 0,
	          json_pack("{s:s, s:s, s:s, s:s}", "op", "key.encrypt", "vault", "v1", "name",
	                    name, "data", data_b64));
}

static void
expect_decrypts(struct agent *ag, const char *name, json_t *sealed, const char *data_b64)
{
	json_t *d = rq(ag, 0,
	               json_pack("{s:s, s:s, s:s, s:O, s:s, s:s}", "op", "key.decrypt", "vault",
	                         "v1", "name", name, "version", json_object_get(sealed, "version"),
	                         "iv", str(sealed, "iv"), "data", str(sealed, "data")));

	ck_assert_str_eq(str(d, "data"), data_b64);
	json_decref(d);
}

START_TEST(vault_replicates_with_its_keys_and_rotations)
{
	struct agent a = {0}, b = {0};
	const char *names[] = {"k1", "k2", "k3"};
	const char *secret = "c2VjcmV0IGRhdGEgb2YgYSB0ZW5hbnQ="; /* "secret data of a tenant" */
	json_t *va, *vb, *mk, *sealed_v1, *sealed_v2, *list;

	start(&a, NULL);
	start(&b, NULL);
	va = rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v1"));
	ck_assert(!strncmp(str(va, "token"), "pkcs11:", 7));
	for (int i = 0; i < 3; i++) {
		json_t *k = rq(&a, 0,
		               json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1",
		                         "name", names[i]));

		ck_assert_int_eq(json_integer_value(json_object_get(k, "version")), 1);
		json_decref(k);
	}
	/* B makes the replica partition; A sends the masking key under B's partition KEK. */
	vb = rq(&b, 0,
	        json_pack("{s:s, s:s, s:b}", "op", "vault.create", "vault", "v1", "replica", 1));
	mk = rq(&a, 0,
	        json_pack("{s:s, s:s, s:s}", "op", "masking.export", "vault", "v1", "peer",
	                  str(vb, "kek")));
	json_decref(rq(&b, 0,
	               json_pack("{s:s, s:s, s:s}", "op", "masking.import", "vault", "v1", "blob",
	                         str(mk, "blob"))));
	for (int i = 0; i < 3; i++)
		carry_key(&a, &b, names[i], 1);

	/* encrypt at A, decrypt at B; the replica refuses to mutate. */
	sealed_v1 = encrypt(&a, "k1", secret);
	expect_decrypts(&b, "k1", sealed_v1, secret);
	json_decref(
	    rq(&b, EROFS,
	       json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1", "name", "k4")));
	/* Rotation at A replicates; old data still decrypts on both sides. */
	json_decref(rq(
	    &a, 0, json_pack("{s:s, s:s, s:s}", "op", "key.rotate", "vault", "v1", "name", "k1")));
	carry_key(&a, &b, "k1", 2);
	sealed_v2 = encrypt(&a, "k1", secret);
	ck_assert_int_eq(json_integer_value(json_object_get(sealed_v2, "version")), 2);
	expect_decrypts(&b, "k1", sealed_v2, secret);
	expect_decrypts(&b, "k1", sealed_v1, secret);
	expect_decrypts(&a, "k1", sealed_v1, secret);
	list = rq(&b, 0, json_pack("{s:s, s:s}", "op", "key.list", "vault", "v1"));
	ck_assert_uint_eq(json_array_size(json_object_get(list, "keys")), 3);
	json_decref(list);
	/* Deletion at the primary, applied at the replica. */
	json_decref(rq(
	    &a, 0, json_pack("{s:s, s:s, s:s}", "op", "key.delete", "vault", "v1", "name", "k2")));
	json_decref(rq(&b, 0,
	               json_pack("{s:s, s:s, s:s, s:b}", "op", "key.delete", "vault", "v1", "name",
	                         "k2", "replicated", 1)));
	list = rq(&b, 0, json_pack("{s:s, s:s}", "op", "key.list", "vault", "v1"));
	ck_assert_uint_eq(json_array_size(json_object_get(list, "keys")), 2);
	json_decref(list);

	json_decref(va);
	json_decref(vb);
	json_decref(mk);
	json_decref(sealed_v1);
	json_decref(sealed_v2);
	finish(&a);
	finish(&b);
}
END_TEST

START_TEST(bad_requests_get_clear_errors)
{
	struct agent a = {0};
	const char *dp_other[] = {"--dataplane-uid", "4242", NULL};
	json_t *v, *bad_blob, *sealed;
	char *junk;

	start(&a, dp_other);
	json_decref(rq(&a, EOPNOTSUPP, json_pack("{s:s}", "op", "vault.explode")));
	json_decref(rq(&a, EINVAL, json_pack("{s:i}", "op", 7)));
	json_decref(rq(&a, EINVAL, json_pack("{s:s}", "op", "vault.create")));
	json_decref(rq(&a, EINVAL, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "a/b")));
	json_decref(rq(&a, ENOENT, json_pack("{s:s, s:s}", "op", "key.list", "vault", "nope")));
	v = rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v1"));
	json_decref(rq(&a, EEXIST, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v1")));
	json_decref(rq(&a, ENOENT,
	               json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v1", "name",
	                         "ghost", "version", 1)));
	json_decref(rq(&a, EINVAL,
	               json_pack("{s:s, s:s, s:s, s:s}", "op", "key.encrypt", "vault", "v1", "name",
	                         "k", "data", "***")));
	json_decref(rq(
	    &a, 0, json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1", "name", "k")));
	/* Ciphertext that does not authenticate. */
	sealed = encrypt(&a, "k", "AAAA");
	junk = strdup(str(sealed, "data"));
	junk[0] = junk[0] == 'A' ? 'B' : 'A';
	json_decref(
	    rq(&a, EBADMSG,
	       json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "op", "key.decrypt", "vault", "v1",
	                 "name", "k", "version", 1, "iv", str(sealed, "iv"), "data", junk)));
	free(junk);
	/* A corrupted key blob. */
	bad_blob = rq(&a, 0,
	              json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v1", "name",
	                        "k", "version", 1));
	junk = strdup(str(bad_blob, "blob"));
	junk[5] = junk[5] == 'A' ? 'B' : 'A';
	json_decref(rq(&a, EBADMSG,
	               json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "key.import", "vault", "v1",
	                         "name", "k", "version", 9, "blob", junk)));
	/* A batch with one bad blob imports nothing. */
	{
		json_t *good = rq(&a, 0,
		                  json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1",
		                            "name", "k2")),
		       *blob2;

		json_decref(good);
		blob2 = rq(&a, 0,
		           json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v1",
		                     "name", "k2", "version", 1));
		json_decref(rq(&a, EBADMSG,
		               json_pack("{s:s, s:s, s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}]}", "op",
		                         "key.import", "vault", "v1", "keys", "name", "copy",
		                         "version", 1, "blob", str(blob2, "blob"), "name", "bad",
		                         "version", 1, "blob", junk)));
		json_decref(rq(&a, ENOENT,
		               json_pack("{s:s, s:s, s:s, s:i}", "op", "key.export", "vault", "v1",
		                         "name", "copy", "version", 1)));
		json_decref(blob2);
	}
	/*
	 * Requests in flight on one connection (vr_hsm_submit): answered one by one, in order,
	 * a refused one in the middle taking nothing from its neighbours.
	 */
	{
		json_t *reqs[5] = {
		    json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1", "name", "p1"),
		    json_pack("{s:s}", "op", "vault.explode"),
		    json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1", "name", "p1"),
		    json_pack("{s:s, s:s}", "op", "key.list", "vault", "v1"),
		    json_pack("{s:s, s:s}", "op", "key.list", "vault", "nope"),
		};
		const int want[5] = {0, EOPNOTSUPP, EEXIST, 0, ENOENT};
		char err[256];
		json_t *res;

		for (int i = 0; i < 5; i++)
			ck_assert_int_eq(vr_hsm_submit(a.h, reqs[i]), 0);
		for (int i = 0; i < 5; i++) {
			ck_assert_int_eq(vr_hsm_result(a.h, &res, err, sizeof(err)), -want[i]);
			if (i == 3) /* k, k2 and p1 */
				ck_assert_uint_eq(json_array_size(json_object_get(res, "keys")), 3);
			json_decref(res);
			json_decref(reqs[i]);
		}
	}
	/* A payload key in clear only for the dataplane's uid (4242 here; the test runs as 0). */
	json_decref(rq(&a, EACCES,
	               json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "x",
	                         "shard", "0", "version", 1, "blob", "AAAA")));
	free(junk);
	json_decref(v);
	json_decref(sealed);
	json_decref(bad_blob);
	finish(&a);
}
END_TEST

START_TEST(unauthorised_uid_is_refused)
{
	struct agent a = {0};
	const char *only_other[] = {"--allow-uid", "4242", NULL};
	json_t *res = NULL, *req = json_pack("{s:s}", "op", "ping");
	char err[256];

	start(&a, only_other);
	ck_assert_int_lt(vr_hsm_call(a.h, req, &res, err, sizeof(err)), 0);
	ck_assert_ptr_null(res);
	json_decref(req);
	finish(&a);
}
END_TEST

START_TEST(restart_keeps_partitions_and_keys)
{
	struct agent a = {0};
	const char *data = "aGVsbG8=";
	json_t *sealed, *list;
	struct stat sb;
	char path[400];

	start(&a, NULL);
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v1")));
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v2")));
	json_decref(rq(
	    &a, 0, json_pack("{s:s, s:s, s:s}", "op", "key.create", "vault", "v1", "name", "k")));
	sealed = encrypt(&a, "k", data);
	stop(&a);
	snprintf(path, sizeof(path), "%s/state.json", a.state);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);

	/* Again, with the module named by an RFC 7512 URI. */
	{
		const char *by_uri[] = {
		    "--module", "pkcs11:?module-path=/usr/lib/softhsm/libsofthsm2.so", NULL};
		char limits[64], line[256];
		bool no_core = false;
		FILE *f;

		start(&a, by_uri);
		/* The agent holds keys: it must not leave core dumps. */
		snprintf(limits, sizeof(limits), "/proc/%d/limits", a.pid);
		f = fopen(limits, "r");
		ck_assert_ptr_nonnull(f);
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "Max core file size", 18)) {
				char soft[32], hard[32];

				/* The hard limit too: a soft 0 may just be inherited. */
				no_core = sscanf(line + 18, "%31s %31s", soft, hard) == 2 &&
				          !strcmp(soft, "0") && !strcmp(hard, "0");
			}
		fclose(f);
		ck_assert_msg(no_core, "agent allows core dumps");
	}
	list = rq(&a, 0, json_pack("{s:s}", "op", "vault.list"));
	ck_assert_uint_eq(json_array_size(json_object_get(list, "vaults")), 2);
	json_decref(list);
	expect_decrypts(&a, "k", sealed, data);
	/* Deleting returns the token to the pool; the next vault reuses it: no orphans. */
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.delete", "vault", "v2")));
	list = rq(&a, 0, json_pack("{s:s}", "op", "vault.list"));
	ck_assert_int_eq(json_integer_value(json_object_get(list, "free")), 1);
	json_decref(list);
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "vault.create", "vault", "v3")));
	list = rq(&a, 0, json_pack("{s:s}", "op", "vault.list"));
	ck_assert_int_eq(json_integer_value(json_object_get(list, "free")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(list, "vaults")), 2);
	json_decref(list);
	json_decref(rq(&a, ENOENT, json_pack("{s:s, s:s}", "op", "key.list", "vault", "v2")));
	json_decref(sealed);
	finish(&a);
}
END_TEST

START_TEST(site_key_rotation_keeps_old_versions_until_retired)
{
	struct agent a = {0}, b = {0};
	const char *dp_root[] = {"--dataplane-uid", "0", NULL};
	json_t *k1, *k2, *w1, *w2, *got1, *got2;

	start(&a, NULL);
	start(&b, dp_root);
	json_decref(rq(&a, 0, json_pack("{s:s, s:s}", "op", "payload.generate", "id", "p")));
	k1 = rq(&b, 0, json_pack("{s:s, s:s}", "op", "site.generate", "shard", "7"));
	json_decref(rq(
	    &a, 0,
	    json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", "b", "kek", str(k1, "kek"))));
	w1 = rq(&a, 0, json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "p", "peer", "b"));
	/* B rotates (a shard split, say); A learns the new key; both blobs still open. */
	k2 = rq(&b, 0, json_pack("{s:s, s:s}", "op", "site.rotate", "shard", "7"));
	ck_assert_int_eq(json_integer_value(json_object_get(k2, "version")), 2);
	ck_assert_str_ne(str(k1, "kek"), str(k2, "kek"));
	json_decref(rq(
	    &a, 0,
	    json_pack("{s:s, s:s, s:s}", "op", "peer.import", "peer", "b", "kek", str(k2, "kek"))));
	w2 = rq(&a, 0, json_pack("{s:s, s:s, s:s}", "op", "payload.wrap", "id", "p", "peer", "b"));
	json_decref(rq(&b, EBADMSG,
	               json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "p",
	                         "shard", "7", "version", 1, "blob", str(w2, "blob"))));
	got2 = rq(&b, 0,
	          json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "p", "shard",
	                    "7", "version", 2, "blob", str(w2, "blob")));
	/* Restart: the site token and its keys are still there. */
	stop(&b);
	start(&b, dp_root);
	got1 = rq(&b, 0,
	          json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "p", "shard",
	                    "7", "version", 1, "blob", str(w1, "blob")));
	ck_assert_str_eq(str(got1, "key"), str(got2, "key"));
	/* The current version cannot be retired; an old one can, and then it is gone. */
	json_decref(
	    rq(&b, EBUSY,
	       json_pack("{s:s, s:s, s:i}", "op", "site.retire", "shard", "7", "version", 2)));
	json_decref(rq(
	    &b, 0, json_pack("{s:s, s:s, s:i}", "op", "site.retire", "shard", "7", "version", 1)));
	json_decref(rq(&b, ENOENT,
	               json_pack("{s:s, s:s, s:s, s:i, s:s}", "op", "payload.unwrap", "id", "p",
	                         "shard", "7", "version", 1, "blob", str(w1, "blob"))));
	json_decref(k1);
	json_decref(k2);
	json_decref(w1);
	json_decref(w2);
	json_decref(got1);
	json_decref(got2);
	finish(&a);
	finish(&b);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    payload_key_from_a_opens_at_b,     vault_replicates_with_its_keys_and_rotations,
	    bad_requests_get_clear_errors,     unauthorised_uid_is_refused,
	    restart_keeps_partitions_and_keys, site_key_rotation_keeps_old_versions_until_retired,
	};

	return vr_test_run("hsm_agent:agent", 180, tests, sizeof(tests) / sizeof(tests[0]));
}
