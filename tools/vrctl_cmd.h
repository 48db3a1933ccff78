// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrepctl's commands: the one table (usage, arguments, the API operation, how a result
 * prints), the words of a command line and the request they make. Apart from the CLI's main so
 * that the fuzz harness of command files (tests/fuzz/fuzz_ctl_cmdfile.c) runs this same code.
 */
#ifndef VRCTL_CMD_H
#define VRCTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3, MAX_ARGS = 8, MAX_WORDS = 64 };

struct arg {
	const char *key;
	const char *help;
	bool required;
};

struct col {
	const char *field; /* dotted path into one row */
	const char *head;
};

struct cmd {
	const char *object, *verb, *op;
	const char *help;
	struct arg args[MAX_ARGS];
	const char *rows;    /* the response's array printed as a table, or NULL */
	struct col cols[10]; /* its columns */
};

extern const struct cmd vrctl_cmds[];
extern const size_t vrctl_n_cmds;

/* The command object verb (any verb when verb is NULL), or NULL. */
const struct cmd *vrctl_find(const char *object, const char *verb);

/* Its usage lines. */
void vrctl_usage_cmd(FILE *f, const struct cmd *c);

/*
 * Splits a command line into words, in place: blanks separate, "double quotes" group, # starts
 * a comment. At most MAX_WORDS words; -1 for an unterminated quote.
 */
int vrctl_split(char *line, char **words);

/*
 * The request of command c with its n words of key value pairs: 0 and *req, or EXIT_USAGE with
 * what was wrong (and the usage) on errf, naming where (a file:line, or "").
 */
int vrctl_request(const struct cmd *c, int n, char **words, const char *where, FILE *errf,
                  json_t **req);

#endif
