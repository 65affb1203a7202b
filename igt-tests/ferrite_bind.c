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
 *
 * Interface 0.5 (asynchronous VM_BIND, SYNC_ONLY, NULL binds,
 * VM_GET_STATE; each subtest skips without its feature bits):
 *
 *   async-order          MAP, job, UNMAP, job chained by sync objects
 *                        alone behind a held fence: VM_BIND returns at
 *                        once, the first job writes through the mapping,
 *                        the second faults on the unmapped range.
 *   async-unmap-busy     an UNMAP of a range a running job uses signals
 *                        without waiting for it, the BO's handle closed
 *                        meanwhile; what the job wrote before stays in the
 *                        BO, what it writes after faults.
 *   sync-only            a SYNC_ONLY bind signals after its WAITs and the
 *                        VM's earlier binds (not another VM's); its other
 *                        fields must be zero; a synchronous one waits for
 *                        the earlier asynchronous binds.
 *   null-reads-zero      NULL ranges (CPU pages, 2 MiB and 1 GiB aligned
 *                        ranges, sync and async, one across VA 2^47)
 *                        read as zeros, on each GPU.
 *   null-writes-dropped  writes to a NULL range that replaced a BO mapping
 *                        are dropped (the BO keeps its data), and a BO
 *                        mapped over the middle of a NULL range gets the
 *                        writes there, on each GPU.
 *   sparse-stress        a 1 GiB NULL range, rounds of random BO-page and
 *                        NULL MAPs on 64 KiB granules, each round's jobs
 *                        checksumming and filling granules, all chained by
 *                        timeline points, checked against a CPU model.
 *   unusable-vm          an asynchronous bind that fails after VM_BIND
 *                        returned (a failed WAIT fence; debugfs
 *                        inject_bind_failure) carries the error in its
 *                        fence and leaves the VM unusable: MAP and SUBMIT
 *                        -EIO, UNMAP and VM_DESTROY work; so does a
 *                        synchronous MAP whose page-table update fails
 *                        (debugfs inject_pt_failure), which returns -ENOMEM.
 *   bad-input            the new VM_BIND and VM_GET_STATE errors, each
 *                        leaving nothing queued or signalled.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS

static volatile uint64_t *anon(uint64_t size)
{
	void *p = fx_user_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

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

/*
 * Interface 0.5: asynchronous VM_BIND, SYNC_ONLY, NULL binds and
 * VM_GET_STATE.
 */
#define ASYNC DRM_FERRITE_VM_BIND_ASYNC
#define NEED_ASYNC DRM_FERRITE_UAPI_ASYNC_BIND
#define NEED_NULL DRM_FERRITE_UAPI_NULL_BIND
#define USABLE DRM_FERRITE_VM_STATE_USABLE
#define UNUSABLE DRM_FERRITE_VM_STATE_UNUSABLE

#define STATUS_VA FX_VA(5)
#define GATE_VA FX_VA(6)
#define CMD_VA FX_VA(7)
#define RIG_CMDS 64
#define RIG_GATES 8
#define ALL_GATES -1

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* FNV-1a (the CHECKSUM command's hash) of n more bytes, from state h. */
static uint64_t fnv_feed(uint64_t h, const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* The same for n zero bytes: each multiplies by the prime. */
static uint64_t fnv_zeros(uint64_t h, uint64_t n)
{
	for (uint64_t p = FNV_PRIME; n; n >>= 1, p *= p)
		if (n & 1)
			h *= p;
	return h;
}

/* n bytes of what FILL writes with pattern pat. */
static void fill_pattern(uint8_t *p, uint64_t n, uint32_t pat)
{
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint8_t)(pat >> (8 * (i % 4)));
}

/* A BO of size bytes that holds data (or `byte` everywhere without data),
 * written by the CPU. */
static uint32_t bo_with(int fd, uint64_t size, const uint8_t *data, int byte)
{
	uint32_t bo = fx_bo(fd, size);
	uint8_t *p = fx_mmap(fd, bo, size);

	ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_W));
	if (data)
		memcpy(p, data, size);
	else
		memset(p, byte, size);
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_W));
	munmap(p, size);
	return bo;
}

/* The CPU must see want[0..size) in BO bo. */
static void expect_bo(int fd, uint32_t bo, const uint8_t *want, uint64_t size, const char *what)
{
	uint8_t *p = fx_mmap(fd, bo, size);

	ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
	if (memcmp(p, want, size)) {
		for (uint64_t i = 0; i < size; i++)
			if (p[i] != want[i])
				ftest_fail("%s: byte %#llx is %#x, expected %#x", what,
					   (unsigned long long)i, p[i], want[i]);
	}
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
	munmap(p, size);
}

/* The n u64 a BO starts with, read by the CPU. */
static void read_u64s(int fd, uint32_t bo, uint64_t *out, int n)
{
	uint64_t *p = fx_mmap(fd, bo, FX_PAGE);

	ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
	memcpy(out, p, n * sizeof(*out));
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
	munmap(p, FX_PAGE);
}

static uint64_t bound_bytes(int fd)
{
	return fx_counters(fd).bytes_bound;
}

static const char *fence_word(int st)
{
	return st < 0 ? strerror(-st) : st ? "signalled" : "pending";
}

/* Sync object h's fence must have status `want` (as fx_syncobj_status). */
static void expect_status(int fd, uint32_t h, int want, const char *what)
{
	int st = fx_syncobj_status(fd, h);

	if (st != want)
		ftest_fail("%s: fence status %d (%s), expected %d (%s)", what, st, fence_word(st),
			   want, fence_word(want));
}

/* Wait up to 10 s for sync object h; its fence's status. */
static int wait_status(int fd, uint32_t h, const char *what)
{
	int r = fx_syncobj_wait(fd, h, 10000);

	if (r)
		ftest_fail("%s: not signalled within 10 s (%s)", what, strerror(-r));
	return fx_syncobj_status(fd, h);
}

/* An asynchronous VM_BIND that must be accepted. */
static void bind_async(int fd, uint32_t vm, const struct drm_ferrite_vm_bind_op *ops, uint32_t n,
		       const struct drm_ferrite_sync_op *syncs, uint32_t nsyncs)
{
	if (fx_vm_bind(fd, vm, ASYNC, ops, n, syncs, nsyncs))
		ftest_fail("asynchronous VM_BIND of %u ops, %u syncs: %s", n, nsyncs,
			   strerror(errno));
}

/*
 * A VM under test with a queue, and a second VM, the gate VM, whose jobs
 * hold fences: each waits (WAIT) for a gate word that the CPU sets. The
 * gate page and a status page (which only jobs write) are mapped in both
 * VMs, and so are command buffers for each, before anything else: no
 * synchronous bind of a test waits behind a held asynchronous one (a
 * synchronous bind waits for the VM's earlier asynchronous binds).
 */
struct rig {
	int fd;
	uint32_t vm, q, gvm;
	uint32_t gatebo, statbo;
	volatile uint64_t *gate;
	uint32_t cmdbo[2];
	uint8_t *cmd[2];
	int ncmd[2];
};

static void rig_init(struct rig *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->vm = fx_vm(fd);
	/* Longer than any hold of a test. */
	r->q = fx_queue(fd, r->vm, 30000);
	r->gvm = fx_vm(fd);
	r->gatebo = fx_bo(fd, FX_PAGE);
	r->statbo = fx_bo(fd, FX_PAGE);
	for (int i = 0; i < 2; i++) {
		uint32_t vm = i ? r->gvm : r->vm;

		fx_map(fd, vm, r->gatebo, GATE_VA, FX_PAGE);
		fx_map(fd, vm, r->statbo, STATUS_VA, FX_PAGE);
		r->cmdbo[i] = fx_bo(fd, RIG_CMDS * FX_PAGE);
		r->cmd[i] = fx_mmap(fd, r->cmdbo[i], RIG_CMDS * FX_PAGE);
		fx_map(fd, vm, r->cmdbo[i], CMD_VA, RIG_CMDS * FX_PAGE);
	}
	r->gate = fx_mmap(fd, r->gatebo, FX_PAGE);
}

/* Let go of the rig's CPU mappings (each holds its BO). */
static void rig_fini(struct rig *r)
{
	for (int i = 0; i < 2; i++)
		munmap(r->cmd[i], RIG_CMDS * FX_PAGE);
	munmap((void *)r->gate, FX_PAGE);
}

/* Submit c on queue q of the VM under test (in 0) or of the gate VM (in
 * 1) with the sync ops given: 0, or -1 with errno. */
static int rig_submit(struct rig *r, int in, uint32_t q, const struct fx_cmd *c,
		      struct drm_ferrite_sync_op *syncs, uint32_t n)
{
	uint64_t va = CMD_VA + (uint64_t)r->ncmd[in] * FX_PAGE;

	ftest_assert(r->ncmd[in] < RIG_CMDS);
	memcpy(r->cmd[in] + (size_t)r->ncmd[in] * FX_PAGE, c->dw, c->n * 4);
	r->ncmd[in]++;
	ftest_assert_ok(fx_gem_sync(r->fd, r->cmdbo[in], FX_END_W));
	return fx_submit_full(r->fd, q, va, c->n * 4, syncs, n, NULL, 0);
}

/* Submit c on queue q (of VM `in`) after `wait` (a binary sync object, or
 * 0); a new sync object that gets the job's fence. */
static uint32_t rig_job(struct rig *r, int in, uint32_t q, const struct fx_cmd *c, uint32_t wait)
{
	uint32_t out = fx_syncobj(r->fd);
	struct drm_ferrite_sync_op s[2] = { FX_SIGNAL(out), FX_WAIT(wait) };

	ftest_assert_ok(rig_submit(r, in, q, c, s, wait ? 2 : 1));
	return out;
}

