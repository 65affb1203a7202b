// SPDX-License-Identifier: MIT
/*
 * ferrite_exec: jobs through the real device: fill/copy/checksum through
 * the MMU against CPU-computed results, TLB invalidation on rebind, faults
 * and hangs that fail one job and leave the queue working, and ordering
 * through sync objects and implicit sync.
 */
#include "lib/fexec.h"

#define SZ (256 * 1024)

struct ctx {
	int fd;
	uint32_t vm, q;
};

static struct ctx setup(uint32_t timeout_ms)
{
	struct ctx c;

	c.fd = fdev_open_or_skip(0);
	c.vm = fx_vm(c.fd);
	c.q = fx_queue(c.fd, c.vm, timeout_ms);
	return c;
}

/* FILL, COPY and CHECKSUM through the MMU match what the CPU computes. */
static void test_fill_copy_checksum(void)
{
	struct ctx c = setup(0);
	uint32_t a = fx_bo(c.fd, SZ), b = fx_bo(c.fd, SZ), r = fx_bo(c.fd, FX_PAGE);
	uint8_t *pa = fx_mmap(c.fd, a, SZ), *pb = fx_mmap(c.fd, b, SZ);
	uint64_t *pr = fx_mmap(c.fd, r, FX_PAGE);
	uint8_t *expect = malloc(SZ);
	struct fx_cmd cmd = { 0 };

	fx_map(c.fd, c.vm, a, FX_VA(1), SZ);
	fx_map(c.fd, c.vm, b, FX_VA(2), SZ);
	fx_map(c.fd, c.vm, r, FX_VA(3), FX_PAGE);
	/* Source data written by the CPU, partly overwritten by the GPU. */
	for (int i = 0; i < SZ; i++)
		pa[i] = (uint8_t)(i * 7 + 3);
	fx_fill(&cmd, FX_VA(1) + 4096, 8192 + 12, 0xa1b2c3d4);
	fx_copy(&cmd, FX_VA(2), FX_VA(1), SZ);
	fx_checksum(&cmd, FX_VA(3), FX_VA(2), SZ);
	fx_write64(&cmd, FX_VA(3) + 8, 0x1234567890abcdefull, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);

	for (int i = 0; i < SZ; i++)
		expect[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < 8192 + 12; i++)
		expect[4096 + i] = ((const uint8_t *)&(uint32_t){ 0xa1b2c3d4 })[i % 4];
	ftest_assert(!memcmp(pa, expect, SZ));
	ftest_assert(!memcmp(pb, expect, SZ));
	ftest_assert_eq_u64(pr[0], fx_fnv1a(expect, SZ));
	ftest_assert_eq_u64(pr[1], 0x1234567890abcdefull);
	free(expect);
	close(c.fd);
}

/* Rebinding a VA to another BO is seen by the GPU: the device's TLB keeps
 * stale translations, so a missed invalidation would read the old BO. */
