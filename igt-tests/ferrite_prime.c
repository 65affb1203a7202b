// SPDX-License-Identifier: MIT
/*
 * ferrite_prime: sharing buffers through dma-buf (PRIME). Ferrite BOs are
 * exported and imported between the two Ferrite GPUs of the test guest
 * (GPU 0: 48-bit DMA, 2 GiB segments; GPU 1: 32-bit DMA, 64 KiB segments),
 * with the kernel's own exporters and importers (udmabuf, vgem), with the
 * GPU reading and writing the shared pages and the other side checking the
 * data. Implicit sync: the fences of jobs that use a shared buffer are in
 * its reservation object, so the other GPU and the CPU (poll on the
 * dma-buf fd) wait for them. The reach-* subtests need a guest with memory
 * above 4 GiB (FERRITE_GUEST_MEM=6G) and skip elsewhere, saying so.
 */
#define _GNU_SOURCE
#include <linux/udmabuf.h>
#include <drm/vgem_drm.h>
#include <poll.h>
#include <sys/mman.h>

#include "lib/fexec.h"

#define MB (1024ull * 1024)

/* Import dmabuf into fd: the handle, or -1 with errno set. */
static int64_t import_fd(int fd, int dmabuf)
{
	struct drm_prime_handle p = { .fd = dmabuf };

	if (ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
		return -1;
	return p.handle;
}

static uint32_t import_ok(int fd, int dmabuf)
{
	int64_t h = import_fd(fd, dmabuf);

	if (h < 0)
		ftest_fail("import: errno %d (%s)", errno, strerror(errno));
	return (uint32_t)h;
}

/* A GPU context: a VM and a queue on one Ferrite GPU. */
struct gpu {
	int fd;
	uint32_t vm, q;
};

static struct gpu gpu_open(int index, uint32_t timeout_ms)
{
	struct gpu g;

	g.fd = fdev_open_or_skip(index);
	g.vm = fx_vm(g.fd);
	g.q = fx_queue(g.fd, g.vm, timeout_ms);
	return g;
}

/*
 * Submit c with the given BOs in the job's list (implicit sync, fences in
 * their reservation objects); returns the out syncobj. The command buffer
 * lives at cmd_va until the caller's next use of that VA.
 */
static uint32_t submit_bos(struct gpu *g, uint64_t cmd_va, const struct fx_cmd *c,
			   struct drm_ferrite_bo_ref *bos, uint32_t nbos)
{
	uint32_t so = fx_syncobj(g->fd);
	struct drm_ferrite_sync_op s = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so };

	fx_cmdbuf(g->fd, g->vm, cmd_va, c);
	ftest_assert_ok(fx_submit_full(g->fd, g->q, cmd_va, c->n * 4, &s, 1, bos, nbos));
	return so;
}

static void wait_done(struct gpu *g, uint32_t so)
{
	ftest_assert_ok(fx_syncobj_wait(g->fd, so, 10000));
	ftest_assert_eq(fx_syncobj_status(g->fd, so), 1);
}

/* A job that fills [va, va + size) with pattern, declaring bo as written. */
static void gpu_fill(struct gpu *g, uint64_t cmd_va, uint32_t bo, uint64_t va, uint64_t size,
		     uint32_t pattern)
{
	struct fx_cmd c = { .n = 0 };
	struct drm_ferrite_bo_ref r = { .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };

	fx_fill(&c, va, size, pattern);
	wait_done(g, submit_bos(g, cmd_va, &c, &r, 1));
}

static void check_u32(const void *p, uint64_t size, uint32_t pattern)
{
	const uint32_t *w = p;

	for (uint64_t i = 0; i < size / 4; i++)
		if (w[i] != pattern)
			ftest_fail("word %llu is %#x, expected %#x", (unsigned long long)i, w[i],
				   pattern);
}

static void fill_u32(void *p, uint64_t size, uint32_t pattern)
{
	uint32_t *w = p;

	for (uint64_t i = 0; i < size / 4; i++)
		w[i] = pattern;
}

/* GPU 1 fills its import imp of GPU 0's bo (both mapped at FX_VA(1) here);
 * the CPU reads the pattern through GPU 0's handle. */
