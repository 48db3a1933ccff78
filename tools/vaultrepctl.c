// SPDX-License-Identifier: BSD-3-Clause
/*
 * vaultrepctl: the operator's CLI (A1). Grammar `<object> <verb> [key value]...`, from the one
 * table below (usage, arguments, the API operation). It speaks the management API (vr_api.h)
 * over the console socket or, with --connect, over mutual TLS.
 *
 * Output: tables with upper-case headers for people, --json (the API's response) for machines;
 * fields that could hold a secret are printed as (hidden). Exit status: 0 done, 1 the site
 * refused or failed the operation (or vault verify found a difference), 2 usage, 3 the control
 * process could not be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vr_api.h"

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

#define ACCOUNT                                                                                    \
	{                                                                                          \
		"account", "account id (integer)", true                                            \
	}
#define VAULT                                                                                      \
	{                                                                                          \
		"vault", "vault name", true                                                        \
	}
#define KEY                                                                                        \
	{                                                                                          \
		"key", "key name", true                                                            \
	}

static const struct cmd cmds[] = {
    {.object = "site",
     .verb = "init",
     .op = "site.init",
     .help = "make this site's key-encryption key pair in the HSM"},
    {.object = "site",
     .verb = "show",
     .op = "site.show",
     .help = "this site: id, name, keys' fingerprints, limits"},
    {.object = "peer",
     .verb = "add",
     .op = "peer.add",
     .help = "trust another site's control (its certificate pinned)",
     .args = {{"site", "its site id", true},
              {"name", "its name", true},
              {"address", "host:port of its peer port", true},
              {"pin", "SHA-256 of its site certificate (vr-pki fingerprint)", true}}},
    {.object = "peer",
     .verb = "list",
     .op = "peer.list",
     .help = "the sites this one trusts",
     .rows = "peers",
     .cols = {{"site", "SITE"},
              {"name", "NAME"},
              {"address", "ADDRESS"},
              {"status", "STATUS"},
              {"pin", "PIN"}}},
    {.object = "peer",
     .verb = "remove",
     .op = "peer.remove",
     .help = "forget a peer (none of its vaults may remain)",
     .args = {{"site", "its site id", true}}},
    {.object = "vault",
     .verb = "create",
     .op = "vault.create",
     .help = "a vault: its HSM partition, masking key and WAL",
     .args = {ACCOUNT, {"name", "vault name", true}}},
    {.object = "vault",
     .verb = "list",
     .op = "vault.list",
     .help = "every vault at this site",
     .rows = "vaults",
     .cols = {{"account", "ACCOUNT"},
              {"name", "NAME"},
              {"id", "ID"},
              {"role", "ROLE"},
              {"primary", "PRIMARY"},
              {"status", "STATUS"},
              {"created", "CREATED"}}},
    {.object = "vault",
     .verb = "show",
     .op = "vault.show",
     .help = "one vault, its status and its keys",
     .args = {ACCOUNT, {"name", "vault name", true}},
     .rows = "keys",
     .cols = {{"name", "KEY"}, {"type", "TYPE"}, {"versions", "VERSIONS"}, {"updated", "UPDATED"}}},
    {.object = "vault",
     .verb = "replicate",
     .op = "vault.replicate",
     .help = "replicate a vault to another site (capacity handshake, then its keys)",
     .args = {ACCOUNT,
              {"name", "vault name", true},
              {"site", "the target site's id", true},
              {"wait", "yes (default): show progress until the replica is in sync; no", false}}},
    {.object = "vault",
     .verb = "verify",
     .op = "vault.verify",
     .help = "compare the vault's digest (keys and WAL) at the primary and its replicas",
     .args = {ACCOUNT,
              {"name", "vault name", true},
              {"site", "one replica's site id (default: every replica)", false}},
     .rows = "sites",
     .cols = {{"site", "SITE"},
              {"role", "ROLE"},
              {"keys", "KEYS"},
              {"from", "FROM"},
              {"to", "TO"},
              {"behind", "BEHIND"},
              {"match", "MATCH"},
              {"root", "ROOT"}}},
    {.object = "vault",
     .verb = "delete",
     .op = "vault.delete",
     .help = "wipe a vault's partition and forget it",
     .args = {ACCOUNT, {"name", "vault name", true}}},
    {.object = "key",
     .verb = "create",
     .op = "key.create",
     .help = "a new AES-256 key in a vault",
     .args = {ACCOUNT, VAULT, KEY}},
    {.object = "key",
     .verb = "rotate",
     .op = "key.rotate",
     .help = "a new version (older ones still decrypt)",
     .args = {ACCOUNT, VAULT, KEY}},
    {.object = "key",
     .verb = "delete",
     .op = "key.delete",
     .help = "destroy every version of a key",
     .args = {ACCOUNT, VAULT, KEY}},
    {.object = "key",
     .verb = "list",
     .op = "key.list",
     .help = "a vault's keys",
     .args = {ACCOUNT, VAULT},
     .rows = "keys",
     .cols = {{"name", "KEY"},
              {"type", "TYPE"},
              {"versions", "VERSIONS"},
              {"created", "CREATED"},
              {"updated", "UPDATED"}}},
    {.object = "key",
     .verb = "encrypt",
     .op = "key.encrypt",
     .help = "AES-GCM under the key's latest version",
     .args = {ACCOUNT,
              VAULT,
              KEY,
              {"data", "plaintext (text)", false},
              {"data_b64", "plaintext (base64)", false},
              {"aad", "additional data (text)", false}}},
    {.object = "key",
     .verb = "decrypt",
     .op = "key.decrypt",
     .help = "what key encrypt made, back to plaintext",
     .args = {ACCOUNT,
              VAULT,
              KEY,
              {"ciphertext", "vr1:... as key encrypt printed it", true},
              {"aad", "additional data (text)", false}}},
    {.object = "stream",
     .verb = "list",
     .op = "stream.list",
     .help = "the dataplane's streams",
     .rows = "streams",
     .cols = {{"account", "ACCOUNT"},
              {"vault", "VAULT"},
              {"primary", "PRIMARY"},
              {"worker", "WORKER"},
              {"durable_lsn", "DURABLE"},
              {"records", "RECORDS"},
              {"key_id", "KEY"}}},
    {.object = "stream",
     .verb = "show",
     .op = "stream.show",
     .help = "one stream's figures",
     .args = {ACCOUNT, {"vault", "vault id (integer)", true}, {"primary", "primary site", false}}},
    {.object = "stats",
     .verb = "show",
     .op = "stats",
     .help = "the control's and the dataplane's counters"},
    {.object = "audit",
     .verb = "show",
     .op = "audit.show",
     .help = "the audit log and whether its chain verifies",
     .args = {{"from", "first seq (default: the last 20)", false},
              {"max", "at most this many", false}},
     .rows = "entries",
     .cols = {{"seq", "SEQ"},
              {"time", "TIME"},
              {"who", "WHO"},
              {"role", "ROLE"},
              {"op", "OP"},
              {"status", "STATUS"},
              {"error", "ERROR"}}},
};

/* Fields never printed as they are, whatever the command. */
static const char *const hidden[] = {"so_pin", "user_pin", "secret", "password", "blob", "blobs"};

