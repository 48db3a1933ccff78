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
#include "vrctl_cmd.h"

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
	for (size_t i = 0; i < vrctl_n_cmds; i++) {
		fprintf(f, "  %-7s %-8s %s\n",
		        strcmp(last, vrctl_cmds[i].object) ? vrctl_cmds[i].object : "",
		        vrctl_cmds[i].verb, vrctl_cmds[i].help);
		last = vrctl_cmds[i].object;
	}
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
	if (json_integer_value(json_object_get(res, "from")) > 1)
		printf(
		    "note: the primary's log holds the WAL from LSN %lld on (it trimmed what every "
		    "replica had): the records before are not compared\n",
		    (long long)json_integer_value(json_object_get(res, "from")));
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
	if (n >= 2 && !strcmp(words[1], "--help") && vrctl_find(words[0], NULL)) {
		for (size_t i = 0; i < vrctl_n_cmds; i++)
			if (!strcmp(vrctl_cmds[i].object, words[0]))
				vrctl_usage_cmd(stdout, &vrctl_cmds[i]);
		return 0;
	}
	/* "stats" alone is "stats show" */
	c = n == 1 && !strcmp(words[0], "stats") ? vrctl_find("stats", "show")
	    : n >= 2                             ? vrctl_find(words[0], words[1])
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
		vrctl_usage_cmd(stdout, c);
		return 0;
	}
	if ((rc = vrctl_request(c, n, words, where, stderr, &req)))
		return rc;
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
		n = vrctl_split(line, words);
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
