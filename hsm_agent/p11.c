// SPDX-License-Identifier: BSD-3-Clause
/*
 * PKCS#11 backend: module loading, tokens, keys, wrapping, AES-GCM. See p11.h.
 *
 * Every template lists every attribute that decides where a key may go (CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED, CKA_WRAP/UNWRAP, CKA_ENCRYPT/DECRYPT),
 * because module defaults differ (SoftHSMv2 2.6.1 makes secret keys non-sensitive by default).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "vr_msg.h"
#include "p11.h"

/* The CK_RV codes this backend meets, with the errno each means to a caller. */
#define VR_P11_RV_TABLE(X)                                                                         \
	X(CKR_OK, 0)                                                                               \
	X(CKR_HOST_MEMORY, ENOMEM)                                                                 \
	X(CKR_DEVICE_MEMORY, ENOMEM)                                                               \
	X(CKR_SLOT_ID_INVALID, ENODEV)                                                             \
	X(CKR_TOKEN_NOT_PRESENT, ENODEV)                                                           \
	X(CKR_ARGUMENTS_BAD, EINVAL)                                                               \
	X(CKR_ATTRIBUTE_READ_ONLY, EPERM)                                                          \
	X(CKR_ATTRIBUTE_SENSITIVE, EPERM)                                                          \
	X(CKR_ATTRIBUTE_TYPE_INVALID, EINVAL)                                                      \
	X(CKR_ATTRIBUTE_VALUE_INVALID, EINVAL)                                                     \
	X(CKR_DATA_LEN_RANGE, EMSGSIZE)                                                            \
	X(CKR_ENCRYPTED_DATA_INVALID, EBADMSG)                                                     \
	X(CKR_ENCRYPTED_DATA_LEN_RANGE, EBADMSG)                                                   \
	X(CKR_KEY_HANDLE_INVALID, ENOENT)                                                          \
	X(CKR_KEY_TYPE_INCONSISTENT, EINVAL)                                                       \
	X(CKR_KEY_FUNCTION_NOT_PERMITTED, EPERM)                                                   \
	X(CKR_KEY_NOT_WRAPPABLE, EPERM)                                                            \
	X(CKR_KEY_UNEXTRACTABLE, EPERM)                                                            \
	X(CKR_MECHANISM_INVALID, ENOTSUP)                                                          \
	X(CKR_MECHANISM_PARAM_INVALID, ENOTSUP)                                                    \
	X(CKR_OBJECT_HANDLE_INVALID, ENOENT)                                                       \
	X(CKR_OPERATION_ACTIVE, EBUSY)                                                             \
	X(CKR_PIN_INCORRECT, EACCES)                                                               \
	X(CKR_PIN_INVALID, EINVAL)                                                                 \
	X(CKR_PIN_LEN_RANGE, EINVAL)                                                               \
	X(CKR_PIN_LOCKED, EACCES)                                                                  \
	X(CKR_SESSION_HANDLE_INVALID, EBADF)                                                       \
	X(CKR_SESSION_READ_ONLY, EROFS)                                                            \
	X(CKR_SESSION_EXISTS, EBUSY)                                                               \
	X(CKR_TEMPLATE_INCOMPLETE, EINVAL)                                                         \
	X(CKR_TEMPLATE_INCONSISTENT, EINVAL)                                                       \
	X(CKR_USER_ALREADY_LOGGED_IN, EALREADY)                                                    \
	X(CKR_USER_NOT_LOGGED_IN, EACCES)                                                          \
	X(CKR_USER_TYPE_INVALID, EINVAL)                                                           \
	X(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, EBUSY)                                               \
	X(CKR_USER_PIN_NOT_INITIALIZED, EACCES)                                                    \
	X(CKR_SESSION_READ_ONLY_EXISTS, EBUSY)                                                     \
	X(CKR_UNWRAPPING_KEY_HANDLE_INVALID, ENOENT)                                               \
	X(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, EINVAL)                                            \
	X(CKR_WRAPPED_KEY_INVALID, EBADMSG)                                                        \
	X(CKR_WRAPPED_KEY_LEN_RANGE, EBADMSG)                                                      \
	X(CKR_WRAPPING_KEY_HANDLE_INVALID, ENOENT)                                                 \
	X(CKR_WRAPPING_KEY_TYPE_INCONSISTENT, EINVAL)                                              \
	X(CKR_BUFFER_TOO_SMALL, ENOBUFS)                                                           \
	X(CKR_CRYPTOKI_NOT_INITIALIZED, EINVAL)                                                    \
	X(CKR_CRYPTOKI_ALREADY_INITIALIZED, EALREADY)                                              \
	X(CKR_FUNCTION_NOT_SUPPORTED, ENOTSUP)                                                     \
	X(CKR_GENERAL_ERROR, EIO)                                                                  \
	X(CKR_FUNCTION_FAILED, EIO)