/* A fence held until gate word `word` is set: that of a job of the gate
 * VM, on a queue of its own, that waits for the word. */
static uint32_t rig_held(struct rig *r, int word)
{
	uint32_t q = fx_queue(r->fd, r->gvm, 60000);
	struct fx_cmd c = { .n = 0 };

	ftest_assert(word >= 0 && word < RIG_GATES);
	fx_wait(&c, GATE_VA + 8ull * word, 1);
	return rig_job(r, 1, q, &c, 0);
}

/* Set gate word `word` (ALL_GATES: every one). */
static void rig_open_gate(struct rig *r, int word)
{
	for (int i = 0; i < RIG_GATES; i++)
		if (word == ALL_GATES || word == i)
			r->gate[i] = 1;
	ftest_assert_ok(fx_gem_sync(r->fd, r->gatebo, FX_END_W));
}

/*
 * A thread that opens a gate after a delay, unless stopped first. As a
 * watchdog (ALL_GATES, seconds), it makes a VM_BIND that waits for its
 * fences, as a synchronous one would, come back and fail the test's
 * checks instead of hanging until the test's timeout.
 */
struct gate_opener {
	struct rig *r;
	int word;
	unsigned int after_ms;
	volatile int stopped;
	pthread_t t;
};

static void *gate_opener_main(void *arg)
{
	struct gate_opener *o = arg;

	for (unsigned int ms = 0; ms < o->after_ms && !o->stopped; ms += 5)
		usleep(5000);
	if (o->stopped)
		return NULL;
	if (o->word == ALL_GATES)
		printf("watchdog: every gate opened after %u ms\n", o->after_ms);
	rig_open_gate(o->r, o->word);
	return NULL;
}

static void gate_opener_start(struct gate_opener *o, struct rig *r, int word, unsigned int after_ms)
{
	o->r = r;
	o->word = word;
	o->after_ms = after_ms;
	o->stopped = 0;
	ftest_assert_eq(pthread_create(&o->t, NULL, gate_opener_main, o), 0);
}

static void gate_opener_stop(struct gate_opener *o)
{
	o->stopped = 1;
	ftest_assert_eq(pthread_join(o->t, NULL), 0);
}

/*
 * async-order: bind, job, unbind, job, chained by sync objects alone and
 * all behind a held fence: nothing runs before the gate opens, VM_BIND
 * returns before its WAIT fence signalled, the first job writes through
 * the mapping, the second faults on the unmapped range.
 */
static void test_async_order(void)
{
	int fd = fdev_open_or_skip(0);
	const uint64_t X = FX_VA(1), SZ = 64 * 1024;
	const uint32_t pat = 0x600dcafe;
	uint32_t bo, held, mapped, wrote, unmapped, faulted;
	struct fx_cmd a = { .n = 0 }, b = { .n = 0 };
	struct drm_ferrite_queue_get_state st;
	struct gate_opener wd;
	struct rig r;
	uint8_t *want = malloc(SZ);

	fx_require_uapi(fd, NEED_ASYNC, "asynchronous VM_BIND");
	rig_init(&r, fd);
	bo = fx_bo(fd, SZ);
	held = rig_held(&r, 0);
	mapped = fx_syncobj(fd);
	unmapped = fx_syncobj(fd);
	gate_opener_start(&wd, &r, ALL_GATES, 20000);

	/* MAP after the held fence. */
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, X, SZ);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(held), FX_SIGNAL(mapped) };

		bind_async(fd, r.vm, &op, 1, s, 2);
	}
	expect_status(fd, held, 0, "the held fence, when the MAP's VM_BIND returned");
	expect_status(fd, mapped, 0, "the MAP, when its VM_BIND returned");
	/* A job after the MAP writes through it. */
	fx_fill(&a, X, SZ, pat);
	wrote = rig_job(&r, 0, r.q, &a, mapped);
	/* UNMAP after that job. */
	{
		struct drm_ferrite_vm_bind_op op = fx_op_unmap(X, SZ);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(wrote), FX_SIGNAL(unmapped) };

		bind_async(fd, r.vm, &op, 1, s, 2);
	}
	expect_status(fd, unmapped, 0, "the UNMAP, when its VM_BIND returned");
	/* A job after the UNMAP writes the range. */
	fx_write64(&b, X + 0x100, 0xbad, FX_W64_FLUSH);
	faulted = rig_job(&r, 0, r.q, &b, unmapped);
	/* Nothing moves before the gate opens. */
	ftest_assert_eq(fx_syncobj_wait(fd, faulted, 100), -ETIME);
	expect_status(fd, held, 0, "the held fence");
	expect_status(fd, mapped, 0, "the MAP before the gate opened");
	expect_status(fd, wrote, 0, "the job after the MAP before the gate opened");
	expect_status(fd, unmapped, 0, "the UNMAP before the gate opened");
	gate_opener_stop(&wd);
	rig_open_gate(&r, 0);

	ftest_assert_eq(wait_status(fd, faulted, "the job after the UNMAP"), -EFAULT);
	expect_status(fd, held, 1, "the held fence");
	expect_status(fd, mapped, 1, "the MAP");
	expect_status(fd, wrote, 1, "the job after the MAP");
	expect_status(fd, unmapped, 1, "the UNMAP");
	st = fx_state(fd, r.q, 0);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_FAULTED);
	ftest_assert_eq_u64(st.fault_addr, X + 0x100);
	ftest_assert_eq(st.fault_status & 0xf, 1); /* translation */
	ftest_assert(st.fault_status & (1 << 4));   /* write */
	ftest_assert_eq(st.failed_jobs, 1);
	/* The first job's data is in the BO; the second's nowhere. */
	fill_pattern(want, SZ, pat);
	expect_bo(fd, bo, want, SZ, "the BO the job after the MAP filled");
	ftest_assert_eq(fx_vm_state(fd, r.vm), USABLE);
	free(want);
	close(fd);
}

/*
 * async-unmap-busy: a job writes two BOs' ranges (its data left in the
 * device cache), then waits at a gate. An asynchronous UNMAP of both (no
 * WAIT) signals while the job still waits, and the last handle of one BO
 * is closed under it. A new job on the range faults at once. Released,
 * the job faults at its next write: what it wrote before the UNMAP
 * reached the BO, what it writes after reaches no memory. That no access
 * reached the closed BO's pages once they were freed is for the kernel's
 * instrumentation (slub_debug, KASAN) and the device model's audit (a
 * stale translation), which the harness reads; the BO is gone once the
 * file is.
 */
static void test_async_unmap_busy(void)
{
	int fd = fdev_open_or_skip(0);
	const uint64_t R1 = FX_VA(1), R2 = FX_VA(2), SZ = 64 * 1024;
	const uint32_t before = 0xa1a2a3a4, after = 0xdeaddead;
	int bos = fx_debugfs_bos();
	uint32_t bo1, bo2, job, started, unmapped, late, q2;
	struct fx_cmd j = { .n = 0 }, w = { .n = 0 }, k = { .n = 0 };
	struct drm_ferrite_queue_get_state st;
	struct gate_opener wd;
	struct rig r;
	uint8_t *want = malloc(SZ);

	fx_require_uapi(fd, NEED_ASYNC, "asynchronous VM_BIND");
	rig_init(&r, fd);
	q2 = fx_queue(fd, r.vm, 0);
	bo1 = fx_bo(fd, SZ);
	bo2 = fx_bo(fd, SZ);
	fx_map(fd, r.vm, bo1, R1, SZ);
	fx_map(fd, r.vm, bo2, R2, SZ);

	/* The job: writes both ranges (left in the device cache), says so,
	 * waits for gate 0, writes them again. */
	fx_fill(&j, R1, SZ, before);
	fx_fill(&j, R2, SZ, before);
	fx_write64(&j, STATUS_VA, 1, 0);
	fx_wait(&j, GATE_VA, 1);
	fx_fill(&j, R1, SZ, after);
	fx_fill(&j, R2, SZ, after);
	job = rig_job(&r, 0, r.q, &j, 0);
	/* Once it waits (a job of the gate VM sees its status word)... */
	fx_wait(&w, STATUS_VA, 1);
	started = rig_job(&r, 1, fx_queue(fd, r.gvm, 30000), &w, 0);
	ftest_assert_eq(wait_status(fd, started, "the job's first writes"), 1);
	expect_status(fd, job, 0, "the job at its gate");

	/* ...both ranges go, without waiting for it. */
	unmapped = fx_syncobj(fd);
	gate_opener_start(&wd, &r, ALL_GATES, 20000);
	{
		struct drm_ferrite_vm_bind_op ops[] = { fx_op_unmap(R1, SZ), fx_op_unmap(R2, SZ) };
		struct drm_ferrite_sync_op s = FX_SIGNAL(unmapped);

		bind_async(fd, r.vm, ops, 2, &s, 1);
	}
	expect_status(fd, job, 0, "the job, when the UNMAP's VM_BIND returned");
	ftest_assert_eq(wait_status(fd, unmapped, "the UNMAP of a range a job uses"), 1);
	expect_status(fd, job, 0, "the job, once the UNMAP signalled");
	/* The last handle of BO 2 goes while the job runs. */
	fx_gem_close(fd, bo2);
	/* A new job of the VM finds the range unmapped. */
	fx_copy(&k, STATUS_VA + 8, R1, 8);
	late = rig_job(&r, 0, q2, &k, 0);
	ftest_assert_eq(wait_status(fd, late, "a new job reading the unmapped range"), -EFAULT);
	expect_status(fd, job, 0, "the job at its gate, after another faulted");
	gate_opener_stop(&wd);

	rig_open_gate(&r, 0);
	ftest_assert_eq(wait_status(fd, job, "the job released after the UNMAP"), -EFAULT);
	st = fx_state(fd, r.q, 0);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_FAULTED);
	ftest_assert_eq_u64(st.fault_addr, R1);
	ftest_assert(st.fault_status & (1 << 4)); /* write */
	fill_pattern(want, SZ, before);
	expect_bo(fd, bo1, want, SZ, "BO 1: the job's writes before the UNMAP, none after");
	ftest_assert_eq(fx_vm_state(fd, r.vm), USABLE);
	free(want);
	rig_fini(&r);
	close(fd);
	/* Every BO went with the file, BO 2 among them. */
	for (int i = 0; i < 100 && bos >= 0 && fx_debugfs_bos() > bos; i++)
		usleep(50000);
	if (bos >= 0 && fx_debugfs_bos() > bos) {
		fx_debugfs_dump("gem");
		fx_debugfs_dump("vms");
		ftest_fail("%d BOs listed in debugfs after the file closed, %d before", fx_debugfs_bos(),
			   bos);
	}
}

