// SPDX-License-Identifier: BSD-3-Clause
/* Framing and base64 for the agent protocol (see vr_hsm.h); shared by the agent and clients. */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "vr_common.h"
#include <openssl/crypto.h>

#include "vr_hsm.h"

static int
io_all(int fd, void *buf, size_t n, int writing)
{
	uint8_t *p = buf;

	while (n) {
		/* MSG_NOSIGNAL: a peer that hung up is an error here, not a SIGPIPE. */
		ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : read(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ECONNRESET;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
vr_hsm_send(int fd, const char *msg, size_t n)
{
	uint8_t hdr[4];
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)(uintptr_t)msg, n}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	ssize_t k;

	if (n == 0 || n > VR_HSM_MAX_MSG)
		return -EMSGSIZE;
	vr_put_be32(hdr, (uint32_t)n);
	/* Header and body in one call: the reader wakes once per message, not twice. */
	do
		k = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	if ((size_t)k == sizeof(hdr) + n)
		return 0;
	/* A short write (a full socket buffer): finish byte by byte. */
	if ((size_t)k < sizeof(hdr)) {
		int rc = io_all(fd, hdr + k, sizeof(hdr) - (size_t)k, 1);

		return rc ? rc : io_all(fd, (void *)(uintptr_t)msg, n, 1);
	}
	return io_all(fd, (void *)(uintptr_t)(msg + (size_t)k - sizeof(hdr)),
	              n - ((size_t)k - sizeof(hdr)), 1);
}

int
vr_hsm_recv(int fd, char **msg, size_t *n)
{
	uint8_t hdr[4];
	uint32_t len;
	int rc = io_all(fd, hdr, sizeof(hdr), 0);

	if (rc)
		return rc;
	len = vr_get_be32(hdr);
	if (len == 0 || len > VR_HSM_MAX_MSG)
		return -EMSGSIZE;
	*msg = malloc(len + 1);
	if (!*msg)
		return -ENOMEM;
	rc = io_all(fd, *msg, len, 0);
	if (rc) {
		free(*msg);
		*msg = NULL;
		return rc;
	}
	(*msg)[len] = 0;
	*n = len;
	return 0;
}

char *
vr_hsm_b64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

int
vr_hsm_unb64(const char *s, uint8_t **out, size_t *n)
{
	size_t len = s ? strlen(s) : 1, pad = 0;
	int k;

	if (len % 4) /* NULL too: a JSON field that was not a string */
		return -EINVAL;
	*out = malloc(len / 4 * 3 + 1);
	if (!*out)
		return -ENOMEM;
	k = EVP_DecodeBlock(*out, (const unsigned char *)s, (int)len);
	if (k < 0) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	/* EVP_DecodeBlock counts the padding as data. */
	if (len && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	*n = (size_t)k - pad;
	return 0;
}

json_t *
vr_hsm_error(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:i, s:s}", "status", err, "error", msg);
}

json_t *
vr_hsm_ok(json_t *res)
{
	if (!res)
		res = json_object();
	if (res)
		json_object_set_new(res, "status", json_integer(0));
	return res;
}

void
vr_hsm_wipe_free(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

void
vr_hsm_json_wipe(void)
{
	json_set_alloc_funcs(malloc, vr_hsm_wipe_free);
}
