// SPDX-License-Identifier: BSD-3-Clause
/*
 * The management port (TLS 1.3, mandatory operator certificates) and the console socket, on
 * libevent: evconnlistener accepts, bufferevent_openssl does the TLS, the read callback cuts
 * frames (vr_api.h) and hands each request to ctl_dispatch().
 *
 * A connection's life:
 *
 *   accepted --TLS handshake ok, cert from operator CA, OU a known role--> serving
 *       |                                                                    |
 *       +--handshake fails (no/expired/foreign cert): refused_tls, audited     |
 *       +--cert without a role: refused_role, audited, closed                 |
 *   console: accepted --uid in console_uids--> serving (admin)                |
 *                     --other uid: refused_uid, closed                         v
 *                                           frame too long / not JSON: error, closed
 *
 * Nothing is read from a connection before it is serving: on the TLS port the handshake
 * (and with it the certificate check) completes before the first byte of a request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "control.h"
#include "vr_common.h"
#include "vr_hsm.h"
#include "vr_msg.h"

enum { IDLE_TIMEOUT_S = 600 };

struct conn {
	struct ctl *c;
	struct bufferevent *bev;
	struct ctl_who who;
	char addr[64];
	bool tls, peer, serving;
	struct conn *prev, *next; /* every open connection, freed at stop */
};

/* One per TLS listener: the management port, the peer port. */
struct port {
	struct ctl *c;
	SSL_CTX *ctx;
	bool peer;
};

static SSL_CTX *server_ctx, *peer_ctx;
static struct port mgmt_port, peer_port;
static struct evconnlistener *tls_listener, *unix_listener, *peer_listener;
static struct conn *conns;

static void
conn_free(struct conn *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	bufferevent_free(k->bev); /* closes the socket (and frees the SSL) */
	free(k);
}

static void
send_json(struct conn *k, json_t *res)
{
	char *s = json_dumps(res, JSON_COMPACT);
	uint8_t hdr[4];

	json_decref(res);
	if (!s)
		return;
	vr_put_be32(hdr, (uint32_t)strlen(s));
	bufferevent_write(k->bev, hdr, 4);
	bufferevent_write(k->bev, s, strlen(s));
	free(s);
}

/* After an error response: close once it is written. */
static void
close_when_flushed(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(k);
}

static void
fail_and_close(struct conn *k, int err, const char *msg)
{
	k->c->stats.bad_frames++;
	send_json(k, vr_hsm_error(err, "%s", msg));
	bufferevent_disable(k->bev, EV_READ);
	bufferevent_setcb(k->bev, NULL, close_when_flushed, NULL, k);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (k->serving && evbuffer_get_length(in) >= 4) {
		uint8_t hdr[4];
		uint32_t n;
		json_t *req;
		json_error_t je;
		unsigned char *body;

		evbuffer_copyout(in, hdr, 4);
		n = vr_get_be32(hdr);
		if (n == 0 || n > VR_API_MAX_MSG) {
			fail_and_close(k, EMSGSIZE, "frame length out of bounds (1..1 MiB)");
			return;
		}
		if (evbuffer_get_length(in) < 4 + (size_t)n)
			return;
		evbuffer_drain(in, 4);
		body = evbuffer_pullup(in, n);
		req = body ? json_loadb((const char *)body, n, 0, &je) : NULL;
		evbuffer_drain(in, n);
		if (!json_is_object(req)) {
			json_decref(req);
			fail_and_close(k, EPROTO, "a request is one JSON object");
			return;
		}
		send_json(k, ctl_dispatch(k->c, &k->who, req));
		json_decref(req);
	}
}

/* The certificate passed the CA check in the handshake; the role comes from its OU. */
static bool
admit_cert(struct conn *k)
{
	SSL *ssl = bufferevent_openssl_get_ssl(k->bev);
	X509 *x = SSL_get1_peer_certificate(ssl);
	X509_NAME *s = x ? X509_get_subject_name(x) : NULL;
	char cn[128] = "", ou[32] = "";

	if (s) {
		X509_NAME_get_text_by_NID(s, NID_commonName, cn, sizeof(cn));
		X509_NAME_get_text_by_NID(s, NID_organizationalUnitName, ou, sizeof(ou));
	}
	X509_free(x);
	snprintf(k->who.name, sizeof(k->who.name), "%s", cn[0] ? cn : "(no CN)");
	k->who.role = vr_api_role(ou);
	if (k->who.role == VR_ROLE_NONE) {
		k->c->stats.refused_role++;
		ctl_audit_append(
		    k->c->audit, &k->who, "connect", NULL, EACCES,
		    "certificate without a role: OU must be admin, operator or reader");
		return false;
	}
	k->c->stats.conn_tls++;
	return true;
}

