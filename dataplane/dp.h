/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vaultrep-dataplane: the process's shared state.
 *
 * Threads:
 *   - the main lcore serves the control socket (ctl.c): streams, keys, stats;
 *   - [lcores] workers worker lcores (worker.c, D9) each poll their own rx queue of both ports
 *     and send on their own tx queue: ARP, ingest, batching, sealing, WAN send and receive,
 *     acks, retransmission. A stream is owned by one worker, vr_wire_stream_owner() of its id;
 *     a worker that reads a datagram of a stream it does not own passes the mbuf to the owner
 *     on a single-producer ring (dp->handoff[from][to]), so that nothing of a stream is ever
 *     touched by two lcores;
 *   - the log writer (logw.c, an ordinary thread) takes jobs from an rte_ring (many
 *     producers: the workers), appends them to logstore with group commit and hands each back
 *     on its stream's worker's completion ring, so that no lcore ever waits on a disk.
 *
 * Publication without locks: streams live in a lock-free rte_hash (RW_CONCURRENCY_LF) that the
 * control thread writes and the workers read; a stream's keys are pointers the control thread
 * swaps with release stores; a replaced key is freed after an RCU (QSBR) grace period in which
 * every worker reported a quiescent state. A neighbour's MAC address is one atomic word that
 * any worker may learn (ARP) and all read. Everything else in a stream belongs to its worker.
 */
#ifndef DP_H
#define DP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <jansson.h>

#include "dp_conf.h"
#include "dp_crypto.h"
#include "vr_batch.h"
#include "vr_log.h"
#include "vr_nonce.h"
#include "vr_record.h"
#include "vr_replay.h"
#include "vr_wire.h"

