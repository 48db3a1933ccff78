// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrep-control's configuration: one ini file read by inih. Every key, its default and its
 * bounds are in key() below; an unknown key or a bad value is an error naming file:line.
 *
 *   [site]   id (1..65535, required), name, state, hsm, dataplane, kek_shard
 *   [mgmt]   listen (host:port, "" = console only), socket, cert, key, operator_ca,
 *            console_uids (comma separated)
 *   [peers]  listen (host:port of the peer port, "" = none)
 *   [limits] vaults, tokens, disk_mb   (what the capacity handshake checks)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "vr_common.h"
#include "vr_ini.h"

static int
str(const char *v, char *out, size_t n, bool may_be_empty)
{
	if ((!*v && !may_be_empty) || strlen(v) >= n)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

#define STR(field, empty) str(v, c->field, sizeof(c->field), empty)

static int
uid_list(struct ctl_conf *c, const char *v)
{
	char buf[256], *save = NULL, *tok;
	unsigned long x;

	if (str(v, buf, sizeof(buf), false))
		return -1;
	c->n_uids = 0;
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (c->n_uids == CTL_MAX_UIDS || vr_parse_ulong(tok, 0, 0xfffffffe, &x))
			return -1;
		c->uids[c->n_uids++] = (uid_t)x;
	}
	return c->n_uids ? 0 : -1;
}

static int
key(void *ctx, const char *s, const char *n, const char *v)
{
	struct ctl_conf *c = ctx;
	unsigned long x;

	if (!strcmp(s, "site")) {
		if (!strcmp(n, "id") && !vr_parse_ulong(v, 1, 65535, &x))
			c->site = (uint16_t)x;
		else if (!strcmp(n, "name"))
			return STR(name, false);
		else if (!strcmp(n, "state"))
			return STR(state, false);
		else if (!strcmp(n, "hsm"))
			return STR(hsm, false);
		else if (!strcmp(n, "dataplane"))
			return STR(dp, true);
		else if (!strcmp(n, "kek_shard") && !vr_parse_ulong(v, 0, 255, &x))
			c->shard = (unsigned)x;
		else
			return -1;
		return 0;
	}
	if (!strcmp(s, "mgmt")) {
		if (!strcmp(n, "listen"))
			return STR(listen, true);
		if (!strcmp(n, "socket"))
			return STR(socket, false);
		if (!strcmp(n, "cert"))
			return STR(cert, false);
		if (!strcmp(n, "key"))
			return STR(key, false);
		if (!strcmp(n, "operator_ca"))
			return STR(op_ca, false);
		if (!strcmp(n, "console_uids"))
			return uid_list(c, v);
		return -1;
	}
	if (!strcmp(s, "peers")) {
		if (!strcmp(n, "listen"))
			return STR(peer_listen, true);
		return -1;
	}
	if (!strcmp(s, "limits")) {
		if (!strcmp(n, "vaults") && !vr_parse_ulong(v, 0, 1000000, &x))
			c->max_vaults = (unsigned)x;
		else if (!strcmp(n, "tokens") && !vr_parse_ulong(v, 0, 1000000, &x))
			c->max_tokens = (unsigned)x;
		else if (!strcmp(n, "disk_mb") && !vr_parse_ulong(v, 0, 1u << 30, &x))
			c->min_disk_mb = (unsigned)x;
		else
			return -1;
		return 0;
	}
	return -1;
}

int
ctl_conf_load(struct ctl_conf *c, const char *path, const char *text, char *err, size_t err_n)
{
	int rc;

	*c = (struct ctl_conf){
	    .uids = {0, getuid()},
	    .n_uids = 2,
	    .max_vaults = 1024,
	    .max_tokens = 1024,
	    .min_disk_mb = 64,
	};
	snprintf(c->name, sizeof(c->name), "site");
	snprintf(c->state, sizeof(c->state), "/var/lib/vaultrep/control");
	snprintf(c->hsm, sizeof(c->hsm), "/run/vaultrep/hsm.sock");
	snprintf(c->socket, sizeof(c->socket), "/run/vaultrep/control.sock");
	if ((rc = vr_ini_load(path, text, key, c, err, err_n)))
		return rc;
	if (!c->site) {
		snprintf(err, err_n, "%s: [site] id is required", path);
		return -EINVAL;
	}
	if ((c->listen[0] || c->peer_listen[0]) && (!c->cert[0] || !c->key[0] || !c->op_ca[0])) {
		snprintf(err, err_n,
		         "%s: [mgmt] listen needs cert, key and operator_ca (mutual TLS is "
		         "mandatory on the management port)",
		         path);
		return -EINVAL;
	}
	return 0;
}
