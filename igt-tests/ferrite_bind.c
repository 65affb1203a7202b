// SPDX-License-Identifier: MIT
/*
 * ferrite_bind: what a VM's bindings do while its jobs run.
 *
 *   userptr-invalidate-busy  the CPU changes a userptr range while a job
 *                            that uses it is still queued: fork's
 *                            copy-on-write, munmap. The invalidation waits
 *                            for the VM's jobs (through their fences); a
 *                            job that ends within the wait runs as usual,
 *                            one that does not is stopped (its fence fails
 *                            with -ECANCELED) before the kernel goes on, and
 *                            never writes the old page (after fork, the
 *                            child's). The next job sees the new pages.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS

static volatile uint64_t *anon(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ftest_assert(p != MAP_FAILED);
	return p;
}

/* debugfs `sched`'s userptr_stops of fd's GPU; -1 without debugfs. */
static long long userptr_stops(int fd)
{
	static char buf[65536];
	char path[PATH_MAX];
	const char *k;
	long long n;

	if (fx_debugfs_path(fd, "sched", path, sizeof(path)))
		return -1;
	ftest_assert(fx_slurp(path, buf, sizeof(buf)) > 0);
	k = strstr(buf, "userptr_stops ");
	ftest_assert(k && sscanf(k, "userptr_stops %lld", &n) == 1);
	return n;
}

/* A process-VM queue with a gate word and command buffers. */
struct bed {
	int fd;
	uint32_t q, gatebo, cmdbo;
	volatile uint64_t *gate;
	uint8_t *cmd;
	int ncmd;
};

static struct bed bed_open(void)
{
	struct bed b = { .fd = fdev_open_or_skip(0) };

	/* Longer than the invalidation's wait: a stopped job is stopped by
	 * the invalidation, not by its timeout. */
	b.q = fx_queue(b.fd, PVM, 30000);
	b.gatebo = fx_bo(b.fd, FX_PAGE);
	fx_map(b.fd, PVM, b.gatebo, FX_VA(6), FX_PAGE);
	b.gate = fx_mmap(b.fd, b.gatebo, FX_PAGE);
	b.cmdbo = fx_bo(b.fd, 16 * FX_PAGE);
	b.cmd = fx_mmap(b.fd, b.cmdbo, 16 * FX_PAGE);
	fx_map(b.fd, PVM, b.cmdbo, FX_VA(7), 16 * FX_PAGE);
	return b;
}

static void set_gate(struct bed *b, uint64_t v)
{
	b->gate[0] = v;
	ftest_assert_ok(fx_gem_sync(b->fd, b->gatebo, FX_END_W));
}

/* Submit c (signalling a new syncobj, returned). */
static uint32_t submit(struct bed *b, const struct fx_cmd *c)
{
	uint32_t so = fx_syncobj(b->fd);

	ftest_assert(b->ncmd < 16);
	memcpy(b->cmd + (size_t)b->ncmd * FX_PAGE, c->dw, c->n * 4);
	ftest_assert_ok(fx_gem_sync(b->fd, b->cmdbo, FX_END_W));
	ftest_assert_ok(fx_submit(b->fd, b->q, FX_VA(7) + (uint64_t)b->ncmd * FX_PAGE, c->n * 4, so));
	b->ncmd++;
	return so;
}

/* A job that waits for the gate to read `gate`, then writes v at va. */
static uint32_t gated_write(struct bed *b, uint64_t gate, uint64_t va, uint64_t v)
{
	struct fx_cmd c = { .n = 0 };

	fx_wait(&c, FX_VA(6), gate);
	fx_write64(&c, va, v, FX_W64_FLUSH);
	return submit(b, &c);
}

struct opener {
	struct bed *b;
	uint64_t v;
	useconds_t after;
};

static void *open_later(void *arg)
{
	struct opener *o = arg;

	usleep(o->after);
	set_gate(o->b, o->v);
	return NULL;
}

