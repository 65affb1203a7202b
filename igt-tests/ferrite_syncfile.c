// SPDX-License-Identifier: MIT
/*
 * ferrite_syncfile: explicit and implicit sync meet (the dma-buf core's
 * DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE on buffers Ferrite
 * shares, and sync_files through syncobjs), as Mesa uses them on shared
 * buffers: a window-system buffer written by Ferrite and read by a
 * compositor that speaks sync_files, or the reverse.
 *
 *   export           a sync_file exported from a Ferrite dma-buf signals
 *                    when the job that writes it ends, and carries the
 *                    job's error if it fails; the error does not spread to
 *                    the buffer's later users
 *   import           a sw_sync fence imported into a Ferrite dma-buf holds
 *                    back the next job that lists the buffer (a write fence
 *                    holds readers and writers, a read fence only writers),
 *                    and one imported into a syncobj holds a job that
 *                    WAITs on it
 *   import-wait-vgem the same with vgem's fences: implicit (vgem's fence
 *                    in the shared buffer's reservation object) and
 *                    explicit (exported from vgem's dma-buf as a sync_file,
 *                    imported into a syncobj)
 */
#define _GNU_SOURCE
#include <drm/vgem_drm.h>
#include <poll.h>
#include <sys/mman.h>

#include "lib/fexec.h"

/* sw_sync's debugfs interface (drivers/dma-buf/sw_sync.c, no UAPI header). */
struct sw_sync_create_fence_data {
	__u32 value;
	char name[32];
	__s32 fence;
};
#define SW_SYNC_IOC_CREATE_FENCE _IOWR('W', 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW('W', 1, __u32)

#define SZ (64 * FX_PAGE)

/* One GPU, a VM, a queue and a gate word the jobs can WAIT on. */
struct bed {
	int fd;
	uint32_t vm, q, gatebo, cmdbo;
	volatile uint64_t *gate;
	uint8_t *cmd;
	int ncmd;
};

static struct bed bed_open(void)
{
	struct bed b = { .fd = fdev_open_or_skip(0) };

	b.vm = fx_vm(b.fd);
	b.q = fx_queue(b.fd, b.vm, 10000);
	b.gatebo = fx_bo(b.fd, FX_PAGE);
	fx_map(b.fd, b.vm, b.gatebo, FX_VA(6), FX_PAGE);
	b.gate = fx_mmap(b.fd, b.gatebo, FX_PAGE);
	b.gate[0] = 0;
	ftest_assert_ok(fx_gem_sync(b.fd, b.gatebo, FX_END_W));
	b.cmdbo = fx_bo(b.fd, 16 * FX_PAGE);
	b.cmd = fx_mmap(b.fd, b.cmdbo, 16 * FX_PAGE);
	fx_map(b.fd, b.vm, b.cmdbo, FX_VA(7), 16 * FX_PAGE);
	return b;
}

static void open_gate(struct bed *b)
{
	b->gate[0] = 1;
	ftest_assert_ok(fx_gem_sync(b->fd, b->gatebo, FX_END_W));
}

/* Submit c with these BOs and sync ops (plus a SIGNAL of a new syncobj,
 * returned). */
static uint32_t submit(struct bed *b, const struct fx_cmd *c, struct drm_ferrite_bo_ref *bos,
		       uint32_t nbos, uint32_t wait_syncobj)
{
	uint32_t so = fx_syncobj(b->fd);
	struct drm_ferrite_sync_op s[2] = {
		{ .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so },
		{ .flags = DRM_FERRITE_SYNC_WAIT, .handle = wait_syncobj },
	};
	uint64_t va = FX_VA(7) + (uint64_t)b->ncmd * FX_PAGE;

	ftest_assert(b->ncmd < 16);
	memcpy(b->cmd + (size_t)b->ncmd * FX_PAGE, c->dw, c->n * 4);
	b->ncmd++;
	ftest_assert_ok(fx_gem_sync(b->fd, b->cmdbo, FX_END_W));
	ftest_assert_ok(fx_submit_full(b->fd, b->q, va, c->n * 4, s, wait_syncobj ? 2 : 1, bos,
				       nbos));
	return so;
}

static int export_sync_file(int dmabuf, uint32_t flags)
{
	struct dma_buf_export_sync_file e = { .flags = flags, .fd = -1 };

	ftest_assert_ok(ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e));
	ftest_assert(e.fd >= 0);
	return e.fd;
}

