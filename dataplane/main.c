/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vaultrep-dataplane [EAL options] -- --config FILE
 *
 * Needs two DPDK ports (the [lan] and [wan] port ids) and 1 + [lcores] workers lcores (the main
 * lcore serves the control socket, the next ones are the workers). On this machine for example:
 *
 *   vaultrep-dataplane -l 0,1 --no-huge -m 512 --no-pci --file-prefix a \
 *       --vdev net_memif0,role=server,socket=/tmp/a-lan.sock \
 *       --vdev net_memif1,role=server,socket=/tmp/ab.sock -- --config a.ini
 */
#include <errno.h>
#include <execinfo.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <jansson.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_random.h>
#include <rte_telemetry.h>

#include "dp.h"
#include "dp_guard.h"
#include "vr_hsm.h"
#include "vr_msg.h"

static struct dp the_dp;

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&the_dp.quit, true);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: vaultrep-dataplane [EAL options] -- --config FILE\n"
	           "  --config FILE   the dataplane's INI configuration (see dataplane/dp_conf.h)\n"
	           "  --help          this text\n"
	           "EAL options: see dpdk's documentation; for example -l 0,1 --no-huge -m 512 "
	           "--no-pci --vdev ...\n");
}

static struct dp_job *
job_get(struct dp *dp, struct rte_mempool *mp)
{
	struct dp_job *j;

	if (rte_mempool_get(mp, (void **)&j))
		return NULL;
	j->next = NULL;
	j->n = 0;
	j->bytes = 0;
	j->status = 0;
	j->acks = (struct dp_ackto *)(j + 1);
	j->data = (uint8_t *)(j->acks + dp->job_acks);
	return j;
}

struct dp_job *
dp_job_get(struct dp *dp)
{
	return job_get(dp, dp->aux_mp);
}

struct dp_job *
dp_job_get_batch(struct dp *dp)
{
	return job_get(dp, dp->job_mp);
}

void
dp_job_put(struct dp_job *j)
{
	rte_mempool_put(rte_mempool_from_obj(j), j);
}

static int
port_init(struct dp *dp, struct dp_port *p, const struct dp_conf_port *c)
{
	struct rte_eth_conf conf = {.rxmode = {.mtu = c->mtu}};
	struct rte_eth_dev_info info;
	int rc;

	if (!rte_eth_dev_is_valid_port(c->port)) {
		fprintf(stderr,
		        "vaultrep-dataplane: no DPDK port %u (give it with --vdev or a PCI "
		        "address)\n",
		        c->port);
		return -ENODEV;
	}
	p->id = c->port;
	p->ip = c->ip;
	p->udp = c->udp;
	p->mtu = c->mtu;
	rc = rte_eth_dev_info_get(p->id, &info);
	if (rc)
		return rc;
	if (c->mtu > info.max_mtu)
		conf.rxmode.mtu = info.max_mtu;
	if (info.max_rx_queues < c->queues || info.max_tx_queues < c->queues) {
		fprintf(stderr,
		        "vaultrep-dataplane: port %u has %u rx and %u tx queues, fewer than its "
		        "queues = %u (net_af_packet: qpairs=N; net_pcap: one rx_pcap and tx_pcap "
		        "each)\n",
		        c->port, info.max_rx_queues, info.max_tx_queues, c->queues);
		return -EINVAL;
	}
	p->n_q = c->queues;
	rc = rte_eth_dev_configure(p->id, p->n_q, p->n_q, &conf);
	for (uint16_t q = 0; !rc && q < p->n_q; q++)
		rc = rte_eth_rx_queue_setup(p->id, q, 1024, (unsigned)rte_eth_dev_socket_id(p->id),
		                            NULL, dp->pkt_mp);
	for (uint16_t q = 0; !rc && q < p->n_q; q++)
		rc = rte_eth_tx_queue_setup(p->id, q, 1024, (unsigned)rte_eth_dev_socket_id(p->id),
		                            NULL);
	/* A worker without a tx queue of its own sends through the worker that has it. */
	for (unsigned w = p->n_q; !rc && w < dp->n_workers; w++) {
		char name[32];

		snprintf(name, sizeof(name), "vr_relay%u_%u", p->id, w);
		p->relay[w] = rte_ring_create(name, 1024, (int)rte_socket_id(),
		                              RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (!p->relay[w])
			rc = -ENOMEM;
	}
	/*
	 * A port whose far end is not there yet (a memif client before its server, or one that
	 * connects while the server still holds the connection of a killed predecessor) fails to
	 * start: try again for up to 5 s, as an appliance booting before its peer would.
	 */
	for (int tries = 0; !rc; tries++) {
		rc = rte_eth_dev_start(p->id);
		if (!rc || tries == 100)
			break;
		if (tries == 0)
			fprintf(stderr, "vaultrep-dataplane: port %u: %s; trying again for 5 s\n",
			        c->port, rte_strerror(-rc));
		usleep(50000);
		rc = 0;
	}
	if (!rc)
		rc = rte_eth_macaddr_get(p->id, &p->mac);
	if (rc)
		fprintf(stderr, "vaultrep-dataplane: port %u: %s\n", c->port, rte_strerror(-rc));
	rte_eth_promiscuous_enable(p->id);
	return rc;
}

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	for (unsigned i = 0; i < DP_N_COUNTERS; i++) {
		static const char *const names[] = {
#define X(n, desc) #n,
		    DP_COUNTERS(X)
#undef X
		};
		rte_tel_data_add_dict_u64(d, names[i], dp_counter(&the_dp, i));
	}
	return 0;
}

