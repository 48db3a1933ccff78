/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's wire formats, their only owner. All integers big-endian; every header has a
 * fixed size (static_assert'd); parsers are pure functions over bytes, so that they can be
 * fuzzed and run on mbuf data in place.
 *
 * Ingest frame: a producer's WAL frame, the payload of a UDP datagram to the LAN port.
 *
 *   0   2  magic          0x5649 "VI"
 *   2   1  version        1
 *   3   1  kind           1 (frame)
 *   4   4  producer       producer id
 *   8   8  producer_seq   per producer and stream, from 1: a retransmitted frame is recognised
 *                         and answered with its original ack, never appended twice
 *   16  8  account        \  the stream (its primary is this site)
 *   24  4  vault          /
 *   28  1  rec_type       vr_record.h type
 *   29  1  op             vr_record.h op
 *   30  2  payload_size   0..VR_WIRE_MAX_PAYLOAD
 *   32  4  flags          bit 0 RESUME: every earlier frame of this producer and stream was
 *                         acked; the other bits are reserved (0). After the appliance
 *                         restarted it knows no producer: it takes a producer's frames again
 *                         only from one marked RESUME (or seq 1), and answers others with an
 *                         ERANGE nack whose lsn is 0 ("resend from your first unacked frame"),
 *                         so that nothing is skipped; a frame durable but unacked before the
 *                         restart may then be appended twice (at least once, never lost)
 *   36  4  crc32c         CRC32C of bytes [0, 36) then the payload (UDP's checksum is
 *                         optional and weak)
 *   40  ...payload
 *
 * Ingest ack: the appliance's answer to one frame, to the frame's source address. A producer's
 * frames are appended in its order, so an ack is cumulative: an ack of producer_seq s says that
 * every frame of that producer and stream up to s is durable (record s at lsn, s - 1 at
 * lsn - 1 when the producer is the stream's only one). A frame sent again after it became
 * durable is answered with the producer's latest durable frame.
 *
 *   0   2  magic          0x5641 "VA"
 *   2   1  version        1
 *   3   1  kind           2 ack (durable), 3 nack (refused: status says why)
 *   4   4  producer
 *   8   8  producer_seq
 *   16  8  account
 *   24  4  vault
 *   28  2  status         0, or the errno of a refusal
 *   30  1  sites          sites the record is durable at (1: this one; N for sync vaults)
 *   31  1  reserved       0
 *   32  8  lsn            the LSN the record got (X3); in a nack 0, except for ERANGE (the
 *                         frame is not the next of its producer), where it is the sequence
 *                         the appliance expects next: the producer resends from there
 *
 * WAN data batch: records of one stream, sealed under one payload key.
 *
 *   0   2  magic          0x5642 "VB"
 *   2   1  version        1
 *   3   1  kind           1 data, 2 key record
 *   4   2  sender         sender site id
 *   6   2  n_records      data: 1..VR_WIRE_MAX_RECORDS; key record: 0
 *   8   8  account        \
 *   16  4  vault           | the stream
 *   20  2  primary        /
 *   22  2  reserved       0
 *   24  4  key_id         the payload key the batch is sealed under
 *   28  4  sealed_size    bytes of ciphertext (the records, vr_record.h); the tag follows
 *   32  8  seq            batch sequence: the nonce is salt || seq (vr_nonce.h)
 *   40  8  first_lsn      data: LSN of the first record; key record: 0
 *   48  ...ciphertext, then a 16-byte GCM tag. The 48-byte header is the AAD.
 *
 * Key record (D4): a batch of kind 2, sealed under the stream's current payload key (key_id,
 * with a sequence of that key like any batch, so the replay window covers it), whose plaintext
 * carries the stream's next payload key wrapped for the one member it is sent to. A key record
 * is authentic only under a key the receiver already holds: the first key of a stream reaches a
 * member through control (the authenticated peer link, K1), every later one in the stream.
 *
 *   0   4  key_id         the new key's id (not the sealing key's)
 *   4   2  reserved       0
 *   6   2  blob_size      1..VR_WIRE_KEYREC_MAX_BLOB
 *   8   ...blob           the key under the member's site KEK (RSA-OAEP, through the hsm_agent)
 *
 * The member answers with a WAN ack tagged under the new key's ack key once it holds the key:
 * that proves to the origin that the key arrived and unwrapped.
 *
 * WAN ack: a receiver's cumulative acknowledgement for one stream, or a gap report.
 *
 *   0   2  magic          0x564B "VK"
 *   2   1  version        1
 *   3   1  kind           1 ack: durable up to lsn; 2 gap: durable up to lsn, and a batch
 *                         after a hole arrived, so resend from lsn + 1 now
 *   4   2  sender         the acknowledging site
 *   6   2  reserved       0
 *   8   8  account        \
 *   16  4  vault           | the stream
 *   20  2  primary        /
 *   22  2  reserved       0
 *   24  4  key_id         the payload key whose ack key made the tag
 *   28  4  reserved       0
 *   32  8  lsn            highest LSN durable at the sender of the ack
 *   40  16 tag            first 16 bytes of HMAC-SHA256(ack key, bytes [0, 40)); the ack key
 *                         is HMAC-SHA256(payload key, "vaultrep wan ack v1"). A MAC without a
 *                         nonce: acks are cumulative, so a replayed ack says nothing new.
 *
 * Validity: magic, version and kind known; sizes within bounds and exactly what the buffer
 * holds (a datagram carries one message, nothing after it); reserved fields zero; the ingest
 * frame's CRC matches; a batch has 1..VR_WIRE_MAX_RECORDS records and seq >= 1.
 *
 */
