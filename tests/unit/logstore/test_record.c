// SPDX-License-Identifier: BSD-3-Clause
/*
 * logstore:record — the WAL record codec: round trips, the byte layout against independent
 * oracles (a bitwise CRC32C and OpenSSL's one-shot SHA-256), and every validation failure.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "vr_common.h"
#include "vr_record.h"
#include "vr_test.h"

static uint32_t
ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return c ^ 0xffffffffu;
}

static struct vr_rec
sample(uint8_t *payload, size_t n)
{
	struct vr_rec r = {0};

	r.stream = (struct vr_stream_id){
	    .account = 0x0102030405060708ull, .vault = 0x0a0b0c0d, .primary = 7};
	r.origin = 7;
	r.lsn = 42;
	r.type = VR_REC_HSM;
	r.op = VR_REC_OP_KEY_ROTATE;
	r.n_members = 3;
	r.members[0] = 7;
	r.members[1] = 9;
	r.members[2] = 11;
	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	r.payload = payload;
	r.payload_size = (uint32_t)n;
	return r;
}

static const uint8_t zero_prev[VR_REC_ENTROPY_SIZE];

START_TEST(crc_oracle_matches_known_vector)
{
	ck_assert_uint_eq(ref_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
}
END_TEST

START_TEST(round_trip_all_fields)
{
	uint8_t payload[300], buf[512];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	ck_assert_int_eq(n, VR_REC_HDR_SIZE + 6 + 300);
	ck_assert_int_eq(vr_rec_decode(buf, (size_t)n, &d), n);
	ck_assert_uint_eq(d.stream.account, r.stream.account);
	ck_assert_uint_eq(d.stream.vault, r.stream.vault);
	ck_assert_uint_eq(d.stream.primary, 7);
	ck_assert_uint_eq(d.origin, 7);
	ck_assert_uint_eq(d.lsn, 42);
	ck_assert_uint_eq(d.type, VR_REC_HSM);
	ck_assert_uint_eq(d.op, VR_REC_OP_KEY_ROTATE);
	ck_assert_uint_eq(d.version, VR_REC_VERSION);
	ck_assert_uint_eq(d.n_members, 3);
	ck_assert_uint_eq(d.members[2], 11);
	ck_assert_uint_eq(d.payload_size, 300);
	ck_assert_mem_eq(d.payload, payload, 300);
	ck_assert_mem_eq(d.entropy, r.entropy, VR_REC_ENTROPY_SIZE);
	ck_assert_ptr_eq(d.raw, buf);
}
END_TEST

START_TEST(layout_is_big_endian_at_documented_offsets)
{
	uint8_t payload[4], buf[128];
	struct vr_rec r = sample(payload, sizeof(payload));
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(vr_get_be32(buf + 0), ref_crc32c(buf + 4, (size_t)n - 4));
	ck_assert_uint_eq(buf[20], 1);
	ck_assert_uint_eq(buf[21], VR_REC_HSM);
	ck_assert_uint_eq(buf[22], VR_REC_OP_KEY_ROTATE);
	ck_assert_uint_eq(buf[23], 3);
	ck_assert_uint_eq(vr_get_be32(buf + 24), 4);
	ck_assert_uint_eq(vr_get_be16(buf + 28), 7);
	ck_assert_uint_eq(vr_get_be16(buf + 30), 7);
	ck_assert_uint_eq(buf[32], 0x01);
	ck_assert_uint_eq(buf[39], 0x08);
	ck_assert_uint_eq(vr_get_be32(buf + 40), 0x0a0b0c0d);
	ck_assert_uint_eq(vr_get_be32(buf + 44), 0);
	ck_assert_uint_eq(vr_get_be64(buf + 48), 42);
	ck_assert_uint_eq(vr_get_be16(buf + 56), 7);
	ck_assert_uint_eq(vr_get_be16(buf + 60), 11);
	ck_assert_mem_eq(buf + 62, payload, 4);
}
END_TEST

START_TEST(entropy_is_truncated_sha256_of_prev_and_body)
{
	uint8_t payload[50], buf[256], in[256 + 16], md[32];
	uint8_t prev[VR_REC_ENTROPY_SIZE];
	struct vr_rec r = sample(payload, sizeof(payload));
	unsigned int mdn;
	int n;

	memset(prev, 0x5a, sizeof(prev));
	n = vr_rec_encode(&r, prev, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	memcpy(in, prev, 16);
	memcpy(in + 16, buf + 20, (size_t)n - 20);
	ck_assert(EVP_Digest(in, 16 + (size_t)n - 20, md, &mdn, EVP_sha256(), NULL));
	ck_assert_mem_eq(buf + 4, md, 16);
}
END_TEST

START_TEST(chain_accepts_true_prev_and_rejects_any_other)
{
	uint8_t payload[10], buf[256], prev[16];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n;

	memset(prev, 1, sizeof(prev));
	n = vr_rec_encode(&r, prev, buf, sizeof(buf));
	ck_assert_int_eq(vr_rec_decode(buf, (size_t)n, &d), n);
	ck_assert_int_eq(vr_rec_check_chain(prev, &d), 0);
	prev[15] ^= 1;
	ck_assert_int_eq(vr_rec_check_chain(prev, &d), -VR_REC_ERR_CHAIN);
}
END_TEST

START_TEST(unfinished_record_finishes_to_the_chained_encoding)
{
	uint8_t payload[40], chained[256], buf[256], prev[16], e[16];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n, m;

	memset(prev, 3, sizeof(prev));
	n = vr_rec_encode(&r, prev, chained, sizeof(chained));
	r = sample(payload, sizeof(payload));
	m = vr_rec_encode(&r, NULL, buf, sizeof(buf));
	ck_assert_int_eq(m, n);
	/* Unfinished: checksum and entropy zero, the rest the chained encoding's. */
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_mem_eq(buf + 20, chained + 20, (size_t)n - 20);
	ck_assert_int_eq(vr_rec_decode(buf, (size_t)m, &d), -VR_REC_ERR_CHECKSUM);
	ck_assert_int_eq(vr_rec_decode_unfinished(buf, (size_t)m, &d), m);
	ck_assert_uint_eq(d.lsn, 42);
	ck_assert_int_eq(vr_rec_span(buf, (size_t)m + 9), m);
	ck_assert_int_eq(vr_rec_span(buf, (size_t)m - 1), -VR_REC_ERR_SIZE);
	ck_assert_uint_eq(vr_rec_peek_primary(buf, (size_t)m), 7);
	ck_assert_uint_eq(vr_rec_peek_primary(buf, VR_REC_HDR_SIZE - 1), 0);
	/* Finished, it is byte for byte the chained encoding and decodes as one. */
	vr_rec_finish(buf, (size_t)m, prev, e);
	ck_assert_mem_eq(buf, chained, (size_t)n);
	ck_assert_mem_eq(e, chained + 4, 16);
	ck_assert_int_eq(vr_rec_decode(buf, (size_t)m, &d), n);
	ck_assert_int_eq(vr_rec_check_chain(prev, &d), 0);
}
END_TEST

