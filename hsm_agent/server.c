// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrep-hsm-agent: the process that holds the PKCS#11 module and the tokens' PINs, and
 * serves control, the dataplane and tools over a unix socket (protocol in vr_hsm.h).
 *
 * One thread per connection (clients are few: control, the dataplane, an operator's tool);
 * operations are serialised by one mutex, as PKCS#11 login state is per token and process.
 * The peer's uid is checked (SO_PEERCRED) before anything is read from it.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <p11-kit/uri.h>

#include "vr_hsm.h"
#include "vr_msg.h"
#include "agent.h"

#define wipe_free vr_hsm_wipe_free

struct conn {
	struct agent *a;
	int fd;
	uid_t uid;
};

static void *
serve(void *arg)
{
	struct conn *c = arg;

	for (;;) {
		json_error_t je;
		json_t *req, *res;
		char *msg, *out;
		size_t n;
		int rc = vr_hsm_recv(c->fd, &msg, &n);

		if (rc == -EMSGSIZE) {
			res = json_pack("{s:i, s:s}", "status", EMSGSIZE, "error",
			                "message length out of range");
			out = json_dumps(res, JSON_COMPACT);
			if (out)
				vr_hsm_send(c->fd, out, strlen(out));
			free(out);
			json_decref(res);
			break; /* the stream is out of step: no way to find the next message */
		}
		if (rc)
			break;
		req = json_loadb(msg, n, JSON_REJECT_DUPLICATES, &je);
		OPENSSL_cleanse(msg, n);
		free(msg);
		if (!req)
			res = json_pack("{s:i, s:s}", "status", EINVAL, "error",
			                "request is not valid JSON");
		else
			res = vr_agent_handle(c->a, req, c->uid);
		json_decref(req);
		out = res ? json_dumps(res, JSON_COMPACT) : NULL;
		json_decref(res);
		rc = out ? vr_hsm_send(c->fd, out, strlen(out)) : -ENOMEM;
		wipe_free(out);
		if (rc)
			break;
	}
	close(c->fd);
	free(c);
	return NULL;
}

static int
parse_uids(struct agent *a, const char *list)
{
	char *copy = strdup(list), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(t, &end, 10);

		if (*end || v < 0 || a->n_allowed == MAX_ALLOWED_UIDS) {
			free(copy);
			return -EINVAL;
		}
		a->allowed[a->n_allowed++] = (uid_t)v;
	}
	free(copy);
	return a->n_allowed ? 0 : -EINVAL;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: vaultrep-hsm-agent --socket PATH --state DIR [options]\n"
	        "  --socket PATH        unix socket to serve (created 0660)\n"
	        "  --state DIR          state directory (0700): which token is which vault, PINs\n"
	        "  --module PATH|URI    PKCS#11 module, or pkcs11:?module-path=PATH\n"
	        "                       (default %s)\n"
	        "  --allow-uid LIST     uids admitted, comma separated (default: the agent's own)\n"
	        "  --dataplane-uid UID  the one uid that may receive payload keys in clear\n"
	        "  --oaep-sha256        RSA-OAEP with SHA-256 (the default SHA-1 is what\n"
	        "                       SoftHSMv2 2.6.1 supports)\n"
	        "  --aes-wrap-mech HEX  AES key wrap with padding mechanism (default 0x210a)\n"
	        "  -v                   more diagnostics (repeatable)\n",
	        VR_P11_DEFAULT_MODULE);
}

/* No core dumps of this process, and nobody may ptrace it. */
static void
no_dumps(void)
{
	struct rlimit zero = {0, 0};

	if (setrlimit(RLIMIT_CORE, &zero) || prctl(PR_SET_DUMPABLE, 0))
		vr_warn("hsm", "cannot disable core dumps: %s", strerror(errno));
}

