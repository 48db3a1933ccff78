/* SPDX-License-Identifier: BSD-3-Clause */
/* See dp_guard.h: munmap on the EAL interrupt thread waits for the port I/O threads' QSBR. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

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

struct intr_sync {
	int efd;
	atomic_bool reached;
};

static void
intr_reached(void *arg)
{
	struct intr_sync *s = arg;
	uint64_t v;

	if (read(s->efd, &v, sizeof(v)) < 0) {
		/* drained already: nothing else to do */
	}
	atomic_store(&s->reached, true);
}

/*
 * Not an EAL alarm: rte_eal_cleanup frees the alarms' interrupt handle while the interrupt
 * thread still polls it (DPDK 22.11), so a process that ever set one crashes in that thread as
 * it exits. An eventfd of our own is registered, signalled and unregistered again here.
 */
int
dp_guard_intr_sync(unsigned timeout_ms)
{
	/* Static: even a callback that outlives a timeout has its state. */
	static struct intr_sync s;
	const struct timespec ms = {.tv_nsec = 1000000};
	struct rte_intr_handle *h = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
	uint64_t one = 1;
	int rc = -ETIMEDOUT;

	if (!h)
		return -ENOMEM;
	atomic_store(&s.reached, false);
	s.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s.efd < 0 || rte_intr_fd_set(h, s.efd) || rte_intr_type_set(h, RTE_INTR_HANDLE_EXT) ||
	    rte_intr_callback_register(h, intr_reached, &s)) {
		if (s.efd >= 0)
			close(s.efd);
		rte_intr_instance_free(h);
		return -EIO;
	}
	if (write(s.efd, &one, sizeof(one)) == sizeof(one))
		for (unsigned t = 0; t < timeout_ms && !atomic_load(&s.reached); t++)
			nanosleep(&ms, NULL);
	if (atomic_load(&s.reached))
		rc = 0;
	/* -EAGAIN while the callback runs (it only reads the eventfd): until it is done. */
	for (int t = 0; t < 1000 && rte_intr_callback_unregister(h, intr_reached, &s) == -EAGAIN;
	     t++)
		nanosleep(&ms, NULL);
	close(s.efd);
	rte_intr_instance_free(h);
	return rc;
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