const char *
vr_p11_rv_name(CK_RV rv)
{
	static __thread char other[32];

	switch (rv) {
#define X(name, e)                                                                                 \
	case name:                                                                                 \
		return #name;
		VR_P11_RV_TABLE(X)
#undef X
	default:
		snprintf(other, sizeof(other), "CKR_0x%lx", (unsigned long)rv);
		return other;
	}
}

int
vr_p11_err(const char *callee, CK_RV rv)
{
	int e = EIO;

	switch (rv) {
#define X(name, err)                                                                               \
	case name:                                                                                 \
		e = err;                                                                           \
		break;
		VR_P11_RV_TABLE(X)
#undef X
	default:
		break;
	}
	if (rv != CKR_OK)
		vr_err("hsm", "%s: %s", callee, vr_p11_rv_name(rv));
	return -e;
}

#define P11(p, fn, ...) vr_p11_err(#fn, (p)->f->fn(__VA_ARGS__))

/*
 * For unwrap and AES-GCM decrypt, whose mechanisms authenticate their input: SoftHSMv2 2.6.1
 * reports a blob or ciphertext that does not authenticate as CKR_GENERAL_ERROR (or
 * CKR_FUNCTION_FAILED) instead of CKR_WRAPPED_KEY_INVALID / CKR_ENCRYPTED_DATA_INVALID.
 */
static int
auth_err(const char *callee, CK_RV rv)
{
	if (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED) {
		vr_err("hsm", "%s: %s (input does not authenticate)", callee, vr_p11_rv_name(rv));
		return -EBADMSG;
	}
	return vr_p11_err(callee, rv);
}

struct vr_p11 *
vr_p11_open(const char *module)
{
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	struct vr_p11 *p = calloc(1, sizeof(*p));
	void *sym;
	int rc = -ENOMEM;

	if (!p)
		goto err;
	if (!module)
		module = VR_P11_DEFAULT_MODULE;
	p->path = strdup(module);
	p->mech = (struct vr_p11_mechs){CKM_AES_KEY_WRAP_PAD, CKM_SHA_1, CKG_MGF1_SHA1};
	p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		vr_err("hsm", "dlopen %s: %s", module, dlerror());
		rc = -ENOENT;
		goto err_free;
	}
	sym = dlsym(p->dl, "C_GetFunctionList");
	/* POSIX guarantees a function pointer survives the trip through void *. */
	memcpy(&get_list, &sym, sizeof(get_list));
	if (!sym) {
		vr_err("hsm", "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
		rc = -ENOEXEC;
		goto err_close;
	}
	rc = vr_p11_err("C_GetFunctionList", get_list(&p->f));
	if (rc)
		goto err_close;
	rc = P11(p, C_Initialize, &args);
	if (rc)
		goto err_close;
	return p;

err_close:
	dlclose(p->dl);
err_free:
	free(p->path);
	free(p);
err:
	errno = -rc;
	return NULL;
}

void
vr_p11_close(struct vr_p11 *p)
{
	if (!p)
		return;
	p->f->C_Finalize(NULL);
	dlclose(p->dl);
	free(p->path);
	free(p);
}

/* A token label: 32 bytes, blank padded, no terminator. */
static void
pad32(CK_UTF8CHAR out[32], const char *s)
{
	size_t n = strlen(s);

	memset(out, ' ', 32);
	memcpy(out, s, n > 32 ? 32 : n);
}

static void
serial_of(const CK_TOKEN_INFO *ti, char serial[17])
{
	size_t n = 16;

	memcpy(serial, ti->serialNumber, 16);
	while (n && serial[n - 1] == ' ')
		n--;
	serial[n] = 0;
}

