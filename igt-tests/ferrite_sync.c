// SPDX-License-Identifier: MIT
/*
 * ferrite_sync: ownership transfers of a buffer object between the GPU and
 * the CPU (GEM_SYNC: dma_sync_sgtable_for_cpu/_for_device). Run in a guest
 * booted with swiotlb=force, every DMA mapping is bounced, so a missing
 * sync shows as stale data: the "stale-*" subtests omit the sync on purpose
 * and must see stale data; the others must see fresh data.
 */
#define _GNU_SOURCE
#include <linux/udmabuf.h>
#include <sys/mman.h>

#include "lib/fexec.h"

#define SZ (64 * 1024)

static int bounced(void)
{
	char buf[4096] = { 0 };
	int f = open("/proc/cmdline", O_RDONLY);

	if (f < 0 || read(f, buf, sizeof(buf) - 1) < 0)
		return 0;
	close(f);
	/* swiotlb=force, or with a size first (swiotlb=131072,force). */
	for (char *o = strstr(buf, "swiotlb="); o; o = strstr(o + 1, "swiotlb=")) {
		size_t n = strcspn(o, " \n");
		char *force = strstr(o, "force");

		if (force && force < o + n)
			return 1;
	}
	return 0;
}

struct ctx {
	int fd;
	uint32_t vm, q, bo, res;
	uint8_t *p;
	uint64_t *r;
};

static struct ctx setup(void)
{
	struct ctx c;

	c.fd = fdev_open_or_skip(0);
	c.vm = fx_vm(c.fd);
	c.q = fx_queue(c.fd, c.vm, 0);
	c.bo = fx_bo(c.fd, SZ);
	c.res = fx_bo(c.fd, FX_PAGE);
	c.p = fx_mmap(c.fd, c.bo, SZ);
	c.r = fx_mmap(c.fd, c.res, FX_PAGE);
	/* Mapped (and DMA-mapped) before the CPU writes anything. */
	fx_map(c.fd, c.vm, c.bo, FX_VA(1), SZ);
	fx_map(c.fd, c.vm, c.res, FX_VA(2), FX_PAGE);
	return c;
}

/* The GPU writes; the CPU reads after BEGIN(READ). `sync` 0 omits it. */
static int gpu_to_cpu(int sync)
{
	struct ctx c = setup();
	struct fx_cmd cmd = { 0 };
	int fresh = 1;

	fx_fill(&cmd, FX_VA(1), SZ, 0xabababab);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	if (sync)
		ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_BEGIN_R));
	for (int i = 0; i < SZ; i++)
		fresh &= c.p[i] == 0xab;
	if (sync)
		ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_END_R));
	close(c.fd);
	return fresh;
}

/* The CPU writes between BEGIN(WRITE) and END(WRITE); the GPU checksums.
 * `sync` 0 omits the END. Returns whether the GPU saw the CPU's data. */
static int cpu_to_gpu(int sync)
{
	struct ctx c = setup();
	struct fx_cmd cmd = { 0 };
	uint64_t want;
	int fresh;

	ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_BEGIN_W));
	for (int i = 0; i < SZ; i++)
		c.p[i] = (uint8_t)(i * 13 + 5);
	want = fx_fnv1a(c.p, SZ);
	if (sync)
		ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_END_W));
	fx_checksum(&cmd, FX_VA(2), FX_VA(1), SZ);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	/* The result always comes back properly. */
	ftest_assert_ok(fx_gem_sync(c.fd, c.res, FX_BEGIN_R));
	fresh = c.r[0] == want;
	ftest_assert_ok(fx_gem_sync(c.fd, c.res, FX_END_R));
	close(c.fd);
	return fresh;
}

static void test_gpu_to_cpu(void)
{
	ftest_assert(gpu_to_cpu(1));
}

static void test_cpu_to_gpu(void)
{
	ftest_assert(cpu_to_gpu(1));
}

static void test_stale_gpu_to_cpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!gpu_to_cpu(0));
}

static void test_stale_cpu_to_gpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!cpu_to_gpu(0));
}

/* BEGIN waits for the job that writes the BO (implicit sync). */
static void test_begin_waits(void)
{
	struct ctx c = setup();
	uint32_t g = fx_bo(c.fd, FX_PAGE);
	volatile uint64_t *pg = fx_mmap(c.fd, g, FX_PAGE);
	struct fx_cmd cmd = { 0 };
	struct drm_ferrite_bo_ref w = { .handle = c.bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	pid_t pid;

	fx_map(c.fd, c.vm, g, FX_VA(3), FX_PAGE);
	fx_wait(&cmd, FX_VA(3), 1);
	fx_fill(&cmd, FX_VA(1), SZ, 0x5a5a5a5a);
	fx_cmdbuf(c.fd, c.vm, FX_VA(4), &cmd);
	ftest_assert_ok(fx_submit_full(c.fd, c.q, FX_VA(4), cmd.n * 4, NULL, 0, &w, 1));
	pid = fork();
	if (pid == 0) {
		usleep(300000);
		/* Releases the job: the device must see the write, so it too
		 * is an ownership transfer. */
		if (fx_gem_sync(c.fd, g, FX_BEGIN_W))
			_exit(1);
		pg[0] = 1;
		_exit(fx_gem_sync(c.fd, g, FX_END_W) ? 2 : 0);
	}
	ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_BEGIN_R));
	ftest_assert_eq(c.p[100], 0x5a);
	ftest_assert_ok(fx_gem_sync(c.fd, c.bo, FX_END_R));
	fx_reap(pid);
	close(c.fd);
}

