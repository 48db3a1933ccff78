// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrep-control as an operator meets it: every step through vaultrepctl (a real process),
 * against a real control process, its HSM agent on a SoftHSMv2 of the test's own, and
 * certificates made by tools/vr-pki.
 *
 *   vaultrepctl --socket ----------------> console (unix) ---+
 *   vaultrepctl --connect (mutual TLS) --> 127.0.0.1:<port> --+--> vaultrep-control --> agent
 *                                                                   catalog, audit.log
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vr_api.h"
#include "vr_common.h"
#include "vr_hsm.h"
#include "vr_log.h"
#include "vr_test.h"

struct site {
	char *dir;
	char agent_sock[300], ctl_sock[300], conf[300], pki[300], state[300];
	int agent_pid, ctl_pid;
	unsigned port;
	char console[400], admin[1200], reader[1200];
};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl(const char *auth, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	ck_assert_msg(rc == 0, "%s: exit %d", cmd, rc);
}

static unsigned
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &n), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* vaultrepctl with `auth` and the arguments; its stdout and stderr into out; its exit status. */
static int
ctl(const char *auth, char *out, size_t n, const char *fmt, ...)
{
	char cmd[4096], args[2048];
	va_list ap;
	FILE *p;
	size_t got = 0;
	int status;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s %s 2>&1", VR_CTL_BIN, auth, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (got + 1 < n) {
		size_t r = fread(out + got, 1, n - 1 - got, p);

		if (!r)
			break;
		got += r;
	}
	out[got] = 0;
	status = pclose(p);
	ck_assert_msg(WIFEXITED(status), "vaultrepctl %s: did not exit", args);
	return WEXITSTATUS(status);
}

/* vaultrepctl that must succeed. */
#define OK(auth, out, ...)                                                                         \
	do {                                                                                       \
		int rc_ = ctl(auth, out, sizeof(out), __VA_ARGS__);                                \
		ck_assert_msg(rc_ == 0, "exit %d: %s", rc_, out);                                  \
	} while (0)

static void
write_conf(struct site *s, const char *dataplane)
{
	FILE *f = fopen(s->conf, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f,
	        "[site]\nid = 1\nname = east\nstate = %s\nhsm = %s\n%s%s%s"
	        "[mgmt]\nlisten = 127.0.0.1:%u\nsocket = %s\ncert = %s/site/site.crt\n"
	        "key = %s/site/site.key\noperator_ca = %s/ops/ca.crt\n",
	        s->state, s->agent_sock, dataplane ? "dataplane = " : "",
	        dataplane ? dataplane : "", dataplane ? "\n" : "", s->port, s->ctl_sock, s->pki,
	        s->pki, s->pki);
	fclose(f);
}

static void
start_agent(struct site *s)
{
	const char *argv[] = {VR_AGENT_BIN, "--socket", s->agent_sock, "--state", s->state, NULL};
	char st[320];

	snprintf(st, sizeof(st), "%s/agent", s->dir);
	argv[4] = st;
	s->agent_pid = vr_test_spawn(argv, s->agent_sock);
	ck_assert_msg(s->agent_pid > 0, "agent did not come up");
}

static void
start_ctl(struct site *s)
{
	const char *argv[] = {VR_CONTROL_BIN, "--config", s->conf, NULL};

	s->ctl_pid = vr_test_spawn(argv, s->ctl_sock);
	ck_assert_msg(s->ctl_pid > 0, "control did not come up");
}

static void
stop_ctl(struct site *s)
{
	int status = vr_test_stop(s->ctl_pid);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "control did not stop cleanly (status %d)", status);
	s->ctl_pid = 0;
}

/* vaultrepctl's arguments for the management port of s, trusting ca_dir's certificate as the
 * site's and presenting ops_dir/who's. */
static void
tls_auth(char *buf, size_t n, const struct site *s, const char *ca_dir, const char *ops_dir,
         const char *who)
{
	snprintf(
	    buf, n,
	    "--connect 127.0.0.1:%u --ca %s/%s/site.crt --cert %s/%s/%s.crt --key %s/%s/%s.key",
	    s->port, s->pki, ca_dir, s->pki, ops_dir, who, s->pki, ops_dir, who);
}

/* A site's directory (with its own SoftHSMv2), its sockets and files, its management port. */
static void
site_paths(struct site *s)
{
	memset(s, 0, sizeof(*s));
	s->dir = vr_test_softhsm();
	snprintf(s->agent_sock, sizeof(s->agent_sock), "%s/agent.sock", s->dir);
	snprintf(s->ctl_sock, sizeof(s->ctl_sock), "%s/control.sock", s->dir);
	snprintf(s->conf, sizeof(s->conf), "%s/control.conf", s->dir);
	snprintf(s->pki, sizeof(s->pki), "%s/pki", s->dir);
	snprintf(s->state, sizeof(s->state), "%s/control", s->dir);
	snprintf(s->console, sizeof(s->console), "--socket %s", s->ctl_sock);
	s->port = free_port();
}

/* A site: agent, PKI (site identity, operator CA, admin alice, reader bob), control. */
static void
site_up(struct site *s, const char *dataplane)
{
	site_paths(s);
	sh("%s site %s/site east >/dev/null && %s ca %s/ops >/dev/null && "
	   "%s operator %s/ops alice admin >/dev/null && %s operator %s/ops bob reader >/dev/null",
	   VR_PKI, s->pki, VR_PKI, s->pki, VR_PKI, s->pki, VR_PKI, s->pki);
	tls_auth(s->admin, sizeof(s->admin), s, "site", "ops", "alice");
	tls_auth(s->reader, sizeof(s->reader), s, "site", "ops", "bob");
	write_conf(s, dataplane);
	start_agent(s);
	start_ctl(s);
}

static void
site_down(struct site *s)
{
	if (s->ctl_pid)
		stop_ctl(s);
	if (s->agent_pid)
		vr_test_stop(s->agent_pid);
	vr_test_rmdir(s->dir);
}

/* The HSM agent's own list of partitions: what is really there, whatever control says. */
static size_t
partitions(struct site *s)
{
	struct vr_hsm *h = vr_hsm_connect(s->agent_sock);
	json_t *req = json_pack("{s:s}", "op", "vault.list"), *res;
	char err[256];
	size_t n;

	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(vr_hsm_call(h, req, &res, err, sizeof(err)), 0);
	n = json_array_size(json_object_get(res, "vaults"));
	json_decref(req);
	json_decref(res);
	vr_hsm_close(h);
	return n;
}

