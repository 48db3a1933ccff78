/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A worker lcore: polls its rx queue of the LAN and WAN ports, the rings on which the other
 * workers pass it the datagrams of its streams, and its completion ring from the log writer.
 *
 * Origin (this site is the stream's primary):
 *   ingest frame -> record (LSN) appended to the stream's open batch
 *   -> batch closes (size, count or time) -> log writer: entropy chain and checksum -> durable
 *   -> each producer acked with its LSN; the batch sealed (fresh nonce) and sent to every member;
 *      kept in the stream's window until every member acknowledged it, resent (sealed again
 *      under a fresh nonce) on timeout or gap report.
 * Receiver (another site is the primary):
 *   WAN batch -> peer address, stream, key, replay check -> open (tag) -> replay accept
 *   -> LSN order (a hole: gap report; wholly old: ack again) -> log writer -> durable
 *   -> cumulative WAN ack to the primary; records delivered to the local consumer.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_udp.h>

#include "dp.h"
#include "dp_net.h"
#include "vr_msg.h"

enum { BURST = 32, TXQ = 256, DONE_BURST = 128 };

struct txq {
	uint16_t port;
	uint16_t queue;         /* the worker's own tx queue ... */
	struct rte_ring *relay; /* ... or, without one, the ring to the worker that sends */
	uint16_t n;
	struct rte_mbuf *m[TXQ];
};

/* The receiver's reorder stash (struct worker): batches, and their lifetime in rtos. */
enum { OOO_MAX = 512, OOO_TTL_RTO = 8 };

struct worker {
	struct dp *dp;
	unsigned idx; /* 0..n_workers-1: its rx and tx queues, crypto queue pair, rings */
	struct dp_stats *s;
	struct txq lan_tx, wan_tx;
	struct dp_stream *open_list; /* streams with a batch being filled */
	struct dp_stream **win;      /* origin streams with batches in their window */
	unsigned n_win, cap_win;
	struct dp_stream **rk; /* origin streams rotating their key */
	unsigned n_rk, cap_rk;
	struct dp_stream **cur; /* origin streams with member acks to save */
	unsigned n_cur, cap_cur;
	struct dp_stream **sess; /* streams whose keys hold crypto sessions */
	unsigned n_sess, cap_sess, sess_i;
	uint64_t sess_idle, next_sess;
	uint64_t cursor_every;
	uint64_t next_scan, scan_every, rto, max_wait;
	uint64_t next_due; /* no open batch is due before this (TSC), while open_list */
	uint64_t next_arp, next_win;
	uint64_t now;
	/*
	 * Receiver: authentic batches that came after a hole (reordered, or their predecessor was
	 * lost), kept until the hole fills, so a reordering WAN costs no resends of what arrived.
	 * At most OOO_MAX over all of the worker's streams, each for at most OOO_TTL_RTO x rto.
	 */
	struct dp_job *ooo[OOO_MAX];
	unsigned n_ooo;
	EVP_MAC_CTX *mac; /* the WAN acks' tags (vr_wire_wack_tag) */
};

/* Appends st to a growable list of streams the worker scans; -ENOMEM leaves it unchanged. */
static int
list_add(struct dp_stream ***list, unsigned *n, unsigned *cap, struct dp_stream *st)
{
	if (*n == *cap) {
		unsigned c = *cap ? *cap * 2 : 64;
		struct dp_stream **l = realloc(*list, c * sizeof(*l));

		if (!l)
			return -ENOMEM;
		*list = l;
		*cap = c;
	}
	(*list)[(*n)++] = st;
	return 0;
}

/* --- crypto sessions --- */

/* The key's crypto session: made from its raw key on first use, and after it idled. */
static void *
key_sess(struct worker *w, struct dp_stream *st, struct dp_key *k)
{
	k->used = w->now;
	if (vr_likely(k->sess != NULL))
		return k->sess;
	k->sess = dp_crypto_session(&w->dp->crypto, k->raw, k->seal);
	if (!k->sess) {
		DP_INC(w->s, session_failed);
		return NULL;
	}
	/* Out of memory for the list: the session stays until the key goes. */
	if (!st->sessions && !list_add(&w->sess, &w->n_sess, &w->cap_sess, st))
		st->sessions = true;
	return k->sess;
}

/* Frees k's session if it idled; true while k still holds one. */
static bool
sess_idle(struct worker *w, struct dp_key *k)
{
	if (!k || !k->sess)
		return false;
	if (w->now - k->used < w->sess_idle)
		return true;
	dp_crypto_session_free(&w->dp->crypto, k->sess);
	k->sess = NULL;
	DP_INC(w->s, sessions_idled);
	return false;
}

/*
 * Gives back the sessions of keys idle for [crypto] session_idle_ms: a few hundred streams a
 * call, the whole list once per quarter of that. A retired key's session goes with the key
 * (control frees both after a grace period, when no worker can reach it).
 */
static void
scan_sessions(struct worker *w)
{
	for (unsigned budget = 256; budget && w->now >= w->next_sess; budget--) {
		struct dp_stream *st;
		bool live;

		if (w->sess_i >= w->n_sess) {
			w->sess_i = 0;
			w->next_sess = w->now + w->sess_idle / 4;
			return;
		}
		st = w->sess[w->sess_i];
		live = sess_idle(w, atomic_load_explicit(&st->key, memory_order_acquire));
		live |= sess_idle(w, atomic_load_explicit(&st->prev_key, memory_order_acquire));
		if (st->rekey)
			live |= sess_idle(w, st->rekey->key);
		if (live) {
			w->sess_i++;
		} else {
			st->sessions = false;
			w->sess[w->sess_i] = w->sess[--w->n_sess];
		}
	}
}

/* --- transmit --- */

/*
 * Sends what the queue holds; what the port does not take now stays queued for the next
 * round (a full link slows us down instead of losing frames), up to TXQ frames.
 */
static void
tx_flush(struct worker *w, struct txq *q)
{
	unsigned sent = 0;

	if (!q->n)
		return;
	if (q->relay) {
		sent = rte_ring_sp_enqueue_burst(q->relay, (void **)q->m, q->n, NULL);
	} else {
		sent = rte_eth_tx_burst(q->port, q->queue, q->m, q->n);
		DP_ADD(w->s, tx_packets, sent);
	}
	if (sent && sent < q->n)
		memmove(q->m, q->m + sent, (q->n - sent) * sizeof(q->m[0]));
	q->n = (uint16_t)(q->n - sent);
}

static void
tx(struct worker *w, struct txq *q, struct rte_mbuf *m)
{
	if (q->n == TXQ)
		tx_flush(w, q);
	if (q->n == TXQ) {
		DP_INC(w->s, tx_dropped);
		rte_pktmbuf_free(m);
		return;
	}
	q->m[q->n++] = m;
}

/* A datagram from port p to (dmac, dip, dport) of len payload bytes at *pl. */
static struct rte_mbuf *
udp_new(struct worker *w, const struct dp_port *p, const struct rte_ether_addr *dmac, uint32_t dip,
        uint16_t dport, uint16_t len, uint8_t **pl)
{
	struct dp_endpoint src = {.mac = p->mac, .ip = p->ip, .udp = p->udp};
	struct dp_endpoint dst = {.mac = *dmac, .ip = dip, .udp = dport};
	struct rte_mbuf *m = dp_udp_new(w->dp->pkt_mp, &src, &dst, len, pl);

	if (!m)
		DP_INC(w->s, no_mbuf);
	return m;
}

static void to_ctl(struct worker *w, struct dp_msg *m);

static void
send_ingest_ack_to(struct worker *w, const struct dp_stream *st, const struct dp_ackto *to,
                   int status, uint64_t lsn, unsigned sites)
{
	struct vr_ack a = {
	    .kind = status ? VR_WIRE_NACK : VR_WIRE_ACK,
	    .producer = to->producer,
	    .producer_seq = to->producer_seq,
	    .account = st ? st->id.account : 0,
	    .vault = st ? st->id.vault : 0,
	    .status = (uint16_t)(status < 0 ? -status : status),
	    .sites = (uint8_t)(status ? 0 : sites),
	    .lsn = lsn,
	};
	uint8_t *pl;
	struct rte_mbuf *m;

	if (!to->port) {
		/* control's own record (stream.append, stream.members) */
		struct dp_msg *cm = calloc(1, sizeof(*cm));

		if (!cm) {
			vr_err("dataplane", "out of memory: control's append %llu is not answered",
			       (unsigned long long)to->producer_seq);
			return;
		}
		*cm = (struct dp_msg){.kind = DP_MSG_APPENDED,
		                      .status = status,
		                      .token = to->producer_seq,
		                      .lsn = lsn};
		to_ctl(w, cm);
		return;
	}
	m = udp_new(w, &w->dp->lan, &to->mac, to->ip, to->port, VR_WIRE_ACK_SIZE, &pl);
	if (!m)
		return;
	vr_wire_ack_encode(&a, pl, VR_WIRE_ACK_SIZE);
	tx(w, &w->lan_tx, m);
	if (status)
		DP_INC(w->s, nacks_sent);
	else
		DP_INC(w->s, acks_sent);
}

/* A nack (status), or an ack of a record durable here only. */
static void
send_ingest_ack(struct worker *w, const struct dp_stream *st, const struct dp_ackto *to, int status,
                uint64_t lsn)
{
	send_ingest_ack_to(w, st, to, status, lsn, 1);
}