static void test_userptr_invalidate_busy(void)
{
	struct bed b = bed_open();
	long long stops0 = userptr_stops(b.fd), stops;
	volatile uint64_t *p = anon(FX_PAGE), *m;
	int go[2], st;
	uint32_t so;
	pthread_t t;
	struct opener o = { .b = &b };
	char c = 0;
	pid_t pid;

	set_gate(&b, 0);

	/* 1. Fork while a job that would write the page waits on the gate:
	 * fork write-protects the parent's page (the invalidation), waits
	 * for the job, then stops it. The page it had mapped stays the
	 * child's; the job must never write it. */
	p[0] = 0xa;
	ftest_assert_ok(fx_bind_user(b.fd, PVM, (void *)p, FX_PAGE, 0));
	so = gated_write(&b, 1, (uintptr_t)p, 0xbad);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 200), -ETIME);
	ftest_assert_ok(pipe(go));
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		/* The page the GPU had mapped: untouched. */
		_exit(p[0] == 0xa ? 0 : 2);
	}
	ftest_assert(pid > 0);
	/* By now the job was stopped: it failed, and opening the gate does
	 * nothing. */
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 0));
	st = fx_syncobj_status(b.fd, so);
	if (st != -ECANCELED)
		ftest_fail("the job fork's invalidation stopped: status %d, expected %d", st,
			   -ECANCELED);
	set_gate(&b, 1);
	usleep(200 * 1000);
	ftest_assert_eq(write(go[1], &c, 1), 1);
	fx_reap(pid);
	ftest_assert_eq_u64(p[0], 0xa);
	/* The next job gets the parent's page (copied on this write). */
	p[1] = 0xc;
	{
		struct fx_cmd w = { .n = 0 };

		fx_write64(&w, (uintptr_t)p + 16, 0xd, FX_W64_FLUSH);
		so = submit(&b, &w);
		ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
		ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
		ftest_assert_eq_u64(p[2], 0xd);
	}

	/* 2. munmap while such a job waits: stopped likewise; a job on the
	 * range afterwards faults. */
	set_gate(&b, 0);
	m = anon(FX_PAGE);
	m[0] = 1;
	ftest_assert_ok(fx_bind_user(b.fd, PVM, (void *)m, FX_PAGE, 0));
	so = gated_write(&b, 1, (uintptr_t)m, 0xbad);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 200), -ETIME);
	ftest_assert_ok(munmap((void *)m, FX_PAGE));
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 0));
	ftest_assert_eq(fx_syncobj_status(b.fd, so), -ECANCELED);
	set_gate(&b, 1);
	{
		struct fx_cmd w = { .n = 0 };

		fx_write64(&w, (uintptr_t)m, 2, FX_W64_FLUSH);
		so = submit(&b, &w);
		ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
		ftest_assert_eq(fx_syncobj_status(b.fd, so), -EFAULT);
	}
	/* Unbound (the next mmap may get the same address). */
	ftest_assert_ok(fx_unmap(b.fd, PVM, (uintptr_t)m, FX_PAGE));

	/* 3. A job that ends within the wait is not stopped: the gate opens
	 * 300 ms into the munmap, which waits for the job. */
	set_gate(&b, 0);
	m = anon(FX_PAGE);
	ftest_assert_ok(fx_bind_user(b.fd, PVM, (void *)m, FX_PAGE, 0));
	so = gated_write(&b, 1, (uintptr_t)m, 0x600d);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 200), -ETIME);
	o.v = 1;
	o.after = 300 * 1000;
	ftest_assert_ok(pthread_create(&t, NULL, open_later, &o));
	ftest_assert_ok(munmap((void *)m, FX_PAGE));
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 0));
	ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	pthread_join(t, NULL);

	stops = userptr_stops(b.fd);
	if (stops0 >= 0) {
		printf("userptr_stops %lld -> %lld\n", stops0, stops);
		ftest_assert_eq(stops - stops0, 2);
	} else {
		printf("no debugfs: the stop count is not checked\n");
	}
	close(b.fd);
}

FTEST_MAIN(
	{ "userptr-invalidate-busy", test_userptr_invalidate_busy, "fork and munmap of a userptr a queued job uses: waited for, then stopped; the old page never written" },
)
