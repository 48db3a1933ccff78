/* SPDX-License-Identifier: BSD-3-Clause */
/* The agent's store of wrapped vault key versions: see keystore.c. Not thread-safe for
 * writers by itself: the agent calls it under its mutex. */
#ifndef VR_KEYSTORE_H
#define VR_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

struct vr_keystore;
struct vr_keystore_batch;

struct vr_keystore *vr_keystore_open(const char *dir);
void vr_keystore_close(struct vr_keystore *ks);

/* A synced write of several puts: batch, put..., commit (which frees the batch). */
struct vr_keystore_batch *vr_keystore_batch(void);
int vr_keystore_batch_put(struct vr_keystore_batch *b, const char *vault, const char *name,
                          long version, const uint8_t *blob, size_t n);
int vr_keystore_commit(struct vr_keystore *ks, struct vr_keystore_batch *b);
void vr_keystore_batch_free(struct vr_keystore_batch *b);

/* One blob (into blob, capacity *n): 0, -ENOENT, -ENOBUFS. */
int vr_keystore_get(struct vr_keystore *ks, const char *vault, const char *name, long version,
                    uint8_t *blob, size_t *n);
/* Calls fn for every version of a vault's keys (name NULL) or of one key, in key order. */
int vr_keystore_scan(struct vr_keystore *ks, const char *vault, const char *name,
                     int (*fn)(const char *name, long version, void *arg), void *arg);
/* Deletes every version of one key (name) or of all a vault's keys (name NULL); synced. */
int vr_keystore_delete(struct vr_keystore *ks, const char *vault, const char *name);

#endif /* VR_KEYSTORE_H */