static void import_sync_file(int dmabuf, uint32_t flags, int sync_file)
{
	struct dma_buf_import_sync_file i = { .flags = flags, .fd = sync_file };

	ftest_assert_ok(ioctl(dmabuf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &i));
}

/* A sync_file's status: 1 signalled, 0 pending, < 0 its error. */
static int sync_file_status(int sf)
{
	struct sync_file_info info = { 0 };

	ftest_assert_ok(ioctl(sf, SYNC_IOC_FILE_INFO, &info));
	return info.status;
}

/* Whether a sync_file signals within ms (poll, as a compositor does). */
static bool sync_file_wait(int sf, int ms)
{
	struct pollfd p = { .fd = sf, .events = POLLIN };
	int r = poll(&p, 1, ms);

	ftest_assert(r >= 0);
	return r == 1 && (p.revents & POLLIN);
}

/* A syncobj holding the fence of a sync_file (SYNCOBJ_FD_TO_HANDLE). */
static uint32_t syncobj_of_sync_file(int fd, int sf)
{
	uint32_t so = fx_syncobj(fd);
	struct drm_syncobj_handle h = {
		.handle = so, .flags = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE, .fd = sf,
	};

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &h));
	return so;
}

static void check_bo(struct bed *b, uint32_t bo, uint32_t pattern)
{
	uint32_t *p = fx_mmap(b->fd, bo, SZ);

	ftest_assert_ok(fx_gem_sync(b->fd, bo, FX_BEGIN_R));
	for (unsigned int i = 0; i < SZ / 4; i++)
		if (p[i] != pattern)
			ftest_fail("word %u is %#x, expected %#x", i, p[i], pattern);
	ftest_assert_ok(fx_gem_sync(b->fd, bo, FX_END_R));
	munmap(p, SZ);
}

/*
 * export: a job that waits on the gate and then fills the exported BO
 * (listed for write). The sync_files exported for a reader and for a
 * writer are pending until the gate opens, then signalled, and the data is
 * there. A job that faults after the gate: its sync_file carries the
 * error, as the syncobj's does. An idle buffer's sync_file is signalled.
 */
static void test_export(void)
{
	struct bed b = bed_open();
	uint32_t bo = fx_bo(b.fd, SZ), so;
	struct drm_ferrite_bo_ref w = { .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	struct fx_cmd c = { .n = 0 }, f = { .n = 0 };
	int dmabuf = fx_export(b.fd, bo), sr, sw, st;

	fx_map(b.fd, b.vm, bo, FX_VA(1), SZ);
	sr = export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	ftest_assert_eq(sync_file_status(sr), 1);
	close(sr);

	fx_wait(&c, FX_VA(6), 1);
	fx_fill(&c, FX_VA(1), SZ, 0x5f11e000);
	so = submit(&b, &c, &w, 1, 0);
	sr = export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	sw = export_sync_file(dmabuf, DMA_BUF_SYNC_WRITE);
	ftest_assert_eq(sync_file_status(sr), 0);
	ftest_assert_eq(sync_file_status(sw), 0);
	ftest_assert(!sync_file_wait(sr, 200));
	open_gate(&b);
	ftest_assert(sync_file_wait(sr, 10000));
	ftest_assert(sync_file_wait(sw, 10000));
	ftest_assert_eq(sync_file_status(sr), 1);
	ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	check_bo(&b, bo, 0x5f11e000);
	close(sr);
	close(sw);

	/* A failing writer: the error reaches the sync_file. */
	b.gate[0] = 0;
	ftest_assert_ok(fx_gem_sync(b.fd, b.gatebo, FX_END_W));
	fx_wait(&f, FX_VA(6), 1);
	fx_write64(&f, FX_VA(15), 1, 0);
	so = submit(&b, &f, &w, 1, 0);
	sr = export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	ftest_assert_eq(sync_file_status(sr), 0);
	open_gate(&b);
	ftest_assert(sync_file_wait(sr, 10000));
	st = sync_file_status(sr);
	if (st >= 0)
		ftest_fail("a faulting job's sync_file has status %d, expected an error", st);
	ftest_assert_eq(st, fx_syncobj_status(b.fd, so));
	printf("faulting job: sync_file status %d (%s)\n", st, strerror(-st));
	close(sr);

	/* The failure does not spread through the buffer: the CPU takes it
	 * back without an error, and the next writer waits for the failed
	 * job's fence but does not inherit its error, nor does the one
	 * after it. */
	ftest_assert_ok(fx_gem_sync(b.fd, bo, FX_BEGIN_R));
	ftest_assert_ok(fx_gem_sync(b.fd, bo, FX_END_R));
	for (int k = 0; k < 2; k++) {
		struct fx_cmd g = { .n = 0 };

		fx_fill(&g, FX_VA(1), SZ, 0x5f11e001 + k);
		so = submit(&b, &g, &w, 1, 0);
		ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
		ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	}
	check_bo(&b, bo, 0x5f11e002);
	close(dmabuf);
	close(b.fd);
}

static int sw_sync_timeline(void)
{
	int tl = open("/sys/kernel/debug/sync/sw_sync", O_RDWR | O_CLOEXEC);

	if (tl < 0)
		ftest_fail("no sw_sync timeline (CONFIG_SW_SYNC, debugfs): %s", strerror(errno));
	return tl;
}

static int sw_sync_fence(int tl, uint32_t value)
{
	struct sw_sync_create_fence_data d = { .value = value };

	snprintf(d.name, sizeof(d.name), "ferrite-%u", value);
	ftest_assert_ok(ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &d));
	return d.fence;
}

