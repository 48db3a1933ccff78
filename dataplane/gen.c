/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vaultrep-gen: a DPDK packet generator that speaks the ingest protocol (vr_wire.h).
 *
 *   vaultrep-gen [EAL options] -- --ip A.B.C.D --dst A.B.C.D [--udp 4790] [--streams N]
 *       [--account A] [--vault V] [--records N] [--size BYTES] [--rate R] [--window W]
 *       [--producer ID] [--seconds S] [--report FILE] [--pcap FILE] [--acks FILE] [--lenient]
 *       [--reconnect S]
 *
 * Sends --records frames round-robin over --streams streams (accounts A..A+N-1, vault V) to the
 * dataplane's LAN address, at --rate frames/s (0: as fast as the window allows), with at most
 * --window frames per stream awaiting their ack. It checks every ack: it must name a frame in
 * flight, and the LSNs a stream's acks carry must be consecutive in the order of the frames
 * (one producer per stream here). A nack for back-pressure or order (EBUSY, ERANGE) sends the
 * stream again from its first unacked frame after a pause (0.5 ms; after EBUSY, doubled while
 * the back-pressure lasts, up to 100 ms); a frame unacked for 200 ms is sent again (the
 * dataplane answers a repeat with its original ack). At the end it prints throughput and ack
 * latency percentiles (a frame's latency runs from its first send, resends included), and with
 * --report writes one JSON line per stream (account, first and last LSN acked) for tests to
 * compare with the receiver's log. It exits with 0 once every frame is acked (or, stopped by
 * SIGINT or SIGTERM, if every ack it saw was right), else 1.
 *
 * --acks FILE writes "account seq lsn" for every frame an ack names, and for every earlier
 * frame it is the first to cover (acks are cumulative: their LSNs are the ones just before), as
 * the acks come (a frame acked twice has two lines); --lenient does not fail on LSNs out of
 * order (an appliance restarted under it may append a frame whose ack it lost twice: at least
 * once, never lost). When the link goes down (the appliance went away) it writes its report and
 * exits with 75, unless --reconnect S: then it starts its port again until the link is back (at
 * most S seconds) and sends every stream again from its first unacked frame, as one producer
 * session that outlives the appliance's restart (a frame the appliance had logged before it
 * died must be acked, not appended twice: the LSN check sees it). --pcap FILE writes the frames
 * (Ethernet/IPv4/UDP) to a pcap file instead of sending them, for dpdk-testpmd or net_pcap
 * replay.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_udp.h>

#include "dp_guard.h"
#include "dp_net.h"
#include "vr_wire.h"

enum { BURST = 32, MAX_WIN = 1024 };

struct gstream {
	uint64_t account;
	uint64_t next_seq;  /* next new frame */
	uint64_t acked_seq; /* every frame <= this is acked */
	uint64_t resend_from;
	uint64_t hold_until; /* TSC: a nack pauses the stream a little */
	uint64_t busy_hold;  /* TSC ticks: the pause after EBUSY, doubled while it lasts */
	uint64_t quota;      /* frames this stream sends: --records spread evenly */
	uint64_t first_lsn, last_lsn;
	uint64_t sent_tsc[MAX_WIN];  /* last send: its timeout runs from there */
	uint64_t first_tsc[MAX_WIN]; /* first send: its ack latency runs from there */
	bool done_seq[MAX_WIN];
	uint64_t lsn_of[MAX_WIN];
};

static struct {
	uint16_t port;
	uint32_t ip, dst;
	uint16_t udp, sport;
	uint32_t streams, vault, producer;
	uint64_t account, records;
	uint32_t size, window;
	double rate, seconds;
	const char *report, *pcap, *acks;
	bool lenient;
	double reconnect;
} o = {.udp = 4790,
       .sport = 40000,
       .streams = 1,
       .vault = 1,
       .producer = 1,
       .account = 1,
       .records = 1000,
       .size = 64,
       .window = 64,
       .seconds = 60};

