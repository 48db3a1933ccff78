// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the dataplane's configuration parser (dataplane/dp_conf.h): any text is
 * either refused with a message or yields a configuration whose values are within their bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "dp_conf.h"
#include "vr_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	struct dp_conf c;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (dp_conf_load(&c, NULL, text, err, sizeof(err)) == 0) {
		if (!c.site || !c.lan.ip || !c.wan.ip || c.lan.port == c.wan.port ||
		    c.n_peers > DP_MAX_PEERS || c.n_uids > DP_MAX_UIDS || !c.max_records ||
		    c.max_records > VR_WIRE_MAX_RECORDS || (c.wan.mtu != 1500 && c.wan.mtu != 9000))
			abort();
		for (unsigned i = 0; i < c.n_peers; i++)
			if (!c.peers[i].ip || !c.peers[i].udp || c.peers[i].site == c.site)
				abort();
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	free(text);
	return 0;
}
