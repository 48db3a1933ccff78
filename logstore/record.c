// SPDX-License-Identifier: BSD-3-Clause
/*
 * WAL record format, version 1.
 *
 * A record is one change to an account's WAL. All integers are big-endian.
 *
 *   offset  size  field
 *   0       4     crc32c      CRC32C (Castagnoli) of bytes [4, size)
 *   4       16    entropy     first 16 bytes of SHA-256(prev_entropy || bytes [20, size))
 *   20      1     version     VR_REC_VERSION (1)
 *   21      1     type        1 data, 2 hsm, 3 infrastructure
 *   22      1     op          see enum vr_rec_op; must belong to the type
 *   23      1     n_members   number of member site ids that follow the header, 0..16
 *   24      4     payload_size  bytes of payload, 0..65536
 *   28      2     primary     the WAL's primary (origin) site id          \
 *   30      2     origin      the site that wrote this record              | stream id is
 *   32      8     account     account id                                   | (account, vault,
 *   40      4     vault       vault or table id                           /  primary)
 *   44      4     flags       reserved, must be 0
 *   48      8     lsn         log sequence number, 1 for the seed record
 *   56      2*n   members     member site ids, each non-zero and distinct
 *   56+2n   p     payload     opaque to this layer
 *
 * prev_entropy is the entropy of the record with LSN-1 in the same WAL; for the seed record
 * (LSN 1) it is the genesis value, the first 16 bytes of SHA-256("vaultrep wal genesis v1" ||
 * stream id key). The entropy therefore commits to every byte of every earlier record of the WAL
 * (except the CRC, which is redundant with it) and to the WAL's identity: a record cannot be
 * moved to another WAL, reordered, dropped or altered without breaking the chain.
 *
 * Validity rules. A record is valid on its own (vr_rec_decode) when:
 *   R1. the buffer holds at least the 56-byte header, and 56 + 2*n_members + payload_size bytes;
 *       payload_size <= 65536 and n_members <= 16;
 *   R2. crc32c matches;
 *   R3. version is 1, the op belongs to the type, flags is 0, lsn >= 1, primary and origin are
 *       non-zero, member ids are non-zero and distinct.
 * A record is valid as the next record of a WAL (checked by vr_log before anything is written):
 *   W1. its LSN is the WAL's last LSN + 1 (else a gap, or a stale repeat);
 *   W2. its entropy chains to the WAL's last entropy (or to the genesis value for LSN 1);
 *   W3. its origin is the WAL's primary;
 *   W4. LSN 1 is an infrastructure seed record, and only LSN 1 is.
 * Recovery: a record that fails R1-R3 on read is corruption of the store, never skipped.
 *
 * Unfinished records. The site that is a WAL's primary makes its records in two steps, on two
 * threads: the dataplane's worker encodes a record with its entropy and CRC left zero
 * (vr_rec_encode with no previous entropy), and the log's writer finishes it (vr_rec_finish)
 * as it appends it (vr_log_append_as), because it computes the chain for validation anyway.
 * The hashing, the most expensive per-byte work of a record, so runs once per record and off
 * the worker's seal path. An unfinished record never leaves the site: it is sealed and sent
 * only once durable, and then finished.
 *
 * Why SHA-256 truncated to 128 bits: the chain is an integrity check against accident and
 * against a peer that forges records without the stream key (the WAN batches are authenticated
 * separately by AES-GCM); 128 bits keep collisions out of reach, and SHA-NI makes it cheap.
 * Why CRC32C as well: it finds a torn or flipped record without knowing its predecessor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>

#include "vr_common.h"
#include "vr_crc.h"
#include "vr_record.h"

enum {
	OFF_CRC = 0,
	OFF_ENTROPY = 4,
	OFF_VERSION = 20,
	OFF_TYPE = 21,
	OFF_OP = 22,
	OFF_N_MEMBERS = 23,
	OFF_PAYLOAD_SIZE = 24,
	OFF_PRIMARY = 28,
	OFF_ORIGIN = 30,
	OFF_ACCOUNT = 32,
	OFF_VAULT = 40,
	OFF_FLAGS = 44,
	OFF_LSN = 48,
	OFF_MEMBERS = 56,
	HASHED_FROM = OFF_VERSION,
};

_Static_assert((int)OFF_MEMBERS == (int)VR_REC_HDR_SIZE, "header layout");

/*
 * One EVP context per thread, reused: a fresh context per record costs an allocation, which
 * at millions of records per second is most of the hashing time.
 */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static EVP_MD *sha256;