/* Slots with a token, and each token's info. */
static int
slots(struct vr_p11 *p, CK_SLOT_ID **ids, CK_ULONG *n)
{
	int rc;

	*ids = NULL;
	rc = P11(p, C_GetSlotList, CK_TRUE, NULL, n);
	if (rc)
		return rc;
	*ids = calloc(*n ? *n : 1, sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	rc = P11(p, C_GetSlotList, CK_TRUE, *ids, n);
	if (rc) {
		free(*ids);
		*ids = NULL;
	}
	return rc;
}

int
vr_p11_token_slot(struct vr_p11 *p, const char *serial, CK_SLOT_ID *slot)
{
	CK_SLOT_ID *ids;
	CK_ULONG n;
	int rc = slots(p, &ids, &n);

	if (rc)
		return rc;
	rc = -ENOENT;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		char s[17];

		if (p->f->C_GetTokenInfo(ids[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		serial_of(&ti, s);
		if (!strcmp(s, serial)) {
			*slot = ids[i];
			rc = 0;
			break;
		}
	}
	free(ids);
	return rc;
}

int
vr_p11_login(struct vr_p11 *p, const char *serial, CK_USER_TYPE who, const char *pin,
             CK_SESSION_HANDLE *s)
{
	CK_SLOT_ID slot;
	CK_RV rv;
	int rc = vr_p11_token_slot(p, serial, &slot);

	if (rc)
		return rc;
	rc = P11(p, C_OpenSession, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
	if (rc)
		return rc;
	rv = p->f->C_Login(*s, who, (CK_UTF8CHAR_PTR)(uintptr_t)pin, strlen(pin));
	rc = rv == CKR_USER_ALREADY_LOGGED_IN ? 0 : vr_p11_err("C_Login", rv);
	if (rc) {
		p->f->C_CloseSession(*s);
		*s = CK_INVALID_HANDLE;
	}
	return rc;
}

void
vr_p11_session_close(struct vr_p11 *p, CK_SESSION_HANDLE s)
{
	if (s != CK_INVALID_HANDLE)
		p->f->C_CloseSession(s);
}

int
vr_p11_relogin(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_USER_TYPE who, const char *pin)
{
	CK_RV rv = p->f->C_Logout(s);

	if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN)
		return vr_p11_err("C_Logout", rv);
	return P11(p, C_Login, s, who, (CK_UTF8CHAR_PTR)(uintptr_t)pin, strlen(pin));
}

int
vr_p11_token_create(struct vr_p11 *p, const char *label, const char *so_pin, const char *user_pin,
                    char serial[17])
{
	CK_SLOT_ID *ids, slot = 0;
	CK_UTF8CHAR lab[32];
	CK_TOKEN_INFO ti;
	CK_ULONG n;
	bool found = false;
	int rc = slots(p, &ids, &n);

	if (rc)
		return rc;
	for (CK_ULONG i = 0; i < n && !found; i++) {
		if (p->f->C_GetTokenInfo(ids[i], &ti) == CKR_OK &&
		    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			slot = ids[i];
			found = true;
		}
	}
	free(ids);
	if (!found) {
		vr_err("hsm", "no free token left in %s", p->path);
		return -ENOSPC;
	}
	pad32(lab, label);
	rc = P11(p, C_InitToken, slot, (CK_UTF8CHAR_PTR)(uintptr_t)so_pin, strlen(so_pin), lab);
	if (rc)
		return rc;
	rc = P11(p, C_GetTokenInfo, slot, &ti);
	if (rc)
		return rc;
	serial_of(&ti, serial);
	return vr_p11_set_user_pin(p, serial, so_pin, user_pin);
}

int
vr_p11_set_user_pin(struct vr_p11 *p, const char *serial, const char *so_pin, const char *user_pin)
{
	CK_SESSION_HANDLE s;
	int rc = vr_p11_login(p, serial, CKU_SO, so_pin, &s);

	if (rc)
		return rc;
	rc = P11(p, C_InitPIN, s, (CK_UTF8CHAR_PTR)(uintptr_t)user_pin, strlen(user_pin));
	p->f->C_Logout(s);
	vr_p11_session_close(p, s);
	return rc;
}

int
vr_p11_token_wipe(struct vr_p11 *p, const char *serial, const char *so_pin, const char *label)
{
	CK_UTF8CHAR lab[32];
	CK_SLOT_ID slot;
	int rc = vr_p11_token_slot(p, serial, &slot);

	if (rc)
		return rc;
	pad32(lab, label);
	return P11(p, C_InitToken, slot, (CK_UTF8CHAR_PTR)(uintptr_t)so_pin, strlen(so_pin), lab);
}

/* The policy attributes of a secret key template, from flags: always all of them. */
struct secret_tmpl {
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE type;
	CK_ULONG len;
	CK_BBOOL tru, fals;
	CK_ATTRIBUTE a[16];
	CK_ULONG n;
};

static void
secret_template(struct secret_tmpl *t, const char *label, unsigned flags, bool with_len)
{
	CK_BBOOL *yes = &t->tru, *no = &t->fals;
	/* PKCS#11 reveals CKA_VALUE only of a key both non-sensitive and extractable. */
	bool ext = flags & (VR_P11_EXTRACTABLE | VR_P11_READABLE), wrap = flags & VR_P11_WRAPPING;
	bool crypt = flags & VR_P11_CRYPT;

	t->cls = CKO_SECRET_KEY;
	t->type = CKK_AES;
	t->len = 32;
	t->tru = CK_TRUE;
	t->fals = CK_FALSE;
	t->n = 0;
#define A(type, ptr, size) t->a[t->n++] = (CK_ATTRIBUTE){(type), (ptr), (size)}
	A(CKA_CLASS, &t->cls, sizeof(t->cls));
	A(CKA_KEY_TYPE, &t->type, sizeof(t->type));
	if (with_len)
		A(CKA_VALUE_LEN, &t->len, sizeof(t->len));
	A(CKA_LABEL, (void *)(uintptr_t)label, strlen(label));
	A(CKA_TOKEN, (flags & VR_P11_SESSION) ? no : yes, 1);
	A(CKA_PRIVATE, (flags & VR_P11_PUBLIC) ? no : yes, 1);
	A(CKA_SENSITIVE, (flags & VR_P11_READABLE) ? no : yes, 1);
	A(CKA_EXTRACTABLE, ext ? yes : no, 1);
	A(CKA_WRAP_WITH_TRUSTED, ext ? yes : no, 1);
	A(CKA_WRAP, wrap ? yes : no, 1);
	A(CKA_UNWRAP, wrap ? yes : no, 1);
	A(CKA_ENCRYPT, crypt ? yes : no, 1);
	A(CKA_DECRYPT, crypt ? yes : no, 1);
	A(CKA_SIGN, no, 1);
	A(CKA_VERIFY, no, 1);
	if (flags & VR_P11_TRUSTED)
		A(CKA_TRUSTED, yes, 1);
#undef A
}

int
vr_p11_aes_generate(struct vr_p11 *p, CK_SESSION_HANDLE s, const char *label, unsigned flags,
                    CK_OBJECT_HANDLE *key)
{
	CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
	struct secret_tmpl t;

	secret_template(&t, label, flags, true);
	return P11(p, C_GenerateKey, s, &m, t.a, t.n, key);
}

int
vr_p11_rsa_generate(struct vr_p11 *p, CK_SESSION_HANDLE s, const char *label, unsigned bits,
                    CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG mod_bits = bits;
	CK_BYTE e[] = {0x01, 0x00, 0x01};
	CK_ULONG ln = strlen(label);
	CK_ATTRIBUTE pt[] = {
	    {CKA_LABEL, (void *)(uintptr_t)label, ln},
	    {CKA_TOKEN, &yes, 1},
	    {CKA_PRIVATE, &no, 1},
	    {CKA_MODULUS_BITS, &mod_bits, sizeof(mod_bits)},
	    {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
	    {CKA_WRAP, &yes, 1},
	    {CKA_ENCRYPT, &no, 1},
	    {CKA_VERIFY, &no, 1},
	};
	CK_ATTRIBUTE kt[] = {
	    {CKA_LABEL, (void *)(uintptr_t)label, ln},
	    {CKA_TOKEN, &yes, 1},
	    {CKA_PRIVATE, &yes, 1},
	    {CKA_SENSITIVE, &yes, 1},
	    {CKA_EXTRACTABLE, &no, 1},
	    {CKA_UNWRAP, &yes, 1},
	    {CKA_DECRYPT, &no, 1},
	    {CKA_SIGN, &no, 1},
	};

	return P11(p, C_GenerateKeyPair, s, &m, pt, sizeof(pt) / sizeof(pt[0]), kt,
	           sizeof(kt) / sizeof(kt[0]), pub, priv);
}

static int
get_attr(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
         uint8_t **out, size_t *n)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	int rc = P11(p, C_GetAttributeValue, s, o, &a, 1);

	if (rc)
		return rc;
	*out = malloc(a.ulValueLen ? a.ulValueLen : 1);
	if (!*out)
		return -ENOMEM;
	a.pValue = *out;
	rc = P11(p, C_GetAttributeValue, s, o, &a, 1);
	if (rc) {
		free(*out);
		*out = NULL;
		return rc;
	}
	*n = a.ulValueLen;
	return 0;
}

int
vr_p11_rsa_public_der(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, uint8_t **der,
                      size_t *n)
{
	uint8_t *mod = NULL, *exp = NULL, *d;
	size_t mod_n, exp_n;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int rc, len;

	rc = get_attr(p, s, pub, CKA_MODULUS, &mod, &mod_n);
	if (!rc)
		rc = get_attr(p, s, pub, CKA_PUBLIC_EXPONENT, &exp, &exp_n);
	if (rc)
		goto out;
	rc = -ENOMEM;
	bn_n = BN_bin2bn(mod, (int)mod_n, NULL);
	bn_e = BN_bin2bn(exp, (int)exp_n, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)))
		goto out;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		vr_err("hsm", "EVP_PKEY_fromdata: cannot build the RSA public key");
		rc = -EIO;
		goto out;
	}
	len = i2d_PUBKEY(pkey, NULL);
	if (len <= 0 || !(d = malloc((size_t)len)))
		goto out;
	*der = d;
	*n = (size_t)i2d_PUBKEY(pkey, &d);
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(mod);
	free(exp);
	return rc;
}

