// SPDX-License-Identifier: MIT
/*
 * ferrite_userptr: a process's own memory at GPU VA == CPU VA
 * (DRM_FERRITE_VM_BIND_USERPTR). The kernel follows the process's page
 * tables through an mmu interval notifier: after munmap, MADV_DONTNEED or
 * fork's copy-on-write the GPU gets the current pages, or faults, never the
 * old ones; read-only memory stays read-only; only the VM's own process may
 * bind its memory; and no kernel mapping of user memory is ever made.
 *
 * The read-only subtests that bind the shared zero page and file pages
 * (readonly-zero-page, readonly-file) run on every GPU of the guest (GPU 1
 * has 32-bit DMA and 64 KiB segments) and read the GPU's results only
 * through GEM_SYNC, so they also hold in a guest booted with swiotlb=force,
 * where every userptr page is bounced: nothing the device saw may ever be
 * copied back into memory that the process could only read.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/prctl.h>
#include <malloc.h>
#include <sys/wait.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS
#define CMD_VA FX_VA(4)

static void *anon(uint64_t size)
{
	void *p = fx_user_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

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

/* The u64 the GPU wrote at the start of BO bo (mapped at p), read as the
 * driver documentation requires: between GEM_SYNC BEGIN(READ) and END. */
static uint64_t bo_read64(int fd, uint32_t bo, const volatile uint64_t *p)
{
	uint64_t v;

	ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
	v = p[0];
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
	return v;
}

/*
 * The GPU the running subtest uses: every subtest runs on each GPU of the
 * guest in turn, so the 32-bit, 64 KiB-segment GPU 1 sees every case too
 * (in the 6 GiB boot, through bounce buffers).
 */
static int cur_gpu;

static void each_gpu(void (*fn)(void))
{
	int fd = fdev_open_or_skip(0);

	for (cur_gpu = 0; fd >= 0; fd = fdev_open_render(++cur_gpu)) {
		close(fd);
		fn();
	}
}

/* The GPU fills memory from malloc() that the CPU then reads, and hashes
 * what the CPU wrote: both directions, at the same addresses. */
static void gpu_fills_malloc_on(void)
{
	const uint64_t size = 1 << 20;
	int fd = fdev_open_or_skip(cur_gpu);
	uint32_t *p, sum_bo;
	volatile uint64_t *sum;
	struct fx_cmd c = { 0 };
	void *mem;

	/* From malloc's heap, not from a mapping of its own: those lie above
	 * the GPU's user range on arm64 with 48-bit addresses (see
	 * fx_user_mmap()), the heap next to the program. */
	ftest_assert_eq(mallopt(M_MMAP_THRESHOLD, 32 << 20), 1);
	ftest_assert_eq(posix_memalign(&mem, FX_PAGE, size), 0);
	ftest_assert((uintptr_t)mem + size <= FX_USER_VA_END);
	p = mem;
	for (uint64_t i = size / 8; i < size / 4; i++)
		p[i] = (uint32_t)(i * 2654435761u);
	ftest_assert_ok(fx_bind_user(fd, PVM, p, size, 0));
	sum_bo = fx_bo(fd, FX_PAGE);
	sum = fx_mmap(fd, sum_bo, FX_PAGE);
	ftest_assert_ok(fx_map_flags(fd, PVM, sum_bo, 0, FX_VA(2), FX_PAGE, 0));
	fx_fill(&c, (uintptr_t)p, size / 2, 0xc0ffee00);
	fx_checksum(&c, FX_VA(2), (uintptr_t)p + size / 2, size / 2);
	fx_write64(&c, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	for (uint64_t i = 0; i < size / 8; i++)
		ftest_assert_eq_u64(p[i], 0xc0ffee00);
	ftest_assert_eq_u64(bo_read64(fd, sum_bo, sum), fx_fnv1a(p + size / 8, size / 2));
	ftest_assert_eq_u64(kmap_user(fd), 0);
	free(mem);
	close(fd);
}

static void test_gpu_fills_malloc(void)
{
	each_gpu(gpu_fills_malloc_on);
}

/*
 * What the CPU writes after the GPU's last job survives the unbind: the
 * pages are the CPU's once that job's fence has signalled, and the DMA
 * unmap must not copy the device's view (a bounce buffer under
 * swiotlb=force) back over them.
 */
static void cpu_writes_survive_unbind_on(void)
{
	const uint64_t size = 64 * 1024;
	int fd = fdev_open_or_skip(cur_gpu);
	uint32_t *p = anon(size);
	struct fx_cmd c = { 0 };

	ftest_assert_ok(fx_bind_user(fd, PVM, p, size, 0));
	fx_fill(&c, (uintptr_t)p, size, 0x6e0d0e00);
	ftest_assert_eq(run(fd, &c), 1);
	for (uint64_t i = 0; i < size / 4; i++)
		ftest_assert_eq_u64(p[i], 0x6e0d0e00);
	for (uint64_t i = 0; i < size / 4; i++)
		p[i] = (uint32_t)(i ^ 0xc0de);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, size));
	for (uint64_t i = 0; i < size / 4; i++)
		ftest_assert_eq_u64(p[i], i ^ 0xc0de);
	ftest_assert_ok(munmap(p, size));
	close(fd);
}

