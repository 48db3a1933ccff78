/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_cryptodev.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "dp_crypto.h"

/* The IV lives in each crypto op's private area, right after the op. */
#define IV_OFFSET (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))

static int
probe(struct dp_crypto *c, const char *pmd, uint16_t n_qp, int socket)
{
	char name[RTE_CRYPTODEV_NAME_MAX_LEN], args[64];
	int id;

	snprintf(name, sizeof(name), "%s_vr", pmd);
	id = rte_cryptodev_get_dev_id(name);
	if (id < 0) {
		snprintf(args, sizeof(args), "max_nb_queue_pairs=%u,socket_id=%d", n_qp,
		         socket < 0 ? 0 : socket);
		if (rte_vdev_init(name, args))
			return -ENODEV;
		id = rte_cryptodev_get_dev_id(name);
		if (id < 0)
			return -ENODEV;
	}
	c->dev = (uint8_t)id;
	snprintf(c->pmd, sizeof(c->pmd), "%s", pmd);
	return 0;
}

int
dp_crypto_init(struct dp_crypto *c, const char *pmd, uint16_t n_qp, uint32_t sessions, int socket)
{
	static const char *const pmds[] = {"crypto_aesni_gcm", "crypto_openssl"};
	struct rte_cryptodev_config conf = {.socket_id = socket, .nb_queue_pairs = n_qp};
	struct rte_cryptodev_qp_conf qp = {.nb_descriptors = 2048};
	struct rte_cryptodev_info info;
	char pname[64];
	unsigned sess_size;
	int rc = -ENODEV;

	memset(c, 0, sizeof(*c));
	if (n_qp == 0 || n_qp > DP_CRYPTO_MAX_QP)
		return -EINVAL;
	if (pmd)
		rc = probe(c, pmd, n_qp, socket);
	else
		for (unsigned i = 0; i < RTE_DIM(pmds) && rc; i++)
			rc = probe(c, pmds[i], n_qp, socket);
	if (rc)
		return rc;
	rte_cryptodev_info_get(c->dev, &info);
	c->cpu = info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO;
	c->n_qp = n_qp;
	sess_size = rte_cryptodev_sym_get_private_session_size(c->dev);
	snprintf(pname, sizeof(pname), "vr_sess_%u", c->dev);
	c->sess_mp =
	    rte_cryptodev_sym_session_pool_create(pname, sessions, sess_size, 0, 0, socket);
	if (!c->sess_mp)
		return -ENOMEM;
	snprintf(pname, sizeof(pname), "vr_cop_%u", c->dev);
	c->op_mp = rte_crypto_op_pool_create(pname, RTE_CRYPTO_OP_TYPE_SYMMETRIC, 4096, 128,
	                                     DP_IV_SIZE, socket);
	if (!c->op_mp)
		return -ENOMEM;
	qp.mp_session = c->sess_mp;
	if (rte_cryptodev_configure(c->dev, &conf))
		return -EIO;
	for (uint16_t q = 0; q < n_qp; q++)
		if (rte_cryptodev_queue_pair_setup(c->dev, q, &qp, socket))
			return -EIO;
	if (rte_cryptodev_start(c->dev))
		return -EIO;
	return 0;
}

void
dp_crypto_fini(struct dp_crypto *c)
{
	rte_cryptodev_stop(c->dev);
	rte_cryptodev_close(c->dev);
	rte_mempool_free(c->op_mp);
	rte_mempool_free(c->sess_mp);
}

void *
dp_crypto_session(struct dp_crypto *c, const uint8_t key[DP_KEY_SIZE], bool encrypt)
{
	uint8_t k[DP_KEY_SIZE];
	struct rte_crypto_sym_xform x = {
	    .type = RTE_CRYPTO_SYM_XFORM_AEAD,
	    .aead =
	        {
	            .op = encrypt ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT,
	            .algo = RTE_CRYPTO_AEAD_AES_GCM,
	            .key = {.data = k, .length = DP_KEY_SIZE},
	            .iv = {.offset = IV_OFFSET, .length = DP_IV_SIZE},
	            .digest_length = DP_TAG_SIZE,
	            .aad_length = DP_AAD_SIZE,
	        },
	};
	void *s;

	memcpy(k, key, sizeof(k));
	s = rte_cryptodev_sym_session_create(c->dev, &x, c->sess_mp);
	explicit_bzero(k, sizeof(k));
	return s;
}

void
dp_crypto_session_free(struct dp_crypto *c, void *sess)
{
	if (sess)
		rte_cryptodev_sym_session_free(c->dev, sess);
}