static void test_rebind(void)
{
	struct ctx c = setup(0);
	uint32_t a = fx_bo(c.fd, SZ), b = fx_bo(c.fd, SZ), r = fx_bo(c.fd, FX_PAGE);
	uint8_t *pa = fx_mmap(c.fd, a, SZ), *pb = fx_mmap(c.fd, b, SZ);
	uint64_t *pr = fx_mmap(c.fd, r, FX_PAGE);
	struct drm_ferrite_counters before, after;
	struct fx_cmd cmd = { 0 };

	memset(pa, 0x11, SZ);
	memset(pb, 0x22, SZ);
	fx_map(c.fd, c.vm, r, FX_VA(3), FX_PAGE);
	fx_map(c.fd, c.vm, a, FX_VA(1), SZ);
	fx_checksum(&cmd, FX_VA(3), FX_VA(1), SZ);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	ftest_assert_eq_u64(pr[0], fx_fnv1a(pa, SZ));

	/* Replace the middle of the mapping: a split, one TLB flush. */
	before = fx_counters(c.fd);
	ftest_assert_ok(fx_map_flags(c.fd, c.vm, b, FX_PAGE, FX_VA(1) + 2 * FX_PAGE, 4 * FX_PAGE, 0));
	after = fx_counters(c.fd);
	ftest_assert_eq_u64(after.tlb_flushes - before.tlb_flushes, 1);
	ftest_assert_eq_u64(after.hw[8] - before.hw[8], 1); /* tlb_invalidations */
	/* A map where nothing was mapped adds entries only: no flush. */
	before = fx_counters(c.fd);
	fx_map(c.fd, c.vm, b, FX_VA(7), SZ);
	after = fx_counters(c.fd);
	ftest_assert_eq_u64(after.tlb_flushes - before.tlb_flushes, 0);
	ftest_assert_eq_u64(after.hw[8] - before.hw[8], 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	{
		uint8_t *expect = malloc(SZ);

		memcpy(expect, pa, SZ);
		memcpy(expect + 2 * FX_PAGE, pb + FX_PAGE, 4 * FX_PAGE);
		ftest_assert_eq_u64(pr[0], fx_fnv1a(expect, SZ));
		free(expect);
	}
	/* Whole VA to b. */
	fx_map(c.fd, c.vm, b, FX_VA(1), SZ);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	ftest_assert_eq_u64(pr[0], fx_fnv1a(pb, SZ));
	close(c.fd);
}

/* A write to an unmapped VA is a fault: the job's fence carries -EFAULT,
 * the queue reports the address, and the next job runs. */
static void test_fault_unmapped(void)
{
	struct ctx c = setup(0);
	uint32_t r = fx_bo(c.fd, FX_PAGE);
	uint64_t *pr = fx_mmap(c.fd, r, FX_PAGE);
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd bad = { 0 }, good = { 0 };

	fx_map(c.fd, c.vm, r, FX_VA(3), FX_PAGE);
	fx_write64(&bad, FX_VA(9) + 0x40, 1, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &bad), -EFAULT);
	st = fx_state(c.fd, c.q, DRM_FERRITE_QUEUE_STATE_CLEAR);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_FAULTED);
	ftest_assert_eq(st.error, 3); /* MMU_FAULT */
	ftest_assert_eq_u64(st.fault_addr, FX_VA(9) + 0x40);
	ftest_assert_eq(st.fault_status & 0xf, 1); /* translation */
	ftest_assert(st.fault_status & (1 << 4));   /* write */
	ftest_assert_eq(st.failed_jobs, 1);
	/* Cleared by the read above. */
	ftest_assert_eq(fx_state(c.fd, c.q, 0).state, DRM_FERRITE_QUEUE_STATE_OK);

	fx_write64(&good, FX_VA(3), 0x5555, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &good), 1);
	ftest_assert_eq_u64(pr[0], 0x5555);
	close(c.fd);
}

/* A read-only mapping cannot be written by the GPU. */
static void test_fault_readonly(void)
{
	struct ctx c = setup(0);
	uint32_t r = fx_bo(c.fd, FX_PAGE);
	uint64_t *pr = fx_mmap(c.fd, r, FX_PAGE);
	struct drm_ferrite_queue_get_state st;
	struct fx_cmd cmd = { 0 };

	pr[0] = 42;
	ftest_assert_ok(fx_map_flags(c.fd, c.vm, r, 0, FX_VA(3), FX_PAGE, DRM_FERRITE_VM_BIND_READONLY));
	fx_write64(&cmd, FX_VA(3), 7, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), -EFAULT);
	st = fx_state(c.fd, c.q, 0);
	ftest_assert_eq(st.state, DRM_FERRITE_QUEUE_STATE_FAULTED);
	ftest_assert_eq(st.fault_status & 0xf, 2); /* permission */
	ftest_assert_eq_u64(pr[0], 42);
	close(c.fd);
}

/* A job that never finishes times out, is reported, and the queue runs
 * the next job. */
