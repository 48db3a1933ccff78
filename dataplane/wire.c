// SPDX-License-Identifier: BSD-3-Clause
/* Encoders and parsers of the dataplane's wire formats; layouts and rules in vr_wire.h. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "vr_common.h"
#include "vr_crc.h"
#include "vr_wire.h"

_Static_assert(VR_WIRE_MAX_PAYLOAD <= UINT16_MAX, "payload_size is 16 bits");

static uint32_t
ingest_crc(const uint8_t *hdr, const uint8_t *payload, size_t n)
{
	uint32_t c = vr_crc32c_update(vr_crc32c_begin(), hdr, 36);

	return vr_crc32c_end(vr_crc32c_update(c, payload, n));
}

int
vr_wire_ingest_encode(const struct vr_ingest *f, uint8_t *buf, size_t cap)
{
	size_t size = VR_WIRE_INGEST_HDR + (size_t)f->payload_size;

	if (f->payload_size > VR_WIRE_MAX_PAYLOAD || size > cap)
		return -VR_WIRE_ERR_SIZE;
	vr_put_be16(buf, VR_WIRE_MAGIC_INGEST);
	buf[2] = VR_WIRE_VERSION;
	buf[3] = VR_WIRE_FRAME;
	vr_put_be32(buf + 4, f->producer);
	vr_put_be64(buf + 8, f->producer_seq);
	vr_put_be64(buf + 16, f->account);
	vr_put_be32(buf + 24, f->vault);
	buf[28] = f->rec_type;
	buf[29] = f->op;
	vr_put_be16(buf + 30, f->payload_size);
	vr_put_be32(buf + 32, f->flags);
	if (f->payload_size && f->payload != buf + VR_WIRE_INGEST_HDR)
		memmove(buf + VR_WIRE_INGEST_HDR, f->payload, f->payload_size);
	vr_put_be32(buf + 36, ingest_crc(buf, buf + VR_WIRE_INGEST_HDR, f->payload_size));
	return (int)size;
}

int
vr_wire_ingest_parse(const uint8_t *buf, size_t size, struct vr_ingest *f)
{
	if (size < VR_WIRE_INGEST_HDR)
		return -VR_WIRE_ERR_SIZE;
	if (vr_get_be16(buf) != VR_WIRE_MAGIC_INGEST || buf[2] != VR_WIRE_VERSION)
		return -VR_WIRE_ERR_MAGIC;
	f->payload_size = vr_get_be16(buf + 30);
	if (f->payload_size > VR_WIRE_MAX_PAYLOAD ||
	    size != VR_WIRE_INGEST_HDR + (size_t)f->payload_size)
		return -VR_WIRE_ERR_SIZE;
	if (vr_get_be32(buf + 36) != ingest_crc(buf, buf + VR_WIRE_INGEST_HDR, f->payload_size))
		return -VR_WIRE_ERR_CHECKSUM;
	f->flags = vr_get_be32(buf + 32);
	if (buf[3] != VR_WIRE_FRAME || (f->flags & ~(uint32_t)VR_WIRE_F_RESUME))
		return -VR_WIRE_ERR_FORMAT;
	f->producer = vr_get_be32(buf + 4);
	f->producer_seq = vr_get_be64(buf + 8);
	f->account = vr_get_be64(buf + 16);
	f->vault = vr_get_be32(buf + 24);
	f->rec_type = buf[28];
	f->op = buf[29];
	f->payload = buf + VR_WIRE_INGEST_HDR;
	if (f->producer_seq == 0)
		return -VR_WIRE_ERR_FORMAT;
	return 0;
}

int
vr_wire_ack_encode(const struct vr_ack *a, uint8_t *buf, size_t cap)
{
	if (cap < VR_WIRE_ACK_SIZE)
		return -VR_WIRE_ERR_SIZE;
	vr_put_be16(buf, VR_WIRE_MAGIC_ACK);
	buf[2] = VR_WIRE_VERSION;
	buf[3] = a->kind;
	vr_put_be32(buf + 4, a->producer);
	vr_put_be64(buf + 8, a->producer_seq);
	vr_put_be64(buf + 16, a->account);
	vr_put_be32(buf + 24, a->vault);
	vr_put_be16(buf + 28, a->status);
	buf[30] = a->sites;
	buf[31] = 0;
	vr_put_be64(buf + 32, a->lsn);
	return VR_WIRE_ACK_SIZE;
}

int
vr_wire_ack_parse(const uint8_t *buf, size_t size, struct vr_ack *a)
{
	if (size != VR_WIRE_ACK_SIZE)
		return -VR_WIRE_ERR_SIZE;
	if (vr_get_be16(buf) != VR_WIRE_MAGIC_ACK || buf[2] != VR_WIRE_VERSION)
		return -VR_WIRE_ERR_MAGIC;
	a->kind = buf[3];
	a->producer = vr_get_be32(buf + 4);
	a->producer_seq = vr_get_be64(buf + 8);
	a->account = vr_get_be64(buf + 16);
	a->vault = vr_get_be32(buf + 24);
	a->status = vr_get_be16(buf + 28);
	a->sites = buf[30];
	a->lsn = vr_get_be64(buf + 32);
	/* An ack is durable somewhere with an LSN; a nack says why and claims nothing. */
	if (buf[31] != 0 || (a->kind == VR_WIRE_ACK && (a->status || !a->sites || !a->lsn)) ||
	    (a->kind == VR_WIRE_NACK &&
	     (!a->status || a->sites || (a->lsn && a->status != ERANGE))) ||
	    (a->kind != VR_WIRE_ACK && a->kind != VR_WIRE_NACK))
		return -VR_WIRE_ERR_FORMAT;
	return 0;
}

