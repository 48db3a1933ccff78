/* SPDX-License-Identifier: BSD-3-Clause */
/* Configuration files through inih (vr_ini.h). */
#include "vr_ini.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

struct parse {
	vr_ini_key_fn key;
	void *ctx;
	char *err;
	size_t err_n;
	bool failed;
};

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;

	if (p->failed)
		return 0;
	if (p->key(p->ctx, section, name, value)) {
		snprintf(p->err, p->err_n, "[%s] %s = %s: unknown key or bad value", section, name,
		         value);
		p->failed = true;
		return 0;
	}
	return 1;
}

int
vr_ini_load(const char *name, const char *text, vr_ini_key_fn key, void *ctx, char *err,
            size_t err_n)
{
	struct parse p = {.key = key, .ctx = ctx, .err = err, .err_n = err_n};
	int line;

	err[0] = 0;
	line = text ? ini_parse_string(text, handler, &p) : ini_parse(name, handler, &p);
	if (line == -1) {
		snprintf(err, err_n, "%s: %s", name, strerror(errno));
		return -ENOENT;
	}
	if (line) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", err[0] ? err : "syntax error");
		snprintf(err, err_n, "%s:%d: %s", name, line, msg);
		return -EINVAL;
	}
	return 0;
}