int
vr_p11_rsa_public_import(struct vr_p11 *p, CK_SESSION_HANDLE s, const uint8_t *der, size_t n,
                         const char *label, bool trusted, CK_OBJECT_HANDLE *key)
{
	const unsigned char *q = der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &q, (long)n);
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	uint8_t *mod = NULL, *exp = NULL;
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE type = CKK_RSA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	int rc = -EINVAL;

	if (!pkey || q != der + n || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &bn_n) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &bn_e)) {
		vr_err("hsm", "d2i_PUBKEY: not a DER RSA public key");
		goto out;
	}
	rc = -ENOMEM;
	mod = malloc((size_t)BN_num_bytes(bn_n));
	exp = malloc((size_t)BN_num_bytes(bn_e));
	if (!mod || !exp)
		goto out;
	{
		CK_ATTRIBUTE t[] = {
		    {CKA_CLASS, &cls, sizeof(cls)},
		    {CKA_KEY_TYPE, &type, sizeof(type)},
		    {CKA_LABEL, (void *)(uintptr_t)label, strlen(label)},
		    {CKA_TOKEN, &yes, 1},
		    {CKA_PRIVATE, &no, 1},
		    {CKA_MODULUS, mod, (CK_ULONG)BN_bn2bin(bn_n, mod)},
		    {CKA_PUBLIC_EXPONENT, exp, (CK_ULONG)BN_bn2bin(bn_e, exp)},
		    {CKA_WRAP, &yes, 1},
		    {CKA_ENCRYPT, &no, 1},
		    {CKA_VERIFY, &no, 1},
		    {CKA_TRUSTED, trusted ? &yes : &no, 1},
		};

		rc = P11(p, C_CreateObject, s, t, sizeof(t) / sizeof(t[0]), key);
	}