static unsigned
run_cpu(struct dp_crypto *c, void *sess, struct dp_aead *ops, unsigned n)
{
	struct rte_crypto_vec vec[DP_CRYPTO_BURST];
	struct rte_crypto_sgl sgl[DP_CRYPTO_BURST];
	struct rte_crypto_va_iova_ptr iv[DP_CRYPTO_BURST], dg[DP_CRYPTO_BURST],
	    aad[DP_CRYPTO_BURST];
	int32_t st[DP_CRYPTO_BURST];
	struct rte_crypto_sym_vec sv = {
	    .src_sgl = sgl, .iv = iv, .digest = dg, .aad = aad, .status = st};
	union rte_crypto_sym_ofs ofs = {.raw = 0};
	unsigned ok = 0;

	for (unsigned base = 0; base < n; base += DP_CRYPTO_BURST) {
		unsigned k = RTE_MIN(n - base, (unsigned)DP_CRYPTO_BURST);

		for (unsigned i = 0; i < k; i++) {
			struct dp_aead *o = &ops[base + i];

			vec[i] = (struct rte_crypto_vec){
			    .base = rte_pktmbuf_mtod_offset(o->m, void *, o->data_off),
			    .iova = rte_pktmbuf_iova_offset(o->m, o->data_off),
			    .len = o->len,
			    .tot_len = o->len,
			};
			sgl[i] = (struct rte_crypto_sgl){.vec = &vec[i], .num = 1};
			iv[i] = (struct rte_crypto_va_iova_ptr){.va = o->iv};
			dg[i] = (struct rte_crypto_va_iova_ptr){.va = o->tag};
			aad[i] = (struct rte_crypto_va_iova_ptr){.va = o->aad};
			st[i] = 0;
		}
		sv.num = k;
		rte_cryptodev_sym_cpu_crypto_process(c->dev, sess, ofs, &sv);
		for (unsigned i = 0; i < k; i++) {
			ops[base + i].status = st[i] == 0 ? 0 : st[i] == EBADMSG ? -EBADMSG : -EIO;
			ok += st[i] == 0;
		}
	}
	return ok;
}

static unsigned
run_ops(struct dp_crypto *c, uint16_t qp, void *sess, struct dp_aead *ops, unsigned n)
{
	struct rte_crypto_op *cop[DP_CRYPTO_BURST], *done[DP_CRYPTO_BURST];
	unsigned ok = 0;

	for (unsigned base = 0; base < n; base += DP_CRYPTO_BURST) {
		unsigned k = RTE_MIN(n - base, (unsigned)DP_CRYPTO_BURST), sent = 0, got = 0;
		unsigned spins = 0;

		if (rte_crypto_op_bulk_alloc(c->op_mp, RTE_CRYPTO_OP_TYPE_SYMMETRIC, cop, k) != k) {
			for (unsigned i = 0; i < k; i++)
				ops[base + i].status = -ENOMEM;
			continue;
		}
		for (unsigned i = 0; i < k; i++) {
			struct dp_aead *o = &ops[base + i];
			struct rte_crypto_sym_op *s = cop[i]->sym;

			rte_crypto_op_attach_sym_session(cop[i], sess);
			s->m_src = o->m;
			s->m_dst = NULL;
			s->aead.data.offset = o->data_off;
			s->aead.data.length = o->len;
			s->aead.digest.data = o->tag;
			s->aead.digest.phys_addr = rte_pktmbuf_iova_offset(
			    o->m, (uint32_t)(o->tag - rte_pktmbuf_mtod(o->m, uint8_t *)));
			s->aead.aad.data = o->aad;
			s->aead.aad.phys_addr = rte_pktmbuf_iova_offset(
			    o->m, (uint32_t)(o->aad - rte_pktmbuf_mtod(o->m, uint8_t *)));
			memcpy(rte_crypto_op_ctod_offset(cop[i], uint8_t *, IV_OFFSET), o->iv,
			       DP_IV_SIZE);
		}
		/* Bounded: a software PMD completes at once; a stuck one fails the batch. */
		while ((sent < k || got < sent) && spins++ < 1000000) {
			if (sent < k)
				sent += rte_cryptodev_enqueue_burst(c->dev, qp, cop + sent,
				                                    (uint16_t)(k - sent));
			uint16_t d =
			    rte_cryptodev_dequeue_burst(c->dev, qp, done, (uint16_t)(sent - got));
			for (uint16_t i = 0; i < d; i++) {
				struct dp_aead *o = &ops[base];

				/* Ops come back in order per queue pair; match by mbuf anyway. */
				for (unsigned x = 0; x < k; x++)
					if (ops[base + x].m == done[i]->sym->m_src) {
						o = &ops[base + x];
						break;
					}

				o->status = done[i]->status == RTE_CRYPTO_OP_STATUS_SUCCESS ? 0
				            : done[i]->status == RTE_CRYPTO_OP_STATUS_AUTH_FAILED
				                ? -EBADMSG
				                : -EIO;
				ok += o->status == 0;
				rte_crypto_op_free(done[i]);
			}
			got += d;
		}
		if (got < k) {
			/* Ops still in flight cannot be taken back; fail those we never sent. */
			for (unsigned i = sent; i < k; i++) {
				ops[base + i].status = -EIO;
				rte_crypto_op_free(cop[i]);
			}
		}
	}
	return ok;
}

unsigned
dp_crypto_run(struct dp_crypto *c, uint16_t qp, void *sess, struct dp_aead *ops, unsigned n)
{
	return c->cpu ? run_cpu(c, sess, ops, n) : run_ops(c, qp, sess, ops, n);
}
