/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's control socket: length-prefixed JSON (the hsm_agent's framing, vr_hsm.h) on
 * a unix socket, peers admitted by uid (SO_PEERCRED against [site] control_uid). Runs on the
 * main lcore; it may block (it opens streams in the log and persists nonce reservations), the
 * worker never waits for it.
 *
 *   ping                                              -> site, boot (made at start: a new
 *                value is a restarted dataplane, which control gives its streams again)
 *   stream.add   account, vault, [primary], [members], [key_id, blob]
 *                -> durable_lsn, key_id, [keys]
 *                primary defaults to this site (an origin stream, whose seed record names the
 *                members); a stream of another primary is one this site receives.
 *                With an hsm_agent ([site] hsm): an origin stream gets its payload key (made,
 *                or after a restart its stored ones), and "keys" are the current key's records
 *                for the members, {"<site>": {key_id, blob}}, which control carries to them
 *                (K1); a receiving stream gets its stored keys, or key_id and blob (a record
 *                from the origin's stream.add) when newer.
 *   key.install  account, vault, primary, key_id, blob  (receiver, with an hsm_agent)
 *                installs a key record that control carried (a member that lost the chain)
 *                [room]: members the stream may grow to (stream.members), default as many as
 *                it has; vault streams of control are made with room for their replicas
 *                [sync]: an origin stream of a sync vault (X1): a record is acked to its
 *                producer once this many members hold it too (0..room; while it has fewer
 *                members, once all of them do; with none, once durable here)
 *   stream.members account, vault, members              (origin) -> lsn
 *                the member set grows to `members` (the old ones, in order, then the new;
 *                at most room), or shrinks to its first ones (the newest dropped: a join
 *                undone): a MEMBERS record (V2), durable before the answer; a join waits
 *                for a payload-key rotation under way to end (EAGAIN); a new member
 *                is sent the stream from LSN 1 (from the log); with an hsm_agent, "keys" are
 *                the stream's stored keys wrapped for every member, {"<site>": [{key_id,
 *                blob}, ...]} oldest first, which control carries to the newcomers (key.install
 *                each, in order)
 *   stream.close account, vault                         (origin) -> durable_lsn
 *                its vault was deleted: producers' frames are nacked ENOENT (ingest_closed)
 *                and stream.append, stream.members and stream.rekey refused from now on;
 *                what it holds is still sent to its members and readable. A dataplane knows
 *                only the streams control gives it, so after a restart the stream is gone
 *   stream.keys  account, vault, [primary]              (with an hsm_agent)
 *                origin -> keys: stream.members' "keys" again, for the members it has
 *                (control carries them once more to a member that did not take them);
 *                receiver -> stored: [{key_id, blob}], its keys as it keeps them (wrapped
 *                under this site's KEK), oldest first, which control keeps in its catalog
 *   stream.append account, vault, type ("hsm"), rec_op ("key.insert", "key.rotate", "key.delete"),
 *                payload (base64, <= 1024 bytes)        (origin) -> lsn
 *                one record of control's own in the stream's WAL, answered once durable here
 *   stream.rekey account, vault                         (origin, with an hsm_agent)
 *                asks for the next payload key now; it is made, sent to the members in the
 *                stream and used once they confirm it (stream.show key_id)
 *   key.set      account, vault, [primary], key_id, key (base64, 32 bytes)
 *                installs a payload key in clear (without an hsm_agent: tests, a lab); the
 *                previous one stays valid for batches in flight
 *   stream.show  account, vault, [primary]            -> figures of one stream (and the
 *                worker lcore that owns it)
 *   stream.list                                       -> every stream
 *   stream.read  account, vault, [primary], from, [max] -> records from LSN from (D7): at most
 *                max (default 256, up to 4096), each {lsn, type, op, payload (base64)}, and
 *                next, the LSN to ask for next; the local consumer's read-by-LSN interface
 *                (records delivered over UDP may be lost: the consumer fills gaps from here)
 *   stream.digest account, vault, [primary], [from], [to], [chunk]
 *                -> from, to, chunk, chunks (hex), root (hex): the stream's records from LSN
 *                from (default 1) to to (default the last in the log) hashed as an RFC 6962
 *                tree (vr_merkle.h), with the roots of its chunks of `chunk` records (a power
 *                of two, default 4096, at most 8192 chunks) aligned at from; chunk 1 gives
 *                the records' own hashes. `vault verify` compares these between sites
 *   stats                                             -> every counter, ack latency histogram,
 *                and "workers": each worker lcore's non-zero counters and poll loops (D9)
 *
 * Responses carry "status": 0, or an errno with "error" saying what was wrong (the agent's
 * convention, so vr_hsm_call() is the client for both).
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_mempool.h>

#include "dp.h"
#include "dp_guard.h"
#include "vr_merkle.h"
#include "vr_hsm.h"
#include "vr_msg.h"

enum { MAX_CLIENTS = 16 };

/* Keys replaced twice are kept until exit: a reservation job may still name one. */
static struct dp_key **retired;
static unsigned n_retired, cap_retired;

static const char *const counter_names[] = {
#define X(n, d) #n,
    DP_COUNTERS(X)
#undef X
};

#define fail vr_hsm_error
#define ok   vr_hsm_ok

struct dp_stream *
dp_stream_find(struct dp *dp, uint64_t account, uint32_t vault, uint16_t primary)
{
	struct dp_skey k = dp_skey(account, vault, primary);
	void *v;

	return rte_hash_lookup_data(dp->streams, &k, &v) >= 0 ? v : NULL;
}

/* Reads the stream id of a request: account, vault, primary (default: this site). */
static json_t *
stream_arg(struct dp *dp, json_t *req, struct vr_stream_id *id)
{
	json_t *a = json_object_get(req, "account"), *v = json_object_get(req, "vault"),
	       *p = json_object_get(req, "primary");

	if (!json_is_integer(a) || json_integer_value(a) < 0 || !json_is_integer(v) ||
	    json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
		return fail(EINVAL, "\"account\" and \"vault\" must be non-negative integers");
	if (p && (!json_is_integer(p) || json_integer_value(p) < 1 ||
	          json_integer_value(p) > UINT16_MAX))
		return fail(EINVAL, "\"primary\" must be a site id (1..65535)");
	id->account = (uint64_t)json_integer_value(a);
	id->vault = (uint32_t)json_integer_value(v);
	id->primary = p ? (uint16_t)json_integer_value(p) : dp->conf.site;
	return NULL;
}

/* The stream a request names, or NULL with *err (bad arguments, or no such stream). */
static struct dp_stream *
stream_req(struct dp *dp, json_t *req, json_t **err)
{
	struct vr_stream_id id;
	struct dp_stream *st;

	if ((*err = stream_arg(dp, req, &id)))
		return NULL;
	st = dp_stream_find(dp, id.account, id.vault, id.primary);
	if (!st)
		*err = fail(ENOENT, "no stream %lu/%u/%u", (unsigned long)id.account, id.vault,
		            id.primary);
	return st;
}

/* As stream_req, for what changes a stream: a closed one (stream.close) is refused. */
static struct dp_stream *
open_stream_req(struct dp *dp, json_t *req, json_t **err)
{
	struct dp_stream *st = stream_req(dp, req, err);

	if (st && atomic_load(&st->closed)) {
		*err = fail(ENOENT, "stream %lu/%u/%u is closed: its vault was deleted",
		            (unsigned long)st->id.account, st->id.vault, st->id.primary);
		return NULL;
	}
	return st;
}

static bool
is_peer(struct dp *dp, uint16_t site)
{
	for (unsigned i = 0; i < dp->n_peers; i++)
		if (dp->peers[i].site == site)
			return true;
	return false;
}

/* The seed record (LSN 1) of an origin stream: names the primary and the members. */
static int
write_seed(struct dp *dp, struct dp_stream *st)
{
	uint8_t buf[VR_REC_HDR_SIZE + 2 * VR_REC_MAX_MEMBERS], genesis[VR_REC_ENTROPY_SIZE];
	struct vr_rec r = {
	    .stream = st->id,
	    .lsn = 1,
	    .origin = dp->conf.site,
	    .version = VR_REC_VERSION,
	    .type = VR_REC_INFRA,
	    .op = VR_REC_OP_SEED,
	    .n_members = st->n_members,
	};
	struct vr_log_durable d;
	struct iovec iov;
	unsigned nd;
	int n;

	for (unsigned i = 0; i < st->n_members; i++)
		r.members[i] = st->members[i].site;
	vr_rec_genesis(&st->id, genesis);
	n = vr_rec_encode(&r, genesis, buf, sizeof(buf));
	if (n < 0)
		return n;
	iov = (struct iovec){.iov_base = buf, .iov_len = (size_t)n};
	n = vr_log_append(dp->log, &iov, 1, &d, &nd, NULL);
	if (n)
		return n;
	st->durable_lsn = 1;
	return 0;
}

static void
stream_free(struct dp *dp, struct dp_stream *st)
{
	dp_key_free(dp, atomic_load(&st->key));
	dp_key_free(dp, atomic_load(&st->prev_key));
	if (st->rekey) {
		dp_key_free(dp, st->rekey->key == atomic_load(&st->key) ? NULL : st->rekey->key);
		free(st->rekey);
	}
	free(st);
}

void
dp_streams_free(struct dp *dp)
{
	const void *key;
	void *data;
	uint32_t it = 0;
	struct dp_msg *m;

	while (rte_ring_dequeue(dp->to_ctl, (void **)&m) == 0) {
		if (m->kind == DP_MSG_RETIRE)
			dp_key_free(dp, m->key);
		free(m);
	}
	for (unsigned w = 0; w < dp->n_workers; w++)
		while (rte_ring_dequeue(dp->to_worker[w], (void **)&m) == 0) {
			if (m->kind == DP_MSG_NEXT_KEY && m->rekey) {
				struct dp_key *k = m->rekey->key;

				/* A restart's rotation names the stream's current key. */
				if (k != atomic_load(&m->st->key) &&
				    k != atomic_load(&m->st->prev_key))
					dp_key_free(dp, k);
				free(m->rekey);
			}
			free(m);
		}
	while (rte_hash_iterate(dp->streams, &key, &data, &it) >= 0)
		stream_free(dp, data);
	rte_hash_reset(dp->streams);
}

/* key_id and blob of a request: installed as the receiver's key (K1: control carried it). */
static int
install_arg(struct dp *dp, struct dp_stream *st, json_t *req, char *msg, size_t msg_n)
{
	json_t *kid = json_object_get(req, "key_id");
	const char *b64 = json_string_value(json_object_get(req, "blob"));
	struct dp_key *cur = atomic_load(&st->key);
	uint8_t *blob = NULL;
	size_t n = 0;
	int rc;

	if (!json_is_integer(kid) || json_integer_value(kid) < 1 ||
	    json_integer_value(kid) > UINT32_MAX) {
		snprintf(msg, msg_n, "\"key_id\" must be 1..4294967295");
		return -EINVAL;
	}
	if (cur && cur->id >= json_integer_value(kid))
		return 0; /* this site holds that key or a newer one already */
	if (!b64 || vr_hsm_unb64(b64, &blob, &n) || !n || n > VR_WIRE_KEYREC_MAX_BLOB) {
		free(blob);
		snprintf(msg, msg_n, "\"blob\" must be a wrapped key in base64 (1..%d bytes)",
		         VR_WIRE_KEYREC_MAX_BLOB);
		return -EINVAL;
	}
	rc = dp_keys_install(dp, st, (uint32_t)json_integer_value(kid), blob, n, msg, msg_n);
	free(blob);
	return rc;
}

static json_t *
op_stream_add(struct dp *dp, json_t *req)
{
	json_t *err, *members = json_object_get(req, "members"), *m, *records = NULL, *res,
	             *kid = json_object_get(req, "key_id"), *sync;
	struct vr_stream_id id;
	struct vr_log_stream ls;
	struct dp_stream *st;
	struct dp_key *cur;
	struct dp_rekey *rk;
	struct dp_msg *nk = NULL;
	struct dp_skey k;
	char msg[512];
	size_t i, room;
	int rc;

	if ((err = stream_arg(dp, req, &id)))
		return err;
	if (dp_stream_find(dp, id.account, id.vault, id.primary))
		return fail(EEXIST, "stream %lu/%u/%u exists", (unsigned long)id.account, id.vault,
		            id.primary);
	if (id.primary != dp->conf.site && !is_peer(dp, id.primary))
		return fail(ENOENT, "primary %u is neither this site nor a configured peer",
		            id.primary);
	if (members && (!json_is_array(members) || json_array_size(members) > VR_REC_MAX_MEMBERS))
		return fail(EINVAL, "\"members\" must be an array of at most %d site ids",
		            VR_REC_MAX_MEMBERS);
	if (members && json_array_size(members) && id.primary != dp->conf.site)
		return fail(EINVAL, "only the primary names the members of a stream");
	room = json_array_size(members);
	if (json_object_get(req, "room")) {
		json_int_t r = json_integer_value(json_object_get(req, "room"));

		if (!json_is_integer(json_object_get(req, "room")) || r < (json_int_t)room ||
		    r > VR_REC_MAX_MEMBERS || id.primary != dp->conf.site)
			return fail(EINVAL,
			            "\"room\" is for an origin stream: its members' count..%d",
			            VR_REC_MAX_MEMBERS);
		room = (size_t)r;
	}
	sync = json_object_get(req, "sync");
	if (sync && (!json_is_integer(sync) || json_integer_value(sync) < 0 ||
	             (size_t)json_integer_value(sync) > room ||
	             (json_integer_value(sync) && id.primary != dp->conf.site)))
		return fail(EINVAL, "\"sync\" is for an origin stream: how many members must hold "
		                    "a record before its producer is acked, 0 (async) to its room");
	/* The C heap, not DPDK's: 16 B of overhead instead of 128 (an idle stream's memory). */
	st = calloc(1, sizeof(*st) + room * sizeof(st->members[0]));
	if (!st)
		return fail(ENOMEM, "out of memory for a stream");
	st->room = (uint8_t)room;
	st->sync = (uint8_t)json_integer_value(sync);
	st->id = id;
	st->origin = id.primary == dp->conf.site;
	st->worker = (uint8_t)vr_wire_stream_owner(id.account, id.vault, id.primary, dp->n_workers);
	json_array_foreach(members, i, m)
	{
		json_int_t s = json_integer_value(m);

		if (!json_is_integer(m) || s < 1 || s > UINT16_MAX || !is_peer(dp, (uint16_t)s)) {
			free(st);
			return fail(ENOENT, "member %lld is not a configured peer", (long long)s);
		}
		st->members[st->n_members++].site = (uint16_t)s;
	}
	vr_batch_init(&st->b, dp->wan.mtu, dp->conf.max_records,
	              dp->hz * dp->conf.max_delay_us / 1000000);
	rc = vr_log_stream_get(dp->log, &id, &ls);
	if (rc == 0) {
		st->durable_lsn = ls.last_lsn;
		atomic_store(&st->trim_lsn, ls.trim_lsn);
		/*
		 * The members are the request's (membership changes are control's, as MEMBERS
		 * records); what each holds is its saved cursor, at most what is durable here.
		 */
		for (unsigned mi = 0; st->origin && !rc && mi < st->n_members; mi++) {
			uint64_t c;

			rc = vr_log_cursor_get(dp->log, &id, st->members[mi].site, &c);
			st->members[mi].acked = st->members[mi].sent = RTE_MIN(c, st->durable_lsn);
		}
		if (rc) {
			free(st);
			return fail(-rc, "cannot read the replication cursors: %s",
			            vr_rec_strerror(rc));
		}
		/* What each producer had logged here: its retransmits are acked, not appended. */
		if (st->origin && (rc = dp_producers_load(dp, st))) {
			free(st);
			return fail(-rc, "cannot read the producers' marks: %s",
			            vr_rec_strerror(rc));
		}
	} else if (rc == -ENOENT && st->origin) {
		rc = write_seed(dp, st);
		if (rc) {
			free(st);
			return fail(-rc, "cannot write the seed record: %s", vr_rec_strerror(rc));
		}
	} else if (rc != -ENOENT) {
		free(st);
		return fail(-rc, "cannot read the stream from the log: %s", vr_rec_strerror(rc));
	}
	if (st->origin)
		st->next_lsn = st->durable_lsn + 1;
	else
		st->queued_lsn = st->durable_lsn;
	if (dp->conf.hsm[0]) {
		rc = dp_keys_bootstrap(dp, st, &records, msg, sizeof(msg));
		if (!rc && !st->origin && json_is_integer(kid))
			rc = install_arg(dp, st, req, msg, sizeof(msg));
		if (rc) {
			stream_free(dp, st);
			return fail(-rc, "payload keys: %s", msg);
		}
	}
	/*
	 * A rotation under way before a restart is the worker's, through a message. Until the
	 * worker has it, it must not ask for another key (rekey_asked, cleared by next_key): that
	 * one would be stored as the newest while the worker drops it as a second rotation, and
	 * the restart after that would seal under it with its record sent under a key the
	 * members may never have got (a stream that never sends again).
	 */
	rk = st->rekey;
	st->rekey = NULL;
	if (rk && !(nk = calloc(1, sizeof(*nk)))) {
		vr_err("dataplane",
		       "stream %lu/%u/%u: key %u's records are not sent again (out of memory): a "
		       "member without it needs key.install",
		       (unsigned long)id.account, id.vault, id.primary, rk->key->id);
		free(rk); /* its key is the stream's current one */
		rk = NULL;
	}
	if (rk) {
		*nk = (struct dp_msg){.kind = DP_MSG_NEXT_KEY, .status = 1, .st = st, .rekey = rk};
		st->rekey_asked = true;
	}
	k = dp_skey(id.account, id.vault, id.primary);
	rc = rte_hash_add_key_data(dp->streams, &k, st);
	if (rc) {
		json_decref(records);
		free(rk);
		free(nk);
		stream_free(dp, st);
		return fail(-rc, "cannot add the stream: %s", strerror(-rc));
	}
	/*
	 * A member behind what is durable here (this site restarted before it acked): the owning
	 * worker resends from the log, even if no producer writes to the stream again. A stream
	 * that holds only its seed record waits for its first batch (the member's gap report
	 * brings the seed then): an idle stream makes no crypto session and reads no log.
	 */
	for (i = 0; st->origin && st->durable_lsn > 1 && i < st->n_members; i++)
		if (st->members[i].acked < st->durable_lsn) {
			struct dp_msg *cu = calloc(1, sizeof(*cu));

			if (cu)
				*cu = (struct dp_msg){.kind = DP_MSG_CATCH_UP, .st = st};
			if (!cu || dp_msg_to_worker(dp, cu)) {
				vr_err("dataplane",
				       "stream %lu/%u/%u: out of memory: its members catch up with "
				       "its next record",
				       (unsigned long)id.account, id.vault, id.primary);
				free(cu);
			}
			break;
		}
	/*
	 * The worker drains its queue (16 384 messages) on every loop: full, it is stuck, and
	 * this waits for it, bounded. Not handed, the stream seals on under its current key and
	 * rotates no more (rekey_asked) until it is added again.
	 */
	for (unsigned t = 0; nk && dp_msg_to_worker(dp, nk); t++) {
		if (t == 1000) {
			vr_err("dataplane",
			       "stream %lu/%u/%u: its worker's queue stayed full for 1 s: key %u's "
			       "rotation is not handed to it, and the stream rotates no more until "
			       "it is added again",
			       (unsigned long)id.account, id.vault, id.primary, rk->key->id);
			free(rk);
			free(nk);
			break;
		}
		usleep(1000);
	}
	cur = atomic_load(&st->key);
	res = json_pack("{s:I, s:i}", "durable_lsn", (json_int_t)st->durable_lsn, "key_id",
	                cur ? (int)cur->id : 0);
	if (records)
		json_object_set_new(res, "keys", records);
	return ok(res);
}

static json_t *
op_key_set(struct dp *dp, json_t *req)
{
	json_t *err, *kid = json_object_get(req, "key_id");
	const char *b64 = json_string_value(json_object_get(req, "key"));
	struct dp_stream *st;
	struct dp_key *k, *old;
	uint8_t *key = NULL;
	size_t n = 0;
	char msg[256];

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (!json_is_integer(kid) || json_integer_value(kid) < 1 ||
	    json_integer_value(kid) > UINT32_MAX)
		return fail(EINVAL, "\"key_id\" must be 1..4294967295");
	old = atomic_load(&st->key);
	if (old && old->id == json_integer_value(kid))
		return fail(EEXIST, "key %lld is already the stream's key",
		            (long long)json_integer_value(kid));
	if (!b64 || vr_hsm_unb64(b64, &key, &n) || n != DP_KEY_SIZE) {
		if (key)
			explicit_bzero(key, n);
		free(key);
		return fail(EINVAL, "\"key\" must be 32 bytes in base64");
	}
	k = dp_key_new(dp, st, (uint32_t)json_integer_value(kid), key, st->origin, msg,
	               sizeof(msg));
	explicit_bzero(key, n);
	free(key);
	if (!k)
		return fail(EIO, "%s", msg);
	old = dp_key_push(st, k);
	if (old) {
		if (n_retired == cap_retired) {
			unsigned cap = cap_retired ? cap_retired * 2 : 16;
			struct dp_key **r = realloc(retired, cap * sizeof(*r));

			if (r) {
				retired = r;
				cap_retired = cap;
			}
		}
		if (n_retired < cap_retired)
			retired[n_retired++] = old;
	}
	return ok(json_pack("{s:i}", "key_id", (int)k->id));
}

static json_t *
op_key_install(struct dp *dp, json_t *req)
{
	struct dp_stream *st;
	json_t *err;
	char msg[512];
	int rc;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (!dp->conf.hsm[0])
		return fail(ENOTSUP, "no hsm_agent configured ([site] hsm)");
	if (st->origin)
		return fail(EINVAL, "an origin stream makes its own keys");
	rc = install_arg(dp, st, req, msg, sizeof(msg));
	if (rc)
		return fail(-rc, "%s", msg);
	return ok(json_pack("{s:i}", "key_id", (int)atomic_load(&st->key)->id));
}

static json_t *
op_stream_rekey(struct dp *dp, json_t *req)
{
	struct dp_stream *st;
	struct dp_msg *m;
	json_t *err;

	if (!(st = open_stream_req(dp, req, &err)))
		return err;
	if (!dp->conf.hsm[0])
		return fail(ENOTSUP, "no hsm_agent configured ([site] hsm)");
	if (!st->origin)
		return fail(EINVAL, "only the origin of a stream rotates its key");
	if (!(m = calloc(1, sizeof(*m))))
		return fail(ENOMEM, "out of memory");
	*m = (struct dp_msg){.kind = DP_MSG_REKEY_NOW, .st = st};
	if (dp_msg_to_worker(dp, m)) {
		free(m);
		return fail(EBUSY, "the worker's queue is full: try again");
	}
	return ok(json_pack("{s:i}", "key_id", (int)atomic_load(&st->key)->id));
}

/* control's one append in flight (the socket serves one request at a time) */
static struct {
	uint64_t token;
	bool done;
	int status;
	uint64_t lsn;
} appended;

static void worker_msgs(struct dp *dp);

/*
 * Sends m (an APPEND) to the stream's worker and serves the worker's messages until it is
 * answered (durable) or 5 s have passed. 0 with *lsn, or -errno.
 */
static int
append_wait(struct dp *dp, struct dp_msg *m, uint64_t *lsn)
{
	struct pollfd pfd = {.fd = dp->ctl_wake, .events = POLLIN};
	uint64_t until = rte_get_timer_cycles() + 5 * rte_get_timer_hz();

	m->kind = DP_MSG_APPEND;
	m->token = ++appended.token;
	appended.done = false;
	if (dp_msg_to_worker(dp, m)) {
		free(m);
		return -EBUSY;
	}
	while (!appended.done && rte_get_timer_cycles() < until && !atomic_load(&dp->quit)) {
		if (poll(&pfd, 1, 50) > 0)
			worker_msgs(dp);
	}
	if (!appended.done)
		return -ETIMEDOUT;
	*lsn = appended.lsn;
	return appended.status;
}

static json_t *
op_stream_members(struct dp *dp, json_t *req)
{
	json_t *err, *members = json_object_get(req, "members"), *v;
	struct dp_stream *st;
	struct dp_msg *m;
	uint64_t lsn = 0;
	size_t i;
	bool grows;
	int rc;

	if (!(st = open_stream_req(dp, req, &err)))
		return err;
	if (!st->origin)
		return fail(EINVAL, "only the origin of a stream changes its members");
	if (!json_is_array(members))
		return fail(EINVAL,
		            "\"members\" must list the %u members the stream has, then the "
		            "new ones (or the first of them only)",
		            st->n_members);
	if (json_array_size(members) > st->room)
		return fail(ENOSPC, "the stream has room for %u members (stream.add room)",
		            st->room);
	if (!(m = calloc(1, sizeof(*m))))
		return fail(ENOMEM, "out of memory");
	json_array_foreach(members, i, v)
	{
		json_int_t s = json_integer_value(v);

		if (!json_is_integer(v) || s < 1 || s > UINT16_MAX ||
		    (i < st->n_members && st->members[i].site != s) ||
		    (i >= st->n_members && !is_peer(dp, (uint16_t)s))) {
			free(m);
			return fail(EINVAL,
			            "member %lld: not the stream's member %zu, or not a "
			            "configured peer",
			            (long long)s, i);
		}
		for (size_t k = 0; k < i; k++)
			if (m->members[k] == s) {
				free(m);
				return fail(EINVAL, "member %lld is named twice", (long long)s);
			}
		m->members[i] = (uint16_t)s;
	}
	if (json_array_size(members) == st->n_members) {
		free(m);
		return ok(json_pack("{s:I}", "lsn", (json_int_t)st->durable_lsn));
	}
	m->st = st;
	m->rec_type = VR_REC_INFRA;
	m->rec_op = VR_REC_OP_MEMBERS;
	m->n_members = (uint8_t)json_array_size(members);
	grows = m->n_members > st->n_members;
	rc = append_wait(dp, m, &lsn);
	if (rc == -EAGAIN)
		return fail(EAGAIN,
		            "a payload-key rotation of the stream is under way: members join "
		            "once it is over (try again)");
	if (rc)
		return fail(-rc, "the members record was not made durable: %s", strerror(-rc));
	if (dp->conf.hsm[0] && grows) {
		/*
		 * Key records in the stream are sealed under the key before them, so a newcomer
		 * gets its first keys from control (K1), as a member named at stream.add does.
		 */
		json_t *keys;
		char msg[512];

		rc = dp_keys_records(dp, st, &keys, msg, sizeof(msg));
		if (rc)
			return fail(-rc, "members changed at LSN %llu, but their keys: %s",
			            (unsigned long long)lsn, msg);
		return ok(json_pack("{s:I, s:o}", "lsn", (json_int_t)lsn, "keys", keys));
	}
	return ok(json_pack("{s:I}", "lsn", (json_int_t)lsn));
}

static json_t *
op_stream_close(struct dp *dp, json_t *req)
{
	struct dp_stream *st;
	json_t *err;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (!st->origin)
		return fail(EINVAL, "only an origin stream is closed (a receiver's stays until the "
		                    "dataplane restarts)");
	atomic_store(&st->closed, true);
	return ok(json_pack("{s:I}", "durable_lsn", (json_int_t)st->durable_lsn));
}

static json_t *
op_stream_keys(struct dp *dp, json_t *req)
{
	json_t *err, *keys;
	struct dp_stream *st;
	char msg[512];
	int rc;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (!dp->conf.hsm[0])
		return fail(ENOTSUP, "no hsm_agent configured ([site] hsm)");
	if (!st->origin) {
		rc = dp_keys_stored(dp, st, &keys);
		if (rc)
			return fail(-rc, "cannot read the stream's keys: %s", vr_rec_strerror(rc));
		return ok(json_pack("{s:o}", "stored", keys));
	}
	rc = dp_keys_records(dp, st, &keys, msg, sizeof(msg));
	if (rc)
		return fail(-rc, "%s", msg);
	return ok(json_pack("{s:o}", "keys", keys));
}

static json_t *
op_stream_append(struct dp *dp, json_t *req)
{
	static const struct {
		const char *name;
		uint8_t op;
	} hsm_ops[] = {
	    {"key.insert", VR_REC_OP_KEY_INSERT},
	    {"key.rotate", VR_REC_OP_KEY_ROTATE},
	    {"key.delete", VR_REC_OP_KEY_DELETE},
	};
	const char *type = json_string_value(json_object_get(req, "type")),
	           *op = json_string_value(json_object_get(req, "rec_op")),
	           *b64 = json_string_value(json_object_get(req, "payload"));
	struct dp_stream *st;
	struct dp_msg *m;
	uint8_t *raw = NULL;
	uint64_t lsn = 0;
	size_t n = 0;
	json_t *err;
	int rc, rop = -1;

	if (!(st = open_stream_req(dp, req, &err)))
		return err;
	if (!st->origin)
		return fail(EINVAL, "records are appended at the origin of a stream");
	if (!type || strcmp(type, "hsm"))
		return fail(EINVAL, "\"type\" must be \"hsm\" (producers send data on the LAN)");
	for (unsigned i = 0; op && i < RTE_DIM(hsm_ops); i++)
		if (!strcmp(op, hsm_ops[i].name))
			rop = hsm_ops[i].op;
	if (rop < 0)
		return fail(EINVAL, "\"rec_op\" must be key.insert, key.rotate or key.delete");
	if (!b64 || vr_hsm_unb64(b64, &raw, &n) || !n || n > VR_WIRE_KEYREC_MAX_BLOB) {
		free(raw);
		return fail(EINVAL, "\"payload\" must be base64 of 1..%d bytes",
		            VR_WIRE_KEYREC_MAX_BLOB);
	}
	if (!(m = calloc(1, sizeof(*m)))) {
		free(raw);
		return fail(ENOMEM, "out of memory");
	}
	m->st = st;
	m->rec_type = VR_REC_HSM;
	m->rec_op = (uint8_t)rop;
	m->blob_size = (uint16_t)n;
	memcpy(m->blob, raw, n);
	free(raw);
	rc = append_wait(dp, m, &lsn);
	if (rc)
		return fail(-rc, "the record was not made durable: %s", strerror(-rc));
	return ok(json_pack("{s:I}", "lsn", (json_int_t)lsn));
}

/* Messages of the worker: make a key, install one, free one. */
static void
worker_msgs(struct dp *dp)
{
	struct dp_msg *m;
	uint64_t cnt;
	char msg[512];

	if (read(dp->ctl_wake, &cnt, sizeof(cnt)) < 0) {
		/* nothing to read: the ring is drained anyway */
	}
	while (rte_ring_dequeue(dp->to_ctl, (void **)&m) == 0) {
		struct dp_stream *st = m->st;

		switch (m->kind) {
		case DP_MSG_REKEY:
			m->kind = DP_MSG_NEXT_KEY;
			m->rekey = dp_keys_next(dp, st, msg, sizeof(msg));
			if (m->rekey) {
				DP_INC(&dp->stats[DP_STATS_CTL], rekeys);
			} else {
				DP_INC(&dp->stats[DP_STATS_CTL], rekey_failed);
				vr_err("dataplane", "stream %llu/%u/%u: no next key: %s",
				       (unsigned long long)st->id.account, st->id.vault,
				       st->id.primary, msg);
			}
			break;
		case DP_MSG_KEYREC:
			m->kind = DP_MSG_INSTALLED;
			m->status = dp_keys_install(dp, st, m->key_id, m->blob, m->blob_size, msg,
			                            sizeof(msg));
			if (m->status == 0) {
				DP_INC(&dp->stats[DP_STATS_CTL], keys_installed);
			} else if (m->status != -EALREADY) {
				DP_INC(&dp->stats[DP_STATS_CTL], key_install_failed);
				vr_err("dataplane", "stream %llu/%u/%u: key record %u: %s",
				       (unsigned long long)st->id.account, st->id.vault,
				       st->id.primary, m->key_id, msg);
			}
			break;
		case DP_MSG_APPENDED:
			if (m->token == appended.token) {
				appended.done = true;
				appended.status = m->status;
				appended.lsn = m->lsn;
			}
			free(m);
			continue;
		case DP_MSG_RETIRE:
			rte_rcu_qsbr_synchronize(dp->qsbr, RTE_QSBR_THRID_INVALID);
			dp_key_free(dp, m->key);
			free(m);
			continue;
		default:
			free(m);
			continue;
		}
		if (dp_msg_to_worker(dp, m)) {
			vr_err("dataplane", "the worker's queue is full: a key message is lost");
			free(m->rekey);
			free(m);
		}
	}
}

static json_t *
stream_json(struct dp_stream *st)
{
	struct dp_key *k = atomic_load(&st->key);
	json_t *o = json_pack("{s:I, s:i, s:i, s:b, s:I, s:I, s:I, s:I}", "account",
	                      (json_int_t)st->id.account, "vault", (int)st->id.vault, "primary",
	                      (int)st->id.primary, "origin", st->origin, "durable_lsn",
	                      (json_int_t)st->durable_lsn, "records", (json_int_t)st->records,
	                      "bytes", (json_int_t)st->bytes, "batches", (json_int_t)st->batches);
	json_t *ms = json_array();

	json_object_set_new(o, "key_id", json_integer(k ? k->id : 0));
	json_object_set_new(o, "worker", json_integer(st->worker));
	if (st->origin && k)
		json_object_set_new(o, "next_seq", json_integer((json_int_t)k->nonce.next));
	/*
	 * The worker's state, read as it is (not under a lock): what an operator needs to see why
	 * a member is behind. sent: the highest LSN sent to it; recovering: the LSN a resend goes
	 * on from at its next ack (0: none); reading: a catch-up read from the log is in flight.
	 */
	for (unsigned i = 0; i < st->n_members; i++) {
		const struct dp_member *mb = &st->members[i];
		uint64_t acked = mb->acked;

		json_array_append_new(
		    ms,
		    json_pack("{s:i, s:I, s:I, s:I, s:I, s:b}", "site", mb->site, "acked",
		              (json_int_t)acked, "lag_records",
		              (json_int_t)(st->durable_lsn > acked ? st->durable_lsn - acked : 0),
		              "sent", (json_int_t)mb->sent, "recovering", (json_int_t)mb->recover,
		              "reading", mb->reading));
	}
	json_object_set_new(o, "members", ms);
	json_object_set_new(o, "window", json_integer(st->win_n));
	if (!st->origin)
		json_object_set_new(o, "queued_lsn", json_integer((json_int_t)st->queued_lsn));
	/* (Not st->rekey's key: the worker may free the rotation while this reads it.) */
	if (st->origin && (st->rekey || st->rekey_asked))
		json_object_set_new(o, "rotation",
		                    json_pack("{s:b, s:b, s:b, s:i}", "asked", st->rekey_asked,
		                              "under_way", st->rekey != NULL, "promoted",
		                              st->promoted, "confirmed", (int)st->confirmed));
	if (st->origin)
		json_object_set_new(o, "sync", json_integer(st->sync));
	if (atomic_load(&st->closed))
		json_object_set_new(o, "closed", json_true());
	if (st->origin)
		json_object_set_new(o, "trim_lsn",
		                    json_integer((json_int_t)atomic_load(&st->trim_lsn)));
	return o;
}

/* An optional LSN argument: 0 when absent, -1 when it is not an LSN. */
static long long
lsn_arg(json_t *req, const char *name)
{
	json_t *v = json_object_get(req, name);

	if (!v)
		return 0;
	return json_is_integer(v) && json_integer_value(v) >= 1 ? json_integer_value(v) : -1;
}

enum { DIGEST_CHUNKS_MAX = 8192 };

static json_t *
op_stream_digest(struct dp *dp, json_t *req)
{
	long long from = lsn_arg(req, "from"), to = lsn_arg(req, "to"),
	          chunk = lsn_arg(req, "chunk");
	char hex[VR_MERKLE_HEX];
	struct vr_merkle_acc acc;
	struct vr_log_iter *it;
	struct dp_stream *st;
	vr_merkle_t leaf, root;
	uint8_t *chunks = NULL;
	json_t *err, *hexes;
	uint64_t next, n_chunks = 0;
	struct vr_rec r;
	int rc;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (from < 0 || to < 0 || chunk < 0 || (chunk & (chunk - 1)))
		return fail(EINVAL, "\"from\" and \"to\" must be LSNs, \"chunk\" a power of two");
	from = from ? from : 1;
	chunk = chunk ? chunk : 4096;
	if (to && to < from)
		return fail(EINVAL, "\"to\" (%lld) is before \"from\" (%lld)", to, from);
	if (to && (uint64_t)(to - from) / (uint64_t)chunk >= DIGEST_CHUNKS_MAX)
		return fail(E2BIG,
		            "%lld records are more than %d chunks of %lld: ask with a larger chunk",
		            to - from + 1, DIGEST_CHUNKS_MAX, chunk);
	if ((uint64_t)from <= atomic_load(&st->trim_lsn))
		return fail(ERANGE, "the log holds LSN %llu and on, not %lld (trimmed)",
		            (unsigned long long)atomic_load(&st->trim_lsn) + 1, from);
	chunks = malloc((size_t)DIGEST_CHUNKS_MAX * VR_MERKLE_SIZE);
	it = chunks ? vr_log_iter_open(dp->log, &st->id, (uint64_t)from) : NULL;
	if (!it) {
		rc = errno;
		free(chunks);
		return fail(rc, "cannot read the log: %s", strerror(rc));
	}
	vr_merkle_acc_init(&acc);
	next = (uint64_t)from;
	while ((!to || next <= (uint64_t)to) && (rc = vr_log_iter_next(it, &r)) == 1) {
		if (r.lsn != next) {
			rc = -EUCLEAN;
			break;
		}
		if (acc.n == 0 && n_chunks == DIGEST_CHUNKS_MAX) {
			rc = -E2BIG;
			break;
		}
		vr_merkle_record(r.lsn, r.type, r.op, r.payload, r.payload_size, leaf);
		vr_merkle_acc_add(&acc, leaf);
		if (acc.n == (uint64_t)chunk) {
			vr_merkle_acc_root(&acc, chunks + n_chunks++ * VR_MERKLE_SIZE);
			vr_merkle_acc_init(&acc);
		}
		next++;
	}
	vr_log_iter_close(it);
	if (acc.n)
		vr_merkle_acc_root(&acc, chunks + n_chunks++ * VR_MERKLE_SIZE);
	if (rc < 0 || next == (uint64_t)from) {
		free(chunks);
		if (rc == -E2BIG)
			return fail(E2BIG,
			            "the log holds more than %d chunks of %lld from LSN %lld: ask "
			            "with a larger chunk",
			            DIGEST_CHUNKS_MAX, chunk, from);
		if (rc < 0)
			return fail(-rc, "cannot read the log at LSN %llu: %s",
			            (unsigned long long)next, vr_rec_strerror(rc));
		return fail(ERANGE, "the log has no LSN %lld", from);
	}
	hexes = json_array();
	for (uint64_t i = 0; i < n_chunks; i++) {
		vr_merkle_hex(chunks + i * VR_MERKLE_SIZE, hex);
		json_array_append_new(hexes, json_string(hex));
	}
	vr_merkle_root(chunks, n_chunks, root);
	free(chunks);
	vr_merkle_hex(root, hex);
	return ok(json_pack("{s:I, s:I, s:I, s:o, s:s}", "from", (json_int_t)from, "to",
	                    (json_int_t)(next - 1), "chunk", (json_int_t)chunk, "chunks", hexes,
	                    "root", hex));
}

static json_t *
op_stream_read(struct dp *dp, json_t *req)
{
	json_t *from = json_object_get(req, "from"), *max = json_object_get(req, "max"), *err,
	       *recs;
	struct dp_stream *st;
	struct vr_log_iter *it;
	struct vr_rec r;
	uint64_t next;
	long long n = 256;
	int rc = 0;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	if (!json_is_integer(from) || json_integer_value(from) < 1)
		return fail(EINVAL, "\"from\" must be an LSN (1 or more)");
	if (max && (!json_is_integer(max) || json_integer_value(max) < 1 ||
	            json_integer_value(max) > 4096))
		return fail(EINVAL, "\"max\" must be 1..4096");
	if (max)
		n = json_integer_value(max);
	next = (uint64_t)json_integer_value(from);
	it = vr_log_iter_open(dp->log, &st->id, next);
	if (!it)
		return fail(errno, "cannot read the log: %s", strerror(errno));
	recs = json_array();
	while (n-- > 0 && (rc = vr_log_iter_next(it, &r)) == 1) {
		char *pl = vr_hsm_b64(r.payload, r.payload_size);

		if (!pl) {
			rc = -ENOMEM;
			break;
		}
		json_array_append_new(recs,
		                      json_pack("{s:I, s:i, s:i, s:s}", "lsn", (json_int_t)r.lsn,
		                                "type", r.type, "op", r.op, "payload", pl));
		free(pl);
		next = r.lsn + 1;
	}
	vr_log_iter_close(it);
	if (rc < 0) {
		json_decref(recs);
		return fail(-rc, "cannot read the log: %s", vr_rec_strerror(rc));
	}
	return ok(json_pack("{s:o, s:I}", "records", recs, "next", (json_int_t)next));
}

static json_t *
op_stream_show(struct dp *dp, json_t *req)
{
	struct dp_stream *st;
	json_t *err;

	if (!(st = stream_req(dp, req, &err)))
		return err;
	return ok(stream_json(st));
}

static json_t *
op_stream_list(struct dp *dp, json_t *req)
{
	json_t *arr = json_array();
	const void *key;
	void *data;
	uint32_t it = 0;

	(void)req;
	while (rte_hash_iterate(dp->streams, &key, &data, &it) >= 0)
		json_array_append_new(arr, stream_json(data));
	return ok(json_pack("{s:o}", "streams", arr));
}

json_t *dp_stats_json(struct dp *dp);

/*
 * What the process holds: DPDK's heap (tables, pools), the C heap (streams and their keys,
 * JSON), the crypto sessions in use and their bytes (in their own mempool), the stream table
 * (in DPDK's heap, allocated whole at start for its capacity) and the streams configured. The
 * 100 000-stream benchmark's memory per stream is the growth of both heaps and of the sessions
 * per stream added.
 */
static json_t *
memory_json(struct dp *dp)
{
	struct rte_malloc_socket_stats ms;
	struct rte_mempool *sp = dp->crypto.sess_mp;
	unsigned sessions = sp ? rte_mempool_in_use_count(sp) : 0;
	uint64_t elt = sp ? sp->header_size + sp->elt_size + sp->trailer_size : 0;

	struct mallinfo2 mi = mallinfo2();

	rte_malloc_get_socket_stats((int)rte_socket_id(), &ms);
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "heap_bytes",
	    (json_int_t)ms.heap_allocsz_bytes, "c_heap_bytes", (json_int_t)mi.uordblks, "sessions",
	    (json_int_t)sessions, "session_bytes", (json_int_t)(sessions * elt),
	    "stream_table_bytes", (json_int_t)dp->hash_bytes, "streams",
	    (json_int_t)rte_hash_count(dp->streams),
	    /* this site's batches (open and in the windows), and every other job (dp.h) */
	    "batch_jobs", (json_int_t)rte_mempool_in_use_count(dp->job_mp), "batch_jobs_max",
	    (json_int_t)dp->job_mp->size, "other_jobs",
	    (json_int_t)rte_mempool_in_use_count(dp->aux_mp), "other_jobs_max",
	    (json_int_t)dp->aux_mp->size);
}

json_t *
dp_stats_json(struct dp *dp)
{
	json_t *c = json_object(), *h = json_array(), *ch = json_array();

	for (unsigned i = 0; i < DP_N_COUNTERS; i++)
		json_object_set_new(c, counter_names[i],
		                    json_integer((json_int_t)dp_counter(dp, i)));
	/* Port teardowns on EAL's interrupt thread that waited for the workers (dp_guard.h). */
	json_object_set_new(c, "port_unmaps_waited", json_integer((json_int_t)dp_guard_waits()));
	json_t *ws = json_array();

	for (unsigned i = 0; i < DP_HIST; i++) {
		json_array_append_new(h, json_integer((json_int_t)dp_lat_hist(dp, i)));
		json_array_append_new(ch, json_integer((json_int_t)atomic_load_explicit(
		                              &dp->commit_hist[i], memory_order_relaxed)));
	}
	/* Each worker lcore's own figures (D9): its non-zero counters and its poll loops. */
	for (unsigned w = 0; w < dp->n_workers; w++) {
		const struct dp_stats *b = &dp->stats[DP_STATS_CTL + 1 + w];
		json_t *o = json_object();

		for (unsigned i = 0; i < DP_N_COUNTERS; i++) {
			uint64_t v = atomic_load_explicit(&b->c[i], memory_order_relaxed);

			if (v)
				json_object_set_new(o, counter_names[i],
				                    json_integer((json_int_t)v));
		}
		json_object_set_new(o, "loops", json_integer((json_int_t)atomic_load(&b->loops)));
		json_array_append_new(ws, o);
	}
	return json_pack("{s:o, s:o, s:o, s:I, s:I, s:o, s:o}", "counters", c,
	                 "ack_latency_log2_us", h, "commit_log2_us", ch, "commit_max_us",
	                 (json_int_t)atomic_load(&dp->commit_max_us), "loops",
	                 (json_int_t)dp_loops(dp), "workers", ws, "memory", memory_json(dp));
}

static json_t *
op_stats(struct dp *dp, json_t *req)
{
	(void)req;
	return ok(dp_stats_json(dp));
}

static json_t *
op_ping(struct dp *dp, json_t *req)
{
	(void)req;
	char boot[17];

	snprintf(boot, sizeof(boot), "%016llx", (unsigned long long)dp->boot);
	return ok(json_pack("{s:i, s:s}", "site", dp->conf.site, "boot", boot));
}

static const struct {
	const char *name;
	json_t *(*fn)(struct dp *, json_t *);
} ops[] = {
    {"ping", op_ping},
    {"stream.add", op_stream_add},
    {"key.set", op_key_set},
    {"key.install", op_key_install},
    {"stream.rekey", op_stream_rekey},
    {"stream.members", op_stream_members},
    {"stream.append", op_stream_append},
    {"stream.show", op_stream_show},
    {"stream.list", op_stream_list},
    {"stream.read", op_stream_read},
    {"stream.digest", op_stream_digest},
    {"stream.keys", op_stream_keys},
    {"stream.close", op_stream_close},
    {"stats", op_stats},
};

static json_t *
handle(struct dp *dp, const char *msg, size_t n)
{
	json_error_t je;
	json_t *req = json_loadb(msg, n, 0, &je), *res = NULL;
	const char *op;

	if (!json_is_object(req)) {
		json_decref(req);
		return fail(EINVAL, "a request is a JSON object: %s", je.text);
	}
	op = json_string_value(json_object_get(req, "op"));
	for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(op, ops[i].name))
			res = ops[i].fn(dp, req);
	if (!res)
		res = fail(ENOSYS, "unknown op \"%s\"", op ? op : "(none)");
	json_decref(req);
	return res;
}