static struct {
	const char *socket, *connect, *cert, *key, *ca;
	bool json;
} opt;

static void
usage_all(FILE *f)
{
	const char *last = "";

	fprintf(f,
	        "usage: vaultrepctl [options] <object> <verb> [key value]...\n"
	        "       vaultrepctl [options] -f FILE   (one command a line, # comments)\n\n"
	        "options:\n"
	        "  --socket PATH        the console socket ($VAULTREP_SOCKET,\n"
	        "                       default /run/vaultrep/control.sock)\n"
	        "  --connect HOST:PORT  the management port over mutual TLS ($VAULTREP_CONNECT)\n"
	        "  --cert FILE --key FILE  your operator certificate and key\n"
	        "                       ($VAULTREP_CERT, $VAULTREP_KEY)\n"
	        "  --ca FILE            the site's certificate, to check the control by\n"
	        "                       ($VAULTREP_CA)\n"
	        "  --json               print the API's response as JSON\n"
	        "  -h, --help           this text; <object> --help, <object> <verb> --help\n\n"
	        "commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		fprintf(f, "  %-7s %-8s %s\n", strcmp(last, cmds[i].object) ? cmds[i].object : "",
		        cmds[i].verb, cmds[i].help);
		last = cmds[i].object;
	}
}

static void
usage_cmd(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: vaultrepctl %s %s", c->object, c->verb);
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		fprintf(f, a->required ? " %s <%s>" : " [%s <%s>]", a->key, a->key);
	fprintf(f, "\n  %s\n", c->help);
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		fprintf(f, "  %-12s %s%s\n", a->key, a->help, a->required ? "" : " (optional)");
}