static void test_cpu_writes_survive_unbind(void)
{
	each_gpu(cpu_writes_survive_unbind_on);
}

/*
 * A transparent huge page: 2 MiB of physically contiguous memory, which
 * must still be split into segments the DMA layer can map (a bounce
 * buffer holds at most 256 KiB under swiotlb=force) and the device takes.
 */
static void huge_page_on(void)
{
	const uint64_t huge = 2 << 20;
	int fd = fdev_open_or_skip(cur_gpu);
	uint8_t *raw = fx_user_mmap(2 * huge, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *p;
	struct fx_cmd c = { 0 };

	ftest_assert(raw != MAP_FAILED);
	p = (uint32_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	/* Best effort: without a huge page the pages are merely many. */
	madvise(p, huge, MADV_HUGEPAGE);
	memset(p, 0x5a, huge);
	ftest_assert_ok(fx_bind_user(fd, PVM, p, huge, 0));
	fx_fill(&c, (uintptr_t)p, huge, 0x2b1d0e00);
	ftest_assert_eq(run(fd, &c), 1);
	for (uint64_t i = 0; i < huge / 4; i++)
		ftest_assert_eq_u64(p[i], 0x2b1d0e00);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, huge));
	ftest_assert_ok(munmap(raw, 2 * huge));
	close(fd);
}

static void test_huge_page(void)
{
	each_gpu(huge_page_on);
}

/* File-backed memory (a memfd, shared): what the GPU writes is in the
 * file. */
static void file_backed_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu), mfd = memfd_create("ferrite-userptr", 0);
	struct fx_cmd c = { 0 };
	uint64_t v = 0;
	uint64_t *p;

	ftest_assert(mfd >= 0);
	ftest_assert_ok(ftruncate(mfd, 4 * FX_PAGE));
	p = fx_user_mmap(4 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ftest_assert(p != MAP_FAILED);
	ftest_assert_ok(fx_bind_user(fd, PVM, p, 4 * FX_PAGE, 0));
	fx_write64(&c, (uintptr_t)p + 3 * FX_PAGE + 16, 0xf11e, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq(pread(mfd, &v, 8, 3 * FX_PAGE + 16), 8);
	ftest_assert_eq_u64(v, 0xf11e);
	munmap(p, 4 * FX_PAGE);
	close(mfd);
	close(fd);
}

static void test_file_backed(void)
{
	each_gpu(file_backed_on);
}

/* After munmap, a job touching the range faults: the GPU never reaches
 * the pages the process gave back. */
static void munmap_faults_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu);
	uint64_t *p = anon(2 * FX_PAGE);
	struct fx_cmd c = { 0 }, w = { 0 };
	uint32_t q;

	p[0] = 1;
	ftest_assert_ok(fx_bind_user(fd, PVM, p, 2 * FX_PAGE, 0));
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