static long
counter(struct site *s, const char *name)
{
	char out[8192], *p;

	OK(s->console, out, "stats");
	p = strstr(out, name);
	ck_assert_msg(p, "no counter %s in %s", name, out);
	return strtol(p + strlen(name), NULL, 10);
}

/* A raw frame on the console socket; returns the response's status (or -1 on no answer). */
static int
raw_frame(struct site *s, const void *hdr, size_t hn, const void *body, size_t bn)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), status = -1;
	uint8_t rh[4];
	char buf[4096];
	json_t *j;
	json_error_t je;

	ck_assert_uint_lt(strlen(s->ctl_sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, s->ctl_sock, strlen(s->ctl_sock) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(write(fd, hdr, hn), (ssize_t)hn);
	if (bn)
		ck_assert_int_eq(write(fd, body, bn), (ssize_t)bn);
	if (read(fd, rh, 4) == 4) {
		uint32_t n = vr_get_be32(rh);

		if (n < sizeof(buf) && read(fd, buf, n) == (ssize_t)n) {
			j = json_loadb(buf, n, 0, &je);
			status = (int)json_integer_value(json_object_get(j, "status"));
			json_decref(j);
		}
	}
	/* ... and then the server closes the connection */
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	return status;
}

START_TEST(mgmt_port_refusals)
{
	struct site s;
	char out[8192], other[400], auth[1200];
	struct vr_api_tls bare;
	struct vr_api *a;
	json_t *req, *res = NULL;
	int rc;
	uint8_t hdr[4];

	site_up(&s, NULL);
	/* The admin's certificate opens the port and may do anything. */
	OK(s.admin, out, "site init");
	ck_assert_ptr_nonnull(strstr(out, "initialized"));

	/* No certificate: the handshake (or the first read after it) fails; no answer comes. */
	snprintf(other, sizeof(other), "%s/site/site.crt", s.pki);
	bare = (struct vr_api_tls){.ca = other};
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", s.port);
	a = vr_api_connect_tls(auth, &bare, out, sizeof(out));
	/* TLS 1.3: the client's handshake ends before the server has checked it, so the
	 * refusal (the server's alert) arrives on the first read. */
	ck_assert_msg(a, "%s", out);
	{
		req = json_pack("{s:s}", "op", "vault.list");
		rc = vr_api_call(a, req, &res, out, sizeof(out));
		json_decref(req);
		ck_assert_msg(rc != 0 && !res, "a client without a certificate got an answer");
		ck_assert_msg(strstr(out, "certificate required"), "%s", out);
		vr_api_close(a);
	}

	/* A certificate from another CA. */
	sh("%s ca %s/other >/dev/null && %s operator %s/other mallory admin >/dev/null", VR_PKI,
	   s.pki, VR_PKI, s.pki);
	tls_auth(auth, sizeof(auth), &s, "site", "other", "mallory");
	ck_assert_int_eq(ctl(auth, out, sizeof(out), "vault create account 1 name x"), 3);
	ck_assert_msg(strstr(out, "unknown ca"), "%s", out);

	/* An expired certificate from the right CA. */
	sh("%s operator %s/ops old admin -1 >/dev/null", VR_PKI, s.pki);
	tls_auth(auth, sizeof(auth), &s, "site", "ops", "old");
	ck_assert_int_eq(ctl(auth, out, sizeof(out), "vault create account 1 name x"), 3);
	ck_assert_msg(strstr(out, "expired"), "%s", out);

	/* A control process that is not the pinned one (the client checks the server too). */
	sh("%s site %s/impostor east >/dev/null", VR_PKI, s.pki);
	tls_auth(auth, sizeof(auth), &s, "impostor", "ops", "alice");
	ck_assert_int_eq(ctl(auth, out, sizeof(out), "vault list"), 3);
	ck_assert_msg(strstr(out, "certificate verify failed"), "%s", out);

	/* A reader reads, and cannot mutate. */
	OK(s.reader, out, "vault list");
	ck_assert_ptr_nonnull(strstr(out, "ACCOUNT"));
	ck_assert_int_eq(ctl(s.reader, out, sizeof(out), "vault create account 1 name x"), 1);
	ck_assert_msg(strstr(out, "needs the operator role") && strstr(out, "EPERM"), "%s", out);
	ck_assert_int_eq(ctl(s.reader, out, sizeof(out), "site init"), 1);
	ck_assert_msg(strstr(out, "needs the admin role"), "%s", out);
	OK(s.console, out, "vault list");
	ck_assert_ptr_nonnull(strstr(out, "(none)"));

	/* Every refusal counted and audited, with the certificate's fault named. */
	ck_assert_int_eq(counter(&s, "refused_tls"), 4); /* the impostor's client hung up too */
	ck_assert_int_eq(counter(&s, "denied"), 2);
	OK(s.console, out, "audit show max 100");
	ck_assert_msg(strstr(out, "certificate has expired") &&
	                  strstr(out, "unable to get local issuer certificate") &&
	                  strstr(out, "needs the operator role") && strstr(out, "intact"),
	              "%s", out);

	/* Frames that are not requests end the connection, after an answer that says why. */
	vr_put_be32(hdr, VR_API_MAX_MSG + 1);
	ck_assert_int_eq(raw_frame(&s, hdr, 4, NULL, 0), EMSGSIZE);
	vr_put_be32(hdr, 5);
	ck_assert_int_eq(raw_frame(&s, hdr, 4, "[1,2]", 5), EPROTO);
	ck_assert_int_eq(counter(&s, "bad_frames"), 2);
	site_down(&s);
}
END_TEST

START_TEST(vault_and_keys)
{
	struct site s;
	char out[8192], ct[512], file[400], *p;
	FILE *f;

	site_up(&s, NULL);
	/* Nothing before the site has its key pair. */
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault create account 42 name payments"),
	                 1);
	ck_assert_msg(strstr(out, "site init first"), "%s", out);
	OK(s.admin, out, "site init");
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "site init"), 1);
	ck_assert_msg(strstr(out, "EALREADY"), "%s", out);

	OK(s.admin, out, "vault create account 42 name payments");
	ck_assert_msg(strstr(out, "ready") && strstr(out, "pkcs11:"), "%s", out);
	ck_assert_int_eq(partitions(&s), 1);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault create account 42 name payments"),
	                 1);
	ck_assert_msg(strstr(out, "exists") && strstr(out, "EEXIST"), "%s", out);
	ck_assert_int_eq(partitions(&s), 1);

	OK(s.admin, out, "key create account 42 vault payments key k1");
	OK(s.admin, out,
	   "--json key encrypt account 42 vault payments key k1 data \"hello world\"");
	p = strstr(out, "vr1:");
	ck_assert_msg(p, "%s", out);
	snprintf(ct, sizeof(ct), "%.*s", (int)strcspn(p, "\""), p);
	OK(s.admin, out, "key rotate account 42 vault payments key k1");
	ck_assert_msg(strstr(out, "1,2"), "%s", out);
	/* The old version still decrypts; a flipped byte does not. */
	OK(s.admin, out, "key decrypt account 42 vault payments key k1 ciphertext %s", ct);
	ck_assert_msg(strstr(out, "hello world"), "%s", out);
	/* Another base64 letter, not a flipped bit: 'a' ^ 1 is a backquote, which the shell
	 * that runs vaultrepctl would take for a command substitution. 27 bytes are 36 letters
	 * without padding, so every letter carries 6 bits of the tag. */
	ct[strlen(ct) - 3] = ct[strlen(ct) - 3] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out),
	                     "key decrypt account 42 vault payments key k1 ciphertext %s", ct),
	                 1);
	OK(s.reader, out, "key list account 42 vault payments");
	ck_assert_msg(strstr(out, "KEY") && strstr(out, "k1") && strstr(out, "1,2"), "%s", out);
	OK(s.reader, out, "vault show account 42 name payments");
	ck_assert_msg(strstr(out, "ready") && strstr(out, "k1"), "%s", out);

	/* Clear errors and exit codes: unknown vault (1), usage (2). */
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "key create account 42 vault nope key k"),
	                 1);
	ck_assert_msg(strstr(out, "no vault nope") && strstr(out, "ENOENT"), "%s", out);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "key create account 42 vault payments"), 2);
	ck_assert_msg(strstr(out, "missing key"), "%s", out);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault explode"), 2);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault create account x name y"), 1);
	ck_assert_msg(strstr(out, "\"account\" must be an integer"), "%s", out);
	OK(s.admin, out, "key create --help");
	ck_assert_msg(strstr(out, "usage: vaultrepctl key create account <account>"), "%s", out);

	/* A command file runs line by line and stops at the first failure, naming it. */
	snprintf(file, sizeof(file), "%s/cmds", s.dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "# lab setup\nkey create account 42 vault payments key k2\n\n"
	           "key create account 42 vault payments key k2\n"
	           "key create account 42 vault payments key k3\n");
	fclose(f);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "-f %s", file), 1);
	ck_assert_msg(strstr(out, "cmds:4") && strstr(out, "EEXIST"), "%s", out);
	OK(s.reader, out, "key list account 42 vault payments");
	ck_assert_msg(strstr(out, "k2") && !strstr(out, "k3"), "%s", out);

	OK(s.admin, out, "key delete account 42 vault payments key k1");
	OK(s.admin, out, "key list account 42 vault payments");
	ck_assert_msg(!strstr(out, "k1"), "%s", out);
	ck_assert_int_eq(
	    ctl(s.admin, out, sizeof(out), "key encrypt account 42 vault payments key k1 data x"),
	    1);

	OK(s.admin, out, "vault delete account 42 name payments");
	OK(s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "(none)"), "%s", out);
	ck_assert_int_eq(partitions(&s), 0);
	site_down(&s);
}
END_TEST

