// SPDX-License-Identifier: BSD-3-Clause
/* RocksDB error strings to -errno: see vr_rdb.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vr_msg.h"
#include "vr_rdb.h"

int
vr_rdb_err(const char *topic, const char *callee, char *err)
{
	int rc = -EIO;

	if (!err)
		return 0;
	if (strstr(err, "No space left") || strstr(err, "ENOSPC"))
		rc = -ENOSPC;
	else if (strstr(err, "/LOCK:")) /* held by another process, or by this one */
		rc = -EBUSY;
	else if (!strncmp(err, "Corruption", 10))
		rc = -EUCLEAN;
	else if (!strncmp(err, "Invalid argument", 16))
		rc = -EINVAL;
	else if (!strncmp(err, "Not implemented", 15))
		rc = -ENOTSUP;
	else if (strstr(err, "Read-only") || strstr(err, "read only"))
		rc = -EROFS;
	vr_err(topic, "%s: %s", callee, err);
	free(err);
	return rc;
}
