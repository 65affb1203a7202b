// SPDX-License-Identifier: MIT
/*
 * ferrite_sched: the scheduler of interface 1.2. Queues do not own one of
 * the GPU's rings: any number of them share the rings, by priority and in
 * turn (a timeslice each), and a job can be preempted between any two of
 * its commands. These tests check what that must not break (every job's
 * result exact, every fence right, hangs and faults confined to their
 * queue, implicit sync still exclusive) and what it promises (REALTIME
 * gets a ring at once, equal queues get equal GPU time, a long job is
 * preempted and resumed exactly), plus the new QUEUE_CREATE input, the
 * robustness record (reset, banned) and a whole-GPU recovery from debugfs.
 *
 * Everything here runs under TCG in the guest: loads are sized for that
 * (a few-command job is about 0.5 ms, a 1 MiB FILL a few ms), every wait
 * has a timeout, and only results are asserted, not timings (except where
 * a bound is the point: REALTIME, fairness, hang isolation).
 */
#define _GNU_SOURCE /* pipe2 */
#include <pthread.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS
#define PRIO_BIT(p) (1u << (p))
#define ALL_PRIOS                                                                         \
	(PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_NORMAL) | PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_LOW) | \
	 PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_HIGH) |                                       \
	 PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_REALTIME))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Fail unless the driver speaks interface 1.2 (the scheduler's UAPI). */
static void require_sched(int fd)
{
	struct drm_ferrite_dev_info di = fx_dev_info(fd);

	if (di.uapi_version < 2)
		ftest_fail("interface %u.%u: the scheduler's UAPI needs 1.2", di.uapi_version >> 16,
			   di.uapi_version & 0xffff);
}

/* A BO of size bytes (rounded up to pages) mapped at va in vm, and its
 * CPU mapping. */
static void *bo_at(int fd, uint32_t vm, uint64_t va, uint64_t size, uint32_t *handle)
{
	uint32_t h;

	size = (size + FX_PAGE - 1) & ~(uint64_t)(FX_PAGE - 1);
	h = fx_bo(fd, size);
	void *p = fx_mmap(fd, h, size);

	fx_map(fd, vm, h, va, size);
	*handle = h;
	return p;
}

/* CPU access to a BO, as the UAPI requires: GEM_SYNC BEGIN ... END. */
static void cpu_begin(int fd, uint32_t bo, bool write)
{
	ftest_assert_ok(fx_gem_sync(fd, bo, write ? FX_BEGIN_W : FX_BEGIN_R));
}

static void cpu_end(int fd, uint32_t bo, bool write)
{
	ftest_assert_ok(fx_gem_sync(fd, bo, write ? FX_END_W : FX_END_R));
}

/* The CPU sets a u64 the GPU polls (a WAIT's gate; the GPU never writes
 * that BO). */
static void cpu_set(int fd, uint32_t bo, volatile uint64_t *p, size_t i, uint64_t v)
{
	cpu_begin(fd, bo, true);
	p[i] = v;
	cpu_end(fd, bo, true);
}

/*
 * Copy c into a command BO (CPU mapping map, GPU VA va) at offset off, in
 * a slot of `slot` bytes padded with a NOP (a zero dword would be a
 * command of length 0, a BAD_LENGTH error), so that the job is the whole
 * slot; the GPU VA of the slot. The caller brackets the writes with
 * cpu_begin/cpu_end.
 */
static uint64_t put_cmd(void *map, uint64_t va, uint64_t off, uint32_t slot,
			const struct fx_cmd *c)
{
	uint32_t *d = (uint32_t *)((char *)map + off), rest;

	ftest_assert(c->n * 4 <= slot && slot % 4 == 0 && slot / 4 - c->n <= 0xffff);
	memcpy(d, c->dw, c->n * 4);
	rest = slot / 4 - c->n;
	if (rest)
		d[c->n] = FX_OP_NOP | (rest << 16);
	return va + off;
}

/* Wait up to ms for so; fail on a timeout; the fence's status. */
static int wait_status(int fd, uint32_t so, int ms, const char *what)
{
	int r = fx_syncobj_wait(fd, so, ms);

	if (r)
		ftest_fail("%s: not signalled within %d ms (%s)", what, ms, strerror(-r));
	return fx_syncobj_status(fd, so);
}

/* The FNV-1a hash of size bytes filled with pattern (FILL's byte order). */
static uint64_t fill_hash(uint32_t pattern, size_t size)
{
	uint32_t *b = malloc(size);
	uint64_t h;

	ftest_assert(b != NULL);
	for (size_t i = 0; i < size / 4; i++)
		b[i] = pattern;
	h = fx_fnv1a(b, size);
	free(b);
	return h;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A 32-bit pattern unique to (a, b) (a bijection of (a << 16) | b), never
 * 0 (what a BO holds before anything wrote it) for a < 0xffff. */
static uint32_t pattern_of(uint32_t a, uint32_t b)
{
	uint32_t x = (((a << 16) | (b & 0xffff)) + 1) * 0x9e3779b1u;

	return x ^ (x >> 16);
}

/*
 * Children (forked processes, or threads) get ready, then start together
 * when the parent fires: each writes a byte to `ready` and reads `go`
 * until EOF, which every reader sees at once when the last write end of
 * `go` is closed.
 */
struct gun {
	int ready[2], go[2];
};

static void gun_init(struct gun *g)
{
	ftest_assert_ok(pipe2(g->ready, O_CLOEXEC));
	ftest_assert_ok(pipe2(g->go, O_CLOEXEC));
}

/* In a forked child: drop the parent's ends, so that EOF comes when the
 * parent fires. */
static void gun_child(struct gun *g)
{
	close(g->go[1]);
	close(g->ready[0]);
}

static void gun_wait(struct gun *g)
{
	char b = 'r';
	ssize_t r;

	ftest_assert(write(g->ready[1], &b, 1) == 1);
	while ((r = read(g->go[0], &b, 1)) < 0 && errno == EINTR)
		;
	ftest_assert(r == 0);
}

/* Wait (at most 60 s) for n children to be ready, then fire. A child that
 * dies before is reaped (and its failure reported) at once. */
static void gun_fire(struct gun *g, int n)
{
	double end = ftest_now() + 60;
	int got = 0;

	while (got < n) {
		struct pollfd p = { .fd = g->ready[0], .events = POLLIN };
		siginfo_t si = { 0 };
		char buf[64];

		if (ftest_now() > end)
			ftest_fail("only %d of %d children ready after 60 s", got, n);
		/* A child gone before the start: report it (peek, then reap). */
		if (!waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) && si.si_pid) {
			fx_reap(si.si_pid);
			ftest_fail("child %d exited before the start", (int)si.si_pid);
		}
		if (poll(&p, 1, 100) == 1) {
			ssize_t k = read(g->ready[0], buf, MIN((int)sizeof(buf), n - got));

			ftest_assert(k > 0);
			got += (int)k;
		}
	}
	close(g->go[1]);
}

/* fork(); the child dies with its parent (the subtest), so a failing
 * subtest leaves nothing running behind it. */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	ftest_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(FTEST_EXIT_FAILURE);
	}
	return pid;
}

/* A u64 array in memory shared with forked children, for their figures. */
static void *shared_mem(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ftest_assert(p != MAP_FAILED);
	return p;
}

/*
 * Queues on the process VM, spread over as many files of this process as
 * the per-file limit needs: every file of a process shares its process
 * VM, so a queue in any of them sees what was bound through fds[0].
 */
#define POOL_MAX 96
struct pool {
	int fds[POOL_MAX], nfd;
	int qfd[POOL_MAX];
	uint32_t q[POOL_MAX];
	int nq;
};

static void pool_init(struct pool *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fds[0] = fd;
	p->nfd = 1;
}

/* A new queue; its index in the pool. */
static int pool_add(struct pool *p, uint32_t timeout_ms, uint32_t prio, uint32_t flags)
{
	bool fresh = false;

	ftest_assert(p->nq < POOL_MAX);
	for (;;) {
		int fd = p->fds[p->nfd - 1];
		int r = fx_queue_prio(fd, PVM, timeout_ms, prio, flags);

		if (r >= 0) {
			p->qfd[p->nq] = fd;
			p->q[p->nq] = (uint32_t)r;
			return p->nq++;
		}
		if (r != -ENOSPC || fresh || p->nfd == POOL_MAX)
			ftest_fail("QUEUE_CREATE priority %u flags %#x: %s", prio, flags, strerror(-r));
		p->fds[p->nfd++] = fdev_open_or_skip(0);
		fresh = true;
	}
}

