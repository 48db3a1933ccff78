// SPDX-License-Identifier: BSD-3-Clause
/*
 * The agent's key store: every vault key version as its blob wrapped under the vault's masking
 * key (AES key wrap with padding), in a RocksDB database of the agent's own (<state>/keys).
 *
 * Why not token objects: SoftHSMv2 (file backend, the only one Debian builds) writes a file per
 * token object (8 ms each here) and looks labels up by reading every object (32 ms among 1 000):
 * a vault of 10 000 keys would take minutes to make and a third of a second per use. HSMs with
 * large key counts do the same as this store ("external key storage"): only the masking key,
 * the partition's KEK pair and trusted peer keys live in the token; a vault key enters the token
 * as a session object, unwrapped from its blob, when it is used. On disk there is never more
 * than the wrapped blob.
 *
 * Keys (big-endian, NUL-separated names so a prefix scan finds one vault or one key):
 *   vault || 0 || name || 0 || u32 version  ->  blob
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "vr_common.h"
#include "vr_rdb.h"
#include "keystore.h"

struct vr_keystore {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
};

static int
rdb_err(const char *callee, char *err)
{
	return vr_rdb_err("hsm", callee, err);
}

struct vr_keystore *
vr_keystore_open(const char *dir)
{
	struct vr_keystore *ks = calloc(1, sizeof(*ks));
	char *err = NULL;

	if (!ks) {
		errno = ENOMEM;
		return NULL;
	}
	ks->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(ks->opts, 1);
	rocksdb_options_set_paranoid_checks(ks->opts, 1);
	rocksdb_options_set_wal_recovery_mode(ks->opts, 2 /* point in time */);
	rocksdb_options_set_info_log_level(ks->opts, 5);
	ks->db = rocksdb_open(ks->opts, dir, &err);
	if (err) {
		errno = -rdb_err("rocksdb_open(keys)", err);
		rocksdb_options_destroy(ks->opts);
		free(ks);
		return NULL;
	}
	ks->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(ks->wo, 1);
	ks->ro = rocksdb_readoptions_create();
	return ks;
}

void
vr_keystore_close(struct vr_keystore *ks)
{
	if (!ks)
		return;
	rocksdb_close(ks->db);
	rocksdb_writeoptions_destroy(ks->wo);
	rocksdb_readoptions_destroy(ks->ro);
	rocksdb_options_destroy(ks->opts);
	free(ks);
}

/* vault 0 name 0 [version]; returns the length, 0 if too long. */
static size_t
make_key(char *out, size_t cap, const char *vault, const char *name, long version)
{
	size_t v = strlen(vault), n = name ? strlen(name) : 0, len = v + 1 + (name ? n + 1 : 0);

	if (len + 4 > cap)
		return 0;
	memcpy(out, vault, v + 1);
	if (name)
		memcpy(out + v + 1, name, n + 1);
	if (version > 0) {
		vr_put_be32((uint8_t *)out + len, (uint32_t)version);
		len += 4;
	}
	return len;
}

struct vr_keystore_batch {
	rocksdb_writebatch_t *wb;
};

struct vr_keystore_batch *
vr_keystore_batch(void)
{
	struct vr_keystore_batch *b = malloc(sizeof(*b));

	if (b)
		b->wb = rocksdb_writebatch_create();
	return b;
}

int
vr_keystore_batch_put(struct vr_keystore_batch *b, const char *vault, const char *name,
                      long version, const uint8_t *blob, size_t n)
{
	char key[256];
	size_t kn = make_key(key, sizeof(key), vault, name, version);

	if (!kn)
		return -ENAMETOOLONG;
	rocksdb_writebatch_put(b->wb, key, kn, (const char *)blob, n);
	return 0;
}

int
vr_keystore_commit(struct vr_keystore *ks, struct vr_keystore_batch *b)
{
	char *err = NULL;

	rocksdb_write(ks->db, ks->wo, b->wb, &err);
	rocksdb_writebatch_destroy(b->wb);
	free(b);
	return rdb_err("rocksdb_write(keys)", err);
}

void
vr_keystore_batch_free(struct vr_keystore_batch *b)
{
	if (b) {
		rocksdb_writebatch_destroy(b->wb);
		free(b);
	}
}

int
vr_keystore_get(struct vr_keystore *ks, const char *vault, const char *name, long version,
                uint8_t *blob, size_t *n)
{
	char key[256], *err = NULL, *v;
	size_t kn = make_key(key, sizeof(key), vault, name, version), vn;

	if (!kn)
		return -ENAMETOOLONG;
	v = rocksdb_get(ks->db, ks->ro, key, kn, &vn, &err);
	if (err)
		return rdb_err("rocksdb_get(keys)", err);
	if (!v)
		return -ENOENT;
	if (vn > *n) {
		rocksdb_free(v);
		return -ENOBUFS;
	}
	memcpy(blob, v, vn);
	*n = vn;
	rocksdb_free(v);
	return 0;
}

int
vr_keystore_scan(struct vr_keystore *ks, const char *vault, const char *name,
                 int (*fn)(const char *name, long version, void *arg), void *arg)
{
	char lo[256], hi[256], *err = NULL;
	size_t kn = make_key(lo, sizeof(lo), vault, name, 0), vlen = strlen(vault);
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	int rc = 0;

	if (!kn)
		return -ENAMETOOLONG;
	/* Upper bound: the prefix with its last byte (a NUL) raised by one. */
	memcpy(hi, lo, kn);
	hi[kn - 1] = 1;
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(ro, hi, kn);
	it = rocksdb_create_iterator(ks->db, ro);
	for (rocksdb_iter_seek(it, lo, kn); rocksdb_iter_valid(it) && !rc; rocksdb_iter_next(it)) {
		size_t ksz;
		const char *k = rocksdb_iter_key(it, &ksz);
		const char *nm = k + vlen + 1;
		size_t nmlen = strnlen(nm, ksz - vlen - 1);

		if (vlen + 1 + nmlen + 1 + 4 != ksz)
			continue; /* not a key version record */
		rc = fn(nm, (long)vr_get_be32((const uint8_t *)nm + nmlen + 1), arg);
	}
	if (!rc) {
		rocksdb_iter_get_error(it, &err);
		rc = rdb_err("rocksdb_iter(keys)", err);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rc;
}

int
vr_keystore_delete(struct vr_keystore *ks, const char *vault, const char *name)
{
	char lo[256], hi[256], *err = NULL;
	size_t kn = make_key(lo, sizeof(lo), vault, name, 0);
	rocksdb_writebatch_t *wb;

	if (!kn)
		return -ENAMETOOLONG;
	memcpy(hi, lo, kn);
	hi[kn - 1] = 1;
	wb = rocksdb_writebatch_create();
	rocksdb_writebatch_delete_range(wb, lo, kn, hi, kn);
	rocksdb_write(ks->db, ks->wo, wb, &err);
	rocksdb_writebatch_destroy(wb);
	return rdb_err("rocksdb_write(keys)", err);
}