/*
 * sync-only: an asynchronous bind of one SYNC_ONLY op signals only once
 * its WAIT fences and every earlier bind of its VM have (either may be
 * the last), not waiting for another VM's binds; SYNC_ONLY with any other
 * field set is refused; a synchronous SYNC_ONLY bind works, and waits for
 * the VM's earlier asynchronous binds.
 */
static void test_sync_only(void)
{
	int fd = fdev_open_or_skip(0);
	const struct drm_ferrite_vm_bind_op so = fx_op_sync_only();
	const uint32_t SO = DRM_FERRITE_VM_BIND_OP_SYNC_ONLY;
	uint32_t bo, g1, g2, b1, s1, g3, g4, b3, tl, canary, sig, out, g5, b5, g6, other, done;
	struct gate_opener wd, o5;
	struct fx_cmd c = { .n = 0 };
	struct rig r;
	double t0, t1;

	fx_require_uapi(fd, NEED_ASYNC, "asynchronous VM_BIND and SYNC_ONLY");
	rig_init(&r, fd);
	bo = fx_bo(fd, FX_PAGE);
	canary = fx_syncobj(fd);
	gate_opener_start(&wd, &r, ALL_GATES, 20000);

	/* 1. Its WAIT signals first; the earlier MAP (held) holds it. */
	g1 = rig_held(&r, 1);
	g2 = rig_held(&r, 2);
	b1 = fx_syncobj(fd);
	s1 = fx_syncobj(fd);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(1), FX_PAGE);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(g1), FX_SIGNAL(b1) };
		struct drm_ferrite_sync_op t[] = { FX_WAIT(g2), FX_SIGNAL(s1) };

		bind_async(fd, r.vm, &op, 1, s, 2);
		bind_async(fd, r.vm, &so, 1, t, 2);
	}
	expect_status(fd, s1, 0, "SYNC_ONLY, when its VM_BIND returned");
	rig_open_gate(&r, 2);
	ftest_assert_eq(wait_status(fd, g2, "SYNC_ONLY's WAIT fence"), 1);
	ftest_assert_eq(fx_syncobj_wait(fd, s1, 300), -ETIME);
	expect_status(fd, b1, 0, "the earlier MAP, still held");
	rig_open_gate(&r, 1);
	ftest_assert_eq(wait_status(fd, s1, "SYNC_ONLY after the earlier MAP"), 1);
	expect_status(fd, b1, 1, "the earlier MAP, once SYNC_ONLY signalled");

	/* 2. The earlier MAP applies first; its own WAIT holds it (a
	 * timeline point this time). */
	g3 = rig_held(&r, 3);
	g4 = rig_held(&r, 4);
	b3 = fx_syncobj(fd);
	tl = fx_syncobj(fd);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(2), FX_PAGE);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(g3), FX_SIGNAL(b3) };
		struct drm_ferrite_sync_op t[] = { FX_WAIT(g4), FX_SIGNAL_POINT(tl, 7) };

		bind_async(fd, r.vm, &op, 1, s, 2);
		bind_async(fd, r.vm, &so, 1, t, 2);
	}
	rig_open_gate(&r, 3);
	ftest_assert_eq(wait_status(fd, b3, "the earlier MAP"), 1);
	ftest_assert_eq(fx_syncobj_wait_point(fd, tl, 7, 300), -ETIME);
	ftest_assert_eq(fx_syncobj_point_status(fd, tl, 7), 0);
	rig_open_gate(&r, 4);
	ftest_assert_ok(fx_syncobj_wait_point(fd, tl, 7, 10000));
	ftest_assert_eq(fx_syncobj_point_status(fd, tl, 7), 1);

	/* 3. Every other field must be zero, synchronous or not. */
	{
		const struct {
			const char *what;
			struct drm_ferrite_vm_bind_op op;
		} bad[] = {
			{ "flags", { .op = SO, .flags = DRM_FERRITE_VM_BIND_READONLY } },
			{ "handle", { .op = SO, .handle = bo } },
			{ "pad", { .op = SO, .pad = 1 } },
			{ "bo_offset", { .op = SO, .bo_offset = FX_PAGE } },
			{ "va", { .op = SO, .va = FX_VA(4) } },
			{ "size", { .op = SO, .size = FX_PAGE } },
			{ "va and size", { .op = SO, .va = FX_VA(4), .size = FX_PAGE } },
		};
		struct drm_ferrite_sync_op s = FX_SIGNAL(canary);

		for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			for (uint32_t flags = 0; flags <= ASYNC; flags += ASYNC) {
				int ret = fx_vm_bind(fd, r.vm, flags, &bad[i].op, 1, &s, 1);

				if (ret != -1 || errno != EINVAL)
					ftest_fail("%s SYNC_ONLY with a non-zero %s: %d errno %d, expected EINVAL",
						   flags ? "asynchronous" : "synchronous", bad[i].what,
						   ret, errno);
			}
		ftest_assert(!fx_syncobj_has_fence(fd, canary));
	}

	/* 4. Synchronous: its WAIT and SIGNAL... */
	sig = fx_syncobj(fd);
	out = fx_syncobj(fd);
	fx_syncobj_signal(fd, sig, 0);
	{
		struct drm_ferrite_sync_op s[] = { FX_WAIT(sig), FX_SIGNAL(out) };

		ftest_assert_ok(fx_vm_bind(fd, r.vm, 0, &so, 1, s, 2));
		expect_status(fd, out, 1, "a synchronous SYNC_ONLY, when it returned");
	}
	/* ...and it waits for the earlier asynchronous MAP. */
	g5 = rig_held(&r, 5);
	b5 = fx_syncobj(fd);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(3), FX_PAGE);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(g5), FX_SIGNAL(b5) };

		bind_async(fd, r.vm, &op, 1, s, 2);
	}
	gate_opener_start(&o5, &r, 5, 300);
	t0 = ftest_now();
	ftest_assert_ok(fx_vm_bind(fd, r.vm, 0, &so, 1, NULL, 0));
	t1 = ftest_now();
	expect_status(fd, b5, 1, "the asynchronous MAP before a synchronous SYNC_ONLY, when it returned");
	gate_opener_stop(&o5);
	printf("the synchronous SYNC_ONLY returned after %.0f ms (the gate opened at 300 ms)\n",
	       (t1 - t0) * 1000);
	ftest_assert(t1 - t0 > 0.2);

	/* 5. Another VM's held bind does not hold it. */
	g6 = rig_held(&r, 6);
	other = fx_syncobj(fd);
	done = fx_syncobj(fd);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(1), FX_PAGE);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(g6), FX_SIGNAL(other) };
		struct drm_ferrite_sync_op t = FX_SIGNAL(done);

		bind_async(fd, r.gvm, &op, 1, s, 2);
		bind_async(fd, r.vm, &so, 1, &t, 1);
	}
	ftest_assert_eq(wait_status(fd, done, "SYNC_ONLY beside another VM's held MAP"), 1);
	expect_status(fd, other, 0, "the other VM's held MAP");
	rig_open_gate(&r, 6);
	ftest_assert_eq(wait_status(fd, other, "the other VM's MAP"), 1);
	gate_opener_stop(&wd);

	/* The three MAPs of the VM hold: a job writes through each. */
	for (int i = 1; i <= 3; i++)
		fx_write64(&c, FX_VA(i), i, 0);
	ftest_assert_eq(wait_status(fd, rig_job(&r, 0, r.q, &c, 0), "a job using the MAPs"), 1);
	{
		uint64_t v;

		read_u64s(fd, bo, &v, 1);
		ftest_assert_eq_u64(v, 3);
	}
	close(fd);
}

/* Run fn on GPU 0, which must offer NULL binds, and on GPU 1 if it exists
 * and offers them (only a device with a null aperture does). */
static void on_each_gpu(void (*fn)(int fd))
{
	int fd = fdev_open_or_skip(0);

	fx_require_uapi(fd, NEED_ASYNC | NEED_NULL, "asynchronous and NULL binds");
	fn(fd);
	close(fd);
	fd = fdev_open_render(1);
	if (fd < 0) {
		printf("no GPU 1: GPU 0 only\n");
		return;
	}
	if ((fx_uapi_features(fd) & (NEED_ASYNC | NEED_NULL)) != (NEED_ASYNC | NEED_NULL)) {
		printf("GPU 1 offers no NULL binds (features %#llx): GPU 0 only\n",
		       (unsigned long long)fx_uapi_features(fd));
	} else {
		printf("GPU 1\n");
		fn(fd);
	}
	close(fd);
}

/*
 * null-reads-zero: NULL ranges of CPU pages (synchronous), of two 2 MiB
 * blocks (asynchronous), of a 1 GiB block (synchronous) and of 4 MiB across
 * VA 2^47 (where the aperture's output addresses wrap) read as zeros: COPYs
 * from them over non-zero data, across the blocks' boundary and from the
 * 1 GiB range's end, and CHECKSUMs of them.
 */