static bool
is_hidden(const char *k)
{
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
		if (!strcmp(k, hidden[i]))
			return true;
	return false;
}

/* One value as a table cell: scalars as they are, arrays of scalars comma separated. */
static void
cell(char *buf, size_t n, const char *k, json_t *v)
{
	if (!v || json_is_null(v)) {
		snprintf(buf, n, "-");
	} else if (is_hidden(k)) {
		snprintf(buf, n, "(hidden)");
	} else if (json_is_string(v)) {
		snprintf(buf, n, "%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(buf, n, "%s", json_is_true(v) ? "yes" : "no");
	} else if (json_is_real(v)) {
		snprintf(buf, n, "%g", json_real_value(v));
	} else if (json_is_array(v)) {
		size_t i, off = 0;
		json_t *e;

		buf[0] = 0;
		json_array_foreach(v, i, e)
		{
			char one[64];

			cell(one, sizeof(one), k, e);
			off += (size_t)snprintf(buf + off, off < n ? n - off : 0, "%s%s",
			                        i ? "," : "", one);
			if (off >= n)
				break;
		}
		if (!json_array_size(v))
			snprintf(buf, n, "-");
	} else {
		char *s = json_dumps(v, JSON_COMPACT);

		snprintf(buf, n, "%s", s ? s : "?");
		free(s);
	}
}

static void
print_table(json_t *rows, const struct col *cols)
{
	size_t ncol = 0, w[10] = {0}, i;
	json_t *r;
	char buf[512];

	while (ncol < 10 && cols[ncol].field)
		ncol++;
	for (size_t c = 0; c < ncol; c++)
		w[c] = strlen(cols[c].head);
	json_array_foreach(rows, i, r) for (size_t c = 0; c < ncol; c++)
	{
		cell(buf, sizeof(buf), cols[c].field, json_object_get(r, cols[c].field));
		if (strlen(buf) > w[c])
			w[c] = strlen(buf) > 64 ? 64 : strlen(buf);
	}
	for (size_t c = 0; c < ncol; c++)
		printf("%-*s%s", c + 1 < ncol ? (int)w[c] : 0, cols[c].head,
		       c + 1 < ncol ? "  " : "\n");
	json_array_foreach(rows, i, r) for (size_t c = 0; c < ncol; c++)
	{
		cell(buf, sizeof(buf), cols[c].field, json_object_get(r, cols[c].field));
		printf("%-*.*s%s", c + 1 < ncol ? (int)w[c] : 0, 64, buf,
		       c + 1 < ncol ? "  " : "\n");
	}
	if (!json_array_size(rows))
		printf("(none)\n");
}

/* Nested objects as "path: value" lines. */
static void
print_fields(json_t *o, const char *prefix, const char *skip)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
	{
		char path[128], buf[1024];

		if (!strcmp(k, "status") && !prefix[0])
			continue;
		if (skip && !strcmp(k, skip))
			continue;
		snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", k);
		if (json_is_object(v) && !is_hidden(k)) {
			print_fields(v, path, NULL);
			continue;
		}
		if (json_is_array(v) && json_array_size(v) &&
		    json_is_object(json_array_get(v, 0)) && !is_hidden(k)) {
			size_t i;
			json_t *e;

			json_array_foreach(v, i, e)
			{
				char sub[160];

				snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
				print_fields(e, sub, NULL);
			}
			continue;
		}
		cell(buf, sizeof(buf), k, v);
		printf("%-24s %s\n", path, buf);
	}
}