/* Every counter, one table: drop reasons each have their own. */
#define DP_COUNTERS(X)                                                                             \
	X(rx_packets, "frames received on both ports")                                             \
	X(tx_packets, "frames sent")                                                               \
	X(tx_dropped, "frames the port would not take")                                            \
	X(drop_not_ip, "neither ARP nor IPv4")                                                     \
	X(drop_ip_bad, "bad IPv4 header or length")                                                \
	X(drop_ip_frag, "IPv4 fragments")                                                          \
	X(drop_not_udp, "IPv4 but not UDP")                                                        \
	X(drop_not_ours, "not addressed to this port's IPv4 address or UDP port")                  \
	X(drop_arp, "ARP neither for us nor from a peer")                                          \
	X(arp_replies, "ARP replies sent")                                                         \
	X(arp_requests, "ARP requests sent")                                                       \
	X(arp_learned, "peer addresses resolved")                                                  \
	X(ingest_frames, "ingest frames accepted")                                                 \
	X(ingest_bad, "ingest frames that do not parse (size, magic, format)")                     \
	X(ingest_bad_crc, "ingest frames with a bad CRC32C")                                       \
	X(ingest_unknown_stream, "ingest frames for a stream not configured here")                 \
	X(ingest_closed, "ingest frames for a stream closed with its vault (nacked ENOENT)")       \
	X(ingest_not_primary, "ingest frames for a stream whose primary is another site")          \
	X(ingest_too_big, "ingest frames whose record cannot fit a batch")                         \
	X(ingest_busy, "ingest frames refused for back-pressure (window or memory full)")          \
	X(ingest_repeat, "retransmitted ingest frames answered again, not appended")               \
	X(ingest_out_of_order, "ingest frames after a hole in their producer's sequence")          \
	X(acks_sent, "ingest acks sent (datagrams; each is cumulative for its producer)")          \
	X(records_acked,                                                                           \
	  "ingest records acknowledged durable (by an ack of theirs or a later one)")              \
	X(nacks_sent, "ingest negative acks sent")                                                 \
	X(records_logged, "records made durable in the local log")                                 \
	X(log_failed, "jobs the log writer failed (their frames nacked)")                          \
	X(batches_sealed, "batches sealed")                                                        \
	X(seal_failed, "seal operations that failed")                                              \
	X(batches_sent, "batch datagrams sent to members")                                         \
	X(retransmits, "batches sent again (timer or gap report)")                                 \
	X(catchup_batches, "batches read back from the log for a member behind the window")        \
	X(cursors_saved, "origin streams whose members' acks were saved (and the log trimmed)")    \
	X(cursor_failed, "cursor saves or log trims that failed (tried again after cursor_ms)")    \
	X(nonce_waits, "batches that waited for a nonce reservation")                              \
	X(no_peer_mac, "batches or acks held back: peer address not resolved")                     \
	X(wan_rx, "WAN batches received")                                                          \
	X(wan_bad, "WAN batches that do not parse")                                                \
	X(wan_foreign, "WAN datagrams from an address that is not the named peer")                 \
	X(wan_unknown_stream, "WAN batches for a stream not configured here")                      \
	X(wan_unknown_key, "WAN batches under a key id not installed")                             \
	X(replay_dup, "WAN batches repeated inside the replay window")                             \
	X(replay_old, "WAN batches older than the replay window")                                  \
	X(open_failed, "WAN batches whose tag does not verify")                                    \
	X(wan_gap, "WAN batches after a hole (gap reported)")                                      \
	X(wan_held, "WAN batches after a hole, kept until the hole fills")                         \
	X(wan_stale, "WAN batches wholly applied before")                                          \
	X(wan_bad_records, "WAN batches whose records do not decode or chain")                     \
	X(wan_applied, "records applied from the WAN (durable here)")                              \
	X(wan_acks_rx, "WAN acks accepted")                                                        \
	X(wan_ack_bad, "WAN acks that do not parse or name no stream")                             \
	X(wan_ack_forged, "WAN acks whose tag does not verify")                                    \
	X(wan_acks_sent, "WAN acks and gap reports sent")                                          \
	X(delivered, "records delivered to the local consumer")                                    \
	X(rekeys, "payload keys made for origin streams (D4)")                                     \
	X(rekey_failed, "rekeys the hsm_agent could not complete (tried again later)")             \
	X(key_records_sent, "key records sent to members (first sends and resends)")               \
	X(key_records_rx, "key records received and opened")                                       \
	X(keys_confirmed, "members that proved they hold a new key (an ack under it)")             \
	X(keys_promoted, "origin streams that began sealing under their next key")                 \
	X(keys_installed, "payload keys unwrapped and installed at this receiver")                 \
	X(key_install_failed, "key records whose key did not unwrap or persist here")              \
	X(no_mbuf, "mbuf or job allocations that failed")                                          \
	X(session_failed, "crypto sessions the device would not make (batch held back)")           \
	X(sessions_idled, "crypto sessions given back by keys idle for [crypto] session_idle_ms")  \
	X(handoffs, "datagrams passed to the worker lcore that owns their stream")                 \
	X(handoff_full, "datagrams dropped: the owning worker's ring was full (peers resend)")     \
	X(records_sealed_only, "records sealed and sent in [bench] seal_only mode (no log)")

enum dp_counter {
#define X(n, d) DP_C_##n,
	DP_COUNTERS(X)
#undef X
	    DP_N_COUNTERS
};

enum { DP_HIST = 32 }; /* buckets of the latency histograms */

/*
 * One block of counters per writing thread (the control thread, each worker), each with a single
 * writer: an increment is a plain load and store, never a locked instruction on the fast path
 * (as DPDK's per-lcore stats). Readers sum the blocks (dp_counter).
 */
struct dp_stats {
	_Atomic uint64_t c[DP_N_COUNTERS];
	_Atomic uint64_t lat_hist[DP_HIST]; /* ack latency (ingest to ack), dp_hist_bucket of us */
	_Atomic uint64_t loops;             /* worker poll loops */
} __attribute__((aligned(64)));