static void test_munmap_faults(void)
{
	each_gpu(munmap_faults_on);
}

/* MADV_DONTNEED drops the pages: the next job writes the new
 * (zero-filled) page the CPU sees, not the dropped one. */
static void dontneed_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu);
	volatile uint64_t *p = anon(FX_PAGE);
	struct fx_cmd c = { 0 };

	p[0] = 7;
	p[1] = 7;
	ftest_assert_ok(fx_bind_user(fd, PVM, (void *)p, FX_PAGE, 0));
	ftest_assert_ok(madvise((void *)p, FX_PAGE, MADV_DONTNEED));
	ftest_assert_eq_u64(p[1], 0);
	fx_write64(&c, (uintptr_t)p, 0xd0, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq_u64(p[0], 0xd0);
	close(fd);
}

static void test_dontneed(void)
{
	each_gpu(dontneed_on);
}

/* After fork, the parent's write breaks copy-on-write: the GPU, working
 * for the parent, writes the parent's new page, and the child's memory
 * keeps what it had. */
static void fork_cow_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu), go[2], done[2];
	volatile uint64_t *p = anon(FX_PAGE);
	struct fx_cmd c = { 0 };
	char b = 0;
	pid_t pid;

	p[0] = 0xa;
	ftest_assert_ok(fx_bind_user(fd, PVM, (void *)p, FX_PAGE, 0));
	ftest_assert_ok(pipe(go));
	ftest_assert_ok(pipe(done));
	pid = fork();
	if (pid == 0) {
		/* Die with the parent: a parent that failed never writes the pipe. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
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

static void test_fork_cow(void)
{
	each_gpu(fork_cow_on);
}

/* Read-only memory: a writable bind is refused, a read-only bind works
 * for reads and faults on GPU writes. */
static void read_only_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu), mfd = memfd_create("ferrite-ro", 0);
	const uint64_t v = 0x0123456789abcdefull;
	uint32_t bo = fx_bo(fd, FX_PAGE);
	volatile uint64_t *out = fx_mmap(fd, bo, FX_PAGE);
	struct fx_cmd r = { 0 }, w = { 0 };
	const uint64_t *p;

	ftest_assert(mfd >= 0);
	ftest_assert_eq(pwrite(mfd, &v, 8, 0), 8);
	ftest_assert_ok(ftruncate(mfd, FX_PAGE));
	p = fx_user_mmap(FX_PAGE, PROT_READ, MAP_SHARED, mfd, 0);
	ftest_assert(p != MAP_FAILED);
	ftest_assert_eq(fx_bind_user(fd, PVM, (void *)p, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EFAULT);
	ftest_assert_ok(fx_bind_user(fd, PVM, (void *)p, FX_PAGE, DRM_FERRITE_VM_BIND_READONLY));
	ftest_assert_ok(fx_map_flags(fd, PVM, bo, 0, FX_VA(2), FX_PAGE, 0));
	fx_copy(&r, FX_VA(2), (uintptr_t)p, 8);
	fx_write64(&r, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &r), 1);
	ftest_assert_eq_u64(bo_read64(fd, bo, out), v);
	fx_write64(&w, (uintptr_t)p, 0xbad, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &w), -EFAULT);
	ftest_assert_eq_u64(p[0], v);
	close(mfd);
	close(fd);
}

static void test_read_only(void)
{
	each_gpu(read_only_on);
}

/* Only the VM's own process binds its memory there: a child sharing the
 * file (as one that received it over a socket would) cannot put its memory
 * into the parent's VMs, but can into its own process VM. */
static void foreign_mm_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu);
	uint32_t vm = fx_vm(fd);
	pid_t pid = fork();

	if (pid == 0) {
		void *p = anon(FX_PAGE);

		if (fx_bind_user(fd, vm, p, FX_PAGE, 0) != -1 || errno != EPERM)
			_exit(1);
		if (fx_bind_user(fd, PVM, p, FX_PAGE, 0))
			_exit(2);
		_exit(0);
	}
	fx_reap(pid);
	/* The parent still can. */
	ftest_assert_ok(fx_bind_user(fd, vm, anon(FX_PAGE), FX_PAGE, 0));
	close(fd);
}