static void test_hang_timeout(void)
{
	struct ctx c = setup(300);
	uint32_t r = fx_bo(c.fd, FX_PAGE);
	uint64_t *pr = fx_mmap(c.fd, r, FX_PAGE);
	struct drm_ferrite_counters before = fx_counters(c.fd);
	struct fx_cmd hang = { 0 }, good = { 0 };

	fx_map(c.fd, c.vm, r, FX_VA(3), FX_PAGE);
	fx_wait(&hang, FX_VA(3) + 8, 1); /* nobody writes it */
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &hang), -ETIMEDOUT);
	ftest_assert_eq(fx_state(c.fd, c.q, 0).state, DRM_FERRITE_QUEUE_STATE_TIMEDOUT);
	ftest_assert_eq_u64(fx_counters(c.fd).jobs_timedout - before.jobs_timedout, 1);
	fx_write64(&good, FX_VA(3), 99, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &good), 1);
	ftest_assert_eq_u64(pr[0], 99);
	close(c.fd);
}

/* A job on queue A that waits (syncobj) for a job on queue B runs after
 * it, even though B is held back by a WAIT on memory the CPU releases. */
static void test_syncobj_two_queues(void)
{
	struct ctx c = setup(0);
	uint32_t qb = fx_queue(c.fd, c.vm, 0);
	uint32_t m = fx_bo(c.fd, FX_PAGE), sa = fx_syncobj(c.fd), sb = fx_syncobj(c.fd);
	volatile uint64_t *pm = fx_mmap(c.fd, m, FX_PAGE);
	struct fx_cmd cb = { 0 }, ca = { 0 };
	struct drm_ferrite_sync_op sync[2] = {
		{ .flags = DRM_FERRITE_SYNC_WAIT, .handle = sb },
		{ .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = sa },
	};

	fx_map(c.fd, c.vm, m, FX_VA(3), FX_PAGE);
	/* B: wait for the CPU's go at +0, then write 77 at +8. */
	fx_wait(&cb, FX_VA(3), 1);
	fx_write64(&cb, FX_VA(3) + 8, 77, FX_W64_FLUSH);
	fx_cmdbuf(c.fd, c.vm, FX_VA(4), &cb);
	/* A: copy +8 to +16. */
	fx_copy(&ca, FX_VA(3) + 16, FX_VA(3) + 8, 8);
	fx_cmdbuf(c.fd, c.vm, FX_VA(5), &ca);

	ftest_assert_ok(fx_submit(c.fd, qb, FX_VA(4), cb.n * 4, sb));
	ftest_assert_ok(fx_submit_full(c.fd, c.q, FX_VA(5), ca.n * 4, sync, 2, NULL, 0));
	ftest_assert_eq(fx_syncobj_wait(c.fd, sa, 200), -ETIME);
	ftest_assert_eq_u64(pm[2], 0);
	pm[0] = 1;
	ftest_assert_ok(fx_syncobj_wait(c.fd, sa, 10000));
	ftest_assert_eq(fx_syncobj_status(c.fd, sb), 1);
	ftest_assert_eq_u64(pm[2], 77);
	close(c.fd);
}

/* Implicit sync: a job reading a BO waits for the job writing it, through
 * the BO's reservation object, without any sync object. */
static void test_implicit_sync(void)
{
	struct ctx c = setup(0);
	uint32_t qb = fx_queue(c.fd, c.vm, 0);
	uint32_t m = fx_bo(c.fd, FX_PAGE), g = fx_bo(c.fd, FX_PAGE), sa = fx_syncobj(c.fd);
	volatile uint64_t *pm = fx_mmap(c.fd, m, FX_PAGE), *pg = fx_mmap(c.fd, g, FX_PAGE);
	struct fx_cmd cb = { 0 }, ca = { 0 };
	struct drm_ferrite_bo_ref wr = { .handle = m, .flags = DRM_FERRITE_BO_REF_WRITE };
	struct drm_ferrite_bo_ref rd = { .handle = m };
	struct drm_ferrite_sync_op sig = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = sa };

	fx_map(c.fd, c.vm, m, FX_VA(3), FX_PAGE);
	fx_map(c.fd, c.vm, g, FX_VA(6), FX_PAGE);
	fx_wait(&cb, FX_VA(6), 1);
	fx_write64(&cb, FX_VA(3) + 8, 1234, 0);
	fx_cmdbuf(c.fd, c.vm, FX_VA(4), &cb);
	fx_copy(&ca, FX_VA(3) + 16, FX_VA(3) + 8, 8);
	fx_cmdbuf(c.fd, c.vm, FX_VA(5), &ca);

	ftest_assert_ok(fx_submit_full(c.fd, qb, FX_VA(4), cb.n * 4, NULL, 0, &wr, 1));
	ftest_assert_ok(fx_submit_full(c.fd, c.q, FX_VA(5), ca.n * 4, &sig, 1, &rd, 1));
	ftest_assert_eq(fx_syncobj_wait(c.fd, sa, 200), -ETIME);
	pg[0] = 1;
	ftest_assert_ok(fx_syncobj_wait(c.fd, sa, 10000));
	ftest_assert_eq_u64(pm[2], 1234);
	close(c.fd);
}

