/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The WAL record: the one byte format every vaultrep component shares for a change to a vault
 * or a frame of an account's write-ahead log. The byte layout and the validity rules are
 * documented at the top of record.c; this header is its only owner.
 *
 * Encode and decode are pure functions over bytes: no I/O, no allocation, no global state, so
 * that they can be fuzzed and called from any thread (including DPDK lcores).
 */
#ifndef VR_RECORD_H
#define VR_RECORD_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

enum {
	VR_REC_VERSION = 1,
	VR_REC_HDR_SIZE = 56,
	VR_REC_ENTROPY_SIZE = 16,
	VR_REC_MAX_MEMBERS = 16,
	/* Large enough for a jumbo frame's payload or a wrapped key with its metadata. */
	VR_REC_MAX_PAYLOAD = 65536,
	VR_REC_MAX_SIZE = VR_REC_HDR_SIZE + 2 * VR_REC_MAX_MEMBERS + VR_REC_MAX_PAYLOAD,
	VR_STREAM_ID_SIZE = 14,
};

enum vr_rec_type {
	VR_REC_DATA = 1,  /* a producer's WAL frame */
	VR_REC_HSM = 2,   /* a vault key change (wrapped key material) */
	VR_REC_INFRA = 3, /* WAL structure: seed, membership */
};

enum vr_rec_op {
	VR_REC_OP_SEED = 1,        /* infra: first record of a WAL, names its primary site */
	VR_REC_OP_MEMBERS = 2,     /* infra: the member set changes */
	VR_REC_OP_PUT = 3,         /* data: an opaque frame from a producer */
	VR_REC_OP_KEY_INSERT = 4,  /* hsm: a new vault key */
	VR_REC_OP_KEY_ROTATE = 5,  /* hsm: a new version of a vault key */
	VR_REC_OP_KEY_DELETE = 6,  /* hsm: a vault key is deleted */
	VR_REC_OP_PAYLOAD_KEY = 7, /* hsm: a stream payload key, wrapped for a member */
};

/*
 * Errors of the record layer and of WAL validation (V7). Each is a distinct negative errno so
 * that callers, counters and tests can tell them apart; vr_rec_strerror() names them.
 */
#define VR_REC_ERR_SIZE     EMSGSIZE /* truncated, or larger than VR_REC_MAX_SIZE */
#define VR_REC_ERR_FORMAT   EPROTO   /* unknown version, type, op, flags or member count */
#define VR_REC_ERR_CHECKSUM EBADMSG  /* CRC32C does not match */
#define VR_REC_ERR_CHAIN    EILSEQ   /* entropy does not chain to the previous record */
#define VR_REC_ERR_GAP      ERANGE   /* LSN is beyond the next one: a gap */
#define VR_REC_ERR_STALE    EEXIST   /* LSN is at or below the last one: a repeat */
#define VR_REC_ERR_ORIGIN   EPERM    /* origin is not the WAL's primary site */
#define VR_REC_ERR_SEED     ENOMSG   /* first record of a WAL is not a seed, or a seed later */

/* A WAL is named by its account, its vault (or table) and its primary site. */
struct vr_stream_id {
	uint64_t account;
	uint32_t vault;
	uint16_t primary;
};

/*
 * A decoded record. After vr_rec_decode() the pointers alias the input buffer and are valid
 * as long as it is.
 */
struct vr_rec {
	struct vr_stream_id stream;
	uint64_t lsn;
	uint16_t origin;
	uint8_t version;
	uint8_t type;
	uint8_t op;
	uint8_t n_members;
	uint16_t members[VR_REC_MAX_MEMBERS];
	uint8_t entropy[VR_REC_ENTROPY_SIZE];
	uint32_t crc;
	uint32_t payload_size;
	const uint8_t *payload;
	const uint8_t *raw; /* the whole encoded record */
	uint32_t raw_size;
};

/* Encoded size of r, from its member count and payload size. */
static inline size_t
vr_rec_size(const struct vr_rec *r)
{
	return VR_REC_HDR_SIZE + 2u * r->n_members + r->payload_size;
}

/*
 * Encodes r into buf (capacity cap) chained to prev_entropy: computes and stores the entropy and
 * the checksum (also into r->entropy and r->crc). With prev_entropy NULL the record is left
 * unfinished (entropy and checksum zero) for vr_rec_finish or vr_log_append_as to complete.
 * Returns the encoded size, or -EMSGSIZE if cap is too small or the record too large, or
 * -EPROTO if a field is out of range.
 */
int vr_rec_encode(struct vr_rec *r, const uint8_t prev_entropy[VR_REC_ENTROPY_SIZE], uint8_t *buf,
                  size_t cap);

/*
 * Decodes one record from the start of buf, checking sizes, fields and the checksum (not the
 * chain, which needs the previous record). Returns the record's size (> 0) or a negative
 * VR_REC_ERR_*.
 */
int vr_rec_decode(const uint8_t *buf, size_t size, struct vr_rec *r);

/* As vr_rec_decode, for an unfinished record: everything but the checksum (R2). */
int vr_rec_decode_unfinished(const uint8_t *buf, size_t size, struct vr_rec *r);

/*
 * Finishes the encoded record raw (size bytes) as the successor of prev: stores its entropy
 * (also into entropy) and then its checksum.
 */
void vr_rec_finish(uint8_t *raw, size_t size, const uint8_t prev[VR_REC_ENTROPY_SIZE],
                   uint8_t entropy[VR_REC_ENTROPY_SIZE]);

/* The size of the record at the start of buf from its header alone (R1), or -VR_REC_ERR_*. */
int vr_rec_span(const uint8_t *buf, size_t size);

/* The primary site named by the record at the start of buf, or 0 if buf is too short. */
uint16_t vr_rec_peek_primary(const uint8_t *buf, size_t size);

/* The entropy a record of raw bytes must carry when it follows prev. Any thread. */
void vr_rec_entropy(const uint8_t prev[VR_REC_ENTROPY_SIZE], const uint8_t *raw, size_t size,
                    uint8_t out[VR_REC_ENTROPY_SIZE]);

/* 0 if the decoded record r chains to prev, else -VR_REC_ERR_CHAIN. */
int vr_rec_check_chain(const uint8_t prev[VR_REC_ENTROPY_SIZE], const struct vr_rec *r);

/* The entropy that a WAL's seed record (LSN 1) chains to: derived from the stream id. */
void vr_rec_genesis(const struct vr_stream_id *id, uint8_t out[VR_REC_ENTROPY_SIZE]);

/* Stream id <-> its 14-byte big-endian key form (account, vault, primary). */
void vr_stream_id_pack(const struct vr_stream_id *id, uint8_t out[VR_STREAM_ID_SIZE]);
void vr_stream_id_unpack(const uint8_t in[VR_STREAM_ID_SIZE], struct vr_stream_id *id);

/* A short description of a negative error from this module or vr_log (never NULL). */
const char *vr_rec_strerror(int err);

#endif /* VR_RECORD_H */
