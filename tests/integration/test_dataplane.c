/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Two real vaultrep-dataplane processes (sites 1 and 2) and real vaultrep-gen producers, on
 * DPDK virtual devices of this machine (--no-huge): WAN over net_memif between the sites, LAN
 * over net_memif toward each site's generator.
 *
 * What is checked, after the processes stopped, by opening both sites' logs:
 *   - every frame the generator sent was acked, with LSNs in the order of the frames;
 *   - the receiver's log holds exactly the origin's records, byte for byte, in LSN order, the
 *     entropy chain verifies, and every payload is the one the generator made for that
 *     (stream, frame);
 *   - the acks a generator saw name exactly the records in the logs (first and last LSN per
 *     stream).
 *
 * VR_DP_RECORDS (default 1 000 000) and VR_DP_STREAMS (default 100) size the main run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sites.h"
#include "vr_replay.h"

START_TEST(one_way_memif)
{
	unsigned streams = env_u("VR_DP_STREAMS", 100), records = env_u("VR_DP_RECORDS", 1000000);
	unsigned per = records / streams;
	struct site a, b;
	char report[400];
	uint64_t checked, trimmed = 0;
	int g;

	records = per * streams;
	setup(&a, &b);
	snprintf(report, sizeof(report), "%s/gen1.json", root);
	stage("sites up");
	streams_add(&a, &b, 1, streams);
	stage("streams added");
	g = gen_start(&a, 1, streams, records, report);
	g = gen_wait(g);
	print_stats(&a);
	print_stats(&b);
	ck_assert_int_eq(g, 0);
	stage("generator done");
	wait_caught_up(&a, &b, 1, streams);
	stage("receiver caught up");
	/*
	 * Acks are cumulative: every record is acked, by fewer datagrams (one for a producer's
	 * run of records in a batch); site 2 acks a stream once for all its batches that one
	 * burst of completions makes durable, so it sends fewer acks than it took batches.
	 */
	ck_assert_int_ge(counter(&a, "records_acked"), records);
	ck_assert_int_lt(counter(&a, "acks_sent"), counter(&a, "records_acked"));
	printf("dataplane: %lld records acked in %lld ack datagrams; site 2 took %lld batches, "
	       "sent %lld acks and gap reports\n",
	       counter(&a, "records_acked"), counter(&a, "acks_sent"), counter(&b, "wan_rx"),
	       counter(&b, "wan_acks_sent"));
	ck_assert_int_lt(counter(&b, "wan_acks_sent"), counter(&b, "wan_rx"));
	/* The origin keeps only what site 2 has not acknowledged, and its latest group. */
	wait_acked(&a, 1, streams);
	for (unsigned s = 1; s <= streams; s++) {
		int tries = 0;

		while (show(&a, s, 1, "trim_lsn") == 0 && tries++ < 100)
			usleep(20000);
		ck_assert_int_gt(show(&a, s, 1, "trim_lsn"), 0);
		trimmed += (uint64_t)show(&a, s, 1, "trim_lsn");
	}
	ck_assert_int_eq(counter(&a, "cursor_failed"), 0);
	teardown(&a, &b);
	stage("sites stopped");
	checked = compare_logs(&a, &b, 1, streams, report, per);
	ck_assert_uint_eq(checked, records);
	stage("logs compared");
	printf("dataplane: %u records over %u streams, site 1 -> site 2 over memif: all acked, "
	       "receiver's log identical; the origin trimmed %llu records site 2 acknowledged\n",
	       records, streams, (unsigned long long)trimmed);
	vr_test_rmdir(root);
}
END_TEST

/*
 * Generators at both sites at once: site 1 originates streams 1.., site 2 streams 1001..;
 * every frame acked, and each receiver caught up with its origin.
 */
static void
run_both_ways(struct site *a, struct site *b, unsigned streams, unsigned records, const char *ra,
              const char *rb)
{
	int ga = gen_start(a, 1, streams, records, ra),
	    gb = gen_start(b, 1001, streams, records, rb);

	ga = gen_wait(ga);
	gb = gen_wait(gb);
	print_stats(a);
	print_stats(b);
	ck_assert_int_eq(ga, 0);
	ck_assert_int_eq(gb, 0);
	wait_caught_up(a, b, 1, streams);
	wait_caught_up(b, a, 1001, streams);
}

START_TEST(both_ways_memif)
{
	unsigned streams = 50, records = env_u("VR_DP_RECORDS", 1000000) / 5,
	         per = records / streams;
	struct site a, b;
	char ra[400], rb[400];

	records = per * streams;
	setup(&a, &b);
	snprintf(ra, sizeof(ra), "%s/gen1.json", root);
	snprintf(rb, sizeof(rb), "%s/gen2.json", root);
	streams_add(&a, &b, 1, streams);
	streams_add(&b, &a, 1001, streams);
	run_both_ways(&a, &b, streams, records, ra, rb);
	teardown(&a, &b);
	ck_assert_uint_eq(compare_logs(&a, &b, 1, streams, ra, per), records);
	ck_assert_uint_eq(compare_logs(&b, &a, 1001, streams, rb, per), records);
	vr_test_rmdir(root);
}
END_TEST

/* A counter of one worker lcore of s (stats "workers"). */
static long long
worker_counter(struct site *s, unsigned w, const char *name)
{
	json_t *r = ctl(s, json_pack("{s:s}", "op", "stats"));
	json_t *o = json_array_get(json_object_get(r, "workers"), w);
	long long v;

	ck_assert_msg(o, "site %d has no worker %u", s->id, w);
	v = json_integer_value(json_object_get(o, name));
	json_decref(r);
	return v;
}

/*
 * D9: both sites run two worker lcores, both directions at once. The WAN memif has two queue
 * pairs at both ends (a worker each); the LAN has one, so worker 0 reads every ingest frame
 * and passes those of worker 1's streams to it, and worker 1 sends its acks through worker 0.
 * Every record acked, both logs identical, and each worker did its streams' work.
 */
