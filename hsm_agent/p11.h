/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The PKCS#11 backend of the HSM agent: the only code in vaultrep that loads a PKCS#11 module.
 * A thin layer over the module's function list that sets every attribute of every template
 * explicitly, translates CK_RV into -errno once (with a log line naming the callee and the
 * CKR_ code), and speaks in tokens, keys and blobs rather than in attribute arrays.
 *
 * Threads: a struct vr_p11 may be used from any thread (the module is initialised with
 * CKF_OS_LOCKING_OK); a session handle belongs to one thread at a time.
 */
#ifndef VR_P11_H
#define VR_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

/* Debian's SoftHSMv2 2.6.1, the default module. */
#define VR_P11_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/*
 * Mechanism choices that differ between HSMs. The defaults are what SoftHSMv2 2.6.1 supports:
 * RSA-OAEP with SHA-1 and MGF1-SHA-1 only (and only to wrap secret keys), and AES key wrap with
 * padding (RFC 5649) as mechanism 0x210A. An HSM that does OAEP with SHA-256 takes
 * oaep_hash = CKM_SHA256, oaep_mgf = CKG_MGF1_SHA256.
 */
struct vr_p11_mechs {
	CK_MECHANISM_TYPE aes_wrap;    /* default CKM_AES_KEY_WRAP_PAD (0x210A) */
	CK_MECHANISM_TYPE oaep_hash;   /* default CKM_SHA_1 */
	CK_RSA_PKCS_MGF_TYPE oaep_mgf; /* default CKG_MGF1_SHA1 */
};

struct vr_p11 {
	void *dl;
	CK_FUNCTION_LIST *f;
	struct vr_p11_mechs mech;
	char *path;
};

/* What a key may do and where it may go; every template sets all of these attributes. */
enum vr_p11_key_flag {
	VR_P11_EXTRACTABLE = 1 << 0, /* may leave the token wrapped (always wrap-with-trusted) */
	VR_P11_WRAPPING = 1 << 1,    /* may wrap and unwrap other keys */
	VR_P11_CRYPT = 1 << 2,       /* may encrypt and decrypt data */
	VR_P11_TRUSTED = 1 << 3,     /* CKA_TRUSTED: may wrap wrap-with-trusted keys (SO only) */
	VR_P11_SESSION = 1 << 4,     /* a session object, gone when the session closes */
	/*
	 * CKA_SENSITIVE=false: the value can be read out. Only for a payload key being handed to
	 * the dataplane, as a session object that is destroyed right after the read.
	 */
	VR_P11_READABLE = 1 << 5,
	/*
	 * CKA_PRIVATE=false: usable by any session of this process without login. Needed for the
	 * masking key, which must be CKA_TRUSTED (only the SO may set it) and which the SO, who
	 * cannot touch private objects, must therefore create. It stays sensitive: its value never
	 * leaves the token in clear, and the keys it unwraps cannot be extracted in clear either.
	 */
	VR_P11_PUBLIC = 1 << 6,
};

enum vr_p11_wrap_mech {
	VR_P11_WRAP_AES, /* AES key wrap with padding under a secret key */
	VR_P11_WRAP_RSA, /* RSA-OAEP under a public key (unwrap: the private key) */
};

/* Loads and initialises a module (NULL: the default). NULL with errno on failure. */
struct vr_p11 *vr_p11_open(const char *module);
void vr_p11_close(struct vr_p11 *p);

/* -errno for a CK_RV, logging "callee: CKR_NAME". 0 for CKR_OK. */
int vr_p11_err(const char *callee, CK_RV rv);
/* The name of a CK_RV ("CKR_PIN_INCORRECT"), or "CKR_0x..." for others. */
const char *vr_p11_rv_name(CK_RV rv);

/*
 * Initialises a free token as a new partition: label, SO PIN, user PIN. serial receives its
 * serial number (the stable name of the token; slot ids are not stable). 0, -ENOSPC if the
 * module has no free token, or -errno.
 */
int vr_p11_token_create(struct vr_p11 *p, const char *label, const char *so_pin,
                        const char *user_pin, char serial[17]);