static void
free_ctx(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void
md_init(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_key_create(&ctx_key, free_ctx);
}

static EVP_MD_CTX *
thread_ctx(void)
{
	EVP_MD_CTX *ctx;

	pthread_once(&md_once, md_init);
	ctx = pthread_getspecific(ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		pthread_setspecific(ctx_key, ctx);
	}
	return ctx;
}

static void
sha256_trunc(const void *a, size_t an, const void *b, size_t bn, uint8_t out[VR_REC_ENTROPY_SIZE])
{
	EVP_MD_CTX *ctx = thread_ctx();
	uint8_t md[32];
	unsigned int mdn;

	/* Allocation failures here are not recoverable in any useful way; fail closed. */
	if (!ctx || !sha256 || !EVP_DigestInit_ex2(ctx, sha256, NULL) ||
	    !EVP_DigestUpdate(ctx, a, an) || !EVP_DigestUpdate(ctx, b, bn) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdn)) {
		memset(out, 0, VR_REC_ENTROPY_SIZE);
		return;
	}
	memcpy(out, md, VR_REC_ENTROPY_SIZE);
}

void
vr_stream_id_pack(const struct vr_stream_id *id, uint8_t out[VR_STREAM_ID_SIZE])
{
	vr_put_be64(out, id->account);
	vr_put_be32(out + 8, id->vault);
	vr_put_be16(out + 12, id->primary);
}

void
vr_stream_id_unpack(const uint8_t in[VR_STREAM_ID_SIZE], struct vr_stream_id *id)
{
	id->account = vr_get_be64(in);
	id->vault = vr_get_be32(in + 8);
	id->primary = vr_get_be16(in + 12);
}

void
vr_rec_genesis(const struct vr_stream_id *id, uint8_t out[VR_REC_ENTROPY_SIZE])
{
	static const char tag[] = "vaultrep wal genesis v1";
	uint8_t key[VR_STREAM_ID_SIZE];

	vr_stream_id_pack(id, key);
	sha256_trunc(tag, sizeof(tag) - 1, key, sizeof(key), out);
}

void
vr_rec_entropy(const uint8_t prev[VR_REC_ENTROPY_SIZE], const uint8_t *raw, size_t size,
               uint8_t out[VR_REC_ENTROPY_SIZE])
{
	sha256_trunc(prev, VR_REC_ENTROPY_SIZE, raw + HASHED_FROM, size - HASHED_FROM, out);
}

int
vr_rec_check_chain(const uint8_t prev[VR_REC_ENTROPY_SIZE], const struct vr_rec *r)
{
	uint8_t e[VR_REC_ENTROPY_SIZE];

	vr_rec_entropy(prev, r->raw, r->raw_size, e);
	/* Not secret, so no constant-time compare is needed. */
	return memcmp(e, r->entropy, sizeof(e)) ? -VR_REC_ERR_CHAIN : 0;
}

static int
op_fits_type(uint8_t type, uint8_t op)
{
	switch (type) {
	case VR_REC_INFRA:
		return op == VR_REC_OP_SEED || op == VR_REC_OP_MEMBERS;
	case VR_REC_DATA:
		return op == VR_REC_OP_PUT;
	case VR_REC_HSM:
		return op == VR_REC_OP_KEY_INSERT || op == VR_REC_OP_KEY_ROTATE ||
		       op == VR_REC_OP_KEY_DELETE || op == VR_REC_OP_PAYLOAD_KEY;
	default:
		return 0;
	}
}