/* A peer's certificate is self-signed: it is admitted by its pin alone. */
static bool
admit_peer(struct conn *k)
{
	SSL *ssl = bufferevent_openssl_get_ssl(k->bev);
	X509 *x = SSL_get1_peer_certificate(ssl);
	unsigned char md[32];
	unsigned n = sizeof(md);
	char hex[65] = "";
	unsigned site = 0;

	if (x && X509_digest(x, EVP_sha256(), md, &n)) {
		for (unsigned i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		site = ctl_peer_by_pin(k->c, hex);
	}
	X509_free(x);
	if (!site) {
		struct ctl_who anon = {.role = VR_ROLE_NONE};

		k->c->stats.refused_peer++;
		snprintf(anon.name, sizeof(anon.name), "peer:%s", k->addr);
		ctl_audit_append(k->c->audit, &anon, "link", NULL, EACCES,
		                 "a site certificate no peer is pinned to");
		vr_info("control", "peer port: refused %s: certificate %.16s... is no peer's",
		        k->addr, hex);
		return false;
	}
	snprintf(k->who.name, sizeof(k->who.name), "site:%u", site);
	k->who.role = VR_ROLE_PEER;
	k->c->stats.conn_peer++;
	return true;
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *k = arg;

	if (what & BEV_EVENT_CONNECTED) {
		k->serving = k->peer ? admit_peer(k) : admit_cert(k);
		if (!k->serving) {
			conn_free(k);
			return;
		}
		on_read(bev, k); /* a request may have come with the handshake's last flight */
		return;
	}
	if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)) && k->tls &&
	    !k->serving) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		char buf[200] = "connection closed during the handshake";
		struct ctl_who anon = {.role = VR_ROLE_NONE};

		if (e) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

			/* The certificate's own fault reads better than the TLS layer's. */
			if (v != X509_V_OK)
				snprintf(buf, sizeof(buf), "client certificate: %s",
				         X509_verify_cert_error_string(v));
			else
				ERR_error_string_n(e, buf, sizeof(buf));
		}
		k->c->stats.refused_tls++;
		snprintf(anon.name, sizeof(anon.name), "tls:%s", k->addr);
		ctl_audit_append(k->c->audit, &anon, "connect", NULL, EACCES, buf);
		vr_info("control", "management port: refused %s: %s", k->addr, buf);
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT))
		conn_free(k);
}

static struct conn *
conn_new(struct ctl *c, struct bufferevent *bev, bool tls)
{
	struct conn *k = calloc(1, sizeof(*k));
	struct timeval idle = {.tv_sec = IDLE_TIMEOUT_S};

	if (!k) {
		bufferevent_free(bev);
		return NULL;
	}
	k->c = c;
	k->bev = bev;
	k->tls = tls;
	k->next = conns;
	if (conns)
		conns->prev = k;
	conns = k;
	bufferevent_setcb(bev, on_read, NULL, on_event, k);
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return k;
}

static void
on_tls_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
	struct port *port = arg;
	struct ctl *c = port->c;
	SSL *ssl = SSL_new(port->ctx);
	struct bufferevent *bev;
	struct conn *k;

	if (!ssl) {
		close(fd);
		return;
	}
	bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	k = conn_new(c, bev, true);
	if (k)
		k->peer = port->peer;
	if (k && sa->sa_family == AF_INET) {
		char ip[INET_ADDRSTRLEN];
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(k->addr, sizeof(k->addr), "%s:%u", ip, ntohs(in->sin_port));
	} else if (k && sa->sa_family == AF_INET6) {
		char ip[INET6_ADDRSTRLEN];
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(k->addr, sizeof(k->addr), "[%s]:%u", ip, ntohs(in6->sin6_port));
	}
}

static void
on_unix_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
               void *arg)
{
	struct ctl *c = arg;
	struct ucred cred;
	socklen_t n = sizeof(cred);
	struct bufferevent *bev;
	struct conn *k;
	bool ok = false;

	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n))
		for (unsigned i = 0; i < c->conf.n_uids; i++)
			ok |= cred.uid == c->conf.uids[i];
	if (!ok) {
		c->stats.refused_uid++;
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	k = conn_new(c, bev, false);
	if (!k)
		return;
	k->serving = true;
	k->who.role = VR_ROLE_ADMIN;
	snprintf(k->who.name, sizeof(k->who.name), "console:%u", (unsigned)cred.uid);
	c->stats.conn_console++;
}