static void g1_fills_g0_reads(struct gpu *g0, struct gpu *g1, uint32_t bo, uint32_t imp,
			      uint64_t sz, uint32_t pattern)
{
	void *p;

	fx_map(g1->fd, g1->vm, imp, FX_VA(1), sz);
	fx_map(g0->fd, g0->vm, bo, FX_VA(1), sz);
	gpu_fill(g1, FX_VA(8), imp, FX_VA(1), sz, pattern);
	p = fx_mmap(g0->fd, bo, sz);
	ftest_assert_ok(fx_gem_sync(g0->fd, bo, FX_BEGIN_R));
	check_u32(p, sz, pattern);
	ftest_assert_ok(fx_gem_sync(g0->fd, bo, FX_END_R));
	munmap(p, sz);
}

/* Exporting and importing a BO on its own device gives back the same
 * object (the same handle), every time, even from another file. */
static void test_self_import(void)
{
	int fd = fdev_open_or_skip(0), fd2 = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(fd, 16 * FX_PAGE);
	int dmabuf = fx_export(fd, bo), dmabuf2 = fx_export(fd, bo);
	uint32_t *a, *b, h2;

	ftest_assert_eq(import_ok(fd, dmabuf), bo);
	ftest_assert_eq(import_ok(fd, dmabuf2), bo);
	/* Another file gets its own handle to the same object. */
	h2 = import_ok(fd2, dmabuf);
	ftest_assert_eq(import_ok(fd2, dmabuf2), h2);
	a = fx_mmap(fd, bo, 16 * FX_PAGE);
	b = fx_mmap(fd2, h2, 16 * FX_PAGE);
	a[100] = 0x5e1f;
	ftest_assert_eq(b[100], 0x5e1f);
	/* The imported handle binds like the original. */
	fx_map(fd2, DRM_FERRITE_VM_PROCESS, h2, FX_VA(1), 16 * FX_PAGE);
	munmap(a, 16 * FX_PAGE);
	munmap(b, 16 * FX_PAGE);
	close(dmabuf);
	close(dmabuf2);
	close(fd2);
	close(fd);
}

/*
 * A 4 MiB BO of GPU 0 (huge pages: segments far longer than GPU 1's 64
 * KiB) is imported by GPU 1 before first use; GPU 1 fills it, GPU 0 checks
 * it with a checksum and the CPU reads it; then GPU 0 writes it and GPU 1
 * copies it into a BO of its own.
 */
static void test_cross_gpu(void)
{
	struct gpu g0 = gpu_open(0, 0), g1 = gpu_open(1, 0);
	const uint64_t sz = 4 * MB;
	uint32_t bo = fx_bo(g0.fd, sz), own = fx_bo(g1.fd, sz);
	int dmabuf = fx_export(g0.fd, bo);
	uint32_t imp = import_ok(g1.fd, dmabuf);
	struct drm_ferrite_bo_ref refs[2];
	struct fx_cmd c = { .n = 0 };
	void *q;

	g1_fills_g0_reads(&g0, &g1, bo, imp, sz, 0x11c0ffee);
	fx_map(g1.fd, g1.vm, own, FX_VA(2), sz);
	gpu_fill(&g0, FX_VA(8), bo, FX_VA(1), sz, 0x22beef00);
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = imp };
	refs[1] = (struct drm_ferrite_bo_ref){ .handle = own, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_copy(&c, FX_VA(2), FX_VA(1), sz);
	wait_done(&g1, submit_bos(&g1, FX_VA(9), &c, refs, 2));
	q = fx_mmap(g1.fd, own, sz);
	ftest_assert_ok(fx_gem_sync(g1.fd, own, FX_BEGIN_R));
	check_u32(q, sz, 0x22beef00);
	ftest_assert_ok(fx_gem_sync(g1.fd, own, FX_END_R));
	/* The importer syncs its own mapping of the shared buffer too. */
	ftest_assert_ok(fx_gem_sync(g1.fd, imp, FX_BEGIN_R));
	ftest_assert_ok(fx_gem_sync(g1.fd, imp, FX_END_R));
	munmap(q, sz);
	close(dmabuf);
	close(g1.fd);
	close(g0.fd);
}

/*
 * Implicit sync between the GPUs: GPU 0's job writes the shared buffer
 * only after a WAIT that the CPU releases; GPU 1's copy of it, submitted
 * meanwhile with the buffer in its list, must wait for GPU 0's fence and
 * see its data. poll() on the dma-buf fd reports the buffer busy until
 * then.
 */