/* vault verify: the digest, a row per site, then what differs (or that nothing does). */
static void
print_verify(const struct cmd *c, json_t *res)
{
	json_t *d = json_object_get(res, "differences"), *row;
	size_t i;

	printf("vault %s (account %lld): keys %lld, WAL LSN %lld..%lld\nroot %s\n\n",
	       json_string_value(json_object_get(res, "vault")),
	       (long long)json_integer_value(json_object_get(res, "account")),
	       (long long)json_integer_value(json_object_get(res, "keys")),
	       (long long)json_integer_value(json_object_get(res, "from")),
	       (long long)json_integer_value(json_object_get(res, "to")),
	       json_string_value(json_object_get(res, "root")));
	print_table(json_object_get(res, c->rows), c->cols);
	json_array_foreach(json_object_get(res, c->rows), i, row) if (json_object_get(row, "note"))
	    printf("note: %s\n", json_string_value(json_object_get(row, "note")));
	json_array_foreach(d, i, row) printf("differs: %s\n", json_string_value(row));
	if (json_array_size(json_object_get(res, c->rows)) < 2)
		printf("\nno replicas: the digest above is this site's alone\n");
	else if (!json_array_size(d))
		printf("\nevery replica holds the same keys and WAL as the primary\n");
}

static void
print_result(const struct cmd *c, json_t *res)
{
	if (opt.json) {
		json_dumpf(res, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		return;
	}
	if (!strcmp(c->op, "vault.verify")) {
		print_verify(c, res);
		return;
	}
	if (c->rows) {
		print_fields(res, "", c->rows);
		if (json_object_size(res) > 2)
			putchar('\n');
		print_table(json_object_get(res, c->rows), c->cols);
		return;
	}
	print_fields(res, "", NULL);
	if (json_object_size(res) <= 1)
		printf("%s %s: done\n", c->object, c->verb);
}

static struct vr_api *
connect_api(char *err, size_t n)
{
	if (opt.connect) {
		struct vr_api_tls t = {.cert = opt.cert, .key = opt.key, .ca = opt.ca};

		if (!opt.cert || !opt.key || !opt.ca) {
			snprintf(err, n, "--connect needs --cert, --key and --ca");
			return NULL;
		}
		return vr_api_connect_tls(opt.connect, &t, err, n);
	}
	return vr_api_connect_unix(opt.socket, err, n);
}

static const struct cmd *
find(const char *object, const char *verb)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].object, object) && (!verb || !strcmp(cmds[i].verb, verb)))
			return &cmds[i];
	return NULL;
}

/* The value after `key` in a command's key value pairs, or NULL. */
static const char *
word_arg(char **words, int n, const char *key)
{
	for (int i = 0; i + 1 < n; i += 2)
		if (!strcmp(words[i], key))
			return words[i + 1];
	return NULL;
}

/*
 * After vault replicate: the initial copy, as the replica applies the vault's WAL, until it is
 * in sync (or 300 s). One line per change of the figures.
 */