static void null_reads_zero(int fd)
{
	const uint64_t A = FX_VA(1) + 3 * FX_PAGE, ASZ = 17 * FX_PAGE;
	const uint64_t B = FX_VA(2), BSZ = 4ull << 20;
	const uint64_t C = FX_VA(48), CSZ = 1ull << 30;
	/* 256 KiB with 4 KiB pages; larger pages make ASZ larger. */
	const uint64_t DST = FX_VA(3), DSZ = 64 * FX_PAGE, RES = FX_VA(4);
	const uint64_t ZSZ = ASZ + 65536 + 32768;
	/* Across VA 2^47, where the null aperture's output addresses wrap. */
	const uint64_t W = (1ull << 47) - (2 << 20), WSZ = 4 << 20;
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0), dst, res, mapped, done;
	struct drm_ferrite_vm_bind_op a = fx_op_null(A, ASZ), b = fx_op_null(B, BSZ);
	struct drm_ferrite_vm_bind_op cc = fx_op_null(C, CSZ), w = fx_op_null(W, WSZ);
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd c = { .n = 0 };
	uint8_t *want = malloc(DSZ);
	uint64_t sums[6];

	dst = bo_with(fd, DSZ, NULL, 0xa5);
	res = bo_with(fd, FX_PAGE, NULL, 0xa5);
	fx_map(fd, vm, dst, DST, DSZ);
	fx_map(fd, vm, res, RES, FX_PAGE);
	fx_copy(&c, DST, A, ASZ);
	fx_copy(&c, DST + ASZ, B + (2 << 20) - 32768, 65536);
	fx_copy(&c, DST + ASZ + 65536, C + CSZ - 32768, 32768);
	fx_checksum(&c, RES, A, ASZ);
	fx_checksum(&c, RES + 8, B, BSZ);
	fx_checksum(&c, RES + 16, C, 2 << 20);
	fx_checksum(&c, RES + 24, C + (512 << 20) - 6, 8192 + 12);
	fx_checksum(&c, RES + 32, W, WSZ);
	fx_cmdbuf(fd, vm, CMD_VA, &c);

	ftest_assert_ok(fx_vm_bind(fd, vm, 0, &a, 1, NULL, 0));
	ftest_assert_ok(fx_vm_bind(fd, vm, 0, &cc, 1, NULL, 0));
	ftest_assert_ok(fx_vm_bind(fd, vm, 0, &w, 1, NULL, 0));
	mapped = fx_syncobj(fd);
	done = fx_syncobj(fd);
	{
		struct drm_ferrite_sync_op s = FX_SIGNAL(mapped);
		struct drm_ferrite_sync_op j[] = { FX_WAIT(mapped), FX_SIGNAL(done) };

		bind_async(fd, vm, &b, 1, &s, 1);
		ftest_assert_ok(fx_submit_full(fd, q, CMD_VA, c.n * 4, j, 2, NULL, 0));
	}
	ftest_assert_eq(wait_status(fd, done, "the job reading NULL ranges"), 1);
	expect_status(fd, mapped, 1, "the asynchronous NULL MAP");
	st = fx_state(fd, q, 0);
	ftest_assert_eq(st.faults, 0);
	ftest_assert_eq(st.failed_jobs, 0);

	memset(want, 0xa5, DSZ);
	memset(want, 0, ZSZ);
	expect_bo(fd, dst, want, DSZ, "COPYs of NULL ranges over 0xa5");
	read_u64s(fd, res, sums, 6);
	ftest_assert_eq_u64(sums[0], fnv_zeros(FNV_BASIS, ASZ));
	ftest_assert_eq_u64(sums[1], fnv_zeros(FNV_BASIS, BSZ));
	ftest_assert_eq_u64(sums[2], fnv_zeros(FNV_BASIS, 2 << 20));
	ftest_assert_eq_u64(sums[3], fnv_zeros(FNV_BASIS, 8192 + 12));
	ftest_assert_eq_u64(sums[4], fnv_zeros(FNV_BASIS, WSZ));
	ftest_assert_eq_u64(sums[5], 0xa5a5a5a5a5a5a5a5ull);
	free(want);
}

static void test_null_reads_zero(void)
{
	on_each_gpu(null_reads_zero);
}

/*
 * null-writes-dropped: a BO mapped at X and Y; a synchronous NULL MAP over
 * X replaces it there: a FILL and a WRITE64 (with a cache flush) of X are
 * dropped, X reads back as zeros, Y and the CPU still see the BO's data.
 * An asynchronous bind of a 4 MiB NULL range (two 2 MiB blocks) and of a
 * BO over 64 KiB of its middle: a FILL across the three parts lands in
 * the BO only, and reads back as zeros|pattern|zeros; a write to the
 * other block is dropped.
 */
static void null_writes_dropped(int fd)
{
	const uint64_t X = FX_VA(1), Y = FX_VA(2), R = FX_VA(3), RES = FX_VA(4), SZ = 64 * 1024;
	const uint64_t Z = FX_VA(10), M = 1 << 20, RSZ = 256 * 1024;
	const uint32_t wpat = 0xdeadbeef, zpat = 0xc001d00d;
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0), bo, mid, rbo, res, mapped, d1, d2;
	struct drm_ferrite_vm_bind_op nx = fx_op_null(X, SZ);
	struct drm_ferrite_vm_bind_op ops[] = { fx_op_null(Z, 4 * M), { 0 } };
	struct fx_cmd c1 = { .n = 0 }, c2 = { .n = 0 };
	uint8_t *pat = malloc(SZ), *zp = malloc(SZ), *want = malloc(RSZ);
	uint64_t sums[3], h;

	for (uint64_t i = 0; i < SZ; i++)
		pat[i] = (uint8_t)(i * 7 + 1);
	fill_pattern(zp, SZ, zpat);
	bo = bo_with(fd, SZ, pat, 0);
	mid = fx_bo(fd, SZ);
	rbo = bo_with(fd, RSZ, NULL, 0xa5);
	res = bo_with(fd, FX_PAGE, NULL, 0xa5);
	fx_map(fd, vm, bo, X, SZ);
	fx_map(fd, vm, bo, Y, SZ);
	fx_map(fd, vm, rbo, R, RSZ);
	fx_map(fd, vm, res, RES, FX_PAGE);
	ops[1] = fx_op_map(mid, 0, Z + M, SZ);

	fx_fill(&c1, X, SZ, wpat);
	fx_write64(&c1, X + 8, 0x1122334455667788ull, FX_W64_FLUSH);
	fx_copy(&c1, R, X, SZ);
	fx_checksum(&c1, RES, Y, SZ);
	fx_cmdbuf(fd, vm, CMD_VA, &c1);
	fx_fill(&c2, Z + M - SZ, 3 * SZ, zpat);
	fx_write64(&c2, Z + 3 * M, 77, FX_W64_FLUSH);
	fx_copy(&c2, R + SZ, Z + M - SZ, 3 * SZ);
	fx_checksum(&c2, RES + 8, Z, 2 * M);
	fx_copy(&c2, RES + 16, Z + 3 * M, 8);
	fx_cmdbuf(fd, vm, CMD_VA + 4 * FX_PAGE, &c2);

	ftest_assert_ok(fx_vm_bind(fd, vm, 0, &nx, 1, NULL, 0));
	mapped = fx_syncobj(fd);
	d1 = fx_syncobj(fd);
	d2 = fx_syncobj(fd);
	{
		struct drm_ferrite_sync_op s = FX_SIGNAL(mapped);
		struct drm_ferrite_sync_op j1 = FX_SIGNAL(d1);
		struct drm_ferrite_sync_op j2[] = { FX_WAIT(mapped), FX_SIGNAL(d2) };

		bind_async(fd, vm, ops, 2, &s, 1);
		ftest_assert_ok(fx_submit_full(fd, q, CMD_VA, c1.n * 4, &j1, 1, NULL, 0));
		ftest_assert_ok(fx_submit_full(fd, q, CMD_VA + 4 * FX_PAGE, c2.n * 4, j2, 2, NULL, 0));
	}
	ftest_assert_eq(wait_status(fd, d2, "the job writing a NULL range with a BO inside"), 1);
	expect_status(fd, d1, 1, "the job writing a NULL range");
	ftest_assert_eq(fx_state(fd, q, 0).faults, 0);

	memset(want, 0, RSZ);
	memcpy(want + 2 * SZ, zp, SZ);
	expect_bo(fd, rbo, want, RSZ, "what the NULL ranges read back");
	expect_bo(fd, bo, pat, SZ, "the BO the NULL MAP replaced at X");
	expect_bo(fd, mid, zp, SZ, "the BO inside the NULL range");
	read_u64s(fd, res, sums, 3);
	ftest_assert_eq_u64(sums[0], fx_fnv1a(pat, SZ));
	h = fnv_zeros(FNV_BASIS, M);
	h = fnv_feed(h, zp, SZ);
	h = fnv_zeros(h, M - SZ);
	ftest_assert_eq_u64(sums[1], h);
	ftest_assert_eq_u64(sums[2], 0);
	free(pat);
	free(zp);
	free(want);
}

static void test_null_writes_dropped(void)
{
	on_each_gpu(null_writes_dropped);
}

/*
 * sparse-stress: a 1 GiB NULL range (1 GiB aligned); a pool of 4 BOs of
 * 16 pages of 64 KiB. 128 rounds, each an asynchronous VM_BIND of 8
 * random MAPs on 64 KiB granules (BO pages, NULL granules, NULL 2 MiB
 * blocks; most in 8 hot 2 MiB blocks) and a job that sometimes FILLs a
 * range and CHECKSUMs what the round changed, two random granules and a
 * random byte range across granules. Rounds are chained by two timeline
 * sync objects (bind r waits for job r - 1, job r for bind r), all
 * submitted before the first is waited for. The CPU keeps the model:
 * which page is at each granule, the pages' contents; every checksum and
 * every pool page must agree with it.
 */
