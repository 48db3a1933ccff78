/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_conf.h"
#include "vr_common.h"
#include "vr_ini.h"
#include "vr_nonce.h"
#include "vr_wire.h"

static int
ipv4(const char *v, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, v, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

static int
path(const char *v, char *out)
{
	if (!*v || strlen(v) >= DP_PATH)
		return -1;
	strcpy(out, v);
	return 0;
}

static int
port_key(struct dp_conf_port *p, const char *name, const char *v)
{
	unsigned long x;

	if (!strcmp(name, "port") && !vr_parse_ulong(v, 0, 1023, &x))
		p->port = (uint16_t)x;
	else if (!strcmp(name, "ip"))
		return ipv4(v, &p->ip);
	else if (!strcmp(name, "udp") && !vr_parse_ulong(v, 1, 65535, &x))
		p->udp = (uint16_t)x;
	else if (!strcmp(name, "mtu") && !vr_parse_ulong(v, 576, 9000, &x) &&
	         (x == 1500 || x == 9000))
		p->mtu = (uint16_t)x;
	else if (!strcmp(name, "queues") && !vr_parse_ulong(v, 1, DP_MAX_WORKERS, &x))
		p->queues = (uint16_t)x;
	else
		return -1;
	return 0;
}

static int
uids(struct dp_conf *c, const char *v)
{
	char buf[256], *save = NULL;
	unsigned long x;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	c->n_uids = 0;
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		if (c->n_uids == DP_MAX_UIDS || vr_parse_ulong(t, 0, UINT_MAX - 1, &x))
			return -1;
		c->uids[c->n_uids++] = (uid_t)x;
	}
	return c->n_uids ? 0 : -1;
}

static struct dp_conf_peer *
peer(struct dp_conf *c, const char *section)
{
	unsigned long id;

	if (strncmp(section, "peer ", 5) || vr_parse_ulong(section + 5, 1, 65535, &id))
		return NULL;
	for (unsigned i = 0; i < c->n_peers; i++)
		if (c->peers[i].site == id)
			return &c->peers[i];
	if (c->n_peers == DP_MAX_PEERS)
		return NULL;
	c->peers[c->n_peers] = (struct dp_conf_peer){.site = (uint16_t)id};
	return &c->peers[c->n_peers++];
}

/* A name the hsm_agent takes: 1-48 of [A-Za-z0-9._-]. */
static int
shard(const char *v, char out[49])
{
	size_t n = strlen(v);

	if (!n || n > 48 ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	              "0123456789._-") != n)
		return -1;
	memcpy(out, v, n + 1);
	return 0;
}