/* Wipes a token's objects and relabels it (C_InitToken again, with its SO PIN). */
int vr_p11_token_wipe(struct vr_p11 *p, const char *serial, const char *so_pin, const char *label);
/* Sets the user PIN of a token (after a wipe), through an SO session. */
int vr_p11_set_user_pin(struct vr_p11 *p, const char *serial, const char *so_pin,
                        const char *user_pin);
/* The slot that holds the token with this serial: 0 or -ENOENT. */
int vr_p11_token_slot(struct vr_p11 *p, const char *serial, CK_SLOT_ID *slot);

/*
 * A read-write session on the token, logged in as CKU_USER or CKU_SO. PKCS#11 login state
 * belongs to the application and the token, not to a session: if this process is already
 * logged in as that user, the new session shares it (and that is success).
 */
int vr_p11_login(struct vr_p11 *p, const char *serial, CK_USER_TYPE who, const char *pin,
                 CK_SESSION_HANDLE *s);
/* Closes a session; the token is logged out when its last session closes. */
void vr_p11_session_close(struct vr_p11 *p, CK_SESSION_HANDLE s);
/*
 * Logs the token out and in again as `who` (through session s). Needed for the SO-only steps
 * (CKA_TRUSTED); every session of the token changes user with it, so the caller must hold the
 * token exclusively meanwhile.
 */
int vr_p11_relogin(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_USER_TYPE who, const char *pin);

/* An AES-256 key with the given label and flags. */
int vr_p11_aes_generate(struct vr_p11 *p, CK_SESSION_HANDLE s, const char *label, unsigned flags,
                        CK_OBJECT_HANDLE *key);
/*
 * An RSA key pair (bits, e = 65537): the private half sensitive, non-extractable, unwrap only;
 * the public half wrap only. Both token objects with the same label.
 */
int vr_p11_rsa_generate(struct vr_p11 *p, CK_SESSION_HANDLE s, const char *label, unsigned bits,
                        CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
/* The public key as DER SubjectPublicKeyInfo (*der malloc'd). */
int vr_p11_rsa_public_der(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                          uint8_t **der, size_t *n);
/*
 * Imports a DER public key as a wrapping key (token object). trusted sets CKA_TRUSTED, which
 * needs an SO session.
 */
int vr_p11_rsa_public_import(struct vr_p11 *p, CK_SESSION_HANDLE s, const uint8_t *der, size_t n,
                             const char *label, bool trusted, CK_OBJECT_HANDLE *key);

/* The object of a class with a label: 0, -ENOENT, or -EEXIST if several. */
int vr_p11_find(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label,
                CK_OBJECT_HANDLE *obj);
int vr_p11_destroy(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj);
/*
 * Labels of all objects of a class whose label starts with prefix: *labels is a malloc'd array
 * of *n malloc'd strings (free each, then the array).
 */
int vr_p11_labels(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *prefix,
                  char ***labels, size_t *n);

/* Wraps key under wrapping; out (capacity *n) receives the blob, *n its size. */
int vr_p11_wrap(struct vr_p11 *p, CK_SESSION_HANDLE s, enum vr_p11_wrap_mech m,
                CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, uint8_t *out, size_t *n);
/* Unwraps a blob into a new AES key with the label and flags. */
int vr_p11_unwrap(struct vr_p11 *p, CK_SESSION_HANDLE s, enum vr_p11_wrap_mech m,
                  CK_OBJECT_HANDLE unwrapping, const uint8_t *blob, size_t n, const char *label,
                  unsigned flags, CK_OBJECT_HANDLE *key);
/* Reads CKA_VALUE (fails with -EPERM for a sensitive key). */
int vr_p11_value(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, uint8_t *out,
                 size_t *n);

enum { VR_P11_GCM_IV = 12, VR_P11_GCM_TAG = 16 };

/*
 * AES-256-GCM with a key in the token. Encrypt: out = ciphertext || tag (n + 16 bytes). Decrypt:
 * in = ciphertext || tag; -EBADMSG if it does not authenticate.
 */
int vr_p11_gcm(struct vr_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, bool encrypt,
               const uint8_t iv[VR_P11_GCM_IV], const uint8_t *aad, size_t aad_n, const uint8_t *in,
               size_t n, uint8_t *out, size_t *out_n);

int vr_p11_random(struct vr_p11 *p, CK_SESSION_HANDLE s, uint8_t *out, size_t n);

#endif /* VR_P11_H */
