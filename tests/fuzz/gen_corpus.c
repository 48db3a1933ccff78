// SPDX-License-Identifier: BSD-3-Clause
/*
 * Writes seed corpora: fuzz_record's (valid WAL chunks of various shapes) into RECORD_DIR and,
 * given WIRE_DIR, fuzz_wire's (a valid ingest frame, ack, nack, batch, key record and key batch).
 * Usage: gen RECORD_DIR [WIRE_DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vr_test.h"
#include "vr_wire.h"

static void
put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int
main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	uint16_t members[] = {2, 3, 4};
	struct vr_test_wal w;
	size_t n = 0;

	if (argc != 2 && argc != 3)
		return 2;
	vr_test_wal_init(&w, 1, 2, 1, 3, members);
	n = vr_test_wal_next(&w, 0, buf, sizeof(buf));
	put(argv[1], "seed-record", buf, n);
	n += vr_test_wal_next(&w, 16, buf + n, sizeof(buf) - n);
	n += vr_test_wal_next(&w, 300, buf + n, sizeof(buf) - n);
	put(argv[1], "chunk-3", buf, n);
	vr_test_wal_init(&w, 0xffffffffffffffffull, 0xffffffff, 0xffff, 0, NULL);
	n = vr_test_wal_next(&w, 0, buf, sizeof(buf));
	n += vr_test_wal_next(&w, 1024, buf + n, sizeof(buf) - n);
	put(argv[1], "no-members-1k", buf, n);
	if (argc == 3) {
		uint8_t payload[64] = {1, 2, 3};
		struct vr_ingest f = {.producer = 1,
		                      .producer_seq = 1,
		                      .account = 9,
		                      .vault = 1,
		                      .rec_type = 1,
		                      .op = 3,
		                      .payload_size = 64,
		                      .payload = payload};
		struct vr_ack ack = {.kind = VR_WIRE_ACK,
		                     .producer = 1,
		                     .producer_seq = 1,
		                     .account = 9,
		                     .vault = 1,
		                     .sites = 1,
		                     .lsn = 5};
		struct vr_ack nack = {.kind = VR_WIRE_NACK,
		                      .producer = 1,
		                      .producer_seq = 2,
		                      .account = 9,
		                      .vault = 1,
		                      .status = 1};
		struct vr_batch_hdr h = {.kind = VR_WIRE_DATA,
		                         .sender = 1,
		                         .n_records = 2,
		                         .account = 9,
		                         .vault = 1,
		                         .primary = 1,
		                         .key_id = 1,
		                         .sealed_size = 32,
		                         .seq = 1,
		                         .first_lsn = 1};

		put(argv[2], "ingest", buf, (size_t)vr_wire_ingest_encode(&f, buf, sizeof(buf)));
		put(argv[2], "ack", buf, (size_t)vr_wire_ack_encode(&ack, buf, sizeof(buf)));
		put(argv[2], "nack", buf, (size_t)vr_wire_ack_encode(&nack, buf, sizeof(buf)));
		memset(buf, 0, VR_WIRE_BATCH_HDR + 32 + VR_WIRE_TAG);
		vr_wire_batch_hdr_encode(&h, buf);
		put(argv[2], "batch", buf, VR_WIRE_BATCH_HDR + 32 + VR_WIRE_TAG);
		{
			static const uint8_t blob[384] = {1, 2, 3};
			struct vr_keyrec kr = {
			    .key_id = 2, .blob_size = sizeof(blob), .blob = blob};
			int kn = vr_wire_keyrec_encode(&kr, buf, sizeof(buf));

			put(argv[2], "keyrec", buf, (size_t)kn);
			h.kind = VR_WIRE_KEY;
			h.n_records = 0;
			h.first_lsn = 0;
			h.sealed_size = (uint32_t)kn;
			memset(buf, 0, sizeof(buf));
			vr_wire_batch_hdr_encode(&h, buf);
			put(argv[2], "keybatch", buf, VR_WIRE_BATCH_HDR + (size_t)kn + VR_WIRE_TAG);
		}
	}
	return 0;
}
