/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one translation of a RocksDB error string (the C API's errptr) into -errno, used at every
 * module's RocksDB boundary (logstore, the HSM agent's key store). No RocksDB header needed.
 */
#ifndef VR_RDB_H
#define VR_RDB_H

/*
 * 0 if err is NULL; otherwise logs "callee: <err>" under topic, frees err (malloc'd by RocksDB)
 * and returns -ENOSPC, -EBUSY (database lock held), -EUCLEAN (corruption), -EINVAL, -ENOTSUP,
 * -EROFS or, for any other error, -EIO.
 */
int vr_rdb_err(const char *topic, const char *callee, char *err);

#endif /* VR_RDB_H */