static int
key(void *ctx, const char *s, const char *n, const char *v)
{
	struct dp_conf *c = ctx;
	unsigned long x;

	if (!strcmp(s, "site")) {
		if (!strcmp(n, "id") && !vr_parse_ulong(v, 1, 65535, &x))
			c->site = (uint16_t)x;
		else if (!strcmp(n, "log_dir"))
			return path(v, c->log_dir);
		else if (!strcmp(n, "control"))
			return path(v, c->control);
		else if (!strcmp(n, "hsm"))
			return path(v, c->hsm);
		else if (!strcmp(n, "control_uid"))
			return uids(c, v);
		else if (!strcmp(n, "hsm_shard"))
			return shard(v, c->hsm_shard);
		else
			return -1;
		return 0;
	}
	if (!strcmp(s, "lan"))
		return port_key(&c->lan, n, v);
	if (!strcmp(s, "wan"))
		return port_key(&c->wan, n, v);
	if (!strcmp(s, "batch")) {
		if (!strcmp(n, "max_records") && !vr_parse_ulong(v, 1, VR_WIRE_MAX_RECORDS, &x))
			c->max_records = (uint16_t)x;
		else if (!strcmp(n, "max_delay_us") && !vr_parse_ulong(v, 0, 1000000, &x))
			c->max_delay_us = (uint32_t)x;
		else if (!strcmp(n, "window") && !vr_parse_ulong(v, 4, 1 << 16, &x))
			c->window = (uint32_t)x;
		else if (!strcmp(n, "rto_us") && !vr_parse_ulong(v, 100, 10000000, &x))
			c->rto_us = (uint32_t)x;
		else
			return -1;
		return 0;
	}
	if (!strcmp(s, "keys")) {
		if (!strcmp(n, "rekey_batches") && !vr_parse_ulong(v, 16, VR_NONCE_SOFT_LIMIT, &x))
			c->rekey_batches = x;
		else if (!strcmp(n, "rekey_seconds") && !vr_parse_ulong(v, 1, 30 * 86400, &x))
			c->rekey_seconds = (uint32_t)x;
		else if (!strcmp(n, "grace_ms") && !vr_parse_ulong(v, 0, 600000, &x))
			c->grace_ms = (uint32_t)x;
		else
			return -1;
		return 0;
	}
	if (!strcmp(s, "log")) {
		if (!strcmp(n, "cursor_ms") && !vr_parse_ulong(v, 1, 3600000, &x))
			c->cursor_ms = (uint32_t)x;
		else if (!strcmp(n, "trim_records") && !vr_parse_ulong(v, 1, UINT32_MAX, &x))
			c->trim_records = (uint32_t)x;
		else
			return -1;
		return 0;
	}
	if (!strcmp(s, "crypto")) {
		if (!strcmp(n, "sessions") && !vr_parse_ulong(v, 64, 1 << 22, &x)) {
			c->sessions = (uint32_t)x;
			return 0;
		}
		if (!strcmp(n, "session_idle_ms") && !vr_parse_ulong(v, 1, 86400000, &x)) {
			c->session_idle_ms = (uint32_t)x;
			return 0;
		}
		if (strcmp(n, "pmd") ||
		    (strcmp(v, "crypto_aesni_gcm") && strcmp(v, "crypto_openssl")))
			return -1;
		strcpy(c->pmd, v);
		return 0;
	}
	if (!strcmp(s, "idle")) {
		if (strcmp(n, "max_sleep_us") || vr_parse_ulong(v, 0, 100000, &x))
			return -1;
		c->max_sleep_us = (uint32_t)x;
		return 0;
	}
	if (!strcmp(s, "lcores")) {
		if (strcmp(n, "workers") || vr_parse_ulong(v, 1, DP_MAX_WORKERS, &x))
			return -1;
		c->workers = (uint8_t)x;
		return 0;
	}
	if (!strcmp(s, "bench")) {
		if (strcmp(n, "seal_only") || vr_parse_ulong(v, 0, 1, &x))
			return -1;
		c->seal_only = x;
		return 0;
	}
	if (!strcmp(s, "consumer")) {
		if (!strcmp(n, "ip"))
			return ipv4(v, &c->consumer_ip);
		if (!strcmp(n, "udp") && !vr_parse_ulong(v, 1, 65535, &x)) {
			c->consumer_udp = (uint16_t)x;
			return 0;
		}
		return -1;
	}
	{
		struct dp_conf_peer *p = peer(c, s);

		if (!p)
			return -1;
		if (!strcmp(n, "ip"))
			return ipv4(v, &p->ip);
		if (!strcmp(n, "udp") && !vr_parse_ulong(v, 1, 65535, &x)) {
			p->udp = (uint16_t)x;
			return 0;
		}
		if (!strcmp(n, "mac")) {
			int end = 0;

			if (sscanf(v, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &p->mac[0],
			           &p->mac[1], &p->mac[2], &p->mac[3], &p->mac[4], &p->mac[5],
			           &end) != 6 ||
			    v[end] || end != 17 || (p->mac[0] & 1))
				return -1;
			p->has_mac = true;
			return 0;
		}
	}
	return -1;
}

int
dp_conf_load(struct dp_conf *c, const char *file, const char *text, char *err, size_t err_n)
{
	*c = (struct dp_conf){
	    .lan = {.port = 0, .udp = 4790, .mtu = 1500, .queues = 1},
	    .wan = {.port = 1, .udp = 4791, .mtu = 1500, .queues = 1},
	    .max_records = 64,
	    .max_delay_us = 50,
	    .window = 1024,
	    .rto_us = 20000,
	    .pmd = "crypto_aesni_gcm",
	    .max_sleep_us = 200,
	    .workers = 1,
	    .sessions = 16384,
	    .session_idle_ms = 10000,
	    .hsm_shard = "0",
	    .rekey_batches = VR_NONCE_SOFT_LIMIT,
	    .rekey_seconds = VR_NONCE_MAX_AGE_S,
	    .grace_ms = 1000,
	    .cursor_ms = 1000,
	    .trim_records = 65536,
	    .uids = {0},
	    .n_uids = 1,
	};
	snprintf(c->log_dir, sizeof(c->log_dir), "/var/lib/vaultrep/wal");
	snprintf(c->control, sizeof(c->control), "/run/vaultrep/dataplane.sock");
	if (vr_ini_load(text ? "config" : file, text, key, c, err, err_n))
		return -1;
	if (!c->site || !c->lan.ip || !c->wan.ip) {
		snprintf(err, err_n, "%s: [site] id, [lan] ip and [wan] ip are required",
		         text ? "config" : file);
		return -1;
	}
	if (c->lan.port == c->wan.port) {
		snprintf(err, err_n, "%s: the LAN and the WAN port must differ",
		         text ? "config" : file);
		return -1;
	}
	for (unsigned i = 0; i < c->n_peers; i++) {
		if (!c->peers[i].ip || c->peers[i].site == c->site) {
			snprintf(err, err_n, "%s: [peer %u] needs an ip, and is not this site",
			         text ? "config" : file, c->peers[i].site);
			return -1;
		}
		if (!c->peers[i].udp)
			c->peers[i].udp = c->wan.udp;
	}
	return 0;
}
