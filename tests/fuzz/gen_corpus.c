// SPDX-License-Identifier: BSD-3-Clause
/* Writes the seed corpus of fuzz_record: valid WAL chunks of various shapes. Usage: gen DIR */
#include <stdio.h>
#include <stdlib.h>

#include "vr_test.h"

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

	if (argc != 2)
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
	return 0;
}