/* --- peers and ARP --- */

static struct dp_peer *
peer_by_site(struct dp *dp, uint16_t site)
{
	for (unsigned i = 0; i < dp->n_peers; i++)
		if (dp->peers[i].site == site)
			return &dp->peers[i];
	return NULL;
}

/* An ARP request for tip (tha NULL), or a reply to (tha, tip), out of port p. */
static void
arp_send(struct worker *w, const struct dp_port *p, struct txq *q, const struct rte_ether_addr *tha,
         uint32_t tip)
{
	struct rte_mbuf *m = dp_arp_new(w->dp->pkt_mp, &p->mac, p->ip, tha, tip);

	if (!m) {
		DP_INC(w->s, no_mbuf);
		return;
	}
	tx(w, q, m);
	if (tha)
		DP_INC(w->s, arp_replies);
	else
		DP_INC(w->s, arp_requests);
}

static void
learn(struct worker *w, struct dp_peer *pe, const struct rte_ether_addr *mac)
{
	uint64_t v = dp_l2_word(mac);

	if (!pe->fixed && atomic_load_explicit(&pe->l2, memory_order_relaxed) != v) {
		atomic_store_explicit(&pe->l2, v, memory_order_relaxed);
		DP_INC(w->s, arp_learned);
	}
}

static void
arp_in(struct worker *w, const struct dp_port *p, struct txq *q, struct rte_mbuf *m)
{
	struct dp *dp = w->dp;
	const struct rte_arp_hdr *arp;
	uint32_t sip, tip;
	bool mine = false;

	if (rte_pktmbuf_data_len(m) < sizeof(struct rte_ether_hdr) + sizeof(*arp)) {
		DP_INC(w->s, drop_arp);
		return;
	}
	arp = rte_pktmbuf_mtod_offset(m, const struct rte_arp_hdr *, sizeof(struct rte_ether_hdr));
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4) {
		DP_INC(w->s, drop_arp);
		return;
	}
	sip = rte_be_to_cpu_32(arp->arp_data.arp_sip);
	tip = rte_be_to_cpu_32(arp->arp_data.arp_tip);
	for (unsigned i = 0; i < dp->n_peers; i++)
		if (p == &dp->wan && dp->peers[i].ip == sip) {
			learn(w, &dp->peers[i], &arp->arp_data.arp_sha);
			mine = true;
		}
	if (p == &dp->lan && dp->consumer.ip && dp->consumer.ip == sip) {
		learn(w, &dp->consumer, &arp->arp_data.arp_sha);
		mine = true;
	}
	if (tip == p->ip && arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REQUEST)) {
		arp_send(w, p, q, &arp->arp_data.arp_sha, sip);
		mine = true;
	}
	if (!mine)
		DP_INC(w->s, drop_arp);
}

static void
arp_resolve(struct worker *w)
{
	struct dp *dp = w->dp;
	struct rte_ether_addr mac;

	/* One worker asks; whichever reads the answer learns it. */
	if (w->idx || w->now < w->next_arp)
		return;
	w->next_arp = w->now + dp->hz / 10;
	for (unsigned i = 0; i < dp->n_peers; i++)
		if (!dp_peer_mac(&dp->peers[i], &mac))
			arp_send(w, &dp->wan, &w->wan_tx, NULL, dp->peers[i].ip);
	if (dp->consumer.ip && !dp_peer_mac(&dp->consumer, &mac))
		arp_send(w, &dp->lan, &w->lan_tx, NULL, dp->consumer.ip);
}

/* --- origin: batches --- */

static int
log_push(struct worker *w, struct dp_job *j)
{
	/* The log ring holds every job of the pool: it cannot be full. */
	if (rte_ring_enqueue(w->dp->log_ring, j)) {
		vr_err("dataplane", "log ring full: job pool and ring sizes disagree");
		return -ENOBUFS;
	}
	return 0;
}

static int send_batch(struct worker *w, struct dp_stream *st, struct dp_job *j, uint32_t mask);

static void
close_batch(struct worker *w, struct dp_stream *st)
{
	struct dp_job *j = st->open;

	if (!j)
		return;
	st->open = NULL;
	vr_batch_reset(&st->b);
	if (vr_unlikely(w->dp->conf.seal_only)) {
		/* The seal path alone (a benchmark): straight to the members, nothing kept. */
		if (st->n_members)
			send_batch(w, st, j, (1u << st->n_members) - 1);
		DP_ADD(w->s, records_sealed_only, j->n);
		dp_job_put(j);
		return;
	}
	if (log_push(w, j)) {
		for (unsigned i = 0; i < j->n; i++)
			send_ingest_ack(w, st, &j->acks[i], -EIO, 0);
		dp_job_put(j);
	}
}

static void
reserve_nonces(struct worker *w, struct dp_stream *st, struct dp_key *k)
{
	struct dp_job *j;

	if (k->reserving)
		return;
	j = dp_job_get(w->dp);
	if (!j) {
		DP_INC(w->s, no_mbuf);
		return;
	}
	j->kind = DP_JOB_RESERVE;
	j->st = st;
	j->key = k;
	j->reserve_limit = vr_nonce_next_limit(&k->nonce);
	k->reserving = true;
	if (log_push(w, j)) {
		k->reserving = false;
		dp_job_put(j);
	}
}

/* --- payload key rotation (D4) --- */

static void
to_ctl(struct worker *w, struct dp_msg *m)
{
	if (dp_msg_to_ctl(w->dp, m)) {
		vr_err("dataplane", "the control thread's queue is full: a key message is lost");
		free(m);
	}
}

/* Asks control for the stream's next key, once, while no rotation is under way. */
static void
ask_rekey(struct worker *w, struct dp_stream *st)
{
	struct dp_msg *m;

	if (st->rekey || st->rekey_asked || !w->dp->conf.hsm[0] || w->now < st->rekey_retry)
		return;
	if (!(m = calloc(1, sizeof(*m)))) {
		st->rekey_retry = w->now + w->dp->hz;
		return;
	}
	*m = (struct dp_msg){.kind = DP_MSG_REKEY, .st = st};
	if (dp_msg_to_ctl(w->dp, m)) {
		free(m);
		st->rekey_retry = w->now + w->dp->hz;
		return;
	}
	st->rekey_asked = true;
}

/* A key no longer the stream's: control frees it once no reservation job names it. */
static void
retire(struct worker *w, struct dp_key *k)
{
	struct dp_msg *m;

	k->retired = true;
	if (k->reserving)
		return; /* completions() retires it when the reservation is back */
	if (!(m = calloc(1, sizeof(*m)))) {
		vr_err("dataplane", "out of memory: key %u kept", k->id);
		return;
	}
	*m = (struct dp_msg){.kind = DP_MSG_RETIRE, .key = k};
	to_ctl(w, m);
}

/*
 * Sends member i the record of the stream's next key, sealed under the key it holds: the
 * current one, or the previous one once the origin seals under the next.
 */