/* Timeline sync objects: a job signals a point, another waits for it. */
static void test_timeline(void)
{
	struct ctx c = setup(0);
	uint32_t m = fx_bo(c.fd, FX_PAGE), t = fx_syncobj(c.fd);
	volatile uint64_t *pm = fx_mmap(c.fd, m, FX_PAGE);
	struct fx_cmd cmd = { 0 };
	struct drm_ferrite_sync_op sig = {
		.flags = DRM_FERRITE_SYNC_SIGNAL | DRM_FERRITE_SYNC_TIMELINE, .handle = t, .point = 5,
	};
	struct drm_syncobj_timeline_wait w = {
		.handles = (uintptr_t)&t, .points = (uintptr_t)&(uint64_t){ 5 }, .count_handles = 1,
		.timeout_nsec = INT64_MAX,
	};
	uint64_t point = 0;
	struct drm_syncobj_timeline_array q = {
		.handles = (uintptr_t)&t, .points = (uintptr_t)&point, .count_handles = 1,
	};

	fx_map(c.fd, c.vm, m, FX_VA(3), FX_PAGE);
	fx_write64(&cmd, FX_VA(3), 5, 0);
	fx_cmdbuf(c.fd, c.vm, FX_VA(4), &cmd);
	ftest_assert_ok(fx_submit_full(c.fd, c.q, FX_VA(4), cmd.n * 4, &sig, 1, NULL, 0));
	ftest_assert_ok(ioctl(c.fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &w));
	ftest_assert_ok(ioctl(c.fd, DRM_IOCTL_SYNCOBJ_QUERY, &q));
	ftest_assert_eq_u64(point, 5);
	ftest_assert_eq_u64(pm[0], 5);
	close(c.fd);
}

/* Many small jobs wrap the ring; every fence signals, in order. */
static void test_many_jobs(void)
{
	struct ctx c = setup(0);
	uint32_t m = fx_bo(c.fd, FX_PAGE), so = fx_syncobj(c.fd);
	volatile uint64_t *pm = fx_mmap(c.fd, m, FX_PAGE);
	struct fx_cmd cmd = { 0 };
	struct drm_ferrite_bo_ref rw = { .handle = m, .flags = DRM_FERRITE_BO_REF_WRITE };
	struct drm_ferrite_sync_op sig = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so };
	int n = 2500;

	fx_map(c.fd, c.vm, m, FX_VA(3), FX_PAGE);
	fx_copy(&cmd, FX_VA(3) + 8, FX_VA(3), 8);
	fx_cmdbuf(c.fd, c.vm, FX_VA(4), &cmd);
	for (int i = 0; i < n; i++)
		ftest_assert_ok(fx_submit_full(c.fd, c.q, FX_VA(4), cmd.n * 4, &sig, 1, &rw, 1));
	ftest_assert_ok(fx_syncobj_wait(c.fd, so, 60000));
	ftest_assert_eq(fx_syncobj_status(c.fd, so), 1);
	ftest_assert_eq(fx_state(c.fd, c.q, 0).failed_jobs, 0);
	(void)pm;
	close(c.fd);
}

