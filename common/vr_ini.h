/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration files: an ini file (or its text) read by inih, one call per key, and a refusal
 * that names file:line and what was wrong. The dataplane's and the control's configurations.
 */
#ifndef VR_INI_H
#define VR_INI_H

#include <stddef.h>

/* Takes one key: 0, or -1 for an unknown key or a bad value. */
typedef int (*vr_ini_key_fn)(void *ctx, const char *section, const char *name, const char *value);

/*
 * Reads the ini text, or the file at name when text is NULL (name then only names it in
 * messages), calling key for each entry until one is refused. 0; -ENOENT when the file cannot
 * be read ("name: why" in err); -EINVAL for a bad line ("name:line: what" in err).
 */
int vr_ini_load(const char *name, const char *text, vr_ini_key_fn key, void *ctx, char *err,
                size_t err_n);

#endif