#ifndef VR_WIRE_H
#define VR_WIRE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

enum {
	VR_WIRE_VERSION = 1,
	VR_WIRE_MAGIC_INGEST = 0x5649,
	VR_WIRE_MAGIC_ACK = 0x5641,
	VR_WIRE_MAGIC_BATCH = 0x5642,
	VR_WIRE_MAGIC_WACK = 0x564B,
	VR_WIRE_WACK_SIZE = 56,
	VR_WIRE_WACK_MAC = 40, /* bytes the tag covers */
	VR_WIRE_INGEST_HDR = 40,
	VR_WIRE_ACK_SIZE = 40,
	VR_WIRE_BATCH_HDR = 48,
	VR_WIRE_TAG = 16,
	/* A jumbo frame (9000) less IPv4, UDP and our header. */
	VR_WIRE_MAX_PAYLOAD = 9000 - 20 - 8 - VR_WIRE_INGEST_HDR,
	VR_WIRE_MAX_RECORDS = 4096,
	VR_WIRE_MAX_SEALED = 9000 - 20 - 8 - VR_WIRE_BATCH_HDR - VR_WIRE_TAG,
	VR_WIRE_KEYREC_HDR = 8,
	VR_WIRE_KEYREC_MAX_BLOB = 1024, /* RSA-4096 is 512 */
};

enum vr_wire_kind {
	VR_WIRE_FRAME = 1,
	VR_WIRE_ACK = 2,
	VR_WIRE_NACK = 3,
	VR_WIRE_DATA = 1, /* batch kinds have their own space */
	VR_WIRE_KEY = 2,
	VR_WIRE_F_RESUME = 1, /* ingest frame flag */
	VR_WIRE_WACK_ACK = 1,
	VR_WIRE_WACK_GAP = 2,
};

struct vr_ingest {
	uint32_t producer;
	uint64_t producer_seq;
	uint64_t account;
	uint32_t vault;
	uint8_t rec_type, op;
	uint16_t payload_size;
	uint32_t flags;         /* VR_WIRE_F_* */
	const uint8_t *payload; /* into the parsed buffer */
};

struct vr_ack {
	uint8_t kind; /* VR_WIRE_ACK or VR_WIRE_NACK */
	uint32_t producer;
	uint64_t producer_seq;
	uint64_t account;
	uint32_t vault;
	uint16_t status;
	uint8_t sites;
	uint64_t lsn;
};

struct vr_batch_hdr {
	uint8_t kind; /* VR_WIRE_DATA or VR_WIRE_KEY */
	uint16_t sender;
	uint16_t n_records;
	uint64_t account;
	uint32_t vault;
	uint16_t primary;
	uint32_t key_id;
	uint32_t sealed_size;
	uint64_t seq;
	uint64_t first_lsn;
};

struct vr_keyrec {
	uint32_t key_id;
	uint16_t blob_size;
	const uint8_t *blob; /* into the parsed buffer */
};

struct vr_wack {
	uint8_t kind; /* VR_WIRE_WACK_ACK or VR_WIRE_WACK_GAP */
	uint16_t sender;
	uint64_t account;
	uint32_t vault;
	uint16_t primary;
	uint32_t key_id;
	uint64_t lsn;
	uint8_t tag[16];
};