static struct rte_ether_addr my_mac, dst_mac;
static struct rte_mempool *mp;
static volatile bool quit;
static uint64_t *lat_us;
static uint64_t n_lat, n_acked, bad_acks, nacks, resent, lsn_errors, reconnects;
/*
 * --acks: written as the acks come, flushed every 50 ms, so that what a generator was told
 * survives it, however it ends.
 */
static FILE *acks_f;
/* The one thread that does port I/O reports a quiescent state every round (dp_guard.h). */
static struct rte_rcu_qsbr *qv;

static void
on_signal(int s)
{
	(void)s;
	quit = true;
}

static struct rte_mbuf *
frame(struct gstream *s, uint64_t seq, uint8_t *payload)
{
	uint16_t len = (uint16_t)(VR_WIRE_INGEST_HDR + o.size);
	struct dp_endpoint src = {.mac = my_mac, .ip = o.ip, .udp = o.sport};
	struct dp_endpoint dst = {.mac = dst_mac, .ip = o.dst, .udp = o.udp};
	struct vr_ingest f = {
	    .producer = o.producer,
	    .producer_seq = seq,
	    .account = s->account,
	    .vault = o.vault,
	    .rec_type = 1, /* data */
	    .op = 3,       /* put */
	    .payload_size = (uint16_t)o.size,
	    .flags = seq == s->acked_seq + 1 ? VR_WIRE_F_RESUME : 0,
	    .payload = payload,
	};
	uint8_t *pl;
	struct rte_mbuf *m = dp_udp_new(mp, &src, &dst, len, &pl);

	if (!m)
		return NULL;
	/* The payload names its stream and sequence, so a receiver can check every byte. */
	memset(payload, (int)(seq & 0xff), o.size);
	if (o.size >= 16) {
		memcpy(payload, &s->account, 8);
		memcpy(payload + 8, &seq, 8);
	}
	vr_wire_ingest_encode(&f, pl, len);
	return m;
}

static void
arp_request(void)
{
	struct rte_mbuf *m = dp_arp_new(mp, &my_mac, o.ip, NULL, o.dst);

	if (m && !rte_eth_tx_burst(o.port, 0, &m, 1))
		rte_pktmbuf_free(m);
}

static int
resolve(void)
{
	uint64_t hz = rte_get_tsc_hz(), end = rte_rdtsc() + 10 * hz, next = 0;
	int rc = -ETIMEDOUT;

	rte_rcu_qsbr_thread_online(qv, 0);
	while (rte_rdtsc() < end && !quit && rc) {
		struct rte_mbuf *pk[BURST];
		uint16_t n;

		rte_rcu_qsbr_quiescent(qv, 0);
		if (rte_rdtsc() >= next) {
			arp_request();
			next = rte_rdtsc() + hz / 5;
		}
		n = rte_eth_rx_burst(o.port, 0, pk, BURST);
		for (uint16_t i = 0; i < n; i++) {
			struct rte_ether_hdr *eth = rte_pktmbuf_mtod(pk[i], struct rte_ether_hdr *);
			struct rte_arp_hdr *a = (struct rte_arp_hdr *)(eth + 1);

			if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) &&
			    a->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
			    a->arp_data.arp_sip == rte_cpu_to_be_32(o.dst)) {
				dst_mac = a->arp_data.arp_sha;
				rc = 0;
			}
			rte_pktmbuf_free(pk[i]);
		}
	}
	rte_rcu_qsbr_thread_offline(qv, 0);
	return rc;
}

/*
 * --reconnect: the appliance went away. Once EAL's interrupt thread has torn the link down, the
 * port is stopped and started again (a memif client connects at start) until the link is back.
 * 0, or -ETIMEDOUT after o.reconnect seconds.
 */
