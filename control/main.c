// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrep-control: the site's management process. One libevent loop serves the management
 * port and the console (mgmt.c), keeps the catalog and the audit log, and drives the HSM agent
 * and the dataplane through their sockets (ops.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "control.h"
#include "vr_msg.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: vaultrep-control --config FILE [options]\n"
	           "  --config FILE     the site's control configuration (ini):\n"
	           "                    [site] id, name, state, hsm, dataplane, kek_shard\n"
	           "                    [mgmt] listen, socket, cert, key, operator_ca,\n"
	           "                           console_uids\n"
	           "                    [limits] vaults, tokens, disk_mb\n"
	           "  --check-config    read the configuration, report, and exit\n"
	           "  -v                more diagnostics (repeatable)\n"
	           "  -h, --help        this text\n");
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;

	/* Every second: has the dataplane restarted? keys still to carry? Every 100 ms: replicas
	 * apply. */
	if (c->ticks++ % 10 == 0) {
		ctl_dp_watch(c);
		ctl_keys_tick(c);
	}
	ctl_ops_tick(c);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct rlimit no_core = {0, 0};
	struct ctl c = {0};
	struct event *sigint, *sigterm, *tick;
	const struct timeval every = {.tv_usec = 100000};
	const char *config = NULL;
	bool check = false;
	char err[512], dir[300];
	int opt, verbose = 0, rc;

	while ((opt = getopt_long(argc, argv, "c:vh", lo, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (verbose)
		vr_msg_set_level(verbose > 1 ? VR_MSG_DEBUG : VR_MSG_INFO);
	if (ctl_conf_load(&c.conf, config, NULL, err, sizeof(err))) {
		fprintf(stderr, "vaultrep-control: %s\n", err);
		return 1;
	}
	if (c.conf.cert[0] && (rc = vr_api_cert_sha256(c.conf.cert, c.tls_sha256))) {
		fprintf(stderr, "vaultrep-control: [mgmt] cert %s: %s\n", c.conf.cert,
		        rc == -EINVAL ? "not a PEM certificate" : strerror(-rc));
		return 1;
	}
	if (check) {
		printf("%s: site %u (%s), state %s, management port %s\n", config, c.conf.site,
		       c.conf.name, c.conf.state, c.conf.listen[0] ? c.conf.listen : "(none)");
		return 0;
	}
	/* Plaintext of key.encrypt/decrypt passes through here: never into a core file. */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0);
	signal(SIGPIPE, SIG_IGN);
	if (mkdir(c.conf.state, 0700) && errno != EEXIST) {
		fprintf(stderr, "vaultrep-control: state directory %s: %s\n", c.conf.state,
		        strerror(errno));
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/catalog", c.conf.state);
	rc = ctl_catalog_open(dir, &c.cat);
	if (rc) {
		fprintf(stderr, "vaultrep-control: catalog %s: %s\n", dir, strerror(-rc));
		return 1;
	}
	rc = ctl_audit_open(c.conf.state, c.cat, &c.audit);
	if (rc) {
		fprintf(stderr, "vaultrep-control: audit log in %s: %s\n", c.conf.state,
		        strerror(-rc));
		goto err_catalog;
	}
	c.base = event_base_new();
	if (!c.base) {
		fprintf(stderr, "vaultrep-control: no event base\n");
		rc = -ENOMEM;
		goto err_audit;
	}
	ctl_ops_start(&c);
	rc = ctl_mgmt_start(&c, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vaultrep-control: %s\n", err);
		goto err_base;
	}
	sigint = evsignal_new(c.base, SIGINT, on_signal, c.base);
	sigterm = evsignal_new(c.base, SIGTERM, on_signal, c.base);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	tick = event_new(c.base, -1, EV_PERSIST, on_tick, &c);
	event_add(tick, &every);
	vr_info("control", "site %u (%s): console %s, management port %s", c.conf.site, c.conf.name,
	        c.conf.socket, c.conf.listen[0] ? c.conf.listen : "(none)");
	event_base_dispatch(c.base);
	event_free(tick);
	event_free(sigint);
	event_free(sigterm);
	ctl_mgmt_stop(&c);
err_base:
	event_base_free(c.base);
err_audit:
	ctl_audit_close(c.audit);
err_catalog:
	ctl_catalog_close(c.cat);
	return rc ? 1 : 0;
}
