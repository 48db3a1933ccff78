/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vaultrep-hsm-agent: its wire protocol and the client library that control, the dataplane
 * and the tests use to talk to it.
 *
 * Transport: a unix stream socket. The agent checks the peer's uid (SO_PEERCRED) against its
 * configured list before reading anything and closes the connection otherwise.
 *
 * Messages, both ways: a 4-byte big-endian length (1..VR_HSM_MAX_MSG) and that many bytes of one
 * JSON object (UTF-8). Binary values (keys wrapped, DER public keys, data) are base64 strings.
 *
 *   request   {"op": "<name>", ...arguments}
 *   response  {"status": 0, ...results}  or  {"status": <errno>, "error": "<what was wrong>"}
 *
 * One request, one response, in order; a connection may carry any number of them.
 *
 * Operations (arguments -> results). Vault ids, key names and shard numbers are the caller's
 * names; every PKCS#11 object is also reported by its PKCS#11 URI (RFC 7512).
 *
 *   ping                                        -> version
 *   vault.create      vault, [replica]          -> token (uri), serial, kek (base64 DER public)
 *   vault.list                                  -> vaults: [{vault, token, serial, replica}]
 *   vault.delete      vault                     -> (token wiped, returned to the free pool)
 *   masking.export    vault, peer (base64 DER)  -> blob: the masking key under RSA-OAEP(peer)
 *   masking.import    vault, blob               -> (replica: unwrapped with the vault's KEK)
 *   key.create        vault, name               -> version (1), uri
 *   key.rotate        vault, name               -> version (previous ones still decrypt)
 *   key.delete        vault, name, [replicated] -> versions destroyed (replicated: a replica
 *                                               applying its primary's deletion)
 *   key.list          vault                     -> keys: [{name, type, versions: [..]}]
 *                                               (vault keys are AES-256; no other type yet)
 *   key.export        vault, name, version      -> blob: the key under the masking key (RFC 5649)
 *                     vault, keys: [{name, version}] (<= 4096)  -> blobs: [..] in that order
 *   key.import        vault, name, version, blob -> imported (1)
 *                     vault, keys: [{name, version, blob}] (<= 4096) -> imported: all of them
 *                     in one synced write, or none (each blob must unwrap under the masking key)
 *   key.encrypt       vault, name, data, [aad]  -> version, iv, data (ciphertext || tag)
 *   key.decrypt       vault, name, version, iv, data, [aad] -> data
 *   site.generate     shard                     -> version, uri, kek (base64 DER public)
 *   site.rotate       shard                     -> version, kek (older versions still unwrap)
 *   site.retire       shard, version            -> (that private key destroyed)
 *   site.public       shard, [version]          -> version, kek, pem
 *   peer.import       peer, kek                 -> uri (trusted wrapping key in the site token)
 *   payload.generate  id                        -> uri
 *   payload.wrap      id, peer                  -> blob (RSA-OAEP under the peer's site KEK)
 *                     id, peers: [..] (<= 64)   -> blobs: {peer: blob}
 *   payload.unwrap    id, shard, version, blob, [keep] -> key (base64) unless keep, else uri
 *                                               (kept: in the site token, wrappable again for
 *                                               trusted peers, as payload.generate makes it)
 *   payload.delete    id                        -> (the token's copy destroyed; blobs made
 *                                               from it still unwrap where they were sent)
 */
#ifndef VR_HSM_H
#define VR_HSM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum {
	VR_HSM_PROTOCOL = 1,
	VR_HSM_MAX_MSG = 1 << 20,
};

struct vr_hsm;

/* Connects to the agent's socket. NULL with errno on failure. */
struct vr_hsm *vr_hsm_connect(const char *socket_path);
void vr_hsm_close(struct vr_hsm *h);

/*
 * Sends req (not consumed) and waits for the response. Returns 0 with *resp (the caller
 * json_decref()s it) when the agent said status 0; otherwise -status or -errno, with the agent's
 * (or the transport's) message in err (capacity err_n, may be NULL).
 */
int vr_hsm_call(struct vr_hsm *h, json_t *req, json_t **resp, char *err, size_t err_n);

/*
 * The same in two halves, for a client that keeps several requests in flight on one connection
 * (the agent answers a connection's requests one at a time, in order): vr_hsm_submit() sends req
 * (not consumed); vr_hsm_result() waits for the oldest response not yet taken, as vr_hsm_call().
 * A client may have as many requests outstanding as the socket buffers hold (a few dozen small
 * ones) before it takes a result.
 */
int vr_hsm_submit(struct vr_hsm *h, json_t *req);
int vr_hsm_result(struct vr_hsm *h, json_t **resp, char *err, size_t err_n);

/* Base64 helpers shared by the agent and its clients. decode: -EINVAL on bad input or NULL. */
char *vr_hsm_b64(const uint8_t *p, size_t n);
int vr_hsm_unb64(const char *s, uint8_t **out, size_t *n);

/*
 * Responses of a server speaking this protocol (the agent, the dataplane's control socket):
 * vr_hsm_error() is {"status": err, "error": message}; vr_hsm_ok() adds "status": 0 to res
 * (a new object when res is NULL).
 */
json_t *vr_hsm_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *vr_hsm_ok(json_t *res);

/*
 * Key material travels in these messages (wrapped keys; payload keys in clear, base64, for the
 * dataplane): vr_hsm_wipe_free() wipes a malloc'd buffer before freeing it, and
 * vr_hsm_json_wipe() makes jansson free every buffer that way (call before any jansson use).
 */
void vr_hsm_wipe_free(void *p);
void vr_hsm_json_wipe(void);

/* Framing: write one message / read one (malloc'd, NUL-terminated). 0 or -errno. */
int vr_hsm_send(int fd, const char *msg, size_t n);
int vr_hsm_recv(int fd, char **msg, size_t *n);

#endif /* VR_HSM_H */
