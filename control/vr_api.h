/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The management API of vaultrep-control, declared once: its transport, its framing, every
 * operation with its arguments, results and the least role that may call it. vaultrepctl, the
 * tests and the peer links are all clients of this one API (vr_api_*).
 *
 * Transport
 *   - The management port: TCP with TLS 1.3 only. The client must present a certificate
 *     issued by the site's operator CA ([mgmt] operator_ca); the handshake fails otherwise, so a
 *     connection without a valid certificate is refused before any command is read. The
 *     certificate's subject names the caller: CN = who, OU = role (admin, operator or reader).
 *     The client checks the control's own certificate against a CA file (the site certificate
 *     itself, self-signed, for vaultrepctl) or against a pinned SHA-256 fingerprint.
 *   - The console: a unix socket, peers admitted by uid (SO_PEERCRED against
 *     [mgmt] console_uids); a console caller is "console:<uid>" with the admin role.
 *   - The peer port ([peers] listen): the control processes of other sites, mutual TLS 1.3
 *     with each side's self-signed site certificate, each checked against the pin the operator
 *     gave (peer.add): a certificate no peer is pinned to is refused after the handshake. A
 *     peer is "site:<id>" with the peer role, which may call the link.* operations only.
 *
 * Framing, both ways (the HSM agent's and the dataplane's, vr_hsm.h): a 4-byte big-endian
 * length (1..VR_API_MAX_MSG) and that many bytes of one JSON object.
 *
 *   request   {"op": "<name>", ...arguments}
 *   response  {"status": 0, ...results}  or  {"status": <errno>, "error": "<what was wrong>"}
 *
 * A frame longer than VR_API_MAX_MSG, or bytes that are not a JSON object, end the connection
 * after an error response (EMSGSIZE, EPROTO); the counters say how often.
 *
 * Operations (role: the least one allowed; A = every call lands in the audit log)
 *
 *   op              role      A  arguments -> results
 *   ping            reader       -> site, name, version, who, role
 *   site.init       admin     A  -> kek_version (the site key-encryption key pair, shard 0,
 *                                made in the HSM once; again: EALREADY)
 *   site.show       reader       -> id, name, initialized, kek_version, kek_sha256, tls_sha256,
 *                                mgmt, vaults, peers, limits
 *   peer.add        admin     A  site, name, address (host:port of its peer port), pin (SHA-256
 *                                of its site certificate, hex) -> peer; then link.hello: the
 *                                two sites exchange public key-encryption keys, each imported
 *                                into its HSM as a trusted wrapping key (status "linked"), or
 *                                "waiting" until the other site adds this one too
 *   peer.list       reader       -> peers: [{site, name, address, pin, status}]
 *   peer.remove     admin     A  site (refused while a vault replicates to it: EBUSY)
 *   vault.create    operator  A  account, name -> vault (its catalog entry: account, name, id,
 *                                primary, role, status, token, stream)
 *   vault.list      reader       -> vaults: [...]
 *   vault.show      reader       account, name -> vault, keys
 *   vault.delete    admin     A  account, name (its WAL closed: producers' frames refused with
 *                                ENOENT; the partition is wiped); a replicated vault's
 *                                replicas go first, one at a time (link.unprovision): one that
 *                                fails stops the delete, the vault naming the replicas left
 *   vault.replicate admin     A  account, name, site -> vault (V3, V4): the capacity handshake,
 *                                the replica's partition, the masking key under the target's
 *                                KEK, the target made a member of the vault's WAL, which brings
 *                                it every key record from LSN 1; each step in vault.show at both
 *                                sites; a failure undoes the steps before at both: a target that
 *                                joined the WAL and did not take its payload keys leaves the
 *                                member set again (stream.members, the newest dropped); only if
 *                                that fails too does it stay a member ("keys pending", the error
 *                                beside it), carried the keys again every second until it takes
 *                                them
 *   vault.verify    reader    A  account, name, [site] (at the primary) -> root, from, to, keys,
 *                                match, sites: [{site, role, keys, from, to, behind, root,
 *                                match, [note]}], differences: ["<what differs>", ...]: the
 *                                vault's digest (an RFC 6962 root over its keys and its WAL,
 *                                control/verify.c) here and at each replica; a key version
 *                                missing, extra or different, and the first WAL record that
 *                                differs, are named; a replica behind is compared as far as it
 *                                goes, with a note
 *   key.create      operator  A  account, vault, key -> key {name, type, versions}
 *   key.rotate      operator  A  account, vault, key -> key
 *   key.delete      operator  A  account, vault, key -> destroyed (versions)
 *   key.list        reader       account, vault -> keys: [{name, type, versions, created}]
 *   key.encrypt     operator  A  account, vault, key, data (text) | data_b64, [aad]
 *                                -> ciphertext ("vr1:<version>:<iv b64>:<data b64>")
 *   key.decrypt     operator  A  account, vault, key, ciphertext, [aad] -> data_b64, [data]
 *                                (data: when the plaintext is UTF-8 text)
 *   stream.list     reader       -> streams (the dataplane's; ENOTCONN without one)
 *   stream.show     reader       account, vault, [primary] -> the dataplane's figures
 *   stats           reader       -> control: counters; dataplane: its counters (if configured)
 *   audit.show      reader       [from] (seq, default: the last 20), [max] (<= 1000)
 *                                -> entries, head {seq, hash}, chain ("intact" or where broken)
 *
 *   link.hello      peer         site, name, kek (DER, base64) -> site, name, kek
 *   link.capacity   peer         account, name -> yes, or ENOSPC/EEXIST with the reason
 *   link.provision  peer         account, name, id, primary -> the replica's partition made
 *   link.masking    peer         account, name, blob (masking key under this site's KEK)
 *   link.keys       peer         account, name, keys: [{key_id, blob}] (the WAL stream's
 *                                payload keys, K1) -> status "replicating"
 *   link.status     peer         account, name -> the replica's entry (status, applied_lsn)
 *   link.unprovision peer        account, name: undo link.provision (a later step failed)
 *   link.verify     peer         account, name, from, [to], chunk, [keys] -> keys {keys, root},
 *                                wal (the dataplane's stream.digest), applied_lsn, status
 *
 * A replica refuses every key and vault mutation with EROFS and names its primary.
 *
 * Fault injection (tests): with VAULTREP_FAULT_OP=<op> in its environment, a control process
 * answers that operation with EIO, as if the HSM or the dataplane behind it had failed.
 *
 * A vault's WAL (stream account, vault id, primary) carries its key changes as hsm records,
 * appended by the primary's control through the dataplane (stream.append), payload one JSON
 * object: {"key": name, "version": n, "blob": base64 of the version under the masking key}
 * for key.insert and key.rotate, {"key": name} for key.delete. A replica's control reads its
 * dataplane's copy of the stream (stream.read) and applies them in LSN order.
 * Key material never crosses this API: keys stay in the HSM; only names, versions, metadata
 * and ciphertext do.
 */
#ifndef VR_API_H
#define VR_API_H

#include <stddef.h>

#include <jansson.h>

enum {
	VR_API_PROTOCOL = 1,
	VR_API_MAX_MSG = 1 << 20,
	VR_API_TIMEOUT_S = 60, /* a client waits this long for one response */
};

/* Roles, in order: each may do what the ones below it may. */
enum vr_role {
	VR_ROLE_NONE = 0,
	VR_ROLE_READER = 1,
	VR_ROLE_OPERATOR = 2,
	VR_ROLE_ADMIN = 3,
	VR_ROLE_PEER = 16, /* another site's control: link.* only, and nothing else */
};

/* "reader", "operator", "admin" <-> the enum; VR_ROLE_NONE for anything else. */
enum vr_role vr_api_role(const char *name);
const char *vr_api_role_name(enum vr_role r);

/* How a TLS client proves itself and checks the server. */
struct vr_api_tls {
	const char *cert; /* PEM: the client's certificate (NULL: none, which a server refuses) */
	const char *key;  /* PEM: its private key */
	const char *ca;   /* PEM: trust anchors for the server's certificate, or NULL with pin */
	const char *pin;  /* hex SHA-256 of the server's certificate (DER), or NULL */
};

struct vr_api;

/*
 * Connects to a console socket, or to "host:port" over TLS. NULL on failure, with what went
 * wrong in err (the TLS alert when the server refused the certificate).
 */
struct vr_api *vr_api_connect_unix(const char *path, char *err, size_t err_n);
struct vr_api *vr_api_connect_tls(const char *hostport, const struct vr_api_tls *tls, char *err,
                                  size_t err_n);
void vr_api_close(struct vr_api *a);

/*
 * One request, one response. Returns 0 with *resp (the whole response object, owned by the
 * caller), or -errno: the server's status (its message in err) or a transport error.
 */
int vr_api_call(struct vr_api *a, json_t *req, json_t **resp, char *err, size_t err_n);

/* Hex SHA-256 of a certificate file's DER (65 bytes with the NUL). 0 or -errno. */
int vr_api_cert_sha256(const char *pem_path, char out[65]);

#endif /* VR_API_H */