static void test_foreign_mm(void)
{
	each_gpu(foreign_mm_on);
}

static void bad_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu);
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
	ftest_assert_eq(fx_bind_user(fd, PVM, p + 8, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EINVAL);
	ftest_assert_eq(fx_bind_user(fd, PVM, hole, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EFAULT);
	/* Overlaps: with a BO mapping, with another userptr. */
	ftest_assert_ok(fx_map_flags(fd, PVM, bo, 0, (uintptr_t)p + 6 * FX_PAGE, FX_PAGE, 0));
	ftest_assert_eq(fx_bind_user(fd, PVM, p + 4 * FX_PAGE, 4 * FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	ftest_assert_ok(fx_bind_user(fd, PVM, p, 4 * FX_PAGE, 0));
	ftest_assert_eq(fx_bind_user(fd, PVM, p + 2 * FX_PAGE, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	ftest_assert_eq(fx_map_flags(fd, PVM, bo, 0, (uintptr_t)p + FX_PAGE, FX_PAGE, 0), -1);
	ftest_assert_eq(errno, EEXIST);
	/* An UNMAP takes whole userptrs. */
	ftest_assert_eq(fx_unmap(fd, PVM, (uintptr_t)p, FX_PAGE), -1);
	ftest_assert_eq(errno, EINVAL);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, 4 * FX_PAGE));
	ftest_assert_ok(fx_bind_user(fd, PVM, p + FX_PAGE, FX_PAGE, 0));
	close(fd);
}

static void test_bad(void)
{
	each_gpu(bad_on);
}

/*
 * A userptr is taken in whole CPU pages (bind_alignment): a range that
 * starts or ends inside a CPU page fails with EINVAL, even where it is
 * aligned to the 4 KiB GPU page (a 16 KiB kernel: an address 4096 into a
 * CPU page, a size of one or five GPU pages). On a 4 KiB kernel, where
 * the two pages are one, half a page stands in for the GPU page. A
 * CPU-page aligned range binds, and the GPU writes every GPU page of it.
 */
static void cpu_page_alignment_on(void)
{
	int fd = fdev_open_or_skip(cur_gpu);
	const uint64_t page = FX_PAGE;
	const uint64_t sub = page > FX_GPU_PAGE ? FX_GPU_PAGE : page / 2;
	struct drm_ferrite_mmu_info m = { 0 };
	struct drm_ferrite_dev_query dq = {
		.type = DRM_FERRITE_DEV_QUERY_MMU, .size = sizeof(m), .pointer = (uintptr_t)&m,
	};
	volatile uint64_t *p = anon(4 * page);
	uint8_t *b = (uint8_t *)p;
	struct fx_cmd c = { 0 };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &dq));
	ftest_assert_eq(m.bind_alignment, page);
	/* Misaligned start, size or both: EINVAL before the memory is looked
	 * at (the pages exist and are writable, so EFAULT is not the answer). */
	p[0] = 1;
	ftest_assert_errno(fx_bind_user(fd, PVM, b + sub, page, 0), EINVAL);
	ftest_assert_errno(fx_bind_user(fd, PVM, b + sub, page - sub, 0), EINVAL);
	ftest_assert_errno(fx_bind_user(fd, PVM, b, sub, 0), EINVAL);
	ftest_assert_errno(fx_bind_user(fd, PVM, b, page + sub, 0), EINVAL);
	ftest_assert_errno(fx_bind_user(fd, PVM, b + page + sub, 2 * page,
					DRM_FERRITE_VM_BIND_READONLY), EINVAL);
	/* Nothing was bound: an aligned range over all of them binds. */
	ftest_assert_ok(fx_bind_user(fd, PVM, b + page, 2 * page, 0));
	for (uint64_t off = 0; off < 2 * page; off += FX_GPU_PAGE)
		fx_write64(&c, (uintptr_t)b + page + off + 8, 0xa119e000 + off, 0);
	fx_write64(&c, (uintptr_t)b + page, 0xd0e, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &c), 1);
	ftest_assert_eq_u64(p[page / 8], 0xd0e);
	for (uint64_t off = 0; off < 2 * page; off += FX_GPU_PAGE)
		ftest_assert_eq_u64(p[(page + off + 8) / 8], 0xa119e000 + off);
	/* An UNMAP of it in GPU pages is misaligned too; in CPU pages it goes. */
	if (page > FX_GPU_PAGE)
		ftest_assert_errno(fx_unmap(fd, PVM, (uintptr_t)b + page, 2 * page - FX_GPU_PAGE),
				   EINVAL);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)b + page, 2 * page));
	ftest_assert_ok(munmap((void *)p, 4 * page));
	close(fd);
}