static inline void
dp_count(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

/*
 * The bucket of a log2 histogram of microseconds (`stats` *_log2_us): bucket b holds
 * [2^(b-1), 2^b) us, bucket 0 holds 0, and the last also everything longer.
 */
static inline unsigned
dp_hist_bucket(uint64_t us)
{
	unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

	return b < DP_HIST ? b : DP_HIST - 1;
}

#define DP_ADD(st, name, v) dp_count(&(st)->c[DP_C_##name], (v))
#define DP_INC(st, name)    DP_ADD(st, name, 1)

enum { DP_STATS_CTL = 0, DP_STATS_BLOCKS = 1 + DP_MAX_WORKERS };

/*
 * A payload key as the workers use it (its id, salt and ack key immutable once published).
 * Its crypto session is made by the owning worker from raw on first use and freed again once
 * the key has been idle for [crypto] session_idle_ms, so that an idle stream holds no session
 * (1.2 KiB with crypto_aesni_gcm); control frees what is left with the key, after a grace
 * period of the workers. raw is as secret as the session's expanded key, which the process
 * holds anyway: in DPDK memory, wiped when the key is freed, never in a core dump (the process
 * is not dumpable).
 */
struct dp_key {
	uint32_t id;
	bool seal;      /* origin: seals; receiver: opens */
	bool retired;   /* origin: no longer the stream's; freed once no job names it */
	bool reserving; /* origin: a reservation job is in flight */
	uint8_t salt[VR_NONCE_SALT];
	uint8_t ack_key[32];
	uint8_t raw[DP_KEY_SIZE];
	void *sess;    /* cryptodev session (owning worker), NULL while idle */
	uint64_t used; /* TSC of its last seal or open (owning worker) */
	union {
		struct vr_nonce nonce;   /* origin: written by the owning worker only */
		struct vr_replay replay; /* receiver: written by the owning worker only */
	};
};

/*
 * An origin's next payload key (D4), made by the control thread through the hsm_agent and
 * handed to the worker: the key, and its record for each member (the key under that member's
 * site KEK). The worker sends the records, sealed under the current key, until each member
 * answers with an ack under the new key; then (or after [keys] grace_ms) it seals under it.
 */
struct dp_rekey {
	struct dp_key *key;
	uint64_t since;    /* TSC the records were first sent (worker) */
	uint64_t deadline; /* TSC to send the records again (worker) */
	uint8_t n;
	struct {
		uint16_t site;
		uint16_t blob_size;
		uint8_t blob[VR_WIRE_KEYREC_MAX_BLOB];
	} rec[VR_REC_MAX_MEMBERS];
};

/* Messages between the worker and the control thread (rings dp->to_ctl and dp->to_worker). */
enum dp_msg_kind {
	DP_MSG_REKEY_NOW, /* control -> worker: an operator asks for the next key */
	DP_MSG_REKEY,     /* worker -> control: make the stream's next key */
	DP_MSG_KEYREC,    /* worker -> control: install the key of this key record */
	DP_MSG_RETIRE,    /* worker -> control: free this key (no job names it any more) */
	DP_MSG_NEXT_KEY,  /* control -> worker: rekey ready (or failed: rekey NULL) */
	DP_MSG_INSTALLED, /* control -> worker: a key record was handled (status says how) */
	DP_MSG_APPEND,    /* control -> worker: append a record (control's own: hsm, members) */
	DP_MSG_APPENDED,  /* worker -> control: ... durable at lsn, or refused (status) */
	DP_MSG_CATCH_UP,  /* control -> worker: a member is behind a stream just added */
};

struct dp_msg {
	uint8_t kind;
	int status;
	struct dp_stream *st;
	struct dp_key *key;     /* RETIRE */
	struct dp_rekey *rekey; /* NEXT_KEY */
	uint32_t key_id;        /* KEYREC */
	uint8_t rec_type;       /* APPEND: the record's type and op */
	uint8_t rec_op;
	uint8_t n_members; /* APPEND of VR_REC_OP_MEMBERS: the new member set */
	uint16_t members[VR_REC_MAX_MEMBERS];
	uint64_t token;     /* APPEND, APPENDED: which request */
	uint64_t lsn;       /* APPENDED */
	uint16_t blob_size; /* KEYREC: the key record; APPEND: the payload */
	uint8_t blob[VR_WIRE_KEYREC_MAX_BLOB];
};

/* Whom to answer for a record: a producer on the LAN, or control (port 0, producer_seq = the
 * request's token; the answer goes through to_ctl). */
struct dp_ackto {
	uint32_t producer;
	uint64_t producer_seq;
	struct rte_ether_addr mac;
	uint32_t ip;
	uint16_t port;
};

enum dp_job_kind {
	DP_JOB_RECORDS, /* append these records */
	DP_JOB_RESERVE, /* persist a nonce reservation */
	DP_JOB_READ,    /* read records from read_from (catch-up of a member from the log) */
	DP_JOB_CURSOR,  /* save the members' acks (cursors), then trim the log below them */
};

/* One unit of work for the log writer, and, at the origin, one batch kept until acked. */
struct dp_job {
	struct dp_job *next;
	struct dp_stream *st;
	uint8_t kind;
	bool origin;
	bool synced; /* origin, sync stream: its producers were acked */
	uint16_t n;
	uint32_t bytes;
	uint32_t epoch;
	uint64_t first_lsn, last_lsn;
	int status;
	uint64_t reserve_limit; /* DP_JOB_RESERVE */
	struct dp_key *key;     /* DP_JOB_RESERVE */
	uint64_t read_from;     /* DP_JOB_READ */
	uint8_t member;         /* DP_JOB_READ: index in st->members */
	uint64_t t_open;        /* TSC when its first record arrived (ack latency) */
	struct dp_ackto *acks;  /* origin: who to ack, one per record */
	uint8_t *data;          /* records, contiguous (DP_JOB_CURSOR: u64 acked per member) */
};

struct dp_member {
	uint16_t site;
	uint64_t acked;    /* highest LSN the member acknowledged */
	uint64_t sent;     /* highest LSN sent to it */
	uint64_t deadline; /* TSC: retransmit if still unacked */
	uint64_t last_gap; /* TSC of the last gap-triggered resend */
	bool reading;      /* a catch-up read from the log is in flight */
	uint64_t rto;      /* retransmission timeout in TSC ticks: doubles while unanswered */
	uint64_t recover;  /* resending: the next LSN to resend when an ack comes (0: not) */
};

/*
 * A producer of an origin stream, as its frames went: accepted (in a batch), logged (durable
 * here) and acked (durable here, and at enough members for a sync stream). The log keeps each
 * producer's latest logged frame and LSN as a mark in the frame of its records (logw.c), and a
 * restarted dataplane starts from them (dp_producers_load): a frame it had logged before it died
 * is answered with its ack when the producer sends it again, never appended twice.
 */
struct dp_producer {
	uint32_t id;
	uint64_t seq; /* highest frame seq accepted */
	uint64_t
	    logged_seq; /* highest frame seq durable here (what a failed append goes back to) */
	uint64_t durable_seq; /* highest frame seq acked ... */
	uint64_t durable_lsn; /* ... and its LSN */
};

enum { DP_PRODUCERS = 4 };

struct dp_stream {
	struct vr_stream_id id;
	_Atomic(struct dp_key *) key;      /* current */
	_Atomic(struct dp_key *) prev_key; /* receiver: batches in flight under the last key */
	_Atomic uint64_t trim_lsn; /* origin: the log holds nothing at or below (log writer) */
	bool origin;
	uint8_t worker; /* the worker lcore that owns it (vr_wire_stream_owner) */
	/* worker-owned from here; the flags together, so that an idle stream stays small */
	uint8_t n_members;
	uint8_t room; /* members[] allocated: control may add members up to it */
	bool on_open_list;
	bool cursor_dirty;   /* origin: acks to save (on the worker's cursor list) */
	bool cursor_busy;    /* origin: a cursor job is with the log writer */
	bool promoted;       /* origin: sealing under rekey->key already */
	bool rekey_asked;    /* origin: control is making the next key */
	bool installing;     /* receiver: a key record is with control */
	bool sessions;       /* on the worker's list of streams whose keys hold crypto sessions */
	_Atomic bool closed; /* origin: its vault was deleted (stream.close): nothing new taken */
	uint8_t sync;        /* origin: producers acked once this many members hold it too (X1) */
	bool on_win;    /* origin: on the worker's retransmit scan (window, or a member behind) */
	bool wack_due;  /* receiver: to be acked once this burst of completions is done */
	uint32_t epoch; /* bumped when a log failure resets the stream */
	uint32_t win_n;
	uint32_t confirmed; /* origin: members (bits) that hold rekey->key */
	uint64_t durable_lsn;
	union {
		uint64_t next_lsn;   /* origin: next LSN to assign */
		uint64_t queued_lsn; /* receiver: last LSN handed to the log writer */
	};
	struct vr_batcher b;
	struct dp_job *open; /* origin: the batch being filled */
	struct dp_stream *next_open;
	struct dp_job *win_head, *win_tail; /* origin: durable batches not yet acked by all */
	struct dp_producer prod[DP_PRODUCERS];
	union {
		uint64_t last_ack_tsc; /* receiver: rate limit of gap reports */
		uint64_t cursor_due;   /* origin: TSC before which no other cursor job is sent */
	};
	/* payload key rotation (D4), worker-owned */
	struct dp_rekey *rekey; /* origin: the next key, while members confirm it */
	uint64_t rekey_retry;   /* origin: TSC before which a failed rekey is not asked again */
	/* figures for stream.show and telemetry */
	uint64_t records, bytes, batches;
	/* n_members of them, allocated with the stream: most streams have one or two (an idle
	 * stream's memory is a figure of the 100 000-stream benchmark) */
	struct dp_member members[];
};

struct dp_peer {
	uint16_t site;
	uint32_t ip;
	uint16_t udp;
	bool fixed; /* a static neighbour ([peer N] mac): ARP does not change it */
	/* Its MAC (bits 0..47) and DP_L2_RESOLVED: one word, learnt by any worker (dp_peer_mac) */
	_Atomic uint64_t l2;
};

#define DP_L2_RESOLVED (1ull << 48)

/* The neighbour's MAC into *mac: false while it is not resolved. */
static inline bool
dp_peer_mac(const struct dp_peer *pe, struct rte_ether_addr *mac)
{
	uint64_t v = atomic_load_explicit(&pe->l2, memory_order_relaxed);

	if (!(v & DP_L2_RESOLVED))
		return false;
	for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++)
		mac->addr_bytes[i] = (uint8_t)(v >> (8 * i));
	return true;
}