static void
send_keyrec(struct worker *w, struct dp_stream *st, unsigned i)
{
	struct dp *dp = w->dp;
	struct dp_rekey *rk = st->rekey;
	struct dp_key *k = st->promoted ? atomic_load_explicit(&st->prev_key, memory_order_acquire)
	                                : atomic_load_explicit(&st->key, memory_order_acquire);
	struct dp_peer *pe = peer_by_site(dp, st->members[i].site);
	struct rte_ether_addr mac;
	struct vr_keyrec kr;
	struct vr_batch_hdr h;
	struct dp_aead op;
	struct rte_mbuf *m;
	uint8_t nonce[VR_NONCE_SIZE], *pl;
	uint64_t seq;
	uint16_t len;
	void *sess;
	int n;

	if (!k || !k->seal || i >= rk->n || rk->rec[i].site != st->members[i].site)
		return;
	if (!pe || !dp_peer_mac(pe, &mac)) {
		DP_INC(w->s, no_peer_mac);
		return;
	}
	n = vr_nonce_take(&k->nonce, &seq, nonce);
	if (vr_nonce_low(&k->nonce))
		reserve_nonces(w, st, k);
	if (n) {
		DP_INC(w->s, nonce_waits);
		return;
	}
	kr = (struct vr_keyrec){
	    .key_id = rk->key->id, .blob_size = rk->rec[i].blob_size, .blob = rk->rec[i].blob};
	len = (uint16_t)(VR_WIRE_BATCH_HDR + VR_WIRE_KEYREC_HDR + kr.blob_size + VR_WIRE_TAG);
	m = udp_new(w, &dp->wan, &mac, pe->ip, pe->udp, len, &pl);
	if (!m)
		return;
	n = vr_wire_keyrec_encode(&kr, pl + VR_WIRE_BATCH_HDR, len - VR_WIRE_BATCH_HDR);
	h = (struct vr_batch_hdr){
	    .kind = VR_WIRE_KEY,
	    .sender = dp->conf.site,
	    .account = st->id.account,
	    .vault = st->id.vault,
	    .primary = st->id.primary,
	    .key_id = k->id,
	    .sealed_size = (uint32_t)n,
	    .seq = seq,
	};
	if (n < 0 || vr_wire_batch_hdr_encode(&h, pl) < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	op = (struct dp_aead){
	    .m = m,
	    .data_off = (uint32_t)(pl + VR_WIRE_BATCH_HDR - rte_pktmbuf_mtod(m, uint8_t *)),
	    .len = (uint32_t)n,
	    .aad = pl,
	    .tag = pl + VR_WIRE_BATCH_HDR + n,
	};
	memcpy(op.iv, nonce, sizeof(op.iv));
	sess = key_sess(w, st, k);
	if (!sess || dp_crypto_run(&dp->crypto, (uint16_t)w->idx, sess, &op, 1) != 1) {
		DP_INC(w->s, seal_failed);
		rte_pktmbuf_free(m);
		return;
	}
	tx(w, &w->wan_tx, m);
	DP_INC(w->s, key_records_sent);
}

static void
send_keyrecs(struct worker *w, struct dp_stream *st)
{
	for (unsigned i = 0; i < st->n_members; i++)
		if (!(st->confirmed & (1u << i)))
			send_keyrec(w, st, i);
	st->rekey->deadline = w->now + w->rto;
}

/* The next key becomes the one batches are sealed under; the previous one is retired. */
static void
promote(struct worker *w, struct dp_stream *st)
{
	struct dp_key *old = dp_key_push(st, st->rekey->key);

	st->promoted = true;
	DP_INC(w->s, keys_promoted);
	if (old)
		retire(w, old);
}

/* Control made the next key (or could not: rekey NULL). */
static void
next_key(struct worker *w, struct dp_stream *st, struct dp_rekey *rk, bool promoted)
{
	st->rekey_asked = false;
	if (!rk) {
		st->rekey_retry = w->now + w->dp->hz;
		return;
	}
	if (st->rekey) {
		/* One rotation at a time: control never makes two (rekey_asked). */
		vr_err("dataplane", "a second next key (%u) for one stream: dropped", rk->key->id);
		retire(w, rk->key);
		free(rk);
		return;
	}
	st->rekey = rk;
	st->confirmed = 0;
	st->promoted = promoted;
	rk->since = w->now;
	if (list_add(&w->rk, &w->n_rk, &w->cap_rk, st)) {
		vr_err("dataplane", "out of memory: rotation dropped");
		st->rekey = NULL;
		free(rk);
		return;
	}
	send_keyrecs(w, st);
}

/*
 * Rotations under way: promote the next key once every member holds it (or after the grace
 * period), send the records again to those that did not answer, and end the rotation when
 * every member confirmed.
 */
static void
scan_rotations(struct worker *w)
{
	uint64_t grace = w->dp->hz * w->dp->conf.grace_ms / 1000;

	for (unsigned i = 0; i < w->n_rk;) {
		struct dp_stream *st = w->rk[i];
		uint32_t all = st->n_members ? (1u << st->n_members) - 1 : 0;

		if (!st->promoted && (st->confirmed == all || w->now - st->rekey->since >= grace))
			promote(w, st);
		if (st->promoted && st->confirmed == all) {
			free(st->rekey);
			st->rekey = NULL;
			w->rk[i] = w->rk[--w->n_rk];
			continue;
		}
		if (w->now >= st->rekey->deadline)
			send_keyrecs(w, st);
		i++;
	}
}

static void resend(struct worker *w, struct dp_stream *st, unsigned i, uint64_t from_lsn,
                   unsigned max);

/* A member proved it holds the next key: an ack tagged under it. */
static void
confirmed(struct worker *w, struct dp_stream *st, unsigned i)
{
	if (st->confirmed & (1u << i))
		return;
	st->confirmed |= 1u << i;
	DP_INC(w->s, keys_confirmed);
	/* Batches it could not open while it waited for the key go again now. */
	if (st->promoted && st->members[i].acked < st->durable_lsn)
		resend(w, st, i, st->members[i].acked + 1, 8);
}

/*
 * Seals the records of j into a new datagram and sends it to the members in mask (bit i:
 * st->members[i]). 0, or -EAGAIN when it could not be sent now (the timer tries again).
 */
static int
send_batch(struct worker *w, struct dp_stream *st, struct dp_job *j, uint32_t mask)
{
	struct dp *dp = w->dp;
	struct dp_key *k = atomic_load_explicit(&st->key, memory_order_acquire);
	struct vr_batch_hdr h;
	struct dp_aead op;
	struct rte_mbuf *m = NULL;
	uint8_t nonce[VR_NONCE_SIZE], *pl;
	uint64_t seq = 0;
	uint16_t len = (uint16_t)(VR_WIRE_BATCH_HDR + j->bytes + VR_WIRE_TAG);
	void *sess;
	int rc;

	if (!k)
		return -EAGAIN;
	rc = vr_nonce_take(&k->nonce, &seq, nonce);
	if (vr_nonce_low(&k->nonce))
		reserve_nonces(w, st, k);
	if (rc) {
		DP_INC(w->s, nonce_waits);
		return -EAGAIN;
	}
	if (vr_unlikely(vr_nonce_should_rekey(&k->nonce, w->now)))
		ask_rekey(w, st);
	h = (struct vr_batch_hdr){
	    .kind = VR_WIRE_DATA,
	    .sender = dp->conf.site,
	    .n_records = j->n,
	    .account = st->id.account,
	    .vault = st->id.vault,
	    .primary = st->id.primary,
	    .key_id = k->id,
	    .sealed_size = j->bytes,
	    .seq = seq,
	    .first_lsn = j->first_lsn,
	};
	for (unsigned i = 0; i < st->n_members; i++) {
		struct dp_member *mb = &st->members[i];
		struct rte_ether_addr mac;
		struct dp_peer *pe;
		struct rte_mbuf *c;

		if (!(mask & (1u << i)))
			continue;
		pe = peer_by_site(dp, mb->site);
		if (!pe || !dp_peer_mac(pe, &mac)) {
			DP_INC(w->s, no_peer_mac);
			continue;
		}
		if (!m) {
			m = udp_new(w, &dp->wan, &mac, pe->ip, pe->udp, len, &pl);
			if (!m)
				return -EAGAIN;
			vr_wire_batch_hdr_encode(&h, pl);
			memcpy(pl + VR_WIRE_BATCH_HDR, j->data, j->bytes);
			op = (struct dp_aead){
			    .m = m,
			    .data_off =
			        (uint32_t)(pl + VR_WIRE_BATCH_HDR - rte_pktmbuf_mtod(m, uint8_t *)),
			    .len = j->bytes,
			    .aad = pl,
			    .tag = pl + VR_WIRE_BATCH_HDR + j->bytes,
			};
			memcpy(op.iv, nonce, sizeof(op.iv));
			sess = key_sess(w, st, k);
			if (!sess ||
			    dp_crypto_run(&dp->crypto, (uint16_t)w->idx, sess, &op, 1) != 1) {
				DP_INC(w->s, seal_failed);
				rte_pktmbuf_free(m);
				return -EAGAIN;
			}
			DP_INC(w->s, batches_sealed);
			c = m;
		} else {
			struct rte_ether_hdr *eth;
			struct rte_ipv4_hdr *ip;
			struct rte_udp_hdr *udp;

			c = rte_pktmbuf_copy(m, dp->pkt_mp, 0, UINT32_MAX);
			if (!c) {
				DP_INC(w->s, no_mbuf);
				continue;
			}
			eth = rte_pktmbuf_mtod(c, struct rte_ether_hdr *);
			ip = (struct rte_ipv4_hdr *)(eth + 1);
			udp = (struct rte_udp_hdr *)(ip + 1);
			rte_ether_addr_copy(&mac, &eth->dst_addr);
			ip->dst_addr = rte_cpu_to_be_32(pe->ip);
			ip->hdr_checksum = 0;
			ip->hdr_checksum = rte_ipv4_cksum(ip);
			udp->dst_port = rte_cpu_to_be_16(pe->udp);
		}
		/* The first copy goes out last: the others are copied from it. */
		if (c != m)
			tx(w, &w->wan_tx, c);
		if (j->last_lsn > mb->sent)
			mb->sent = j->last_lsn;
		mb->deadline = w->now + w->rto;
		DP_INC(w->s, batches_sent);
	}
	if (!m)
		return -EAGAIN;
	tx(w, &w->wan_tx, m);
	st->batches++;
	return 0;
}

/* Puts st on the retransmit scan, once. */
static void
win_track(struct worker *w, struct dp_stream *st)
{
	/* Out of memory: the stream still retransmits on gap reports. */
	if (!st->on_win && list_add(&w->win, &w->n_win, &w->cap_win, st) == 0)
		st->on_win = true;
}

/* True while a member of origin stream st lacks some of what is durable here. */
static bool
members_behind(const struct dp_stream *st)
{
	for (unsigned m = 0; m < st->n_members; m++)
		if (st->members[m].acked < st->durable_lsn)
			return true;
	return false;
}

/*
 * Resends every windowed batch with records above from_lsn to member i; what is older than the
 * window (a member that was away, or a restart of this site) is read back from the log first.
 */
static void
resend(struct worker *w, struct dp_stream *st, unsigned i, uint64_t from_lsn, unsigned max)
{
	uint64_t win_first = st->win_head ? st->win_head->first_lsn : st->durable_lsn + 1, next = 0;
	unsigned n = 0;

	if (from_lsn < win_first) {
		struct dp_job *j;

		st->members[i].deadline = w->now + w->rto;
		if (st->members[i].reading || !(j = dp_job_get(w->dp)))
			return;
		j->kind = DP_JOB_READ;
		j->st = st;
		j->member = (uint8_t)i;
		j->read_from = from_lsn;
		st->members[i].reading = true;
		if (log_push(w, j)) {
			st->members[i].reading = false;
			dp_job_put(j);
		}
		return;
	}

	for (struct dp_job *j = st->win_head; j && n < max; j = j->next) {
		if (j->last_lsn < from_lsn)
			continue;
		if (send_batch(w, st, j, 1u << i))
			break;
		DP_INC(w->s, retransmits);
		n++;
		next = j->last_lsn + 1;
	}
	/* Recovery goes on, clocked by the member's acks, up to what was sent before. */
	st->members[i].recover = next && next <= st->members[i].sent ? next : 0;
	st->members[i].deadline = w->now + w->rto;
}

/*
 * Whom a durable origin batch is acked to now. Control's own records (port 0) are answered once
 * durable here, whatever the stream's mode: control waits for the members of a sync vault
 * itself, where it can say what it is waiting for. The producers of a sync stream are acked
 * when enough members hold the batch (sync_release).
 */
enum ack_to {
	ACK_ALL,       /* durable here, and nothing more is asked */
	ACK_CONTROL,   /* durable here, a sync stream: control's records only */
	ACK_PRODUCERS, /* held by enough members: the rest */
};

static bool
same_producer(const struct dp_ackto *a, const struct dp_ackto *b)
{
	return a->producer == b->producer && a->port == b->port && a->ip == b->ip &&
	       rte_is_same_ether_addr(&a->mac, &b->mac);
}

/* Acks the records of a durable origin batch that `to` names: durable at sites sites. */
static void
ack_producers(struct worker *w, struct dp_stream *st, struct dp_job *j, unsigned sites,
              enum ack_to to)
{
	unsigned acked = 0;
	uint64_t us;

	for (unsigned i = 0; i < j->n; i++) {
		const struct dp_ackto *a = &j->acks[i];
		bool control = !a->port;
		struct dp_producer *pr = NULL;

		if (!control)
			for (unsigned k = 0; k < DP_PRODUCERS && !pr; k++)
				if (st->prod[k].id == a->producer && st->prod[k].seq)
					pr = &st->prod[k];
		/* Durable here (the batch's first call): what a failed append goes back to. */
		if (pr && to != ACK_PRODUCERS && a->producer_seq > pr->logged_seq)
			pr->logged_seq = a->producer_seq;
		if ((to == ACK_CONTROL && !control) || (to == ACK_PRODUCERS && control))
			continue;
		if (pr && a->producer_seq > pr->durable_seq) {
			pr->durable_seq = a->producer_seq;
			pr->durable_lsn = j->first_lsn + i;
		}
		acked++;
		/*
		 * Acks are cumulative per producer: when the next record is the same producer's
		 * (a stream with one producer: all of them), its ack covers this one, so the batch
		 * sends one datagram a producer run instead of one a record.
		 */
		if (!control && i + 1 < j->n && same_producer(a, &j->acks[i + 1]))
			continue;
		send_ingest_ack_to(w, st, a, 0, j->first_lsn + i, sites);
	}
	DP_ADD(w->s, records_acked, acked);
	if (to == ACK_CONTROL)
		return; /* the batch's latency counts when its producers are acked */
	us = (w->now - j->t_open) * 1000000 / w->dp->hz;
	dp_count(&w->s->lat_hist[dp_hist_bucket(us)], j->n);
}

/*
 * A sync stream: the highest LSN that enough members hold (the sync-th highest acked LSN). A
 * member set that shrank below st->sync asks for all of them.
 */
static uint64_t
sync_held(const struct dp_stream *st)
{
	unsigned need = RTE_MIN((unsigned)st->sync, (unsigned)st->n_members), n = 0;
	uint64_t top[VR_REC_MAX_MEMBERS];

	if (!need)
		return UINT64_MAX;
	for (unsigned i = 0; i < st->n_members; i++) {
		unsigned k = n++;

		for (; k && top[k - 1] < st->members[i].acked; k--)
			top[k] = top[k - 1];
		top[k] = st->members[i].acked;
	}
	return top[need - 1];
}

/* A sync stream (X1): acks the producers of the window's batches held now, oldest first. */
static void
sync_release(struct worker *w, struct dp_stream *st)
{
	unsigned need = RTE_MIN((unsigned)st->sync, (unsigned)st->n_members);
	uint64_t held;

	if (!st->sync)
		return;
	held = sync_held(st);
	for (struct dp_job *j = st->win_head; j && j->last_lsn <= held; j = j->next)
		if (!j->synced) {
			j->synced = true;
			ack_producers(w, st, j, 1 + need, ACK_PRODUCERS);
		}
}

static void
win_release(struct worker *w, struct dp_stream *st)
{
	uint64_t low = UINT64_MAX;

	sync_release(w, st);
	for (unsigned i = 0; i < st->n_members; i++)
		if (st->members[i].acked < low)
			low = st->members[i].acked;
	while (st->win_head && st->win_head->last_lsn <= low) {
		struct dp_job *j = st->win_head;

		st->win_head = j->next;
		if (!st->win_head)
			st->win_tail = NULL;
		st->win_n--;
		dp_job_put(j);
	}
}

static void
origin_done(struct worker *w, struct dp_stream *st, struct dp_job *j)
{
	if (j->status || j->epoch != st->epoch) {
		int why = j->status ? j->status : -EIO;

		if (j->status && j->epoch == st->epoch) {
			/* Nothing after the failure is durable: start again from the log's state.
			 */
			DP_INC(w->s, log_failed);
			st->epoch++;
			if (st->open) {
				for (unsigned i = 0; i < st->open->n; i++)
					send_ingest_ack(w, st, &st->open->acks[i], why, 0);
				dp_job_put(st->open);
				st->open = NULL;
				vr_batch_reset(&st->b);
			}
			st->next_lsn = st->durable_lsn + 1;
			/*
			 * Their frames after it are not in the log: each producer sends them
			 * again (one with nothing logged gives its slot up and starts afresh).
			 */
			for (unsigned k = 0; k < DP_PRODUCERS; k++)
				st->prod[k].seq = st->prod[k].logged_seq;
		}
		for (unsigned i = 0; i < j->n; i++)
			send_ingest_ack(w, st, &j->acks[i], why, 0);
		dp_job_put(j);
		return;
	}
	st->durable_lsn = j->last_lsn;
	DP_ADD(w->s, records_logged, j->n);
	/* A sync stream acks its producers once enough members hold the batch (sync_release). */
	j->synced = !st->sync || !st->n_members;
	ack_producers(w, st, j, 1, j->synced ? ACK_ALL : ACK_CONTROL);
	if (!st->n_members) {
		dp_job_put(j);
		return;
	}
	j->next = NULL;
	if (st->win_tail)
		st->win_tail->next = j;
	else
		st->win_head = j;
	st->win_tail = j;
	st->win_n++;
	win_track(w, st);
	send_batch(w, st, j, (1u << st->n_members) - 1);
}

/*
 * Puts record r (its LSN the stream's next) into the stream's open batch, to be answered to
 * `to` once durable. 0 (*full: the batch is to be closed now), or -errno (counted; nothing
 * taken; the caller answers).
 */
static int
take_record(struct worker *w, struct dp_stream *st, struct vr_rec *r, const struct dp_ackto *to,
            bool *full)
{
	struct dp *dp = w->dp;
	enum vr_batch_verdict v = vr_batch_offer(&st->b, (uint32_t)vr_rec_size(r), w->now);
	int rc;

	if (v == VR_BATCH_TOO_BIG) {
		DP_INC(w->s, ingest_too_big);
		return -EMSGSIZE;
	}
	if (v == VR_BATCH_FLUSH) {
		close_batch(w, st);
		v = vr_batch_offer(&st->b, (uint32_t)vr_rec_size(r), w->now);
	}
	if (!st->open) {
		st->open = dp_job_get_batch(dp);
		if (!st->open) {
			vr_batch_reset(&st->b);
			DP_INC(w->s, ingest_busy);
			return -EBUSY;
		}
		st->open->kind = DP_JOB_RECORDS;
		st->open->origin = true;
		st->open->st = st;
		st->open->epoch = st->epoch;
		st->open->first_lsn = st->next_lsn;
		st->open->t_open = w->now;
		if (!st->on_open_list) {
			st->on_open_list = true;
			st->next_open = w->open_list;
			w->open_list = st;
		}
		if (w->now + w->max_wait < w->next_due)
			w->next_due = w->now + w->max_wait;
	}
	/* Unfinished: the log writer chains and checksums it (vr_log_append_as). */
	rc = vr_rec_encode(r, NULL, st->open->data + st->open->bytes,
	                   dp->job_bytes - st->open->bytes);
	if (rc < 0) {
		/* The batcher's bound and the job's room agree, so only a bad field gets here. */
		st->b.n--;
		st->b.bytes -= (uint32_t)vr_rec_size(r);
		DP_INC(w->s, ingest_bad);
		return rc;
	}
	st->open->acks[st->open->n++] = *to;
	st->open->bytes += (uint32_t)rc;
	st->open->last_lsn = st->next_lsn++;
	st->records++;
	st->bytes += r->payload_size;
	*full = v == VR_BATCH_ADDED_FULL;
	return 0;
}

static void
ingest(struct worker *w, const struct rte_ether_hdr *eth, const struct rte_ipv4_hdr *ip,
       const struct rte_udp_hdr *udp, const uint8_t *pl, size_t n)
{
	struct dp *dp = w->dp;
	struct dp_ackto to;
	struct vr_ingest f;
	struct dp_stream *st;
	struct dp_producer *pr = NULL;
	struct vr_rec r;
	bool full;
	int rc = vr_wire_ingest_parse(pl, n, &f);

	if (rc) {
		if (rc == -VR_WIRE_ERR_CHECKSUM)
			DP_INC(w->s, ingest_bad_crc);
		else
			DP_INC(w->s, ingest_bad);
		return; /* nothing in it can be trusted enough to answer */
	}
	to = (struct dp_ackto){
	    .producer = f.producer,
	    .producer_seq = f.producer_seq,
	    .ip = rte_be_to_cpu_32(ip->src_addr),
	    .port = rte_be_to_cpu_16(udp->src_port),
	};
	rte_ether_addr_copy(&eth->src_addr, &to.mac);
	st = dp_stream_find(dp, f.account, f.vault, dp->conf.site);
	if (!st || atomic_load_explicit(&st->closed, memory_order_relaxed)) {
		struct dp_stream named = {.id = {.account = f.account, .vault = f.vault}};

		if (st)
			DP_INC(w->s, ingest_closed);
		else
			DP_INC(w->s, ingest_unknown_stream);
		send_ingest_ack(w, &named, &to, -ENOENT, 0);
		return;
	}
	/*
	 * A retransmitted frame is never appended again. Once durable it is answered with the
	 * producer's latest durable frame (acks are cumulative per producer and stream, so an
	 * ack lost on the LAN costs nothing); while still on its way to the disk, its own ack
	 * will come.
	 */
	if (dp->conf.seal_only)
		goto take; /* a benchmark replaying one pcap forever: no producer order, no acks */
	for (unsigned k = 0; k < DP_PRODUCERS; k++)
		if (st->prod[k].id == f.producer && st->prod[k].seq) {
			pr = &st->prod[k];
			break;
		}
	if (pr && f.producer_seq <= pr->seq) {
		DP_INC(w->s, ingest_repeat);
		/* A sync stream restarted: acked once its members hold it again (sync_held). */
		if (f.producer_seq <= pr->durable_seq &&
		    (!st->sync || pr->durable_lsn <= sync_held(st))) {
			to.producer_seq = pr->durable_seq;
			send_ingest_ack(w, st, &to, 0, pr->durable_lsn);
		}
		return;
	}
	/* A producer this process does not know yet starts where it says all before was acked. */
	if (!pr && f.producer_seq != 1 && !(f.flags & VR_WIRE_F_RESUME)) {
		DP_INC(w->s, ingest_out_of_order);
		send_ingest_ack(w, st, &to, -ERANGE, 0);
		return;
	}
	/* A producer's frames are appended in its order: after a lost frame, it goes back. */
	if (pr && f.producer_seq != pr->seq + 1) {
		DP_INC(w->s, ingest_out_of_order);
		send_ingest_ack(w, st, &to, -ERANGE, pr->seq + 1);
		return;
	}
	if (st->win_n >= dp->conf.window) {
		DP_INC(w->s, ingest_busy);
		send_ingest_ack(w, st, &to, -EBUSY, 0);
		return;
	}
take:
	/* Field by field: zeroing the whole struct (members, entropy) costs more than the rest. */
	r.stream = st->id;
	r.lsn = st->next_lsn;
	r.origin = dp->conf.site;
	r.version = VR_REC_VERSION;
	r.type = f.rec_type;
	r.op = f.op;
	r.n_members = 0;
	r.payload_size = f.payload_size;
	r.payload = f.payload;
	if (f.rec_type != VR_REC_DATA || f.op != VR_REC_OP_PUT) {
		DP_INC(w->s, ingest_bad);
		send_ingest_ack(w, st, &to, -EPROTO, 0);
		return;
	}
	rc = take_record(w, st, &r, &to, &full);
	if (rc) {
		send_ingest_ack(w, st, &to, rc, 0);
		return;
	}
	if (!pr && !dp->conf.seal_only) {
		/* A new producer takes the slot of the least recent one. */
		pr = &st->prod[0];
		for (unsigned k = 1; k < DP_PRODUCERS; k++)
			if (st->prod[k].seq < pr->seq)
				pr = &st->prod[k];
		*pr = (struct dp_producer){.id = f.producer};
	}
	if (pr)
		pr->seq = f.producer_seq;
	DP_INC(w->s, ingest_frames);
	if (full)
		close_batch(w, st);
}

static void
scan_open(struct worker *w)
{
	struct dp_stream **pp = &w->open_list;

	if (w->now < w->next_scan)
		return;
	w->next_scan = w->now + w->scan_every;
	w->next_due = UINT64_MAX;
	while (*pp) {
		struct dp_stream *st = *pp;

		if (st->open && vr_batch_due(&st->b, w->now))
			close_batch(w, st);
		if (!st->open) {
			*pp = st->next_open;
			st->on_open_list = false;
			continue;
		}
		if (st->b.deadline < w->next_due)
			w->next_due = st->b.deadline;
		pp = &st->next_open;
	}
}

/* st has member acks to save: on the cursor list once (out of memory: at its next ack). */
static void
cursor_mark(struct worker *w, struct dp_stream *st)
{
	if (!st->cursor_dirty && !list_add(&w->cur, &w->n_cur, &w->cap_cur, st))
		st->cursor_dirty = true;
}

/*
 * Streams whose members acknowledged more: at most one cursor job per stream in flight and
 * per [log] cursor_ms, carrying every member's ack to the log writer (which saves them and
 * trims the log below the lowest).
 */
static void
scan_cursors(struct worker *w)
{
	for (unsigned i = 0; i < w->n_cur;) {
		struct dp_stream *st = w->cur[i];
		struct dp_job *j;

		if (st->cursor_busy || w->now < st->cursor_due || !(j = dp_job_get(w->dp))) {
			i++;
			continue;
		}
		j->kind = DP_JOB_CURSOR;
		j->st = st;
		j->n = st->n_members;
		for (unsigned m = 0; m < st->n_members; m++)
			vr_put_be64(j->data + 8 * m, st->members[m].acked);
		if (log_push(w, j)) {
			dp_job_put(j);
			i++;
			continue;
		}
		st->cursor_busy = true;
		st->cursor_dirty = false;
		st->cursor_due = w->now + w->cursor_every;
		w->cur[i] = w->cur[--w->n_cur];
	}
}

static void
scan_windows(struct worker *w)
{
	for (unsigned i = 0; i < w->n_win;) {
		struct dp_stream *st = w->win[i];

		/*
		 * Kept while a member is behind even with nothing in the window: after a restart
		 * the window is empty, and what a member lacks is read back from the log.
		 */
		if (!st->win_n && !members_behind(st)) {
			st->on_win = false;
			w->win[i] = w->win[--w->n_win];
			continue;
		}
		for (unsigned m = 0; m < st->n_members; m++) {
			struct dp_member *mb = &st->members[m];

			if (mb->acked >= st->durable_lsn || w->now < mb->deadline)
				continue;
			/*
			 * A timeout resends only the oldest unacknowledged batch, and backs off (to
			 * 64 x rto): the member's answer (an ack or a gap report) says what else it
			 * needs, so an overloaded link is not flooded with the whole window again.
			 */
			resend(w, st, m, mb->acked + 1, 4);
			mb->rto = mb->rto ? RTE_MIN(mb->rto * 2, w->rto * 64) : w->rto * 2;
			mb->deadline = w->now + mb->rto;
		}
		i++;
	}
}

/* --- WAN: acks at the origin --- */

static void
wan_ack_in(struct worker *w, const uint8_t *pl, size_t n)
{
	struct vr_wack a;
	struct dp_stream *st;
	struct dp_key *k;
	uint8_t tag[16];
	unsigned i;

	if (vr_wire_wack_parse(pl, n, &a) ||
	    !(st = dp_stream_find(w->dp, a.account, a.vault, a.primary)) || !st->origin) {
		DP_INC(w->s, wan_ack_bad);
		return;
	}
	k = dp_key_by_id(st, a.key_id);
	if (!k && st->rekey && st->rekey->key->id == a.key_id)
		k = st->rekey->key; /* a member that holds the next key already */
	if (!k) {
		DP_INC(w->s, wan_ack_bad);
		return;
	}
	vr_wire_wack_tag(w->mac, k->ack_key, pl, tag);
	if (CRYPTO_memcmp(tag, a.tag, sizeof(tag))) {
		DP_INC(w->s, wan_ack_forged);
		return;
	}
	for (i = 0; i < st->n_members && st->members[i].site != a.sender; i++)
		;
	if (i == st->n_members || a.lsn > st->durable_lsn) {
		DP_INC(w->s, wan_ack_bad);
		return;
	}
	DP_INC(w->s, wan_acks_rx);
	if (st->rekey && a.key_id == st->rekey->key->id)
		confirmed(w, st, i);
	if (a.lsn > st->members[i].acked) {
		struct dp_member *mb = &st->members[i];

		mb->acked = a.lsn;
		mb->deadline = w->now + w->rto;
		mb->rto = 0;
		win_release(w, st);
		cursor_mark(w, st);
		if (mb->recover)
			resend(w, st, i, RTE_MAX(mb->recover, a.lsn + 1), 8);
	}
	if (a.kind == VR_WIRE_WACK_GAP && w->now - st->members[i].last_gap > w->rto / 4) {
		st->members[i].last_gap = w->now;
		resend(w, st, i, a.lsn + 1, 8);
	}
}

/* --- WAN: batches at the receiver --- */

static void
send_wack(struct worker *w, struct dp_stream *st, uint8_t kind)
{
	struct dp *dp = w->dp;
	struct dp_key *k = atomic_load_explicit(&st->key, memory_order_acquire);
	struct dp_peer *pe = peer_by_site(dp, st->id.primary);
	struct rte_ether_addr mac;
	struct vr_wack a = {
	    .kind = kind,
	    .sender = dp->conf.site,
	    .account = st->id.account,
	    .vault = st->id.vault,
	    .primary = st->id.primary,
	    .lsn = st->durable_lsn,
	};
	struct rte_mbuf *m;
	uint8_t *pl;

	if (!k)
		return;
	if (!pe || !dp_peer_mac(pe, &mac)) {
		DP_INC(w->s, no_peer_mac);
		return;
	}
	a.key_id = k->id;
	m = udp_new(w, &dp->wan, &mac, pe->ip, pe->udp, VR_WIRE_WACK_SIZE, &pl);
	if (!m)
		return;
	vr_wire_wack_encode(&a, pl);
	vr_wire_wack_tag(w->mac, k->ack_key, pl, pl + VR_WIRE_WACK_MAC);
	tx(w, &w->wan_tx, m);
	st->last_ack_tsc = w->now;
	DP_INC(w->s, wan_acks_sent);
}

/*
 * An authentic key record (it opened under a key this site holds): a key this site holds
 * already is answered with an ack under the current key (the origin takes it as confirmation);
 * a newer one goes to control to be unwrapped, and the ack follows once it is installed.
 */
static void
keyrec_in(struct worker *w, struct dp_stream *st, const uint8_t *body, size_t n)
{
	struct dp_key *cur = atomic_load_explicit(&st->key, memory_order_acquire);
	struct vr_keyrec kr;
	struct dp_msg *m;

	if (vr_wire_keyrec_parse(body, n, &kr)) {
		DP_INC(w->s, wan_bad_records);
		return;
	}
	DP_INC(w->s, key_records_rx);
	if (cur && kr.key_id <= cur->id) {
		send_wack(w, st, VR_WIRE_WACK_ACK);
		return;
	}
	if (st->installing || !w->dp->conf.hsm[0])
		return;
	if (!(m = malloc(sizeof(*m)))) {
		DP_INC(w->s, no_mbuf);
		return;
	}
	*m = (struct dp_msg){
	    .kind = DP_MSG_KEYREC, .st = st, .key_id = kr.key_id, .blob_size = kr.blob_size};
	memcpy(m->blob, kr.blob, kr.blob_size);
	st->installing = true;
	if (dp_msg_to_ctl(w->dp, m)) {
		st->installing = false;
		free(m);
	}
}

/*
 * 0 if the records of an opened batch (size bytes from first_lsn) decode, belong to st, run in
 * LSN order and are n in number.
 */
static int
records_check(const struct dp_stream *st, const uint8_t *p, size_t size, uint64_t first_lsn,
              unsigned n)
{
	const uint8_t *end = p + size;
	uint64_t lsn = first_lsn;

	while (p < end) {
		struct vr_rec r;
		int sz = vr_rec_decode(p, (size_t)(end - p), &r);

		if (sz <= 0 || r.lsn != lsn || r.stream.account != st->id.account ||
		    r.stream.vault != st->id.vault || r.stream.primary != st->id.primary)
			return -EBADMSG;
		p += sz;
		lsn++;
	}
	return lsn - first_lsn == n ? 0 : -EBADMSG;
}

/*
 * Hands the records of a checked batch (size bytes, LSNs first_lsn..last_lsn, first_lsn <=
 * queued + 1) that are not queued yet to the log writer. 0 when some were; 1 when none were new
 * (stale); -errno when they could not be (no job: the sender resends).
 */
static int
records_apply(struct worker *w, struct dp_stream *st, const uint8_t *p, size_t size,
              uint64_t first_lsn, uint64_t last_lsn)
{
	const uint8_t *end = p + size;
	uint64_t expect = st->queued_lsn + 1;
	struct dp_job *j;

	if (last_lsn < expect)
		return 1;
	/* A batch that overlaps what is queued: skip its older records (records_check passed). */
	for (uint64_t lsn = first_lsn; lsn < expect; lsn++)
		p += vr_rec_decode(p, (size_t)(end - p), &(struct vr_rec){0});
	j = dp_job_get(w->dp);
	if (!j) {
		DP_INC(w->s, no_mbuf);
		return -ENOBUFS;
	}
	j->kind = DP_JOB_RECORDS;
	j->origin = false;
	j->st = st;
	j->epoch = st->epoch;
	j->bytes = (uint32_t)(end - p);
	j->first_lsn = expect;
	j->last_lsn = last_lsn;
	j->n = (uint16_t)(last_lsn - expect + 1);
	j->t_open = w->now;
	memcpy(j->data, p, j->bytes);
	if (log_push(w, j)) {
		dp_job_put(j);
		return -ENOBUFS;
	}
	st->queued_lsn = j->last_lsn;
	st->batches++;
	return 0;
}

/* Drops stash entry i (the last one takes its place). */
static void
ooo_drop(struct worker *w, unsigned i)
{
	dp_job_put(w->ooo[i]);
	w->ooo[i] = w->ooo[--w->n_ooo];
}

/*
 * Keeps a checked batch that came after a hole of st, unless the stash has it already or is
 * full of younger batches (then the sender's resend brings it again).
 */
static void
ooo_keep(struct worker *w, struct dp_stream *st, const uint8_t *p, size_t size, uint64_t first_lsn,
         unsigned n)
{
	uint64_t ttl = w->rto * OOO_TTL_RTO;
	struct dp_job *j;

	for (unsigned i = 0; i < w->n_ooo;) {
		struct dp_job *o = w->ooo[i];

		if (w->now - o->t_open > ttl || (o->st == st && o->last_lsn <= st->queued_lsn)) {
			ooo_drop(w, i);
			continue;
		}
		if (o->st == st && o->first_lsn == first_lsn)
			return; /* a duplicate */
		i++;
	}
	if (w->n_ooo == OOO_MAX || !(j = dp_job_get(w->dp)))
		return;
	j->st = st;
	j->first_lsn = first_lsn;
	j->last_lsn = first_lsn + n - 1;
	j->bytes = (uint32_t)size;
	j->t_open = w->now;
	memcpy(j->data, p, size);
	w->ooo[w->n_ooo++] = j;
	DP_INC(w->s, wan_held);
}

/* Applies what the stash holds for st now that its queued LSN moved, in LSN order. */
static void
ooo_drain(struct worker *w, struct dp_stream *st)
{
	bool moved = true;

	while (moved) {
		moved = false;
		for (unsigned i = 0; i < w->n_ooo;) {
			struct dp_job *o = w->ooo[i];

			if (o->st != st || o->first_lsn > st->queued_lsn + 1) {
				i++;
				continue;
			}
			if (records_apply(w, st, o->data, o->bytes, o->first_lsn, o->last_lsn) == 0)
				moved = true;
			ooo_drop(w, i);
		}
	}
}

static void
wan_batch_in(struct worker *w, struct rte_mbuf *m, uint32_t src_ip, uint8_t *pl, size_t n)
{
	struct dp *dp = w->dp;
	struct vr_batch_hdr h;
	struct dp_peer *pe;
	struct dp_stream *st;
	struct dp_key *k;
	struct dp_aead op;
	uint8_t *body;
	void *sess;

	DP_INC(w->s, wan_rx);
	if (vr_wire_batch_parse(pl, n, &h)) {
		DP_INC(w->s, wan_bad);
		return;
	}
	pe = peer_by_site(dp, h.sender);
	if (!pe || pe->ip != src_ip || h.sender != h.primary) {
		DP_INC(w->s, wan_foreign);
		return;
	}
	st = dp_stream_find(dp, h.account, h.vault, h.primary);
	if (!st || st->origin) {
		DP_INC(w->s, wan_unknown_stream);
		return;
	}
	k = dp_key_by_id(st, h.key_id);
	if (!k) {
		DP_INC(w->s, wan_unknown_key);
		return;
	}
	switch (vr_replay_check(&k->replay, h.seq)) {
	case VR_REPLAY_DUP:
		DP_INC(w->s, replay_dup);
		return;
	case VR_REPLAY_OLD:
		DP_INC(w->s, replay_old);
		return;
	case VR_REPLAY_OK:
		break;
	}
	op = (struct dp_aead){
	    .m = m,
	    .data_off = (uint32_t)(pl + VR_WIRE_BATCH_HDR - rte_pktmbuf_mtod(m, uint8_t *)),
	    .len = h.sealed_size,
	    .aad = pl,
	    .tag = pl + VR_WIRE_BATCH_HDR + h.sealed_size,
	};
	memcpy(op.iv, k->salt, VR_NONCE_SALT);
	vr_put_be64(op.iv + VR_NONCE_SALT, h.seq);
	sess = key_sess(w, st, k);
	if (!sess)
		return; /* counted: the sender sends it again */
	if (dp_crypto_run(&dp->crypto, (uint16_t)w->idx, sess, &op, 1) != 1) {
		DP_INC(w->s, open_failed);
		return;
	}
	vr_replay_accept(&k->replay, h.seq);
	if (h.kind == VR_WIRE_KEY) {
		keyrec_in(w, st, pl + VR_WIRE_BATCH_HDR, h.sealed_size);
		return;
	}
	/* Authentic, but its records must still decode, run in LSN order and fill it exactly. */
	body = pl + VR_WIRE_BATCH_HDR;
	if (records_check(st, body, h.sealed_size, h.first_lsn, h.n_records) ||
	    h.sealed_size > dp->job_bytes) {
		/* (A batch larger than this site's: a peer at a larger MTU.) */
		DP_INC(w->s, wan_bad_records);
		return;
	}
	if (h.first_lsn > st->queued_lsn + 1) {
		DP_INC(w->s, wan_gap);
		ooo_keep(w, st, body, h.sealed_size, h.first_lsn, h.n_records);
		if (w->now - st->last_ack_tsc > w->rto / 4)
			send_wack(w, st, VR_WIRE_WACK_GAP);
		return;
	}
	if (records_apply(w, st, body, h.sealed_size, h.first_lsn, h.first_lsn + h.n_records - 1) >
	    0) {
		DP_INC(w->s, wan_stale);
		if (w->now - st->last_ack_tsc > w->rto / 4)
			send_wack(w, st, VR_WIRE_WACK_ACK);
		return;
	}
	ooo_drain(w, st);
}

static void
deliver(struct worker *w, struct dp_job *j)
{
	struct dp *dp = w->dp;
	struct rte_ether_addr mac;

	if (!dp->consumer.ip || !dp_peer_mac(&dp->consumer, &mac))
		return;
	for (uint8_t *p = j->data; p < j->data + j->bytes;) {
		struct vr_rec r;
		int sz = vr_rec_decode(p, (size_t)(j->data + j->bytes - p), &r);
		struct rte_mbuf *m;
		uint8_t *pl;

		if (sz <= 0)
			break;
		m = udp_new(w, &dp->lan, &mac, dp->consumer.ip, dp->consumer.udp, (uint16_t)sz,
		            &pl);
		if (!m)
			break;
		memcpy(pl, p, (size_t)sz);
		tx(w, &w->lan_tx, m);
		DP_INC(w->s, delivered);
		p += sz;
	}
}

/* A received batch is durable; true when the stream's ack is due (sent by the caller). */
static bool
receiver_done(struct worker *w, struct dp_stream *st, struct dp_job *j)
{
	if (j->status || j->epoch != st->epoch) {
		if (j->epoch == st->epoch) {
			DP_INC(w->s, log_failed);
			st->epoch++;
			st->queued_lsn = st->durable_lsn;
		}
		dp_job_put(j);
		return false;
	}
	st->durable_lsn = j->last_lsn;
	st->records += j->n;
	st->bytes += j->bytes;
	DP_ADD(w->s, wan_applied, j->n);
	DP_ADD(w->s, records_logged, j->n);
	deliver(w, j);
	dp_job_put(j);
	return true;
}

/*
 * The log writer's finished jobs. A group commit hands back many at once, and a WAN ack is
 * cumulative (the stream's durable LSN): a stream with several batches among them is acked
 * once, after the last.
 */
static void
completions(struct worker *w)
{
	struct dp_job *jobs[DONE_BURST];
	struct dp_stream *ack[DONE_BURST];
	unsigned n_ack = 0, n = rte_ring_dequeue_burst(w->dp->done_ring[w->idx], (void **)jobs,
	                                               DONE_BURST, NULL);

	for (unsigned i = 0; i < n; i++) {
		struct dp_job *j = jobs[i];

		if (j->kind == DP_JOB_RESERVE) {
			j->key->reserving = false;
			if (!j->status)
				vr_nonce_reserved(&j->key->nonce, j->reserve_limit);
			else
				DP_INC(w->s, log_failed);
			if (j->key->retired)
				retire(w, j->key);
			dp_job_put(j);
		} else if (j->kind == DP_JOB_READ) {
			struct dp_stream *st = j->st;

			struct dp_member *mb = &st->members[j->member];

			mb->reading = false;
			if (j->status) {
				DP_INC(w->s, log_failed);
			} else if (j->n && send_batch(w, st, j, 1u << j->member) == 0) {
				DP_INC(w->s, catchup_batches);
				mb->recover = j->last_lsn < st->durable_lsn ? j->last_lsn + 1 : 0;
			}
			dp_job_put(j);
		} else if (j->kind == DP_JOB_CURSOR) {
			struct dp_stream *st = j->st;

			st->cursor_busy = false;
			if (!j->status) {
				DP_INC(w->s, cursors_saved);
			} else {
				DP_INC(w->s, cursor_failed); /* again after cursor_ms */
				cursor_mark(w, st);
			}
			dp_job_put(j);
		} else if (j->origin) {
			origin_done(w, j->st, j);
		} else {
			struct dp_stream *st = j->st;

			if (receiver_done(w, st, j) && !st->wack_due) {
				st->wack_due = true;
				ack[n_ack++] = st;
			}
		}
	}
	for (unsigned i = 0; i < n_ack; i++) {
		ack[i]->wack_due = false;
		send_wack(w, ack[i], VR_WIRE_WACK_ACK);
	}
}

/* Messages of the control thread. */
/*
 * A record of control's own at an origin stream: a vault's key change (hsm) or a new member
 * set. New members are added before their record is batched, so that it and everything after
 * it go to them too; what came before, they get from the log (resend: they start at LSN 0).
 * Answered through to_ctl once durable (send_ingest_ack, port 0).
 */
static void
ctl_append(struct worker *w, const struct dp_msg *m)
{
	struct dp_stream *st = m->st;
	const struct dp_ackto to = {.producer_seq = m->token};
	struct vr_rec r = {
	    .stream = st->id,
	    .lsn = st->next_lsn,
	    .origin = w->dp->conf.site,
	    .version = VR_REC_VERSION,
	    .type = m->rec_type,
	    .op = m->rec_op,
	    .payload_size = m->blob_size,
	    .payload = m->blob,
	};
	bool full = false;
	int rc;

	if (m->rec_op == VR_REC_OP_MEMBERS && m->n_members > st->n_members &&
	    (st->rekey || st->rekey_asked)) {
		/* A newcomer would get the stored keys from control, not the one being rotated
		 * in, whose records were made for the members of before: after the rotation. */
		send_ingest_ack(w, st, &to, -EAGAIN, 0);
		return;
	}
	if (m->rec_op == VR_REC_OP_MEMBERS) {
		/*
		 * control checked: the old members first, in order, then the new (<= room); or
		 * fewer, the newest dropped from the end (an undone join). A dropped member's bits
		 * and acks stop counting: rotations and the window go on without it.
		 */
		for (unsigned i = st->n_members; i < m->n_members; i++)
			st->members[i] = (struct dp_member){.site = m->members[i]};
		st->n_members = m->n_members;
		st->confirmed &= (1u << m->n_members) - 1;
		r.n_members = m->n_members;
		memcpy(r.members, m->members, m->n_members * sizeof(m->members[0]));
	}
	rc = take_record(w, st, &r, &to, &full);
	if (!rc && m->rec_op == VR_REC_OP_MEMBERS)
		win_release(w, st);
	if (rc)
		send_ingest_ack(w, st, &to, rc, 0);
	else
		close_batch(w, st); /* control waits for it: no batching delay */
}

static void
ctl_msgs(struct worker *w)
{
	struct dp_msg *m;

	while (rte_ring_dequeue(w->dp->to_worker[w->idx], (void **)&m) == 0) {
		switch (m->kind) {
		case DP_MSG_NEXT_KEY:
			next_key(w, m->st, m->rekey, m->status == 1);
			break;
		case DP_MSG_REKEY_NOW:
			m->st->rekey_retry = 0;
			ask_rekey(w, m->st);
			break;
		case DP_MSG_INSTALLED:
			m->st->installing = false;
			if (m->status == 0 || m->status == -EALREADY)
				send_wack(w, m->st, VR_WIRE_WACK_ACK);
			break;
		case DP_MSG_APPEND:
			ctl_append(w, m);
			break;
		case DP_MSG_CATCH_UP:
			win_track(w, m->st);
			break;
		default:
			break;
		}
		free(m);
	}
}

/* --- receive --- */

/*
 * Passes m to the worker that owns the stream it names (D9): true when it went (or was
 * dropped because that worker's ring is full), false when this worker owns it or it names no
 * stream (then it is handled, and counted, here).
 */
static bool
hand_off(struct worker *w, struct dp_port *p, struct rte_mbuf *m, const uint8_t *pl, size_t n)
{
	struct dp *dp = w->dp;
	struct vr_wire_stream s;
	unsigned owner;

	if (dp->n_workers < 2 || vr_wire_peek_stream(pl, n, &s))
		return false;
	owner = vr_wire_stream_owner(s.account, s.vault, p == &dp->lan ? dp->conf.site : s.primary,
	                             dp->n_workers);
	if (owner == w->idx)
		return false;
	m->port = p->id;
	if (rte_ring_sp_enqueue(dp->handoff[w->idx][owner], m)) {
		DP_INC(w->s, handoff_full);
		rte_pktmbuf_free(m);
	} else {
		DP_INC(w->s, handoffs);
	}
	return true;
}

/*
 * One datagram read from port p (routed: passed on by the worker that read it). True when m
 * went to another worker: the caller must not free it.
 */
static bool
rx_one(struct worker *w, struct dp_port *p, struct txq *q, struct rte_mbuf *m, bool routed)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	uint32_t len = rte_pktmbuf_data_len(m), ihl, tot, ulen;
	uint8_t *pl;

	if (len < sizeof(*eth)) {
		DP_INC(w->s, drop_not_ip);
		return false;
	}
	if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		arp_in(w, p, q, m);
		return false;
	}
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		DP_INC(w->s, drop_not_ip);
		return false;
	}
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	if (len < sizeof(*eth) + sizeof(*ip) || (ip->version_ihl >> 4) != 4) {
		DP_INC(w->s, drop_ip_bad);
		return false;
	}
	ihl = (ip->version_ihl & 0xf) * 4u;
	tot = rte_be_to_cpu_16(ip->total_length);
	if (ihl < sizeof(*ip) || tot < ihl || sizeof(*eth) + tot > len) {
		DP_INC(w->s, drop_ip_bad);
		return false;
	}
	if (rte_be_to_cpu_16(ip->fragment_offset) &
	    (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
		DP_INC(w->s, drop_ip_frag);
		return false;
	}
	if (ip->next_proto_id != IPPROTO_UDP) {
		DP_INC(w->s, drop_not_udp);
		return false;
	}
	if (tot < ihl + sizeof(*udp)) {
		DP_INC(w->s, drop_ip_bad);
		return false;
	}
	udp = (struct rte_udp_hdr *)((uint8_t *)ip + ihl);
	ulen = rte_be_to_cpu_16(udp->dgram_len);
	if (ulen < sizeof(*udp) || ulen > tot - ihl) {
		DP_INC(w->s, drop_ip_bad);
		return false;
	}
	if (rte_be_to_cpu_32(ip->dst_addr) != p->ip || rte_be_to_cpu_16(udp->dst_port) != p->udp) {
		DP_INC(w->s, drop_not_ours);
		return false;
	}
	pl = (uint8_t *)(udp + 1);
	ulen -= (uint32_t)sizeof(*udp);
	if (!routed && hand_off(w, p, m, pl, ulen))
		return true;
	if (p == &w->dp->lan) {
		ingest(w, eth, ip, udp, pl, ulen);
	} else if (ulen >= 2 && vr_get_be16(pl) == VR_WIRE_MAGIC_BATCH) {
		wan_batch_in(w, m, rte_be_to_cpu_32(ip->src_addr), pl, ulen);
	} else if (ulen >= 2 && vr_get_be16(pl) == VR_WIRE_MAGIC_WACK) {
		wan_ack_in(w, pl, ulen);
	} else {
		DP_INC(w->s, wan_bad);
	}
	return false;
}