static void test_cpu_page_alignment(void)
{
	each_gpu(cpu_page_alignment_on);
}

/* Run fn on GPU 0 and then on every other GPU of the guest. */
static void on_every_gpu(void (*fn)(int fd))
{
	int fd = fdev_open_or_skip(0);

	for (int i = 1; fd >= 0; i++) {
		fn(fd);
		close(fd);
		fd = fdev_open_render(i);
	}
}

/* Fail unless the size bytes at p are all zero, naming the first that is
 * not. */
static void assert_zero(const volatile uint8_t *p, uint64_t size, const char *what)
{
	for (uint64_t i = 0; i < size; i++)
		if (p[i])
			ftest_fail("%s: byte %#llx is %#x, expected 0 (the shared zero page was written)",
				   what, (unsigned long long)i, p[i]);
}

/* Fresh anonymous memory reads as zeros: read-only (the zero page itself)
 * and private read-write before the first write (the zero page too). */
static void assert_fresh_anon_zero(uint64_t size)
{
	volatile uint8_t *p = fx_user_mmap(size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ftest_assert(p != MAP_FAILED);
	assert_zero(p, size, "fresh read-only anonymous memory");
	ftest_assert_ok(munmap((void *)p, size));
	p = anon(size);
	assert_zero(p, size, "fresh private anonymous memory");
	ftest_assert_ok(munmap((void *)p, size));
}

static void zero_page_on(int fd)
{
	const uint64_t size = 2 * FX_PAGE;
	uint8_t *zeros = calloc(1, size);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	const volatile uint64_t *out = fx_mmap(fd, bo, FX_PAGE);
	struct fx_cmd r = { 0 }, w = { 0 };
	volatile uint8_t *p;

	p = fx_user_mmap(size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ftest_assert(p != MAP_FAILED);
	/* A read fault on never-written anonymous memory maps the shared
	 * zero page: both pages are that one page now. */
	for (uint64_t i = 0; i < size; i += FX_PAGE)
		ftest_assert_eq(p[i], 0);
	ftest_assert_errno(fx_bind_user(fd, PVM, (void *)p, size, 0), EFAULT);
	ftest_assert_ok(fx_bind_user(fd, PVM, (void *)p, size, DRM_FERRITE_VM_BIND_READONLY));
	fx_map(fd, PVM, bo, FX_VA(2), FX_PAGE);
	/* The GPU reads it: zeros. */
	fx_checksum(&r, FX_VA(2), (uintptr_t)p, size);
	fx_write64(&r, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &r), 1);
	ftest_assert_eq_u64(bo_read64(fd, bo, out), fx_fnv1a(zeros, size));
	/* A GPU write to it faults, and the zero page stays zero. */
	fx_write64(&w, (uintptr_t)p + FX_PAGE + 64, 0xbad, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &w), -EFAULT);
	assert_zero(p, size, "the bound zero-page range");
	/* Unbind (the DMA unmap must not write into the zero page) and give
	 * the memory back. */
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, size));
	ftest_assert_ok(munmap((void *)p, size));
	assert_fresh_anon_zero(size);
	ftest_assert_eq_u64(kmap_user(fd), 0);
	munmap((void *)out, FX_PAGE);
	free(zeros);
}

