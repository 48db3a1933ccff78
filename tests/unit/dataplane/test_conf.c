// SPDX-License-Identifier: BSD-3-Clause
/*
 * dataplane:conf — the dataplane's INI configuration: defaults, every section, and refusals
 * that name the line and the key (unknown keys, bad numbers and addresses, missing required
 * values, a peer that is this site).
 */
#include <check.h>
#include <string.h>

#include "dp_conf.h"
#include "vr_test.h"

static const char good[] = "[site]\nid = 1\nlog_dir = /var/tmp/w\ncontrol = /tmp/c.sock\n"
                           "control_uid = 0, 1000\n"
                           "[lan]\nport = 0\nip = 198.18.0.1\n"
                           "[wan]\nport = 1\nip = 198.19.0.1\nmtu = 9000\nudp = 5000\nqueues = 2\n"
                           "[batch]\nmax_records = 32\nmax_delay_us = 20\nwindow = 64\n"
                           "[crypto]\npmd = crypto_openssl\n"
                           "[idle]\nmax_sleep_us = 0\n"
                           "[lcores]\nworkers = 2\n"
                           "[peer 2]\nip = 198.19.0.2\n"
                           "[peer 3]\nip = 198.19.0.3\nudp = 6000\n"
                           "[consumer]\nip = 198.18.0.9\nudp = 4792\n";

START_TEST(a_full_file_parses)
{
	struct dp_conf c;
	char err[256];

	ck_assert_int_eq(dp_conf_load(&c, NULL, good, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.site, 1);
	ck_assert_str_eq(c.log_dir, "/var/tmp/w");
	ck_assert_uint_eq(c.n_uids, 2);
	ck_assert_uint_eq(c.uids[1], 1000);
	ck_assert_uint_eq(c.lan.ip, 0xC6120001u);
	ck_assert_uint_eq(c.lan.udp, 4790); /* default */
	ck_assert_uint_eq(c.wan.mtu, 9000);
	ck_assert_uint_eq(c.wan.udp, 5000);
	ck_assert_uint_eq(c.max_records, 32);
	ck_assert_uint_eq(c.window, 64);
	ck_assert_str_eq(c.pmd, "crypto_openssl");
	ck_assert_uint_eq(c.max_sleep_us, 0);
	ck_assert_uint_eq(c.n_peers, 2);
	ck_assert_uint_eq(c.peers[0].udp, 5000); /* the WAN udp by default */
	ck_assert_uint_eq(c.peers[1].udp, 6000);
	ck_assert_uint_eq(c.consumer_udp, 4792);
	ck_assert_uint_eq(c.workers, 2);
	ck_assert_uint_eq(c.wan.queues, 2);
	ck_assert_uint_eq(c.lan.queues, 1); /* default */
}
END_TEST

START_TEST(bad_values_are_named)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[site]\nid = 0\n", ":2: [site] id = 0"},
	    {"[site]\nid = 1\nnope = 2\n", ":3: [site] nope = 2"},
	    {"[site]\nid = 1\n[lan]\nip = 300.1.1.1\n", "[lan] ip = 300.1.1.1"},
	    {"[site]\nid = 1\n[wan]\nmtu = 4000\n", "[wan] mtu = 4000"},
	    {"[site]\nid = 1\n[batch]\nmax_records = 99999\n", "max_records = 99999"},
	    {"[site]\nid = 1\n[crypto]\npmd = crypto_null\n", "pmd = crypto_null"},
	    {"[site]\nid = 1\n[peer x]\nip = 1.2.3.4\n", "[peer x]"},
	    {"[site]\nid = 1\ncontrol_uid = -1\n", "control_uid"},
	    {"[site]\nid = 1\n[lan]\nport = 12x\n", "port = 12x"},
	    {"[site]\nid = 1\n[lan]\nip = 198.18.0.1\n", "are required"},
	    {"[site]\nid = 1\n[lan]\nip = 198.18.0.1\n[wan]\nip = 198.19.0.1\nport = 0\n",
	     "must differ"},
	    {"[site]\nid = 1\n[lan]\nip = 198.18.0.1\n[wan]\nip = 198.19.0.1\n[peer 1]\nip = "
	     "198.19.0.2\n",
	     "[peer 1]"},
	    {"[site\nid = 1\n", "config:1"},
	    {"[site]\nid = 1\n[lcores]\nworkers = 0\n", "[lcores] workers = 0"},
	    {"[site]\nid = 1\n[lcores]\nworkers = 5\n", "[lcores] workers = 5"},
	    {"[site]\nid = 1\n[lan]\nqueues = 9\n", "[lan] queues = 9"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dp_conf c;
		char err[256];

		ck_assert_int_eq(dp_conf_load(&c, NULL, cases[i].text, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, err,
		              cases[i].want);
	}
}
END_TEST

START_TEST(missing_file_says_so)
{
	struct dp_conf c;
	char err[256];

	ck_assert_int_eq(dp_conf_load(&c, "/nonexistent/dp.ini", NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dp.ini"));
}
END_TEST

int
main(void)
{
	const TTest *tests[] = {a_full_file_parses, bad_values_are_named, missing_file_says_so};

	return vr_test_run("dataplane:conf", 60, tests, sizeof(tests) / sizeof(tests[0]));
}