static void test_implicit_sync(void)
{
	struct gpu g0 = gpu_open(0, 0), g1 = gpu_open(1, 0);
	const uint64_t sz = 64 * 1024;
	uint32_t bo = fx_bo(g0.fd, sz), gate = fx_bo(g0.fd, FX_PAGE), own = fx_bo(g1.fd, sz);
	int dmabuf = fx_export(g0.fd, bo);
	uint32_t imp = import_ok(g1.fd, dmabuf), s0, s1;
	struct drm_ferrite_bo_ref r0 = { .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	struct drm_ferrite_bo_ref r1[2] = {
		{ .handle = imp }, { .handle = own, .flags = DRM_FERRITE_BO_REF_WRITE },
	};
	struct fx_cmd c0 = { .n = 0 }, c1 = { .n = 0 };
	struct pollfd pfd = { .fd = dmabuf, .events = POLLIN };
	volatile uint64_t *g = fx_mmap(g0.fd, gate, FX_PAGE);
	void *p;

	g[0] = 0;
	fx_map(g0.fd, g0.vm, bo, FX_VA(1), sz);
	fx_map(g0.fd, g0.vm, gate, FX_VA(2), FX_PAGE);
	fx_map(g1.fd, g1.vm, imp, FX_VA(1), sz);
	fx_map(g1.fd, g1.vm, own, FX_VA(2), sz);

	fx_wait(&c0, FX_VA(2), 1);
	fx_fill(&c0, FX_VA(1), sz, 0x33a11ce5);
	s0 = submit_bos(&g0, FX_VA(8), &c0, &r0, 1);
	fx_copy(&c1, FX_VA(2), FX_VA(1), sz);
	s1 = submit_bos(&g1, FX_VA(8), &c1, r1, 2);

	/* Both jobs wait: GPU 0's for the gate, GPU 1's for GPU 0's fence. */
	ftest_assert_eq(fx_syncobj_wait(g1.fd, s1, 300), -ETIME);
	ftest_assert_eq(poll(&pfd, 1, 0), 0);
	g[0] = 1;
	ftest_assert_ok(fx_syncobj_wait(g0.fd, s0, 10000));
	wait_done(&g1, s1);
	/* The buffer is idle for readers now. */
	ftest_assert_eq(poll(&pfd, 1, 5000), 1);
	ftest_assert(pfd.revents & POLLIN);
	p = fx_mmap(g1.fd, own, sz);
	ftest_assert_ok(fx_gem_sync(g1.fd, own, FX_BEGIN_R));
	check_u32(p, sz, 0x33a11ce5);
	munmap(p, sz);
	munmap((void *)g, FX_PAGE);
	close(dmabuf);
	close(g1.fd);
	close(g0.fd);
}

/*
 * The CPU through the dma-buf: DMA_BUF_IOCTL_SYNC (start) waits for the
 * GPU job writing the buffer. A job stuck in WAIT holds the buffer until
 * the queue's 500 ms timeout resets it.
 */
static void test_cpu_access_waits(void)
{
	struct gpu g0 = gpu_open(0, 500);
	uint32_t bo = fx_bo(g0.fd, FX_PAGE), gate = fx_bo(g0.fd, FX_PAGE), so;
	struct drm_ferrite_bo_ref r = { .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	struct fx_cmd c = { .n = 0 };
	int dmabuf = fx_export(g0.fd, bo);
	struct pollfd pfd = { .fd = dmabuf, .events = POLLIN };
	double t0;

	fx_map(g0.fd, g0.vm, bo, FX_VA(1), FX_PAGE);
	fx_map(g0.fd, g0.vm, gate, FX_VA(2), FX_PAGE);
	fx_wait(&c, FX_VA(2), 1);
	so = submit_bos(&g0, FX_VA(8), &c, &r, 1);
	ftest_assert_eq(poll(&pfd, 1, 100), 0);
	t0 = ftest_now();
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ));
	/* It returned because the job ended (reset by the timeout). */
	ftest_assert(ftest_now() - t0 > 0.2);
	ftest_assert_eq(fx_syncobj_status(g0.fd, so), -ETIMEDOUT);
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ));
	ftest_assert_eq(poll(&pfd, 1, 0), 1);
	close(dmabuf);
	close(g0.fd);
}

/*
 * A process that may only read a memfd (a read-only file of it, opened
 * again through /proc/self/fd) gets no dma-buf of it: a dma-buf is
 * writable by every device it reaches (Ferrite's GPU would write the
 * pages through a writable binding). patches/0018: EACCES.
 */