/* A burst read from port (NULL: passed on by other workers, each mbuf names its port). */
static unsigned
rx_burst(struct worker *w, struct dp_port *port, struct rte_mbuf **pkts, uint16_t n)
{
	struct dp *dp = w->dp;
	unsigned kept = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct dp_port *p = port ? port : pkts[i]->port == dp->wan.id ? &dp->wan : &dp->lan;

		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		if (rx_one(w, p, p == &dp->lan ? &w->lan_tx : &w->wan_tx, pkts[i], !port))
			continue;
		pkts[kept++] = pkts[i];
	}
	rte_pktmbuf_free_bulk(pkts, kept);
	return n;
}

/* Reads the port's queues that are this worker's (q % n_workers == idx). */
static unsigned
rx_port(struct worker *w, struct dp_port *p)
{
	struct rte_mbuf *pkts[BURST];
	unsigned work = 0;

	for (unsigned q = w->idx; q < p->n_q; q += w->dp->n_workers) {
		uint16_t n = rte_eth_rx_burst(p->id, (uint16_t)q, pkts, BURST);

		DP_ADD(w->s, rx_packets, n);
		work += rx_burst(w, p, pkts, n);
	}
	return work;
}

/* What workers without a tx queue of their own on port p send through this one. */
static unsigned
tx_relays(struct worker *w, struct dp_port *p, struct txq *q)
{
	unsigned work = 0;

	for (unsigned from = p->n_q; from < w->dp->n_workers; from++) {
		if (from % p->n_q != w->idx || q->n == TXQ)
			continue;
		unsigned got = rte_ring_sc_dequeue_burst(p->relay[from], (void **)q->m + q->n,
		                                         (unsigned)(TXQ - q->n), NULL);

		q->n = (uint16_t)(q->n + got);
		work += got;
	}
	return work;
}