static inline uint64_t
dp_l2_word(const struct rte_ether_addr *mac)
{
	uint64_t v = DP_L2_RESOLVED;

	for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++)
		v |= (uint64_t)mac->addr_bytes[i] << (8 * i);
	return v;
}

struct dp_port {
	uint16_t id;
	uint16_t n_q; /* queue pairs: worker w reads q % n_workers == w, sends on w if w < n_q */
	struct rte_ring *relay[DP_MAX_WORKERS]; /* w >= n_q: what worker w sends, to w % n_q */
	uint32_t ip;
	uint16_t udp;
	uint16_t mtu;
	struct rte_ether_addr mac;
};

struct dp {
	struct dp_conf conf;
	struct dp_port lan, wan;
	struct dp_peer peers[DP_MAX_PEERS];
	unsigned n_peers;
	struct dp_peer consumer;
	struct rte_mempool *pkt_mp;
	/*
	 * Jobs in two pools. job_mp: this site's own batches, from the open one through the
	 * window until every member acked them. aux_mp: every other job (a received batch on its
	 * way to the log, the out-of-order stash, catch-up reads, nonce reservations, cursors).
	 * Full windows (members far behind) must not starve the reads that catch them up, nor
	 * the batches of the other site's streams that this site applies.
	 */
	struct rte_mempool *job_mp, *aux_mp;
	uint32_t job_bytes, job_acks;
	struct dp_crypto crypto;
	struct rte_hash *streams;
	struct rte_rcu_qsbr *qsbr;
	struct rte_ring *log_ring;                  /* workers -> log writer */
	struct rte_ring *done_ring[DP_MAX_WORKERS]; /* log writer -> each worker */
	struct rte_ring *to_ctl;                    /* workers -> control (dp_msg), with ctl_wake */
	struct rte_ring *to_worker[DP_MAX_WORKERS]; /* control -> each worker (dp_msg) */
	struct rte_ring *handoff[DP_MAX_WORKERS][DP_MAX_WORKERS]; /* [from][to]: mbufs */
	int ctl_wake; /* eventfd: the control thread has messages */
	struct vr_log *log;
	struct dp_stats stats[DP_STATS_BLOCKS]; /* DP_STATS_CTL, then one per worker */
	/* Each group commit's time (the log's append call: write, sync, index), log2 buckets of
	 * us, and the longest; written by the log writer alone. */
	_Atomic uint64_t commit_hist[DP_HIST];
	_Atomic uint64_t commit_max_us;
	uint64_t hz;
	uint64_t boot;       /* random, made at start: control tells a restart by it (ping) */
	uint64_t hash_bytes; /* the stream table, allocated whole at start ([site] streams) */
	unsigned n_workers;
	unsigned worker_lcore[DP_MAX_WORKERS];
	_Atomic bool quit;
	_Atomic bool logw_quit; /* set once the worker has returned */
	/* The log's sticky error (-errno), once a write or sync of it failed: the process stops
	 * (fail-stop, exit DP_EXIT_LOG) and a restart recovers the log (logw.c). */
	_Atomic int log_error;
};