START_TEST(two_workers_memif)
{
	unsigned streams = 50, records = env_u("VR_DP_RECORDS", 1000000) / 5,
	         per = records / streams, owners[2][2] = {{0}};
	struct site a, b;
	char ra[400], rb[400];

	records = per * streams;
	setup_workers(&a, &b, 2, 2);
	snprintf(ra, sizeof(ra), "%s/gen1.json", root);
	snprintf(rb, sizeof(rb), "%s/gen2.json", root);
	streams_add(&a, &b, 1, streams);
	streams_add(&b, &a, 1001, streams);
	for (unsigned s = 0; s < streams; s++) {
		long long wa = show(&a, 1 + s, 1, "worker"), wb = show(&b, 1001 + s, 2, "worker");

		ck_assert(wa == 0 || wa == 1);
		ck_assert(wb == 0 || wb == 1);
		owners[0][wa]++;
		owners[1][wb]++;
		/* The receiver's copy of a stream is owned by the same worker index. */
		ck_assert_int_eq(show(&b, 1 + s, 1, "worker"), wa);
	}
	for (unsigned i = 0; i < 2; i++)
		ck_assert_msg(owners[i][0] >= 10 && owners[i][1] >= 10,
		              "site %u: workers own %u and %u of %u streams", i + 1, owners[i][0],
		              owners[i][1], streams);
	run_both_ways(&a, &b, streams, records, ra, rb);
	for (struct site *s = &a; s; s = s == &a ? &b : NULL) {
		for (unsigned w = 0; w < 2; w++) {
			ck_assert_int_gt(worker_counter(s, w, "ingest_frames"), 0);
			ck_assert_int_gt(worker_counter(s, w, "batches_sealed"), 0);
			ck_assert_int_gt(worker_counter(s, w, "wan_applied"), 0);
			ck_assert_int_gt(worker_counter(s, w, "loops"), 0);
		}
		ck_assert_int_gt(worker_counter(s, 0, "handoffs"), 0);
		ck_assert_int_eq(worker_counter(s, 1, "rx_packets") > 0, 1); /* its WAN queue */
		ck_assert_int_eq(counter(s, "handoff_full"), 0);
	}
	teardown(&a, &b);
	ck_assert_uint_eq(compare_logs(&a, &b, 1, streams, ra, per), records);
	ck_assert_uint_eq(compare_logs(&b, &a, 1001, streams, rb, per), records);
	printf("dataplane: two workers per site, %u records each way over %u streams: all acked, "
	       "logs identical; site 1's workers own %u and %u streams\n",
	       records, streams, owners[0][0], owners[0][1]);
	vr_test_rmdir(root);
}
END_TEST

/* Crypto sessions in use at s (stats memory). */
static long long
sessions(struct site *s)
{
	return memory_figure(s, "sessions");
}

/*
 * Idle streams hold no crypto session ([crypto] session_idle_ms, 300 ms in these tests): after
 * a burst both sites give every session back, and the next burst makes them again and goes
 * through whole.
 */
START_TEST(idle_sessions_memif)
{
	enum { STREAMS = 10, RECORDS = 2000 };
	struct site a, b;
	char r1[400], r2[400];
	int tries = 0;

	setup(&a, &b);
	snprintf(r1, sizeof(r1), "%s/gen1.json", root);
	snprintf(r2, sizeof(r2), "%s/gen2.json", root);
	streams_add(&a, &b, 1, STREAMS);
	ck_assert_int_eq(sessions(&a), 0); /* none before the first batch */
	ck_assert_int_eq(gen_wait(gen_start(&a, 1, STREAMS, RECORDS, r1)), 0);
	wait_caught_up(&a, &b, 1, STREAMS);
	ck_assert_int_gt(sessions(&a), 0);
	while ((sessions(&a) || sessions(&b)) && tries++ < 100)
		usleep(50000);
	ck_assert_int_eq(sessions(&a), 0);
	ck_assert_int_eq(sessions(&b), 0);
	ck_assert_int_ge(counter(&a, "sessions_idled"), STREAMS);
	ck_assert_int_ge(counter(&b, "sessions_idled"), STREAMS);
	/* A second producer's burst: the keys make their sessions again. */
	ck_assert_int_eq(gen_wait(gen_start_as(&a, 2, 1, STREAMS, RECORDS, r2)), 0);
	wait_caught_up(&a, &b, 1, STREAMS);
	for (unsigned s = 1; s <= STREAMS; s++)
		ck_assert_int_eq(durable(&b, s, 1), 1 + 2 * RECORDS / STREAMS);
	ck_assert_int_eq(counter(&a, "session_failed"), 0);
	ck_assert_int_eq(counter(&b, "open_failed"), 0);
	print_stats(&a);
	print_stats(&b);
	teardown(&a, &b);
	printf("dataplane: sessions of %d idle streams given back at both sites and made again for "
	       "the next burst: %d records applied\n",
	       STREAMS, 2 * RECORDS);
	vr_test_rmdir(root);
}
END_TEST

/* --- the WAN under attack: af_packet on a veth pair between two namespaces --- */

enum { ETH_IP_UDP = 14 + 20 + 8, MAX_CAP = 32768 };

struct frame {
	uint8_t b[2048];
	size_t n;
};

/*
 * Captures up to max WAN batch frames site 1 sends, until seconds passed or none came for a
 * second after the first.
 */
static unsigned
capture(int fd, struct frame *f, unsigned max, double seconds)
{
	double end = now_s() + seconds, last = 0;
	unsigned n = 0;

	while (n < max && now_s() < end && (!n || now_s() - last < 1)) {
		ssize_t r = recv(fd, f[n].b, sizeof(f[n].b), 0);

		if (r > ETH_IP_UDP + VR_WIRE_BATCH_HDR && f[n].b[12] == 0x08 && f[n].b[13] == 0 &&
		    f[n].b[14 + 9] == 17 &&
		    vr_get_be16(f[n].b + ETH_IP_UDP) == VR_WIRE_MAGIC_BATCH) {
			f[n].n = (size_t)r;
			last = now_s();
			n++;
		}
	}
	return n;
}

/* The batch sequence number of a captured frame. */
static uint64_t
frame_seq(const struct frame *f)
{
	return vr_get_be64(f->b + ETH_IP_UDP + 32);
}

