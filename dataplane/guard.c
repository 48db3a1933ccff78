/* SPDX-License-Identifier: BSD-3-Clause */
/* See dp_guard.h: munmap on the EAL interrupt thread waits for the port I/O threads' QSBR. */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <errno.h>
#include <time.h>

#include <rte_alarm.h>
#include <rte_interrupts.h>

#include "dp_guard.h"

static _Atomic(struct rte_rcu_qsbr *) guard_q;
static atomic_ulong guard_n;

void
dp_guard_unmap(struct rte_rcu_qsbr *q)
{
	atomic_store(&guard_q, q);
}

unsigned long
dp_guard_waits(void)
{
	return atomic_load(&guard_n);
}

static void
intr_reached(void *arg)
{
	atomic_store((atomic_bool *)arg, true);
}

int
dp_guard_intr_sync(unsigned timeout_ms)
{
	/* Static: a callback that comes after the timeout still has its flag. */
	static atomic_bool reached;
	struct timespec ts = {.tv_nsec = 1000000};

	atomic_store(&reached, false);
	if (rte_eal_alarm_set(1, intr_reached, &reached))
		return -ETIMEDOUT;
	for (unsigned ms = 0; ms < timeout_ms && !atomic_load(&reached); ms++)
		nanosleep(&ts, NULL);
	if (atomic_load(&reached))
		return 0;
	rte_eal_alarm_cancel(intr_reached, &reached);
	return -ETIMEDOUT;
}

/*
 * The executable's munmap: the dynamic linker binds every shared object's munmap, the PMDs that
 * EAL loads at run time included, to this one. glibc's own munmap is the bare system call, made
 * here the same way (errno set by syscall()).
 */
int
munmap(void *addr, size_t len)
{
	struct rte_rcu_qsbr *q = atomic_load(&guard_q);

	if (q && rte_thread_is_intr()) {
		rte_rcu_qsbr_synchronize(q, RTE_QSBR_THRID_INVALID);
		atomic_fetch_add(&guard_n, 1);
	}
	return (int)syscall(SYS_munmap, addr, len);
}