static bool
admitted(struct dp *dp, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return false;
	for (unsigned i = 0; i < dp->conf.n_uids; i++)
		if (dp->conf.uids[i] == cr.uid)
			return true;
	vr_warn("control", "refused a control connection from uid %ld", (long)cr.uid);
	return false;
}

int
dp_ctl_serve(struct dp *dp)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd fds[2 + MAX_CLIENTS];
	unsigned n = 2;
	int lfd;

	if (strlen(dp->conf.control) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, dp->conf.control);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(sa.sun_path, 0660) ||
	    listen(lfd, 16)) {
		int e = errno;

		close(lfd);
		return -e;
	}
	fds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	fds[1] = (struct pollfd){.fd = dp->ctl_wake, .events = POLLIN};
	while (!atomic_load(&dp->quit)) {
		int r = poll(fds, n, 200);

		if (r <= 0)
			continue;
		if (fds[1].revents & POLLIN)
			worker_msgs(dp);
		if ((fds[0].revents & POLLIN)) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0 && (n == 2 + MAX_CLIENTS || !admitted(dp, c)))
				close(c);
			else if (c >= 0)
				fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
		}
		for (unsigned i = 2; i < n; i++) {
			char *msg = NULL, *out;
			size_t len;
			json_t *res;

			if (!fds[i].revents)
				continue;
			if (!(fds[i].revents & POLLIN) || vr_hsm_recv(fds[i].fd, &msg, &len)) {
				close(fds[i].fd);
				fds[i--] = fds[--n];
				continue;
			}
			/* key.set carries a payload key: every buffer is wiped when freed. */
			res = handle(dp, msg, len);
			vr_hsm_wipe_free(msg);
			out = json_dumps(res, JSON_COMPACT);
			json_decref(res);
			if (!out || vr_hsm_send(fds[i].fd, out, strlen(out))) {
				close(fds[i].fd);
				fds[i--] = fds[--n];
			}
			vr_hsm_wipe_free(out);
		}
	}
	for (unsigned i = 2; i < n; i++)
		close(fds[i].fd);
	close(lfd);
	dp_keys_close();
	unlink(sa.sun_path);
	for (unsigned i = 0; i < n_retired; i++)
		dp_key_free(dp, retired[i]);
	free(retired);
	return 0;
}