/* Sends a copy of f whose UDP payload is len bytes (lengths and IPv4 checksum fixed). */
static void
inject_now(int fd, const struct frame *f, size_t len, const uint8_t *payload)
{
	uint8_t b[2048];
	uint32_t sum = 0;

	memcpy(b, f->b, ETH_IP_UDP);
	memcpy(b + ETH_IP_UDP, payload, len);
	vr_put_be16(b + 14 + 2, (uint16_t)(20 + 8 + len));
	vr_put_be16(b + 14 + 20 + 4, (uint16_t)(8 + len));
	vr_put_be16(b + 14 + 20 + 6, 0);
	vr_put_be16(b + 14 + 10, 0);
	for (int i = 0; i < 20; i += 2)
		sum += vr_get_be16(b + 14 + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	vr_put_be16(b + 14 + 10, (uint16_t)~sum);
	ck_assert_int_eq(send(fd, b, ETH_IP_UDP + len, 0), (ssize_t)(ETH_IP_UDP + len));
}

/* The same, paced: the receiving af_packet ring is not infinite. */
static void
inject(int fd, const struct frame *f, size_t len, const uint8_t *payload)
{
	inject_now(fd, f, len, payload);
	usleep(200);
}

static const char *const rejects[] = {"wan_bad",         "wan_foreign",     "wan_unknown_stream",
                                      "wan_unknown_key", "replay_dup",      "replay_old",
                                      "open_failed",     "wan_bad_records", "drop_ip_bad"};

static long long
rejected(struct site *s)
{
	long long t = 0;

	for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++)
		t += counter(s, rejects[i]);
	return t;
}

START_TEST(wan_adversary_af_packet)
{
	static struct frame cap[MAX_CAP];
	enum { BURST = 32 };
	struct site a, b;
	char report[400];
	unsigned n_cap, injected = 0, want_dup = 0, want_old = 0, tampered = 0;
	long long applied0, rej0, dup0, old0, opened0, dup, old, tampered0, tampered_rej;
	uint64_t top = 0;
	bool met;
	int fd, cap_fd, g;

	veth_sites(&a, &b, "dpw");
	streams_add(&a, &b, 1, 1);
	cap_fd = tap_open(ns_b, "vB");
	fd = tap_open(ns_a, "vA");
	snprintf(report, sizeof(report), "%s/gen1.json", root);
	/* At 5 000 records/s the batches are small: many more than a replay window of them. */
	g = gen_start_opts(&a, 1, 1, 1, 40000, report, NULL, 5000);
	n_cap = capture(cap_fd, cap, MAX_CAP, 30);
	ck_assert_int_eq(gen_wait(g), 0);
	wait_caught_up(&a, &b, 1, 1);
	/* Anything sent again after the capture went quiet. */
	n_cap += capture(cap_fd, cap + n_cap, MAX_CAP - n_cap, 1);
	close(cap_fd);
	stage("40 000 records replicated over af_packet; batches captured on the wire");
	usleep(300000);
	/*
	 * Every batch site 2 received was captured (so the newest captured is its window's top),
	 * and there are more than a window of them (so the oldest repeats fall below it).
	 */
	ck_assert_int_eq(counter(&b, "wan_rx"), n_cap);
	ck_assert_uint_gt(n_cap, VR_REPLAY_WINDOW + 100);
	for (unsigned i = 0; i < n_cap; i++)
		if (frame_seq(&cap[i]) > top)
			top = frame_seq(&cap[i]);
	applied0 = counter(&b, "wan_applied");
	rej0 = rejected(&b);
	dup0 = counter(&b, "replay_dup");
	old0 = counter(&b, "replay_old");
	opened0 = counter(&b, "open_failed");

	/*
	 * 1. Figure 8: exact repeats of every captured batch, each counted by its reason (inside
	 * the window: replay_dup; VR_REPLAY_WINDOW or more below its top: replay_old); then a
	 * burst of the newest one, back to back.
	 */
	for (unsigned i = 0; i < n_cap; i++, injected++) {
		if (top - frame_seq(&cap[i]) >= VR_REPLAY_WINDOW)
			want_old++;
		else
			want_dup++;
		inject(fd, &cap[i], cap[i].n - ETH_IP_UDP, cap[i].b + ETH_IP_UDP);
	}
	for (unsigned i = 0; i < BURST; i++, injected++, want_dup++)
		inject_now(fd, &cap[n_cap - 1], cap[n_cap - 1].n - ETH_IP_UDP,
		           cap[n_cap - 1].b + ETH_IP_UDP);
	usleep(300000);
	dup = counter(&b, "replay_dup") - dup0;
	old = counter(&b, "replay_old") - old0;
	met = dup == (long long)want_dup && old == (long long)want_old &&
	      counter(&b, "wan_applied") == applied0;
	vr_test_figure("8", "replayed batches", "100% rejected, counted by reason", met,
	               "%u exact repeats (%u inside the window, %u older) and a burst of %u: "
	               "%lld replay_dup, %lld replay_old, 0 applied",
	               n_cap, want_dup - BURST, want_old, BURST, dup, old);
	ck_assert_int_eq(dup, want_dup);
	ck_assert_int_eq(old, want_old);
	ck_assert_int_eq(counter(&b, "wan_applied"), applied0);
	tampered0 = rejected(&b);

	/* 2. Every bit of the header, the tag and a sample of the ciphertext, flipped. */
	{
		const struct frame *f = &cap[n_cap - 1];
		size_t len = f->n - ETH_IP_UDP;
		uint8_t p[2048];

		for (size_t bit = 0; bit < len * 8; bit++) {
			size_t byte = bit / 8;

			if (byte >= VR_WIRE_BATCH_HDR && byte < len - VR_WIRE_TAG && bit % 61)
				continue; /* ciphertext: one bit in 61 */
			memcpy(p, f->b + ETH_IP_UDP, len);
			p[byte] ^= (uint8_t)(1u << (bit % 8));
			/* A fresh sequence, so that the replay check does not hide the tag check.
			 */
			if (byte < 32 || byte >= 40)
				vr_put_be64(p + 32, vr_get_be64(p + 32) + 100000 + bit);
			inject(fd, f, len, p);
			injected++;
			tampered++;
		}
		/* 3. Truncated (by 1, by the tag, to the header) and extended by a byte. */
		memcpy(p, f->b + ETH_IP_UDP, len);
		vr_put_be64(p + 32, vr_get_be64(p + 32) + 900000);
		inject(fd, f, len - 1, p);
		inject(fd, f, len - VR_WIRE_TAG, p);
		inject(fd, f, VR_WIRE_BATCH_HDR, p);
		p[len] = 0;
		inject(fd, f, len + 1, p);
		/* 4. A key id the receiver never installed; and one of another stream's. */
		vr_put_be32(p + 24, 77);
		inject(fd, f, len, p);
		vr_put_be32(p + 24, 1);
		vr_put_be64(p + 8, 999);
		inject(fd, f, len, p);
		injected += 6;
		tampered += 6;
	}
	usleep(500000);
	stage("replayed, tampered, truncated, extended and foreign-key batches injected");
	tampered_rej = rejected(&b) - tampered0;
	met = tampered_rej == (long long)tampered && counter(&b, "wan_applied") == applied0;
	ck_assert_int_eq(counter(&b, "wan_applied"), applied0);
	ck_assert_int_eq(rejected(&b) - rej0, injected);
	ck_assert_int_gt(counter(&b, "open_failed"), opened0);
	printf("dataplane: %u hostile batches injected on the WAN, %lld rejected and counted, "
	       "0 applied\n",
	       injected, rejected(&b) - rej0);
	print_stats(&b);

	/* 5. The stream goes on: forged sequences far ahead did not move the replay window. */
	snprintf(report, sizeof(report), "%s/gen2.json", root);
	g = gen_start_as(&a, 2, 1, 1, 5000, report); /* a second producer */
	ck_assert_int_eq(gen_wait(g), 0);
	wait_caught_up(&a, &b, 1, 1);
	/* A window moved by a forged sequence would have refused these as too old. */
	met = met && counter(&b, "wan_applied") == applied0 + 5000;
	vr_test_figure("9", "tampered batches",
	               "100% rejected and counted; a forged batch never moves the replay window",
	               met,
	               "%u injected (every header and tag bit flipped, 1 ciphertext bit in 61, "
	               "truncated 3 ways, extended, unknown key id, another stream): %lld "
	               "rejected, 0 applied; 5000 genuine records applied after them",
	               tampered, tampered_rej);
	ck_assert_int_eq(counter(&b, "wan_applied"), applied0 + 5000);
	close(fd);
	teardown(&a, &b);
	veth_down();
	vr_test_rmdir(root);
}
END_TEST