/* A failure at any step of vault create leaves nothing behind: no entry, no partition. */
START_TEST(vault_create_rolls_back)
{
	struct site s;
	char out[8192], dp[400];

	snprintf(dp, sizeof(dp), "/nonexistent/vaultrep-dataplane.sock");
	site_up(&s, dp);
	OK(s.admin, out, "site init");
	/* The dataplane is down: the partition was made, then undone. */
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault create account 7 name v"), 1);
	ck_assert_msg(strstr(out, "dataplane is not reachable"), "%s", out);
	ck_assert_int_eq(partitions(&s), 0);
	OK(s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "(none)"), "%s", out);

	/* The HSM agent is down: nothing is made. */
	vr_test_stop(s.agent_pid);
	s.agent_pid = 0;
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out), "vault create account 7 name v"), 1);
	ck_assert_msg(strstr(out, "HSM agent is not reachable") && strstr(out, "ENOTCONN"), "%s",
	              out);
	OK(s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "(none)"), "%s", out);
	start_agent(&s);
	ck_assert_int_eq(partitions(&s), 0);
	site_down(&s);
}
END_TEST

static void
edit_audit(struct site *s, int line, const char *from, const char *to, bool drop_last)
{
	char path[400], tmp[420];

	snprintf(path, sizeof(path), "%s/audit.log", s->state);
	snprintf(tmp, sizeof(tmp), "%s.orig", path);
	if (from)
		sh("cp %s %s && sed -i '%ds/%s/%s/' %s", path, tmp, line, from, to, path);
	else if (drop_last)
		sh("cp %s %s && sed -i '$d' %s", path, tmp, path);
	else
		sh("mv %s %s", tmp, path);
}

START_TEST(restart_keeps_catalog_and_audit)
{
	struct site s;
	char out[8192], pin[65];
	long seq;
	char *p;

	site_up(&s, NULL);
	OK(s.admin, out, "site init");
	memset(pin, 'a', 64);
	pin[64] = 0;
	OK(s.admin, out, "peer add site 2 name west address 127.0.0.1:7444 pin %s", pin);
	ck_assert_int_eq(ctl(s.admin, out, sizeof(out),
	                     "peer add site 3 name bad address 127.0.0.1:7444 pin 12"),
	                 1);
	OK(s.admin, out, "vault create account 42 name payments");
	OK(s.admin, out, "key create account 42 vault payments key k1");
	OK(s.console, out, "audit show");
	p = strstr(out, "head.seq");
	ck_assert_ptr_nonnull(p);
	seq = strtol(p + strlen("head.seq"), NULL, 10);
	ck_assert_int_eq(seq, 5);

	stop_ctl(&s);
	start_ctl(&s);
	OK(s.reader, out, "vault list");
	ck_assert_msg(strstr(out, "payments") && strstr(out, "ready"), "%s", out);
	OK(s.reader, out, "peer list");
	ck_assert_msg(strstr(out, "west") && strstr(out, "127.0.0.1:7444"), "%s", out);
	OK(s.reader, out, "key list account 42 vault payments");
	ck_assert_msg(strstr(out, "k1"), "%s", out);
	OK(s.admin, out, "key rotate account 42 vault payments key k1");
	OK(s.console, out, "audit show");
	ck_assert_msg(strstr(out, "head.seq                 6") && strstr(out, "intact") &&
	                  strstr(out, "alice"),
	              "%s", out);

	/* An entry changed after the fact: the chain breaks there. */
	edit_audit(&s, 2, "west", "evil", false);
	OK(s.console, out, "audit show");
	ck_assert_msg(strstr(out, "broken at seq 2"), "%s", out);
	edit_audit(&s, 0, NULL, NULL, false);
	OK(s.console, out, "audit show");
	ck_assert_msg(strstr(out, "intact"), "%s", out);
	/* The last entry cut off: the catalog's head catches it. */
	edit_audit(&s, 0, NULL, NULL, true);
	OK(s.console, out, "audit show");
	ck_assert_msg(strstr(out, "cut short"), "%s", out);
	edit_audit(&s, 0, NULL, NULL, false);
	site_down(&s);
}
END_TEST

