// SPDX-License-Identifier: BSD-3-Clause
/*
 * The agent's durable state: which token is which partition, and their PINs.
 *
 *   <state_dir>/state.json (0600):
 *   {"version": 1,
 *    "site":   {"serial": S, "so_pin": P, "user_pin": P},
 *    "vaults": {"<vault>": {"serial": S, "so_pin": P, "user_pin": P, "replica": bool}},
 *    "free":   [{"serial": S, "so_pin": P, "user_pin": P}, ...]}   (wiped tokens, reused)
 *
 * Written whole to state.json.tmp, fsync'd, renamed over state.json, directory fsync'd: a
 * crash leaves the old or the new file, never a torn one. Saved before a mutating operation
 * answers, so that a restarted agent finds every partition it ever reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vr_msg.h"
#include "agent.h"

int
vr_agent_pin(char out[33])
{
	unsigned char r[16];

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -EIO;
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	OPENSSL_cleanse(r, sizeof(r));
	return 0;
}

int
vr_agent_state_load(struct agent *a)
{
	char path[4096];
	json_error_t je;
	struct stat sb;

	if (mkdir(a->state_dir, 0700) && errno != EEXIST) {
		vr_err("hsm", "mkdir %s: %s", a->state_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/state.json", a->state_dir);
	if (stat(path, &sb)) {
		if (errno != ENOENT)
			return -errno;
		a->state = json_pack("{s:i, s:{}, s:[]}", "version", 1, "vaults", "free");
		return a->state ? 0 : -ENOMEM;
	}
	if (sb.st_mode & 077) {
		vr_err("hsm", "%s is readable by others (mode %o): refusing to use its PINs", path,
		       sb.st_mode & 0777);
		return -EPERM;
	}
	a->state = json_load_file(path, 0, &je);
	if (!a->state || !json_is_object(json_object_get(a->state, "vaults")) ||
	    !json_is_array(json_object_get(a->state, "free"))) {
		vr_err("hsm", "%s:%d: %s", path, je.line, a->state ? "not a state file" : je.text);
		json_decref(a->state);
		a->state = NULL;
		return -EINVAL;
	}
	return 0;
}

int
vr_agent_state_save(struct agent *a)
{
	char path[4096], tmp[4096];
	char *text = json_dumps(a->state, JSON_INDENT(1) | JSON_SORT_KEYS);
	size_t n;
	int fd, dfd, rc = 0;

	if (!text)
		return -ENOMEM;
	n = strlen(text);
	snprintf(path, sizeof(path), "%s/state.json", a->state_dir);
	snprintf(tmp, sizeof(tmp), "%s/state.json.tmp", a->state_dir);
	fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) || close(fd)) {
		rc = -errno;
		vr_err("hsm", "write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (rename(tmp, path)) {
		rc = -errno;
		vr_err("hsm", "rename %s: %s", tmp, strerror(errno));
		goto out;
	}
	dfd = open(a->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		rc = -EIO;
	if (dfd >= 0)
		close(dfd);
out:
	OPENSSL_cleanse(text, n);
	free(text);
	return rc;
}