/* --- restarts: SIGKILL a site mid-stream, start it again --- */

/* --- delivery (D7): what site 2 applies reaches a local consumer, a plain UDP socket --- */

/* A UDP socket on addr:port inside namespace ns (the test process moves there). */
static int
udp_open(const char *ns, const char *addr, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	int nsfd, fd, big = 64 << 20;
	char path[64];

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nsfd = open(path, O_RDONLY);
	ck_assert_int_ge(nsfd, 0);
	ck_assert_int_eq(setns(nsfd, CLONE_NEWNET), 0);
	close(nsfd);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_int_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

enum { DL_STREAMS = 10, DL_PER = 2000 };

/* One datagram from site 2: one record of one of the test's streams; marks its LSN. */
static void
consume(const uint8_t *b, ssize_t n, uint8_t got[DL_STREAMS][DL_PER + 2], unsigned *fresh)
{
	struct vr_rec r;
	const char *bad = NULL;

	ck_assert_int_eq(vr_rec_decode(b, (size_t)n, &r), (int)n);
	ck_assert_uint_eq(r.stream.primary, 1);
	ck_assert_uint_eq(r.stream.vault, 1);
	ck_assert(r.stream.account >= 1 && r.stream.account <= DL_STREAMS);
	ck_assert(r.lsn >= 1 && r.lsn <= DL_PER + 1);
	if (r.lsn > 1)
		bad = payload_bad((unsigned)r.stream.account, &r);
	ck_assert_msg(!bad, "delivered record %u/%llu: %s", (unsigned)r.stream.account,
	              (unsigned long long)r.lsn, bad);
	if (!got[r.stream.account - 1][r.lsn]++)
		(*fresh)++;
}

START_TEST(delivery_af_packet)
{
	static uint8_t got[DL_STREAMS][DL_PER + 2], buf[2048];
	unsigned delivered = 0, read_back = 0, total = DL_STREAMS * (DL_PER + 1);
	struct site a, b;
	char report[400];
	int g, st = -1, fd;
	double quiet = 0, end;
	FILE *f;

	root = vr_test_tmpdir("dpd");
	veth_up();
	ck_assert_int_eq(sh("ip link add vC netns %s type veth peer name vD netns %s && "
	                    "ip -n %s addr add 198.18.2.9/24 dev vD && "
	                    "ip -n %s link set vC up && ip -n %s link set vD up && "
	                    "ip netns exec %s ethtool -K vC tx off >/dev/null",
	                    ns_b, ns_b, ns_b, ns_b, ns_b, ns_b),
	                 0);
	site_conf(&a, 1, 2);
	site_conf(&b, 2, 1);
	f = fopen(b.ini, "a");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[consumer]\nip = 198.18.2.9\nudp = 4792\n");
	fclose(f);
	snprintf(a.netns, sizeof(a.netns), "%s", ns_a);
	snprintf(a.iface, sizeof(a.iface), "vA");
	snprintf(b.netns, sizeof(b.netns), "%s", ns_b);
	snprintf(b.iface, sizeof(b.iface), "vB");
	snprintf(b.lan_iface, sizeof(b.lan_iface), "vC");
	site_start(&a);
	site_start(&b);
	fd = udp_open(ns_b, "198.18.2.9", 4792);
	streams_add(&a, &b, 1, DL_STREAMS);
	snprintf(report, sizeof(report), "%s/gen.json", root);
	g = gen_start(&a, 1, DL_STREAMS, DL_STREAMS * DL_PER, report);
	/* Read while the generator runs (the socket buffer is bounded), then until 1 s quiet. */
	end = now_s() + 180;
	while (now_s() < end && (st < 0 || now_s() < quiet + 1)) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n > 0) {
			consume(buf, n, got, &delivered);
			quiet = now_s();
		}
		if (st < 0 && waitpid(g, &st, WNOHANG) == g) {
			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "generator: %d", st);
			wait_caught_up(&a, &b, 1, DL_STREAMS);
			quiet = now_s();
		}
	}
	close(fd);
	ck_assert_int_ge(st, 0);
	ck_assert_int_eq(counter(&b, "delivered"), total);
	/* Whatever the UDP socket missed, the consumer reads by LSN: every record, in order. */
	for (unsigned s = 1; s <= DL_STREAMS; s++) {
		uint64_t from = 1;

		while (from <= DL_PER + 1) {
			json_t *r = ctl(&b, json_pack("{s:s, s:i, s:i, s:i, s:I, s:i}", "op",
			                              "stream.read", "account", s, "vault", 1,
			                              "primary", 1, "from", (json_int_t)from, "max",
			                              777)),
			       *recs = json_object_get(r, "records"), *x;
			size_t i;

			ck_assert_uint_gt(json_array_size(recs), 0);
			json_array_foreach(recs, i, x)
			{
				uint64_t lsn =
				    (uint64_t)json_integer_value(json_object_get(x, "lsn"));
				uint8_t *pl = NULL;
				size_t pn = 0;
				struct vr_rec rec = {.lsn = lsn};
				const char *bad = NULL;

				ck_assert_uint_eq(lsn, from + i);
				ck_assert_int_eq(
				    vr_hsm_unb64(json_string_value(json_object_get(x, "payload")),
				                 &pl, &pn),
				    0);
				rec.payload = pl;
				rec.payload_size = (uint32_t)pn;
				if (lsn > 1)
					bad = payload_bad(s, &rec);
				ck_assert_msg(!bad, "read %u/%llu: %s", s, (unsigned long long)lsn,
				              bad);
				if (!got[s - 1][lsn])
					read_back++;
				got[s - 1][lsn] = 1;
				free(pl);
			}
			from += json_array_size(recs);
			ck_assert_uint_eq(json_integer_value(json_object_get(r, "next")), from);
			json_decref(r);
		}
	}
	ck_assert_uint_eq(delivered + read_back, total);
	/* Past the end: nothing, and the same LSN to ask for next. */
	{
		json_t *r =
		    ctl(&b, json_pack("{s:s, s:i, s:i, s:i, s:i}", "op", "stream.read", "account",
		                      1, "vault", 1, "primary", 1, "from", DL_PER + 2));

		ck_assert_uint_eq(json_array_size(json_object_get(r, "records")), 0);
		ck_assert_int_eq(json_integer_value(json_object_get(r, "next")), DL_PER + 2);
		json_decref(r);
	}
	json_decref(ctl_want(&b, EINVAL,
	                     json_pack("{s:s, s:i, s:i, s:i, s:i}", "op", "stream.read", "account",
	                               1, "vault", 1, "primary", 1, "from", 0)));
	json_decref(
	    ctl_want(&b, EINVAL,
	             json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "op", "stream.read", "account", 1,
	                       "vault", 1, "primary", 1, "from", 1, "max", 5000)));
	json_decref(ctl_want(&b, ENOENT,
	                     json_pack("{s:s, s:i, s:i, s:i, s:i}", "op", "stream.read", "account",
	                               99, "vault", 1, "primary", 1, "from", 1)));
	teardown(&a, &b);
	veth_down();
	printf("dataplane: delivery to a local consumer: %u records applied at site 2, %u "
	       "delivered over UDP, %u missed and read back by LSN (stream.read)\n",
	       total, delivered, read_back);
	vr_test_rmdir(root);
}
END_TEST