/* --- two sites, replicating (V3-V7) --- */

/*
 *   site 1 (east)                               site 2 (west)
 *   vaultrepctl -> control --peer link (mTLS, pinned)--> control <- vaultrepctl
 *                  |    \                                /    |
 *                agent  dataplane ==WAN (memif)== dataplane  agent
 */
struct full {
	struct site s;
	int id, dp_pid;
	char dp_sock[300], dp_ini[300], prefix[48], lan[400], wan[400];
	unsigned peer_port;
};

static char wan_sock[300];

static void
start_dp(struct full *f)
{
	const char *dp[] = {VR_DP_BIN,
	                    "-l",
	                    "0,1",
	                    "--no-huge",
	                    "-m",
	                    "256",
	                    "--no-pci",
	                    "--file-prefix",
	                    f->prefix,
	                    "--log-level",
	                    "lib.eal:warning",
	                    "--vdev",
	                    f->lan,
	                    "--vdev",
	                    f->wan,
	                    "--",
	                    "--config",
	                    f->dp_ini,
	                    NULL};

	f->dp_pid = vr_test_spawn(dp, f->dp_sock);
	ck_assert_msg(f->dp_pid > 0, "dataplane of site %d did not start", f->id);
}

static void
stop_dp(struct full *f)
{
	int st = vr_test_stop(f->dp_pid);

	f->dp_pid = 0;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dataplane %d exited with %d", f->id,
	              st);
}

static void
full_up(struct full *f, int id, unsigned max_vaults)
{
	const char *agent[] = {VR_AGENT_BIN, "--socket",        NULL, "--state",
	                       NULL,         "--dataplane-uid", "0",  NULL};
	char st[320];
	FILE *fp;
	struct site *s = &f->s;

	memset(f, 0, sizeof(*f));
	f->id = id;
	site_paths(s);
	snprintf(f->dp_sock, sizeof(f->dp_sock), "%s/dp.sock", s->dir);
	snprintf(f->dp_ini, sizeof(f->dp_ini), "%s/dp.ini", s->dir);
	snprintf(f->prefix, sizeof(f->prefix), "vrc%d_%d", (int)getpid(), id);
	f->peer_port = free_port();
	sh("%s site %s/site site%d >/dev/null && %s ca %s/ops >/dev/null && "
	   "%s operator %s/ops alice admin >/dev/null",
	   VR_PKI, s->pki, id, VR_PKI, s->pki, VR_PKI, s->pki);
	tls_auth(s->admin, sizeof(s->admin), s, "site", "ops", "alice");
	/* the agent (it gives the dataplane its payload keys: --dataplane-uid) */
	snprintf(st, sizeof(st), "%s/agent", s->dir);
	agent[2] = s->agent_sock;
	agent[4] = st;
	s->agent_pid = vr_test_spawn(agent, s->agent_sock);
	ck_assert_int_gt(s->agent_pid, 0);
	/* the dataplane: LAN toward no one, WAN over memif to the other site */
	fp = fopen(f->dp_ini, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp,
	        "[site]\nid = %d\nlog_dir = %s/wal\ncontrol = %s\nhsm = %s\n"
	        "[lan]\nport = 0\nip = 198.18.%d.1\n[wan]\nport = 1\nip = 198.19.0.%d\n"
	        "[peer %d]\nip = 198.19.0.%d\n",
	        id, s->dir, f->dp_sock, s->agent_sock, id, id, 3 - id, 3 - id);
	fclose(fp);
	snprintf(f->lan, sizeof(f->lan),
	         "net_memif0,role=server,socket=%s/lan.sock,socket-abstract=no,"
	         "mac=02:00:00:00:%02x:01",
	         s->dir, id);
	snprintf(f->wan, sizeof(f->wan),
	         "net_memif1,role=%s,socket=%s,socket-abstract=no,mac=02:00:00:00:%02x:02",
	         id == 1 ? "server" : "client", wan_sock, id);
	start_dp(f);
	/* control */
	fp = fopen(s->conf, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp,
	        "[site]\nid = %d\nname = site%d\nstate = %s\nhsm = %s\ndataplane = %s\n"
	        "[mgmt]\nlisten = 127.0.0.1:%u\nsocket = %s\ncert = %s/site/site.crt\n"
	        "key = %s/site/site.key\noperator_ca = %s/ops/ca.crt\n"
	        "[peers]\nlisten = 127.0.0.1:%u\n[limits]\nvaults = %u\n",
	        id, id, s->state, s->agent_sock, f->dp_sock, s->port, s->ctl_sock, s->pki, s->pki,
	        s->pki, f->peer_port, max_vaults);
	fclose(fp);
	start_ctl(s);
}

static void
full_down(struct full *f)
{
	stop_dp(f);
	site_down(&f->s);
}

static void
pin_of(struct full *f, char out[65])
{
	char path[400];

	snprintf(path, sizeof(path), "%s/site/site.crt", f->s.pki);
	ck_assert_int_eq(vr_api_cert_sha256(path, out), 0);
}

/* Both sites' key pairs, then each a peer of the other: linked. */
static void
link_sites(struct full *a, struct full *b)
{
	char out[8192], pin[65];

	OK(a->s.admin, out, "site init");
	OK(b->s.admin, out, "site init");
	pin_of(b, pin);
	OK(a->s.admin, out, "peer add site %d name west address 127.0.0.1:%u pin %s", b->id,
	   b->peer_port, pin);
	pin_of(a, pin);
	OK(b->s.admin, out, "peer add site %d name east address 127.0.0.1:%u pin %s", a->id,
	   a->peer_port, pin);
	ck_assert_msg(strstr(out, "linked"), "%s", out);
}