START_TEST(genesis_differs_per_stream)
{
	struct vr_stream_id a = {1, 2, 3}, b = {1, 2, 4}, c = {1, 3, 3};
	uint8_t ea[16], eb[16], ec[16], ea2[16];

	vr_rec_genesis(&a, ea);
	vr_rec_genesis(&b, eb);
	vr_rec_genesis(&c, ec);
	vr_rec_genesis(&a, ea2);
	ck_assert_mem_eq(ea, ea2, 16);
	ck_assert(memcmp(ea, eb, 16) != 0);
	ck_assert(memcmp(ea, ec, 16) != 0);
}
END_TEST

START_TEST(every_truncation_is_refused)
{
	uint8_t payload[40], buf[256];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	for (int len = 0; len < n; len++)
		ck_assert_int_eq(vr_rec_decode(buf, (size_t)len, &d), -VR_REC_ERR_SIZE);
}
END_TEST

START_TEST(trailing_bytes_are_not_part_of_the_record)
{
	uint8_t payload[40], buf[256];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	ck_assert_int_eq(vr_rec_decode(buf, sizeof(buf), &d), n);
}
END_TEST

START_TEST(every_flipped_bit_is_caught)
{
	uint8_t payload[24], buf[256];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	for (int byte = 0; byte < n; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			buf[byte] ^= (uint8_t)(1 << bit);
			rc = vr_rec_decode(buf, (size_t)n, &d);
			/* Size fields can fail R1 before the checksum is read; anything else R2. */
			ck_assert_msg(rc < 0, "flip of byte %d bit %d accepted", byte, bit);
			buf[byte] ^= (uint8_t)(1 << bit);
		}
	}
	ck_assert_int_eq(vr_rec_decode(buf, (size_t)n, &d), n);
}
END_TEST

START_TEST(oversized_payload_is_refused)
{
	uint8_t buf[VR_REC_HDR_SIZE + 16] = {0};
	struct vr_rec d;

	vr_put_be32(buf + 24, VR_REC_MAX_PAYLOAD + 1);
	ck_assert_int_eq(vr_rec_decode(buf, sizeof(buf), &d), -VR_REC_ERR_SIZE);
	vr_put_be32(buf + 24, 0xffffffffu);
	ck_assert_int_eq(vr_rec_decode(buf, sizeof(buf), &d), -VR_REC_ERR_SIZE);
}
END_TEST

START_TEST(encode_refuses_small_buffer_and_large_payload)
{
	uint8_t payload[100], buf[120];
	struct vr_rec r = sample(payload, sizeof(payload));

	ck_assert_int_eq(vr_rec_encode(&r, zero_prev, buf, 100), -VR_REC_ERR_SIZE);
	r.payload_size = VR_REC_MAX_PAYLOAD + 1;
	ck_assert_int_eq(vr_rec_encode(&r, zero_prev, buf, sizeof(buf)), -VR_REC_ERR_SIZE);
}
END_TEST

