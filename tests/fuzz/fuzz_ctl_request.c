// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for what vaultrep-control takes from its callers and its peers: one request
 * (a frame's JSON, as mgmt.c hands it to ctl_dispatch) from the console (admin), an operator
 * certificate with the reader role, or a peer site (link.* only); or one record of a primary's
 * WAL as a replica applies it (ctl_apply_record). The first byte picks which; the rest is the
 * JSON text.
 *
 * A real control's insides: its catalog (RocksDB) and audit log in a directory under /dev/shm,
 * made afresh every 4096 inputs so that neither grows without bound (libFuzzer ends the process
 * without exit handlers: tools/test.sh removes the last one); the HSM agent and the
 * dataplane are sockets that do not exist, so every call to them fails as when they are down.
 * peer.add is left out: it dials the address it is given (its checks are in control:sites).
 *
 * Every response is an object with an integer status, and an error message when not 0; a
 * caller without the role is refused; nothing crashes or leaks (ASan, UBSan).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "vr_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ctl c;
static char dir[64];
static unsigned runs;

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/*
 * Closes the catalog and removes its directory, in this process: system("rm -rf") forked a
 * 550 MB ASan process, and on a loaded machine that input went past libFuzzer's 10 s timeout.
 */
static void
down(void)
{
	ctl_audit_close(c.audit);
	ctl_catalog_close(c.cat);
	c.audit = NULL;
	c.cat = NULL;
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS))
		abort();
}

static void
up(void)
{
	char path[128], err[256];
	static const char ini[] = "[site]\nid = 1\nname = fuzz\nstate = /dev/shm/x\n"
	                          "hsm = /nonexistent/hsm.sock\ndataplane = /nonexistent/dp.sock\n";

	if (dir[0])
		down();
	snprintf(dir, sizeof(dir), "/dev/shm/vaultrep-fuzz-ctl.XXXXXX");
	if (!mkdtemp(dir) || ctl_conf_load(&c.conf, "fuzz.ini", ini, err, sizeof(err)))
		abort();
	snprintf(c.conf.state, sizeof(c.conf.state), "%s", dir);
	snprintf(path, sizeof(path), "%s/catalog", dir);
	if (ctl_catalog_open(path, &c.cat) || ctl_audit_open(dir, c.cat, &c.audit))
		abort();
	vr_msg_set_level(VR_MSG_ERR); /* refusals are expected here: errors only, rate-limited */
}

static void
check(json_t *res)
{
	json_t *st = json_object_get(res, "status");

	if (!json_is_object(res) || !json_is_integer(st) ||
	    (json_integer_value(st) && !json_is_string(json_object_get(res, "error"))))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ctl_who who[] = {
	    {"console:0", VR_ROLE_ADMIN},
	    {"carol", VR_ROLE_READER},
	    {"site:2", VR_ROLE_PEER},
	};
	json_t *req, *res;
	const char *op;

	if (size < 1)
		return 0;
	if (runs++ % 4096 == 0)
		up();
	req = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if (!req)
		return 0;
	if (data[0] % 4 == 3) {
		/* a WAL record at a replica of site 2's vault */
		json_t *v =
		    json_pack("{s:i, s:s, s:i, s:i, s:s, s:s}", "account", 7, "name", "v", "id", 1,
		              "primary", 2, "role", "replica", "status", "replicating");
		int rc = ctl_apply_record(&c, v, req);

		if (rc > 0)
			abort();
		json_decref(v);
		json_decref(req);
		return 0;
	}
	op = json_string_value(json_object_get(req, "op"));
	if (op && !strcmp(op, "peer.add")) {
		json_decref(req);
		return 0;
	}
	res = ctl_dispatch(&c, &who[data[0] % 4 % 3], req);
	check(res);
	/* The reader never changes anything; a peer calls link.* only. */
	if (json_integer_value(json_object_get(res, "status")) == 0 && op &&
	    ((data[0] % 4 == 1 && strcmp(op, "ping") && !strstr(op, ".show") &&
	      !strstr(op, ".list") && strcmp(op, "stats") && strcmp(op, "vault.verify")) ||
	     (data[0] % 4 == 2 && strncmp(op, "link.", 5))))
		abort();
	json_decref(res);
	json_decref(req);
	return 0;
}