/* A data batch holds records from first_lsn; a key record holds none and one wrapped key. */
static bool
batch_shape_ok(const struct vr_batch_hdr *h)
{
	if (!h->seq || !h->sender || !h->primary)
		return false;
	if (h->kind == VR_WIRE_DATA)
		return h->n_records && h->n_records <= VR_WIRE_MAX_RECORDS && h->first_lsn;
	return h->kind == VR_WIRE_KEY && !h->n_records && !h->first_lsn &&
	       h->sealed_size > VR_WIRE_KEYREC_HDR &&
	       h->sealed_size <= VR_WIRE_KEYREC_HDR + VR_WIRE_KEYREC_MAX_BLOB;
}

int
vr_wire_batch_hdr_encode(const struct vr_batch_hdr *h, uint8_t out[VR_WIRE_BATCH_HDR])
{
	if (h->sealed_size > VR_WIRE_MAX_SEALED)
		return -VR_WIRE_ERR_SIZE;
	if (!batch_shape_ok(h))
		return -VR_WIRE_ERR_FORMAT;
	vr_put_be16(out, VR_WIRE_MAGIC_BATCH);
	out[2] = VR_WIRE_VERSION;
	out[3] = h->kind;
	vr_put_be16(out + 4, h->sender);
	vr_put_be16(out + 6, h->n_records);
	vr_put_be64(out + 8, h->account);
	vr_put_be32(out + 16, h->vault);
	vr_put_be16(out + 20, h->primary);
	vr_put_be16(out + 22, 0);
	vr_put_be32(out + 24, h->key_id);
	vr_put_be32(out + 28, h->sealed_size);
	vr_put_be64(out + 32, h->seq);
	vr_put_be64(out + 40, h->first_lsn);
	return VR_WIRE_BATCH_HDR;
}

int
vr_wire_batch_parse(const uint8_t *buf, size_t size, struct vr_batch_hdr *h)
{
	if (size < VR_WIRE_BATCH_HDR + VR_WIRE_TAG)
		return -VR_WIRE_ERR_SIZE;
	if (vr_get_be16(buf) != VR_WIRE_MAGIC_BATCH || buf[2] != VR_WIRE_VERSION)
		return -VR_WIRE_ERR_MAGIC;
	h->sealed_size = vr_get_be32(buf + 28);
	if (h->sealed_size > VR_WIRE_MAX_SEALED ||
	    size != VR_WIRE_BATCH_HDR + (size_t)h->sealed_size + VR_WIRE_TAG)
		return -VR_WIRE_ERR_SIZE;
	h->sender = vr_get_be16(buf + 4);
	h->n_records = vr_get_be16(buf + 6);
	h->account = vr_get_be64(buf + 8);
	h->vault = vr_get_be32(buf + 16);
	h->primary = vr_get_be16(buf + 20);
	h->key_id = vr_get_be32(buf + 24);
	h->seq = vr_get_be64(buf + 32);
	h->first_lsn = vr_get_be64(buf + 40);
	h->kind = buf[3];
	if (vr_get_be16(buf + 22) != 0 || !batch_shape_ok(h))
		return -VR_WIRE_ERR_FORMAT;
	return 0;
}

int
vr_wire_keyrec_parse(const uint8_t *buf, size_t size, struct vr_keyrec *k)
{
	if (size < VR_WIRE_KEYREC_HDR)
		return -VR_WIRE_ERR_SIZE;
	k->key_id = vr_get_be32(buf);
	k->blob_size = vr_get_be16(buf + 6);
	k->blob = buf + VR_WIRE_KEYREC_HDR;
	if (size != VR_WIRE_KEYREC_HDR + (size_t)k->blob_size)
		return -VR_WIRE_ERR_SIZE;
	if (!k->key_id || vr_get_be16(buf + 4) || !k->blob_size ||
	    k->blob_size > VR_WIRE_KEYREC_MAX_BLOB)
		return -VR_WIRE_ERR_FORMAT;
	return 0;
}