START_TEST(restarts_af_packet)
{
	enum { STREAMS = 10, RECORDS = 30000, KILLS = 4 };
	struct site a, b;
	char report[400], acks[KILLS + 1][400], line[128];
	struct nonce_watch nw;
	FILE *f;
	unsigned long long acc, seq, lsn;
	unsigned checked = 0, runs = 0;
	size_t repeats;
	int g, st;

	veth_sites(&a, &b, "dpr");
	streams_add(&a, &b, 1, STREAMS);
	nonce_watch_start(&nw, ns_b, "vB", 4u << 20);
	snprintf(report, sizeof(report), "%s/gen.json", root);
	/*
	 * A producer session per run of the generator: killing the sender ends a session (the
	 * generator sees its link go down and exits with 75), and a new one starts once the
	 * sender is back. Killing the receiver does not concern the producer.
	 */
	snprintf(acks[runs], sizeof(acks[runs]), "%s/acks%u.txt", root, runs);
	g = gen_start_opts(&a, runs + 1, 1, STREAMS, RECORDS, report, acks[runs], RECORDS / 4);
	runs++;
	for (int i = 0; i < 400 && counter(&a, "ingest_frames") < 1000; i++)
		usleep(25000);
	for (int k = 0; k < KILLS; k++) {
		usleep(200000 + (useconds_t)(rand() % 600000));
		if (k % 2 == 0) {
			site_kill_restart(&a, &a, &b, STREAMS);
			st = gen_wait(g);
			ck_assert_msg(st == 75 || st == 0, "the generator ended with %d", st);
			snprintf(acks[runs], sizeof(acks[runs]), "%s/acks%u.txt", root, runs);
			g = gen_start_opts(&a, runs + 1, 1, STREAMS, RECORDS, report, acks[runs],
			                   RECORDS / 4);
			runs++;
		} else {
			site_kill_restart(&b, &a, &b, STREAMS);
		}
		stage(k % 2 == 0 ? "sender killed and restarted" : "receiver killed and restarted");
	}
	ck_assert_int_eq(gen_wait(g), 0);
	wait_caught_up(&a, &b, 1, STREAMS);
	usleep(200000);
	repeats = nonce_watch_stop(&nw);
	nonce_watch_free(&nw);
	stage("every frame of the last session acked; receiver caught up");

	/* No (key, nonce) twice at the receiver. */
	ck_assert_uint_gt(nw.n, RECORDS / 64);
	ck_assert_msg(repeats == 0, "%zu (key, nonce) pairs seen twice", repeats);

	/* Every acked frame of every session is in the receiver's log at the LSN its ack named. */
	teardown(&a, &b);
	{
		struct vr_log *lr = vr_log_open(b.wal, NULL);

		ck_assert_ptr_nonnull(lr);
		for (unsigned r = 0; r < runs; r++) {
			f = fopen(acks[r], "r");
			ck_assert_ptr_nonnull(f);
			while (fgets(line, sizeof(line), f)) {
				const char *bad;

				ck_assert_int_eq(sscanf(line, "%llu %llu %llu", &acc, &seq, &lsn),
				                 3);
				if ((bad = acked_frame_bad(lr, acc, seq, lsn)))
					ck_abort_msg(
					    "acked frame %llu of stream %llu (LSN %llu): %s", seq,
					    acc, lsn, bad);
				checked++;
			}
			fclose(f);
		}
		for (unsigned s = 1; s <= STREAMS; s++) {
			struct vr_stream_id id = {.account = s, .vault = 1, .primary = 1};

			ck_assert_int_eq(vr_log_verify(lr, &id, NULL), 0);
		}
		vr_log_close(lr);
	}
	ck_assert_uint_ge(checked, RECORDS / 2);
	printf("dataplane: %d SIGKILLs (sender and receiver in turn), %u producer sessions: %zu "
	       "batches seen at the receiver, 0 (key, nonce) repeats; %u acked frames checked at "
	       "their LSN in the receiver's log, 0 lost\n",
	       KILLS, runs, nw.n, checked);
	veth_down();
	vr_test_rmdir(root);
}
END_TEST