#define SP_VA FX_VA(48)
#define SP_SIZE (1ull << 30)
#define SP_GRAN (64 * 1024ull)
#define SP_NGRAN (SP_SIZE / SP_GRAN)
#define SP_BLOCK (32)			/* granules in 2 MiB */
#define SP_BOS 4
#define SP_BO_PAGES 16
#define SP_PAGES (SP_BOS * SP_BO_PAGES)
#define SP_ROUNDS 128
#define SP_OPS 8
#define SP_HOT 8
#define SP_JOBS (SP_ROUNDS + 2)
#define SP_SLOTS 4096
#define SP_CMD_VA FX_VA(40)
#define SP_RES_VA FX_VA(44)

struct sparse {
	uint64_t rng;
	int16_t map[SP_NGRAN];		/* the pool page at each granule, -1 NULL */
	uint8_t *data;			/* the pool pages' contents */
	uint64_t hash[SP_PAGES];	/* FNV-1a of a page, if fresh */
	bool fresh[SP_PAGES];
	uint32_t hot[SP_HOT];		/* the 2 MiB blocks most ops go to */
	struct {
		uint64_t want, off, len;
		int round;
	} slot[SP_SLOTS];		/* what each CHECKSUM must give */
	int nslots;
};

static uint64_t sp_rand(struct sparse *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t sp_below(struct sparse *s, uint64_t n)
{
	return (uint32_t)(sp_rand(s) % n);
}

/* A granule: in a hot block four times in five, else anywhere. */
static uint32_t sp_granule(struct sparse *s)
{
	if (sp_below(s, 5))
		return s->hot[sp_below(s, SP_HOT)] * SP_BLOCK + sp_below(s, SP_BLOCK);
	return sp_below(s, SP_NGRAN);
}

/* FNV-1a of [off, off + len) of the range, as the model has it. */
static uint64_t sp_hash(struct sparse *s, uint64_t off, uint64_t len)
{
	uint64_t h = FNV_BASIS;

	if (off % SP_GRAN == 0 && len == SP_GRAN && s->map[off / SP_GRAN] >= 0) {
		int p = s->map[off / SP_GRAN];

		if (!s->fresh[p]) {
			s->hash[p] = fnv_feed(FNV_BASIS, s->data + p * SP_GRAN, SP_GRAN);
			s->fresh[p] = true;
		}
		return s->hash[p];
	}
	while (len) {
		uint64_t in = off % SP_GRAN, n = SP_GRAN - in < len ? SP_GRAN - in : len;
		int p = s->map[off / SP_GRAN];

		h = p < 0 ? fnv_zeros(h, n) : fnv_feed(h, s->data + p * SP_GRAN + in, n);
		off += n;
		len -= n;
	}
	return h;
}

/* What a FILL of [off, off + len) does: BO pages take it, NULL drops it. */
static void sp_fill(struct sparse *s, uint64_t off, uint64_t len, uint32_t pat)
{
	for (uint64_t i = 0; i < len; i++) {
		int p = s->map[(off + i) / SP_GRAN];

		if (p >= 0) {
			s->data[p * SP_GRAN + (off + i) % SP_GRAN] = (uint8_t)(pat >> (8 * (i % 4)));
			s->fresh[p] = false;
		}
	}
}

/* A CHECKSUM of [off, off + len) into the next result slot. */
static void sp_checksum(struct sparse *s, struct fx_cmd *c, int round, uint64_t off, uint64_t len)
{
	ftest_assert(s->nslots < SP_SLOTS);
	s->slot[s->nslots].want = sp_hash(s, off, len);
	s->slot[s->nslots].off = off;
	s->slot[s->nslots].len = len;
	s->slot[s->nslots].round = round;
	fx_checksum(c, SP_RES_VA + 8ull * s->nslots, SP_VA + off, len);
	s->nslots++;
}

/* Round r: its bind operations (in ops; returns how many) and its job (in
 * c), applied to the model. */
static uint32_t sp_round(struct sparse *s, int r, const uint32_t *pool,
			 struct drm_ferrite_vm_bind_op *ops, struct fx_cmd *c)
{
	uint32_t n = 0, g[SP_OPS], cnt[SP_OPS];

	if (r == 0)
		ops[n++] = fx_op_null(SP_VA, SP_SIZE);
	for (int i = 0; i < SP_OPS; i++) {
		uint32_t k = sp_below(s, 100);

		if (k < 5) {
			/* A whole hot 2 MiB block back to NULL. */
			g[i] = s->hot[sp_below(s, SP_HOT)] * SP_BLOCK;
			cnt[i] = SP_BLOCK;
			ops[n++] = fx_op_null(SP_VA + g[i] * SP_GRAN, cnt[i] * SP_GRAN);
			for (uint32_t j = 0; j < cnt[i]; j++)
				s->map[g[i] + j] = -1;
		} else if (k < 35) {
			g[i] = sp_granule(s);
			cnt[i] = 1 + sp_below(s, 4);
			if (g[i] + cnt[i] > SP_NGRAN)
				cnt[i] = SP_NGRAN - g[i];
			ops[n++] = fx_op_null(SP_VA + g[i] * SP_GRAN, cnt[i] * SP_GRAN);
			for (uint32_t j = 0; j < cnt[i]; j++)
				s->map[g[i] + j] = -1;
		} else {
			uint32_t p = sp_below(s, SP_PAGES);

			g[i] = sp_granule(s);
			cnt[i] = 1 + sp_below(s, 3);
			if (p % SP_BO_PAGES + cnt[i] > SP_BO_PAGES)
				cnt[i] = SP_BO_PAGES - p % SP_BO_PAGES;
			if (g[i] + cnt[i] > SP_NGRAN)
				cnt[i] = SP_NGRAN - g[i];
			ops[n++] = fx_op_map(pool[p / SP_BO_PAGES], (p % SP_BO_PAGES) * SP_GRAN,
					     SP_VA + g[i] * SP_GRAN, cnt[i] * SP_GRAN);
			for (uint32_t j = 0; j < cnt[i]; j++)
				s->map[g[i] + j] = (int16_t)(p + j);
		}
	}
	/* Three rounds in ten FILL a range from a hot granule on. */
	if (sp_below(s, 10) < 3) {
		uint64_t off = sp_granule(s) * SP_GRAN + 4 * sp_below(s, SP_GRAN / 4);
		uint64_t len = 4 * (1 + (uint64_t)sp_below(s, 96 * 1024 / 4));
		uint32_t pat = (uint32_t)sp_rand(s);

		if (off + len > SP_SIZE)
			len = SP_SIZE - off;
		fx_fill(c, SP_VA + off, len, pat);
		sp_fill(s, off, len, pat);
	}
	/* The first and last granule each op changed (single granules: the
	 * model's hashes of pages are cached), ... */
	for (int i = 0; i < SP_OPS; i++) {
		sp_checksum(s, c, r, g[i] * SP_GRAN, SP_GRAN);
		if (cnt[i] > 1)
			sp_checksum(s, c, r, (g[i] + cnt[i] - 1) * SP_GRAN, SP_GRAN);
	}
	/* ...two granules anywhere, and a byte range across granules. */
	for (int i = 0; i < 2; i++)
		sp_checksum(s, c, r, sp_granule(s) * SP_GRAN, SP_GRAN);
	{
		uint64_t off = sp_granule(s) * SP_GRAN + sp_below(s, SP_GRAN);
		uint64_t len = 1 + sp_below(s, 3 * SP_GRAN);

		if (off + len > SP_SIZE)
			len = SP_SIZE - off;
		sp_checksum(s, c, r, off, len);
	}
	return n;
}

static void test_sparse_stress(void)
{
	static struct drm_ferrite_vm_bind_op ops[SP_ROUNDS][SP_OPS + 1];
	int fd = fdev_open_or_skip(0);
	struct sparse *s = calloc(1, sizeof(*s));
	const char *env = getenv("FERRITE_SEED");
	uint32_t vm, q, pool[SP_BOS], cmdbo, resbo, tbind, tjob, nops[SP_ROUNDS];
	uint32_t size[SP_JOBS];
	uint64_t seed, *res;
	uint8_t *cmd;
	double t0, t1, t2;
	int fills = 0;

	fx_require_uapi(fd, NEED_ASYNC | NEED_NULL, "asynchronous and NULL binds");
	ftest_assert(s != NULL);
	seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("seed %#llx (FERRITE_SEED=%#llx repeats this run)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	s->rng = seed;
	vm = fx_vm(fd);
	q = fx_queue(fd, vm, 0);

	/* Command buffers and results, bound before the first asynchronous
	 * bind; the pool, with random data. */
	cmdbo = fx_bo(fd, SP_JOBS * FX_PAGE);
	cmd = fx_mmap(fd, cmdbo, SP_JOBS * FX_PAGE);
	fx_map(fd, vm, cmdbo, SP_CMD_VA, SP_JOBS * FX_PAGE);
	resbo = bo_with(fd, SP_SLOTS * 8, NULL, 0xa5);
	fx_map(fd, vm, resbo, SP_RES_VA, SP_SLOTS * 8);
	s->data = malloc(SP_PAGES * SP_GRAN);
	ftest_assert(s->data != NULL);
	for (uint64_t i = 0; i < SP_PAGES * SP_GRAN / 8; i++)
		((uint64_t *)s->data)[i] = sp_rand(s);
	for (int b = 0; b < SP_BOS; b++)
		pool[b] = bo_with(fd, SP_BO_PAGES * SP_GRAN, s->data + b * SP_BO_PAGES * SP_GRAN, 0);
	for (uint64_t g = 0; g < SP_NGRAN; g++)
		s->map[g] = -1;
	for (int i = 0; i < SP_HOT; i++) {
		bool again;

		do {
			s->hot[i] = sp_below(s, SP_NGRAN / SP_BLOCK);
			again = false;
			for (int j = 0; j < i; j++)
				again |= s->hot[j] == s->hot[i];
		} while (again);
	}

	/* Every round is made first, so that all go in without a pause. */
	ftest_assert_ok(fx_gem_sync(fd, cmdbo, FX_BEGIN_W));
	for (int r = 0; r < SP_ROUNDS; r++) {
		struct fx_cmd c = { .n = 0 };

		nops[r] = sp_round(s, r, pool, ops[r], &c);
		fills += c.dw[0] == (FX_OP_FILL | (6 << 16));
		memcpy(cmd + (size_t)r * FX_PAGE, c.dw, c.n * 4);
		size[r] = c.n * 4;
	}
	/* Then two jobs that checksum every hot granule. */
	for (int j = 0; j < 2; j++) {
		struct fx_cmd c = { .n = 0 };

		for (int i = j * SP_HOT * SP_BLOCK / 2; i < (j + 1) * SP_HOT * SP_BLOCK / 2; i++)
			sp_checksum(s, &c, SP_ROUNDS + j,
				    (s->hot[i / SP_BLOCK] * SP_BLOCK + i % SP_BLOCK) * SP_GRAN, SP_GRAN);
		memcpy(cmd + (size_t)(SP_ROUNDS + j) * FX_PAGE, c.dw, c.n * 4);
		size[SP_ROUNDS + j] = c.n * 4;
	}
	ftest_assert_ok(fx_gem_sync(fd, cmdbo, FX_END_W));

	tbind = fx_syncobj(fd);
	tjob = fx_syncobj(fd);
	t0 = ftest_now();
	for (int r = 0; r < SP_JOBS; r++) {
		struct drm_ferrite_sync_op b[] = { FX_SIGNAL_POINT(tbind, r + 1), FX_WAIT_POINT(tjob, r) };
		struct drm_ferrite_sync_op j[] = { FX_SIGNAL_POINT(tjob, r + 1), FX_WAIT_POINT(tbind, r + 1) };

		if (r < SP_ROUNDS)
			bind_async(fd, vm, ops[r], nops[r], b, r ? 2 : 1);
		ftest_assert_ok(fx_submit_full(fd, q, SP_CMD_VA + (uint64_t)r * FX_PAGE, size[r], j,
					       r < SP_ROUNDS ? 2 : 1, NULL, 0));
	}
	t1 = ftest_now();
	if (fx_syncobj_wait_point(fd, tjob, SP_JOBS, 60000))
		ftest_fail("the last job did not signal within 60 s");
	t2 = ftest_now();
	printf("%d rounds (%d FILLs), %d checksums: submitted in %.0f ms, done %.0f ms later\n",
	       SP_ROUNDS, fills, s->nslots, (t1 - t0) * 1000, (t2 - t1) * 1000);

	for (int r = 0; r < SP_JOBS; r++) {
		int st = r < SP_ROUNDS ? fx_syncobj_point_status(fd, tbind, r + 1) : 1;

		if (st != 1)
			ftest_fail("round %d's bind: fence status %d", r, st);
		st = fx_syncobj_point_status(fd, tjob, r + 1);
		if (st != 1)
			ftest_fail("round %d's job: fence status %d", r, st);
	}
	res = fx_mmap(fd, resbo, SP_SLOTS * 8);
	ftest_assert_ok(fx_gem_sync(fd, resbo, FX_BEGIN_R));
	for (int i = 0; i < s->nslots; i++)
		if (res[i] != s->slot[i].want)
			ftest_fail("round %d: CHECKSUM of [%#llx, +%#llx) gave %#llx, the model %#llx",
				   s->slot[i].round, (unsigned long long)(SP_VA + s->slot[i].off),
				   (unsigned long long)s->slot[i].len, (unsigned long long)res[i],
				   (unsigned long long)s->slot[i].want);
	ftest_assert_ok(fx_gem_sync(fd, resbo, FX_END_R));
	for (int b = 0; b < SP_BOS; b++) {
		char what[32];

		snprintf(what, sizeof(what), "pool BO %d", b);
		expect_bo(fd, pool[b], s->data + b * SP_BO_PAGES * SP_GRAN, SP_BO_PAGES * SP_GRAN, what);
	}
	ftest_assert_eq(fx_vm_state(fd, vm), USABLE);
	free(s->data);
	free(s);
	close(fd);
}

/*
 * The state of a VM an asynchronous bind failed in: VM_GET_STATE says
 * UNUSABLE; SUBMIT on its queue q and MAPs (synchronous and asynchronous)
 * fail with EIO and signal nothing; an UNMAP of [va, va + size) (mapped)
 * works; the VM goes once its queue has.
 */
static void expect_unusable(int fd, uint32_t vm, uint32_t q, uint32_t bo, uint64_t va,
			    uint64_t size)
{
	uint32_t canary = fx_syncobj(fd);
	struct drm_ferrite_sync_op sig = FX_SIGNAL(canary);
	struct drm_ferrite_vm_bind_op map = fx_op_map(bo, 0, FX_VA(20), FX_PAGE);
	uint64_t bytes;

	ftest_assert_eq(fx_vm_state(fd, vm), UNUSABLE);
	ftest_assert_errno(fx_submit_full(fd, q, CMD_VA, 4, &sig, 1, NULL, 0), EIO);
	ftest_assert_errno(fx_vm_bind(fd, vm, 0, &map, 1, &sig, 1), EIO);
	ftest_assert_errno(fx_vm_bind(fd, vm, ASYNC, &map, 1, &sig, 1), EIO);
	ftest_assert(!fx_syncobj_has_fence(fd, canary));
	bytes = bound_bytes(fd);
	ftest_assert_ok(fx_unmap(fd, vm, va, size));
	ftest_assert_eq_u64(bytes - bound_bytes(fd), size);
	ftest_assert_eq(fx_vm_destroy(fd, vm), -EBUSY);
	ftest_assert_ok(fx_queue_destroy(fd, q));
	ftest_assert_ok(fx_vm_destroy(fd, vm));
	ftest_assert_eq(fx_vm_state(fd, vm), -ENOENT);
}

/* The injected failures still to come, of debugfs file `name`. */
static long injected_left(int fd, const char *name)
{
	char path[PATH_MAX], buf[64];

	ftest_assert_ok(fx_debugfs_path(fd, name, path, sizeof(path)));
	ftest_assert(fx_slurp(path, buf, sizeof(buf)) > 0);
	return strtol(buf, NULL, 10);
}

static long inject_left(int fd)
{
	return injected_left(fd, "inject_bind_failure");
}

/* Fail, after taking back injected failures not used. */
#define INJECT_FAIL(fd, ...) \
	do { \
		fx_debugfs_write(fd, "inject_bind_failure", "0"); \
		ftest_fail(__VA_ARGS__); \
	} while (0)

/*
 * unusable-vm: an asynchronous MAP that waits for a job that faults, and
 * one queued behind it: both VM_BINDs return 0, the first's fence carries
 * the job's -EFAULT, the second's an error, and the VM is unusable (see
 * expect_unusable); an asynchronous UNMAP still applies; the file's other
 * VM and a new VM work. Then a failure injected through debugfs
 * (inject_bind_failure): a synchronous bind does not take it, the next
 * asynchronous MAP returns 0 and fails with -ENOMEM, with the same
 * consequences. Last, a page-table update injected to fail
 * (inject_pt_failure) in a synchronous MAP: VM_BIND returns -ENOMEM and
 * the VM is unusable, with the same consequences (that error path once
 * took the page-table lock it held and hung). (That the failed binds applied nothing cannot be seen:
 * an unusable VM's page tables are emptied and it runs no job, and
 * bytes_bound counts a bind when it is recorded, at VM_BIND.)
 */
static void test_unusable_vm(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t bo, faulted, failed, behind, unmapped;
	struct fx_cmd f = { .n = 0 };
	struct gate_opener wd;
	char path[PATH_MAX];
	uint64_t bytes;
	struct rig r;
	int st;

	fx_require_uapi(fd, NEED_ASYNC, "asynchronous VM_BIND and VM_GET_STATE");
	rig_init(&r, fd);
	bo = fx_bo(fd, FX_PAGE);
	ftest_assert_eq(fx_vm_state(fd, r.vm), USABLE);
	ftest_assert_eq(fx_vm_state(fd, PVM), USABLE);

	/* (a) A job that will fault, held at gate 0; a MAP after it, and a
	 * MAP queued behind that. */
	fx_wait(&f, GATE_VA, 1);
	fx_write64(&f, FX_VA(9) + 0x40, 1, 0);
	faulted = rig_job(&r, 0, r.q, &f, 0);
	failed = fx_syncobj(fd);
	behind = fx_syncobj(fd);
	gate_opener_start(&wd, &r, ALL_GATES, 20000);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(1), FX_PAGE);
		struct drm_ferrite_sync_op s[] = { FX_WAIT(faulted), FX_SIGNAL(failed) };

		bind_async(fd, r.vm, &op, 1, s, 2);
		op.va = FX_VA(2);
		s[0] = FX_SIGNAL(behind);
		bind_async(fd, r.vm, &op, 1, s, 1);
	}
	expect_status(fd, failed, 0, "the MAP after the held job, when its VM_BIND returned");
	ftest_assert_eq(fx_vm_state(fd, r.vm), USABLE);
	gate_opener_stop(&wd);
	rig_open_gate(&r, 0);
	ftest_assert_eq(wait_status(fd, faulted, "the job that faults"), -EFAULT);
	st = wait_status(fd, failed, "the MAP after the job that faulted");
	if (st != -EFAULT)
		ftest_fail("the MAP after a job that faulted: fence status %d (%s), expected the job's -EFAULT",
			   st, fence_word(st));
	st = wait_status(fd, behind, "the MAP queued behind the failed one");
	printf("the MAP queued behind the failed one: fence status %d (%s)\n", st, fence_word(st));
	if (st >= 0)
		ftest_fail("the MAP queued behind the failed one signalled %d, expected an error", st);
	/* An asynchronous UNMAP (of the status page) still applies. */
	unmapped = fx_syncobj(fd);
	bytes = bound_bytes(fd);
	{
		struct drm_ferrite_vm_bind_op op = fx_op_unmap(STATUS_VA, FX_PAGE);
		struct drm_ferrite_sync_op s = FX_SIGNAL(unmapped);

		bind_async(fd, r.vm, &op, 1, &s, 1);
	}
	st = wait_status(fd, unmapped, "an asynchronous UNMAP on the unusable VM");
	printf("an asynchronous UNMAP on the unusable VM: fence status %d (%s)\n", st, fence_word(st));
	ftest_assert_eq_u64(bytes - bound_bytes(fd), FX_PAGE);
	expect_unusable(fd, r.vm, r.q, bo, CMD_VA, RIG_CMDS * FX_PAGE);
	/* The file's other VM, and a new one, work. */
	ftest_assert_eq(fx_vm_state(fd, r.gvm), USABLE);
	{
		uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0), res = fx_bo(fd, FX_PAGE);
		struct fx_cmd c = { .n = 0 };
		uint64_t v;

		ftest_assert_eq(fx_vm_state(fd, vm), USABLE);
		fx_map(fd, vm, res, FX_VA(3), FX_PAGE);
		fx_write64(&c, FX_VA(3), 42, 0);
		ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &c), 1);
		read_u64s(fd, res, &v, 1);
		ftest_assert_eq_u64(v, 42);
	}

	/* (b) An injected failure. */
	if (fx_debugfs_path(fd, "", path, sizeof(path)))
		ftest_skip("no debugfs (%s): the injected bind failure is not tested (the failed-WAIT part passed)",
			   path);
	if (fx_debugfs_path(fd, "inject_bind_failure", path, sizeof(path)))
		ftest_fail("debugfs has no %s", path);
	{
		uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0), m = fx_bo(fd, FX_PAGE);
		uint32_t out = fx_syncobj(fd);
		struct drm_ferrite_vm_bind_op op = fx_op_map(bo, 0, FX_VA(1), FX_PAGE);
		struct drm_ferrite_sync_op s = FX_SIGNAL(out);
		long left;

		ftest_assert_ok(fx_debugfs_write(fd, "inject_bind_failure", "1"));
		left = inject_left(fd);
		if (left != 1)
			INJECT_FAIL(fd, "inject_bind_failure reads %ld after writing 1", left);
		/* Not for a synchronous bind. */
		if (fx_map_flags(fd, vm, m, 0, FX_VA(3), FX_PAGE, 0))
			INJECT_FAIL(fd, "a synchronous MAP with a failure injected for an asynchronous one: %s",
				    strerror(errno));
		left = inject_left(fd);
		if (left != 1)
			INJECT_FAIL(fd, "a synchronous MAP took the injected failure (%ld left)", left);
		if (fx_vm_bind(fd, vm, ASYNC, &op, 1, &s, 1))
			INJECT_FAIL(fd, "an asynchronous MAP with an injected failure: VM_BIND failed (%s), expected it to fail when applied",
				    strerror(errno));
		st = wait_status(fd, out, "the asynchronous MAP with an injected failure");
		left = inject_left(fd);
		if (left != 0)
			INJECT_FAIL(fd, "%ld injected failures left after an asynchronous MAP", left);
		if (st != -ENOMEM)
			ftest_fail("the MAP with an injected failure: fence status %d (%s), expected -ENOMEM",
				   st, fence_word(st));
		expect_unusable(fd, vm, q, bo, FX_VA(3), FX_PAGE);
	}
	/* (c) A synchronous MAP whose page-table update fails. */
	if (fx_debugfs_path(fd, "inject_pt_failure", path, sizeof(path)))
		ftest_fail("debugfs has no %s", path);
	{
		uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0);
		int rc;

		ftest_assert_ok(fx_debugfs_write(fd, "inject_pt_failure", "1"));
		rc = fx_map_flags(fd, vm, bo, 0, FX_VA(5), FX_PAGE, 0) ? errno : 0;
		if (injected_left(fd, "inject_pt_failure") != 0) {
			fx_debugfs_write(fd, "inject_pt_failure", "0");
			ftest_fail("a synchronous MAP did not take the injected page-table failure (returned %s)",
				   strerror(rc));
		}
		if (rc != ENOMEM)
			ftest_fail("a synchronous MAP whose page-table update failed returned %s, expected ENOMEM",
				   strerror(rc));
		expect_unusable(fd, vm, q, bo, FX_VA(5), FX_PAGE);
	}
	ftest_assert_eq(fx_vm_state(fd, r.gvm), USABLE);
	close(fd);
}