static int
follow(struct vr_api *api, char **words, int n)
{
	const char *wait = word_arg(words, n, "wait"), *site = word_arg(words, n, "site");
	char last[256] = "", err[512];

	if ((wait && strcmp(wait, "yes")) || opt.json)
		return 0;
	for (int i = 0; i < 3000; i++) {
		json_t *req = json_pack("{s:s, s:s, s:s}", "op", "vault.show", "account",
		                        word_arg(words, n, "account"), "name",
		                        word_arg(words, n, "name")),
		       *res, *v, *r, *mine = NULL;
		size_t k;
		char now[256];
		int rc = vr_api_call(api, req, &res, err, sizeof(err));

		json_decref(req);
		if (rc) {
			fprintf(stderr, "vaultrepctl: vault show: %s\n", err);
			return EXIT_REFUSED;
		}
		v = json_object_get(res, "vault");
		json_array_foreach(json_object_get(v, "replicas"), k,
		                   r) if (json_integer_value(json_object_get(r, "site")) ==
		                          atoi(site)) mine = r;
		snprintf(now, sizeof(now), "site %s: %s, applied %lld of %lld WAL records", site,
		         mine ? json_string_value(json_object_get(mine, "remote")) : "?",
		         (long long)json_integer_value(json_object_get(mine, "applied_lsn")),
		         (long long)json_integer_value(json_object_get(v, "wal_lsn")));
		if (strcmp(now, last)) {
			printf("%s\n", now);
			fflush(stdout);
			snprintf(last, sizeof(last), "%s", now);
		}
		if (mine && json_string_value(json_object_get(mine, "remote")) &&
		    !strcmp(json_string_value(json_object_get(mine, "remote")), "in sync") &&
		    json_integer_value(json_object_get(mine, "applied_lsn")) >=
		        json_integer_value(json_object_get(v, "wal_lsn"))) {
			json_decref(res);
			return 0;
		}
		if (mine && json_string_value(json_object_get(mine, "status")) &&
		    !strncmp(json_string_value(json_object_get(mine, "status")), "failed", 6)) {
			fprintf(stderr, "vaultrepctl: vault replicate: %s\n",
			        json_string_value(json_object_get(mine, "status")));
			json_decref(res);
			return EXIT_REFUSED;
		}
		json_decref(res);
		usleep(100000);
	}
	fprintf(stderr, "vaultrepctl: vault replicate: not in sync after 300 s (vault show)\n");
	return EXIT_REFUSED;
}

/* One command: words[0] object, words[1] verb, then key value pairs. Returns an exit status. */
static int
run(struct vr_api **api, int n, char **words, const char *where)
{
	const struct cmd *c;
	json_t *req, *res;
	char err[512];
	int rc;

	if (n >= 1 && (!strcmp(words[0], "--help") || !strcmp(words[0], "help"))) {
		usage_all(stdout);
		return 0;
	}
	if (n >= 2 && !strcmp(words[1], "--help") && find(words[0], NULL)) {
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (!strcmp(cmds[i].object, words[0]))
				usage_cmd(stdout, &cmds[i]);
		return 0;
	}
	/* "stats" alone is "stats show" */
	c = n == 1 && !strcmp(words[0], "stats") ? find("stats", "show")
	    : n >= 2                             ? find(words[0], words[1])
	                                         : NULL;
	if (!c) {
		fprintf(stderr,
		        "vaultrepctl: %s%sunknown command \"%s%s%s\" (vaultrepctl --help)\n", where,
		        where[0] ? ": " : "", n ? words[0] : "", n > 1 ? " " : "",
		        n > 1 ? words[1] : "");
		return EXIT_USAGE;
	}
	words += n == 1 ? 1 : 2;
	n -= n == 1 ? 1 : 2;
	if (n >= 1 && !strcmp(words[0], "--help")) {
		usage_cmd(stdout, c);
		return 0;
	}
	req = json_pack("{s:s}", "op", c->op);
	for (int i = 0; i < n; i += 2) {
		const struct arg *a = c->args;

		while (a < c->args + MAX_ARGS && a->key && strcmp(a->key, words[i]))
			a++;
		if (a == c->args + MAX_ARGS || !a->key || i + 1 >= n) {
			fprintf(stderr, "vaultrepctl: %s%s%s %s: %s \"%s\"\n", where,
			        where[0] ? ": " : "", c->object, c->verb,
			        i + 1 >= n && a < c->args + MAX_ARGS && a->key ? "no value for"
			                                                       : "unknown argument",
			        words[i]);
			usage_cmd(stderr, c);
			json_decref(req);
			return EXIT_USAGE;
		}
		json_object_set_new(req, words[i], json_string(words[i + 1]));
	}
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		if (a->required && !json_object_get(req, a->key)) {
			fprintf(stderr, "vaultrepctl: %s%s%s %s: missing %s\n", where,
			        where[0] ? ": " : "", c->object, c->verb, a->key);
			usage_cmd(stderr, c);
			json_decref(req);
			return EXIT_USAGE;
		}
	if (!*api && !(*api = connect_api(err, sizeof(err)))) {
		fprintf(stderr, "vaultrepctl: %s\n", err);
		json_decref(req);
		return EXIT_CONNECT;
	}
	rc = vr_api_call(*api, req, &res, err, sizeof(err));
	json_decref(req);
	if (rc) {
		fprintf(stderr, "vaultrepctl: %s%s%s %s: %s (%s)\n", where, where[0] ? ": " : "",
		        c->object, c->verb, err, strerrorname_np(-rc) ? strerrorname_np(-rc) : "?");
		/* A transport error ends the connection; the server's answer does not. */
		if (rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -EPROTO) {
			vr_api_close(*api);
			*api = NULL;
			return EXIT_CONNECT;
		}
		return EXIT_REFUSED;
	}
	print_result(c, res);
	/* A verify that found differences is a failure to scripts, too. */
	if (!strcmp(c->op, "vault.verify") && json_is_false(json_object_get(res, "match"))) {
		json_decref(res);
		return EXIT_REFUSED;
	}
	json_decref(res);
	if (!strcmp(c->op, "vault.replicate"))
		return follow(*api, words, n);
	return 0;
}