/* --- payload keys through the hsm_agent (K1, K2, D4, D5) --- */

START_TEST(payload_keys_hsm_memif)
{
	enum { STREAMS = 10, RECORDS = 100000, REKEY = 200 };
	unsigned per = RECORDS / STREAMS;
	struct agent ha = {0}, hb = {0};
	struct site a, b;
	char report[400];
	long long rekeys, installed = 0, promoted;
	int g, st, k1[STREAMS + 1];

	root = vr_test_tmpdir("dpk");
	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	agent_start(&ha);
	agent_start(&hb);
	agents_pair(&ha, &hb);
	site_conf_hsm(&a, 1, 2, &ha, REKEY);
	site_conf_hsm(&b, 2, 1, &hb, REKEY);
	site_start(&a);
	site_start(&b);
	streams_config_hsm(&a, &a, &b, 1, STREAMS);
	streams_config_hsm(&b, &a, &b, 1, STREAMS);
	stage("sites up, key 1 of every stream made at site 1 and carried to site 2");

	/* A key record that does not unwrap is refused with the agent's error; nothing changes. */
	{
		uint8_t junk[384];
		char *b64;

		memset(junk, 0x5a, sizeof(junk));
		b64 = vr_hsm_b64(junk, sizeof(junk));
		json_decref(ctl_want(&b, EBADMSG,
		                     json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "op",
		                               "key.install", "account", 1, "vault", 1, "primary",
		                               1, "key_id", 1000, "blob", b64)));
		ck_assert_msg(strstr(call_err, "does not unwrap"), "error: %s", call_err);
		free(b64);
		ck_assert_int_eq(key_id(&b, 1, 1), 1);
	}

	/* Keys rotate every REKEY batches while records flow; the receiver restarts once. */
	snprintf(report, sizeof(report), "%s/gen1.json", root);
	g = gen_start_opts(&a, 1, 1, STREAMS, RECORDS, report, NULL, RECORDS / 10);
	for (int i = 0; i < 400 && counter(&a, "keys_promoted") < STREAMS; i++)
		usleep(25000);
	installed = counter(&b, "keys_installed"); /* the counters start again with the process */
	site_kill_restart_with(&b, &a, &b, STREAMS, streams_config_hsm);
	stage("receiver killed and restarted under load");
	st = gen_wait(g);
	print_stats(&a);
	print_stats(&b);
	ck_assert_int_eq(st, 0);
	wait_caught_up(&a, &b, 1, STREAMS);
	for (unsigned s = 1; s <= STREAMS; s++) {
		int ka = key_id(&a, s, 1), tries = 0;

		/* A rotation the last batches asked for may still be settling: read both again. */
		while (key_id(&b, s, 1) != ka && tries++ < 200) {
			usleep(25000);
			ka = key_id(&a, s, 1);
		}
		ck_assert_int_eq(key_id(&b, s, 1), ka);
		k1[s] = ka;
	}
	rekeys = counter(&a, "rekeys");
	promoted = counter(&a, "keys_promoted");
	installed += counter(&b, "keys_installed");
	ck_assert_int_ge(rekeys, 3 * STREAMS);
	ck_assert_int_ge(promoted, 2 * STREAMS);
	ck_assert_int_ge(installed, STREAMS);
	ck_assert_int_eq(counter(&b, "key_install_failed"), 0);
	ck_assert_int_eq(counter(&a, "rekey_failed"), 0);
	stage("every frame acked; both sites on the same key for every stream");

	/* Both sites restart: keys come back from their stored, wrapped form; one more rotation. */
	wait_acked(&a, 1, STREAMS);
	teardown(&a, &b);
	ck_assert_uint_eq(compare_logs(&a, &b, 1, STREAMS, report, per), RECORDS);
	unlink(a.lan);
	unlink(b.lan);
	unlink(wan_sock);
	site_start(&a);
	site_start(&b);
	streams_config_hsm(&a, &a, &b, 1, STREAMS);
	streams_config_hsm(&b, &a, &b, 1, STREAMS);
	for (unsigned s = 1; s <= STREAMS; s++) {
		int tries = 0;

		/* The clean stop saved what site 2 acknowledged: all of it. */
		ck_assert_uint_eq(member_acked(&a, s), durable(&a, s, 1));

		/*
		 * The origin seals under its newest stored key: the one it had, or one it was
		 * still rotating to when it stopped (then the records go out again).
		 */
		ck_assert_int_ge(key_id(&a, s, 1), k1[s]);
		ck_assert_int_le(key_id(&a, s, 1), k1[s] + 1);
		while (key_id(&b, s, 1) != key_id(&a, s, 1) && tries++ < 200)
			usleep(25000);
		ck_assert_int_eq(key_id(&b, s, 1), key_id(&a, s, 1));
		k1[s] = key_id(&a, s, 1);
		json_decref(ctl(&a, json_pack("{s:s, s:i, s:i}", "op", "stream.rekey", "account", s,
		                              "vault", 1)));
	}
	snprintf(report, sizeof(report), "%s/gen2.json", root);
	g = gen_start_opts(&a, 2, 1, STREAMS, STREAMS * 500, report, NULL, 0);
	ck_assert_int_eq(gen_wait(g), 0);
	wait_caught_up(&a, &b, 1, STREAMS);
	for (unsigned s = 1; s <= STREAMS; s++) {
		int tries = 0;

		while (key_id(&b, s, 1) != key_id(&a, s, 1) && tries++ < 200)
			usleep(25000);
		ck_assert_int_gt(key_id(&a, s, 1), k1[s]);
		ck_assert_int_eq(key_id(&b, s, 1), key_id(&a, s, 1));
	}
	print_stats(&a);
	print_stats(&b);
	teardown(&a, &b);
	{
		struct vr_log *lr = vr_log_open(b.wal, NULL);

		ck_assert_ptr_nonnull(lr);
		for (unsigned s = 1; s <= STREAMS; s++) {
			struct vr_stream_id id = {.account = s, .vault = 1, .primary = 1};
			uint64_t n = 0;

			ck_assert_int_eq(vr_log_verify(lr, &id, &n), 0);
			ck_assert_uint_eq(n, 1 + per + 500);
		}
		vr_log_close(lr);
	}
	printf("dataplane: payload keys through two hsm_agents: %u records over %u streams, "
	       "%lld keys made at site 1 (every %u batches), %lld promoted, %lld installed at "
	       "site 2 from key records in the stream, 0 failures; receiver killed once; both "
	       "sites restarted onto their stored keys, then rotated once more\n",
	       RECORDS, STREAMS, rekeys, REKEY, promoted, installed);
	agent_stop(&ha);
	agent_stop(&hb);
	carried_free();
	vr_test_rmdir(root);
}
END_TEST

