// SPDX-License-Identifier: BSD-3-Clause
/* dataplane:wire — the ingest frame, the ingest ack and the WAN batch header: round trips, the
 * documented offsets, and every refusal; the WAN ack's tag. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "vr_common.h"
#include "vr_crc.h"
#include "vr_wire.h"
#include "vr_test.h"

static struct vr_ingest
frame(const uint8_t *payload, uint16_t n)
{
	return (struct vr_ingest){.producer = 7,
	                          .producer_seq = 99,
	                          .account = 0x1122334455667788ull,
	                          .vault = 0xaabbccdd,
	                          .rec_type = 1,
	                          .op = 3,
	                          .payload_size = n,
	                          .payload = payload};
}

START_TEST(ingest_round_trip_and_offsets)
{
	uint8_t payload[300], buf[400];
	struct vr_ingest f = frame(payload, sizeof(payload)), g;
	int n;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 13);
	n = vr_wire_ingest_encode(&f, buf, sizeof(buf));
	ck_assert_int_eq(n, 340);
	ck_assert_uint_eq(vr_get_be16(buf), 0x5649);
	ck_assert_uint_eq(vr_get_be64(buf + 8), 99);
	ck_assert_uint_eq(vr_get_be32(buf + 24), 0xaabbccdd);
	ck_assert_uint_eq(vr_get_be16(buf + 30), 300);
	{
		uint32_t c = vr_crc32c_update(vr_crc32c_begin(), buf, 36);

		c = vr_crc32c_end(vr_crc32c_update(c, buf + 40, 300));
		ck_assert_uint_eq(vr_get_be32(buf + 36), c);
	}
	ck_assert_int_eq(vr_wire_ingest_parse(buf, (size_t)n, &g), 0);
	ck_assert_uint_eq(g.producer, 7);
	ck_assert_uint_eq(g.account, f.account);
	ck_assert_uint_eq(g.op, 3);
	ck_assert_mem_eq(g.payload, payload, sizeof(payload));
}
END_TEST

START_TEST(ingest_refusals)
{
	uint8_t payload[20] = {1, 2, 3}, buf[100];
	struct vr_ingest f = frame(payload, sizeof(payload)), g;
	int n = vr_wire_ingest_encode(&f, buf, sizeof(buf));

	for (int len = 0; len < n; len++)
		ck_assert_int_lt(vr_wire_ingest_parse(buf, (size_t)len, &g), 0);
	ck_assert_int_eq(vr_wire_ingest_parse(buf, (size_t)n + 1, &g), -VR_WIRE_ERR_SIZE);
	for (int byte = 0; byte < n; byte++)
		for (int bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1 << bit);
			ck_assert_msg(vr_wire_ingest_parse(buf, (size_t)n, &g) < 0,
			              "flip of byte %d bit %d accepted", byte, bit);
			buf[byte] ^= (uint8_t)(1 << bit);
		}
	ck_assert_int_eq(vr_wire_ingest_parse(buf, (size_t)n, &g), 0);
	f.payload_size = VR_WIRE_MAX_PAYLOAD + 1;
	ck_assert_int_eq(vr_wire_ingest_encode(&f, buf, sizeof(buf)), -VR_WIRE_ERR_SIZE);
	f = frame(payload, sizeof(payload));
	f.producer_seq = 0;
	n = vr_wire_ingest_encode(&f, buf, sizeof(buf));
	ck_assert_int_eq(vr_wire_ingest_parse(buf, (size_t)n, &g), -VR_WIRE_ERR_FORMAT);
	buf[0] = 'X';
	ck_assert_int_eq(vr_wire_ingest_parse(buf, (size_t)n, &g), -VR_WIRE_ERR_MAGIC);
}
END_TEST

START_TEST(ack_rules)
{
	struct vr_ack a = {.kind = VR_WIRE_ACK,
	                   .producer = 1,
	                   .producer_seq = 2,
	                   .account = 3,
	                   .vault = 4,
	                   .sites = 2,
	                   .lsn = 77},
	              b;
	uint8_t buf[40];

	ck_assert_int_eq(vr_wire_ack_encode(&a, buf, sizeof(buf)), 40);
	ck_assert_uint_eq(vr_get_be64(buf + 32), 77);
	ck_assert_int_eq(vr_wire_ack_parse(buf, 40, &b), 0);
	ck_assert_uint_eq(b.lsn, 77);
	ck_assert_uint_eq(b.sites, 2);
	ck_assert_int_eq(vr_wire_ack_parse(buf, 39, &b), -VR_WIRE_ERR_SIZE);
	/* An ack without an LSN, a nack that claims durability: both malformed. */
	a.lsn = 0;
	vr_wire_ack_encode(&a, buf, sizeof(buf));
	ck_assert_int_eq(vr_wire_ack_parse(buf, 40, &b), -VR_WIRE_ERR_FORMAT);
	a = (struct vr_ack){.kind = VR_WIRE_NACK, .status = EPERM, .sites = 1};
	vr_wire_ack_encode(&a, buf, sizeof(buf));
	ck_assert_int_eq(vr_wire_ack_parse(buf, 40, &b), -VR_WIRE_ERR_FORMAT);
	a.sites = 0;
	vr_wire_ack_encode(&a, buf, sizeof(buf));
	ck_assert_int_eq(vr_wire_ack_parse(buf, 40, &b), 0);
	ck_assert_uint_eq(b.status, EPERM);
	buf[3] = 9;
	ck_assert_int_eq(vr_wire_ack_parse(buf, 40, &b), -VR_WIRE_ERR_FORMAT);
}
END_TEST