/* ------------------------------------------------------------------ */

/*
 * many-queues: 64 processes, each with its own file, VM and 4 queues,
 * start at once; each queue runs 4 jobs (FILL a page with its own
 * pattern, CHECKSUM it, WRITE64 a marker). 256 queues on 8 rings: every
 * job completes, with the right result, every fence signals OK.
 */
enum { MQ_PROCS = 64, MQ_QUEUES = 4, MQ_JOBS = 4, MQ_N = MQ_QUEUES * MQ_JOBS };

static uint64_t mq_marker(int p, int k)
{
	return 0x6d710000000000ull | ((uint64_t)p << 16) | (uint64_t)k;
}

static void mq_child(int p, struct gun *g)
{
	int fd = fdev_open_render(0);
	uint32_t vm, data, res, cmd, q[MQ_QUEUES], so[MQ_N];
	volatile uint64_t *pres;
	uint64_t hash[MQ_N];
	void *pcmd;

	ftest_assert(fd >= 0);
	vm = fx_vm(fd);
	bo_at(fd, vm, FX_VA(1), MQ_N * FX_PAGE, &data);
	pres = bo_at(fd, vm, FX_VA(2), FX_PAGE, &res);
	pcmd = bo_at(fd, vm, FX_VA(3), MQ_N * 1024, &cmd);
	for (int i = 0; i < MQ_QUEUES; i++) {
		int r = fx_queue_prio(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);

		if (r < 0)
			ftest_fail("process %d: queue %d: %s", p, i, strerror(-r));
		q[i] = (uint32_t)r;
	}
	/* Job k = (queue i, job j): its own page, result slot and marker. */
	cpu_begin(fd, cmd, true);
	for (int k = 0; k < MQ_N; k++) {
		uint32_t pat = pattern_of((uint32_t)p, (uint32_t)k);
		struct fx_cmd c = { 0 };

		fx_fill(&c, FX_VA(1) + k * FX_PAGE, FX_PAGE, pat);
		fx_checksum(&c, FX_VA(2) + 8 * k, FX_VA(1) + k * FX_PAGE, FX_PAGE);
		fx_write64(&c, FX_VA(2) + 8 * (MQ_N + k), mq_marker(p, k), 0);
		put_cmd(pcmd, FX_VA(3), k * 1024ull, 1024, &c);
		hash[k] = fill_hash(pat, FX_PAGE);
		so[k] = fx_syncobj(fd);
	}
	cpu_end(fd, cmd, true);

	gun_wait(g);
	/* Round robin over the queues, so all 4 have work at once. */
	for (int j = 0; j < MQ_JOBS; j++)
		for (int i = 0; i < MQ_QUEUES; i++) {
			int k = i * MQ_JOBS + j;

			ftest_assert_ok(fx_submit(fd, q[i], FX_VA(3) + k * 1024ull, 1024, so[k]));
		}
	for (int k = 0; k < MQ_N; k++) {
		int st = wait_status(fd, so[k], 60000, "many-queues job");

		if (st != 1)
			ftest_fail("process %d job %d: fence status %d", p, k, st);
	}
	cpu_begin(fd, res, false);
	for (int k = 0; k < MQ_N; k++) {
		if (pres[k] != hash[k] || pres[MQ_N + k] != mq_marker(p, k))
			ftest_fail("process %d job %d: checksum %#llx (expected %#llx), marker %#llx",
				   p, k, (unsigned long long)pres[k], (unsigned long long)hash[k],
				   (unsigned long long)pres[MQ_N + k]);
	}
	cpu_end(fd, res, false);
	for (int i = 0; i < MQ_QUEUES; i++)
		ftest_assert_eq(fx_state(fd, q[i], 0).failed_jobs, 0);
	close(fd);
}

static void test_many_queues(void)
{
	int fd = fdev_open_or_skip(0);
	pid_t pids[MQ_PROCS];
	struct gun g;

	require_sched(fd);
	close(fd);
	gun_init(&g);
	for (int p = 0; p < MQ_PROCS; p++) {
		pids[p] = fork_child();
		if (pids[p] == 0) {
			gun_child(&g);
			mq_child(p, &g);
			_exit(0);
		}
	}
	gun_fire(&g, MQ_PROCS);
	for (int p = 0; p < MQ_PROCS; p++)
		fx_reap(pids[p]);
	printf("%d processes x %d queues x %d jobs: all exact\n", MQ_PROCS, MQ_QUEUES, MQ_JOBS);
}

/* ------------------------------------------------------------------ */

/*
 * realtime: 16 LOW queues (at least twice the rings) each run a job that
 * WAITs on a gate the CPU opens only after a REALTIME queue's job has
 * completed: the LOW jobs hold every ring, so the REALTIME job completes
 * only if it preempts one of them. Then the gate opens and every LOW job
 * completes with its result.
 */
static void test_realtime(void)
{
	int fd = fdev_open_or_skip(0), nlow, rt;
	struct drm_ferrite_sched_info si;
	uint32_t gate, res, cmd, so_rt, so_low[POOL_MAX];
	volatile uint64_t *pgate, *pres;
	struct fx_cmd c = { 0 };
	struct pool pool;
	double t0, t1;
	void *pcmd;
	int r, st;

	require_sched(fd);
	si = fx_sched_info(fd);
	if (geteuid() != 0)
		ftest_skip("REALTIME queues need CAP_SYS_NICE: run as root");
	if (!(si.priorities & PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_REALTIME)))
		ftest_fail("root may not create REALTIME queues (priorities %#x)", si.priorities);
	nlow = MAX(16, 2 * (int)si.num_rings);
	ftest_assert(nlow < POOL_MAX);
	pool_init(&pool, fd);
	pgate = bo_at(fd, PVM, FX_VA(1), FX_PAGE, &gate);
	pres = bo_at(fd, PVM, FX_VA(2), FX_PAGE, &res);
	pcmd = bo_at(fd, PVM, FX_VA(3), 1024ull * (nlow + 1), &cmd);

	/* LOW job i at 1 KiB * i: wait for the gate, write 0x1000 + i at
	 * slot i. The REALTIME job after them: write 0x7777 at slot 500. */
	cpu_begin(fd, cmd, true);
	for (int i = 0; i < nlow; i++) {
		c.n = 0;
		fx_wait(&c, FX_VA(1), 1);
		fx_write64(&c, FX_VA(2) + 8 * i, 0x1000 + i, 0);
		put_cmd(pcmd, FX_VA(3), 1024ull * i, 1024, &c);
	}
	c.n = 0;
	fx_write64(&c, FX_VA(2) + 8 * 500, 0x7777, 0);
	put_cmd(pcmd, FX_VA(3), 1024ull * nlow, 1024, &c);
	cpu_end(fd, cmd, true);

	for (int i = 0; i < nlow; i++) {
		int k = pool_add(&pool, 30000, DRM_FERRITE_QUEUE_PRIORITY_LOW, 0);

		ftest_assert_eq(k, i);
		so_low[i] = fx_syncobj(pool.qfd[k]);
		ftest_assert_ok(fx_submit(pool.qfd[k], pool.q[k], FX_VA(3) + 1024ull * i, 1024,
					  so_low[i]));
	}
	rt = pool_add(&pool, 10000, DRM_FERRITE_QUEUE_PRIORITY_REALTIME, 0);
	so_rt = fx_syncobj(pool.qfd[rt]);
	/* Let the LOW jobs take every ring. */
	usleep(300000);
	for (int i = 0; i < nlow; i++)
		ftest_assert_eq(fx_syncobj_status(pool.qfd[i], so_low[i]), 0);

	t0 = ftest_now();
	ftest_assert_ok(fx_submit(pool.qfd[rt], pool.q[rt], FX_VA(3) + 1024ull * nlow, 1024, so_rt));
	r = fx_syncobj_wait(pool.qfd[rt], so_rt, 5000);
	t1 = ftest_now();
	/* Open the gate whatever happened, so that the LOW jobs end. */
	cpu_set(fd, gate, pgate, 0, 1);
	if (r)
		ftest_fail("the REALTIME job did not complete within 5 s while %d LOW jobs held the rings",
			   nlow);
	ftest_assert_eq(fx_syncobj_status(pool.qfd[rt], so_rt), 1);
	printf("REALTIME job completed %.3f ms after its submission (%d LOW queues on %u rings)\n",
	       (t1 - t0) * 1e3, nlow, si.num_rings);

	for (int i = 0; i < nlow; i++) {
		st = wait_status(pool.qfd[i], so_low[i], 20000, "LOW job");
		if (st != 1)
			ftest_fail("LOW job %d: fence status %d", i, st);
	}
	cpu_begin(fd, res, false);
	for (int i = 0; i < nlow; i++)
		ftest_assert_eq_u64(pres[i], 0x1000 + i);
	ftest_assert_eq_u64(pres[500], 0x7777);
	cpu_end(fd, res, false);
	for (int i = 0; i < pool.nq; i++)
		ftest_assert_eq(fx_state(pool.qfd[i], pool.q[i], 0).failed_jobs, 0);
}