/* Re-encode a field by hand and fix up the CRC, so only R3 can object. */
static int
decode_with_patch(void (*patch)(uint8_t *buf))
{
	uint8_t payload[8], buf[256];
	struct vr_rec r = sample(payload, sizeof(payload)), d;
	int n = vr_rec_encode(&r, zero_prev, buf, sizeof(buf));

	patch(buf);
	vr_put_be32(buf, ref_crc32c(buf + 4, (size_t)n - 4));
	return vr_rec_decode(buf, (size_t)n, &d);
}

static void
p_version(uint8_t *b)
{
	b[20] = 2;
}
static void
p_type(uint8_t *b)
{
	b[21] = 9;
}
static void
p_op_of_other_type(uint8_t *b)
{
	b[22] = VR_REC_OP_PUT;
}
static void
p_flags(uint8_t *b)
{
	b[47] = 1;
}
static void
p_lsn_zero(uint8_t *b)
{
	vr_put_be64(b + 48, 0);
}
static void
p_primary_zero(uint8_t *b)
{
	vr_put_be16(b + 28, 0);
}
static void
p_origin_zero(uint8_t *b)
{
	vr_put_be16(b + 30, 0);
}
static void
p_member_zero(uint8_t *b)
{
	vr_put_be16(b + 58, 0);
}
static void
p_member_dup(uint8_t *b)
{
	vr_put_be16(b + 58, 7);
}

START_TEST(invalid_fields_are_refused)
{
	void (*patches[])(uint8_t *) = {p_version,     p_type,        p_op_of_other_type,
	                                p_flags,       p_lsn_zero,    p_primary_zero,
	                                p_origin_zero, p_member_zero, p_member_dup};

	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++)
		ck_assert_int_eq(decode_with_patch(patches[i]), -VR_REC_ERR_FORMAT);
}
END_TEST

START_TEST(too_many_members_is_refused)
{
	uint8_t buf[VR_REC_HDR_SIZE + 2 * 17] = {0};
	struct vr_rec d, r = {0};
	uint8_t big[256];

	buf[23] = 17;
	ck_assert_int_eq(vr_rec_decode(buf, sizeof(buf), &d), -VR_REC_ERR_FORMAT);
	r.n_members = 17;
	ck_assert_int_eq(vr_rec_encode(&r, zero_prev, big, sizeof(big)), -VR_REC_ERR_FORMAT);
}
END_TEST

START_TEST(stream_id_key_round_trip_sorts_numerically)
{
	struct vr_stream_id a = {1, 0xffffffff, 2}, b = {2, 0, 1}, x;
	uint8_t ka[VR_STREAM_ID_SIZE], kb[VR_STREAM_ID_SIZE];

	vr_stream_id_pack(&a, ka);
	vr_stream_id_pack(&b, kb);
	ck_assert(memcmp(ka, kb, sizeof(ka)) < 0);
	vr_stream_id_unpack(kb, &x);
	ck_assert_uint_eq(x.account, 2);
	ck_assert_uint_eq(x.vault, 0);
	ck_assert_uint_eq(x.primary, 1);
}
END_TEST

START_TEST(test_writer_produces_a_valid_chain)
{
	struct vr_test_wal w;
	uint8_t prev[16], buf[2048];
	uint16_t m[] = {2, 3};

	vr_test_wal_init(&w, 5, 6, 1, 2, m);
	vr_rec_genesis(&w.id, prev);
	for (int i = 0; i < 100; i++) {
		struct vr_rec d;
		size_t n = vr_test_wal_next(&w, (size_t)i * 7, buf, sizeof(buf));

		ck_assert_int_eq(vr_rec_decode(buf, n, &d), (int)n);
		ck_assert_int_eq(vr_rec_check_chain(prev, &d), 0);
		ck_assert(vr_test_payload_ok(&d));
		ck_assert_uint_eq(d.lsn, (uint64_t)i + 1);
		memcpy(prev, d.entropy, 16);
	}
}
END_TEST

START_TEST(strerror_names_each_error)
{
	int errs[] = {VR_REC_ERR_SIZE, VR_REC_ERR_FORMAT, VR_REC_ERR_CHECKSUM, VR_REC_ERR_CHAIN,
	              VR_REC_ERR_GAP,  VR_REC_ERR_STALE,  VR_REC_ERR_ORIGIN,   VR_REC_ERR_SEED};

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(vr_rec_strerror(-errs[i]), vr_rec_strerror(-errs[j]));
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    crc_oracle_matches_known_vector,
	    round_trip_all_fields,
	    layout_is_big_endian_at_documented_offsets,
	    entropy_is_truncated_sha256_of_prev_and_body,
	    chain_accepts_true_prev_and_rejects_any_other,
	    unfinished_record_finishes_to_the_chained_encoding,
	    genesis_differs_per_stream,
	    every_truncation_is_refused,
	    trailing_bytes_are_not_part_of_the_record,
	    every_flipped_bit_is_caught,
	    oversized_payload_is_refused,
	    encode_refuses_small_buffer_and_large_payload,
	    invalid_fields_are_refused,
	    too_many_members_is_refused,
	    stream_id_key_round_trip_sorts_numerically,
	    test_writer_produces_a_valid_chain,
	    strerror_names_each_error,
	};

	return vr_test_run("logstore:record", 30, tests, sizeof(tests) / sizeof(tests[0]));
}