START_TEST(batch_header_round_trip_and_refusals)
{
	struct vr_batch_hdr h = {.kind = VR_WIRE_DATA,
	                         .sender = 2,
	                         .n_records = 16,
	                         .account = 5,
	                         .vault = 6,
	                         .primary = 2,
	                         .key_id = 0x01020304,
	                         .sealed_size = 1000,
	                         .seq = 123456789,
	                         .first_lsn = 42},
	                    g;
	uint8_t buf[48 + 1000 + 16] = {0};

	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, buf), 48);
	ck_assert_uint_eq(vr_get_be32(buf + 24), 0x01020304);
	ck_assert_uint_eq(vr_get_be64(buf + 32), 123456789);
	ck_assert_int_eq(vr_wire_batch_parse(buf, sizeof(buf), &g), 0);
	ck_assert_uint_eq(g.seq, h.seq);
	ck_assert_uint_eq(g.first_lsn, 42);
	ck_assert_int_eq(vr_wire_batch_parse(buf, sizeof(buf) - 1, &g), -VR_WIRE_ERR_SIZE);
	ck_assert_int_eq(vr_wire_batch_parse(buf, 48 + 15, &g), -VR_WIRE_ERR_SIZE);
	buf[23] = 1; /* reserved */
	ck_assert_int_eq(vr_wire_batch_parse(buf, sizeof(buf), &g), -VR_WIRE_ERR_FORMAT);
	buf[23] = 0;
	h.seq = 0;
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, buf), -VR_WIRE_ERR_FORMAT);
	vr_put_be64(buf + 32, 0);
	ck_assert_int_eq(vr_wire_batch_parse(buf, sizeof(buf), &g), -VR_WIRE_ERR_FORMAT);
	h.seq = 1;
	h.n_records = VR_WIRE_MAX_RECORDS + 1;
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, buf), -VR_WIRE_ERR_FORMAT);
	h.n_records = 1;
	h.sealed_size = VR_WIRE_MAX_SEALED + 1;
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, buf), -VR_WIRE_ERR_SIZE);
}
END_TEST

