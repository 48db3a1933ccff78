/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of vaultrep-hsm-agent shared by state.c, ops.c and server.c.
 *
 * Trust boundary. The agent is the only process that loads the PKCS#11 module and the only one
 * that knows the tokens' PINs. PINs come from the OS CSPRNG (OpenSSL RAND_bytes, 128 bits each),
 * are stored in <state>/state.json with mode 0600 in a 0700 directory owned by the agent's
 * user, and are never sent over the socket or logged. Whoever can read that file and the token
 * directory can use the keys, as whoever holds an HSM and its PINs can: protecting them is the
 * job of the appliance's file permissions and disk encryption, not of the PINs. Clients are
 * admitted by uid (SO_PEERCRED); only the dataplane's uid may receive a payload key in clear.
 */
#ifndef VR_HSM_AGENT_H
#define VR_HSM_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "keystore.h"
#include "p11.h"

enum { MAX_ALLOWED_UIDS = 16 };

struct agent {
	struct vr_p11 *p11;
	char *state_dir;
	json_t *state;          /* see state.c; under mu */
	pthread_mutex_t mu;     /* every operation: tokens, sessions, state */
	json_t *sessions;       /* serial -> open user session (integer) */
	struct vr_keystore *ks; /* wrapped vault key versions (keystore.c) */
	/*
	 * Handles of objects already found or unwrapped: "m\x1f<serial>" -> masking key,
	 * "<vault>\x1f<name>\x1f<version>" -> session object of that key. Emptied whenever a
	 * session closes or a token changes user (PKCS#11 then destroys private session objects).
	 */
	json_t *cache;
	uid_t allowed[MAX_ALLOWED_UIDS];
	unsigned n_allowed;
	uid_t dataplane_uid;
	bool dataplane_uid_set;
};

/* state.c: load (or create empty) and save <state_dir>/state.json atomically. */
int vr_agent_state_load(struct agent *a);
int vr_agent_state_save(struct agent *a);
/* A fresh PIN: 32 hex digits from the CSPRNG. */
int vr_agent_pin(char out[33]);

/*
 * ops.c: runs one request for a client with uid `uid`; returns the response object (never
 * NULL unless out of memory). Takes a->mu itself.
 */
json_t *vr_agent_handle(struct agent *a, json_t *req, uid_t uid);
/* Creates the site token on first start. */
int vr_agent_init_site(struct agent *a);
/* Closes cached sessions. */
void vr_agent_sessions_close(struct agent *a);

#endif /* VR_HSM_AGENT_H */
