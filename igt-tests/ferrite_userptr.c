// SPDX-License-Identifier: MIT
/*
 * ferrite_userptr: a process's own memory at GPU VA == CPU VA
 * (DRM_FERRITE_VM_BIND_USERPTR). The kernel follows the process's page
 * tables through an mmu interval notifier: after munmap, MADV_DONTNEED or
 * fork's copy-on-write the GPU gets the current pages, or faults, never the
 * old ones; read-only memory stays read-only; only the VM's own process may
 * bind its memory; and no kernel mapping of user memory is ever made.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS
#define CMD_VA FX_VA(4)

static int bind_user(int fd, uint32_t vm, void *p, uint64_t size, uint32_t flags)
{
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_MAP,
		.flags = DRM_FERRITE_VM_BIND_USERPTR | flags,
		.va = (uintptr_t)p,
		.size = size,
	};

	return fx_bind_ops(fd, vm, &op, 1, NULL, 0);
}

static void *anon(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ftest_assert(p != MAP_FAILED);
	return p;
}

/* Run c on a fresh queue of the process VM; the fence status. */
static int run(int fd, const struct fx_cmd *c)
{
	uint32_t q = fx_queue(fd, PVM, 0);
	struct drm_ferrite_queue_destroy d = { .queue_id = q };
	int st = fx_run(fd, PVM, q, CMD_VA, c);

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &d));
	return st;
}

static uint64_t kmap_user(int fd)
{
	return fx_counters(fd).kmap_user_bytes;
}

/* The GPU fills memory from malloc() that the CPU then reads, and hashes
 * what the CPU wrote: both directions, at the same addresses. */