/* Parse errors: distinct negative errnos, each with a drop counter in the dataplane. */
#define VR_WIRE_ERR_SIZE     EMSGSIZE        /* shorter or longer than it says */
#define VR_WIRE_ERR_MAGIC    EPROTONOSUPPORT /* not ours, or another version */
#define VR_WIRE_ERR_FORMAT   EPROTO          /* unknown kind, reserved bits set, bad counts */
#define VR_WIRE_ERR_CHECKSUM EBADMSG

/* Encoders return the bytes written, or -EMSGSIZE if cap is too small or a field too large. */
int vr_wire_ingest_encode(const struct vr_ingest *f, uint8_t *buf, size_t cap);
int vr_wire_ack_encode(const struct vr_ack *a, uint8_t *buf, size_t cap);
int vr_wire_batch_hdr_encode(const struct vr_batch_hdr *h, uint8_t out[VR_WIRE_BATCH_HDR]);
/* Writes all VR_WIRE_WACK_SIZE bytes, the tag from a->tag (compute it over the first 40). */
void vr_wire_wack_encode(const struct vr_wack *a, uint8_t out[VR_WIRE_WACK_SIZE]);
/*
 * A WAN ack's tag: the first 16 bytes of HMAC-SHA256(ack_key, its first VR_WIRE_WACK_MAC
 * bytes). mac is a thread's own context (vr_wire_wack_mac_new), keyed again for each tag; with
 * NULL (no context could be made) OpenSSL's one-shot HMAC gives the same tag, at three times the
 * cost (it looks the algorithm up and allocates on every call: 1.2 us against 0.38 us here).
 */
EVP_MAC_CTX *vr_wire_wack_mac_new(void);
/* The ack key of a payload key (32 bytes): HMAC-SHA256(key, "vaultrep wan ack v1"). */
void vr_wire_ack_key(const uint8_t key[32], uint8_t out[32]);
void vr_wire_wack_tag(EVP_MAC_CTX *mac, const uint8_t ack_key[32],
                      const uint8_t msg[VR_WIRE_WACK_MAC], uint8_t tag[16]);

/* Parsers: 0, or a negative VR_WIRE_ERR_*. buf holds exactly one message. */
int vr_wire_ingest_parse(const uint8_t *buf, size_t size, struct vr_ingest *f);
int vr_wire_ack_parse(const uint8_t *buf, size_t size, struct vr_ack *a);
/* A whole batch: header, sealed_size bytes of ciphertext and the tag. */
int vr_wire_batch_parse(const uint8_t *buf, size_t size, struct vr_batch_hdr *h);
/* A key record's plaintext (the opened body of a VR_WIRE_KEY batch): exactly size bytes. */
int vr_wire_keyrec_parse(const uint8_t *buf, size_t size, struct vr_keyrec *k);
/* Its encoder: the bytes written (VR_WIRE_KEYREC_HDR + blob_size), or -EMSGSIZE / -EPROTO. */
int vr_wire_keyrec_encode(const struct vr_keyrec *k, uint8_t *buf, size_t cap);
/* The shape of a WAN ack; the caller verifies its tag. */
int vr_wire_wack_parse(const uint8_t *buf, size_t size, struct vr_wack *a);

/*
 * The stream a datagram names, read from its fixed offsets without checking the rest (the
 * dataplane picks the worker lcore that owns the stream with it, D9; the owner then parses the
 * whole message). primary is 0 for an ingest frame (its primary is the receiving site).
 * 0, or -VR_WIRE_ERR_SIZE / -VR_WIRE_ERR_MAGIC.
 */
struct vr_wire_stream {
	uint64_t account;
	uint32_t vault;
	uint16_t primary;
};
int vr_wire_peek_stream(const uint8_t *buf, size_t size, struct vr_wire_stream *s);

/*
 * The worker (0..n-1) that owns stream (account, vault, primary): a 64-bit mix of the id, so
 * that consecutive accounts or vaults spread evenly. Every thread computes the same owner.
 */
static inline unsigned
vr_wire_stream_owner(uint64_t account, uint32_t vault, uint16_t primary, unsigned n)
{
	uint64_t h = account * 0x9e3779b97f4a7c15ull;

	h ^= ((uint64_t)vault << 16 | primary) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return n > 1 ? (unsigned)(h % n) : 0;
}

#endif /* VR_WIRE_H */