/* Waits (at most 20 s) until vaultrepctl's output for args contains want (and not unwanted). */
static void
await(struct site *s, const char *want, const char *unwanted, const char *args)
{
	char out[8192];

	for (int i = 0; i < 200; i++) {
		if (!ctl(s->admin, out, sizeof(out), "%s", args) && strstr(out, want) &&
		    (!unwanted || !strstr(out, unwanted)))
			return;
		usleep(100000);
	}
	ck_abort_msg("%s: never showed \"%s\"%s%s: %s", args, want, unwanted ? " without " : "",
	             unwanted ? unwanted : "", out);
}

static unsigned vault_id(struct site *s, unsigned account, const char *name);

START_TEST(replicate_two_sites)
{
	struct full a, b;
	char out[16384], pin[65], ct1[512], ct2[512], *p;
	char *root = vr_test_tmpdir("ctl2");

	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	full_up(&a, 1, 1024);
	full_up(&b, 2, 1); /* room for one vault: the second replicate is refused */
	OK(a.s.admin, out, "site init");
	OK(b.s.admin, out, "site init");

	/* Peers: the first add waits for the other side; the second links both. */
	pin_of(&b, pin);
	OK(a.s.admin, out, "peer add site 2 name west address 127.0.0.1:%u pin %s", b.peer_port,
	   pin);
	ck_assert_msg(strstr(out, "waiting"), "%s", out);
	pin_of(&a, pin);
	OK(b.s.admin, out, "peer add site 1 name east address 127.0.0.1:%u pin %s", a.peer_port,
	   pin);
	ck_assert_msg(strstr(out, "linked"), "%s", out);
	OK(a.s.admin, out, "peer list");
	ck_assert_msg(strstr(out, "linked"), "%s", out);

	/* A vault with three keys at site 1, one rotated, data encrypted under it. */
	OK(a.s.admin, out, "vault create account 42 name payments");
	OK(a.s.admin, out, "key create account 42 vault payments key k1");
	OK(a.s.admin, out, "key create account 42 vault payments key k2");
	OK(a.s.admin, out, "key create account 42 vault payments key k3");
	OK(a.s.admin, out, "--json key encrypt account 42 vault payments key k1 data \"before\"");
	p = strstr(out, "vr1:");
	ck_assert_ptr_nonnull(p);
	snprintf(ct1, sizeof(ct1), "%.*s", (int)strcspn(p, "\""), p);
	OK(a.s.admin, out, "key rotate account 42 vault payments key k1");

	/* Replicate: the handshake, then the copy with its progress, until in sync. */
	OK(a.s.admin, out, "vault replicate account 42 name payments site 2");
	ck_assert_msg(strstr(out, "replicated") && strstr(out, "in sync"), "%s", out);
	OK(b.s.admin, out, "vault show account 42 name payments");
	ck_assert_msg(strstr(out, "replica") && strstr(out, "k1") && strstr(out, "1,2") &&
	                  strstr(out, "k3"),
	              "%s", out);
	/* Site 2 decrypts what site 1 encrypted under the older version. */
	OK(b.s.admin, out, "key decrypt account 42 vault payments key k1 ciphertext %s", ct1);
	ck_assert_msg(strstr(out, "before"), "%s", out);
	/* The WAL's payload key, made at site 1, is kept in site 2's catalog (K1, K2). */
	{
		unsigned id = vault_id(&a.s, 42, "payments");
		json_int_t key_id;
		json_t *j, *pk;

		OK(b.s.admin, out, "--json stream show account 42 vault %u primary 1", id);
		j = json_loads(out, 0, NULL);
		key_id = json_integer_value(json_object_get(j, "key_id"));
		json_decref(j);
		ck_assert_int_gt(key_id, 0);
		OK(b.s.admin, out, "--json vault show account 42 name payments");
		j = json_loads(out, 0, NULL);
		pk = json_object_get(json_object_get(j, "vault"), "payload_keys");
		ck_assert_msg(json_array_size(pk) >= 1 &&
		                  json_integer_value(json_array_get(pk, json_array_size(pk) - 1)) ==
		                      key_id,
		              "%s", out);
		json_decref(j);
	}

	/* Continuous: rotation and deletion at the primary reach the replica. */
	OK(a.s.admin, out, "key rotate account 42 vault payments key k2");
	OK(a.s.admin, out, "key delete account 42 vault payments key k3");
	OK(a.s.admin, out, "--json key encrypt account 42 vault payments key k2 data \"after\"");
	p = strstr(out, "vr1:2:");
	ck_assert_msg(p, "%s", out);
	snprintf(ct2, sizeof(ct2), "%.*s", (int)strcspn(p, "\""), p);
	await(&b.s, "1,2", "k3", "key list account 42 vault payments");
	OK(b.s.admin, out, "key decrypt account 42 vault payments key k2 ciphertext %s", ct2);
	ck_assert_msg(strstr(out, "after"), "%s", out);

	/* The replica refuses writes and names its primary. */
	ck_assert_int_eq(
	    ctl(b.s.admin, out, sizeof(out), "key create account 42 vault payments key k9"), 1);
	ck_assert_msg(strstr(out, "EROFS") && strstr(out, "site 1 (east)"), "%s", out);

	/* A target without capacity: a clear refusal, nothing made on either side. */
	OK(a.s.admin, out, "vault create account 42 name ledger");
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault replicate account 42 name ledger site 2"), 1);
	ck_assert_msg(strstr(out, "no capacity") && strstr(out, "limit"), "%s", out);
	OK(a.s.admin, out, "vault show account 42 name ledger");
	ck_assert_msg(strstr(out, "ready") && !strstr(out, "replicas[0]"), "%s", out);
	OK(b.s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "payments") && !strstr(out, "ledger"), "%s", out);
	ck_assert_uint_eq(partitions(&b.s), 1);

	/* Control restarts: catalog, peers and status intact, records still applied. */
	stop_ctl(&b.s);
	start_ctl(&b.s);
	OK(b.s.admin, out, "peer list");
	ck_assert_msg(strstr(out, "linked"), "%s", out);
	OK(a.s.admin, out, "key create account 42 vault payments key k4");
	await(&b.s, "k4", NULL, "key list account 42 vault payments");

	/* Deleting a replicated vault: the replica's site refuses, then every replica goes first
	 * (its partition, keys and catalog entries), then the primary's. */
	ck_assert_int_eq(ctl(b.s.admin, out, sizeof(out), "vault delete account 42 name payments"),
	                 1);
	ck_assert_msg(strstr(out, "EROFS"), "%s", out);
	stop_ctl(&b.s);
	ck_assert_int_eq(ctl(a.s.admin, out, sizeof(out), "vault delete account 42 name payments"),
	                 1);
	ck_assert_msg(strstr(out, "did not delete its replica") && strstr(out, "again"), "%s", out);
	OK(a.s.admin, out, "vault show account 42 name payments");
	ck_assert_msg(strstr(out, "replicas[0]"), "%s", out);
	start_ctl(&b.s);
	OK(a.s.admin, out, "vault delete account 42 name payments");
	OK(a.s.admin, out, "vault list");
	ck_assert_msg(!strstr(out, "payments") && strstr(out, "ledger"), "%s", out);
	OK(b.s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "(none)"), "%s", out);
	ck_assert_uint_eq(partitions(&b.s), 0);
	ck_assert_int_eq(ctl(b.s.admin, out, sizeof(out), "key list account 42 vault payments"), 1);
	ck_assert_msg(strstr(out, "ENOENT"), "%s", out);

	full_down(&a);
	full_down(&b);
	vr_test_rmdir(root);
}
END_TEST

