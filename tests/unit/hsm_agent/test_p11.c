// SPDX-License-Identifier: BSD-3-Clause
/*
 * hsm_agent:p11 — the PKCS#11 backend on a real SoftHSMv2 (a token directory per test): token
 * lifecycle, key templates, RSA-OAEP and AES key wrap between tokens, AES-GCM, and each PKCS#11
 * refusal surfaced as a clear errno.
 *
 *   site A: token "vault-a" (masking key, vault keys)     site B: token "vault-b" (partition KEK)
 *           token "site-a" (payload keys)                         token "site-b" (site KEK)
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"
#include "vr_test.h"

static const char SO[] = "so-pin-0123456789", USER[] = "user-pin-0123456789";

struct tok {
	char serial[17];
	CK_SESSION_HANDLE s;
};

static struct vr_p11 *
load(char **dir)
{
	struct vr_p11 *p;

	*dir = vr_test_softhsm();
	p = vr_p11_open(NULL);
	ck_assert_msg(p, "vr_p11_open: %s", strerror(errno));
	return p;
}

static void
token(struct vr_p11 *p, const char *label, struct tok *t)
{
	ck_assert_int_eq(vr_p11_token_create(p, label, SO, USER, t->serial), 0);
	ck_assert_int_eq(vr_p11_login(p, t->serial, CKU_USER, USER, &t->s), 0);
}

/* Imports der into t as a trusted wrapping key: CKA_TRUSTED takes the SO. */
static CK_OBJECT_HANDLE
import_trusted(struct vr_p11 *p, struct tok *t, const uint8_t *der, size_t n, const char *label)
{
	CK_OBJECT_HANDLE k;

	ck_assert_int_eq(vr_p11_rsa_public_import(p, t->s, der, n, label, true, &k), -EPERM);
	ck_assert_int_eq(vr_p11_relogin(p, t->s, CKU_SO, SO), 0);
	ck_assert_int_eq(vr_p11_rsa_public_import(p, t->s, der, n, label, true, &k), 0);
	ck_assert_int_eq(vr_p11_relogin(p, t->s, CKU_USER, USER), 0);
	ck_assert_int_eq(vr_p11_find(p, t->s, CKO_PUBLIC_KEY, label, &k), 0);
	return k;
}