/*
 * bad-input: the errors of interface 0.5's VM_BIND and VM_GET_STATE. A
 * failed VM_BIND (each with a valid MAP before the bad part and a SIGNAL
 * of a canary sync object) applies and queues nothing and signals
 * nothing; afterwards the VM takes binds and jobs.
 */
static void test_bad_input(void)
{
	const uint32_t MAP = DRM_FERRITE_VM_BIND_OP_MAP, UNMAP = DRM_FERRITE_VM_BIND_OP_UNMAP;
	const uint32_t NUL = DRM_FERRITE_VM_BIND_NULL, UP = DRM_FERRITE_VM_BIND_USERPTR;
	const uint32_t W = DRM_FERRITE_SYNC_WAIT, S = DRM_FERRITE_SYNC_SIGNAL;
	const uint32_t T = DRM_FERRITE_SYNC_TIMELINE;
	static struct drm_ferrite_vm_bind_op many[4097];
	static struct drm_ferrite_sync_op syncs[65];
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_dev_info info = fx_dev_info(fd);
	uint32_t vm, q, bo, res, canary, sig, tl, empty, out;
	struct drm_ferrite_vm_bind_op pair[2];
	struct drm_ferrite_sync_op sc;
	uint64_t base, U, U2;
	int null_over_user;
	uint8_t *page;

	fx_require_uapi(fd, NEED_ASYNC, "asynchronous VM_BIND");
	/* Without NULL binds, NULL is an unknown flag. */
	null_over_user = fx_uapi_features(fd) & NEED_NULL ? EEXIST : EINVAL;
	vm = fx_vm(fd);
	q = fx_queue(fd, vm, 0);
	bo = fx_bo(fd, 16 * FX_PAGE);
	res = bo_with(fd, FX_PAGE, NULL, 0xa5);
	fx_map(fd, vm, res, FX_VA(3), FX_PAGE);
	canary = fx_syncobj(fd);
	sig = fx_syncobj(fd);
	fx_syncobj_signal(fd, sig, 0);
	tl = fx_syncobj(fd);
	fx_syncobj_signal(fd, tl, 3);
	empty = fx_syncobj(fd);
	/* A userptr at U (the middle of three pages), and a page at U2. */
	page = fx_user_mmap(4 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ftest_assert(page != MAP_FAILED);
	memset(page, 1, 4 * FX_PAGE);
	U = (uintptr_t)page + FX_PAGE;
	U2 = (uintptr_t)page + 3 * FX_PAGE;
	ftest_assert_ok(fx_bind_user(fd, vm, (void *)(uintptr_t)U, FX_PAGE, 0));
	base = bound_bytes(fd);
	pair[0] = fx_op_map(bo, 0, FX_VA(1), FX_PAGE);
	sc = FX_SIGNAL(canary);

	/* Operations: each after a valid MAP, asynchronous and (but where
	 * only an asynchronous bind refuses it) synchronous. */
	{
		const struct {
			const char *what;
			struct drm_ferrite_vm_bind_op op;
			int err;
			bool async_only;
		} t[] = {
			{ "op 3", { .op = 3, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "op ~0", { .op = ~0u, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "MAP flag 1 << 4", { .op = MAP, .flags = 1 << 4, .handle = bo, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "MAP flag 1 << 31", { .op = MAP, .flags = 1u << 31, .handle = bo, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "NULL with flag 1 << 4", { .op = MAP, .flags = NUL | 1 << 4, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "NULL with a handle", { .op = MAP, .flags = NUL, .handle = bo, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "NULL with a BO offset", { .op = MAP, .flags = NUL, .bo_offset = FX_PAGE, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "NULL | USERPTR", { .op = MAP, .flags = NUL | UP, .va = U2, .size = FX_PAGE }, EINVAL, false },
			{ "NULL unaligned", { .op = MAP, .flags = NUL, .va = FX_VA(2) + 8, .size = FX_PAGE }, EINVAL, false },
			{ "NULL of size 0", { .op = MAP, .flags = NUL, .va = FX_VA(2) }, EINVAL, false },
			{ "NULL beyond the user range", { .op = MAP, .flags = NUL, .va = info.va_end - FX_PAGE, .size = 2 * FX_PAGE }, EINVAL, false },
			{ "UNMAP with NULL", { .op = UNMAP, .flags = NUL, .va = FX_VA(2), .size = FX_PAGE }, EINVAL, false },
			{ "MAP of an unknown handle", { .op = MAP, .handle = 4242, .va = FX_VA(2), .size = FX_PAGE }, ENOENT, false },
			{ "USERPTR", { .op = MAP, .flags = UP, .va = U2, .size = FX_PAGE }, EINVAL, true },
			{ "UNMAP of a userptr", { .op = UNMAP, .va = U, .size = FX_PAGE }, EINVAL, true },
			{ "UNMAP around a userptr", { .op = UNMAP, .va = U - FX_PAGE, .size = 3 * FX_PAGE }, EINVAL, true },
			/* Synchronous, these fail once the valid MAP before
			 * them is applied; asynchronous, they must fail before
			 * anything is queued. */
			{ "MAP over a userptr", { .op = MAP, .handle = bo, .va = U - FX_PAGE, .size = 2 * FX_PAGE }, EEXIST, true },
			{ "NULL over a userptr", { .op = MAP, .flags = NUL, .va = U, .size = FX_PAGE }, null_over_user, true },
		};

		for (unsigned int i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			for (uint32_t flags = 0; flags <= ASYNC; flags += ASYNC) {
				int ret;

				if (!flags && t[i].async_only)
					continue;
				pair[1] = t[i].op;
				ret = fx_vm_bind(fd, vm, flags, pair, 2, &sc, 1);
				if (ret != -1 || errno != t[i].err)
					ftest_fail("%s VM_BIND, %s: %d errno %d (%s), expected %s",
						   flags ? "asynchronous" : "synchronous", t[i].what, ret,
						   errno, strerror(errno), strerror(t[i].err));
				if (fx_syncobj_has_fence(fd, canary))
					ftest_fail("%s VM_BIND, %s: failed, yet signalled",
						   flags ? "asynchronous" : "synchronous", t[i].what);
			}
	}
	/* drm_ferrite_vm_bind.flags, and the VM. */
	{
		const uint32_t bad[] = { 1 << 1, 1u << 31, ASYNC | 1 << 1 };

		for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (fx_vm_bind(fd, vm, bad[i], pair, 1, &sc, 1) != -1 || errno != EINVAL)
				ftest_fail("VM_BIND flags %#x: errno %d, expected EINVAL", bad[i], errno);
		ftest_assert_errno(fx_vm_bind(fd, 4242, ASYNC, pair, 1, &sc, 1), ENOENT);
	}
	/* Sync ops of an asynchronous bind: each after the canary's SIGNAL. */
	{
		const struct {
			const char *what;
			struct drm_ferrite_sync_op s;
			int err;
		} t[] = {
			{ "unknown flag on a WAIT", { .flags = 1 << 2, .handle = sig }, EINVAL },
			{ "unknown flag on a SIGNAL", { .flags = S | 1u << 31, .handle = empty }, EINVAL },
			{ "WAIT on an empty sync object", { .flags = W, .handle = empty }, EINVAL },
			{ "WAIT on point 1 of a binary sync object", { .flags = W | T, .handle = sig, .point = 1 }, EINVAL },
			{ "WAIT with a point, without TIMELINE", { .flags = W, .handle = sig, .point = 1 }, EINVAL },
			{ "SIGNAL with a point, without TIMELINE", { .flags = S, .handle = empty, .point = 1 }, EINVAL },
			{ "SIGNAL of TIMELINE point 0", { .flags = S | T, .handle = empty }, EINVAL },
			{ "WAIT beyond the timeline's last point", { .flags = W | T, .handle = tl, .point = 4 }, EINVAL },
			{ "WAIT on an unknown handle", { .flags = W, .handle = 4242 }, ENOENT },
			{ "SIGNAL of an unknown handle", { .flags = S, .handle = 4242 }, ENOENT },
		};

		for (unsigned int i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			struct drm_ferrite_sync_op s[] = { sc, t[i].s };
			int ret = fx_vm_bind(fd, vm, ASYNC, pair, 1, s, 2);

			if (ret != -1 || errno != t[i].err)
				ftest_fail("asynchronous VM_BIND, %s: %d errno %d (%s), expected %s",
					   t[i].what, ret, errno, strerror(errno), strerror(t[i].err));
			if (fx_syncobj_has_fence(fd, canary))
				ftest_fail("asynchronous VM_BIND, %s: failed, yet signalled", t[i].what);
		}
		ftest_assert(!fx_syncobj_has_fence(fd, empty));
	}
	/* Arrays: above their limits, at them, malformed. */
	{
		struct drm_ferrite_vm_bind b = { .vm_id = vm, .flags = ASYNC };

		for (int i = 0; i < 4097; i++)
			many[i] = fx_op_sync_only();
		for (int i = 0; i < 65; i++)
			syncs[i] = FX_WAIT(sig);
		syncs[0] = sc;
		ftest_assert_errno(fx_vm_bind(fd, vm, ASYNC, many, 4097, syncs, 1), EINVAL);
		ftest_assert_errno(fx_vm_bind(fd, vm, ASYNC, pair, 1, syncs, 65), EINVAL);
		b.syncs = (struct drm_ferrite_obj_array){ .count = 1, .stride = sizeof(sc), .array = (uintptr_t)&sc };
		b.ops = (struct drm_ferrite_obj_array){ .count = ~0u, .stride = sizeof(pair[0]), .array = (uintptr_t)pair };
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
		b.ops = (struct drm_ferrite_obj_array){ .count = 1, .stride = 0, .array = (uintptr_t)pair };
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
		b.ops.stride = 42;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
		b.ops.stride = 4100;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
		/* 4096 elements of 4096 bytes from an address 8 MiB below the
		 * top: the array wraps around the address space. */
		b.ops = (struct drm_ferrite_obj_array){ .count = 4096, .stride = 4096, .array = -(8ull << 20) };
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EFAULT);
		b.ops = (struct drm_ferrite_obj_array){ .count = 1, .stride = sizeof(pair[0]), .array = (uintptr_t)pair };
		b.syncs = (struct drm_ferrite_obj_array){ .count = 1u << 31, .stride = sizeof(sc), .array = (uintptr_t)&sc };
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
		b.syncs = (struct drm_ferrite_obj_array){ .count = 64, .stride = 4096, .array = -(128ull << 10) };
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EFAULT);
		ftest_assert(!fx_syncobj_has_fence(fd, canary));
		/* At the limits: 4096 SYNC_ONLY ops, 64 sync ops. */
		out = fx_syncobj(fd);
		syncs[0] = FX_SIGNAL(out);
		ftest_assert_ok(fx_vm_bind(fd, vm, ASYNC, many, 4096, syncs, 64));
		ftest_assert_eq(wait_status(fd, out, "4096 SYNC_ONLY ops and 64 sync ops"), 1);
	}
	/* VM_GET_STATE. */
	{
		struct drm_ferrite_vm_get_state g = { .vm_id = vm, .pad = 1 };
		uint32_t gone = fx_vm(fd);

		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_GET_STATE, &g), EINVAL);
		g.pad = 1ull << 63;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_GET_STATE, &g), EINVAL);
		g.pad = 0;
		g.vm_id = 4242;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_GET_STATE, &g), ENOENT);
		ftest_assert_ok(fx_vm_destroy(fd, gone));
		ftest_assert_eq(fx_vm_state(fd, gone), -ENOENT);
		ftest_assert_eq(fx_vm_state(fd, PVM), USABLE);
	}

	/* Nothing was applied, queued or signalled, and the VM works: an
	 * asynchronous MAP after all this applies exactly itself. */
	ftest_assert(!fx_syncobj_has_fence(fd, canary));
	ftest_assert_eq_u64(bound_bytes(fd), base);
	ftest_assert_eq(fx_vm_state(fd, vm), USABLE);
	pair[0] = fx_op_map(bo, 0, FX_VA(2), FX_PAGE);
	bind_async(fd, vm, pair, 1, &sc, 1);
	ftest_assert_eq(wait_status(fd, canary, "a valid asynchronous MAP after the bad ones"), 1);
	ftest_assert_eq_u64(bound_bytes(fd) - base, FX_PAGE);
	{
		struct fx_cmd c = { .n = 0 };
		uint64_t v[2];

		fx_copy(&c, FX_VA(3), FX_VA(2), 8);
		fx_write64(&c, FX_VA(3) + 8, 0x5a, 0);
		ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &c), 1);
		read_u64s(fd, res, v, 2);
		ftest_assert_eq_u64(v[0], 0);
		ftest_assert_eq_u64(v[1], 0x5a);
	}
	munmap(page, 4 * FX_PAGE);
	close(fd);
}