static void test_udmabuf_readonly_memfd(void)
{
	const uint64_t sz = 64 * 1024;
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	int memfd = memfd_create("ferrite-ro", MFD_ALLOW_SEALING);
	struct udmabuf_create uc = { .offset = 0, .size = sz };
	char path[64];
	int ro, dmabuf;

	if (dev < 0)
		ftest_skip("no /dev/udmabuf (CONFIG_UDMABUF)");
	ftest_assert(memfd >= 0);
	ftest_assert_ok(ftruncate(memfd, sz));
	ftest_assert_ok(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ftest_assert(ro >= 0);
	uc.memfd = ro;
	ftest_assert_errno(ioctl(dev, UDMABUF_CREATE, &uc), EACCES);
	/* The writable file of the same memfd still works. */
	uc.memfd = memfd;
	dmabuf = ioctl(dev, UDMABUF_CREATE, &uc);
	ftest_assert(dmabuf >= 0);
	close(dmabuf);
	close(ro);
	close(memfd);
	close(dev);
}

/* A memfd exported by udmabuf: the GPU writes it, the CPU reads the memfd;
 * the CPU writes it, the GPU copies it. */
static void test_udmabuf(void)
{
	struct gpu g0 = gpu_open(0, 0);
	const uint64_t sz = 1 * MB;
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	int memfd = memfd_create("ferrite", MFD_ALLOW_SEALING);
	struct udmabuf_create uc = { .offset = 0, .size = sz };
	uint32_t imp, own = fx_bo(g0.fd, sz);
	struct drm_ferrite_bo_ref refs[2];
	struct fx_cmd c = { .n = 0 };
	int dmabuf;
	void *m, *q;

	if (dev < 0)
		ftest_skip("no /dev/udmabuf (CONFIG_UDMABUF)");
	ftest_assert(memfd >= 0);
	ftest_assert_ok(ftruncate(memfd, sz));
	ftest_assert_ok(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	uc.memfd = memfd;
	dmabuf = ioctl(dev, UDMABUF_CREATE, &uc);
	ftest_assert(dmabuf >= 0);
	m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ftest_assert(m != MAP_FAILED);

	imp = import_ok(g0.fd, dmabuf);
	fx_map(g0.fd, g0.vm, imp, FX_VA(1), sz);
	fx_map(g0.fd, g0.vm, own, FX_VA(2), sz);
	gpu_fill(&g0, FX_VA(8), imp, FX_VA(1), sz, 0x44d0a1b0);
	ftest_assert_ok(fx_gem_sync(g0.fd, imp, FX_BEGIN_R));
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ));
	check_u32(m, sz, 0x44d0a1b0);
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ));
	ftest_assert_ok(fx_gem_sync(g0.fd, imp, FX_END_R));

	ftest_assert_ok(fx_gem_sync(g0.fd, imp, FX_BEGIN_W));
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE));
	fill_u32(m, sz, 0x55f00d00);
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE));
	ftest_assert_ok(fx_gem_sync(g0.fd, imp, FX_END_W));
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = imp };
	refs[1] = (struct drm_ferrite_bo_ref){ .handle = own, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_copy(&c, FX_VA(2), FX_VA(1), sz);
	wait_done(&g0, submit_bos(&g0, FX_VA(9), &c, refs, 2));
	q = fx_mmap(g0.fd, own, sz);
	ftest_assert_ok(fx_gem_sync(g0.fd, own, FX_BEGIN_R));
	check_u32(q, sz, 0x55f00d00);
	munmap(q, sz);
	munmap(m, sz);
	close(dmabuf);
	close(memfd);
	close(dev);
	close(g0.fd);
}

/* The vgem device (loaded on demand): its primary node, for dumb buffers. */
static int vgem_open(void)
{
	int fd = fx_vgem_open();

	if (fd < 0)
		ftest_skip("no vgem device (CONFIG_DRM_VGEM)");
	return fd;
}

static void *vgem_mmap(int fd, uint32_t handle, uint64_t size)
{
	struct drm_mode_map_dumb m = { .handle = handle };
	void *p;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &m));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset);
	ftest_assert(p != MAP_FAILED);
	return p;
}

/* vgem exports, Ferrite imports: the GPU fills vgem's buffer, the CPU reads
 * it through vgem's mapping. */