/* ------------------------------------------------------------------ */

/*
 * preempt-mid-job: one job of 40,000 commands (8 CALLed buffers of 5,000)
 * runs a chain in which every command depends on the one before and is
 * not idempotent: command i is CHECKSUM(dst = &s[i + 1], src = &s[i], 16
 * bytes), so s[i + 1] = fnv(s[i], s[i + 1]) reads the value it replaces.
 * A lost command leaves s[i + 1] as the CPU wrote it, a repeated one hashes
 * it twice: either changes the array, which is compared whole with the
 * CPU's computation. Between the buffers the job WAITs for gates the CPU
 * opens every 50 ms, so it lasts at least 350 ms whatever the device's
 * speed, while 16 (at least 8, twice the rings) NORMAL queues keep every
 * ring busy (FILL loops, then a WAIT for the end of the test): the
 * scheduler must rotate, preempting the chain at least 5 times.
 */
enum {
	PM_SEGS = 8,
	PM_SEG_CMDS = 5000,
	PM_CMDS = PM_SEGS * PM_SEG_CMDS,
	PM_SEG_STRIDE = 256 * 1024,
	PM_COMP_BUF = 256 * 1024,
	PM_COMP_FILLS = 64,
	PM_COMP_CMD = 2048, /* a competitor's job */
	PM_COMP_GATE = 64,  /* the competitors' gate, a slot of the gate page */
	PM_COMP_DONE = 256, /* the competitors' markers, slots of the result page */
};

