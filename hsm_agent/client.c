// SPDX-License-Identifier: BSD-3-Clause
/* The agent's client library (vr_hsm.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vr_hsm.h"

struct vr_hsm {
	int fd;
};

struct vr_hsm *
vr_hsm_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vr_hsm *h;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(fd);
		errno = e;
		return NULL;
	}
	h = malloc(sizeof(*h));
	if (!h) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	h->fd = fd;
	return h;
}

void
vr_hsm_close(struct vr_hsm *h)
{
	if (h) {
		close(h->fd);
		free(h);
	}
}

int
vr_hsm_submit(struct vr_hsm *h, json_t *req)
{
	char *out = json_dumps(req, JSON_COMPACT);
	int rc;

	if (!out)
		return -ENOMEM;
	rc = vr_hsm_send(h->fd, out, strlen(out));
	free(out);
	return rc;
}

int
vr_hsm_result(struct vr_hsm *h, json_t **resp, char *err, size_t err_n)
{
	json_t *res;
	json_error_t je;
	char *in = NULL;
	size_t n;
	int rc, status;

	*resp = NULL;
	rc = vr_hsm_recv(h->fd, &in, &n);
	if (rc) {
		if (err)
			snprintf(err, err_n, "agent connection: %s", strerror(-rc));
		return rc;
	}
	res = json_loadb(in, n, 0, &je);
	free(in);
	if (!res || !json_is_integer(json_object_get(res, "status"))) {
		json_decref(res);
		if (err)
			snprintf(err, err_n, "agent sent a malformed response");
		return -EPROTO;
	}
	status = (int)json_integer_value(json_object_get(res, "status"));
	if (status) {
		if (err)
			snprintf(err, err_n, "%s",
			         json_string_value(json_object_get(res, "error"))
			             ? json_string_value(json_object_get(res, "error"))
			             : strerror(status));
		json_decref(res);
		return -status;
	}
	*resp = res;
	return 0;
}

int
vr_hsm_call(struct vr_hsm *h, json_t *req, json_t **resp, char *err, size_t err_n)
{
	int rc = vr_hsm_submit(h, req);

	*resp = NULL;
	if (rc) {
		if (err)
			snprintf(err, err_n, "agent connection: %s", strerror(-rc));
		return rc;
	}
	return vr_hsm_result(h, resp, err, err_n);
}