/*
 * A vault's stream as control drives it (issue 5): made with no member and room for one; two
 * hsm records of control's own; then site 2 joins. Site 2 gets everything from the seed on
 * (from the log), under the payload key that control carried to it (K1).
 */
START_TEST(members_grow_hsm_memif)
{
	enum { ACCOUNT = 500 };
	struct agent ha = {0}, hb = {0};
	struct site a, b;
	json_t *r, *recs;
	const char *want_payload[] = {NULL, "key k1 v1", "key k1 v2", NULL, "key k2 v1"};
	const int want_type[] = {VR_REC_INFRA, VR_REC_HSM, VR_REC_HSM, VR_REC_INFRA, VR_REC_HSM};
	const int want_op[] = {VR_REC_OP_SEED, VR_REC_OP_KEY_INSERT, VR_REC_OP_KEY_ROTATE,
	                       VR_REC_OP_MEMBERS, VR_REC_OP_KEY_INSERT};
	const char *ops[] = {NULL, "key.insert", "key.rotate", NULL, "key.insert"};
	double t0;

	root = vr_test_tmpdir("dpm");
	snprintf(wan_sock, sizeof(wan_sock), "%s/wan.sock", root);
	agent_start(&ha);
	agent_start(&hb);
	agents_pair(&ha, &hb);
	site_conf_hsm(&a, 1, 2, &ha, 1000000);
	site_conf_hsm(&b, 2, 1, &hb, 1000000);
	site_start(&a);
	site_start(&b);

	r = ctl(&a, json_pack("{s:s, s:i, s:i, s:[], s:i}", "op", "stream.add", "account", ACCOUNT,
	                      "vault", 1, "members", "room", 1));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "durable_lsn")), 1); /* the seed */
	json_decref(r);
	for (unsigned i = 1; i <= 2; i++) {
		char *b64 = vr_hsm_b64((const uint8_t *)want_payload[i], strlen(want_payload[i]));

		r = ctl(&a, json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "op", "stream.append",
		                      "account", ACCOUNT, "vault", 1, "type", "hsm", "rec_op",
		                      ops[i], "payload", b64));
		free(b64);
		ck_assert_int_eq(json_integer_value(json_object_get(r, "lsn")), i + 1);
		json_decref(r);
	}
	/* What is refused, and why. */
	json_decref(ctl_want(&a, EINVAL,
	                     json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "op", "stream.append",
	                               "account", ACCOUNT, "vault", 1, "type", "data", "rec_op",
	                               "key.insert", "payload", "eA==")));
	json_decref(ctl_want(&a, EINVAL,
	                     json_pack("{s:s, s:i, s:i, s:[i]}", "op", "stream.members", "account",
	                               ACCOUNT, "vault", 1, "members", 3)));
	json_decref(ctl_want(&a, ENOSPC,
	                     json_pack("{s:s, s:i, s:i, s:[i, i]}", "op", "stream.members",
	                               "account", ACCOUNT, "vault", 1, "members", 2, 2)));

	json_decref(ctl(&b, json_pack("{s:s, s:i, s:i, s:i}", "op", "stream.add", "account",
	                              ACCOUNT, "vault", 1, "primary", 1)));
	json_decref(
	    ctl_want(&b, EINVAL,
	             json_pack("{s:s, s:i, s:i, s:i, s:[i]}", "op", "stream.members", "account",
	                       ACCOUNT, "vault", 1, "primary", 1, "members", 1)));
	r = ctl(&a, json_pack("{s:s, s:i, s:i, s:[i]}", "op", "stream.members", "account", ACCOUNT,
	                      "vault", 1, "members", 2));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lsn")), 4);
	/* control carries the newcomer's keys (K1), oldest first */
	{
		json_t *list = json_object_get(json_object_get(r, "keys"), "2"), *k;
		size_t i;

		ck_assert_uint_ge(json_array_size(list), 1);
		json_array_foreach(list, i, k) json_decref(
		    ctl(&b, json_pack("{s:s, s:i, s:i, s:i, s:O, s:O}", "op", "key.install",
		                      "account", ACCOUNT, "vault", 1, "primary", 1, "key_id",
		                      json_object_get(k, "key_id"), "blob",
		                      json_object_get(k, "blob"))));
	}
	json_decref(r);
	{
		char *b64 = vr_hsm_b64((const uint8_t *)want_payload[4], strlen(want_payload[4]));

		json_decref(ctl(&a, json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "op",
		                              "stream.append", "account", ACCOUNT, "vault", 1,
		                              "type", "hsm", "rec_op", ops[4], "payload", b64)));
		free(b64);
	}
	t0 = now_s();
	while (durable(&b, ACCOUNT, 1) < 5 && now_s() - t0 < 30)
		usleep(20000);
	if (durable(&b, ACCOUNT, 1) != 5) {
		print_stats(&a);
		print_stats(&b);
	}
	ck_assert_msg(durable(&b, ACCOUNT, 1) == 5, "site 2 holds %llu of 5 records",
	              (unsigned long long)durable(&b, ACCOUNT, 1));
	ck_assert_int_eq(key_id(&b, ACCOUNT, 1), key_id(&a, ACCOUNT, 1));

	r = ctl(&b, json_pack("{s:s, s:i, s:i, s:i, s:i}", "op", "stream.read", "account", ACCOUNT,
	                      "vault", 1, "primary", 1, "from", 1));
	recs = json_object_get(r, "records");
	ck_assert_uint_eq(json_array_size(recs), 5);
	for (unsigned i = 0; i < 5; i++) {
		json_t *e = json_array_get(recs, i);
		uint8_t *pl = NULL;
		size_t n = 0;

		ck_assert_int_eq(json_integer_value(json_object_get(e, "lsn")), i + 1);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "type")), want_type[i]);
		ck_assert_int_eq(json_integer_value(json_object_get(e, "op")), want_op[i]);
		if (!want_payload[i])
			continue;
		ck_assert_int_eq(
		    vr_hsm_unb64(json_string_value(json_object_get(e, "payload")), &pl, &n), 0);
		ck_assert_msg(n == strlen(want_payload[i]) && !memcmp(pl, want_payload[i], n),
		              "record %u: payload differs", i + 1);
		free(pl);
	}
	json_decref(r);
	printf("dataplane: a member joined at LSN 4 got LSN 1..5 under key %d\n",
	       key_id(&b, ACCOUNT, 1));

	/*
	 * A join undone: the newest member leaves (a MEMBERS record at LSN 6 that site 2 is not
	 * sent), then joins again and is sent what it lacks (LSN 6 and the MEMBERS record at 7).
	 * Members only leave from the end.
	 */
	json_decref(ctl_want(&a, EINVAL,
	                     json_pack("{s:s, s:i, s:i, s:[i]}", "op", "stream.members", "account",
	                               ACCOUNT, "vault", 1, "members", 3)));
	r = ctl(&a, json_pack("{s:s, s:i, s:i, s:[]}", "op", "stream.members", "account", ACCOUNT,
	                      "vault", 1, "members"));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lsn")), 6);
	ck_assert_ptr_null(json_object_get(r, "keys"));
	json_decref(r);
	usleep(300000);
	ck_assert_uint_eq(durable(&b, ACCOUNT, 1), 5);
	r = ctl(&a, json_pack("{s:s, s:i, s:i, s:[i]}", "op", "stream.members", "account", ACCOUNT,
	                      "vault", 1, "members", 2));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "lsn")), 7);
	json_decref(r);
	t0 = now_s();
	while (durable(&b, ACCOUNT, 1) < 7 && now_s() - t0 < 30)
		usleep(20000);
	ck_assert_msg(durable(&b, ACCOUNT, 1) == 7, "site 2 holds %llu of 7 records",
	              (unsigned long long)durable(&b, ACCOUNT, 1));
	teardown(&a, &b);
	agent_stop(&ha);
	agent_stop(&hb);
	vr_test_rmdir(root);
}
END_TEST