static int
reconnect(void)
{
	uint64_t hz = rte_get_tsc_hz(), end = rte_rdtsc() + (uint64_t)(o.reconnect * (double)hz);
	int rc = -ETIMEDOUT;

	rte_rcu_qsbr_thread_offline(qv, 0); /* no port I/O here until it is back */
	dp_guard_intr_sync(1000);
	rte_eth_dev_stop(o.port);
	while (rc && !quit && rte_rdtsc() < end) {
		struct rte_eth_link link;

		if (rte_eth_dev_start(o.port)) {
			usleep(100000);
			continue;
		}
		for (int i = 0; i < 50 && rc && !quit; i++) {
			if (rte_eth_link_get_nowait(o.port, &link) == 0 && link.link_status)
				rc = 0;
			else
				usleep(20000);
		}
		if (rc) {
			dp_guard_intr_sync(1000);
			rte_eth_dev_stop(o.port);
		}
	}
	rte_rcu_qsbr_thread_online(qv, 0);
	return rc;
}

static struct gstream *
stream_of(struct gstream *ss, uint64_t account)
{
	if (account < o.account || account >= o.account + o.streams)
		return NULL;
	return &ss[account - o.account];
}

static void
on_ack(struct gstream *ss, const uint8_t *pl, size_t n, uint64_t now, uint64_t hz)
{
	struct vr_ack a;
	struct gstream *s;
	uint64_t slot;

	if (vr_wire_ack_parse(pl, n, &a) || a.producer != o.producer ||
	    !(s = stream_of(ss, a.account))) {
		if (bad_acks++ < 5)
			fprintf(stderr,
			        "vaultrep-gen: a datagram that is not an ack of ours (%zu B)\n", n);
		return;
	}
	if (a.producer_seq <= s->acked_seq || a.producer_seq >= s->next_seq) {
		if (a.producer_seq <= s->acked_seq)
			return; /* the answer to a frame sent again (an ack, or a stale nack) */
		if (bad_acks++ < 5)
			fprintf(stderr,
			        "vaultrep-gen: unexpected %s of frame %" PRIu64 " (stream %" PRIu64
			        ", status %u, lsn %" PRIu64 "): acked up to %" PRIu64
			        ", sent below %" PRIu64 "\n",
			        a.kind == VR_WIRE_ACK ? "ack" : "nack", a.producer_seq, a.account,
			        a.status, a.lsn, s->acked_seq, s->next_seq);
		return;
	}
	slot = a.producer_seq % MAX_WIN;
	if (a.kind == VR_WIRE_NACK) {
		/* ERANGE names the frame expected next; 0: "from your first unacked one". */
		uint64_t from = a.status != ERANGE ? a.producer_seq
		                : a.lsn            ? a.lsn
		                                   : s->acked_seq + 1;

		nacks++;
		/*
		 * A restarted appliance may not know the stream yet; it will. EIO, ENOSPC: its
		 * log failed to make the frame durable; it is sent again after the timeout.
		 */
		if (a.status == EIO || a.status == ENOSPC)
			return;
		if (a.status != EBUSY && a.status != ERANGE &&
		    !((o.lenient || o.reconnect > 0) && a.status == ENOENT)) {
			if (bad_acks++ < 5)
				fprintf(stderr, "vaultrep-gen: nack of frame %" PRIu64 ": %s\n",
				        a.producer_seq, strerror(a.status));
			return;
		}
		/* Back-pressure or a lost frame: pause, then resend from where the appliance is. */
		if (from > s->acked_seq && from < s->next_seq &&
		    (!s->resend_from || from < s->resend_from))
			s->resend_from = from;
		/*
		 * EBUSY: the appliance's window is full (a member is away); back off exponentially,
		 * 0.5 ms to 100 ms, instead of answering every nack with the whole window again.
		 * The ERANGE nacks of the frames behind it do not shorten that pause.
		 */
		if (a.status == EBUSY)
			s->busy_hold =
			    s->busy_hold ? RTE_MIN(2 * s->busy_hold, hz / 10) : hz / 2000;
		if (now + RTE_MAX(s->busy_hold, hz / 2000) > s->hold_until)
			s->hold_until = now + RTE_MAX(s->busy_hold, hz / 2000);
		return;
	}
	s->busy_hold = 0;
	if (acks_f)
		fprintf(acks_f, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->account, a.producer_seq,
		        a.lsn);
	/* Cumulative: every earlier frame is durable too, at the LSNs just before. */
	for (uint64_t q = s->acked_seq + 1; q <= a.producer_seq; q++) {
		uint64_t sl = q % MAX_WIN, l = a.lsn - (a.producer_seq - q);

		if (s->done_seq[sl]) {
			if (s->lsn_of[sl] != l)
				lsn_errors++;
			continue;
		}
		s->done_seq[sl] = true;
		s->lsn_of[sl] = l;
		if (acks_f && q != a.producer_seq)
			fprintf(acks_f, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->account, q, l);
		lat_us[n_lat++ % (1u << 22)] = (now - s->first_tsc[sl]) * 1000000 / hz;
	}
	(void)slot;
	/* Advance the contiguous acked prefix; LSNs must follow the frames' order. */
	while (s->acked_seq + 1 < s->next_seq && s->done_seq[(s->acked_seq + 1) % MAX_WIN]) {
		uint64_t l = s->lsn_of[(s->acked_seq + 1) % MAX_WIN];

		if (s->last_lsn && l != s->last_lsn + 1)
			lsn_errors++;
		if (!s->first_lsn)
			s->first_lsn = l;
		s->last_lsn = l;
		s->acked_seq++;
		n_acked++;
		s->done_seq[s->acked_seq % MAX_WIN] = false;
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
write_pcap(void)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d = p ? pcap_dump_open(p, o.pcap) : NULL;
	struct gstream *ss = calloc(o.streams, sizeof(*ss));
	uint8_t *payload = malloc(o.size + 16);

	if (!d || !ss || !payload) {
		fprintf(stderr, "vaultrep-gen: %s: %s\n", o.pcap, p ? pcap_geterr(p) : "no memory");
		return 1;
	}
	for (uint64_t i = 0; i < o.records; i++) {
		struct gstream *s = &ss[i % o.streams];
		struct rte_mbuf *m;
		struct pcap_pkthdr h = {0};

		s->account = o.account + i % o.streams;
		m = frame(s, ++s->next_seq, payload);
		if (!m)
			return 1;
		h.caplen = h.len = rte_pktmbuf_pkt_len(m);
		pcap_dump((u_char *)d, &h, rte_pktmbuf_mtod(m, u_char *));
		rte_pktmbuf_free(m);
	}
	pcap_dump_close(d);
	pcap_close(p);
	printf("vaultrep-gen: wrote %" PRIu64 " frames of %u B to %s\n", o.records, o.size, o.pcap);
	free(ss);
	free(payload);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: vaultrep-gen [EAL options] -- --ip A.B.C.D --dst A.B.C.D [--udp 4790]\n"
	           "  [--port 0] [--streams N] [--account A] [--vault V] [--records N] [--size B]\n"
	           "  [--rate R] [--window W] [--producer ID] [--seconds S] [--report FILE]\n"
	           "  [--pcap FILE] [--acks FILE] [--lenient] [--reconnect S]\n");
}