START_TEST(tokens_are_created_found_and_wiped)
{
	char *dir;
	struct vr_p11 *p = load(&dir);
	struct tok a, b;
	CK_OBJECT_HANDLE k;
	CK_SESSION_HANDLE s;

	ck_assert_int_eq(vr_p11_token_create(p, "vault-0", SO, USER, a.serial), 0);
	ck_assert_int_eq(vr_p11_login(p, a.serial, CKU_USER, "wrong-pin-000", &s), -EACCES);
	ck_assert_int_eq(vr_p11_login(p, a.serial, CKU_SO, "wrong-pin-000", &s), -EACCES);
	ck_assert_int_eq(vr_p11_token_wipe(p, a.serial, SO, "vault-1"), 0);
	ck_assert_int_eq(vr_p11_login(p, a.serial, CKU_USER, USER, &a.s), -EACCES); /* no PIN now */
	token(p, "vault-2", &b);
	ck_assert_str_ne(a.serial, b.serial);
	ck_assert_int_eq(vr_p11_token_wipe(p, a.serial, SO, "vault-1"), 0);
	ck_assert_int_eq(vr_p11_login(p, a.serial, CKU_SO, SO, &a.s), 0);
	ck_assert_int_eq(vr_p11_relogin(p, a.s, CKU_SO, SO), 0);
	{
		CK_RV rv = p->f->C_InitPIN(a.s, (CK_UTF8CHAR_PTR)(uintptr_t)USER, strlen(USER));

		ck_assert_int_eq(vr_p11_err("C_InitPIN", rv), 0);
	}
	ck_assert_int_eq(vr_p11_relogin(p, a.s, CKU_USER, USER), 0);
	ck_assert_int_eq(vr_p11_aes_generate(p, a.s, "k1", VR_P11_CRYPT, &k), 0);
	ck_assert_int_eq(vr_p11_find(p, a.s, CKO_SECRET_KEY, "k1", &k), 0);
	ck_assert_int_eq(vr_p11_find(p, b.s, CKO_SECRET_KEY, "k1", &k), -ENOENT);
	vr_p11_session_close(p, a.s);
	ck_assert_int_eq(vr_p11_token_wipe(p, a.serial, SO, "free"), 0);
	ck_assert_int_eq(vr_p11_login(p, a.serial, CKU_SO, SO, &s), 0);
	ck_assert_int_eq(vr_p11_find(p, s, CKO_SECRET_KEY, "k1", &k), -ENOENT);
	vr_p11_session_close(p, s);
	vr_p11_session_close(p, b.s);
	vr_p11_close(p);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(public_key_der_round_trips)
{
	char *dir;
	struct vr_p11 *p = load(&dir);
	struct tok a, b;
	CK_OBJECT_HANDLE pub, priv, imp;
	uint8_t *der, *der2;
	size_t n, n2;

	token(p, "site-a", &a);
	token(p, "site-b", &b);
	ck_assert_int_eq(vr_p11_rsa_generate(p, b.s, "kek-1", 3072, &pub, &priv), 0);
	ck_assert_int_eq(vr_p11_rsa_public_der(p, b.s, pub, &der, &n), 0);
	ck_assert_uint_gt(n, 384);
	ck_assert_int_eq(vr_p11_rsa_public_import(p, a.s, der, n, "peer-b", false, &imp), 0);
	ck_assert_int_eq(vr_p11_rsa_public_der(p, a.s, imp, &der2, &n2), 0);
	ck_assert_uint_eq(n, n2);
	ck_assert_mem_eq(der, der2, n);
	/* Garbage is refused with EINVAL, not imported. */
	der[10] ^= 0xff;
	ck_assert_int_eq(vr_p11_rsa_public_import(p, a.s, der, n - 7, "junk", false, &imp),
	                 -EINVAL);
	free(der);
	free(der2);
	vr_p11_session_close(p, a.s);
	vr_p11_session_close(p, b.s);
	vr_p11_close(p);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(payload_key_crosses_sites_under_rsa_oaep)
{
	char *dir;
	struct vr_p11 *p = load(&dir);
	struct tok a, b;
	CK_OBJECT_HANDLE pub, priv, peer, pk, got, readable;
	uint8_t *der, blob[512], iv[12] = {1, 2, 3}, msg[100], ct[200], pt[200], key[32];
	size_t n, blob_n = sizeof(blob), ct_n = sizeof(ct), pt_n = sizeof(pt), key_n = sizeof(key);

	token(p, "site-a", &a);
	token(p, "site-b", &b);
	/* B makes its key pair; A fetches the public half and trusts it. */
	ck_assert_int_eq(vr_p11_rsa_generate(p, b.s, "site-kek-0-1", 3072, &pub, &priv), 0);
	ck_assert_int_eq(vr_p11_rsa_public_der(p, b.s, pub, &der, &n), 0);
	peer = import_trusted(p, &a, der, n, "peer-b");
	/* A's payload key, wrapped for B. */
	ck_assert_int_eq(
	    vr_p11_aes_generate(p, a.s, "payload-1", VR_P11_EXTRACTABLE | VR_P11_CRYPT, &pk), 0);
	ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_RSA, peer, pk, blob, &blob_n), 0);
	ck_assert_uint_eq(blob_n, 384);
	/* B unwraps into its token; data sealed at A opens at B. */
	ck_assert_int_eq(vr_p11_unwrap(p, b.s, VR_P11_WRAP_RSA, priv, blob, blob_n, "payload-1",
	                               VR_P11_CRYPT, &got),
	                 0);
	memset(msg, 0x42, sizeof(msg));
	ck_assert_int_eq(vr_p11_gcm(p, a.s, pk, true, iv, (const uint8_t *)"hdr", 3, msg,
	                            sizeof(msg), ct, &ct_n),
	                 0);
	ck_assert_uint_eq(ct_n, sizeof(msg) + 16);
	ck_assert_int_eq(
	    vr_p11_gcm(p, b.s, got, false, iv, (const uint8_t *)"hdr", 3, ct, ct_n, pt, &pt_n), 0);
	ck_assert_uint_eq(pt_n, sizeof(msg));
	ck_assert_mem_eq(pt, msg, sizeof(msg));
	/* A flipped tag does not open. */
	ct[ct_n - 1] ^= 1;
	pt_n = sizeof(pt);
	ck_assert_int_eq(
	    vr_p11_gcm(p, b.s, got, false, iv, (const uint8_t *)"hdr", 3, ct, ct_n, pt, &pt_n),
	    -EBADMSG);
	/* The key a sensitive unwrap made stays inside; a readable session copy can be read. */
	ck_assert_int_eq(vr_p11_value(p, b.s, got, key, &key_n), -EPERM);
	ck_assert_int_eq(vr_p11_unwrap(p, b.s, VR_P11_WRAP_RSA, priv, blob, blob_n, "payload-1-out",
	                               VR_P11_SESSION | VR_P11_READABLE | VR_P11_CRYPT, &readable),
	                 0);
	key_n = sizeof(key);
	ck_assert_int_eq(vr_p11_value(p, b.s, readable, key, &key_n), 0);
	ck_assert_uint_eq(key_n, 32);
	free(der);
	vr_p11_session_close(p, a.s);
	vr_p11_session_close(p, b.s);
	vr_p11_close(p);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(vault_keys_follow_the_masking_key)
{
	char *dir;
	struct vr_p11 *p = load(&dir);
	struct tok a, b;
	CK_OBJECT_HANDLE mk_a, mk_b, kpub, kpriv, peer, plain, vk_a[3], vk_b[3];
	uint8_t *der, blob[512], iv[12] = {9}, msg[64], ct[128], pt[128];
	size_t n, blob_n = sizeof(blob);
	const unsigned mk_flags =
	    VR_P11_WRAPPING | VR_P11_EXTRACTABLE | VR_P11_TRUSTED | VR_P11_PUBLIC;

	token(p, "vault-a", &a);
	token(p, "vault-b", &b);
	/* A's masking key: trusted, so made by the SO, so a non-private (still sensitive) key. */
	ck_assert_int_eq(vr_p11_aes_generate(p, a.s, "masking", mk_flags, &mk_a), -EPERM);
	ck_assert_int_eq(vr_p11_relogin(p, a.s, CKU_SO, SO), 0);
	ck_assert_int_eq(vr_p11_aes_generate(p, a.s, "masking", mk_flags, &mk_a), 0);
	ck_assert_int_eq(vr_p11_relogin(p, a.s, CKU_USER, USER), 0);

	/* B's partition key pair; A trusts its public half inside the vault token. */
	ck_assert_int_eq(vr_p11_rsa_generate(p, b.s, "partition-kek", 3072, &kpub, &kpriv), 0);
	ck_assert_int_eq(vr_p11_rsa_public_der(p, b.s, kpub, &der, &n), 0);
	peer = import_trusted(p, &a, der, n, "peer-b-partition");
	/* An untrusted copy of the same public key may not take the masking key away. */
	ck_assert_int_eq(vr_p11_rsa_public_import(p, a.s, der, n, "untrusted", false, &plain), 0);
	ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_RSA, plain, mk_a, blob, &blob_n), -EPERM);
	blob_n = sizeof(blob);
	ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_RSA, peer, mk_a, blob, &blob_n), 0);
	ck_assert_int_eq(vr_p11_unwrap(p, b.s, VR_P11_WRAP_RSA, kpriv, blob, blob_n, "masking",
	                               VR_P11_WRAPPING, &mk_b),
	                 0);

	/* Three vault keys go over under the masking key; A encrypts, B decrypts. */
	memset(msg, 0x5a, sizeof(msg));
	for (int i = 0; i < 3; i++) {
		char label[16];
		size_t ct_n = sizeof(ct), pt_n = sizeof(pt);

		snprintf(label, sizeof(label), "vk-%d", i);
		ck_assert_int_eq(
		    vr_p11_aes_generate(p, a.s, label, VR_P11_EXTRACTABLE | VR_P11_CRYPT, &vk_a[i]),
		    0);
		blob_n = sizeof(blob);
		ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_AES, mk_a, vk_a[i], blob, &blob_n),
		                 0);
		ck_assert_uint_eq(blob_n, 40); /* RFC 5649: 32 bytes + 8 */
		ck_assert_int_eq(vr_p11_unwrap(p, b.s, VR_P11_WRAP_AES, mk_b, blob, blob_n, label,
		                               VR_P11_EXTRACTABLE | VR_P11_CRYPT, &vk_b[i]),
		                 0);
		ck_assert_int_eq(
		    vr_p11_gcm(p, a.s, vk_a[i], true, iv, NULL, 0, msg, sizeof(msg), ct, &ct_n), 0);
		ck_assert_int_eq(
		    vr_p11_gcm(p, b.s, vk_b[i], false, iv, NULL, 0, ct, ct_n, pt, &pt_n), 0);
		ck_assert_mem_eq(pt, msg, sizeof(msg));
	}
	/* A corrupted blob does not unwrap. */
	blob[5] ^= 0x10;
	ck_assert_int_eq(
	    vr_p11_unwrap(p, b.s, VR_P11_WRAP_AES, mk_b, blob, blob_n, "bad", VR_P11_CRYPT, &plain),
	    -EBADMSG);
	free(der);
	vr_p11_session_close(p, a.s);
	vr_p11_session_close(p, b.s);
	vr_p11_close(p);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(non_extractable_keys_stay_in)
{
	char *dir;
	struct vr_p11 *p = load(&dir);
	struct tok a;
	CK_OBJECT_HANDLE kpub, kpriv, wrapper, fixed;
	uint8_t blob[512], value[64];
	size_t n = sizeof(blob), vn = sizeof(value);

	token(p, "site-a", &a);
	ck_assert_int_eq(vr_p11_aes_generate(p, a.s, "wrapper", VR_P11_WRAPPING, &wrapper), 0);
	ck_assert_int_eq(vr_p11_aes_generate(p, a.s, "fixed", VR_P11_CRYPT, &fixed), 0);
	ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_AES, wrapper, fixed, blob, &n), -EPERM);
	ck_assert_int_eq(vr_p11_value(p, a.s, fixed, value, &vn), -EPERM);
	ck_assert_int_eq(vr_p11_rsa_generate(p, a.s, "kek", 3072, &kpub, &kpriv), 0);
	n = sizeof(blob);
	ck_assert_int_eq(vr_p11_wrap(p, a.s, VR_P11_WRAP_AES, wrapper, kpriv, blob, &n), -EPERM);
	vr_p11_session_close(p, a.s);
	vr_p11_close(p);
	vr_test_rmdir(dir);
}
END_TEST

START_TEST(missing_module_is_a_clear_error)
{
	errno = 0;
	ck_assert_ptr_null(vr_p11_open("/nonexistent/libpkcs11.so"));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(vr_p11_open("libm.so.6"));
	ck_assert_int_eq(errno, ENOEXEC);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    tokens_are_created_found_and_wiped,
	    public_key_der_round_trips,
	    payload_key_crosses_sites_under_rsa_oaep,
	    vault_keys_follow_the_masking_key,
	    non_extractable_keys_stay_in,
	    missing_module_is_a_clear_error,
	};

	return vr_test_run("hsm_agent:p11", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
