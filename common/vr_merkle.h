/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Merkle tree hashes (RFC 6962, section 2.1) over SHA-256, for `vault verify`: a vault's keys
 * and its WAL are each one tree, and the vault's digest is the node over the two roots.
 *
 *   leaf hash   = SHA-256(0x00 || leaf)
 *   node hash   = SHA-256(0x01 || left || right)
 *   MTH({})     = SHA-256("")
 *   MTH(D[n])   = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n
 *
 * The leaves (what each hash covers, byte for byte):
 *   WAL record  lsn (8, BE) || type (1) || op (1) || payload size (4, BE) || payload
 *   vault key   name size (2, BE) || name || version (8, BE) || blob (as the HSM agent stores
 *               it: the key wrapped under the vault's masking key)
 *
 * A WAL is hashed in chunks of a power of two records, aligned at LSN 1. Each full chunk is a
 * subtree of MTH, so MTH over the chunks' roots (taken as they are, not hashed again) is the
 * WAL's root: two sites compare a few chunk roots, then the records of a chunk that differs.
 */
#ifndef VR_MERKLE_H
#define VR_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define VR_MERKLE_SIZE 32
#define VR_MERKLE_HEX  (2 * VR_MERKLE_SIZE + 1)

typedef uint8_t vr_merkle_t[VR_MERKLE_SIZE];

/* The leaf hash of a WAL record. */
void vr_merkle_record(uint64_t lsn, uint8_t type, uint8_t op, const void *payload, size_t size,
                      vr_merkle_t out);

/* The leaf hash of one version of a vault key; name is at most 65535 bytes. */
void vr_merkle_key(const char *name, uint64_t version, const void *blob, size_t size,
                   vr_merkle_t out);

/* The leaf hash of raw bytes (the test vectors of RFC 6962). */
void vr_merkle_leaf(const void *data, size_t size, vr_merkle_t out);

/* node(left, right). */
void vr_merkle_node(const vr_merkle_t left, const vr_merkle_t right, vr_merkle_t out);

/*
 * MTH over n hashes (n * VR_MERKLE_SIZE bytes, one after another) taken as the tree's leaf
 * hashes, or as the roots of aligned subtrees.
 */
void vr_merkle_root(const uint8_t *hashes, size_t n, vr_merkle_t out);

/*
 * The root of leaves given one at a time, in O(log n) memory: the roots of the perfect subtrees
 * that n's binary digits make, largest first, and MTH is their fold from the right. For the
 * dataplane's chunks, whose leaves are read from the log.
 */
struct vr_merkle_acc {
	uint64_t n;
	vr_merkle_t stack[64];
};

void vr_merkle_acc_init(struct vr_merkle_acc *a);
void vr_merkle_acc_add(struct vr_merkle_acc *a, const vr_merkle_t leaf);
void vr_merkle_acc_root(const struct vr_merkle_acc *a, vr_merkle_t out);

/* Lower-case hex, NUL-terminated; and back (0, or -1 when hex is not 64 hex digits). */
void vr_merkle_hex(const vr_merkle_t h, char out[VR_MERKLE_HEX]);
int vr_merkle_unhex(const char *hex, vr_merkle_t out);

#endif