/* The exit status of a dataplane whose log failed (EX_IOERR): restart it (systemd on-failure). */
enum { DP_EXIT_LOG = 74 };

/* The key of a stream in the hash. */
struct dp_skey {
	uint64_t account;
	uint32_t vault;
	uint16_t primary;
	uint16_t pad;
};

static inline struct dp_skey
dp_skey(uint64_t account, uint32_t vault, uint16_t primary)
{
	return (struct dp_skey){.account = account, .vault = vault, .primary = primary};
}

struct dp_stream *dp_stream_find(struct dp *dp, uint64_t account, uint32_t vault, uint16_t primary);

/*
 * The key-id cache of a stream (D4): its current payload key and the one before it, whose
 * batches may still be in flight after a rotation. Workers look keys up with acquire loads and
 * no lock; one thread at a time publishes (the control thread; at an origin the owning worker
 * when it promotes its next key). While a push is under way the newest key may not be found
 * yet: a batch under it is dropped as unknown and its sender sends it again.
 */
static inline struct dp_key *
dp_key_by_id(struct dp_stream *st, uint32_t id)
{
	struct dp_key *k = atomic_load_explicit(&st->key, memory_order_acquire);

	if (k && k->id == id)
		return k;
	k = atomic_load_explicit(&st->prev_key, memory_order_acquire);
	return k && k->id == id ? k : NULL;
}

