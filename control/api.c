// SPDX-License-Identifier: BSD-3-Clause
/*
 * The management API's client (vr_api.h): blocking, one request at a time, for vaultrepctl,
 * the tests and control's own peer links. OpenSSL does the TLS; the framing is vr_hsm's.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "vr_api.h"
#include "vr_common.h"

struct vr_api {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char why[200]; /* the TLS layer's reason for the last failure (a server's alert) */
};

static const char *const role_names[] = {
    [VR_ROLE_NONE] = "none",   [VR_ROLE_READER] = "reader", [VR_ROLE_OPERATOR] = "operator",
    [VR_ROLE_ADMIN] = "admin", [VR_ROLE_PEER] = "peer",
};

enum vr_role
vr_api_role(const char *name)
{
	/* operator certificates carry reader, operator or admin; "peer" is never taken from one */
	for (unsigned r = VR_ROLE_READER; name && r <= VR_ROLE_ADMIN; r++)
		if (!strcmp(name, role_names[r]))
			return (enum vr_role)r;
	return VR_ROLE_NONE;
}

const char *
vr_api_role_name(enum vr_role r)
{
	return (unsigned)r < VR_ARRAY_SIZE(role_names) && role_names[r] ? role_names[r] : "none";
}

static void
ssl_err(char *err, size_t n, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, n, "%s%s%s", what, e ? ": " : "", buf);
}

static void
set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = VR_API_TIMEOUT_S};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

struct vr_api *
vr_api_connect_unix(const char *path, char *err, size_t err_n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vr_api *a;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, err_n, "socket path too long: %s", path);
		return NULL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(err, err_n, "cannot connect to %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	set_timeouts(fd);
	a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		snprintf(err, err_n, "out of memory");
		return NULL;
	}
	a->fd = fd;
	return a;
}