/* The shared zero page bound read-only (two CPU pages of PROT_READ
 * anonymous memory, read once): the GPU reads zeros, its writes fault, and after the
 * unbind fresh anonymous memory still reads zeros. */
static void test_readonly_zero_page(void)
{
	on_every_gpu(zero_page_on);
}

/* Longer than GPU 1's 64 KiB DMA segments. */
#define RO_FILE_SIZE (256 * 1024)

static uint8_t file_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 12) * 13 + 1);
}

/* Read all of the file rfd with read(2) and compare it with want. */
static void assert_file_is(int rfd, const uint8_t *want, const char *what)
{
	static uint8_t got[RO_FILE_SIZE];
	size_t n = 0;

	ftest_assert_eq(lseek(rfd, 0, SEEK_SET), 0);
	while (n < RO_FILE_SIZE) {
		ssize_t k = read(rfd, got + n, RO_FILE_SIZE - n);

		if (k <= 0)
			ftest_fail("%s: read(2) returned %zd at %zu: %s", what, k, n, strerror(errno));
		n += k;
	}
	for (size_t i = 0; i < RO_FILE_SIZE; i++)
		if (got[i] != want[i])
			ftest_fail("%s: file byte %#zx is %#x, expected %#x", what, i, got[i], want[i]);
}

/* Map the read-only file rfd with `flags` (MAP_SHARED or MAP_PRIVATE),
 * PROT_READ, and bind it read-only. */
static uint8_t *map_ro_file(int fd, int rfd, int flags)
{
	uint8_t *p = fx_user_mmap(RO_FILE_SIZE, PROT_READ, flags, rfd, 0);

	ftest_assert(p != MAP_FAILED);
	ftest_assert_ok(fx_bind_user(fd, PVM, p, RO_FILE_SIZE, DRM_FERRITE_VM_BIND_READONLY));
	return p;
}

static void ro_file_round(int fd, int flags)
{
	static uint8_t want[RO_FILE_SIZE];
	char path[] = "/tmp/ferrite-userptr-XXXXXX";
	int wfd = mkstemp(path), rfd;
	uint32_t bo = fx_bo(fd, FX_PAGE);
	const volatile uint64_t *out = fx_mmap(fd, bo, FX_PAGE);
	struct fx_cmd r = { 0 }, w = { 0 }, r2 = { 0 };
	const uint64_t patch_at = 3 * FX_PAGE + 100;
	uint8_t patch[300];
	uint8_t *p;

	ftest_assert(wfd >= 0);
	for (uint64_t i = 0; i < RO_FILE_SIZE; i++)
		want[i] = file_byte(i);
	ftest_assert_eq(write(wfd, want, RO_FILE_SIZE), RO_FILE_SIZE);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	ftest_assert(rfd >= 0);
	ftest_assert_ok(unlink(path));
	fx_map(fd, PVM, bo, FX_VA(2), FX_PAGE);

	/* Read-only memory cannot be bound writable. */
	p = fx_user_mmap(RO_FILE_SIZE, PROT_READ, flags, rfd, 0);
	ftest_assert(p != MAP_FAILED);
	ftest_assert_errno(fx_bind_user(fd, PVM, p, RO_FILE_SIZE, 0), EFAULT);
	ftest_assert_ok(munmap(p, RO_FILE_SIZE));

	/* Bound read-only: the GPU reads the file's bytes; its writes fault. */
	p = map_ro_file(fd, rfd, flags);
	fx_checksum(&r, FX_VA(2), (uintptr_t)p, RO_FILE_SIZE);
	fx_write64(&r, FX_VA(2) + 8, 1, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &r), 1);
	ftest_assert_eq_u64(bo_read64(fd, bo, out), fx_fnv1a(want, RO_FILE_SIZE));
	fx_fill(&w, (uintptr_t)p + FX_PAGE, 2 * FX_PAGE, 0xbadbad00);
	fx_write64(&w, (uintptr_t)p + RO_FILE_SIZE - 8, 0xbad, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &w), -EFAULT);
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, RO_FILE_SIZE));
	ftest_assert_ok(munmap(p, RO_FILE_SIZE));
	assert_file_is(rfd, want, "after the read-only bind");

	/* The file changes (through another descriptor) while it is bound and
	 * after the GPU has read it: the unbind must not write what the
	 * device saw back over the new bytes. */
	p = map_ro_file(fd, rfd, flags);
	fx_checksum(&r2, FX_VA(2), (uintptr_t)p, RO_FILE_SIZE);
	fx_write64(&r2, FX_VA(2) + 8, 2, FX_W64_FLUSH);
	ftest_assert_eq(run(fd, &r2), 1);
	ftest_assert_eq_u64(bo_read64(fd, bo, out), fx_fnv1a(want, RO_FILE_SIZE));
	for (size_t i = 0; i < sizeof(patch); i++)
		patch[i] = (uint8_t)~want[patch_at + i];
	ftest_assert_eq(pwrite(wfd, patch, sizeof(patch), patch_at), sizeof(patch));
	memcpy(want + patch_at, patch, sizeof(patch));
	ftest_assert_ok(fx_unmap(fd, PVM, (uintptr_t)p, RO_FILE_SIZE));
	ftest_assert_ok(munmap(p, RO_FILE_SIZE));
	assert_file_is(rfd, want, "after a write to the file while it was bound");

	ftest_assert_ok(fx_unmap(fd, PVM, FX_VA(2), FX_PAGE));
	munmap((void *)out, FX_PAGE);
	close(rfd);
	close(wfd);
}