static void test_vgem_import(void)
{
	int vgem = vgem_open();
	struct gpu g0 = gpu_open(0, 0);
	struct drm_mode_create_dumb d = { .width = 1024, .height = 256, .bpp = 32 };
	uint32_t imp;
	int dmabuf;
	void *p;

	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &d));
	dmabuf = fx_export(vgem, d.handle);
	imp = import_ok(g0.fd, dmabuf);
	fx_map(g0.fd, g0.vm, imp, FX_VA(1), d.size);
	gpu_fill(&g0, FX_VA(8), imp, FX_VA(1), d.size, 0x66e0e0e0);
	ftest_assert_ok(fx_gem_sync(g0.fd, imp, FX_BEGIN_R));
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ));
	p = vgem_mmap(vgem, d.handle, d.size);
	check_u32(p, d.size, 0x66e0e0e0);
	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ));
	munmap(p, d.size);
	close(dmabuf);
	close(g0.fd);
	close(vgem);
}

/*
 * Ferrite exports, vgem imports (attaching: vgem's device maps the pages).
 * vgem puts a write fence on the shared buffer: Ferrite's job that reads it
 * waits until vgem signals, and the CPU, writing through the dma-buf's own
 * mapping before that, sees its data copied by the GPU.
 */
static void test_vgem_export(void)
{
	int vgem = vgem_open();
	struct gpu g0 = gpu_open(0, 0);
	const uint64_t sz = 256 * 1024;
	uint32_t bo = fx_bo(g0.fd, sz), own = fx_bo(g0.fd, sz), vh, so;
	struct drm_ferrite_bo_ref refs[2];
	struct fx_cmd c = { .n = 0 };
	int dmabuf = fx_export(g0.fd, bo);
	struct drm_vgem_fence_attach fa = { .flags = VGEM_FENCE_WRITE };
	struct drm_vgem_fence_signal fs = { 0 };
	void *p, *q;

	vh = import_ok(vgem, dmabuf);
	fa.handle = vh;
	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_VGEM_FENCE_ATTACH, &fa));
	fx_map(g0.fd, g0.vm, bo, FX_VA(1), sz);
	fx_map(g0.fd, g0.vm, own, FX_VA(2), sz);
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = bo };
	refs[1] = (struct drm_ferrite_bo_ref){ .handle = own, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_copy(&c, FX_VA(2), FX_VA(1), sz);
	so = submit_bos(&g0, FX_VA(9), &c, refs, 2);
	/* vgem's fence holds the job. */
	ftest_assert_eq(fx_syncobj_wait(g0.fd, so, 300), -ETIME);
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf, 0);
	ftest_assert(p != MAP_FAILED);
	fill_u32(p, sz, 0x88fedcba);
	munmap(p, sz);
	fs.fence = fa.out_fence;
	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_VGEM_FENCE_SIGNAL, &fs));
	wait_done(&g0, so);
	q = fx_mmap(g0.fd, own, sz);
	ftest_assert_ok(fx_gem_sync(g0.fd, own, FX_BEGIN_R));
	check_u32(q, sz, 0x88fedcba);
	munmap(q, sz);
	close(dmabuf);
	close(g0.fd);
	close(vgem);
}