/*
 * Publishes k as the current key; the current one becomes the previous. Returns the key that
 * fell out (NULL if none), for the caller to free after a grace period of every worker (RCU).
 */
static inline struct dp_key *
dp_key_push(struct dp_stream *st, struct dp_key *k)
{
	struct dp_key *old = atomic_exchange_explicit(
	    &st->prev_key, atomic_load_explicit(&st->key, memory_order_relaxed),
	    memory_order_acq_rel);

	atomic_store_explicit(&st->key, k, memory_order_release);
	return old;
}

/* A producer's mark: 'P' || stream || producer -> its latest logged frame seq || LSN. */
struct dp_producer_mark {
	uint8_t key[1 + VR_STREAM_ID_SIZE + 4];
	uint8_t val[16];
};

void dp_producer_mark(struct dp_producer_mark *m, const struct vr_stream_id *id, uint32_t producer,
                      uint64_t seq, uint64_t lsn);

/* A restarted origin stream's producers from their marks (the DP_PRODUCERS latest). */
int dp_producers_load(struct dp *dp, struct dp_stream *st);

/* Nonce reservations in the log's meta rows: read (0 if none) and write (synced). */
int dp_nonce_persisted(struct dp *dp, const struct dp_stream *st, uint32_t key_id, uint64_t *limit);
int dp_nonce_persist(struct dp *dp, const struct dp_stream *st, uint32_t key_id, uint64_t limit);