/*
 * An imported buffer (a memfd through udmabuf): the importer's GEM_SYNC
 * moves its own mapping of the exporter's pages, the attachment, which
 * udmabuf mapped when Ferrite imported it.
 */
struct imp {
	struct ctx c;
	int memfd, dmabuf;
	uint32_t h;
	uint8_t *m;
};

static struct imp import_setup(void)
{
	struct imp i;
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	struct udmabuf_create uc = { .size = SZ };
	struct drm_prime_handle p = { 0 };

	if (dev < 0)
		ftest_skip("no /dev/udmabuf (CONFIG_UDMABUF)");
	i.c = setup();
	i.memfd = memfd_create("ferrite-sync", MFD_ALLOW_SEALING);
	ftest_assert(i.memfd >= 0);
	ftest_assert_ok(ftruncate(i.memfd, SZ));
	ftest_assert_ok(fcntl(i.memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	i.m = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, i.memfd, 0);
	ftest_assert(i.m != MAP_FAILED);
	memset(i.m, 0x11, SZ);
	uc.memfd = i.memfd;
	i.dmabuf = ioctl(dev, UDMABUF_CREATE, &uc);
	ftest_assert(i.dmabuf >= 0);
	close(dev);
	p.fd = i.dmabuf;
	ftest_assert_ok(ioctl(i.c.fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p));
	i.h = p.handle;
	fx_map(i.c.fd, i.c.vm, i.h, FX_VA(3), SZ);
	return i;
}

/* The CPU writes the memfd after the import; the GPU copies the import
 * into a BO of its own. `sync` 0 omits the importer's END(WRITE). */
static int import_cpu_to_gpu(int sync)
{
	struct imp i = import_setup();
	struct fx_cmd cmd = { 0 };
	int fresh = 1;

	ftest_assert_ok(fx_gem_sync(i.c.fd, i.h, FX_BEGIN_W));
	memset(i.m, 0x22, SZ);
	if (sync)
		ftest_assert_ok(fx_gem_sync(i.c.fd, i.h, FX_END_W));
	fx_copy(&cmd, FX_VA(1), FX_VA(3), SZ);
	ftest_assert_eq(fx_run(i.c.fd, i.c.vm, i.c.q, FX_VA(4), &cmd), 1);
	ftest_assert_ok(fx_gem_sync(i.c.fd, i.c.bo, FX_BEGIN_R));
	for (int k = 0; k < SZ; k++)
		fresh &= i.c.p[k] == 0x22;
	close(i.dmabuf);
	close(i.memfd);
	close(i.c.fd);
	return fresh;
}

/* The GPU fills the import; the CPU reads the memfd. `sync` 0 omits the
 * importer's BEGIN(READ). */
static int import_gpu_to_cpu(int sync)
{
	struct imp i = import_setup();
	struct fx_cmd cmd = { 0 };
	int fresh = 1;

	fx_fill(&cmd, FX_VA(3), SZ, 0x33333333);
	ftest_assert_eq(fx_run(i.c.fd, i.c.vm, i.c.q, FX_VA(4), &cmd), 1);
	if (sync)
		ftest_assert_ok(fx_gem_sync(i.c.fd, i.h, FX_BEGIN_R));
	for (int k = 0; k < SZ; k++)
		fresh &= i.m[k] == 0x33;
	close(i.dmabuf);
	close(i.memfd);
	close(i.c.fd);
	return fresh;
}

static void test_import_cpu_to_gpu(void)
{
	ftest_assert(import_cpu_to_gpu(1));
}

static void test_import_gpu_to_cpu(void)
{
	ftest_assert(import_gpu_to_cpu(1));
}

static void test_stale_import_cpu_to_gpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!import_cpu_to_gpu(0));
}

static void test_stale_import_gpu_to_cpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!import_gpu_to_cpu(0));
}

/*
 * A BO exported as a dma-buf, with the CPU going through the dma-buf's own
 * mapping and DMA_BUF_IOCTL_SYNC: the exporter hands its device's mapping
 * of the BO over (dma_sync_sgtable_for_cpu / _for_device), as GEM_SYNC.
 */
static int export_of(struct ctx *c, uint8_t **m)
{
	struct drm_prime_handle p = { .handle = c->bo, .flags = DRM_CLOEXEC | DRM_RDWR };

	ftest_assert_ok(ioctl(c->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p));
	*m = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
	ftest_assert(*m != MAP_FAILED);
	return p.fd;
}

/* The GPU fills the BO; the CPU reads it through the dma-buf. `sync` 0
 * omits DMA_BUF_IOCTL_SYNC. */
