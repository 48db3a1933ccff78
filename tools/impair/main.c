// SPDX-License-Identifier: BSD-3-Clause
/*
 * vr-impair: a two-port frame forwarder that impairs what it forwards (vr_impair.h), for the
 * fault tests of issue 6 and for an operator's lab. It runs in a network namespace of its own
 * between two veth pairs, reads every frame of port A and of port B through packet sockets,
 * and sends each one on out of the other port when the engine says so.
 *
 *   vr-impair --a IFACE --b IFACE --control PATH [--seed N] [--loss P] [--dup P]
 *             [--reorder P] [--hold-ms MS] [--delay-ms MS] [--all]
 *   vr-impair --control PATH COMMAND...      one command to a running vr-impair; prints the reply
 *
 * The control socket (a unix stream socket; one line per connection, one reply) takes the
 * commands of vr_impair_command(): for example "partition ab", "loss 0.05", "stats".
 * Every loop is bounded: a round reads at most BURST frames per port before it sends what is
 * due, so neither direction starves the other or the control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vr_impair.h"

enum { BURST = 64, MAX_CONNS = 4, LINE_MAX_SIZE = 256 };

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A packet socket on iface: every frame it receives, none it sends itself; promiscuous. */
static int
port_open(const char *iface)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	struct packet_mreq mr = {.mr_type = PACKET_MR_PROMISC};
	int fd, one = 1, buf = 8 << 20;

	sll.sll_ifindex = (int)if_nametoindex(iface);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "vr-impair: no interface %s here\n", iface);
		return -1;
	}
	mr.mr_ifindex = sll.sll_ifindex;
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr))) {
		fprintf(stderr, "vr-impair: packet socket on %s: %s\n", iface, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Best effort: bursts of a fast sender wait here rather than being dropped by the kernel.
	 */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	return fd;
}

static int
control_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vr-impair: control socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) ||
	    listen(fd, MAX_CONNS)) {
		fprintf(stderr, "vr-impair: control socket %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The client: one command, the reply on stdout. Exit status 0 for "ok" or stats, else 1. */
static int
client(const char *path, int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[LINE_MAX_SIZE], reply[VR_IMPAIR_REPLY_MAX + 1];
	size_t n = 0, got = 0;
	ssize_t k;
	int fd;

	for (int i = 0; i < argc; i++) {
		int w = snprintf(line + n, sizeof(line) - n, "%s%s", i ? " " : "", argv[i]);

		if (w < 0 || (size_t)w >= sizeof(line) - n - 1) {
			fprintf(stderr, "vr-impair: command too long\n");
			return 2;
		}
		n += (size_t)w;
	}
	line[n++] = '\n';
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "vr-impair: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (write(fd, line, n) != (ssize_t)n) {
		fprintf(stderr, "vr-impair: sending the command: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	while (got < sizeof(reply) - 1 && (k = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += (size_t)k;
	close(fd);
	reply[got] = 0;
	printf("%s\n", reply);
	return strncmp(reply, "error", 5) ? 0 : 1;
}

struct conn {
	int fd;
	size_t n;
	char line[LINE_MAX_SIZE];
};

/* Reads what a control connection sent; at a newline, answers and closes it. */
static void
conn_read(struct vr_impair *im, struct conn *c)
{
	char reply[VR_IMPAIR_REPLY_MAX];
	ssize_t k = read(c->fd, c->line + c->n, sizeof(c->line) - 1 - c->n);
	char *nl;

	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k <= 0) { /* gone, or an error: nothing to answer */
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->n += (size_t)k;
	c->line[c->n] = 0;
	nl = strchr(c->line, '\n');
	if (!nl && c->n < sizeof(c->line) - 1)
		return;
	if (nl)
		*nl = 0;
	if (!nl)
		snprintf(reply, sizeof(reply), "error: command too long");
	else
		vr_impair_command(im, c->line, reply, sizeof(reply));
	/* The reply fits the socket buffer of a fresh connection: one write, never a wait. */
	if (write(c->fd, reply, strlen(reply)) < 0)
		fprintf(stderr, "vr-impair: control reply: %s\n", strerror(errno));
	close(c->fd);
	c->fd = -1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: vr-impair --a IFACE --b IFACE --control PATH [--seed N] [--loss P]\n"
	        "                 [--dup P] [--reorder P] [--hold-ms MS] [--delay-ms MS] [--all]\n"
	        "       vr-impair --control PATH COMMAND...\n"
	        "Forwards frames between IFACE a and IFACE b, losing, duplicating, reordering\n"
	        "(holding a frame MS longer), delaying and cutting them from a seed.\n"
	        "Commands: loss|dup|reorder P [ab|ba]; hold_ms|delay_ms MS [ab|ba];\n"
	        "          partition both|ab|ba|none; clean; seed N; all on|off; stats; reset\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"a", required_argument, 0, 'a'},        {"b", required_argument, 0, 'b'},
	    {"control", required_argument, 0, 'c'},  {"seed", required_argument, 0, 's'},
	    {"loss", required_argument, 0, 'l'},     {"dup", required_argument, 0, 'd'},
	    {"reorder", required_argument, 0, 'r'},  {"hold-ms", required_argument, 0, 'H'},
	    {"delay-ms", required_argument, 0, 'D'}, {"all", no_argument, 0, 'A'},
	    {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
	};
	static struct vr_impair im;
	static uint8_t frame[VR_IMPAIR_FRAME_MAX + 1];
	const char *port_name[VR_IMPAIR_DIRS] = {NULL, NULL}, *control = NULL;
	char settings[8][LINE_MAX_SIZE], reply[VR_IMPAIR_REPLY_MAX];
	unsigned n_settings = 0;
	struct conn conns[MAX_CONNS];
	struct sigaction sa = {.sa_handler = on_signal};
	int port[VR_IMPAIR_DIRS], lfd, c;

	while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		const char *key = NULL;

		switch (c) {
		case 'a':
			port_name[VR_IMPAIR_AB] = optarg;
			break;
		case 'b':
			port_name[VR_IMPAIR_BA] = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 's':
			key = "seed";
			break;
		case 'l':
			key = "loss";
			break;
		case 'd':
			key = "dup";
			break;
		case 'r':
			key = "reorder";
			break;
		case 'H':
			key = "hold_ms";
			break;
		case 'D':
			key = "delay_ms";
			break;
		case 'A':
			key = "all";
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (key)
			snprintf(settings[n_settings++], sizeof(settings[0]), "%s %s", key,
			         c == 'A' ? "on" : optarg);
	}
	if (control && optind < argc && !port_name[0] && !port_name[1])
		return client(control, argc - optind, argv + optind);
	if (!control || !port_name[0] || !port_name[1] || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (vr_impair_init(&im, 1)) {
		fprintf(stderr, "vr-impair: no memory for the queues\n");
		return 1;
	}
	for (unsigned i = 0; i < n_settings; i++)
		if (vr_impair_command(&im, settings[i], reply, sizeof(reply))) {
			fprintf(stderr, "vr-impair: %s: %s\n", settings[i], reply);
			return 2;
		}
	/* Port A's frames go AB, out of port B; port B's go BA, out of port A. */
	port[VR_IMPAIR_AB] = port_open(port_name[VR_IMPAIR_AB]);
	port[VR_IMPAIR_BA] = port_open(port_name[VR_IMPAIR_BA]);
	if (port[0] < 0 || port[1] < 0)
		return 1;
	lfd = control_listen(control); /* last: a client that can connect finds the ports open */
	if (lfd < 0)
		return 1;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	fprintf(stderr, "vr-impair: %s <-> %s, seed %llu, control %s\n", port_name[0], port_name[1],
	        (unsigned long long)im.seed, control);

	while (!stopping) {
		struct pollfd pf[3 + MAX_CONNS];
		int64_t wait = vr_impair_next_us(&im, now_us());
		struct timespec ts = {0, 0};
		nfds_t nf = 3;

		pf[0] = (struct pollfd){.fd = port[0], .events = POLLIN};
		pf[1] = (struct pollfd){.fd = port[1], .events = POLLIN};
		pf[2] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++)
			if (conns[i].fd >= 0)
				pf[nf++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
		if (wait < 0)
			wait = 200000; /* nothing queued: wake now and then to see the stop flag */
		ts.tv_sec = wait / 1000000;
		ts.tv_nsec = (wait % 1000000) * 1000;
		if (ppoll(pf, nf, &ts, NULL) < 0 && errno != EINTR) {
			fprintf(stderr, "vr-impair: poll: %s\n", strerror(errno));
			break;
		}
		for (int d = 0; d < VR_IMPAIR_DIRS; d++)
			for (int i = 0; i < BURST; i++) {
				ssize_t k = recv(port[d], frame, sizeof(frame), MSG_TRUNC);

				if (k < 0)
					break;
				vr_impair_frame(&im, (enum vr_impair_dir)d, frame, (size_t)k,
				                now_us());
			}
		for (int d = 0; d < VR_IMPAIR_DIRS; d++) {
			const uint8_t *f;
			size_t size;
			uint64_t t = now_us();

			while ((f = vr_impair_due(&im, (enum vr_impair_dir)d, t, &size))) {
				if (send(port[!d], f, size, 0) == (ssize_t)size)
					im.st[d].tx++;
				else
					im.st[d].tx_failed++;
			}
		}
		if (pf[2].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			for (int i = 0; fd >= 0 && i < MAX_CONNS; i++)
				if (conns[i].fd < 0) {
					conns[i] = (struct conn){.fd = fd};
					fd = -1;
				}
			if (fd >= 0) /* every slot busy: this one waits for nobody */
				close(fd);
		}
		for (int i = 0; i < MAX_CONNS; i++)
			if (conns[i].fd >= 0)
				conn_read(&im, &conns[i]);
	}
	vr_impair_command(&im, "stats", reply, sizeof(reply));
	fprintf(stderr, "vr-impair: stopping: %s\n", reply);
	unlink(control);
	vr_impair_fini(&im);
	return 0;
}