static int
fields_valid(const struct vr_rec *r, uint32_t flags)
{
	if (r->version != VR_REC_VERSION || !op_fits_type(r->type, r->op) || flags != 0 ||
	    r->lsn == 0 || r->stream.primary == 0 || r->origin == 0 ||
	    r->n_members > VR_REC_MAX_MEMBERS)
		return 0;
	for (unsigned i = 0; i < r->n_members; i++) {
		if (r->members[i] == 0)
			return 0;
		for (unsigned j = 0; j < i; j++)
			if (r->members[j] == r->members[i])
				return 0;
	}
	return 1;
}

int
vr_rec_encode(struct vr_rec *r, const uint8_t prev_entropy[VR_REC_ENTROPY_SIZE], uint8_t *buf,
              size_t cap)
{
	size_t size;

	if (r->n_members > VR_REC_MAX_MEMBERS)
		return -VR_REC_ERR_FORMAT;
	if (r->payload_size > VR_REC_MAX_PAYLOAD)
		return -VR_REC_ERR_SIZE;
	size = vr_rec_size(r);
	if (size > cap)
		return -VR_REC_ERR_SIZE;
	r->version = VR_REC_VERSION;
	if (!fields_valid(r, 0))
		return -VR_REC_ERR_FORMAT;

	buf[OFF_VERSION] = r->version;
	buf[OFF_TYPE] = r->type;
	buf[OFF_OP] = r->op;
	buf[OFF_N_MEMBERS] = r->n_members;
	vr_put_be32(buf + OFF_PAYLOAD_SIZE, r->payload_size);
	vr_put_be16(buf + OFF_PRIMARY, r->stream.primary);
	vr_put_be16(buf + OFF_ORIGIN, r->origin);
	vr_put_be64(buf + OFF_ACCOUNT, r->stream.account);
	vr_put_be32(buf + OFF_VAULT, r->stream.vault);
	vr_put_be32(buf + OFF_FLAGS, 0);
	vr_put_be64(buf + OFF_LSN, r->lsn);
	for (unsigned i = 0; i < r->n_members; i++)
		vr_put_be16(buf + OFF_MEMBERS + 2 * i, r->members[i]);
	/* memmove: the caller may build the payload in place, inside buf. */
	if (r->payload_size && r->payload != buf + OFF_MEMBERS + 2 * r->n_members)
		memmove(buf + OFF_MEMBERS + 2 * r->n_members, r->payload, r->payload_size);

	if (prev_entropy) {
		vr_rec_finish(buf, size, prev_entropy, r->entropy);
		r->crc = vr_get_be32(buf + OFF_CRC);
	} else {
		memset(buf, 0, OFF_VERSION);
		memset(r->entropy, 0, VR_REC_ENTROPY_SIZE);
		r->crc = 0;
	}

	r->payload = buf + OFF_MEMBERS + 2 * r->n_members;
	r->raw = buf;
	r->raw_size = (uint32_t)size;
	return (int)size;
}

void
vr_rec_finish(uint8_t *raw, size_t size, const uint8_t prev[VR_REC_ENTROPY_SIZE],
              uint8_t entropy[VR_REC_ENTROPY_SIZE])
{
	vr_rec_entropy(prev, raw, size, entropy);
	memcpy(raw + OFF_ENTROPY, entropy, VR_REC_ENTROPY_SIZE);
	vr_put_be32(raw + OFF_CRC, vr_crc32c(raw + 4, size - 4));
}