static void test_gpu_fills_malloc(void)
{
	const uint64_t size = 1 << 20;
	int fd = fdev_open_or_skip(0);
	uint32_t *p, sum_bo;
	volatile uint64_t *sum;
	struct fx_cmd c = { 0 };
	void *mem;

	ftest_assert_eq(posix_memalign(&mem, FX_PAGE, size), 0);
	p = mem;
	for (uint64_t i = size / 8; i < size / 4; i++)
		p[i] = (uint32_t)(i * 2654435761u);
	ftest_assert_ok(bind_user(fd, PVM, p, size, 0));
	sum_bo = fx_bo(fd, FX_PAGE);
	sum = fx_mmap(fd, sum_bo, FX_PAGE);
	ftest_assert_ok(fx_map_flags(fd, PVM, sum_bo, 0, FX_VA(2), FX_PAGE, 0));
	fx_fill(&c, (uintptr_t)p, size / 2, 0xc0ffee00);
	fx_checksum(&c, FX_VA(2), (uintptr_t)p + size / 2, size / 2);
	fx_write64(&c, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	for (uint64_t i = 0; i < size / 8; i++)
		ftest_assert_eq_u64(p[i], 0xc0ffee00);
	ftest_assert_eq_u64(sum[0], fx_fnv1a(p + size / 8, size / 2));
	ftest_assert_eq_u64(kmap_user(fd), 0);
	free(mem);
	close(fd);
}

/* File-backed memory (a memfd, shared): what the GPU writes is in the
 * file. */
static void test_file_backed(void)
{
	int fd = fdev_open_or_skip(0), mfd = memfd_create("ferrite-userptr", 0);
	struct fx_cmd c = { 0 };
	uint64_t v = 0;
	uint64_t *p;

	ftest_assert(mfd >= 0);
	ftest_assert_ok(ftruncate(mfd, 4 * FX_PAGE));
	p = mmap(NULL, 4 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ftest_assert(p != MAP_FAILED);
	ftest_assert_ok(bind_user(fd, PVM, p, 4 * FX_PAGE, 0));
	fx_write64(&c, (uintptr_t)p + 3 * FX_PAGE + 16, 0xf11e, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq(pread(mfd, &v, 8, 3 * FX_PAGE + 16), 8);
	ftest_assert_eq_u64(v, 0xf11e);
	munmap(p, 4 * FX_PAGE);
	close(mfd);
	close(fd);
}

/* After munmap, a job touching the range faults: the GPU never reaches
 * the pages the process gave back. */
static void test_munmap_faults(void)
{
	int fd = fdev_open_or_skip(0);
	uint64_t *p = anon(2 * FX_PAGE);
	struct fx_cmd c = { 0 }, w = { 0 };
	uint32_t q;

	p[0] = 1;
	ftest_assert_ok(bind_user(fd, PVM, p, 2 * FX_PAGE, 0));
	fx_write64(&c, (uintptr_t)p, 2, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq_u64(p[0], 2);
	ftest_assert_ok(munmap(p, 2 * FX_PAGE));
	q = fx_queue(fd, PVM, 0);
	fx_write64(&w, (uintptr_t)p + 8, 3, FX_W64_FLUSH);
	ftest_assert_eq(fx_run(fd, PVM, q, CMD_VA, &w), -EFAULT);
	ftest_assert_eq_u64(fx_state(fd, q, 0).fault_addr, (uintptr_t)p + 8);
	close(fd);
}

/* MADV_DONTNEED drops the pages: the next job writes the new
 * (zero-filled) page the CPU sees, not the dropped one. */
static void test_dontneed(void)
{
	int fd = fdev_open_or_skip(0);
	volatile uint64_t *p = anon(FX_PAGE);
	struct fx_cmd c = { 0 };

	p[0] = 7;
	p[1] = 7;
	ftest_assert_ok(bind_user(fd, PVM, (void *)p, FX_PAGE, 0));
	ftest_assert_ok(madvise((void *)p, FX_PAGE, MADV_DONTNEED));
	ftest_assert_eq_u64(p[1], 0);
	fx_write64(&c, (uintptr_t)p, 0xd0, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq_u64(p[0], 0xd0);
	close(fd);
}

/* After fork, the parent's write breaks copy-on-write: the GPU, working
 * for the parent, writes the parent's new page, and the child's memory
 * keeps what it had. */
static void test_fork_cow(void)
{
	int fd = fdev_open_or_skip(0), go[2], done[2];
	volatile uint64_t *p = anon(FX_PAGE);
	struct fx_cmd c = { 0 };
	char b = 0;
	pid_t pid;

	p[0] = 0xa;
	ftest_assert_ok(bind_user(fd, PVM, (void *)p, FX_PAGE, 0));
	ftest_assert_ok(pipe(go));
	ftest_assert_ok(pipe(done));
	pid = fork();
	if (pid == 0) {
		if (read(go[0], &b, 1) != 1)
			_exit(1);
		/* The child's copy: untouched by the parent's job. */
		if (p[0] != 0xa || p[1] != 0 || p[2] != 0)
			_exit(2);
		_exit(0);
	}
	ftest_assert(pid > 0);
	p[1] = 0xc;	/* copy-on-write: the parent gets a new page */
	fx_write64(&c, (uintptr_t)p + 16, 0xd, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq_u64(p[0], 0xa);
	ftest_assert_eq_u64(p[1], 0xc);
	ftest_assert_eq_u64(p[2], 0xd);
	ftest_assert_eq(write(go[1], &b, 1), 1);
	fx_reap(pid);
	close(fd);
}

/* Read-only memory: a writable bind is refused, a read-only bind works
 * for reads and faults on GPU writes. */
static void test_read_only(void)
{
	int fd = fdev_open_or_skip(0), mfd = memfd_create("ferrite-ro", 0);
	const uint64_t v = 0x0123456789abcdefull;
	uint32_t bo = fx_bo(fd, FX_PAGE);
	volatile uint64_t *out = fx_mmap(fd, bo, FX_PAGE);
	struct fx_cmd r = { 0 }, w = { 0 };
	const uint64_t *p;

	ftest_assert(mfd >= 0);
	ftest_assert_eq(pwrite(mfd, &v, 8, 0), 8);
	ftest_assert_ok(ftruncate(mfd, FX_PAGE));
	p = mmap(NULL, FX_PAGE, PROT_READ, MAP_SHARED, mfd, 0);
	ftest_assert(p != MAP_FAILED);
	ftest_assert_eq(bind_user(fd, PVM, (void *)p, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EFAULT);
	ftest_assert_ok(bind_user(fd, PVM, (void *)p, FX_PAGE, DRM_FERRITE_VM_BIND_READONLY));
	ftest_assert_ok(fx_map_flags(fd, PVM, bo, 0, FX_VA(2), FX_PAGE, 0));
	fx_copy(&r, FX_VA(2), (uintptr_t)p, 8);
	fx_write64(&r, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &r), 1);
	ftest_assert_eq_u64(out[0], v);
	fx_write64(&w, (uintptr_t)p, 0xbad, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &w), -EFAULT);
	ftest_assert_eq_u64(p[0], v);
	close(mfd);
	close(fd);
}

/* Only the VM's own process binds its memory there: a child sharing the
 * file (as one that received it over a socket would) cannot put its memory
 * into the parent's VMs, but can into its own process VM. */
static void test_foreign_mm(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t vm = fx_vm(fd);
	pid_t pid = fork();

	if (pid == 0) {
		void *p = anon(FX_PAGE);

		if (bind_user(fd, vm, p, FX_PAGE, 0) != -1 || errno != EPERM)
			_exit(1);
		if (bind_user(fd, PVM, p, FX_PAGE, 0))
			_exit(2);
		_exit(0);
	}
	fx_reap(pid);
	/* The parent still can. */
	ftest_assert_ok(bind_user(fd, vm, anon(FX_PAGE), FX_PAGE, 0));
	close(fd);
}

static void test_bad(void)
{
	int fd = fdev_open_or_skip(0);
	uint8_t *p = anon(8 * FX_PAGE), *hole = anon(FX_PAGE);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_MAP, .flags = DRM_FERRITE_VM_BIND_USERPTR,
		.va = (uintptr_t)p, .size = FX_PAGE,
	};

	munmap(hole, FX_PAGE);
	op.handle = bo;
	ftest_assert_eq(fx_bind_ops(fd, PVM, &op, 1, NULL, 0), -1);
	ftest_assert_eq(errno, EINVAL);
	op.handle = 0;
	op.bo_offset = FX_PAGE;
	ftest_assert_eq(fx_bind_ops(fd, PVM, &op, 1, NULL, 0), -1);
	ftest_assert_eq(errno, EINVAL);
	ftest_assert_eq(bind_user(fd, PVM, p + 8, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EINVAL);
	ftest_assert_eq(bind_user(fd, PVM, hole, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EFAULT);
	/* Overlaps: with a BO mapping, with another userptr. */
	ftest_assert_ok(fx_map_flags(fd, PVM, bo, 0, (uintptr_t)p + 6 * FX_PAGE, FX_PAGE, 0));
	ftest_assert_eq(bind_user(fd, PVM, p + 4 * FX_PAGE, 4 * FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	ftest_assert_ok(bind_user(fd, PVM, p, 4 * FX_PAGE, 0));
	ftest_assert_eq(bind_user(fd, PVM, p + 2 * FX_PAGE, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	ftest_assert_eq(fx_map_flags(fd, PVM, bo, 0, (uintptr_t)p + FX_PAGE, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	/* An UNMAP takes whole userptrs. */
	ftest_assert_eq(fx_unmap(fd, PVM, (uintptr_t)p, FX_PAGE), -1);
	ftest_assert_eq(errno, EINVAL);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, 4 * FX_PAGE));
	ftest_assert_ok(bind_user(fd, PVM, p + FX_PAGE, FX_PAGE, 0));
	close(fd);
}

FTEST_MAIN(
	{ "gpu-fills-malloc", test_gpu_fills_malloc, "the GPU fills and hashes malloc'd memory at its CPU address; no kernel mapping" },
	{ "file-backed", test_file_backed, "a shared memfd mapping: GPU writes land in the file" },
	{ "munmap-faults", test_munmap_faults, "after munmap a job touching the range faults" },
	{ "dontneed", test_dontneed, "after MADV_DONTNEED the GPU writes the new page the CPU sees" },
	{ "fork-cow", test_fork_cow, "after fork and a copy-on-write, parent (GPU) and child each see their own data" },
	{ "read-only", test_read_only, "read-only memory: writable bind refused, GPU reads work, GPU writes fault" },
	{ "foreign-mm", test_foreign_mm, "another process cannot bind its memory into a VM that is not its own" },
	{ "bad", test_bad, "bad userptr binds: clear errnos" },
)
