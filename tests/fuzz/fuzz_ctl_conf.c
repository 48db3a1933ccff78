// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for vaultrep-control's configuration parser (control/conf.c): any text is
 * either refused with a message or yields a configuration that names its site and, when it
 * listens, has everything mutual TLS needs.
 */
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	struct ctl_conf c;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (ctl_conf_load(&c, "fuzz.ini", text, err, sizeof(err)) == 0) {
		if (!c.site || c.site > 65535 || !c.n_uids ||
		    ((c.listen[0] || c.peer_listen[0]) && (!c.cert[0] || !c.key[0] || !c.op_ca[0])))
			abort();
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	free(text);
	return 0;
}