static void test_preempt_mid_job(void)
{
	int fd = fdev_open_or_skip(0), ncomp, chain, comp[POOL_MAX];
	uint32_t gate, arr, ib, cmd, cdata, cres, so_chain, so_comp[POOL_MAX];
	volatile uint64_t *pgate, *pres;
	uint64_t *parr, *expect, comp_hash[POOL_MAX];
	const size_t arr_size = 512 * 1024;
	struct drm_ferrite_sched_info si;
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd top = { 0 }, c = { 0 };
	char sched[PATH_MAX];
	struct pool pool;
	uint32_t *pib;
	void *pcmd;
	int r;

	require_sched(fd);
	si = fx_sched_info(fd);
	if (!si.preempt)
		ftest_fail("DEV_QUERY_SCHED: preempt is 0, jobs cannot be preempted mid-job");
	ncomp = MAX(8, 2 * (int)si.num_rings);
	ftest_assert(ncomp + 1 < POOL_MAX && ncomp <= PM_COMP_DONE);
	ftest_assert((PM_CMDS + 2) * 8 <= (int)arr_size);
	ftest_assert(PM_SEG_CMDS * 7 * 4 <= PM_SEG_STRIDE);
	pool_init(&pool, fd);
	pgate = bo_at(fd, PVM, FX_VA(1), FX_PAGE, &gate);
	parr = bo_at(fd, PVM, FX_VA(2), arr_size, &arr);
	pib = bo_at(fd, PVM, FX_VA(3), (uint64_t)PM_SEGS * PM_SEG_STRIDE, &ib);
	pcmd = bo_at(fd, PVM, FX_VA(4), FX_PAGE + (uint64_t)ncomp * PM_COMP_CMD, &cmd);
	bo_at(fd, PVM, FX_VA(5), (uint64_t)ncomp * PM_COMP_BUF, &cdata);
	pres = bo_at(fd, PVM, FX_VA(6), FX_PAGE, &cres);

	/* The chain: s[k] starts as splitmix64(k); the CPU's answer. */
	expect = malloc(arr_size);
	ftest_assert(expect != NULL);
	cpu_begin(fd, arr, true);
	for (size_t k = 0; k < arr_size / 8; k++)
		parr[k] = expect[k] = splitmix64(k);
	cpu_end(fd, arr, true);
	for (int i = 0; i < PM_CMDS; i++)
		expect[i + 1] = fx_fnv1a(&expect[i], 16);

	/* The indirect buffers: 5,000 CHECKSUMs each (7 dwords). */
	cpu_begin(fd, ib, true);
	for (int s = 0; s < PM_SEGS; s++) {
		uint32_t *d = pib + (size_t)s * PM_SEG_STRIDE / 4;

		for (int j = 0; j < PM_SEG_CMDS; j++) {
			int i = s * PM_SEG_CMDS + j;
			uint64_t dst = FX_VA(2) + 8ull * (i + 1), src = FX_VA(2) + 8ull * i;

			*d++ = FX_OP_CHECKSUM | (7u << 16);
			*d++ = LO(dst);
			*d++ = HI(dst);
			*d++ = LO(src);
			*d++ = HI(src);
			*d++ = 16;
			*d++ = 0;
		}
	}
	cpu_end(fd, ib, true);
	/* The job: CALL each buffer; between two, wait for gate s. */
	for (int s = 0; s < PM_SEGS; s++) {
		fx_call(&top, FX_VA(3) + (uint64_t)s * PM_SEG_STRIDE, PM_SEG_CMDS * 7 * 4);
		if (s + 1 < PM_SEGS)
			fx_wait(&top, FX_VA(1) + 8 * s, 1);
	}
	/* Competitor i: PM_COMP_FILLS FILLs of its own 256 KiB, then wait
	 * for the end of the test, checksum what the last FILL left and
	 * write a marker. */
	cpu_begin(fd, cmd, true);
	put_cmd(pcmd, FX_VA(4), 0, top.n * 4, &top);
	for (int i = 0; i < ncomp; i++) {
		uint64_t buf = FX_VA(5) + (uint64_t)i * PM_COMP_BUF;

		c.n = 0;
		for (int f = 0; f < PM_COMP_FILLS; f++)
			fx_fill(&c, buf, PM_COMP_BUF, pattern_of(0x100 + i, f));
		fx_wait(&c, FX_VA(1) + 8 * PM_COMP_GATE, 1);
		fx_checksum(&c, FX_VA(6) + 8 * i, buf, PM_COMP_BUF);
		fx_write64(&c, FX_VA(6) + 8 * (PM_COMP_DONE + i), 0xc0de0000 + i, 0);
		put_cmd(pcmd, FX_VA(4), FX_PAGE + (uint64_t)PM_COMP_CMD * i, PM_COMP_CMD, &c);
		comp_hash[i] = fill_hash(pattern_of(0x100 + i, PM_COMP_FILLS - 1), PM_COMP_BUF);
	}
	cpu_end(fd, cmd, true);

	for (int i = 0; i < ncomp; i++) {
		comp[i] = pool_add(&pool, 30000, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
		so_comp[i] = fx_syncobj(pool.qfd[comp[i]]);
		ftest_assert_ok(fx_submit(pool.qfd[comp[i]], pool.q[comp[i]],
					  FX_VA(4) + FX_PAGE + (uint64_t)PM_COMP_CMD * i, PM_COMP_CMD,
					  so_comp[i]));
	}
	chain = pool_add(&pool, 30000, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	so_chain = fx_syncobj(pool.qfd[chain]);
	usleep(100000);
	ftest_assert_ok(fx_submit(pool.qfd[chain], pool.q[chain], FX_VA(4), top.n * 4, so_chain));
	for (int s = 0; s + 1 < PM_SEGS; s++) {
		usleep(50000);
		cpu_set(fd, gate, pgate, s, 1);
	}
	r = fx_syncobj_wait(pool.qfd[chain], so_chain, 30000);
	/* Release the competitors whatever happened. */
	cpu_set(fd, gate, pgate, PM_COMP_GATE, 1);
	if (r)
		ftest_fail("the 40,000-command job did not complete within 30 s");
	r = fx_syncobj_status(pool.qfd[chain], so_chain);
	if (r != 1)
		ftest_fail("the 40,000-command job: fence status %d", r);

	for (int i = 0; i < ncomp; i++) {
		r = wait_status(pool.qfd[comp[i]], so_comp[i], 20000, "competitor job");
		if (r != 1)
			ftest_fail("competitor %d: fence status %d", i, r);
	}
	cpu_begin(fd, cres, false);
	for (int i = 0; i < ncomp; i++) {
		ftest_assert_eq_u64(pres[i], comp_hash[i]);
		ftest_assert_eq_u64(pres[PM_COMP_DONE + i], 0xc0de0000 + i);
	}
	cpu_end(fd, cres, false);

	cpu_begin(fd, arr, false);
	for (size_t k = 0; k < arr_size / 8; k++)
		if (parr[k] != expect[k])
			ftest_fail("chain slot %zu: %#llx, expected %#llx (the first wrong one)", k,
				   (unsigned long long)parr[k], (unsigned long long)expect[k]);
	cpu_end(fd, arr, false);

	st = fx_state(pool.qfd[chain], pool.q[chain], 0);
	printf("chain job: %u preemptions, %.1f ms on a ring; %d competing queues on %u rings\n",
	       st.preemptions, st.ring_time_ns / 1e6, ncomp, si.num_rings);
	if (!fx_debugfs_path(fd, "sched", sched, sizeof(sched))) {
		char buf[4096];
		int f = open(sched, O_RDONLY | O_CLOEXEC), n;

		if (f >= 0 && (n = read(f, buf, sizeof(buf) - 1)) > 0) {
			buf[n] = 0;
			printf("%s:\n%s", sched, buf);
		}
		if (f >= 0)
			close(f);
	}
	ftest_assert_eq(st.failed_jobs, 0);
	if (st.preemptions < 5)
		ftest_fail("the chain job was preempted %u times, expected at least 5", st.preemptions);
	free(expect);
}

/* ------------------------------------------------------------------ */

/*
 * fairness: 16 processes, one NORMAL queue each (in its own file, so that
 * fdinfo tells them apart), each with FR_JOBS jobs of equal cost (FILLs of
 * 1 MiB and a CHECKSUM) queued at once, more than the window lets the GPU
 * run. 16 queues on 8 rings, all of one priority, all with work
 * throughout: between two instants, each queue must get GPU time (fdinfo
 * drm-engine-queue per second of its window) within 25% of the mean.
 * The parent reads all 16 files' fdinfo (/proc/PID/fdinfo/FD) at both
 * ends of the window and times each read: on a loaded debug kernel the 16
 * reads take a while, and not the same while at both ends, so each
 * queue's GPU time is divided by its own window. The work is
 * queued before the window, so what is shared is the GPU, not the CPU
 * time each process got to submit. Every job's checksum must be right,
 * and each queue's QUEUE_GET_STATE.ring_time_ns must equal its file's
 * drm-engine-queue (one queue per file).
 */
enum {
	FR_PROCS = 16,
	FR_JOBS = 120,
	FR_BUF = 1 << 20,
	FR_FILLS = 4,
	FR_KINDS = 4,
	FR_CMD = 256,
};
#define FR_SECONDS 2.0

struct fr_figures {
	long long engine_ns[2], jobs;
	/* When the parent read engine_ns (the middle of the read), s. */
	double at[2];
	/* The child's pid and its render node's fd, for its fdinfo. */
	int pid, fd;
	/* The last job had not ended when the window closed. */
	int busy;
};

/* The parent's instants: 1 opens every queue's gate (each job first
 * WAITs on it, so no queue starts before all have their work queued), 2
 * says the window has closed (the parent sampled every file twice);
 * the children count themselves in `submitted` once their jobs are
 * queued. */
struct fr_clock {
	volatile int phase;
	int submitted;
};

static uint32_t fr_pattern(int kind, int f)
{
	return pattern_of(0x200 + kind, f);
}

static void fr_wait_phase(struct fr_clock *clk, int phase)
{
	double end = ftest_now() + 120;

	while (clk->phase < phase) {
		if (ftest_now() > end)
			ftest_fail("fairness: no instant %d from the parent", phase);
		usleep(500);
	}
}

static void fr_child(int p, struct gun *g, struct fr_clock *clk, const uint64_t *hash,
		     struct fr_figures *out)
{
	int fd = fdev_open_render(0), r;
	uint32_t vm, buf, res, cmd, gate, so[FR_JOBS], q;
	volatile uint64_t *pres, *pgate;
	void *pcmd;

	ftest_assert(fd >= 0);
	vm = fx_vm(fd);
	/* The gate's WAIT counts as time on a ring while the others
	 * submit (40 s on the debug kernel): the longest timeout. */
	r = fx_queue_prio(fd, vm, 60000, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	if (r < 0)
		ftest_fail("process %d: QUEUE_CREATE: %s", p, strerror(-r));
	q = (uint32_t)r;
	bo_at(fd, vm, FX_VA(1), FR_BUF, &buf);
	pres = bo_at(fd, vm, FX_VA(2), FR_JOBS * 8, &res);
	pcmd = bo_at(fd, vm, FX_VA(3), (uint64_t)FR_JOBS * FR_CMD, &cmd);
	pgate = bo_at(fd, vm, FX_VA(4), FX_PAGE, &gate);
	cpu_begin(fd, gate, true);
	pgate[0] = 0;
	cpu_end(fd, gate, true);
	cpu_begin(fd, cmd, true);
	for (int k = 0; k < FR_JOBS; k++) {
		struct fx_cmd c = { 0 };

		fx_wait(&c, FX_VA(4), 1);
		for (int f = 0; f < FR_FILLS; f++)
			fx_fill(&c, FX_VA(1), FR_BUF, fr_pattern(k % FR_KINDS, f));
		fx_checksum(&c, FX_VA(2) + 8ull * k, FX_VA(1), FR_BUF);
		put_cmd(pcmd, FX_VA(3), (uint64_t)k * FR_CMD, FR_CMD, &c);
	}
	cpu_end(fd, cmd, true);
	for (int k = 0; k < FR_JOBS; k++)
		so[k] = fx_syncobj(fd);

	gun_wait(g);
	for (int k = 0; k < FR_JOBS; k++)
		ftest_assert_ok(fx_submit(fd, q, FX_VA(3) + (uint64_t)k * FR_CMD, FR_CMD, so[k]));
	out->jobs = FR_JOBS;
	out->pid = getpid();
	out->fd = fd;
	__atomic_fetch_add(&clk->submitted, 1, __ATOMIC_SEQ_CST);
	fr_wait_phase(clk, 1);
	cpu_begin(fd, gate, true);
	pgate[0] = 1;
	cpu_end(fd, gate, true);
	fr_wait_phase(clk, 2);
	out->busy = fx_syncobj_wait(fd, so[FR_JOBS - 1], 0) == -ETIME;
	for (int k = 0; k < FR_JOBS; k++) {
		r = wait_status(fd, so[k], 120000, "fairness job");
		if (r != 1)
			ftest_fail("process %d job %d: fence status %d", p, k, r);
	}
	{
		struct drm_ferrite_queue_get_state st = fx_state(fd, q, 0);
		long long eng = fx_fdinfo_engine_ns(fd);

		ftest_assert_eq(st.failed_jobs, 0);
		/* Both are charged together, and every job has ended. */
		if ((long long)st.ring_time_ns != eng)
			ftest_fail("process %d: QUEUE_GET_STATE ring_time_ns %llu, "
				   "fdinfo drm-engine-queue %lld",
				   p, (unsigned long long)st.ring_time_ns, eng);
	}
	cpu_begin(fd, res, false);
	for (int k = 0; k < FR_JOBS; k++)
		if (pres[k] != hash[k % FR_KINDS])
			ftest_fail("process %d job %d: checksum %#llx, expected %#llx", p, k,
				   (unsigned long long)pres[k], (unsigned long long)hash[k % FR_KINDS]);
	cpu_end(fd, res, false);
	close(fd);
}

/* Every queue's figure within 25% of the mean; prints the spread. */
static void fr_check(const char *what, const double *v)
{
	double sum = 0, mean, lo = v[0], hi = v[0];

	for (int p = 0; p < FR_PROCS; p++) {
		sum += v[p];
		lo = v[p] < lo ? v[p] : lo;
		hi = v[p] > hi ? v[p] : hi;
	}
	mean = sum / FR_PROCS;
	if (mean <= 0)
		ftest_fail("%s: no GPU time measured", what);
	printf("%s: mean %.1f ms, min %.3f x mean, max %.3f x mean\n", what, mean / 1e6, lo / mean,
	       hi / mean);
	for (int p = 0; p < FR_PROCS; p++)
		if (v[p] < 0.75 * mean || v[p] > 1.25 * mean)
			ftest_fail("%s: queue %d got %.1f ms, %.3f x the mean %.1f ms (limit 25%%)", what,
				   p, v[p] / 1e6, v[p] / mean, mean / 1e6);
}

static void test_fairness(void)
{
	int fd = fdev_open_or_skip(0);
	struct fr_figures *fig = shared_mem(sizeof(*fig) * FR_PROCS);
	struct fr_clock *clk = shared_mem(sizeof(*clk));
	double engine[FR_PROCS];
	uint64_t hash[FR_KINDS];
	pid_t pids[FR_PROCS];
	struct gun g;

	require_sched(fd);
	close(fd);
	for (int k = 0; k < FR_KINDS; k++)
		hash[k] = fill_hash(fr_pattern(k, FR_FILLS - 1), FR_BUF);
	gun_init(&g);
	clk->phase = 0;
	clk->submitted = 0;
	for (int p = 0; p < FR_PROCS; p++) {
		fig[p].engine_ns[0] = fig[p].engine_ns[1] = -1;
		pids[p] = fork_child();
		if (pids[p] == 0) {
			gun_child(&g);
			fr_child(p, &g, clk, hash, &fig[p]);
			_exit(0);
		}
	}
	gun_fire(&g, FR_PROCS);
	/* Every child submits its jobs, then the window opens. */
	for (double end = ftest_now() + 60;
	     __atomic_load_n(&clk->submitted, __ATOMIC_SEQ_CST) < FR_PROCS;) {
		if (ftest_now() > end)
			ftest_fail("fairness: only %d of %d processes submitted in 60 s",
				   __atomic_load_n(&clk->submitted, __ATOMIC_SEQ_CST), FR_PROCS);
		usleep(1000);
	}
	/* Open the gates, let the queues settle, then the window: the
	 * parent reads every file's fdinfo at both ends, in one order. */
	clk->phase = 1;
	usleep(200 * 1000);
	for (int i = 0; i < 2; i++) {
		if (i)
			usleep((useconds_t)(FR_SECONDS * 1e6));
		for (int p = 0; p < FR_PROCS; p++) {
			double t0 = ftest_now();

			fig[p].engine_ns[i] = fx_fdinfo_engine_ns_of(fig[p].pid, fig[p].fd);
			fig[p].at[i] = (t0 + ftest_now()) / 2;
		}
	}
	clk->phase = 2;
	for (int p = 0; p < FR_PROCS; p++)
		fx_reap(pids[p]);
	for (int p = 0; p < FR_PROCS; p++) {
		double window = fig[p].at[1] - fig[p].at[0];

		/* GPU time per second of the queue's window, in ns. */
		engine[p] = (double)(fig[p].engine_ns[1] - fig[p].engine_ns[0]) / window;
		printf("queue %2d: fdinfo %.1f ms in its %.3f s window: %.1f ms/s%s\n", p,
		       (double)(fig[p].engine_ns[1] - fig[p].engine_ns[0]) / 1e6, window,
		       engine[p] / 1e6, fig[p].busy ? "" : " (ran out of work)");
		if (fig[p].engine_ns[0] < 0 || fig[p].engine_ns[1] < 0)
			ftest_fail("queue %d: no drm-engine-queue in /proc/%d/fdinfo/%d", p,
				   fig[p].pid, fig[p].fd);
		if (!fig[p].busy)
			ftest_fail("queue %d ran out of work before the window closed: "
				   "FR_JOBS is too small for this machine",
				   p);
	}
	fr_check("fdinfo drm-engine-queue per second", engine);
}

/* ------------------------------------------------------------------ */

/*
 * hang-isolation: a queue's job hangs (WAIT on memory nobody writes) with
 * a 500 ms timeout; meanwhile 12 other queues (in 12 processes) run job
 * after job for 2 s: each completes within 500 ms + 3 s of its
 * submission, with the right result. The hung job fails with -ETIMEDOUT,
 * its queue alone is GUILTY, and it runs the next job.
 */
enum { HI_OTHERS = 12, HI_HANG_MS = 500, HI_SLACK_MS = 3000, HI_MAXJOBS = 480, HI_CMD = 128 };
#define HI_SECONDS 2.0

struct hi_figures {
	long long jobs, max_us;
};

static void hi_child(int p, struct gun *g, struct hi_figures *out)
{
	int fd = fdev_open_render(0), r, j;
	uint32_t vm, data, res, cmd, so, q;
	volatile uint64_t *pres;
	struct drm_ferrite_queue_get_state st;
	double end, worst = 0;
	void *pcmd;

	ftest_assert(fd >= 0);
	vm = fx_vm(fd);
	r = fx_queue_prio(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	if (r < 0)
		ftest_fail("process %d: QUEUE_CREATE: %s", p, strerror(-r));
	q = (uint32_t)r;
	bo_at(fd, vm, FX_VA(1), FX_PAGE, &data);
	pres = bo_at(fd, vm, FX_VA(2), FX_PAGE, &res);
	pcmd = bo_at(fd, vm, FX_VA(3), (uint64_t)HI_MAXJOBS * HI_CMD, &cmd);
	cpu_begin(fd, cmd, true);
	for (int k = 0; k < HI_MAXJOBS; k++) {
		struct fx_cmd c = { 0 };

		fx_fill(&c, FX_VA(1), FX_PAGE, pattern_of(0x300 + p, k));
		fx_checksum(&c, FX_VA(2) + 8ull * k, FX_VA(1), FX_PAGE);
		put_cmd(pcmd, FX_VA(3), (uint64_t)k * HI_CMD, HI_CMD, &c);
	}
	cpu_end(fd, cmd, true);
	so = fx_syncobj(fd);

	gun_wait(g);
	end = ftest_now() + HI_SECONDS;
	for (j = 0; j < HI_MAXJOBS && (j < 3 || ftest_now() < end); j++) {
		double t0 = ftest_now(), dt;

		ftest_assert_ok(fx_submit(fd, q, FX_VA(3) + (uint64_t)j * HI_CMD, HI_CMD, so));
		r = fx_syncobj_wait(fd, so, HI_HANG_MS + HI_SLACK_MS);
		dt = ftest_now() - t0;
		if (r)
			ftest_fail("process %d: job %d not done %d ms after its submission (%s)", p, j,
				   HI_HANG_MS + HI_SLACK_MS, strerror(-r));
		r = fx_syncobj_status(fd, so);
		if (r != 1)
			ftest_fail("process %d job %d: fence status %d", p, j, r);
		worst = dt > worst ? dt : worst;
	}
	out->jobs = j;
	out->max_us = (long long)(worst * 1e6);
	cpu_begin(fd, res, false);
	for (int k = 0; k < j; k++) {
		uint64_t h = fill_hash(pattern_of(0x300 + p, k), FX_PAGE);

		if (pres[k] != h)
			ftest_fail("process %d job %d: checksum %#llx, expected %#llx", p, k,
				   (unsigned long long)pres[k], (unsigned long long)h);
	}
	cpu_end(fd, res, false);
	st = fx_state(fd, q, 0);
	ftest_assert_eq(st.failed_jobs, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_NONE);
	close(fd);
}

static void test_hang_isolation(void)
{
	int fd = fdev_open_or_skip(0), r;
	struct hi_figures *fig = shared_mem(sizeof(*fig) * HI_OTHERS);
	uint32_t vm, hq, gate, res, cmd, so = 0;
	volatile uint64_t *pres;
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd c = { 0 };
	pid_t pids[HI_OTHERS];
	long long worst = 0, least = LLONG_MAX, most = 0;
	struct gun g;
	void *pcmd;

	require_sched(fd);
	vm = fx_vm(fd);
	r = fx_queue_prio(fd, vm, HI_HANG_MS, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	ftest_assert(r >= 0);
	hq = (uint32_t)r;
	bo_at(fd, vm, FX_VA(1), FX_PAGE, &gate);
	pres = bo_at(fd, vm, FX_VA(2), FX_PAGE, &res);
	pcmd = bo_at(fd, vm, FX_VA(3), 2 * FX_PAGE, &cmd);
	/* The hang: nobody ever writes the gate. */
	cpu_begin(fd, cmd, true);
	fx_wait(&c, FX_VA(1) + 8, 1);
	fx_write64(&c, FX_VA(2), 0xdead, 0);
	put_cmd(pcmd, FX_VA(3), 0, 256, &c);
	c.n = 0;
	fx_write64(&c, FX_VA(2) + 8, 0x600d, 0);
	put_cmd(pcmd, FX_VA(3), FX_PAGE, 256, &c);
	cpu_end(fd, cmd, true);

	gun_init(&g);
	for (int p = 0; p < HI_OTHERS; p++) {
		pids[p] = fork_child();
		if (pids[p] == 0) {
			gun_child(&g);
			hi_child(p, &g, &fig[p]);
			_exit(0);
		}
	}
	so = fx_syncobj(fd);
	ftest_assert_ok(fx_submit(fd, hq, FX_VA(3), 256, so));
	usleep(100000);
	/* The others start while the job hangs. */
	ftest_assert_eq(fx_syncobj_status(fd, so), 0);
	gun_fire(&g, HI_OTHERS);
	for (int p = 0; p < HI_OTHERS; p++)
		fx_reap(pids[p]);
	for (int p = 0; p < HI_OTHERS; p++) {
		worst = MAX(worst, fig[p].max_us);
		least = MIN(least, fig[p].jobs);
		most = MAX(most, fig[p].jobs);
	}
	printf("%d other queues: %lld..%lld jobs each; slowest job %.1f ms from submission to done\n",
	       HI_OTHERS, least, most, worst / 1e3);

	r = wait_status(fd, so, 20000, "the hung job");
	if (r != -ETIMEDOUT)
		ftest_fail("the hung job: fence status %d, expected -ETIMEDOUT", r);
	st = fx_state(fd, hq, 0);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_TIMEDOUT);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_GUILTY);
	ftest_assert_eq(st.banned, 0);
	ftest_assert_eq(st.failed_jobs, 1);
	/* Without ERRORS_FATAL the queue runs the next job. */
	ftest_assert_ok(fx_submit(fd, hq, FX_VA(3) + FX_PAGE, 256, so));
	ftest_assert_eq(wait_status(fd, so, 20000, "the job after the hang"), 1);
	cpu_begin(fd, res, false);
	ftest_assert_eq_u64(pres[0], 0);
	ftest_assert_eq_u64(pres[1], 0x600d);
	cpu_end(fd, res, false);
	close(fd);
}

/* ------------------------------------------------------------------ */

static void write_file(const char *path, const char *v)
{
	int f = open(path, O_WRONLY | O_CLOEXEC);

	if (f < 0)
		ftest_fail("open %s: %s", path, strerror(errno));
	if (write(f, v, strlen(v)) != (ssize_t)strlen(v))
		ftest_fail("write %s to %s: %s", v, path, strerror(errno));
	close(f);
}

/*
 * guilty-innocent: GL robustness / Vulkan device-lost through the queue
 * record. Queue A (ERRORS_FATAL) faults: its job fails with -EFAULT, the
 * job queued behind it with -ECANCELED, A reads GUILTY, banned, 1 fault,
 * and SUBMIT on A fails with -ECANCELED. Then, with B's job running (a
 * WAIT for a gate that stays shut) and C idle, debugfs `recover` resets
 * the whole GPU: B's job fails with -ECANCELED, B reads INNOCENT and not
 * banned and runs its next job; C reads NONE; A stays GUILTY. STATE_CLEAR
 * clears the reset record, but A stays banned.
 */
static void test_guilty_innocent(void)
{
	int fd = fdev_open_or_skip(0), r, e;
	char recover[PATH_MAX];
	uint32_t vm, qa, qb, qc, gate, res, cmd, so_a1, so_a2, so_b, so_c;
	volatile uint64_t *pgate, *pres;
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd c = { 0 };
	void *pcmd;

	require_sched(fd);
	e = fx_debugfs_path(fd, "recover", recover, sizeof(recover));
	if (e)
		ftest_fail("%s: %s; this test needs debugfs mounted at /sys/kernel/debug (as root) and the driver's recover file",
			   recover, strerror(-e));
	vm = fx_vm(fd);
	r = fx_queue_prio(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL,
			  DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL);
	if (r < 0)
		ftest_fail("QUEUE_CREATE with ERRORS_FATAL: %s", strerror(-r));
	qa = (uint32_t)r;
	r = fx_queue_prio(fd, vm, 30000, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	ftest_assert(r >= 0);
	qb = (uint32_t)r;
	r = fx_queue_prio(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
	ftest_assert(r >= 0);
	qc = (uint32_t)r;
	pgate = bo_at(fd, vm, FX_VA(1), FX_PAGE, &gate);
	pres = bo_at(fd, vm, FX_VA(2), FX_PAGE, &res);
	pcmd = bo_at(fd, vm, FX_VA(3), 16 * FX_PAGE, &cmd);

	/* Command buffers, one page each: 0 A's fault (after gate 0), 1 A's
	 * next job, 2 B's hang (gate 1 stays shut), 3 B's next job, 4 and 5
	 * C's jobs. Result slot n is written by buffer n only. */
	cpu_begin(fd, cmd, true);
	fx_wait(&c, FX_VA(1), 1);
	fx_write64(&c, FX_VA(9) + 0x40, 1, 0); /* nothing is mapped there */
	fx_write64(&c, FX_VA(2), 0xa1, 0);
	put_cmd(pcmd, FX_VA(3), 0, 256, &c);
	for (int n = 1; n < 6; n++) {
		c.n = 0;
		if (n == 2)
			fx_wait(&c, FX_VA(1) + 8, 1);
		fx_write64(&c, FX_VA(2) + 8 * n, 0x100 + n, 0);
		put_cmd(pcmd, FX_VA(3), n * FX_PAGE, 256, &c);
	}
	cpu_end(fd, cmd, true);
#define CMD(n) (FX_VA(3) + (n) * FX_PAGE)

	/* A: the fault, and a job queued behind it. */
	so_a1 = fx_syncobj(fd);
	so_a2 = fx_syncobj(fd);
	ftest_assert_ok(fx_submit(fd, qa, CMD(0), 256, so_a1));
	ftest_assert_ok(fx_submit(fd, qa, CMD(1), 256, so_a2));
	cpu_set(fd, gate, pgate, 0, 1);
	r = wait_status(fd, so_a1, 10000, "A's faulting job");
	if (r != -EFAULT)
		ftest_fail("A's faulting job: fence status %d, expected -EFAULT", r);
	r = wait_status(fd, so_a2, 10000, "A's job behind the fault");
	if (r != -ECANCELED)
		ftest_fail("A's job behind the fault: fence status %d, expected -ECANCELED", r);
	st = fx_state(fd, qa, 0);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_FAULTED);
	ftest_assert_eq_u64(st.fault_addr, FX_VA(9) + 0x40);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_GUILTY);
	ftest_assert_eq(st.banned, 1);
	ftest_assert_eq(st.faults, 1);
	ftest_assert_errno(fx_submit(fd, qa, CMD(1), 256, so_a2), ECANCELED);

	/* C: a job that completes; C is idle from now on. */
	so_c = fx_syncobj(fd);
	ftest_assert_ok(fx_submit(fd, qc, CMD(4), 256, so_c));
	ftest_assert_eq(wait_status(fd, so_c, 10000, "C's job"), 1);

	/* B: a job that runs until the reset. */
	so_b = fx_syncobj(fd);
	ftest_assert_ok(fx_submit(fd, qb, CMD(2), 256, so_b));
	usleep(300000);
	ftest_assert_eq(fx_syncobj_status(fd, so_b), 0);
	write_file(recover, "1");
	r = wait_status(fd, so_b, 10000, "B's job during the recovery");
	if (r != -ECANCELED)
		ftest_fail("B's job, running during the recovery: fence status %d, expected -ECANCELED", r);

	st = fx_state(fd, qb, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_INNOCENT);
	ftest_assert_eq(st.banned, 0);
	ftest_assert_eq(st.faults, 0);
	st = fx_state(fd, qc, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_NONE);
	ftest_assert_eq(st.banned, 0);
	ftest_assert_eq(st.failed_jobs, 0);
	st = fx_state(fd, qa, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_GUILTY); /* GUILTY wins */
	ftest_assert_eq(st.banned, 1);

	/* B and C run new jobs; A stays banned. */
	ftest_assert_ok(fx_submit(fd, qb, CMD(3), 256, so_b));
	ftest_assert_eq(wait_status(fd, so_b, 10000, "B's job after the recovery"), 1);
	ftest_assert_ok(fx_submit(fd, qc, CMD(5), 256, so_c));
	ftest_assert_eq(wait_status(fd, so_c, 10000, "C's job after the recovery"), 1);
	ftest_assert_errno(fx_submit(fd, qa, CMD(1), 256, so_a2), ECANCELED);
	cpu_begin(fd, res, false);
	ftest_assert_eq_u64(pres[0], 0);     /* A's faulting job stopped at the fault */
	ftest_assert_eq_u64(pres[1], 0);     /* cancelled */
	ftest_assert_eq_u64(pres[2], 0);     /* B's job was lost in the reset */
	ftest_assert_eq_u64(pres[3], 0x103);
	ftest_assert_eq_u64(pres[4], 0x104);
	ftest_assert_eq_u64(pres[5], 0x105);
	cpu_end(fd, res, false);

	/* STATE_CLEAR: the record goes, the ban stays (and faults count
	 * forever). */
	st = fx_state(fd, qa, DRM_FERRITE_QUEUE_STATE_CLEAR);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_GUILTY);
	st = fx_state(fd, qa, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_NONE);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_OK);
	ftest_assert_eq(st.banned, 1);
	ftest_assert_eq(st.faults, 1);
	ftest_assert_errno(fx_submit(fd, qa, CMD(1), 256, so_a2), ECANCELED);
	st = fx_state(fd, qb, DRM_FERRITE_QUEUE_STATE_CLEAR);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_INNOCENT);
	st = fx_state(fd, qb, 0);
	ftest_assert_eq(st.reset, DRM_FERRITE_QUEUE_RESET_NONE);
	ftest_assert_eq(st.banned, 0);
#undef CMD
	close(fd);
}

