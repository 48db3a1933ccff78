// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the HSM agent's wire layer (hsm_agent/vr_hsm.h): the framing that reads
 * a message off a socket, the JSON it carries, and the base64 of its binary fields.
 *
 * Properties beyond "no crash": a frame is accepted only with a length in 1..VR_HSM_MAX_MSG that
 * the input really holds; base64 of any bytes decodes back to the same bytes; decoding arbitrary
 * text either fails or yields bytes that encode back to the same text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vr_common.h"
#include "vr_hsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_b64(const uint8_t *p, size_t n)
{
	char *s = vr_hsm_b64(p, n), *again;
	uint8_t *back;
	size_t m;

	if (!s)
		return;
	if (vr_hsm_unb64(s, &back, &m) || m != n || memcmp(back, p, n))
		abort();
	free(back);
	/* The encoding read as text: decodes to bytes that encode to it again, or is refused. */
	if (vr_hsm_unb64(s, &back, &m) == 0) {
		again = vr_hsm_b64(back, m);
		if (!again || strcmp(again, s))
			abort();
		free(again);
		free(back);
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	char *msg = NULL, *text;
	size_t n = 0;
	uint8_t *out;
	size_t on;
	int rc;

	check_b64(data, size);

	/* Arbitrary text as base64: must not crash, and what decodes re-encodes canonically. */
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	if (vr_hsm_unb64(text, &out, &on) == 0) {
		char *re = vr_hsm_b64(out, on);

		/* Padding may differ in spelling only if the input was not canonical: decode again.
		 */
		uint8_t *out2;
		size_t on2;

		if (!re || vr_hsm_unb64(re, &out2, &on2) || on2 != on || memcmp(out, out2, on))
			abort();
		free(out2);
		free(re);
		free(out);
	}
	free(text);

	/* The input as bytes on a socket: one frame, or a refusal. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 0;
	if (size && write(sv[0], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[0], SHUT_WR);
	rc = vr_hsm_recv(sv[1], &msg, &n);
	if (rc == 0) {
		uint32_t len = size >= 4 ? vr_get_be32(data) : 0;
		json_error_t je;
		json_t *j;

		if (size < 4 || len == 0 || len > VR_HSM_MAX_MSG || n != len ||
		    size < 4 + (size_t)len || memcmp(msg, data + 4, len) || msg[n] != 0)
			abort();
		j = json_loadb(msg, n, JSON_REJECT_DUPLICATES, &je);
		json_decref(j);
		free(msg);
	} else if (rc != -EMSGSIZE && rc != -ECONNRESET) {
		abort();
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