int
vr_api_cert_sha256(const char *pem_path, char out[65])
{
	FILE *f = fopen(pem_path, "r");
	X509 *x;
	unsigned char md[32];
	unsigned n = sizeof(md);

	if (!f)
		return -errno;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return -EINVAL;
	if (!X509_digest(x, EVP_sha256(), md, &n)) {
		X509_free(x);
		return -EINVAL;
	}
	X509_free(x);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int
tcp_connect(const char *hostport, char *err, size_t err_n)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, rc, e = 0;

	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) ||
	    !colon[1]) {
		snprintf(err, err_n, "\"%s\" is not host:port", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc) {
		snprintf(err, err_n, "%s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		set_timeouts(fd);
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, err_n, "cannot connect to %s: %s", hostport,
		         strerror(e ? e : EHOSTUNREACH));
	return fd;
}

/* The server's certificate against the pin: the whole DER, SHA-256, hex. */
static int
pin_ok(SSL *ssl, const char *pin)
{
	X509 *x = SSL_get1_peer_certificate(ssl);
	unsigned char md[32];
	unsigned n = sizeof(md);
	char hex[65];
	int ok;

	if (!x)
		return 0;
	ok = X509_digest(x, EVP_sha256(), md, &n);
	X509_free(x);
	if (!ok)
		return 0;
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return !strcasecmp(hex, pin);
}

struct vr_api *
vr_api_connect_tls(const char *hostport, const struct vr_api_tls *tls, char *err, size_t err_n)
{
	struct vr_api *a = calloc(1, sizeof(*a));

	if (!a) {
		snprintf(err, err_n, "out of memory");
		return NULL;
	}
	a->fd = -1;
	a->ctx = SSL_CTX_new(TLS_client_method());
	if (!a->ctx || !SSL_CTX_set_min_proto_version(a->ctx, TLS1_3_VERSION)) {
		ssl_err(err, err_n, "TLS context");
		goto err;
	}
	/* Without a certificate (tests of the server's refusal), the handshake goes on bare. */
	if (tls->cert && SSL_CTX_use_certificate_chain_file(a->ctx, tls->cert) != 1) {
		ssl_err(err, err_n, "client certificate");
		goto err;
	}
	if (tls->cert && (SSL_CTX_use_PrivateKey_file(a->ctx, tls->key, SSL_FILETYPE_PEM) != 1 ||
	                  SSL_CTX_check_private_key(a->ctx) != 1)) {
		ssl_err(err, err_n, "client key");
		goto err;
	}
	if (tls->ca) {
		if (SSL_CTX_load_verify_locations(a->ctx, tls->ca, NULL) != 1) {
			ssl_err(err, err_n, "server CA file");
			goto err;
		}
		SSL_CTX_set_verify(a->ctx, SSL_VERIFY_PEER, NULL);
	} else if (!tls->pin) {
		snprintf(err, err_n, "neither a CA file nor a pin to check the server by");
		goto err;
	}
	a->fd = tcp_connect(hostport, err, err_n);
	if (a->fd < 0)
		goto err;
	a->ssl = SSL_new(a->ctx);
	if (!a->ssl || !SSL_set_fd(a->ssl, a->fd)) {
		ssl_err(err, err_n, "TLS session");
		goto err;
	}
	if (SSL_connect(a->ssl) != 1) {
		ssl_err(err, err_n, "TLS handshake with the control process");
		goto err;
	}
	if (tls->pin && !pin_ok(a->ssl, tls->pin)) {
		snprintf(err, err_n, "%s presented a certificate that does not match its pin",
		         hostport);
		goto err;
	}
	return a;
err:
	vr_api_close(a);
	return NULL;
}

void
vr_api_close(struct vr_api *a)
{
	if (!a)
		return;
	if (a->ssl) {
		SSL_shutdown(a->ssl);
		SSL_free(a->ssl);
	}
	SSL_CTX_free(a->ctx);
	if (a->fd >= 0)
		close(a->fd);
	free(a);
}

static int
io_all(struct vr_api *a, void *buf, size_t n, bool writing)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r;

		if (a->ssl) {
			size_t done = 0;
			int ok = writing ? SSL_write_ex(a->ssl, p, n, &done)
			                 : SSL_read_ex(a->ssl, p, n, &done);

			if (!ok) {
				int e = SSL_get_error(a->ssl, 0);
				unsigned long le = ERR_peek_error();

				if (!le && writing) {
					/* A server that refused us sent its alert, then closed: our
					 * write can meet the reset first. The alert may still be
					 * there to read, and it says why. */
					uint8_t b;

					ERR_clear_error();
					(void)SSL_read_ex(a->ssl, &b, 1, &done);
					le = ERR_peek_error();
				}
				if (le)
					ERR_error_string_n(le, a->why, sizeof(a->why));
				ERR_clear_error();
				if (e == SSL_ERROR_ZERO_RETURN)
					return -ECONNRESET;
				return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT
				                                               : -ECONNRESET;
			}
			r = (ssize_t)done;
		} else {
			r = writing ? send(a->fd, p, n, MSG_NOSIGNAL) : recv(a->fd, p, n, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT
				                                               : -errno;
			if (r == 0)
				return -ECONNRESET;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int
vr_api_call(struct vr_api *a, json_t *req, json_t **resp, char *err, size_t err_n)
{
	char *out = json_dumps(req, JSON_COMPACT), *in = NULL;
	uint8_t hdr[4];
	size_t n;
	json_t *res;
	json_error_t je;
	int rc, status;

	*resp = NULL;
	if (!out)
		return -ENOMEM;
	n = strlen(out);
	if (n > VR_API_MAX_MSG) {
		free(out);
		snprintf(err, err_n, "request too large (%zu bytes)", n);
		return -EMSGSIZE;
	}
	vr_put_be32(hdr, (uint32_t)n);
	rc = io_all(a, hdr, 4, true);
	if (!rc)
		rc = io_all(a, out, n, true);
	free(out);
	if (!rc)
		rc = io_all(a, hdr, 4, false);
	if (!rc) {
		n = vr_get_be32(hdr);
		if (n == 0 || n > VR_API_MAX_MSG)
			rc = -EPROTO;
	}
	if (!rc) {
		in = malloc(n);
		rc = in ? io_all(a, in, n, false) : -ENOMEM;
	}
	if (rc) {
		free(in);
		snprintf(err, err_n, "control connection: %s%s%s%s", strerror(-rc),
		         a->why[0] ? " (" : "", a->why, a->why[0] ? ")" : "");
		return rc;
	}
	res = json_loadb(in, n, 0, &je);
	free(in);
	if (!json_is_object(res) || !json_is_integer(json_object_get(res, "status"))) {
		json_decref(res);
		snprintf(err, err_n, "the control process sent a malformed response");
		return -EPROTO;
	}
	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status) {
		const char *m = json_string_value(json_object_get(res, "error"));

		snprintf(err, err_n, "%s", m ? m : strerror(status));
		json_decref(res);
		return status > 0 ? -status : status;
	}
	*resp = res;
	return 0;
}
