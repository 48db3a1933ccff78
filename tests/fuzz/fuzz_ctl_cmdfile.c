// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for vaultrepctl's command files (-f FILE; tools/vrctl_cmd.h): each line is
 * split into words and, when it names a command, made into its request, exactly as the CLI
 * does before it connects. A request always names the command's operation and carries every
 * required argument; a refusal is a usage error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vrctl_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line, *save = NULL, *words[MAX_WORDS];

	if (!devnull && !(devnull = fopen("/dev/null", "w")))
		abort();
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int n = vrctl_split(line, words);
		const struct cmd *c;
		json_t *req = NULL;
		int rc;

		if (n < 0 || n > MAX_WORDS)
			continue;
		if (n < 2 || !(c = vrctl_find(words[0], words[1])))
			continue;
		rc = vrctl_request(c, n - 2, words + 2, "fuzz:1", devnull, &req);
		if (rc != 0 && rc != EXIT_USAGE)
			abort();
		if (rc == 0) {
			if (!req || strcmp(json_string_value(json_object_get(req, "op")), c->op))
				abort();
			for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
				if (a->required && !json_is_string(json_object_get(req, a->key)))
					abort();
		} else if (req) {
			abort();
		}
		json_decref(req);
	}
	free(text);
	return 0;
}