START_TEST(key_record_round_trip_and_refusals)
{
	uint8_t blob[384], body[8 + 384], pkt[48 + 8 + 384 + 16] = {0};
	struct vr_keyrec k = {.key_id = 7, .blob_size = sizeof(blob), .blob = blob}, g;
	struct vr_batch_hdr h = {.kind = VR_WIRE_KEY,
	                         .sender = 1,
	                         .account = 5,
	                         .vault = 6,
	                         .primary = 1,
	                         .key_id = 6,
	                         .sealed_size = sizeof(body),
	                         .seq = 99},
	                    hg;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7);
	ck_assert_int_eq(vr_wire_keyrec_encode(&k, body, sizeof(body)), (int)sizeof(body));
	ck_assert_int_eq(vr_wire_keyrec_parse(body, sizeof(body), &g), 0);
	ck_assert_uint_eq(g.key_id, 7);
	ck_assert_uint_eq(g.blob_size, 384);
	ck_assert(!memcmp(g.blob, blob, sizeof(blob)));
	ck_assert_int_eq(vr_wire_keyrec_parse(body, sizeof(body) - 1, &g), -VR_WIRE_ERR_SIZE);
	ck_assert_int_eq(vr_wire_keyrec_encode(&k, body, sizeof(body) - 1), -VR_WIRE_ERR_SIZE);
	body[5] = 1; /* reserved */
	ck_assert_int_eq(vr_wire_keyrec_parse(body, sizeof(body), &g), -VR_WIRE_ERR_FORMAT);
	body[5] = 0;
	vr_put_be32(body, 0); /* key id 0 */
	ck_assert_int_eq(vr_wire_keyrec_parse(body, sizeof(body), &g), -VR_WIRE_ERR_FORMAT);
	k.blob_size = VR_WIRE_KEYREC_MAX_BLOB + 1;
	ck_assert_int_eq(vr_wire_keyrec_encode(&k, body, sizeof(body)), -VR_WIRE_ERR_FORMAT);

	/* The batch around it: kind 2, no records, no LSN. */
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, pkt), 48);
	ck_assert_uint_eq(pkt[3], VR_WIRE_KEY);
	ck_assert_int_eq(vr_wire_batch_parse(pkt, sizeof(pkt), &hg), 0);
	ck_assert_uint_eq(hg.kind, VR_WIRE_KEY);
	ck_assert_uint_eq(hg.n_records, 0);
	vr_put_be16(pkt + 6, 1); /* a key record holds no records */
	ck_assert_int_eq(vr_wire_batch_parse(pkt, sizeof(pkt), &hg), -VR_WIRE_ERR_FORMAT);
	vr_put_be16(pkt + 6, 0);
	vr_put_be64(pkt + 40, 3); /* nor an LSN */
	ck_assert_int_eq(vr_wire_batch_parse(pkt, sizeof(pkt), &hg), -VR_WIRE_ERR_FORMAT);
	vr_put_be64(pkt + 40, 0);
	pkt[3] = 3; /* unknown kind */
	ck_assert_int_eq(vr_wire_batch_parse(pkt, sizeof(pkt), &hg), -VR_WIRE_ERR_FORMAT);
	h.kind = VR_WIRE_DATA; /* a data batch needs records */
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, pkt), -VR_WIRE_ERR_FORMAT);
}
END_TEST

START_TEST(peek_names_the_stream_and_its_owner)
{
	uint8_t buf[VR_WIRE_BATCH_HDR + 8 + VR_WIRE_TAG] = {0}, wack[VR_WIRE_WACK_SIZE];
	uint8_t payload[8] = {0}, frm[VR_WIRE_INGEST_HDR + 8];
	struct vr_ingest f = frame(payload, sizeof(payload));
	struct vr_batch_hdr h = {.kind = VR_WIRE_DATA,
	                         .sender = 2,
	                         .n_records = 1,
	                         .account = 0x0102030405060708ull,
	                         .vault = 77,
	                         .primary = 2,
	                         .key_id = 1,
	                         .sealed_size = 8,
	                         .seq = 1,
	                         .first_lsn = 1};
	struct vr_wack a = {.kind = VR_WIRE_WACK_ACK,
	                    .sender = 3,
	                    .account = 9,
	                    .vault = 10,
	                    .primary = 1,
	                    .key_id = 1,
	                    .lsn = 5};
	struct vr_wire_stream s;
	unsigned count[4] = {0};

	ck_assert_int_eq(vr_wire_ingest_encode(&f, frm, sizeof(frm)), (int)sizeof(frm));
	ck_assert_int_eq(vr_wire_peek_stream(frm, sizeof(frm), &s), 0);
	ck_assert_uint_eq(s.account, f.account);
	ck_assert_uint_eq(s.vault, f.vault);
	ck_assert_uint_eq(s.primary, 0);
	ck_assert_int_eq(vr_wire_batch_hdr_encode(&h, buf), 48);
	ck_assert_int_eq(vr_wire_peek_stream(buf, sizeof(buf), &s), 0);
	ck_assert_uint_eq(s.account, h.account);
	ck_assert_uint_eq(s.vault, 77);
	ck_assert_uint_eq(s.primary, 2);
	vr_wire_wack_encode(&a, wack);
	ck_assert_int_eq(vr_wire_peek_stream(wack, sizeof(wack), &s), 0);
	ck_assert_uint_eq(s.account, 9);
	ck_assert_uint_eq(s.vault, 10);
	ck_assert_uint_eq(s.primary, 1);
	/* Too short for the fields, or not ours. */
	ck_assert_int_eq(vr_wire_peek_stream(frm, 39, &s), -VR_WIRE_ERR_SIZE);
	ck_assert_int_eq(vr_wire_peek_stream(buf, 23, &s), -VR_WIRE_ERR_SIZE);
	ck_assert_int_eq(vr_wire_peek_stream(buf, 1, &s), -VR_WIRE_ERR_SIZE);
	buf[0] = 0x45;
	ck_assert_int_eq(vr_wire_peek_stream(buf, sizeof(buf), &s), -VR_WIRE_ERR_MAGIC);

	/* Owners: one worker owns everything; 100 000 streams of one account spread evenly. */
	ck_assert_uint_eq(vr_wire_stream_owner(5, 6, 1, 1), 0);
	ck_assert_uint_eq(vr_wire_stream_owner(5, 6, 1, 4), vr_wire_stream_owner(5, 6, 1, 4));
	for (uint32_t v = 0; v < 100000; v++)
		count[vr_wire_stream_owner(1, v, 1, 4)]++;
	for (unsigned i = 0; i < 4; i++)
		ck_assert_msg(count[i] > 24000 && count[i] < 26000, "worker %u owns %u of 100000",
		              i, count[i]);
	memset(count, 0, sizeof(count));
	for (uint64_t acc = 0; acc < 100000; acc++)
		count[vr_wire_stream_owner(acc, 1, 1, 2)]++;
	ck_assert_msg(count[0] > 49000 && count[0] < 51000, "worker 0 owns %u of 100000", count[0]);
}
END_TEST