/* A vault's id at a site (vault show --json). */
static unsigned
vault_id(struct site *s, unsigned account, const char *name)
{
	char out[16384];
	json_t *j;
	unsigned id;

	OK(s->admin, out, "--json vault show account %u name %s", account, name);
	j = json_loads(out, 0, NULL);
	ck_assert_msg(j, "%s", out);
	id = (unsigned)json_integer_value(json_object_get(json_object_get(j, "vault"), "id"));
	json_decref(j);
	ck_assert_uint_gt(id, 0);
	return id;
}

/* Waits (at most 20 s) until a site's dataplane holds stream (account, vault, primary) to min. */
static void
await_lsn(struct site *s, unsigned account, unsigned vault, unsigned primary, long long min)
{
	char out[16384];
	long long lsn = 0;

	for (int i = 0; i < 200 && lsn < min; i++) {
		json_t *j;

		if (i)
			usleep(100000);
		if (ctl(s->admin, out, sizeof(out),
		        "--json stream show account %u vault %u primary %u", account, vault,
		        primary))
			continue;
		j = json_loads(out, 0, NULL);
		lsn = json_integer_value(json_object_get(j, "durable_lsn"));
		json_decref(j);
	}
	ck_assert_msg(lsn >= min, "stream %u/%u/%u: LSN %lld, not %lld", account, vault, primary,
	              lsn, min);
}

/* What an HSM failure at a replica looks like: every version of a key gone from its HSM. */
static void
hsm_lose_key(struct site *s, const char *hsm_vault, const char *key)
{
	struct vr_hsm *h = vr_hsm_connect(s->agent_sock);
	json_t *req = json_pack("{s:s, s:s, s:s, s:b}", "op", "key.delete", "vault", hsm_vault,
	                        "name", key, "replicated", 1),
	       *res = NULL;
	char err[256];

	ck_assert_ptr_nonnull(h);
	ck_assert_msg(!vr_hsm_call(h, req, &res, err, sizeof(err)), "%s", err);
	json_decref(req);
	json_decref(res);
	vr_hsm_close(h);
}

/*
 * What a split brain leaves behind: one record appended to a site's copy of a WAL while its
 * dataplane is down (a valid record, chained to the tail). Its LSN.
 */