static int
tel_streams(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const void *key;
	void *data;
	uint32_t it = 0;

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	while (rte_hash_iterate(the_dp.streams, &key, &data, &it) >= 0) {
		const struct dp_stream *st = data;
		struct rte_tel_data *s = rte_tel_data_alloc();
		char name[64];
		uint64_t lag = 0;

		if (!s)
			break;
		for (unsigned i = 0; i < st->n_members; i++)
			if (st->durable_lsn - st->members[i].acked > lag)
				lag = st->durable_lsn - st->members[i].acked;
		rte_tel_data_start_dict(s);
		rte_tel_data_add_dict_u64(s, "durable_lsn", st->durable_lsn);
		rte_tel_data_add_dict_u64(s, "records", st->records);
		rte_tel_data_add_dict_u64(s, "bytes", st->bytes);
		rte_tel_data_add_dict_u64(s, "batches", st->batches);
		rte_tel_data_add_dict_u64(s, "lag_records", lag);
		snprintf(name, sizeof(name), "%lu/%u/%u", (unsigned long)st->id.account,
		         st->id.vault, st->id.primary);
		rte_tel_data_add_dict_container(d, name, s, 0);
	}
	return 0;
}

/*
 * Without a core dump (above), a crash leaves its stack on stderr: return addresses and symbols
 * only, never memory. Not in sanitizer builds, whose own report is better.
 */
#if defined(__SANITIZE_ADDRESS__)
#define VR_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VR_SANITIZED 1
#endif
#endif

#ifndef VR_SANITIZED
static void
on_fatal(int sig)
{
	static const char head[] = "vaultrep-dataplane: fatal signal; stack:\n";
	void *pcs[64];
	int n = backtrace(pcs, 64);

	if (write(STDERR_FILENO, head, sizeof(head) - 1) < 0) {
		/* nothing more to do */
	}
	backtrace_symbols_fd(pcs, n, STDERR_FILENO);
	raise(sig); /* SA_RESETHAND: the default action now */
}
#endif