/* --module takes a path or an RFC 7512 URI with a module-path attribute. */
static char *
module_path(const char *arg)
{
	P11KitUri *u;
	char *path = NULL;

	if (!arg || strncmp(arg, "pkcs11:", 7))
		return arg ? strdup(arg) : NULL;
	u = p11_kit_uri_new();
	if (u && p11_kit_uri_parse(arg, P11_KIT_URI_FOR_MODULE, u) == P11_KIT_URI_OK &&
	    p11_kit_uri_get_module_path(u))
		path = strdup(p11_kit_uri_get_module_path(u));
	p11_kit_uri_free(u);
	if (!path)
		fprintf(stderr, "--module %s: a PKCS#11 URI needs a module-path attribute\n", arg);
	return path;
}

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	stopping = 1;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"socket", required_argument, 0, 's'},
	    {"state", required_argument, 0, 'd'},
	    {"module", required_argument, 0, 'm'},
	    {"allow-uid", required_argument, 0, 'u'},
	    {"dataplane-uid", required_argument, 0, 'p'},
	    {"oaep-sha256", no_argument, 0, 'o'},
	    {"aes-wrap-mech", required_argument, 0, 'w'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	struct agent a = {0};
	const char *sock_path = NULL, *module = NULL;
	char *module_owned = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction sig = {.sa_handler = on_signal};
	unsigned long wrap_mech = CKM_AES_KEY_WRAP_PAD;
	int oaep256 = 0, verbose = VR_MSG_WARN, c, lfd, rc;

	while ((c = getopt_long(argc, argv, "s:d:m:u:p:ow:hv", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			sock_path = optarg;
			break;
		case 'd':
			a.state_dir = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'u':
			if (parse_uids(&a, optarg)) {
				fprintf(stderr, "--allow-uid: a comma separated list of uids\n");
				return 2;
			}
			break;
		case 'p':
			a.dataplane_uid = (uid_t)strtoul(optarg, NULL, 10);
			a.dataplane_uid_set = true;
			break;
		case 'o':
			oaep256 = 1;
			break;
		case 'w':
			wrap_mech = strtoul(optarg, NULL, 0);
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
	if (!sock_path || !a.state_dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (strlen(sock_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "--socket: path longer than %zu bytes\n", sizeof(sa.sun_path) - 1);
		return 2;
	}
	vr_msg_set_level(verbose > VR_MSG_DEBUG ? VR_MSG_DEBUG : (enum vr_msg_level)verbose);
	no_dumps();
	vr_hsm_json_wipe();
	if (module) {
		module_owned = module_path(module);
		if (!module_owned)
			return 2;
		module = module_owned;
	}
	if (!a.n_allowed)
		a.allowed[a.n_allowed++] = getuid();
	umask(077);
	pthread_mutex_init(&a.mu, NULL);
	a.sessions = json_object();

	rc = vr_agent_state_load(&a);
	if (rc) {
		fprintf(stderr, "vaultrep-hsm-agent: cannot load state from %s: %s\n", a.state_dir,
		        strerror(-rc));
		return 1;
	}
	{
		char keys[4096];

		snprintf(keys, sizeof(keys), "%s/keys", a.state_dir);
		a.ks = vr_keystore_open(keys);
		if (!a.ks) {
			fprintf(stderr, "vaultrep-hsm-agent: cannot open the key store %s: %s\n",
			        keys, strerror(errno));
			return 1;
		}
	}
	a.cache = json_object();
	a.p11 = vr_p11_open(module);
	if (!a.p11) {
		fprintf(stderr, "vaultrep-hsm-agent: cannot load PKCS#11 module %s: %s\n",
		        module ? module : VR_P11_DEFAULT_MODULE, strerror(errno));
		return 1;
	}
	a.p11->mech.aes_wrap = wrap_mech;
	if (oaep256) {
		a.p11->mech.oaep_hash = CKM_SHA256;
		a.p11->mech.oaep_mgf = CKG_MGF1_SHA256;
	}
	rc = vr_agent_init_site(&a);
	if (rc) {
		fprintf(stderr, "vaultrep-hsm-agent: cannot open or create the site token: %s\n",
		        strerror(-rc));
		return 1;
	}

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(sock_path, 0660) ||
	    listen(lfd, 16)) {
		fprintf(stderr, "vaultrep-hsm-agent: cannot serve %s: %s\n", sock_path,
		        strerror(errno));
		return 1;
	}
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGTERM, &sig, NULL);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "vaultrep-hsm-agent: serving %s (module %s)\n", sock_path, a.p11->path);

	while (!stopping) {
		struct ucred cr;
		socklen_t crn = sizeof(cr);
		struct conn *conn;
		pthread_t th;
		bool admitted = false;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EINTR)
				vr_warn("hsm", "accept: %s", strerror(errno));
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crn) == 0)
			for (unsigned i = 0; i < a.n_allowed; i++)
				admitted |= cr.uid == a.allowed[i];
		if (!admitted) {
			vr_warn("hsm", "refused a client with uid %ld (not in --allow-uid)",
			        (long)cr.uid);
			close(fd);
			continue;
		}
		conn = malloc(sizeof(*conn));
		if (!conn) {
			close(fd);
			continue;
		}
		*conn = (struct conn){&a, fd, cr.uid};
		if (pthread_create(&th, NULL, serve, conn)) {
			close(fd);
			free(conn);
			continue;
		}
		pthread_detach(th);
	}
	fprintf(stderr, "vaultrep-hsm-agent: stopping\n");
	close(lfd);
	unlink(sock_path);
	pthread_mutex_lock(&a.mu);
	vr_agent_sessions_close(&a);
	vr_p11_close(a.p11);
	json_decref(a.sessions);
	json_decref(a.cache);
	json_decref(a.state);
	vr_keystore_close(a.ks);
	free(module_owned);
	return 0;
}