out:
	free(mod);
	free(exp);
	BN_free(bn_n);
	BN_free(bn_e);
	EVP_PKEY_free(pkey);
	return rc;
}

int
vr_p11_find(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label,
            CK_OBJECT_HANDLE *obj)
{
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, (void *)(uintptr_t)label, strlen(label)},
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	int rc = P11(p, C_FindObjectsInit, s, t, 2);

	if (rc)
		return rc;
	rc = P11(p, C_FindObjects, s, found, 2, &n);
	p->f->C_FindObjectsFinal(s);
	if (rc)
		return rc;
	if (n == 0)
		return -ENOENT;
	if (n > 1)
		return -EEXIST;
	*obj = found[0];
	return 0;
}

int
vr_p11_labels(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *prefix,
              char ***labels, size_t *n)
{
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE objs[64];
	size_t plen = strlen(prefix), cap = 0;
	CK_ULONG got;
	int rc = P11(p, C_FindObjectsInit, s, &t, 1);

	*labels = NULL;
	*n = 0;
	if (rc)
		return rc;
	while (!rc && !(rc = P11(p, C_FindObjects, s, objs, 64, &got)) && got) {
		for (CK_ULONG i = 0; i < got && !rc; i++) {
			char label[256];
			CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof(label) - 1};

			if (p->f->C_GetAttributeValue(s, objs[i], &a, 1) != CKR_OK ||
			    a.ulValueLen >= sizeof(label))
				continue;
			label[a.ulValueLen] = 0;
			if (strncmp(label, prefix, plen))
				continue;
			if (*n == cap) {
				char **q =
				    realloc(*labels, (cap = cap ? 2 * cap : 16) * sizeof(*q));

				if (!q) {
					rc = -ENOMEM;
					break;
				}
				*labels = q;
			}
			if (!((*labels)[*n] = strdup(label)))
				rc = -ENOMEM;
			else
				(*n)++;
		}
	}
	p->f->C_FindObjectsFinal(s);
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			free((*labels)[i]);
		free(*labels);
		*labels = NULL;
		*n = 0;
	}
	return rc;
}