/* Splits a command line into words: blanks separate, "double quotes" group, # comments. */
static int
split(char *line, char **words)
{
	int n = 0;
	char *p = line;

	while (*p && n < MAX_WORDS) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			break;
		if (*p == '"') {
			char *end = strchr(++p, '"');

			if (!end)
				return -1;
			*end = 0;
			words[n++] = p;
			p = end + 1;
			continue;
		}
		words[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		if (*p)
			*p++ = 0;
	}
	return n;
}

static int
run_file(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	struct vr_api *api = NULL;
	char *line = NULL, where[300], *words[MAX_WORDS];
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "vaultrepctl: %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	while (getline(&line, &cap, f) > 0) {
		int n;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		n = split(line, words);
		if (n < 0) {
			fprintf(stderr, "vaultrepctl: %s: unterminated quote\n", where);
			rc = EXIT_USAGE;
			break;
		}
		if (!n)
			continue;
		if (!opt.json)
			printf("> %s\n", where);
		rc = run(&api, n, words, where);
		if (rc)
			break; /* a command file stops at its first failure, naming the line */
	}
	free(line);
	if (f != stdin)
		fclose(f);
	vr_api_close(api);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"connect", required_argument, NULL, 'c'},
	    {"cert", required_argument, NULL, 'C'},
	    {"key", required_argument, NULL, 'K'},
	    {"ca", required_argument, NULL, 'A'},
	    {"json", no_argument, NULL, 'j'},
	    {"file", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vr_api *api = NULL;
	const char *file = NULL;
	int o, rc;

	opt.socket =
	    getenv("VAULTREP_SOCKET") ? getenv("VAULTREP_SOCKET") : "/run/vaultrep/control.sock";
	opt.connect = getenv("VAULTREP_CONNECT");
	opt.cert = getenv("VAULTREP_CERT");
	opt.key = getenv("VAULTREP_KEY");
	opt.ca = getenv("VAULTREP_CA");
	/* "+": options end at the first word, so "vault create --help" reaches run(). */
	while ((o = getopt_long(argc, argv, "+f:h", lo, NULL)) != -1) {
		switch (o) {
		case 's':
			opt.socket = optarg;
			opt.connect = NULL;
			break;
		case 'c':
			opt.connect = optarg;
			break;
		case 'C':
			opt.cert = optarg;
			break;
		case 'K':
			opt.key = optarg;
			break;
		case 'A':
			opt.ca = optarg;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'f':
			file = optarg;
			break;
		case 'h':
			usage_all(stdout);
			return 0;
		default:
			usage_all(stderr);
			return EXIT_USAGE;
		}
	}
	if (file)
		return optind == argc ? run_file(file) : (usage_all(stderr), EXIT_USAGE);
	if (optind == argc) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	rc = run(&api, argc - optind, argv + optind, "");
	vr_api_close(api);
	return rc;
}
