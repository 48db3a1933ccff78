/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AES-256-GCM through DPDK cryptodev (D2): one device per process, a session per payload key
 * and direction, and one call that seals or opens a burst of batches in place.
 *
 * The synchronous CPU-crypto API (rte_cryptodev_sym_cpu_crypto_process) is used when the PMD
 * has it (crypto_aesni_gcm does); otherwise (crypto_openssl) each call enqueues crypto ops on
 * the calling lcore's queue pair and polls them back, so callers see the same synchronous API.
 *
 * Key bytes are copied into the session by the PMD; callers wipe their copy.
 */
#ifndef DP_CRYPTO_H
#define DP_CRYPTO_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

enum {
	DP_KEY_SIZE = 32,
	DP_IV_SIZE = 12,
	DP_AAD_SIZE = 48,
	DP_TAG_SIZE = 16,
	DP_CRYPTO_MAX_QP = 8,
	DP_CRYPTO_BURST = 32,
};

struct dp_crypto {
	uint8_t dev;
	bool cpu; /* the PMD has the synchronous CPU-crypto API */
	uint16_t n_qp;
	struct rte_mempool *sess_mp;
	struct rte_mempool *op_mp;
	char pmd[32];
};

/*
 * One AEAD operation in place on an mbuf: data at data_off, len bytes; the AAD and the tag are
 * pointers into the same mbuf. status: 0, or -EBADMSG when a tag does not verify, -EIO else.
 */
struct dp_aead {
	struct rte_mbuf *m;
	uint32_t data_off;
	uint32_t len;
	uint8_t *aad;
	uint8_t *tag;
	uint8_t iv[DP_IV_SIZE];
	int status;
};

/*
 * Creates the crypto vdev named pmd ("crypto_aesni_gcm" or "crypto_openssl"; NULL: the first
 * of those that probes) with n_qp queue pairs (one per worker lcore) and a pool of sessions.
 * Returns 0 or -errno.
 */
int dp_crypto_init(struct dp_crypto *c, const char *pmd, uint16_t n_qp, uint32_t sessions,
                   int socket);
void dp_crypto_fini(struct dp_crypto *c);

/* A session for key (32 bytes): sealing (encrypt) or opening. NULL with rte_errno on failure. */
void *dp_crypto_session(struct dp_crypto *c, const uint8_t key[DP_KEY_SIZE], bool encrypt);
void dp_crypto_session_free(struct dp_crypto *c, void *sess);

/*
 * Runs n operations under one session on queue pair qp (the caller's lcore). Returns the number
 * that succeeded; each op's status says which failed.
 */
unsigned dp_crypto_run(struct dp_crypto *c, uint16_t qp, void *sess, struct dp_aead *ops,
                       unsigned n);

#endif /* DP_CRYPTO_H */