int
vr_p11_destroy(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj)
{
	return P11(p, C_DestroyObject, s, obj);
}

static void
wrap_mech(struct vr_p11 *p, enum vr_p11_wrap_mech m, CK_MECHANISM *mech,
          CK_RSA_PKCS_OAEP_PARAMS *oaep)
{
	if (m == VR_P11_WRAP_RSA) {
		*oaep = (CK_RSA_PKCS_OAEP_PARAMS){p->mech.oaep_hash, p->mech.oaep_mgf,
		                                  CKZ_DATA_SPECIFIED, NULL, 0};
		*mech = (CK_MECHANISM){CKM_RSA_PKCS_OAEP, oaep, sizeof(*oaep)};
	} else {
		*mech = (CK_MECHANISM){p->mech.aes_wrap, NULL, 0};
	}
}

int
vr_p11_wrap(struct vr_p11 *p, CK_SESSION_HANDLE s, enum vr_p11_wrap_mech m,
            CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, uint8_t *out, size_t *n)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	CK_MECHANISM mech;
	CK_ULONG len = *n;
	int rc;

	wrap_mech(p, m, &mech, &oaep);
	rc = P11(p, C_WrapKey, s, &mech, wrapping, key, out, &len);
	*n = len;
	return rc;
}

int
vr_p11_unwrap(struct vr_p11 *p, CK_SESSION_HANDLE s, enum vr_p11_wrap_mech m,
              CK_OBJECT_HANDLE unwrapping, const uint8_t *blob, size_t n, const char *label,
              unsigned flags, CK_OBJECT_HANDLE *key)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	CK_MECHANISM mech;
	struct secret_tmpl t;

	wrap_mech(p, m, &mech, &oaep);
	secret_template(&t, label, flags, false);
	return auth_err("C_UnwrapKey",
	                p->f->C_UnwrapKey(s, &mech, unwrapping, (CK_BYTE_PTR)(uintptr_t)blob, n,
	                                  t.a, t.n, key));
}

int
vr_p11_value(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, uint8_t *out, size_t *n)
{
	CK_ATTRIBUTE a = {CKA_VALUE, out, *n};
	int rc = P11(p, C_GetAttributeValue, s, key, &a, 1);

	if (!rc)
		*n = a.ulValueLen;
	return rc;
}

int
vr_p11_gcm(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, bool encrypt,
           const uint8_t iv[VR_P11_GCM_IV], const uint8_t *aad, size_t aad_n, const uint8_t *in,
           size_t n, uint8_t *out, size_t *out_n)
{
	CK_GCM_PARAMS gp = {(CK_BYTE_PTR)(uintptr_t)iv,  VR_P11_GCM_IV, VR_P11_GCM_IV * 8,
	                    (CK_BYTE_PTR)(uintptr_t)aad, aad_n,         VR_P11_GCM_TAG * 8};
	CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
	CK_ULONG len = *out_n;
	int rc;

	if (encrypt) {
		rc = P11(p, C_EncryptInit, s, &m, key);
		if (!rc)
			rc = P11(p, C_Encrypt, s, (CK_BYTE_PTR)(uintptr_t)in, n, out, &len);
	} else {
		rc = P11(p, C_DecryptInit, s, &m, key);
		if (!rc)
			rc = auth_err("C_Decrypt",
			              p->f->C_Decrypt(s, (CK_BYTE_PTR)(uintptr_t)in, n, out, &len));
	}
	*out_n = len;
	return rc;
}

int
vr_p11_random(struct vr_p11 *p, CK_SESSION_HANDLE s, uint8_t *out, size_t n)
{
	return P11(p, C_GenerateRandom, s, out, n);
}
