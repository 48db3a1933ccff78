/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port I/O against a peer that goes away: DPDK 22.11's memif PMD tears a connection down on the
 * EAL interrupt thread (memif_disconnect) by clearing its "connected" flag and then unmapping the
 * rings it shares with the peer, while a polling lcore may be between its check of that flag and
 * its last access to a ring. That lcore then faults on the unmapped ring: seen as the dataplane
 * dying in tx_burst when its peer site was killed, and the generator when the dataplane was.
 *
 * The PMD gives no hook before it unmaps, so the guard takes the one the process has: munmap.
 * Called on the interrupt thread, munmap first waits on the given QSBR variable until every
 * thread that does port I/O and reports to it has finished the round it was in. A round that
 * begins after the flag was cleared sees it cleared and does not touch the rings. Every other
 * munmap (another thread, or before dp_guard_unmap) goes straight to the kernel.
 */
#ifndef DP_GUARD_H
#define DP_GUARD_H

#include <rte_rcu_qsbr.h>

/* From now on, unmapping on the interrupt thread waits for q's threads (NULL: stop waiting). */
void dp_guard_unmap(struct rte_rcu_qsbr *q);

/*
 * Waits (at most timeout_ms) until EAL's interrupt thread has finished what it was doing, such as
 * tearing down a port whose peer left: it runs one callback of ours (an eventfd) after it. A port
 * must not be stopped while that teardown runs (memif_dev_stop tears down the same rings again). 0,
 * or -ETIMEDOUT.
 */
int dp_guard_intr_sync(unsigned timeout_ms);

/* How many unmaps the guard made wait (the interrupt thread's teardowns of a port). */
unsigned long dp_guard_waits(void);

#endif