static void sw_sync_inc(int tl)
{
	__u32 one = 1;

	ftest_assert_ok(ioctl(tl, SW_SYNC_IOC_INC, &one));
}

/*
 * import: sw_sync fences, signalled from the CPU.
 * 1. A write fence imported into the exported BO: a job that reads the BO
 *    (copies it out) waits for it.
 * 2. A read fence: a reader runs at once, a writer waits.
 * 3. A fence imported into a syncobj: a job WAITing on it waits.
 */
static void test_import(void)
{
	struct bed b = bed_open();
	uint32_t bo = fx_bo(b.fd, SZ), out = fx_bo(b.fd, SZ), so, so2, in;
	struct drm_ferrite_bo_ref refs[2];
	struct fx_cmd fill = { .n = 0 }, copy = { .n = 0 }, fill2 = { .n = 0 }, nop = { .n = 0 };
	int dmabuf = fx_export(b.fd, bo), tl = sw_sync_timeline(), sf;

	fx_map(b.fd, b.vm, bo, FX_VA(1), SZ);
	fx_map(b.fd, b.vm, out, FX_VA(2), SZ);
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_fill(&fill, FX_VA(1), SZ, 0x1a1a0001);
	so = submit(&b, &fill, refs, 1, 0);
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));

	/* 1: a write fence holds a reader. */
	sf = sw_sync_fence(tl, 1);
	import_sync_file(dmabuf, DMA_BUF_SYNC_WRITE, sf);
	close(sf);
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = bo };
	refs[1] = (struct drm_ferrite_bo_ref){ .handle = out, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_copy(&copy, FX_VA(2), FX_VA(1), SZ);
	so = submit(&b, &copy, refs, 2, 0);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 300), -ETIME);
	sw_sync_inc(tl);
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
	ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	check_bo(&b, out, 0x1a1a0001);

	/* 2: a read fence holds a writer, not a reader. */
	sf = sw_sync_fence(tl, 2);
	import_sync_file(dmabuf, DMA_BUF_SYNC_READ, sf);
	close(sf);
	so = submit(&b, &copy, refs, 2, 0);
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
	refs[0].flags = DRM_FERRITE_BO_REF_WRITE;
	fx_fill(&fill2, FX_VA(1), SZ, 0x1a1a0002);
	so2 = submit(&b, &fill2, refs, 1, 0);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so2, 300), -ETIME);
	sw_sync_inc(tl);
	ftest_assert_ok(fx_syncobj_wait(b.fd, so2, 10000));
	check_bo(&b, bo, 0x1a1a0002);

	/* 3: a sync_file in a syncobj, waited for by SUBMIT. */
	sf = sw_sync_fence(tl, 3);
	in = syncobj_of_sync_file(b.fd, sf);
	close(sf);
	fx_write64(&nop, FX_VA(2), 0x1a1a0003, 0);
	so = submit(&b, &nop, NULL, 0, in);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 300), -ETIME);
	sw_sync_inc(tl);
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
	ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	close(tl);
	close(dmabuf);
	close(b.fd);
}

/* vgem, which the guest config builds (CONFIG_DRM_VGEM=m). */
static int vgem_open(void)
{
	int fd = fx_vgem_open();

	if (fd < 0)
		ftest_fail("no vgem device (CONFIG_DRM_VGEM=m is in the guest config)");
	return fd;
}

/*
 * import-wait-vgem: vgem's buffer, imported into Ferrite, with a vgem
 * write fence attached. A Ferrite job that reads it waits (the fence is in
 * the shared reservation object); the fence exported from vgem's dma-buf
 * as a sync_file and imported into a syncobj holds a second job that
 * WAITs on it. Both run once vgem signals; the data is right.
 */