FTEST_MAIN(
	{ "userptr-invalidate-busy", test_userptr_invalidate_busy, "fork and munmap of a userptr a queued job uses: waited for, then stopped; the old page never written" },
	{ "async-order", test_async_order, "asynchronous MAP, job, UNMAP, job chained by sync objects behind a held fence: in order, VM_BIND never waits" },
	{ "async-unmap-busy", test_async_unmap_busy, "an asynchronous UNMAP under a running job signals at once, its BO closed; the job's earlier writes land, its later ones fault" },
	{ "sync-only", test_sync_only, "SYNC_ONLY signals after its WAITs and the VM's earlier binds; other fields refused; synchronous SYNC_ONLY" },
	{ "null-reads-zero", test_null_reads_zero, "NULL ranges (pages, 2 MiB and 1 GiB blocks, sync and async) read as zeros, on each GPU" },
	{ "null-writes-dropped", test_null_writes_dropped, "writes to NULL ranges are dropped, a BO inside a NULL range gets its part, on each GPU" },
	{ "sparse-stress", test_sparse_stress, "128 rounds of random BO-page and NULL MAPs on 64 KiB granules of a 1 GiB NULL range, chained jobs checksum against a CPU model" },
	{ "unusable-vm", test_unusable_vm, "an asynchronous bind failing after VM_BIND returned (failed WAIT fence, injected ENOMEM) leaves the VM unusable: MAP/SUBMIT EIO, UNMAP/VM_DESTROY work" },
	{ "bad-input", test_bad_input, "interface 0.5's VM_BIND and VM_GET_STATE errors: nothing applied, queued or signalled" },
)