int
vr_rec_span(const uint8_t *buf, size_t size)
{
	uint32_t payload_size;
	uint8_t n_members;
	size_t total;

	/* R1: sizes, before anything else is read. */
	if (size < VR_REC_HDR_SIZE)
		return -VR_REC_ERR_SIZE;
	n_members = buf[OFF_N_MEMBERS];
	payload_size = vr_get_be32(buf + OFF_PAYLOAD_SIZE);
	if (n_members > VR_REC_MAX_MEMBERS)
		return -VR_REC_ERR_FORMAT;
	if (payload_size > VR_REC_MAX_PAYLOAD)
		return -VR_REC_ERR_SIZE;
	total = VR_REC_HDR_SIZE + 2u * n_members + payload_size;
	return total > size ? -VR_REC_ERR_SIZE : (int)total;
}

uint16_t
vr_rec_peek_primary(const uint8_t *buf, size_t size)
{
	return size < VR_REC_HDR_SIZE ? 0 : vr_get_be16(buf + OFF_PRIMARY);
}

static int
decode(const uint8_t *buf, size_t size, struct vr_rec *r, bool finished)
{
	int span = vr_rec_span(buf, size);
	uint32_t payload_size, flags;
	uint8_t n_members;
	size_t total;

	if (span < 0)
		return span;
	total = (size_t)span;
	n_members = buf[OFF_N_MEMBERS];
	payload_size = vr_get_be32(buf + OFF_PAYLOAD_SIZE);

	/* R2: the checksum, before trusting any field. */
	r->crc = vr_get_be32(buf + OFF_CRC);
	if (finished && vr_crc32c(buf + 4, total - 4) != r->crc)
		return -VR_REC_ERR_CHECKSUM;

	/* R3: fields. */
	memcpy(r->entropy, buf + OFF_ENTROPY, VR_REC_ENTROPY_SIZE);
	r->version = buf[OFF_VERSION];
	r->type = buf[OFF_TYPE];
	r->op = buf[OFF_OP];
	r->n_members = n_members;
	r->payload_size = payload_size;
	r->stream.primary = vr_get_be16(buf + OFF_PRIMARY);
	r->origin = vr_get_be16(buf + OFF_ORIGIN);
	r->stream.account = vr_get_be64(buf + OFF_ACCOUNT);
	r->stream.vault = vr_get_be32(buf + OFF_VAULT);
	flags = vr_get_be32(buf + OFF_FLAGS);
	r->lsn = vr_get_be64(buf + OFF_LSN);
	for (unsigned i = 0; i < n_members; i++)
		r->members[i] = vr_get_be16(buf + OFF_MEMBERS + 2 * i);
	if (!fields_valid(r, flags))
		return -VR_REC_ERR_FORMAT;

	r->payload = buf + OFF_MEMBERS + 2 * n_members;
	r->raw = buf;
	r->raw_size = (uint32_t)total;
	return (int)total;
}

int
vr_rec_decode(const uint8_t *buf, size_t size, struct vr_rec *r)
{
	return decode(buf, size, r, true);
}

int
vr_rec_decode_unfinished(const uint8_t *buf, size_t size, struct vr_rec *r)
{
	return decode(buf, size, r, false);
}

const char *
vr_rec_strerror(int err)
{
	switch (-err) {
	case 0:
		return "success";
	case VR_REC_ERR_SIZE:
		return "record truncated or too large";
	case VR_REC_ERR_FORMAT:
		return "record has an invalid field (version, type, op, flags, members)";
	case VR_REC_ERR_CHECKSUM:
		return "record checksum mismatch";
	case VR_REC_ERR_CHAIN:
		return "record entropy does not chain to the previous record";
	case VR_REC_ERR_GAP:
		return "record LSN leaves a gap";
	case VR_REC_ERR_STALE:
		return "record LSN is not newer than the WAL's last";
	case VR_REC_ERR_ORIGIN:
		return "record origin is not the WAL's primary site";
	case VR_REC_ERR_SEED:
		return "seed record misplaced: LSN 1 must be the seed, and only LSN 1";
	default:
		return strerror(-err);
	}
}
