// SPDX-License-Identifier: BSD-3-Clause
/*
 * The control's catalog: its own RocksDB (DESIGN: control owns it; the dataplane owns the WAL
 * database). Low rate, so every write is synced. Values are JSON objects; keys are
 * human-readable paths that sort as the listings want them:
 *
 *   site                                  {id, name, initialized, kek_version, ...}
 *   peer/<site 5 digits>                  {site, name, address, pin, status}
 *   vault/<account 20 digits>/<name>      {account, name, id, primary, role, status, ...}
 *   key/<account 20 digits>/<vault>/<key> {name, type, versions, created}
 *   audit/head                            {seq, hash} (audit.c)
 *   seq/vault                             {next}: the next vault id this site hands out
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "control.h"
#include "vr_msg.h"
#include "vr_rdb.h"

struct ctl_catalog {
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_writeoptions_t *wsync;
	rocksdb_readoptions_t *ro;
};

int
ctl_catalog_open(const char *dir, struct ctl_catalog **out)
{
	struct ctl_catalog *cat = calloc(1, sizeof(*cat));
	char *err = NULL;
	int rc;

	if (!cat)
		return -ENOMEM;
	cat->opt = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(cat->opt, 1);
	rocksdb_options_set_keep_log_file_num(cat->opt, 2);
	rocksdb_options_set_max_open_files(cat->opt, 64);
	cat->db = rocksdb_open(cat->opt, dir, &err);
	rc = vr_rdb_err("control", "rocksdb_open", err);
	if (rc) {
		rocksdb_options_destroy(cat->opt);
		free(cat);
		return rc;
	}
	cat->wsync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(cat->wsync, 1);
	cat->ro = rocksdb_readoptions_create();
	*out = cat;
	return 0;
}

void
ctl_catalog_close(struct ctl_catalog *cat)
{
	if (!cat)
		return;
	rocksdb_close(cat->db);
	rocksdb_writeoptions_destroy(cat->wsync);
	rocksdb_readoptions_destroy(cat->ro);
	rocksdb_options_destroy(cat->opt);
	free(cat);
}

int
ctl_catalog_put(struct ctl_catalog *cat, const char *key, json_t *val)
{
	char *v = json_dumps(val, JSON_COMPACT | JSON_SORT_KEYS), *err = NULL;

	if (!v)
		return -ENOMEM;
	rocksdb_put(cat->db, cat->wsync, key, strlen(key), v, strlen(v), &err);
	free(v);
	return vr_rdb_err("control", "rocksdb_put", err);
}

static json_t *
parse(const char *key, const char *v, size_t n)
{
	json_error_t je;
	json_t *j = json_loadb(v, n, 0, &je);

	if (!json_is_object(j)) {
		vr_err("control", "catalog entry %s is not a JSON object: %s", key, je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

int
ctl_catalog_get(struct ctl_catalog *cat, const char *key, json_t **val)
{
	char *err = NULL, *v;
	size_t n;
	int rc;

	*val = NULL;
	v = rocksdb_get(cat->db, cat->ro, key, strlen(key), &n, &err);
	rc = vr_rdb_err("control", "rocksdb_get", err);
	if (rc)
		return rc;
	if (!v)
		return -ENOENT;
	*val = parse(key, v, n);
	rocksdb_free(v);
	return *val ? 0 : -EUCLEAN;
}

int
ctl_catalog_del(struct ctl_catalog *cat, const char *key)
{
	char *err = NULL;

	rocksdb_delete(cat->db, cat->wsync, key, strlen(key), &err);
	return vr_rdb_err("control", "rocksdb_delete", err);
}

int
ctl_catalog_scan(struct ctl_catalog *cat, const char *prefix, json_t *arr)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator(cat->db, cat->ro);
	size_t pn = strlen(prefix);
	char *err = NULL;
	int rc = 0;

	for (rocksdb_iter_seek(it, prefix, pn); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kn, vn;
		const char *k = rocksdb_iter_key(it, &kn), *v = rocksdb_iter_value(it, &vn);
		char key[256];
		json_t *j;

		if (kn < pn || memcmp(k, prefix, pn))
			break;
		snprintf(key, sizeof(key), "%.*s", (int)kn, k);
		j = parse(key, v, vn);
		if (!j) {
			rc = -EUCLEAN;
			break;
		}
		json_array_append_new(arr, j);
	}
	rocksdb_iter_get_error(it, &err);
	if (!rc)
		rc = vr_rdb_err("control", "rocksdb_iter", err);
	else
		free(err);
	rocksdb_iter_destroy(it);
	return rc;
}
