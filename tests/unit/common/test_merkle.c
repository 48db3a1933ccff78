// SPDX-License-Identifier: BSD-3-Clause
/*
 * common:merkle — RFC 6962 tree hashes: the published roots of the Certificate Transparency
 * test vectors (sizes 0..8), the root over aligned chunk roots equal to the root over every
 * leaf (the property `vault verify` leans on), and leaves that differ in any field.
 */
#include <check.h>
#include <string.h>

#include "vr_merkle.h"
#include "vr_test.h"

/* The RFC 6962 reference leaves and the tree heads of their first n, n = 0..8. */
static const struct {
	const char *data;
	size_t size;
} leaves[] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};
static const char *const roots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

START_TEST(rfc6962_reference_roots)
{
	vr_merkle_t h[8], root, back;
	char hex[VR_MERKLE_HEX];

	for (unsigned i = 0; i < 8; i++)
		vr_merkle_leaf(leaves[i].data, leaves[i].size, h[i]);
	for (unsigned n = 0; n <= 8; n++) {
		vr_merkle_root(h[0], n, root);
		vr_merkle_hex(root, hex);
		ck_assert_msg(!strcmp(hex, roots[n]), "size %u: %s, RFC 6962 says %s", n, hex,
		              roots[n]);
		ck_assert_int_eq(vr_merkle_unhex(roots[n], back), 0);
		ck_assert_mem_eq(back, root, VR_MERKLE_SIZE);
	}
	ck_assert_int_eq(vr_merkle_unhex("00", back), -1);
	ck_assert_int_eq(vr_merkle_unhex(NULL, back), -1);
	memset(hex, 'g', 64);
	hex[64] = 0;
	ck_assert_int_eq(vr_merkle_unhex(hex, back), -1);
}
END_TEST

/* For every size up to 200 and chunk sizes 1..64: MTH over the chunks' roots == MTH. */
START_TEST(chunk_roots_give_the_same_root)
{
	static vr_merkle_t h[200], chunks[200];
	vr_merkle_t whole, over;

	for (unsigned i = 0; i < 200; i++)
		vr_merkle_record(i + 1, 1, 1, &i, sizeof(i), h[i]);
	for (size_t n = 0; n <= 200; n++) {
		vr_merkle_root(h[0], n, whole);
		for (size_t c = 1; c <= 64; c <<= 1) {
			size_t m = 0;

			for (size_t at = 0; at < n; at += c)
				vr_merkle_root(h[at], n - at < c ? n - at : c, chunks[m++]);
			vr_merkle_root(chunks[0], m, over);
			ck_assert_msg(!memcmp(whole, over, VR_MERKLE_SIZE), "n %zu chunk %zu", n,
			              c);
		}
	}
}
END_TEST

/* The accumulator's root equals MTH for every size up to 300. */
START_TEST(one_leaf_at_a_time_gives_the_same_root)
{
	static vr_merkle_t h[300];
	struct vr_merkle_acc acc;
	vr_merkle_t whole, got;

	vr_merkle_acc_init(&acc);
	vr_merkle_acc_root(&acc, got);
	vr_merkle_root(NULL, 0, whole);
	ck_assert_mem_eq(got, whole, VR_MERKLE_SIZE);
	for (unsigned i = 0; i < 300; i++) {
		vr_merkle_record(i + 1, 1, 1, &i, sizeof(i), h[i]);
		vr_merkle_acc_add(&acc, h[i]);
		vr_merkle_acc_root(&acc, got);
		vr_merkle_root(h[0], i + 1, whole);
		ck_assert_msg(!memcmp(got, whole, VR_MERKLE_SIZE), "size %u", i + 1);
	}
}
END_TEST

START_TEST(every_field_of_a_leaf_counts)
{
	vr_merkle_t base, other;
	const char blob[] = "wrapped key";

	vr_merkle_record(7, 2, 4, "abc", 3, base);
	vr_merkle_record(8, 2, 4, "abc", 3, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_record(7, 1, 4, "abc", 3, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_record(7, 2, 5, "abc", 3, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_record(7, 2, 4, "abd", 3, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_record(7, 2, 4, "abc", 2, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_record(7, 2, 4, "abc", 3, other);
	ck_assert(!memcmp(base, other, VR_MERKLE_SIZE));

	vr_merkle_key("k1", 1, blob, sizeof(blob), base);
	vr_merkle_key("k1", 2, blob, sizeof(blob), other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_key("k2", 1, blob, sizeof(blob), other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	vr_merkle_key("k1", 1, blob, sizeof(blob) - 1, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	/* The name's size is hashed: "k" + "1..." cannot pass for "k1" + "...". */
	vr_merkle_key("k", 1, blob, sizeof(blob), other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
	/* A leaf and a node never collide: the prefixes differ. */
	vr_merkle_node(base, other, base);
	vr_merkle_leaf(other, VR_MERKLE_SIZE, other);
	ck_assert(memcmp(base, other, VR_MERKLE_SIZE));
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    rfc6962_reference_roots,
	    chunk_roots_give_the_same_root,
	    one_leaf_at_a_time_gives_the_same_root,
	    every_field_of_a_leaf_counts,
	};

	return vr_test_run("common:merkle", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