static uint64_t
forge_record(struct full *f, uint64_t account, unsigned vault, unsigned primary)
{
	struct vr_stream_id id = {.account = account, .vault = vault, .primary = (uint16_t)primary};
	struct vr_log_stream ls;
	struct vr_log_durable d;
	struct vr_log *log;
	char dir[400];
	uint8_t buf[256];
	unsigned nd, bad;
	struct iovec iov;
	struct vr_rec r = {
	    .stream = id,
	    .origin = (uint16_t)primary,
	    .version = VR_REC_VERSION,
	    .type = VR_REC_DATA,
	    .op = VR_REC_OP_PUT,
	    .payload = (const uint8_t *)"forged",
	    .payload_size = 6,
	};
	int n;

	snprintf(dir, sizeof(dir), "%s/wal", f->s.dir);
	log = vr_log_open(dir, NULL);
	ck_assert_msg(log, "%s: %s", dir, strerror(errno));
	ck_assert_int_eq(vr_log_stream_get(log, &id, &ls), 0);
	r.lsn = ls.last_lsn + 1;
	n = vr_rec_encode(&r, ls.last_entropy, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	iov.iov_base = buf;
	iov.iov_len = (size_t)n;
	ck_assert_int_eq(vr_log_append(log, &iov, 1, &d, &nd, &bad), 0);
	vr_log_close(log);
	return r.lsn;
}

/*
 * vault verify: the same root at both sites while in sync; a key lost at the replica's HSM and
 * a WAL that diverged there are each named; exit 1 when anything differs.
 */
START_TEST(verify_names_differences)
{
	struct full a, b;
	char out[16384], hv[48], want[200], *p;
	char *root = vr_test_tmpdir("ctl4");
	json_t *j, *sites;
	unsigned id;
	uint64_t lsn;

	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	full_up(&a, 1, 1024);
	full_up(&b, 2, 1024);
	link_sites(&a, &b);
	OK(a.s.admin, out, "vault create account 7 name ledger");
	OK(a.s.admin, out, "key create account 7 vault ledger key k1");
	OK(a.s.admin, out, "key create account 7 vault ledger key k2");
	OK(a.s.admin, out, "key create account 7 vault ledger key k3");
	OK(a.s.admin, out, "key rotate account 7 vault ledger key k1");
	OK(a.s.admin, out, "vault verify account 7 name ledger");
	ck_assert_msg(strstr(out, "no replicas") && strstr(out, "keys 4"), "%s", out);

	OK(a.s.admin, out, "vault replicate account 7 name ledger site 2");
	ck_assert_msg(strstr(out, "in sync"), "%s", out);
	/* 20 000 producer records in the vault's WAL: its digest is of chunks, then records. */
	id = vault_id(&a.s, 7, "ledger");
	sh("%s -l 1 --no-huge -m 128 --no-pci --file-prefix vrc%dg --log-level lib.eal:warning "
	   "--vdev net_memif0,role=client,socket=%s/lan.sock,socket-abstract=no -- --ip "
	   "198.18.1.9 --dst 198.18.1.1 --account 7 --vault %u --streams 1 --records 20000 "
	   "--size 64 --window 256 --seconds 60 >/dev/null 2>&1",
	   VR_GEN_BIN, (int)getpid(), a.s.dir, id);
	await_lsn(&b.s, 7, id, 1, 20000);
	OK(a.s.admin, out, "--json vault verify account 7 name ledger");
	j = json_loads(out, 0, NULL);
	ck_assert_msg(j && json_is_true(json_object_get(j, "match")), "%s", out);
	sites = json_object_get(j, "sites");
	ck_assert_uint_eq(json_array_size(sites), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(sites, 0), "root")),
	                 json_string_value(json_object_get(json_array_get(sites, 1), "root")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "root")),
	                 json_string_value(json_object_get(json_array_get(sites, 1), "root")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(sites, 1), "keys")), 4);
	json_decref(j);
	OK(a.s.admin, out, "vault verify account 7 name ledger site 2");
	ck_assert_msg(strstr(out, "every replica holds the same keys and WAL") &&
	                  strstr(out, "ROOT") && !strstr(out, "differs:"),
	              "%s", out);
	/* At the replica, at a site that holds no replica, of a vault that is not there. */
	ck_assert_int_eq(ctl(b.s.admin, out, sizeof(out), "vault verify account 7 name ledger"), 1);
	ck_assert_msg(strstr(out, "EREMOTE") && strstr(out, "site 1"), "%s", out);
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault verify account 7 name ledger site 3"), 1);
	ck_assert_msg(strstr(out, "no replica at site 3"), "%s", out);
	ck_assert_int_eq(ctl(a.s.admin, out, sizeof(out), "vault verify account 7 name nope"), 1);
	ck_assert_msg(strstr(out, "ENOENT"), "%s", out);

	/* A key lost from the replica's HSM. */
	snprintf(hv, sizeof(hv), "s1.a7.v%u", id);
	hsm_lose_key(&b.s, hv, "k3");
	ck_assert_int_eq(ctl(a.s.admin, out, sizeof(out), "vault verify account 7 name ledger"), 1);
	ck_assert_msg(strstr(out, "differs: site 2: key k3 version 1 is missing") &&
	                  !strstr(out, "WAL record"),
	              "%s", out);

	/* The replica's WAL diverged: a record of its own where the primary's next one goes. */
	stop_dp(&b);
	lsn = forge_record(&b, 7, id, 1);
	start_dp(&b);
	/* Its control sees the restart and gives it the vault's stream again. */
	await_lsn(&b.s, 7, id, 1, (long long)lsn);
	OK(b.s.admin, out, "stats");
	p = strstr(out, "control.dp_restarts");
	ck_assert_msg(p && strtol(p + strlen("control.dp_restarts"), NULL, 10) == 1, "%s", out);
	OK(a.s.admin, out, "key create account 7 vault ledger key k4");
	ck_assert_int_eq(ctl(a.s.admin, out, sizeof(out), "vault verify account 7 name ledger"), 1);
	snprintf(want, sizeof(want), "differs: site 2: WAL record %llu is the first that differs",
	         (unsigned long long)lsn);
	ck_assert_msg(strstr(out, want) && strstr(out, "key k3 version 1 is missing") &&
	                  strstr(out, "key k4 version 1 is missing"),
	              "want \"%s\": %s", want, out);
	/* ... and the audit log has every verify, refused ones too. */
	OK(a.s.admin, out, "audit show");
	ck_assert_msg(strstr(out, "vault.verify"), "%s", out);

	/* Deleting the vault closes its WAL at the primary: a producer's frames are refused. */
	OK(a.s.admin, out, "vault delete account 7 name ledger");
	OK(a.s.admin, out, "stream show account 7 vault %u", id);
	ck_assert_msg(strstr(out, "closed                   yes"), "%s", out);
	snprintf(want, sizeof(want), "%s/gen-closed.log", a.s.dir);
	sh("%s -l 1 --no-huge -m 128 --no-pci --file-prefix vrc%dh --log-level lib.eal:warning "
	   "--vdev net_memif0,role=client,socket=%s/lan.sock,socket-abstract=no -- --ip "
	   "198.18.1.9 --dst 198.18.1.1 --account 7 --vault %u --streams 1 --records 10 "
	   "--size 64 --window 4 --seconds 2 >%s 2>&1 || true",
	   VR_GEN_BIN, (int)getpid(), a.s.dir, id, want);
	sh("grep -q 'nack of frame 1: No such file or directory' %s", want);
	OK(a.s.admin, out, "stats");
	p = strstr(out, "ingest_closed");
	ck_assert_msg(p && strtol(p + strlen("ingest_closed"), NULL, 10) >= 1, "%s", out);

	full_down(&a);
	full_down(&b);
	vr_test_rmdir(root);
}
END_TEST

/* A failure at each step of the handshake leaves nothing half-made at either site. */
START_TEST(replicate_rolls_back)
{
	/* link.keys is the last: the target joined the WAL, and leaves it again. */
	static const char *const steps[] = {"link.capacity", "link.provision", "link.masking",
	                                    "link.keys"};
	struct full a, b;
	char out[16384];
	char *root = vr_test_tmpdir("ctl3");

	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	full_up(&a, 1, 1024);
	full_up(&b, 2, 1024);
	link_sites(&a, &b);
	OK(a.s.admin, out, "vault create account 9 name v");
	OK(a.s.admin, out, "key create account 9 vault v key k");

	/* The target's control is down: refused at the first step. */
	stop_ctl(&b.s);
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault replicate account 9 name v site 2"), 1);
	ck_assert_msg(strstr(out, "not reachable"), "%s", out);
	OK(a.s.admin, out, "vault show account 9 name v");
	ck_assert_msg(strstr(out, "ready") && !strstr(out, "replicas[0]"), "%s", out);

	/* Each step of the target's fails in turn (as if its HSM had): undone at both sites. */
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		setenv("VAULTREP_FAULT_OP", steps[i], 1);
		start_ctl(&b.s);
		unsetenv("VAULTREP_FAULT_OP");
		ck_assert_int_eq(
		    ctl(a.s.admin, out, sizeof(out), "vault replicate account 9 name v site 2"), 1);
		ck_assert_msg(strstr(out, steps[i]) && strstr(out, "fault injected"), "%s: %s",
		              steps[i], out);
		OK(a.s.admin, out, "vault show account 9 name v");
		ck_assert_msg(strstr(out, "ready") && !strstr(out, "replicas[0]"), "%s: %s",
		              steps[i], out);
		OK(b.s.admin, out, "vault list");
		ck_assert_msg(strstr(out, "(none)"), "%s: %s", steps[i], out);
		ck_assert_uint_eq(partitions(&b.s), 0);
		stop_ctl(&b.s);
	}
	/* The WAL's member set at site 1 is as before: the join was undone too. */
	OK(a.s.admin, out, "stream show account 9 vault %u", vault_id(&a.s, 9, "v"));
	ck_assert_msg(strstr(out, "durable_lsn") && !strstr(out, "members[0]"), "%s", out);

	/* With nothing failing, the same vault replicates, the join undone before included. */
	start_ctl(&b.s);
	OK(a.s.admin, out, "vault replicate account 9 name v site 2");
	ck_assert_msg(strstr(out, "in sync"), "%s", out);
	ck_assert_uint_eq(partitions(&b.s), 1);
	OK(b.s.admin, out, "key list account 9 vault v");
	ck_assert_msg(strstr(out, "KEY") && strstr(out, "\nk "), "%s", out);
	full_down(&a);
	full_down(&b);
	vr_test_rmdir(root);
}
END_TEST

