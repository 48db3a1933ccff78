// SPDX-License-Identifier: BSD-3-Clause
/* vaultrepctl's command table and command lines (vrctl_cmd.h). */
#include <string.h>

#include "vrctl_cmd.h"

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

const struct cmd vrctl_cmds[] = {
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
     .args = {ACCOUNT,
              {"name", "vault name", true},
              {"mode",
               "async (default): a write is acked once durable here; sync: once "
               "durable at `sites` sites",
               false},
              {"sites",
               "sync: sites a write is durable at before its ack, this one included "
               "(default 2; while the vault has fewer replicas, all of them)",
               false}}},
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
              {"mode", "MODE"},
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

const size_t vrctl_n_cmds = sizeof(vrctl_cmds) / sizeof(vrctl_cmds[0]);

void
vrctl_usage_cmd(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: vaultrepctl %s %s", c->object, c->verb);
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		fprintf(f, a->required ? " %s <%s>" : " [%s <%s>]", a->key, a->key);
	fprintf(f, "\n  %s\n", c->help);
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		fprintf(f, "  %-12s %s%s\n", a->key, a->help, a->required ? "" : " (optional)");
}

const struct cmd *
vrctl_find(const char *object, const char *verb)
{
	for (size_t i = 0; i < vrctl_n_cmds; i++)
		if (!strcmp(vrctl_cmds[i].object, object) &&
		    (!verb || !strcmp(vrctl_cmds[i].verb, verb)))
			return &vrctl_cmds[i];
	return NULL;
}

int
vrctl_split(char *line, char **words)
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

int
vrctl_request(const struct cmd *c, int n, char **words, const char *where, FILE *errf,
              json_t **reqp)
{
	json_t *req = json_pack("{s:s}", "op", c->op);

	*reqp = NULL;
	for (int i = 0; i < n; i += 2) {
		const struct arg *a = c->args;

		while (a < c->args + MAX_ARGS && a->key && strcmp(a->key, words[i]))
			a++;
		if (a == c->args + MAX_ARGS || !a->key || i + 1 >= n) {
			fprintf(errf, "vaultrepctl: %s%s%s %s: %s \"%s\"\n", where,
			        where[0] ? ": " : "", c->object, c->verb,
			        i + 1 >= n && a < c->args + MAX_ARGS && a->key ? "no value for"
			                                                       : "unknown argument",
			        words[i]);
			vrctl_usage_cmd(errf, c);
			json_decref(req);
			return EXIT_USAGE;
		}
		json_object_set_new(req, words[i], json_string(words[i + 1]));
	}
	for (const struct arg *a = c->args; a < c->args + MAX_ARGS && a->key; a++)
		if (a->required && !json_object_get(req, a->key)) {
			fprintf(errf, "vaultrepctl: %s%s%s %s: missing %s\n", where,
			        where[0] ? ": " : "", c->object, c->verb, a->key);
			vrctl_usage_cmd(errf, c);
			json_decref(req);
			return EXIT_USAGE;
		}
	*reqp = req;
	return 0;
}