int
vr_wire_keyrec_encode(const struct vr_keyrec *k, uint8_t *buf, size_t cap)
{
	size_t n = VR_WIRE_KEYREC_HDR + (size_t)k->blob_size;

	if (!k->key_id || !k->blob_size || k->blob_size > VR_WIRE_KEYREC_MAX_BLOB)
		return -VR_WIRE_ERR_FORMAT;
	if (cap < n)
		return -VR_WIRE_ERR_SIZE;
	vr_put_be32(buf, k->key_id);
	vr_put_be16(buf + 4, 0);
	vr_put_be16(buf + 6, k->blob_size);
	memmove(buf + VR_WIRE_KEYREC_HDR, k->blob, k->blob_size);
	return (int)n;
}

void
vr_wire_wack_encode(const struct vr_wack *a, uint8_t out[VR_WIRE_WACK_SIZE])
{
	memset(out, 0, VR_WIRE_WACK_SIZE);
	vr_put_be16(out, VR_WIRE_MAGIC_WACK);
	out[2] = VR_WIRE_VERSION;
	out[3] = a->kind;
	vr_put_be16(out + 4, a->sender);
	vr_put_be64(out + 8, a->account);
	vr_put_be32(out + 16, a->vault);
	vr_put_be16(out + 20, a->primary);
	vr_put_be32(out + 24, a->key_id);
	vr_put_be64(out + 32, a->lsn);
	memcpy(out + VR_WIRE_WACK_MAC, a->tag, sizeof(a->tag));
}

int
vr_wire_wack_parse(const uint8_t *buf, size_t size, struct vr_wack *a)
{
	if (size != VR_WIRE_WACK_SIZE)
		return -VR_WIRE_ERR_SIZE;
	if (vr_get_be16(buf) != VR_WIRE_MAGIC_WACK || buf[2] != VR_WIRE_VERSION)
		return -VR_WIRE_ERR_MAGIC;
	a->kind = buf[3];
	a->sender = vr_get_be16(buf + 4);
	a->account = vr_get_be64(buf + 8);
	a->vault = vr_get_be32(buf + 16);
	a->primary = vr_get_be16(buf + 20);
	a->key_id = vr_get_be32(buf + 24);
	a->lsn = vr_get_be64(buf + 32);
	memcpy(a->tag, buf + VR_WIRE_WACK_MAC, sizeof(a->tag));
	if ((a->kind != VR_WIRE_WACK_ACK && a->kind != VR_WIRE_WACK_GAP) || vr_get_be16(buf + 6) ||
	    vr_get_be16(buf + 22) || vr_get_be32(buf + 28) || !a->sender || !a->primary)
		return -VR_WIRE_ERR_FORMAT;
	return 0;
}

int
vr_wire_peek_stream(const uint8_t *buf, size_t size, struct vr_wire_stream *s)
{
	if (size < 2)
		return -VR_WIRE_ERR_SIZE;
	switch (vr_get_be16(buf)) {
	case VR_WIRE_MAGIC_INGEST:
		if (size < VR_WIRE_INGEST_HDR)
			return -VR_WIRE_ERR_SIZE;
		s->account = vr_get_be64(buf + 16);
		s->vault = vr_get_be32(buf + 24);
		s->primary = 0;
		return 0;
	case VR_WIRE_MAGIC_BATCH:
	case VR_WIRE_MAGIC_WACK:
		if (size < 24)
			return -VR_WIRE_ERR_SIZE;
		s->account = vr_get_be64(buf + 8);
		s->vault = vr_get_be32(buf + 16);
		s->primary = vr_get_be16(buf + 20);
		return 0;
	default:
		return -VR_WIRE_ERR_MAGIC;
	}
}

EVP_MAC_CTX *
vr_wire_wack_mac_new(void)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
	                  OSSL_PARAM_construct_end()};

	EVP_MAC_free(mac); /* the context holds its own reference */
	if (ctx && !EVP_MAC_CTX_set_params(ctx, p)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

void
vr_wire_ack_key(const uint8_t key[32], uint8_t out[32])
{
	static const char label[] = "vaultrep wan ack v1";
	unsigned n = 32;

	HMAC(EVP_sha256(), key, 32, (const uint8_t *)label, sizeof(label) - 1, out, &n);
}

void
vr_wire_wack_tag(EVP_MAC_CTX *mac, const uint8_t ack_key[32], const uint8_t msg[VR_WIRE_WACK_MAC],
                 uint8_t tag[16])
{
	uint8_t full[32];
	unsigned n = sizeof(full);
	size_t len = 0;

	if (!mac || !EVP_MAC_init(mac, ack_key, 32, NULL) ||
	    !EVP_MAC_update(mac, msg, VR_WIRE_WACK_MAC) ||
	    !EVP_MAC_final(mac, full, &len, sizeof(full)) || len != sizeof(full))
		HMAC(EVP_sha256(), ack_key, 32, msg, VR_WIRE_WACK_MAC, full, &n);
	memcpy(tag, full, 16);
	OPENSSL_cleanse(full, sizeof(full));
}
