/* SPDX-License-Identifier: BSD-3-Clause */
/* See dp_guard.h: munmap on the EAL interrupt thread waits for the port I/O threads' QSBR. */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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
