// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the WAL record decoder (logstore/vr_record.h), as the log reader uses
 * it: a buffer of concatenated records, decoded one after another until one fails.
 *
 * Beyond "no crash": every decoded record must lie inside the input, and encoding its decoded
 * fields again must reproduce its bytes exactly (the body; entropy and CRC depend on prev).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vr_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[VR_REC_MAX_SIZE];
	uint8_t prev[VR_REC_ENTROPY_SIZE] = {0};
	size_t off = 0;

	while (off < size) {
		struct vr_rec r, c;
		int n = vr_rec_decode(data + off, size - off, &r);

		if (n < 0)
			break;
		if ((size_t)n > size - off || r.raw != data + off ||
		    r.payload + r.payload_size != data + off + n || r.raw_size != (uint32_t)n)
			abort();
		(void)vr_rec_check_chain(prev, &r);
		c = r;
		if (vr_rec_encode(&c, r.entropy, buf, sizeof(buf)) != n ||
		    memcmp(buf + 20, data + off + 20, (size_t)n - 20) != 0)
			abort();
		memcpy(prev, r.entropy, sizeof(prev));
		off += (size_t)n;
	}
	return 0;
}