/* keys.c: payload keys through the hsm_agent (control thread only). */
struct dp_key *dp_key_new(struct dp *dp, struct dp_stream *st, uint32_t id,
                          const uint8_t key[DP_KEY_SIZE], bool seal, char *err, size_t err_n);
void dp_key_free(struct dp *dp, struct dp_key *k);
int dp_keys_bootstrap(struct dp *dp, struct dp_stream *st, json_t **records, char *err,
                      size_t err_n);
int dp_keys_install(struct dp *dp, struct dp_stream *st, uint32_t id, const uint8_t *blob, size_t n,
                    char *err, size_t err_n);
struct dp_rekey *dp_keys_next(struct dp *dp, struct dp_stream *st, char *err, size_t err_n);
/* control thread: an origin's stored keys wrapped for every member (stream.members, keys.c) */
int dp_keys_records(struct dp *dp, struct dp_stream *st, json_t **out, char *err, size_t err_n);
/*
 * A stream's stored keys as this site keeps them (blobs wrapped under this site's KEK, as they
 * came), oldest first: *out = [{key_id, blob}]. 0, or -errno.
 */
int dp_keys_stored(struct dp *dp, const struct dp_stream *st, json_t **out);
void dp_keys_close(void);
/* Sends a message to the worker / control (never blocks: the rings are as large as needed). */
int dp_msg_to_worker(struct dp *dp, struct dp_msg *m);
int dp_msg_to_ctl(struct dp *dp, struct dp_msg *m);

/* worker.c: arg is a struct dp_worker_arg. */
struct dp_worker_arg {
	struct dp *dp;
	unsigned idx; /* 0..n_workers-1 */
};
int dp_worker_main(void *arg);

/* logw.c */
int dp_logw_start(struct dp *dp);
void dp_logw_stop(struct dp *dp);

/* ctl.c: serves the control socket until dp->quit. */
int dp_ctl_serve(struct dp *dp);
/* Frees every stream, its keys and the key messages still queued: after the workers and the
 * log writer stopped. */
void dp_streams_free(struct dp *dp);

/* telemetry.c */
void dp_telemetry_register(struct dp *dp);

/*
 * Job buffers laid out for dp's batch limits: an origin batch from dp->job_mp
 * (dp_job_get_batch), any other job from dp->aux_mp (dp_job_get); put back to its own pool.
 */
struct dp_job *dp_job_get(struct dp *dp);
struct dp_job *dp_job_get_batch(struct dp *dp);
void dp_job_put(struct dp_job *j);

/* A figure of struct dp_stats (at byte offset off) summed over every thread's block. */
static inline uint64_t
dp_stats_sum(struct dp *dp, size_t off)
{
	uint64_t v = 0;

	for (unsigned b = 0; b < DP_STATS_BLOCKS; b++)
		v += atomic_load_explicit((_Atomic uint64_t *)((char *)&dp->stats[b] + off),
		                          memory_order_relaxed);
	return v;
}

#define dp_counter(dp, i)  dp_stats_sum(dp, offsetof(struct dp_stats, c) + 8 * (i))
#define dp_lat_hist(dp, i) dp_stats_sum(dp, offsetof(struct dp_stats, lat_hist) + 8 * (i))
#define dp_loops(dp)       dp_stats_sum(dp, offsetof(struct dp_stats, loops))

#endif /* DP_H */