/* ------------------------------------------------------------------ */

/*
 * implicit-race: 8 threads in 2 processes (4 each, one queue each) share
 * one 64 KiB BO, the second process through a PRIME import of the first's
 * dma-buf (inherited across fork after the export). Every job FILLs the
 * whole shared BO, 4 KiB at a time, with its own pattern, then CHECKSUMs
 * it into its slot of its thread's result BO. The only ordering is
 * implicit: the shared BO is in every job's `bos` with
 * DRM_FERRITE_BO_REF_WRITE. Two jobs overlapping on the GPU (even one
 * preempted mid-FILL and the other run in between) would leave a mix of
 * two patterns: every checksum must be that of its own job's pure pattern.
 */
enum {
	IR_THREADS = 4,
	IR_PROCS = 2,
	/* 1,000 jobs per thread would be the full test; 300 (8 x 300 = 2,400
	 * jobs, serialised by implicit sync) keeps it within ~20 s under
	 * TCG. Keep it at 200 or more. */
	IR_JOBS = 300,
	IR_SIZE = 64 * 1024,
	IR_STEP = 4096,
	IR_CMD = 512,
};

struct ir_thread {
	int fd, gid;
	uint32_t shared, res, q, so;
	uint64_t res_va, cmd_va;
	volatile uint64_t *pres;
	struct gun *gun;
};