/* A stream's field at a site's dataplane (stream show --json), or -1. */
static long long
stream_field(struct site *s, unsigned account, unsigned vault, const char *field)
{
	char out[16384];
	long long v = -1;
	json_t *j;

	if (ctl(s->admin, out, sizeof(out), "--json stream show account %u vault %u primary 1",
	        account, vault))
		return -1;
	j = json_loads(out, 0, NULL);
	if (json_is_integer(json_object_get(j, field)))
		v = json_integer_value(json_object_get(j, field));
	json_decref(j);
	return v;
}

/*
 * X1 at control: a sync vault's key changes are answered once its replica holds them too; with
 * the replica away, after a bounded wait, with a warning (the change is in the WAL and reaches
 * the replica when it is back); the mode survives a restart of the primary's dataplane.
 */
START_TEST(sync_vault)
{
	struct full a, b;
	char out[16384];
	char *root = vr_test_tmpdir("ctl5");
	unsigned id;
	json_t *j;

	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	full_up(&a, 1, 16);
	full_up(&b, 2, 16);
	link_sites(&a, &b);

	/* What the mode arguments refuse, each naming why; nothing made. */
	ck_assert_int_eq(ctl(a.s.admin, out, sizeof(out), "vault create account 5 name s mode x"),
	                 1);
	ck_assert_msg(strstr(out, "async or sync"), "%s", out);
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault create account 5 name s mode async sites 2"),
	    1);
	ck_assert_msg(strstr(out, "for a sync vault"), "%s", out);
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault create account 5 name s mode sync sites 1"), 1);
	ck_assert_msg(strstr(out, "2..5 sites"), "%s", out);
	ck_assert_int_eq(
	    ctl(a.s.admin, out, sizeof(out), "vault create account 5 name s mode sync sites 6"), 1);
	ck_assert_msg(strstr(out, "EINVAL"), "%s", out);
	OK(a.s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "(none)"), "%s", out);

	OK(a.s.admin, out, "vault create account 5 name s mode sync");
	OK(a.s.admin, out, "vault create account 5 name plain");
	OK(a.s.admin, out, "vault list");
	ck_assert_msg(strstr(out, "MODE") && strstr(out, " sync ") && strstr(out, " async "), "%s",
	              out);
	id = vault_id(&a.s, 5, "s");
	ck_assert_int_eq(stream_field(&a.s, 5, id, "sync"), 1);
	ck_assert_int_eq(stream_field(&a.s, 5, vault_id(&a.s, 5, "plain"), "sync"), 0);
	/* No replica yet: durable here is all there is. */
	OK(a.s.admin, out, "--json key create account 5 vault s key k0");
	j = json_loads(out, 0, NULL);
	ck_assert_msg(json_integer_value(json_object_get(j, "sites")) == 1 &&
	                  !json_object_get(j, "warning"),
	              "%s", out);
	json_decref(j);

	OK(a.s.admin, out, "vault replicate account 5 name s site 2");
	ck_assert_msg(strstr(out, "in sync"), "%s", out);
	/* Answered once the replica's dataplane holds it: it does the moment the answer comes. */
	for (int i = 0; i < 5; i++) {
		long long lsn;

		OK(a.s.admin, out, "--json key create account 5 vault s key k%d", i + 1);
		j = json_loads(out, 0, NULL);
		ck_assert_msg(json_integer_value(json_object_get(j, "sites")) == 2, "%s", out);
		json_decref(j);
		lsn = stream_field(&a.s, 5, id, "durable_lsn");
		ck_assert_int_ge(stream_field(&b.s, 5, id, "durable_lsn"), lsn);
	}

	/* The replica's dataplane away: answered after the wait, with a warning, not undone. */
	stop_dp(&b);
	OK(a.s.admin, out, "--json key create account 5 vault s key late");
	j = json_loads(out, 0, NULL);
	ck_assert_msg(json_integer_value(json_object_get(j, "sites")) == 1 &&
	                  strstr(json_string_value(json_object_get(j, "warning")), "catch up"),
	              "%s", out);
	json_decref(j);
	OK(a.s.admin, out, "key list account 5 vault s");
	ck_assert_msg(strstr(out, "late"), "%s", out);
	start_dp(&b);
	await(&b.s, "late", NULL, "key list account 5 vault s");
	OK(a.s.admin, out, "--json key rotate account 5 vault s key late");
	ck_assert_msg(strstr(out, "\"sites\": 2"), "%s", out);

	/*
	 * The primary's dataplane restarts: control gives it the stream again, sync included.
	 * (Site 2's WAN is the memif client of site 1's, and a DPDK memif client does not connect
	 * again in place: it restarts too, as after any restart of its server.)
	 */
	stop_dp(&b);
	stop_dp(&a);
	start_dp(&a);
	start_dp(&b);
	for (int i = 0; i < 200 && stream_field(&a.s, 5, id, "sync") != 1; i++)
		usleep(100000);
	ck_assert_int_eq(stream_field(&a.s, 5, id, "sync"), 1);
	OK(a.s.admin, out, "--json key delete account 5 vault s key k1");
	ck_assert_msg(strstr(out, "\"sites\": 2"), "%s", out);
	await(&b.s, "k2", "k1", "key list account 5 vault s");

	full_down(&a);
	full_down(&b);
	vr_test_rmdir(root);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {
	    mgmt_port_refusals,       vault_and_keys,
	    vault_create_rolls_back,  restart_keeps_catalog_and_audit,
	    replicate_two_sites,      replicate_rolls_back,
	    verify_names_differences, sync_vault,
	};

	return vr_test_run("control:sites", 300, tests, sizeof(tests) / sizeof(tests[0]));
}