static void test_import_wait_vgem(void)
{
	int vgem = vgem_open();
	struct bed b = bed_open();
	/* Rows of 4 KiB: SZ bytes whatever the CPU page. */
	struct drm_mode_create_dumb d = { .width = 1024, .height = SZ / 4096, .bpp = 32 };
	struct drm_vgem_fence_attach fa = { .flags = VGEM_FENCE_WRITE };
	struct drm_vgem_fence_signal fs = { 0 };
	struct drm_prime_handle p = { .flags = DRM_CLOEXEC | DRM_RDWR };
	struct drm_prime_handle ip = { 0 };
	struct drm_ferrite_bo_ref refs[2];
	struct fx_cmd copy = { .n = 0 }, nop = { .n = 0 };
	uint32_t out = fx_bo(b.fd, SZ), imp, so, so2, in;
	uint32_t *v;
	int sf;

	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &d));
	ftest_assert(d.size >= SZ);
	{
		struct drm_mode_map_dumb m = { .handle = d.handle };

		ftest_assert_ok(ioctl(vgem, DRM_IOCTL_MODE_MAP_DUMB, &m));
		v = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, vgem, m.offset);
		ftest_assert(v != MAP_FAILED);
		for (unsigned int i = 0; i < SZ / 4; i++)
			v[i] = 0x76e60000 + i;
		munmap(v, SZ);
	}
	p.handle = d.handle;
	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p));
	ip.fd = p.fd;
	ftest_assert_ok(ioctl(b.fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ip));
	imp = ip.handle;
	fx_map(b.fd, b.vm, imp, FX_VA(1), SZ);
	fx_map(b.fd, b.vm, out, FX_VA(2), SZ);

	fa.handle = d.handle;
	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_VGEM_FENCE_ATTACH, &fa));
	/* Implicit: the job lists vgem's buffer for reading. */
	refs[0] = (struct drm_ferrite_bo_ref){ .handle = imp };
	refs[1] = (struct drm_ferrite_bo_ref){ .handle = out, .flags = DRM_FERRITE_BO_REF_WRITE };
	fx_copy(&copy, FX_VA(2), FX_VA(1), SZ);
	so = submit(&b, &copy, refs, 2, 0);
	/* Explicit: vgem's fence as a sync_file, in a syncobj. */
	sf = export_sync_file(p.fd, DMA_BUF_SYNC_READ);
	ftest_assert_eq(sync_file_status(sf), 0);
	in = syncobj_of_sync_file(b.fd, sf);
	close(sf);
	fx_write64(&nop, FX_VA(2) + SZ - 8, 0x76e6ffff, 0);
	so2 = submit(&b, &nop, NULL, 0, in);

	ftest_assert_eq(fx_syncobj_wait(b.fd, so, 300), -ETIME);
	ftest_assert_eq(fx_syncobj_wait(b.fd, so2, 0), -ETIME);
	fs.fence = fa.out_fence;
	ftest_assert_ok(ioctl(vgem, DRM_IOCTL_VGEM_FENCE_SIGNAL, &fs));
	ftest_assert_ok(fx_syncobj_wait(b.fd, so, 10000));
	ftest_assert_ok(fx_syncobj_wait(b.fd, so2, 10000));
	ftest_assert_eq(fx_syncobj_status(b.fd, so), 1);
	ftest_assert_eq(fx_syncobj_status(b.fd, so2), 1);
	v = fx_mmap(b.fd, out, SZ);
	ftest_assert_ok(fx_gem_sync(b.fd, out, FX_BEGIN_R));
	for (unsigned int i = 0; i < SZ / 4 - 2; i++)
		if (v[i] != 0x76e60000 + i)
			ftest_fail("word %u is %#x", i, v[i]);
	ftest_assert_eq(v[SZ / 4 - 2], 0x76e6ffff);
	munmap(v, SZ);
	close(p.fd);
	close(b.fd);
	close(vgem);
}

FTEST_MAIN(
	{ "export", test_export, "EXPORT_SYNC_FILE on a Ferrite dma-buf: signals when the writing job ends, carries its error" },
	{ "import", test_import, "IMPORT_SYNC_FILE (sw_sync) holds the next job using the buffer; a sync_file in a syncobj holds a WAIT" },
	{ "import-wait-vgem", test_import_wait_vgem, "vgem's fence holds Ferrite's job implicitly and, as a sync_file in a syncobj, explicitly" },
)