static void *ir_thread_fn(void *arg)
{
	struct ir_thread *t = arg;
	struct drm_ferrite_bo_ref bos[2] = {
		{ .handle = t->shared, .flags = DRM_FERRITE_BO_REF_WRITE },
		{ .handle = t->res, .flags = DRM_FERRITE_BO_REF_WRITE },
	};
	struct drm_ferrite_sync_op sig = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = t->so };
	uint32_t *buf = malloc(IR_SIZE);
	int r;

	ftest_assert(buf != NULL);
	gun_wait(t->gun);
	for (int j = 0; j < IR_JOBS; j++)
		ftest_assert_ok(fx_submit_full(t->fd, t->q, t->cmd_va + (uint64_t)j * IR_CMD, IR_CMD,
					       &sig, 1, bos, 2));
	/* A queue's jobs complete in order: the last fence is the last job. */
	r = wait_status(t->fd, t->so, 90000, "implicit-race: the last job of a thread");
	if (r != 1)
		ftest_fail("thread %d: last fence status %d", t->gid, r);
	ftest_assert_eq(fx_state(t->fd, t->q, 0).failed_jobs, 0);
	cpu_begin(t->fd, t->res, false);
	for (int j = 0; j < IR_JOBS; j++) {
		uint32_t pat = pattern_of((uint32_t)t->gid, (uint32_t)j);
		uint64_t h;

		for (int i = 0; i < IR_SIZE / 4; i++)
			buf[i] = pat;
		h = fx_fnv1a(buf, IR_SIZE);
		if (t->pres[j] != h)
			ftest_fail("thread %d job %d: checksum %#llx, expected %#llx (its pattern %#x alone)",
				   t->gid, j, (unsigned long long)t->pres[j], (unsigned long long)h, pat);
	}
	cpu_end(t->fd, t->res, false);
	free(buf);
	return NULL;
}