/* fdinfo reports the time the file's jobs ran (drm-engine-*), for
 * gputop and nvtop. */
static void test_fdinfo_engine(void)
{
	struct ctx c = setup(0);
	uint32_t m = fx_bo(c.fd, 1 << 20);
	struct fx_cmd cmd = { 0 };
	char path[64], buf[4096] = { 0 };
	unsigned long long ns = 0;
	char *k;
	int f;

	fx_map(c.fd, c.vm, m, FX_VA(3), 1 << 20);
	for (int i = 0; i < 8; i++)
		fx_fill(&cmd, FX_VA(3), 1 << 20, i);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", c.fd);
	f = open(path, O_RDONLY);
	ftest_assert(f >= 0);
	ftest_assert(read(f, buf, sizeof(buf) - 1) > 0);
	close(f);
	k = strstr(buf, "drm-engine-queue:");
	ftest_assert(k != NULL);
	ftest_assert(sscanf(k, "drm-engine-queue: %llu ns", &ns) == 1);
	ftest_assert(ns > 0);
	ftest_assert(strstr(buf, "drm-engine-capacity-queue:\t8") != NULL);
	close(c.fd);
}

/* A fault leaves a devcoredump naming the queue, the fault and the job. */
static void test_coredump(void)
{
	struct ctx c = setup(0);
	struct fx_cmd bad = { 0 };
	char want[64];
	bool found;

	fx_discard_coredumps();
	fx_write64(&bad, FX_VA(9) + 0x80, 1, 0);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &bad), -EFAULT);
	snprintf(want, sizeof(want), "fault_addr %#llx", (unsigned long long)(FX_VA(9) + 0x80));
	/* Written by a work item after the fence signalled (the signalling
	 * path does not allocate). */
	found = fx_find_coredump((const char *[]){ want, "cmd_va", "mappings:" }, 3);
	if (!found)
		ftest_fail("no devcoredump with \"%s\"", want);
	close(c.fd);
}

/* debugfs lists the VM's mappings and the BOs. */
static void test_debugfs(void)
{
	struct ctx c = setup(0);
	uint32_t bo = fx_bo(c.fd, 65536);
	static char buf[1 << 20];
	char want[80];
	DIR *d;
	struct dirent *e;
	int found = 0;

	fx_map(c.fd, c.vm, bo, FX_VA(1), 65536);
	snprintf(want, sizeof(want), "%#014llx-%#014llx", (unsigned long long)FX_VA(1),
		 (unsigned long long)FX_VA(1) + 65536);
	d = opendir("/sys/kernel/debug");
	if (!d)
		ftest_skip("no debugfs");
	while ((e = readdir(d))) {
		char path[512];

		if (strncmp(e->d_name, "ferrite-", 8))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/vms", e->d_name);
		if (fx_slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, want))
			found++;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/sched", e->d_name);
		ftest_assert(fx_slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "ring 7:"));
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/gem", e->d_name);
		ftest_assert(fx_slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "id size"));
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/slots", e->d_name);
		ftest_assert(fx_slurp(path, buf, sizeof(buf)) > 0 && strstr(buf, "evictions"));
	}
	closedir(d);
	if (found != 1)
		ftest_fail("mapping %s listed %d times", want, found);
	close(c.fd);
}