static void
crash_report_init(void)
{
#ifndef VR_SANITIZED
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
	struct sigaction sa = {.sa_handler = on_fatal, .sa_flags = SA_RESETHAND | SA_NODEFER};
	void *pc;

	backtrace(&pc, 1); /* loads libgcc's unwinder now, not in the handler */
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
#endif
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"config", required_argument, 0, 'c'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	struct dp *dp = &the_dp;
	const char *config = NULL;
	char err[512], name[64];
	struct rte_hash_parameters hp = {
	    .name = "vr_streams",
	    .entries = 1 << 18,
	    .key_len = sizeof(struct dp_skey),
	    .extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};
	/* Origin batches (the windows) and every other job: dp->job_mp, dp->aux_mp. */
	unsigned n_jobs = 16384, n_aux = 4096;
	size_t qsz;
	int c, n, rc;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
	/* Key material must never reach a core dump, nor stay in freed JSON buffers. */
	prctl(PR_SET_DUMPABLE, 0);
	vr_hsm_json_wipe();
	setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
	crash_report_init();
	n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "vaultrep-dataplane: EAL: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	argc -= n;
	argv += n;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		if (c == 'c') {
			config = optarg;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!config) {
		usage(stderr);
		return 2;
	}
	if (dp_conf_load(&dp->conf, config, NULL, err, sizeof(err))) {
		fprintf(stderr, "vaultrep-dataplane: %s\n", err);
		return 2;
	}
	dp->hz = rte_get_tsc_hz();
	dp->boot = rte_rand();
	dp->n_workers = dp->conf.workers;
	for (unsigned w = 0, l = rte_get_main_lcore(); w < dp->n_workers; w++) {
		l = rte_get_next_lcore(l, 1, 0);
		if (l >= RTE_MAX_LCORE) {
			fprintf(
			    stderr,
			    "vaultrep-dataplane: [lcores] workers = %u needs %u lcores (the main "
			    "one and a worker each; for example -l 0-%u)\n",
			    dp->n_workers, dp->n_workers + 1, dp->n_workers);
			return 2;
		}
		dp->worker_lcore[w] = l;
	}
	dp->n_peers = dp->conf.n_peers;
	for (unsigned i = 0; i < dp->n_peers; i++) {
		struct rte_ether_addr mac;

		dp->peers[i] = (struct dp_peer){.site = dp->conf.peers[i].site,
		                                .ip = dp->conf.peers[i].ip,
		                                .udp = dp->conf.peers[i].udp,
		                                .fixed = dp->conf.peers[i].has_mac};
		memcpy(mac.addr_bytes, dp->conf.peers[i].mac, RTE_ETHER_ADDR_LEN);
		if (dp->conf.peers[i].has_mac)
			atomic_store(&dp->peers[i].l2, dp_l2_word(&mac));
	}
	dp->consumer = (struct dp_peer){.ip = dp->conf.consumer_ip, .udp = dp->conf.consumer_udp};

	/* Packet and job pools: the job pool bounds everything in flight (window, log ring). */
	snprintf(name, sizeof(name), "vr_pkt");
	dp->pkt_mp = rte_pktmbuf_pool_create(name, 16383, 256, 0,
	                                     dp->conf.wan.mtu > 1500 || dp->conf.lan.mtu > 1500
	                                         ? 9216 + RTE_PKTMBUF_HEADROOM
	                                         : RTE_MBUF_DEFAULT_BUF_SIZE,
	                                     (int)rte_socket_id());
	{
		struct vr_batcher b;

		vr_batch_init(&b, dp->conf.wan.mtu, dp->conf.max_records, 0);
		dp->job_bytes = b.max_bytes;
		dp->job_acks = b.max_records < b.max_bytes / VR_REC_HDR_SIZE + 1
		                   ? b.max_records
		                   : b.max_bytes / VR_REC_HDR_SIZE + 1;
	}
	{
		size_t sz =
		    sizeof(struct dp_job) + dp->job_acks * sizeof(struct dp_ackto) + dp->job_bytes;

		dp->job_mp = rte_mempool_create("vr_jobs", n_jobs - 1, sz, 256, 0, NULL, NULL, NULL,
		                                NULL, (int)rte_socket_id(), 0);
		dp->aux_mp = rte_mempool_create("vr_jobs_aux", n_aux - 1, sz, 128, 0, NULL, NULL,
		                                NULL, NULL, (int)rte_socket_id(), 0);
	}
	/* The log ring and the done rings hold every job there is. */
	dp->log_ring = rte_ring_create("vr_log", rte_align32pow2(n_jobs + n_aux),
	                               (int)rte_socket_id(), RING_F_SC_DEQ);
	/* Key messages: as many as streams could have at once is far more than ever queue. */
	dp->to_ctl = rte_ring_create("vr_to_ctl", 1 << 14, (int)rte_socket_id(), RING_F_SC_DEQ);
	for (unsigned w = 0; w < dp->n_workers; w++) {
		snprintf(name, sizeof(name), "vr_done%u", w);
		dp->done_ring[w] =
		    rte_ring_create(name, rte_align32pow2(n_jobs + n_aux), (int)rte_socket_id(),
		                    RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "vr_to_worker%u", w);
		dp->to_worker[w] = rte_ring_create(name, 1 << 14, (int)rte_socket_id(),
		                                   RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (!dp->done_ring[w] || !dp->to_worker[w])
			dp->log_ring = NULL; /* reported below */
		for (unsigned to = 0; to < dp->n_workers; to++) {
			if (to == w)
				continue;
			snprintf(name, sizeof(name), "vr_handoff%u_%u", w, to);
			dp->handoff[w][to] = rte_ring_create(name, 4096, (int)rte_socket_id(),
			                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
			if (!dp->handoff[w][to])
				dp->log_ring = NULL;
		}
	}
	dp->ctl_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	hp.socket_id = (int)rte_socket_id();
	{
		struct rte_malloc_socket_stats a, b;

		rte_malloc_get_socket_stats((int)rte_socket_id(), &a);
		dp->streams = rte_hash_create(&hp);
		rte_malloc_get_socket_stats((int)rte_socket_id(), &b);
		dp->hash_bytes = b.heap_allocsz_bytes - a.heap_allocsz_bytes;
	}
	qsz = rte_rcu_qsbr_get_memsize(RTE_MAX_LCORE);
	dp->qsbr = rte_zmalloc("vr_qsbr", qsz, RTE_CACHE_LINE_SIZE);
	if (!dp->pkt_mp || !dp->job_mp || !dp->aux_mp || !dp->log_ring || !dp->to_ctl ||
	    dp->ctl_wake < 0 || !dp->streams || !dp->qsbr ||
	    rte_rcu_qsbr_init(dp->qsbr, RTE_MAX_LCORE)) {
		fprintf(stderr, "vaultrep-dataplane: out of memory (give EAL more with -m)\n");
		return 1;
	}
	/* A peer that goes away must not take a worker with it (dp_guard.h). */
	dp_guard_unmap(dp->qsbr);
	if (port_init(dp, &dp->lan, &dp->conf.lan) || port_init(dp, &dp->wan, &dp->conf.wan))
		return 1;
	rc = dp_crypto_init(&dp->crypto, dp->conf.pmd, (uint16_t)dp->n_workers, dp->conf.sessions,
	                    (int)rte_socket_id());
	if (rc) {
		fprintf(stderr, "vaultrep-dataplane: crypto device %s: %s\n", dp->conf.pmd,
		        strerror(-rc));
		return 1;
	}
	/* Every WAL read back first: a damaged log is refused at start, never served with a hole.
	 */
	dp->log = vr_log_open(dp->conf.log_dir, &(struct vr_log_opts){.verify = true});
	if (!dp->log) {
		int e = errno;

		fprintf(stderr, "vaultrep-dataplane: log %s: %s%s\n", dp->conf.log_dir, strerror(e),
		        e == EUCLEAN ? ": the log is damaged (where: above) and was left as it is"
		                     : "");
		/* A disk that failed a write may do better on the next try (DP_EXIT_LOG). */
		return e == EIO || e == ENOSPC ? DP_EXIT_LOG : 1;
	}
	rte_telemetry_register_cmd("/vaultrep/stats", tel_stats,
	                           "Every vaultrep dataplane counter. No parameters.");
	rte_telemetry_register_cmd(
	    "/vaultrep/streams", tel_streams,
	    "Per-stream figures (durable LSN, records, bytes, batches, lag). "
	    "No parameters.");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = dp_logw_start(dp))) {
		fprintf(stderr, "vaultrep-dataplane: log writer: %s\n", strerror(-rc));
		return 1;
	}
	for (unsigned w = 0; w < dp->n_workers; w++) {
		static struct dp_worker_arg args[DP_MAX_WORKERS];

		args[w] = (struct dp_worker_arg){.dp = dp, .idx = w};
		rte_eal_remote_launch(dp_worker_main, &args[w], dp->worker_lcore[w]);
	}
	printf("vaultrep-dataplane: site %u, lan port %u (%u queues), wan port %u (%u), %u "
	       "workers, crypto %s (%s), control %s\n",
	       dp->conf.site, dp->lan.id, dp->lan.n_q, dp->wan.id, dp->wan.n_q, dp->n_workers,
	       dp->crypto.pmd, dp->crypto.cpu ? "cpu crypto" : "queue pair", dp->conf.control);
	fflush(stdout);
	rc = dp_ctl_serve(dp);
	if (rc) {
		fprintf(stderr, "vaultrep-dataplane: control socket %s: %s\n", dp->conf.control,
		        strerror(-rc));
		atomic_store(&dp->quit, true);
	}
	rte_eal_mp_wait_lcore();
	if (atomic_load(&dp->log_error)) {
		/*
		 * Fail-stop (logw.c) ends as a crash would, without the teardown: there is nothing
		 * left to save, and a producer reconnecting to the LAN's memif while DPDK 22.11
		 * closes it crashes EAL's interrupt thread (seen in CI, in the message handler).
		 */
		fprintf(stderr, "vaultrep-dataplane: stopped: the log failed (%s)\n",
		        strerror(-atomic_load(&dp->log_error)));
		_exit(DP_EXIT_LOG);
	}
	dp_logw_stop(dp);
	dp_streams_free(dp);
	vr_log_close(dp->log);
	dp_guard_intr_sync(1000); /* a peer's teardown in progress ends first */
	rte_eth_dev_stop(dp->lan.id);
	rte_eth_dev_stop(dp->wan.id);
	dp_crypto_fini(&dp->crypto);
	dp_guard_unmap(NULL); /* its QSBR variable goes with EAL's memory */
	rte_eal_cleanup();
	printf("vaultrep-dataplane: stopped\n");
	return rc ? 1 : 0;
}