/* The peer port checks pins after the handshake: any certificate passes the TLS layer. */
static int
accept_any(int ok, X509_STORE_CTX *x)
{
	return 1;
}

static SSL_CTX *
peer_tls_ctx(struct ctl *c, char *err, size_t err_n)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(ctx, c->conf.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->conf.key, SSL_FILETYPE_PEM) != 1) {
		e = ERR_get_error();
		snprintf(err, err_n, "peer port TLS setup: %s",
		         e ? ERR_error_string(e, NULL) : "failed");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

static struct evconnlistener *
listen_tls(struct ctl *c, const char *hostport, struct port *port, char *err, size_t err_n)
{
	struct sockaddr_storage ss;
	int sn = sizeof(ss);
	struct evconnlistener *l;

	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sn)) {
		snprintf(err, err_n, "%s: not host:port", hostport);
		return NULL;
	}
	l = evconnlistener_new_bind(c->base, on_tls_accept, port,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	                                LEV_OPT_REUSEABLE,
	                            64, (struct sockaddr *)&ss, sn);
	if (!l)
		snprintf(err, err_n, "%s %s: %s", port->peer ? "peer port" : "management port",
		         hostport, strerror(errno));
	return l;
}

static int
tls_ctx(struct ctl *c, char *err, size_t err_n)
{
	STACK_OF(X509_NAME) * names;
	unsigned long e;

	server_ctx = SSL_CTX_new(TLS_server_method());
	if (!server_ctx || !SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION))
		goto ssl_fail;
	if (SSL_CTX_use_certificate_chain_file(server_ctx, c->conf.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(server_ctx, c->conf.key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(server_ctx) != 1)
		goto ssl_fail;
	if (SSL_CTX_load_verify_locations(server_ctx, c->conf.op_ca, NULL) != 1)
		goto ssl_fail;
	names = SSL_load_client_CA_file(c->conf.op_ca);
	if (names)
		SSL_CTX_set_client_CA_list(server_ctx, names);
	SSL_CTX_set_verify(server_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* Tickets would let a later connection skip the certificate: none. */
	SSL_CTX_set_num_tickets(server_ctx, 0);
	SSL_CTX_set_session_cache_mode(server_ctx, SSL_SESS_CACHE_OFF);
	return 0;
ssl_fail:
	e = ERR_get_error();
	snprintf(err, err_n, "TLS setup (cert %s, key %s, operator_ca %s): %s", c->conf.cert,
	         c->conf.key, c->conf.op_ca, e ? ERR_error_string(e, NULL) : "failed");
	ERR_clear_error();
	return -EINVAL;
}

int
ctl_mgmt_start(struct ctl *c, char *err, size_t err_n)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	if (strlen(c->conf.socket) >= sizeof(un.sun_path)) {
		snprintf(err, err_n, "[mgmt] socket path too long");
		return -ENAMETOOLONG;
	}
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", c->conf.socket);
	unlink(c->conf.socket);
	unix_listener = evconnlistener_new_bind(c->base, on_unix_accept, c,
	                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                        (struct sockaddr *)&un, sizeof(un));
	if (!unix_listener) {
		snprintf(err, err_n, "console socket %s: %s", c->conf.socket, strerror(errno));
		return -errno;
	}
	chmod(c->conf.socket, 0660);
	if (c->conf.listen[0]) {
		if (tls_ctx(c, err, err_n))
			return -EINVAL;
		mgmt_port = (struct port){.c = c, .ctx = server_ctx};
		tls_listener = listen_tls(c, c->conf.listen, &mgmt_port, err, err_n);
		if (!tls_listener)
			return -EADDRNOTAVAIL;
	}
	if (c->conf.peer_listen[0]) {
		peer_ctx = peer_tls_ctx(c, err, err_n);
		if (!peer_ctx)
			return -EINVAL;
		peer_port = (struct port){.c = c, .ctx = peer_ctx, .peer = true};
		peer_listener = listen_tls(c, c->conf.peer_listen, &peer_port, err, err_n);
		if (!peer_listener)
			return -EADDRNOTAVAIL;
	}
	return 0;
}

void
ctl_mgmt_stop(struct ctl *c)
{
	while (conns)
		conn_free(conns);
	if (tls_listener)
		evconnlistener_free(tls_listener);
	if (unix_listener)
		evconnlistener_free(unix_listener);
	if (peer_listener)
		evconnlistener_free(peer_listener);
	unlink(c->conf.socket);
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(peer_ctx);
	tls_listener = unix_listener = peer_listener = NULL;
	server_ctx = peer_ctx = NULL;
}
