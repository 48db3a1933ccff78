/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 6962 Merkle tree hashes over SHA-256 (vr_merkle.h). */
#include "vr_merkle.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static void
sha256(const void *const *parts, const size_t *sizes, unsigned n, vr_merkle_t out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned len = VR_MERKLE_SIZE;

	/* Only allocation can fail here, and a digest that silently is not one would be worse
	 * than stopping. */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		abort();
	for (unsigned i = 0; i < n; i++)
		if (sizes[i] && !EVP_DigestUpdate(ctx, parts[i], sizes[i]))
			abort();
	if (!EVP_DigestFinal_ex(ctx, out, &len))
		abort();
	EVP_MD_CTX_free(ctx);
}

static void
be(uint8_t *p, uint64_t v, unsigned n)
{
	while (n--) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

void
vr_merkle_record(uint64_t lsn, uint8_t type, uint8_t op, const void *payload, size_t size,
                 vr_merkle_t out)
{
	uint8_t hdr[1 + 8 + 1 + 1 + 4] = {0};
	const void *parts[] = {hdr, payload};
	const size_t sizes[] = {sizeof(hdr), size};

	be(hdr + 1, lsn, 8);
	hdr[9] = type;
	hdr[10] = op;
	be(hdr + 11, size, 4);
	sha256(parts, sizes, 2, out);
}

void
vr_merkle_key(const char *name, uint64_t version, const void *blob, size_t size, vr_merkle_t out)
{
	uint8_t pre[1 + 2] = {0}, ver[8];
	size_t nl = strlen(name);
	const void *parts[] = {pre, name, ver, blob};
	const size_t sizes[] = {sizeof(pre), nl, sizeof(ver), size};

	be(pre + 1, nl > 0xffff ? 0xffff : nl, 2);
	be(ver, version, 8);
	sha256(parts, sizes, 4, out);
}

void
vr_merkle_leaf(const void *data, size_t size, vr_merkle_t out)
{
	static const uint8_t zero = 0;
	const void *parts[] = {&zero, data};
	const size_t sizes[] = {1, size};

	sha256(parts, sizes, 2, out);
}

void
vr_merkle_node(const vr_merkle_t left, const vr_merkle_t right, vr_merkle_t out)
{
	static const uint8_t one = 1;
	const void *parts[] = {&one, left, right};
	const size_t sizes[] = {1, VR_MERKLE_SIZE, VR_MERKLE_SIZE};

	sha256(parts, sizes, 3, out);
}

void
vr_merkle_root(const uint8_t *hashes, size_t n, vr_merkle_t out)
{
	vr_merkle_t l, r;
	size_t k = 1;

	if (!n) {
		sha256(NULL, NULL, 0, out);
		return;
	}
	if (n == 1) {
		memcpy(out, hashes, VR_MERKLE_SIZE);
		return;
	}
	while (k << 1 < n)
		k <<= 1;
	vr_merkle_root(hashes, k, l);
	vr_merkle_root(hashes + k * VR_MERKLE_SIZE, n - k, r);
	vr_merkle_node(l, r, out);
}

void
vr_merkle_acc_init(struct vr_merkle_acc *a)
{
	a->n = 0;
}

void
vr_merkle_acc_add(struct vr_merkle_acc *a, const vr_merkle_t leaf)
{
	unsigned top = (unsigned)__builtin_popcountll(a->n);
	vr_merkle_t h;

	/* Adding one carries: each perfect subtree as large as the new one merges into it. */
	memcpy(h, leaf, VR_MERKLE_SIZE);
	for (uint64_t n = a->n; n & 1; n >>= 1)
		vr_merkle_node(a->stack[--top], h, h);
	memcpy(a->stack[top], h, VR_MERKLE_SIZE);
	a->n++;
}

void
vr_merkle_acc_root(const struct vr_merkle_acc *a, vr_merkle_t out)
{
	unsigned top = (unsigned)__builtin_popcountll(a->n);

	if (!top) {
		vr_merkle_root(NULL, 0, out);
		return;
	}
	memcpy(out, a->stack[top - 1], VR_MERKLE_SIZE);
	while (--top)
		vr_merkle_node(a->stack[top - 1], out, out);
}

void
vr_merkle_hex(const vr_merkle_t h, char out[VR_MERKLE_HEX])
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < VR_MERKLE_SIZE; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[2 * VR_MERKLE_SIZE] = 0;
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
vr_merkle_unhex(const char *hex, vr_merkle_t out)
{
	if (!hex || strlen(hex) != 2 * VR_MERKLE_SIZE)
		return -1;
	for (unsigned i = 0; i < VR_MERKLE_SIZE; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