static int
ipv4(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"port", 1, 0, 'P'},      {"ip", 1, 0, 'i'},      {"dst", 1, 0, 'd'},
	    {"udp", 1, 0, 'u'},       {"streams", 1, 0, 's'}, {"account", 1, 0, 'a'},
	    {"vault", 1, 0, 'v'},     {"records", 1, 0, 'n'}, {"size", 1, 0, 'z'},
	    {"rate", 1, 0, 'r'},      {"window", 1, 0, 'w'},  {"producer", 1, 0, 'p'},
	    {"seconds", 1, 0, 't'},   {"report", 1, 0, 'R'},  {"pcap", 1, 0, 'c'},
	    {"acks", 1, 0, 'A'},      {"lenient", 0, 0, 'L'}, {"help", 0, 0, 'h'},
	    {"reconnect", 1, 0, 'C'}, {0, 0, 0, 0},
	};
	struct rte_eth_conf conf = {0};
	struct gstream *ss;
	uint8_t *payload;
	uint64_t hz, t0, t_end, next_send, gap, sent = 0, next_link = 0;
	bool gone = false;
	struct rte_mbuf *pend[2 * BURST];
	uint16_t npend = 0;
	uint32_t rr = 0, idle = 0;
	uint64_t nap = 0;
	int c, n;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "vaultrep-gen: EAL: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	argc -= n;
	argv += n;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'P':
			o.port = (uint16_t)atoi(optarg);
			break;
		case 'i':
			if (ipv4(optarg, &o.ip))
				goto bad;
			break;
		case 'd':
			if (ipv4(optarg, &o.dst))
				goto bad;
			break;
		case 'u':
			o.udp = (uint16_t)atoi(optarg);
			break;
		case 's':
			o.streams = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'a':
			o.account = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			o.vault = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			o.records = strtoull(optarg, NULL, 0);
			break;
		case 'z':
			o.size = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'r':
			o.rate = strtod(optarg, NULL);
			break;
		case 'w':
			o.window = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'p':
			o.producer = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 't':
			o.seconds = strtod(optarg, NULL);
			break;
		case 'R':
			o.report = optarg;
			break;
		case 'c':
			o.pcap = optarg;
			break;
		case 'A':
			o.acks = optarg;
			break;
		case 'L':
			o.lenient = true;
			break;
		case 'C':
			o.reconnect = strtod(optarg, NULL);
			break;
		default:
			goto bad;
		}
	}
	if (!o.streams || !o.window || o.window > MAX_WIN / 2 || o.size > VR_WIRE_MAX_PAYLOAD ||
	    (!o.pcap && (!o.ip || !o.dst))) {
	bad:
		usage(stderr);
		return 2;
	}
	mp = rte_pktmbuf_pool_create("gen", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE + 8192,
	                             (int)rte_socket_id());
	if (!mp) {
		fprintf(stderr, "vaultrep-gen: no memory for mbufs\n");
		return 1;
	}
	if (o.pcap)
		return write_pcap();
	qv = rte_zmalloc("vr_gen_qsbr", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE);
	if (!qv || rte_rcu_qsbr_init(qv, 1) || rte_rcu_qsbr_thread_register(qv, 0)) {
		fprintf(stderr, "vaultrep-gen: out of memory (give EAL more with -m)\n");
		return 1;
	}
	dp_guard_unmap(qv);
	if (rte_eth_dev_configure(o.port, 1, 1, &conf) ||
	    rte_eth_rx_queue_setup(o.port, 0, 1024, (unsigned)rte_eth_dev_socket_id(o.port), NULL,
	                           mp) ||
	    rte_eth_tx_queue_setup(o.port, 0, 1024, (unsigned)rte_eth_dev_socket_id(o.port),
	                           NULL) ||
	    rte_eth_dev_start(o.port) || rte_eth_macaddr_get(o.port, &my_mac)) {
		fprintf(stderr, "vaultrep-gen: port %u does not start\n", o.port);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (resolve()) {
		fprintf(stderr, "vaultrep-gen: no ARP answer from the dataplane\n");
		return 1;
	}
	ss = calloc(o.streams, sizeof(*ss));
	payload = malloc(o.size + 16);
	lat_us = malloc(sizeof(*lat_us) << 22);
	if (!ss || !payload || !lat_us)
		return 1;
	for (uint32_t i = 0; i < o.streams; i++) {
		ss[i].account = o.account + i;
		ss[i].next_seq = 1;
		ss[i].quota = o.records / o.streams + (i < o.records % o.streams);
	}
	if (o.acks && !(acks_f = fopen(o.acks, "w"))) {
		fprintf(stderr, "vaultrep-gen: %s: %s\n", o.acks, strerror(errno));
		return 1;
	}
	hz = rte_get_tsc_hz();
	t0 = rte_rdtsc();
	t_end = t0 + (uint64_t)(o.seconds * (double)hz);
	gap = o.rate > 0 ? (uint64_t)((double)hz / o.rate) : 0;
	next_send = t0;
	rte_rcu_qsbr_thread_online(qv, 0);
	while (!quit && rte_rdtsc() < t_end) {
		struct rte_mbuf *tx[BURST], *rx[BURST];
		uint16_t ntx = 0, nrx;
		uint64_t now = rte_rdtsc();

		rte_rcu_qsbr_quiescent(qv, 0);

		/*
		 * The appliance went away (its link is down): with --reconnect, wait for it and
		 * send every stream again from its first unacked frame; else stop, report what was
		 * acked and exit with 75, so that a script can start a new producer session.
		 */
		if (now >= next_link) {
			struct rte_eth_link link;

			next_link = now + hz / 20;
			if (acks_f)
				fflush(acks_f);
			if (rte_eth_link_get_nowait(o.port, &link) == 0 && !link.link_status) {
				if (o.reconnect <= 0 || reconnect()) {
					gone = true;
					break;
				}
				reconnects++;
				rte_pktmbuf_free_bulk(pend, npend);
				npend = 0;
				for (uint32_t i = 0; i < o.streams; i++) {
					struct gstream *s = &ss[i];

					s->resend_from =
					    s->acked_seq + 1 < s->next_seq ? s->acked_seq + 1 : 0;
					s->hold_until = s->busy_hold = 0;
				}
				next_link = rte_rdtsc() + hz / 20;
				continue;
			}
		}
		/* New frames (round robin), resends from the first unacked, and timeouts. */
		for (uint32_t k = 0; k < o.streams && ntx < BURST && !npend; k++) {
			struct gstream *s = &ss[(rr + k) % o.streams];
			uint64_t seq;
			bool again = true;

			if (now < s->hold_until)
				continue;

			if (s->resend_from) {
				seq = s->resend_from;
				s->resend_from = seq + 1 < s->next_seq ? seq + 1 : 0;
			} else if (s->acked_seq + 1 < s->next_seq &&
			           now - s->sent_tsc[(s->acked_seq + 1) % MAX_WIN] > hz / 5) {
				seq = s->acked_seq + 1;
				s->resend_from = seq + 1 < s->next_seq ? seq + 1 : 0;
			} else if (s->next_seq <= s->quota &&
			           s->next_seq - s->acked_seq <= o.window &&
			           (!gap || now >= next_send)) {
				seq = s->next_seq++;
				sent++;
				again = false;
				next_send += gap;
			} else {
				continue;
			}
			if (s->done_seq[seq % MAX_WIN])
				continue;
			tx[ntx] = frame(s, seq, payload);
			if (!tx[ntx])
				break;
			resent += again;
			s->sent_tsc[seq % MAX_WIN] = now;
			if (!again)
				s->first_tsc[seq % MAX_WIN] = now;
			ntx++;
		}
		rr++;
		/* What the port does not take now waits for the next round, in order. */
		for (uint16_t i = 0; i < ntx; i++)
			pend[npend++] = tx[i];
		if (npend) {
			uint16_t k = rte_eth_tx_burst(o.port, 0, pend, npend);

			memmove(pend, pend + k, (size_t)(npend - k) * sizeof(pend[0]));
			npend = (uint16_t)(npend - k);
		}
		nrx = rte_eth_rx_burst(o.port, 0, rx, BURST);
		for (uint16_t i = 0; i < nrx; i++) {
			struct rte_ether_hdr *eth = rte_pktmbuf_mtod(rx[i], struct rte_ether_hdr *);
			struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
			struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
			uint32_t len = rte_pktmbuf_data_len(rx[i]);

			if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) &&
			    len >= sizeof(*eth) + sizeof(*ip) + sizeof(*udp) &&
			    ip->next_proto_id == IPPROTO_UDP)
				on_ack(ss, (uint8_t *)(udp + 1),
				       len - sizeof(*eth) - sizeof(*ip) - sizeof(*udp), rte_rdtsc(),
				       hz);
		}
		rte_pktmbuf_free_bulk(rx, nrx);
		/*
		 * A round with nothing to send or take sleeps: at a set rate until the next frame
		 * is due, at full rate (every window full) a little longer each idle round; both at
		 * most 50 us. The generator stands in for a producer on another host, and a
		 * spinning one would take its cores from the appliance it measures.
		 */
		if (ntx || nrx || npend) {
			idle = 0;
			nap = 0;
		} else if (gap ? next_send > now : ++idle > 16) {
			uint64_t most = hz / 20000; /* 50 us */
			struct timespec ts;

			if (gap)
				nap = next_send - now;
			else
				nap = nap ? nap * 2 : hz / 1000000;
			if (nap > most)
				nap = most;
			ts = (struct timespec){.tv_nsec = (long)(nap * 1000000000 / hz)};
			rte_rcu_qsbr_thread_offline(qv, 0);
			nanosleep(&ts, NULL);
			rte_rcu_qsbr_thread_online(qv, 0);
		}
		/* Kept as acks come: a sum over the streams each round was 40 % of its CPU. */
		if (n_acked >= o.records)
			break;
	}
	rte_rcu_qsbr_thread_offline(qv, 0);
	{
		double secs = (double)(rte_rdtsc() - t0) / (double)hz;
		uint64_t nl = n_lat < (1u << 22) ? n_lat : (1u << 22);

		qsort(lat_us, nl, sizeof(*lat_us), cmp_u64);
		printf("vaultrep-gen: sent %" PRIu64 " acked %" PRIu64
		       " in %.3f s: %.0f records/s, "
		       "%.1f Mb/s of payload\n",
		       sent, n_acked, secs, (double)n_acked / secs,
		       (double)n_acked * o.size * 8 / secs / 1e6);
		printf("vaultrep-gen: ack latency us p50 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64
		       "; nacks %" PRIu64 ", resent %" PRIu64 ", bad acks %" PRIu64
		       ", lsn order errors %" PRIu64 ", reconnects %" PRIu64 "\n",
		       nl ? lat_us[nl / 2] : 0, nl ? lat_us[nl * 99 / 100] : 0,
		       nl ? lat_us[nl * 999 / 1000] : 0, nacks, resent, bad_acks, lsn_errors,
		       reconnects);
	}
	if (o.report) {
		FILE *f = fopen(o.report, "w");

		for (uint32_t i = 0; f && i < o.streams; i++)
			fprintf(f,
			        "{\"account\": %" PRIu64 ", \"vault\": %u, \"acked\": %" PRIu64
			        ", \"first_lsn\": %" PRIu64 ", \"last_lsn\": %" PRIu64 "}\n",
			        ss[i].account, o.vault, ss[i].acked_seq, ss[i].first_lsn,
			        ss[i].last_lsn);
		if (f)
			fclose(f);
	}
	if (acks_f)
		fclose(acks_f);
	/* A link that went down is being torn down on EAL's interrupt thread: not twice at once. */
	dp_guard_intr_sync(1000);
	rte_eth_dev_stop(o.port);
	dp_guard_unmap(NULL); /* its QSBR variable goes with EAL's memory */
	rte_eal_cleanup();
	free(ss);
	free(payload);
	free(lat_us);
	if (gone) {
		fprintf(stderr, "vaultrep-gen: the appliance's link went down\n");
		return 75;
	}
	/* Stopped by a signal: 0 if every ack it saw was right. */
	return (n_acked >= o.records || quit) && !bad_acks && (o.lenient || !lsn_errors) ? 0 : 1;
}
