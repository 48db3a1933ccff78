// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the dataplane's wire parsers (dataplane/vr_wire.h): the ingest frame and
 * ack from the LAN, the batch header, the key record and the WAN ack from the WAN. Whatever a
 * parser accepts must encode back to exactly the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "vr_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[VR_WIRE_INGEST_HDR + VR_WIRE_MAX_PAYLOAD];
	struct vr_ingest f;
	struct vr_ack a;
	struct vr_batch_hdr h;
	struct vr_wack w;
	struct vr_keyrec k;

	if (vr_wire_ingest_parse(data, size, &f) == 0) {
		if (f.payload < data || f.payload + f.payload_size != data + size ||
		    vr_wire_ingest_encode(&f, buf, sizeof(buf)) != (int)size ||
		    memcmp(buf, data, size))
			abort();
	}
	if (vr_wire_ack_parse(data, size, &a) == 0) {
		if (vr_wire_ack_encode(&a, buf, sizeof(buf)) != (int)size ||
		    memcmp(buf, data, size))
			abort();
	}
	if (vr_wire_batch_parse(data, size, &h) == 0) {
		if (vr_wire_batch_hdr_encode(&h, buf) != VR_WIRE_BATCH_HDR ||
		    memcmp(buf, data, VR_WIRE_BATCH_HDR))
			abort();
	}
	if (vr_wire_keyrec_parse(data, size, &k) == 0) {
		if (k.blob != data + VR_WIRE_KEYREC_HDR ||
		    vr_wire_keyrec_encode(&k, buf, sizeof(buf)) != (int)size ||
		    memcmp(buf, data, size))
			abort();
	}
	if (vr_wire_wack_parse(data, size, &w) == 0) {
		vr_wire_wack_encode(&w, buf);
		if (memcmp(buf, data, VR_WIRE_WACK_SIZE))
			abort();
	}
	return 0;
}