/* One process's 4 threads on file fd, where the shared BO is `shared`
 * (mapped at FX_VA(1) in vm). */
static void ir_process(int fd, uint32_t vm, uint32_t shared, int proc, struct gun *g)
{
	struct ir_thread t[IR_THREADS];
	pthread_t th[IR_THREADS];

	for (int i = 0; i < IR_THREADS; i++) {
		int r = fx_queue_prio(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);
		uint32_t cmd;
		void *pcmd;

		if (r < 0)
			ftest_fail("QUEUE_CREATE: %s", strerror(-r));
		t[i] = (struct ir_thread){
			.fd = fd, .gid = proc * IR_THREADS + i, .shared = shared, .q = (uint32_t)r,
			.so = fx_syncobj(fd), .gun = g,
			.res_va = FX_VA(2) + 0x10000ull * i, .cmd_va = FX_VA(3) + 0x100000ull * i,
		};
		t[i].pres = bo_at(fd, vm, t[i].res_va, FX_PAGE, &t[i].res);
		pcmd = bo_at(fd, vm, t[i].cmd_va, (uint64_t)IR_JOBS * IR_CMD, &cmd);
		cpu_begin(fd, cmd, true);
		for (int j = 0; j < IR_JOBS; j++) {
			uint32_t pat = pattern_of((uint32_t)t[i].gid, (uint32_t)j);
			struct fx_cmd c = { 0 };

			for (int s = 0; s < IR_SIZE / IR_STEP; s++)
				fx_fill(&c, FX_VA(1) + (uint64_t)s * IR_STEP, IR_STEP, pat);
			fx_checksum(&c, t[i].res_va + 8ull * j, FX_VA(1), IR_SIZE);
			put_cmd(pcmd, t[i].cmd_va, (uint64_t)j * IR_CMD, IR_CMD, &c);
		}
		cpu_end(fd, cmd, true);
	}
	for (int i = 0; i < IR_THREADS; i++)
		ftest_assert_eq(pthread_create(&th[i], NULL, ir_thread_fn, &t[i]), 0);
	if (proc == 0)
		gun_fire(g, IR_THREADS * IR_PROCS);
	for (int i = 0; i < IR_THREADS; i++)
		ftest_assert_eq(pthread_join(th[i], NULL), 0);
}

static void test_implicit_race(void)
{
	int fd = fdev_open_or_skip(0), dmabuf;
	uint32_t vm, shared;
	struct drm_prime_handle ph;
	struct gun g;
	pid_t pid;

	require_sched(fd);
	vm = fx_vm(fd);
	bo_at(fd, vm, FX_VA(1), IR_SIZE, &shared);
	ph = (struct drm_prime_handle){ .handle = shared, .flags = DRM_CLOEXEC | DRM_RDWR };
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph));
	dmabuf = ph.fd;
	gun_init(&g);
	pid = fork_child();
	if (pid == 0) {
		/* The second process: its own file, VM and handle. */
		int fd2 = fdev_open_render(0);
		uint32_t vm2, h;

		gun_child(&g);
		ftest_assert(fd2 >= 0);
		vm2 = fx_vm(fd2);
		ph = (struct drm_prime_handle){ .fd = dmabuf };
		ftest_assert_ok(ioctl(fd2, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph));
		h = ph.handle;
		fx_map(fd2, vm2, h, FX_VA(1), IR_SIZE);
		ir_process(fd2, vm2, h, 1, &g);
		close(fd2);
		_exit(0);
	}
	ir_process(fd, vm, shared, 0, &g);
	fx_reap(pid);
	printf("%d threads in %d processes, %d jobs each on one shared BO: no overlap\n",
	       IR_THREADS * IR_PROCS, IR_PROCS, IR_JOBS);
	close(dmabuf);
	close(fd);
}