static int export_gpu_to_cpu(int sync)
{
	struct ctx c = setup();
	struct fx_cmd cmd = { 0 };
	uint8_t *m;
	int dmabuf = export_of(&c, &m), fresh = 1;

	fx_fill(&cmd, FX_VA(1), SZ, 0x44444444);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	if (sync)
		ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ));
	for (int k = 0; k < SZ; k++)
		fresh &= m[k] == 0x44;
	if (sync)
		ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ));
	close(dmabuf);
	close(c.fd);
	return fresh;
}

/* The CPU writes through the dma-buf; the GPU checksums. `sync` 0 omits
 * the END sync. */
static int export_cpu_to_gpu(int sync)
{
	struct ctx c = setup();
	struct fx_cmd cmd = { 0 };
	uint8_t *m;
	int dmabuf = export_of(&c, &m), fresh;
	uint64_t want;

	ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE));
	for (int k = 0; k < SZ; k++)
		m[k] = (uint8_t)(k * 7 + 1);
	want = fx_fnv1a(m, SZ);
	if (sync)
		ftest_assert_ok(fx_dmabuf_sync(dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE));
	fx_checksum(&cmd, FX_VA(2), FX_VA(1), SZ);
	ftest_assert_eq(fx_run(c.fd, c.vm, c.q, FX_VA(4), &cmd), 1);
	ftest_assert_ok(fx_gem_sync(c.fd, c.res, FX_BEGIN_R));
	fresh = c.r[0] == want;
	close(dmabuf);
	close(c.fd);
	return fresh;
}

static void test_export_gpu_to_cpu(void)
{
	ftest_assert(export_gpu_to_cpu(1));
}

static void test_export_cpu_to_gpu(void)
{
	ftest_assert(export_cpu_to_gpu(1));
}

static void test_stale_export_gpu_to_cpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!export_gpu_to_cpu(0));
}

static void test_stale_export_cpu_to_gpu(void)
{
	if (!bounced())
		ftest_skip("needs a guest booted with swiotlb=force");
	ftest_assert(!export_cpu_to_gpu(0));
}

static void test_bad(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	const uint32_t bad[] = {
		0, DRM_FERRITE_GEM_SYNC_READ, DRM_FERRITE_GEM_SYNC_BEGIN,
		DRM_FERRITE_GEM_SYNC_BEGIN | DRM_FERRITE_GEM_SYNC_END | DRM_FERRITE_GEM_SYNC_READ,
		FX_BEGIN_R | (1 << 9),
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ftest_assert_errno(fx_gem_sync(fd, bo, bad[i]), EINVAL);
	ftest_assert_errno(fx_gem_sync(fd, 999, FX_BEGIN_R), ENOENT);
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R | DRM_FERRITE_GEM_SYNC_WRITE));
	ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_W | DRM_FERRITE_GEM_SYNC_READ));
	close(fd);
}

FTEST_MAIN(
	{ "gpu-to-cpu", test_gpu_to_cpu, "GPU writes, BEGIN(READ), the CPU reads fresh data" },
	{ "cpu-to-gpu", test_cpu_to_gpu, "the CPU writes, END(WRITE), the GPU reads fresh data" },
	{ "stale-gpu-to-cpu", test_stale_gpu_to_cpu, "without BEGIN the CPU reads stale data (swiotlb=force)" },
	{ "stale-cpu-to-gpu", test_stale_cpu_to_gpu, "without END the GPU reads stale data (swiotlb=force)" },
	{ "import-cpu-to-gpu", test_import_cpu_to_gpu, "an imported buffer: the CPU writes, END(WRITE), the GPU reads fresh data" },
	{ "import-gpu-to-cpu", test_import_gpu_to_cpu, "an imported buffer: the GPU writes, BEGIN(READ), the CPU reads fresh data" },
	{ "stale-import-cpu-to-gpu", test_stale_import_cpu_to_gpu, "an import without END: the GPU reads stale data (swiotlb=force)" },
	{ "stale-import-gpu-to-cpu", test_stale_import_gpu_to_cpu, "an import without BEGIN: the CPU reads stale data (swiotlb=force)" },
	{ "export-gpu-to-cpu", test_export_gpu_to_cpu, "an exported BO: the GPU writes, DMA_BUF_IOCTL_SYNC, the CPU reads fresh data" },
	{ "export-cpu-to-gpu", test_export_cpu_to_gpu, "an exported BO: the CPU writes, DMA_BUF_IOCTL_SYNC, the GPU reads fresh data" },
	{ "stale-export-gpu-to-cpu", test_stale_export_gpu_to_cpu, "an export without the sync: the CPU reads stale data (swiotlb=force)" },
	{ "stale-export-cpu-to-gpu", test_stale_export_cpu_to_gpu, "an export without END: the GPU reads stale data (swiotlb=force)" },
	{ "begin-waits", test_begin_waits, "BEGIN waits for the job writing the BO" },
	{ "bad", test_bad, "GEM_SYNC bad flags and handles" },
)