/* A payload key's ack key, against Python's hmac module: HMAC-SHA256(key, the label). */
START_TEST(ack_key_is_hmac_sha256_of_the_label)
{
	static const uint8_t want[32] = {
	    0x1e, 0xd0, 0xb1, 0xf6, 0x06, 0x9a, 0x6e, 0x30, 0xd2, 0x9a, 0x93,
	    0x2a, 0xdd, 0x5f, 0x95, 0x16, 0x76, 0x19, 0x96, 0x62, 0x41, 0xc3,
	    0xb1, 0x8c, 0xd6, 0xb9, 0xc4, 0xac, 0x35, 0xf0, 0x1b, 0x3d,
	};
	uint8_t key[32], out[32];

	for (unsigned i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	memset(out, 0, sizeof(out));
	vr_wire_ack_key(key, out);
	ck_assert_mem_eq(out, want, sizeof(out));
	/* One bit of the payload key moves it. */
	key[31] ^= 1;
	vr_wire_ack_key(key, out);
	ck_assert_int_ne(memcmp(out, want, sizeof(out)), 0);
}
END_TEST

/*
 * A WAN ack's tag, against HMAC-SHA256 from another implementation (Python's hmac module,
 * truncated to 16 bytes): through one context keyed again for each tag, across two keys and
 * back, and through the one-shot fallback (no context).
 */
START_TEST(wack_tag_is_truncated_hmac_sha256)
{
	static const uint8_t want[2][16] = {
	    {0x07, 0x70, 0x50, 0xa3, 0xc3, 0x86, 0xc3, 0x3f, 0x51, 0xc2, 0xa5, 0xfa, 0x65, 0x19,
	     0x3c, 0xd5},
	    {0x0a, 0x3b, 0x4c, 0x3e, 0xd5, 0xa9, 0xbb, 0xc1, 0x35, 0xc2, 0x27, 0xce, 0xa4, 0xad,
	     0x87, 0x2f},
	};
	uint8_t key[2][32], msg[VR_WIRE_WACK_MAC], tag[16];
	EVP_MAC_CTX *mac = vr_wire_wack_mac_new();

	ck_assert_ptr_nonnull(mac);
	for (unsigned i = 0; i < 32; i++) {
		key[0][i] = (uint8_t)i;
		key[1][i] = (uint8_t)(32 + i);
	}
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(100 + i);
	for (unsigned round = 0; round < 3; round++)
		for (unsigned k = 0; k < 2; k++) {
			memset(tag, 0, sizeof(tag));
			vr_wire_wack_tag(mac, key[k], msg, tag);
			ck_assert_mem_eq(tag, want[k], sizeof(tag));
			memset(tag, 0, sizeof(tag));
			vr_wire_wack_tag(NULL, key[k], msg, tag);
			ck_assert_mem_eq(tag, want[k], sizeof(tag));
		}
	/* One bit of the message moves the tag. */
	msg[39] ^= 1;
	vr_wire_wack_tag(mac, key[0], msg, tag);
	ck_assert_int_ne(memcmp(tag, want[0], sizeof(tag)), 0);
	EVP_MAC_CTX_free(mac);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    ingest_round_trip_and_offsets,
	    ingest_refusals,
	    ack_rules,
	    batch_header_round_trip_and_refusals,
	    key_record_round_trip_and_refusals,
	    peek_names_the_stream_and_its_owner,
	    wack_tag_is_truncated_hmac_sha256,
	    ack_key_is_hmac_sha256_of_the_label,
	};

	return vr_test_run("dataplane:wire", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