/* ------------------------------------------------------------------ */

/* Drop CAP_SYS_NICE from this (single-threaded) process, without libcap. */
static void drop_cap_sys_nice(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	const uint32_t bit = 1u << (CAP_SYS_NICE % 32);
	const int w = CAP_SYS_NICE / 32;

	memset(data, 0, sizeof(data));
	ftest_assert_ok(syscall(SYS_capget, &hdr, data));
	data[w].effective &= ~bit;
	data[w].permitted &= ~bit;
	data[w].inheritable &= ~bit;
	ftest_assert_ok(syscall(SYS_capset, &hdr, data));
	memset(data, 0, sizeof(data));
	ftest_assert_ok(syscall(SYS_capget, &hdr, data));
	ftest_assert(!(data[w].effective & bit));
}

static int qcreate(int fd, uint32_t vm, uint32_t flags, uint32_t prio, uint32_t pad, uint32_t *id)
{
	struct drm_ferrite_queue_create q = {
		.vm_id = vm, .flags = flags, .priority = prio, .pad = pad,
	};
	int r = ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &q);

	if (!r && id)
		*id = q.queue_id;
	return r;
}

static void bad_input_on(int gpu)
{
	int fd = fdev_open_or_skip(gpu), fd2;
	struct drm_ferrite_dev_info di;
	struct drm_ferrite_sched_info si;
	struct drm_ferrite_dev_query dq = { .type = DRM_FERRITE_DEV_QUERY_SCHED };
	uint32_t vm, id = 0, *ids;
	pid_t pid;

	require_sched(fd);
	di = fx_dev_info(fd);
	/* The size of the answer, then the answer. */
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &dq));
	ftest_assert_eq(dq.size, sizeof(struct drm_ferrite_sched_info));
	si = fx_sched_info(fd);
	printf("GPU %d: priorities %#x, %u rings, %u queues per file, timeslice %u us, preempt %u\n",
	       gpu, si.priorities, si.num_rings, si.max_queues_per_file, si.timeslice_us, si.preempt);
	if (geteuid() == 0 && (si.priorities & ALL_PRIOS) != ALL_PRIOS)
		ftest_fail("priorities %#x for root, expected all four (%#x)", si.priorities, ALL_PRIOS);
	ftest_assert_eq(si.num_rings, di.num_queues);
	ftest_assert(si.timeslice_us > 0);
	ftest_assert_eq(si.preempt, 1);
	ftest_assert_eq(si.pad, 0);
	ftest_assert(si.max_queues_per_file >= 1 && si.max_queues_per_file <= 65536);

	vm = fx_vm(fd);
	/* Every priority, as root. */
	if (geteuid() == 0) {
		for (uint32_t p = 0; p < 4; p++) {
			ftest_assert_ok(qcreate(fd, vm, 0, p, 0, &id));
			ftest_assert_ok(fx_queue_destroy(fd, id));
		}
	}
	ftest_assert_errno(qcreate(fd, vm, 0, 4, 0, NULL), EINVAL);
	ftest_assert_errno(qcreate(fd, vm, 0, 0xffffffff, 0, NULL), EINVAL);
	ftest_assert_errno(qcreate(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 1, NULL), EINVAL);
	ftest_assert_errno(qcreate(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0x80000000, NULL),
			   EINVAL);
	ftest_assert_errno(qcreate(fd, vm, 1u << 1, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL), EINVAL);
	ftest_assert_errno(qcreate(fd, vm, 1u << 31, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL), EINVAL);
	ftest_assert_errno(qcreate(fd, vm, DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL | (1u << 7),
				   DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL), EINVAL);
	ftest_assert_ok(qcreate(fd, vm, DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL,
				DRM_FERRITE_QUEUE_PRIORITY_LOW, 0, &id));
	ftest_assert_ok(fx_queue_destroy(fd, id));

	/* The per-file limit, in a file of its own; queues on two VMs count
	 * alike. */
	fd2 = fdev_open_or_skip(gpu);
	{
		uint32_t vms[2] = { fx_vm(fd2), fx_vm(fd2) }, n = si.max_queues_per_file;

		ids = calloc(n, sizeof(*ids));
		ftest_assert(ids != NULL);
		for (uint32_t i = 0; i < n; i++) {
			if (qcreate(fd2, vms[i % 2], 0, i % 2, 0, &ids[i]))
				ftest_fail("queue %u of %u: %s", i + 1, n, strerror(errno));
		}
		ftest_assert_errno(qcreate(fd2, vms[0], 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL),
				   ENOSPC);
		ftest_assert_errno(qcreate(fd2, vms[1], 0, DRM_FERRITE_QUEUE_PRIORITY_LOW, 0, NULL),
				   ENOSPC);
		/* Another file is not affected. */
		ftest_assert_ok(qcreate(fd, vm, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, &id));
		ftest_assert_ok(fx_queue_destroy(fd, id));
		ftest_assert_ok(fx_queue_destroy(fd2, ids[n / 2]));
		ftest_assert_ok(qcreate(fd2, vms[0], 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, &ids[n / 2]));
		ftest_assert_errno(qcreate(fd2, vms[0], 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL),
				   ENOSPC);
		for (uint32_t i = 0; i < n; i++)
			ftest_assert_ok(fx_queue_destroy(fd2, ids[i]));
		ftest_assert_ok(qcreate(fd2, vms[1], 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, &id));
		free(ids);
	}
	close(fd2);

	/* Without CAP_SYS_NICE (the render node is never DRM master): HIGH
	 * and REALTIME are refused with EPERM and not offered. */
	pid = fork_child();
	if (pid == 0) {
		int f;
		uint32_t v;

		drop_cap_sys_nice();
		f = fdev_open_render(gpu);
		ftest_assert(f >= 0);
		v = fx_vm(f);
		si = fx_sched_info(f);
		ftest_assert_eq(si.priorities, PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_NORMAL) |
						       PRIO_BIT(DRM_FERRITE_QUEUE_PRIORITY_LOW));
		ftest_assert_errno(qcreate(f, v, 0, DRM_FERRITE_QUEUE_PRIORITY_HIGH, 0, NULL), EPERM);
		ftest_assert_errno(qcreate(f, v, 0, DRM_FERRITE_QUEUE_PRIORITY_REALTIME, 0, NULL), EPERM);
		/* An unknown priority is EINVAL, not EPERM. */
		ftest_assert_errno(qcreate(f, v, 0, 4, 0, NULL), EINVAL);
		ftest_assert_ok(qcreate(f, v, 0, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0, NULL));
		ftest_assert_ok(qcreate(f, v, 0, DRM_FERRITE_QUEUE_PRIORITY_LOW, 0, NULL));
		close(f);
		_exit(0);
	}
	fx_reap(pid);
	close(fd);
}

/* On every GPU of the guest (GPU 1: 32-bit DMA, 64 KiB segments). */
static void test_bad_input(void)
{
	int fd = fdev_open_or_skip(0);

	for (int gpu = 0; fd >= 0; fd = fdev_open_render(++gpu)) {
		close(fd);
		bad_input_on(gpu);
	}
}

FTEST_MAIN(
	{ "many-queues", test_many_queues, "64 processes x 4 queues x 4 jobs at once on 8 rings: every result exact, every fence OK" },
	{ "realtime", test_realtime, "a REALTIME job completes while 16 LOW jobs that wait for it hold every ring" },
	{ "preempt-mid-job", test_preempt_mid_job, "a 40,000-command chain job preempted 5+ times among 16 busy queues gives the exact result" },
	{ "fairness", test_fairness, "16 equal NORMAL queues under equal load get GPU time within 25% of the mean (fdinfo, ring_time_ns)" },
	{ "hang-isolation", test_hang_isolation, "while a job hangs until its timeout, 12 other queues' jobs each complete within timeout + 3 s" },
	{ "guilty-innocent", test_guilty_innocent, "ERRORS_FATAL fault: GUILTY and banned; whole-GPU recover: the running queue INNOCENT, the idle one NONE" },
	{ "implicit-race", test_implicit_race, "8 threads in 2 processes write one PRIME-shared BO with implicit sync only: no two jobs overlap" },
	{ "bad-input", test_bad_input, "QUEUE_CREATE priority/pad/flags/limit errors, EPERM without CAP_SYS_NICE, DEV_QUERY_SCHED" },
)