/* Bad input to SUBMIT and the queue ioctls. */
static void test_submit_bad(void)
{
	struct ctx c = setup(0);
	uint32_t so = fx_syncobj(c.fd);
	struct drm_ferrite_sync_op badflags = { .flags = 1 << 7, .handle = so };
	struct drm_ferrite_sync_op badpoint = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so, .point = 3 };
	struct drm_ferrite_sync_op nohandle = { .flags = DRM_FERRITE_SYNC_WAIT, .handle = 9999 };
	struct drm_ferrite_bo_ref badbo = { .handle = 9999 };
	struct drm_ferrite_bo_ref badref = { .handle = 0, .flags = 2 };
	struct drm_ferrite_submit s = { .queue_id = c.q, .cmd_va = FX_VA(4), .cmd_size = 16 };
	struct drm_ferrite_queue_create qc = { .vm_id = c.vm };
	struct drm_ferrite_queue_destroy qd = { 0 };
	struct drm_ferrite_vm_destroy vd = { .vm_id = c.vm };
	struct drm_ferrite_queue_get_state gs = { .queue_id = c.q, .flags = 2 };

	s.flags = 1;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.flags = 0;
	s.pad = 1;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.pad = 0;
	s.queue_id = 77;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), ENOENT);
	s.queue_id = c.q;
	s.cmd_size = 0;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.cmd_size = 6;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.cmd_size = 2 << 20;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.cmd_size = 16;
	s.cmd_va = ~0ull - 8;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.cmd_va = 0;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.cmd_va = FX_VA(4);
	ftest_assert_errno(fx_submit_full(c.fd, c.q, FX_VA(4), 16, &badflags, 1, NULL, 0), EINVAL);
	ftest_assert_errno(fx_submit_full(c.fd, c.q, FX_VA(4), 16, &badpoint, 1, NULL, 0), EINVAL);
	ftest_assert_errno(fx_submit_full(c.fd, c.q, FX_VA(4), 16, &nohandle, 1, NULL, 0), ENOENT);
	ftest_assert_errno(fx_submit_full(c.fd, c.q, FX_VA(4), 16, NULL, 0, &badbo, 1), ENOENT);
	ftest_assert_errno(fx_submit_full(c.fd, c.q, FX_VA(4), 16, NULL, 0, &badref, 1), EINVAL);
	s.syncs.count = 1u << 30;
	s.syncs.stride = 16;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.syncs.count = 1;
	s.syncs.stride = 0;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EINVAL);
	s.syncs.stride = 16;
	s.syncs.array = 8;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_SUBMIT, &s), EFAULT);

	qc.flags = 1u << 1;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &qc), EINVAL);
	qc.flags = 0;
	qc.timeout_ms = 3600 * 1000;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &qc), EINVAL);
	qc.timeout_ms = 0;
	qc.vm_id = 555;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &qc), ENOENT);
	qd.queue_id = 555;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &qd), ENOENT);
	qd.queue_id = c.q;
	qd.pad = 1;
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &qd), EINVAL);
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_GET_STATE, &gs), EINVAL);
	/* A VM with a queue cannot go; once the queue is gone it can. */
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_VM_DESTROY, &vd), EBUSY);
	qd.pad = 0;
	ftest_assert_ok(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &qd));
	ftest_assert_errno(ioctl(c.fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &qd), ENOENT);
	ftest_assert_ok(ioctl(c.fd, DRM_IOCTL_FERRITE_VM_DESTROY, &vd));
	close(c.fd);
}

FTEST_MAIN(
	{ "fill-copy-checksum", test_fill_copy_checksum, "GPU fill/copy/checksum through the MMU match the CPU" },
	{ "rebind", test_rebind, "a rebound VA is seen by the GPU (one exact TLB flush per bind)" },
	{ "fault-unmapped", test_fault_unmapped, "a write to an unmapped VA faults, is recorded, the queue recovers" },
	{ "fault-readonly", test_fault_readonly, "a write to a read-only mapping is a permission fault" },
	{ "hang-timeout", test_hang_timeout, "a hung job times out and later jobs run" },
	{ "syncobj-two-queues", test_syncobj_two_queues, "a syncobj orders jobs across two queues" },
	{ "implicit-sync", test_implicit_sync, "a reader waits for a writer through the BO's dma_resv" },
	{ "timeline", test_timeline, "a job signals a timeline point" },
	{ "many-jobs", test_many_jobs, "2500 jobs wrap the ring and all signal" },
	{ "coredump", test_coredump, "a fault leaves a devcoredump of the queue, fault and job" },
	{ "debugfs", test_debugfs, "debugfs lists BOs, VMs with their mappings, queues and slots" },
	{ "fdinfo-engine", test_fdinfo_engine, "fdinfo drm-engine-queue counts job time" },
	{ "submit-bad", test_submit_bad, "SUBMIT and queue ioctls reject bad input" },
)