static void
sync_one(struct site *s, struct site *origin, struct site *rcv, unsigned base, unsigned n)
{
	streams_config_sync(s, origin, rcv, base, n, 1);
}

/*
 * Exactly once for a sync vault across the origin's restart (site 1 and site 2 on a veth pair):
 * site 2 is away, so site 1 logs a producer's frames but acks none (X1). Site 1 is killed and
 * restarted, and the producer (one session, --reconnect) sends them all again: site 1 knows them
 * from its producer marks and neither appends them twice nor acks them while no member holds them.
 * Once site 2 is back and caught up, they are acked, each at the LSN it was logged at the first
 * time.
 */
START_TEST(sync_retransmit_acked_once_held)
{
	enum { FRAMES = 20 };
	struct site a, b;
	char report[400], acks[400];
	double t0;
	int g, st;

	veth_sites(&a, &b, "sync1"); /* a WAN on af_packet: site 1 restarts without its socket */
	sync_one(&a, &a, &b, 1, 1);
	streams_config(&b, &a, &b, 1, 1);
	kill(b.pid, SIGKILL);
	ck_assert_int_eq(waitpid(b.pid, &st, 0), b.pid);
	snprintf(report, sizeof(report), "%s/gen.json", root);
	snprintf(acks, sizeof(acks), "%s/acks.txt", root);
	gen_reconnect = 30;
	g = gen_start_opts(&a, 1, 1, 1, FRAMES, report, acks, 0);
	for (t0 = now_s(); durable(&a, 1, 1) < 1 + FRAMES && now_s() - t0 < 20;)
		usleep(20000);
	ck_assert_uint_eq(durable(&a, 1, 1), 1 + FRAMES);
	usleep(200000);
	ck_assert_uint_eq(vr_test_lines(acks), 0);
	stage("20 frames logged at site 1, none acked: site 2 is away");

	site_kill_restart_with(&a, &a, &b, 1, sync_one);
	for (t0 = now_s(); counter(&a, "ingest_repeat") < FRAMES && now_s() - t0 < 20;)
		usleep(20000);
	ck_assert_int_ge(counter(&a, "ingest_repeat"), FRAMES);
	usleep(500000);
	ck_assert_uint_eq(vr_test_lines(acks), 0);
	ck_assert_uint_eq(durable(&a, 1, 1), 1 + FRAMES);
	ck_assert_int_eq(counter(&a, "ingest_frames"), 0);
	stage("site 1 restarted: the frames sent again are known, neither appended nor acked");

	unlink(b.lan);
	site_start(&b);
	streams_config(&b, &a, &b, 1, 1);
	st = gen_wait(g);
	gen_reconnect = 0;
	ck_assert_int_eq(st, 0);
	ck_assert_uint_eq(durable(&a, 1, 1), 1 + FRAMES);
	ck_assert_uint_eq(durable(&b, 1, 1), 1 + FRAMES);
	print_stats(&a);
	print_stats(&b);
	teardown(&a, &b);
	veth_down();
	{
		struct vr_log *l = vr_log_open(a.wal, NULL);
		FILE *f = fopen(acks, "r");
		unsigned long long acc, seq, lsn;
		unsigned n = 0;

		ck_assert_ptr_nonnull(l);
		ck_assert_ptr_nonnull(f);
		while (fscanf(f, "%llu %llu %llu", &acc, &seq, &lsn) == 3) {
			const char *bad = acked_frame_bad(l, acc, seq, lsn);

			ck_assert_msg(!bad, "frame %llu acked at LSN %llu: %s", seq, lsn, bad);
			n++;
		}
		fclose(f);
		vr_log_close(l);
		ck_assert_uint_ge(n, 1);
		printf("dataplane: a sync stream's %d frames logged, site 1 restarted: sent again, "
		       "acked only once site 2 held them (%u acks), each at its first LSN\n",
		       FRAMES, n);
	}
	vr_test_rmdir(root);
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {one_way_memif,           both_ways_memif,
	                        two_workers_memif,       idle_sessions_memif,
	                        wan_adversary_af_packet, delivery_af_packet,
	                        restarts_af_packet,      payload_keys_hsm_memif,
	                        members_grow_hsm_memif,  sync_retransmit_acked_once_held};

	srand((unsigned)time(NULL));
	return vr_test_run("dataplane:sites", 600, tests, sizeof(tests) / sizeof(tests[0]));
}