static void ro_file_on(int fd)
{
	ro_file_round(fd, MAP_SHARED);
	ro_file_round(fd, MAP_PRIVATE);
	ftest_assert_eq_u64(kmap_user(fd), 0);
}

/* A real file (in /tmp), written, then opened O_RDONLY and mapped
 * PROT_READ, shared and then private: a writable bind fails with EFAULT; a
 * read-only one lets the GPU read the file's bytes and fault on writes; and
 * after the unbind the file holds exactly what the CPU last wrote to it. */
static void test_readonly_file(void)
{
	on_every_gpu(ro_file_on);
}

FTEST_MAIN(
	{ "gpu-fills-malloc", test_gpu_fills_malloc, "the GPU fills and hashes malloc'd memory at its CPU address; no kernel mapping" },
	{ "cpu-writes-survive-unbind", test_cpu_writes_survive_unbind, "what the CPU wrote after the GPU's last job is still there after the unbind" },
	{ "huge-page", test_huge_page, "2 MiB of contiguous memory (a transparent huge page) split into segments the DMA layer and the device take" },
	{ "file-backed", test_file_backed, "a shared memfd mapping: GPU writes land in the file" },
	{ "munmap-faults", test_munmap_faults, "after munmap a job touching the range faults" },
	{ "dontneed", test_dontneed, "after MADV_DONTNEED the GPU writes the new page the CPU sees" },
	{ "fork-cow", test_fork_cow, "after fork and a copy-on-write, parent (GPU) and child each see their own data" },
	{ "read-only", test_read_only, "read-only memory: writable bind refused, GPU reads work, GPU writes fault" },
	{ "foreign-mm", test_foreign_mm, "another process cannot bind its memory into a VM that is not its own" },
	{ "bad", test_bad, "bad userptr binds: clear errnos" },
	{ "cpu-page-alignment", test_cpu_page_alignment, "a range not aligned to the CPU page (an address 4 KiB into a 16 KiB page, a GPU page's size) fails with EINVAL; an aligned one binds and the GPU writes each of its GPU pages" },
	{ "readonly-zero-page", test_readonly_zero_page, "the shared zero page bound read-only: GPU reads zeros, writes fault, fresh anonymous memory still reads zeros after the unbind" },
	{ "readonly-file", test_readonly_file, "a PROT_READ file mapping (shared, private): writable bind EFAULT, GPU reads it read-only, the file is unchanged after the unbind" },
)