/* Datagrams of this worker's streams that another worker read. */
static unsigned
rx_handoffs(struct worker *w)
{
	struct rte_mbuf *pkts[BURST];
	unsigned work = 0;

	for (unsigned from = 0; from < w->dp->n_workers; from++) {
		unsigned n;

		if (from == w->idx)
			continue;
		n = rte_ring_sc_dequeue_burst(w->dp->handoff[from][w->idx], (void **)pkts, BURST,
		                              NULL);
		work += rx_burst(w, NULL, pkts, (uint16_t)n);
	}
	return work;
}

/* A clean stop saves every member's latest ack (bounded: 1 s for the log writer to answer). */
static void
flush_cursors(struct worker *w)
{
	uint64_t end = rte_rdtsc() + w->dp->hz;

	while (w->n_cur && (w->now = rte_rdtsc()) < end) {
		for (unsigned i = 0; i < w->n_cur; i++)
			w->cur[i]->cursor_due = 0;
		completions(w);
		scan_cursors(w);
		rte_pause();
	}
}

int
dp_worker_main(void *arg)
{
	const struct dp_worker_arg *a = arg;
	struct dp *dp = a->dp;
	struct worker w = {
	    .dp = dp,
	    .idx = a->idx,
	    .s = &dp->stats[DP_STATS_CTL + 1 + a->idx],
	    .lan_tx = {.port = dp->lan.id,
	               .queue = (uint16_t)a->idx,
	               .relay = dp->lan.relay[a->idx]},
	    .wan_tx = {.port = dp->wan.id,
	               .queue = (uint16_t)a->idx,
	               .relay = dp->wan.relay[a->idx]},
	};
	unsigned lcore = rte_lcore_id(), idle = 0;
	uint64_t sleep_us = 0;

	w.rto = dp->hz * dp->conf.rto_us / 1000000;
	w.max_wait = dp->hz * dp->conf.max_delay_us / 1000000;
	w.cursor_every = dp->hz * dp->conf.cursor_ms / 1000;
	w.sess_idle = dp->hz * dp->conf.session_idle_ms / 1000;
	w.scan_every = w.max_wait / 4 ? w.max_wait / 4 : 1;
	if (!(w.mac = vr_wire_wack_mac_new()))
		vr_warn("dataplane", "worker %u: no HMAC context; WAN acks use one-shot HMAC",
		        a->idx);
	rte_rcu_qsbr_thread_register(dp->qsbr, lcore);
	rte_rcu_qsbr_thread_online(dp->qsbr, lcore);
	while (!atomic_load_explicit(&dp->quit, memory_order_relaxed)) {
		unsigned work = 0;

		w.now = rte_rdtsc();
		work += rx_port(&w, &dp->lan);
		work += rx_port(&w, &dp->wan);
		if (dp->n_workers > 1) {
			work += rx_handoffs(&w);
			work += tx_relays(&w, &dp->lan, &w.lan_tx);
			work += tx_relays(&w, &dp->wan, &w.wan_tx);
		}
		completions(&w);
		scan_open(&w);
		if (w.now >= w.next_win) {
			w.next_win = w.now + w.rto / 8;
			ctl_msgs(&w);
			scan_windows(&w);
			scan_cursors(&w);
			scan_rotations(&w);
			scan_sessions(&w);
			arp_resolve(&w);
		}
		work += w.lan_tx.n + w.wan_tx.n;
		tx_flush(&w, &w.lan_tx);
		tx_flush(&w, &w.wan_tx);
		rte_rcu_qsbr_quiescent(dp->qsbr, lcore);
		dp_count(&w.s->loops, 1);
		/*
		 * Adaptive back-off: spin while busy, then sleep longer and longer when idle, but
		 * never past the deadline of an open batch: on two cores shared with a log writer,
		 * a worker that spins while its batches wait for their time bound takes the core
		 * that the log writer needs to make the records durable.
		 */
		if (work) {
			idle = 0;
			sleep_us = 0;
		} else if (dp->conf.max_sleep_us && ++idle > 64) {
			struct timespec ts;
			uint64_t cap = dp->conf.max_sleep_us;

			if (w.open_list) { /* at most until the first open batch is due */
				uint64_t tpu = dp->hz / 1000000 ? dp->hz / 1000000 : 1;
				uint64_t left = w.next_due > w.now ? (w.next_due - w.now) / tpu : 0;

				if (left < cap)
					cap = left;
			}
			sleep_us = sleep_us ? sleep_us * 2 : 1;
			if (sleep_us > cap)
				sleep_us = cap;
			if (!sleep_us)
				continue;
			ts = (struct timespec){.tv_nsec = (long)sleep_us * 1000};
			rte_rcu_qsbr_thread_offline(dp->qsbr, lcore);
			nanosleep(&ts, NULL);
			rte_rcu_qsbr_thread_online(dp->qsbr, lcore);
		}
	}
	flush_cursors(&w);
	rte_rcu_qsbr_thread_offline(dp->qsbr, lcore);
	rte_rcu_qsbr_thread_unregister(dp->qsbr, lcore);
	free(w.win);
	free(w.rk);
	free(w.cur);
	free(w.sess);
	EVP_MAC_CTX_free(w.mac);
	return 0;
}