static uint64_t mem_total_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;

	if (f) {
		if (fscanf(f, "MemTotal: %llu kB", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	return kb;
}

static void need_high_memory(void)
{
	if (mem_total_kb() < 5ull * 1024 * 1024)
		ftest_skip("needs a guest with memory above 4 GiB (run with FERRITE_GUEST_MEM=6G)");
}

/*
 * A BO of the 48-bit GPU whose pages do not exist yet gets pages the
 * 32-bit GPU reaches when the 32-bit GPU attaches first; both GPUs use it.
 */
static void test_reach_before_first_use(void)
{
	need_high_memory();
	struct gpu g0 = gpu_open(0, 0), g1 = gpu_open(1, 0);
	const uint64_t sz = 64 * MB;
	uint32_t bo = fx_bo(g0.fd, sz);
	int dmabuf = fx_export(g0.fd, bo);
	uint32_t imp = import_ok(g1.fd, dmabuf);

	g1_fills_g0_reads(&g0, &g1, bo, imp, sz, 0x99000099);
	close(dmabuf);
	close(g1.fd);
	close(g0.fd);
}

/*
 * The same BO after the CPU populated it (its pages allocated by the
 * 48-bit GPU's driver anywhere in memory, most of which lies above 4 GiB
 * here): the 32-bit GPU's import is refused with ERANGE, before any data
 * moves, and the exporter's data is intact.
 */
static void test_reach_refused(void)
{
	need_high_memory();
	struct gpu g0 = gpu_open(0, 0), g1 = gpu_open(1, 0);
	const uint64_t sz = 256 * MB;
	uint32_t bo = fx_bo(g0.fd, sz);
	void *p = fx_mmap(g0.fd, bo, sz);
	int dmabuf;

	fill_u32(p, sz, 0xaa5555aa);
	dmabuf = fx_export(g0.fd, bo);
	ftest_assert_errno(import_fd(g1.fd, dmabuf), ERANGE);
	/* The 48-bit GPU still uses it. */
	fx_map(g0.fd, g0.vm, bo, FX_VA(1), sz);
	check_u32(p, sz, 0xaa5555aa);
	munmap(p, sz);
	close(dmabuf);
	close(g1.fd);
	close(g0.fd);
}

/* Bad input to the PRIME ioctls and to GEM_SYNC on imports. */
static void test_bad(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	int dmabuf = fx_export(fd, bo), pipefd[2];
	struct drm_prime_handle p;

	p = (struct drm_prime_handle){ .handle = 4242, .flags = DRM_CLOEXEC };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p), ENOENT);
	p = (struct drm_prime_handle){ .handle = bo, .flags = 1u << 30 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p), EINVAL);
	ftest_assert_errno(import_fd(fd, -1), EBADF);
	ftest_assert_errno(import_fd(fd, 9999), EBADF);
	ftest_assert_ok(pipe(pipefd));
	ftest_assert_errno(import_fd(fd, pipefd[0]), EINVAL);
	close(dmabuf);
	/* A closed fd is gone, even though the BO's export lives on. */
	ftest_assert_errno(import_fd(fd, dmabuf), EBADF);
	ftest_assert_errno(fx_gem_sync(fd, bo, DRM_FERRITE_GEM_SYNC_BEGIN), EINVAL);
	close(pipefd[0]);
	close(pipefd[1]);
	close(fd);
}

/* An imported buffer the other GPU still maps outlives the exporter's
 * file; closing everything frees it (no BO left in debugfs). */
static void test_exporter_closes_first(void)
{
	struct gpu g0 = gpu_open(0, 0), g1 = gpu_open(1, 0);
	int before = fx_debugfs_bos();
	uint32_t bo = fx_bo(g0.fd, 64 * 1024), imp;
	int dmabuf = fx_export(g0.fd, bo);

	imp = import_ok(g1.fd, dmabuf);
	fx_map(g1.fd, g1.vm, imp, FX_VA(1), 64 * 1024);
	close(dmabuf);
	close(g0.fd);
	gpu_fill(&g1, FX_VA(8), imp, FX_VA(1), 64 * 1024, 0xbb);
	close(g1.fd);
	if (before >= 0)
		ftest_assert_eq(fx_debugfs_bos(), before);
}

FTEST_MAIN(
	{ "self-import", test_self_import, "re-importing a BO into its device gives the same BO" },
	{ "cross-gpu", test_cross_gpu, "a BO shared by the 48-bit and the 32-bit GPU, both ways" },
	{ "implicit-sync", test_implicit_sync, "the importer's job and poll() wait for the exporter's job" },
	{ "cpu-access-waits", test_cpu_access_waits, "DMA_BUF_IOCTL_SYNC waits for the GPU's job" },
	{ "udmabuf", test_udmabuf, "a memfd imported through udmabuf, written by GPU and CPU" },
	{ "udmabuf-readonly-memfd", test_udmabuf_readonly_memfd, "no dma-buf of a memfd the caller may only read (EACCES)" },
	{ "vgem-import", test_vgem_import, "a vgem buffer imported, written by the GPU" },
	{ "vgem-export", test_vgem_export, "a Ferrite BO imported by vgem; Ferrite's job waits for vgem's fence" },
	{ "reach-before-first-use", test_reach_before_first_use, "pages both GPUs reach when the 32-bit GPU attaches first" },
	{ "reach-refused", test_reach_refused, "pages out of the 32-bit GPU's reach: import refused (ERANGE)" },
	{ "exporter-closes-first", test_exporter_closes_first, "an import outlives the exporter's file" },
	{ "bad", test_bad, "bad input to the PRIME ioctls" },
)
