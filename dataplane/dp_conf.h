/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's configuration file (INI, parsed with libinih). Every value is checked; an
 * error names the file, the line and what was wrong. Example (all keys, defaults shown):
 *
 *   [site]
 *   id = 1                       ; this site (1..65535)
 *   log_dir = /var/lib/vaultrep/wal
 *   control = /run/vaultrep/dataplane.sock
 *   control_uid = 0              ; uids allowed on the control socket (comma list)
 *   hsm = /run/vaultrep/hsm.sock ; the hsm_agent (payload keys, D4); optional: without it a
 *                                ; stream's keys are set through the control socket (key.set)
 *   hsm_shard = 0                ; this site's key-encryption key pair in the agent (site.*)
 *                                ; The agent knows peer site N's public key as peer "site<N>"
 *                                ; (peer.import, by control); the dataplane imports this site's
 *                                ; own as "site<id>" to keep its keys wrapped for itself.
 *
 *   [lan]                        ; producers' side: ingest frames in, acks out
 *   port = 0                     ; DPDK port id
 *   ip = 198.18.0.1
 *   udp = 4790
 *   mtu = 1500                   ; 1500 or 9000
 *   queues = 1                   ; rx/tx queue pairs (1..DP_MAX_WORKERS); see [lcores]
 *
 *   [wan]                        ; other sites: batches and acks
 *   port = 1
 *   ip = 198.19.0.1
 *   udp = 4791
 *   mtu = 1500
 *   queues = 1
 *
 *   [batch]
 *   max_records = 64             ; 1..VR_WIRE_MAX_RECORDS
 *   max_delay_us = 50            ; time bound of a partial batch
 *   window = 1024                ; sealed batches kept per stream until every member acks
 *   rto_us = 20000               ; retransmission timeout
 *
 *   [keys]                       ; payload key rotation (with hsm)
 *   rekey_batches = 4278190080   ; batches sealed under a key before the next one is made
 *                                ; (2^32 - 2^24; sealing stops at 2^32, vr_nonce.h)
 *   rekey_seconds = 86400        ; or after this long
 *   grace_ms = 1000              ; how long the origin waits for every member to confirm the
 *                                ; next key before sealing under it anyway
 *
 *   [log]
 *   cursor_ms = 1000             ; how often an origin saves what each member acknowledged (the
 *                                ; replication cursors, read back on restart)
 *   trim_records = 65536         ; and trims its log below what every member holds, once that
 *                                ; is this many records past the last trim
 *
 *   [crypto]
 *   pmd = crypto_aesni_gcm       ; or crypto_openssl
 *   sessions = 16384             ; crypto sessions (64..4194304): one per payload key in use
 *                                ; (two while a stream rotates); the pool is made whole at start
 *   session_idle_ms = 10000      ; a key unused this long gives its session back (made again on
 *                                ; its next batch): idle streams hold none
 *
 *   [idle]
 *   max_sleep_us = 200           ; adaptive back-off ceiling when idle; 0 = busy poll
 *
 *   [lcores]
 *   workers = 1                  ; worker lcores (1..DP_MAX_WORKERS), the EAL lcores after the
 *                                ; main one; streams are spread over them by a hash of the
 *                                ; stream id, and each is owned by one (D9). Of a port's
 *                                ; queues (its "queues"), worker w reads every q with
 *                                ; q % workers == w and sends on queue w; a worker without a
 *                                ; queue of its own on a port passes what it sends to worker
 *                                ; w % queues over a ring, and a datagram read by a worker
 *                                ; that does not own its stream goes to the owner over a ring.
 *                                ; More queues than 1 only where the link has them: a NIC's
 *                                ; RSS queues, net_af_packet qpairs=N, one rx_pcap/tx_pcap per
 *                                ; queue, or a net_memif whose far end has as many
 *
 *   [peer 2]                     ; one section per peer site: its id in the section name
 *   ip = 198.19.0.2
 *   udp = 4791                   ; default: this site's WAN udp
 *   mac = 02:00:00:00:00:02      ; optional: a static neighbour, never resolved by ARP
 *
 *   [consumer]                   ; optional: records applied here are delivered over UDP
 *   ip = 198.18.0.9
 *   udp = 4792
 *
 *   [bench]                      ; benchmarks only, never an appliance
 *   seal_only = 0                ; 1: ingest -> batch -> seal -> WAN, and nothing else: no log,
 *                                ; no acks, no producer order, no window (tools/bench-seal.sh
 *                                ; replays one pcap forever through it)
 */
#ifndef DP_CONF_H
#define DP_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	DP_MAX_PEERS = 16,
	DP_MAX_WORKERS = 4,
	DP_MAX_UIDS = 8,
	DP_PATH = 256,
};

struct dp_conf_port {
	uint16_t port;
	uint32_t ip; /* host order */
	uint16_t udp;
	uint16_t mtu;
	uint16_t queues;
};

struct dp_conf_peer {
	uint16_t site;
	uint32_t ip;
	uint16_t udp;
	bool has_mac;
	uint8_t mac[6];
};

struct dp_conf {
	uint16_t site;
	char log_dir[DP_PATH];
	char control[DP_PATH];
	char hsm[DP_PATH];
	char hsm_shard[49];
	uint64_t rekey_batches;
	uint32_t rekey_seconds;
	uint32_t grace_ms;
	uint32_t cursor_ms;
	uint32_t trim_records;
	uid_t uids[DP_MAX_UIDS];
	unsigned n_uids;
	struct dp_conf_port lan, wan;
	uint16_t max_records;
	uint32_t max_delay_us;
	uint32_t window;
	uint32_t rto_us;
	char pmd[32];
	uint32_t sessions;
	uint32_t session_idle_ms;
	uint32_t max_sleep_us;
	uint8_t workers;
	struct dp_conf_peer peers[DP_MAX_PEERS];
	unsigned n_peers;
	uint32_t consumer_ip;
	uint16_t consumer_udp;
	bool seal_only;
};

/* Parses path (or, when text is not NULL, the text) into c; 0, or -1 with err filled. */
int dp_conf_load(struct dp_conf *c, const char *path, const char *text, char *err, size_t err_n);

#endif /* DP_CONF_H */
