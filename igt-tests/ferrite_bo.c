// SPDX-License-Identifier: MIT
/*
 * ferrite_bo: buffer-object additions of interfaces 0.3 and 0.4: labels
 * (BO_SET_LABEL, read back through BO_QUERY_INFO, shown in debugfs and in
 * devcoredumps), GEM_CREATE_NO_MMAP, BO_QUERY_INFO on own and imported
 * BOs (from the other Ferrite GPU, vgem and udmabuf), and VM-private BOs
 * (GEM_CREATE_VM_PRIVATE).
 */
#define _GNU_SOURCE
#include <linux/udmabuf.h>
#include <sys/mman.h>

#include "lib/fexec.h"

#define LABEL_MAX DRM_FERRITE_BO_LABEL_MAX

static int set_label(int fd, uint32_t handle, const char *label)
{
	struct drm_ferrite_bo_set_label l = { .handle = handle, .label = (uintptr_t)label };

	return ioctl(fd, DRM_IOCTL_FERRITE_BO_SET_LABEL, &l);
}

/* BO_QUERY_INFO with a label buffer of size bytes: 0 or -1 with errno. */
static int query_info(int fd, uint32_t handle, char *buf, uint32_t size,
		      struct drm_ferrite_bo_query_info *out)
{
	struct drm_ferrite_bo_query_info q = {
		.handle = handle, .label = (uintptr_t)buf, .label_size = size,
	};
	int r = ioctl(fd, DRM_IOCTL_FERRITE_BO_QUERY_INFO, &q);

	if (out)
		*out = q;
	return r;
}

static struct drm_ferrite_bo_query_info info_of(int fd, uint32_t handle)
{
	struct drm_ferrite_bo_query_info q;

	ftest_assert_ok(query_info(fd, handle, NULL, 0, &q));
	return q;
}

/* The label as BO_QUERY_INFO reads it back (static buffer). */
static const char *label_of(int fd, uint32_t handle)
{
	static char buf[LABEL_MAX];
	struct drm_ferrite_bo_query_info q;

	memset(buf, 0x55, sizeof(buf));
	ftest_assert_ok(query_info(fd, handle, buf, sizeof(buf), &q));
	ftest_assert_eq(strlen(buf), q.label_len);
	return buf;
}

/* The debugfs file name of fd's GPU, in buf; false without debugfs. */
static bool debugfs(int fd, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX];

	if (fx_debugfs_path(fd, name, path, sizeof(path)))
		return false;
	ftest_assert(fx_slurp(path, buf, len) > 0);
	return true;
}

static uint32_t import_fd(int fd, int dmabuf)
{
	struct drm_prime_handle p = { .fd = dmabuf };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p));
	return p.handle;
}

/*
 * Set, read back, replace and clear labels, of up to 4095 bytes; every
 * handle of the object sees its label; debugfs lists it (escaped) in gem
 * and vms, and a devcoredump's mappings name it.
 */
static void test_label(void)
{
	int fd = fdev_open_or_skip(0), fd2 = fdev_open_or_skip(0);
	static char buf[1 << 20], longest[LABEL_MAX], line[128];
	uint32_t bo = fx_bo(fd, 8 * FX_PAGE), bo2, vm, q;
	struct drm_ferrite_bo_query_info qi;
	const char *utf8 = "vertex buffer \xe2\x9c\x93";
	struct fx_cmd bad = { .n = 0 };
	char small[5];
	int dmabuf;

	/* A new BO has none. */
	ftest_assert_eq(info_of(fd, bo).label_len, 0);
	ftest_assert_eq(strlen(label_of(fd, bo)), 0);

	/* Set and read back; replace. */
	ftest_assert_ok(set_label(fd, bo, "first"));
	ftest_assert(!strcmp(label_of(fd, bo), "first"));
	ftest_assert_ok(set_label(fd, bo, utf8));
	ftest_assert(!strcmp(label_of(fd, bo), utf8));
	ftest_assert_eq(info_of(fd, bo).label_len, strlen(utf8));

	/* A short buffer gets a NUL-terminated prefix; label_len stays. */
	memset(small, 0x55, sizeof(small));
	ftest_assert_ok(query_info(fd, bo, small, sizeof(small), &qi));
	ftest_assert(!memcmp(small, "vert", 5));
	ftest_assert_eq(qi.label_len, strlen(utf8));
	memset(small, 0x55, sizeof(small));
	ftest_assert_ok(query_info(fd, bo, small, 1, &qi));
	ftest_assert_eq(small[0], 0);
	ftest_assert_eq(small[1], 0x55);

	/* The label is the object's: a handle of another file (through a
	 * self-import, which gives the same object) sees it. */
	dmabuf = fx_export(fd, bo);
	bo2 = import_fd(fd2, dmabuf);
	ftest_assert(!strcmp(label_of(fd2, bo2), utf8));
	ftest_assert_ok(set_label(fd2, bo2, "from the other file"));
	ftest_assert(!strcmp(label_of(fd, bo), "from the other file"));
	close(dmabuf);

	/* The longest label. */
	memset(longest, 'x', LABEL_MAX - 1);
	longest[LABEL_MAX - 1] = 0;
	ftest_assert_ok(set_label(fd, bo, longest));
	ftest_assert_eq(info_of(fd, bo).label_len, LABEL_MAX - 1);
	ftest_assert(!strcmp(label_of(fd, bo), longest));

	/* Clear with a null pointer, and with an empty string. */
	ftest_assert_ok(set_label(fd, bo, NULL));
	ftest_assert_eq(info_of(fd, bo).label_len, 0);
	ftest_assert_ok(set_label(fd, bo, "again"));
	ftest_assert_ok(set_label(fd, bo, ""));
	ftest_assert_eq(info_of(fd, bo).label_len, 0);
	ftest_assert_ok(set_label(fd, bo, NULL));

	/* debugfs: gem lists the label quoted and escaped, vms names it on
	 * the mapping's line. */
	ftest_assert_ok(set_label(fd, bo, "tex \"a\"\n\x01\xff"));
	vm = fx_vm(fd);
	fx_map(fd, vm, bo, FX_VA(1), 8 * FX_PAGE);
	if (debugfs(fd, "gem", buf, sizeof(buf))) {
		const char *want = "\"tex \\\"a\\\"\\n\\u{1}\\xff\"";

		if (!strstr(buf, want))
			ftest_fail("debugfs gem has no %s:\n%s", want, buf);
		ftest_assert(strstr(buf, "id size flags origin label"));
		ftest_assert(debugfs(fd, "vms", buf, sizeof(buf)));
		snprintf(line, sizeof(line), "%#014llx-%#014llx", (unsigned long long)FX_VA(1),
			 (unsigned long long)FX_VA(1) + 8 * FX_PAGE);
		ftest_assert(strstr(buf, line));
		if (!strstr(buf, want))
			ftest_fail("debugfs vms has no %s:\n%s", want, buf);
	} else {
		printf("no debugfs: its listings not checked\n");
	}

	/* A devcoredump's mappings name the label. */
	ftest_assert_ok(set_label(fd, bo, "coredump-label"));
	q = fx_queue(fd, vm, 0);
	/* Dumps are written by a work item after the failed fence signalled,
	 * and the devcoredump core keeps one per device: let an earlier
	 * failure's dump land before discarding it. */
	usleep(300 * 1000);
	fx_discard_coredumps();
	fx_write64(&bad, FX_VA(9), 1, 0);
	ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &bad), -EFAULT);
	if (!fx_find_coredump((const char *[]){ "label \"coredump-label\"", "mappings:" }, 2))
		ftest_fail("no devcoredump naming the label");

	/* A BO's label goes with it. */
	fx_gem_close(fd2, bo2);
	close(fd2);
	close(fd);
}

/* Bad input: every rejected argument with its documented errno; a failed
 * call leaves the label as it was. */
static void test_label_bad(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	static char too_long[LABEL_MAX + 100];
	struct drm_ferrite_bo_set_label l = { .handle = bo, .pad = 1, .label = (uintptr_t)"x" };
	struct drm_ferrite_bo_query_info q = { .handle = bo, .flags = 1 };
	char *pages;

	ftest_assert_ok(set_label(fd, bo, "kept"));
	/* Bad handle. */
	ftest_assert_errno(set_label(fd, 9999, "x"), ENOENT);
	ftest_assert_errno(set_label(fd, 0, "x"), ENOENT);
	/* Pad. */
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_BO_SET_LABEL, &l), EINVAL);
	/* Too long: 4096 bytes before the NUL, and no NUL at all. */
	memset(too_long, 'y', LABEL_MAX);
	too_long[LABEL_MAX] = 0;
	ftest_assert_errno(set_label(fd, bo, too_long), E2BIG);
	memset(too_long, 'y', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = 0;
	ftest_assert_errno(set_label(fd, bo, too_long), E2BIG);
	/* Bad pointers: unmapped, and a string that runs into an unmapped
	 * page before its NUL. */
	ftest_assert_errno(set_label(fd, bo, (const char *)8), EFAULT);
	pages = mmap(NULL, 2 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ftest_assert(pages != MAP_FAILED);
	ftest_assert_ok(munmap(pages + FX_PAGE, FX_PAGE));
	memset(pages + FX_PAGE - 100, 'z', 100);
	ftest_assert_errno(set_label(fd, bo, pages + FX_PAGE - 100), EFAULT);
	/* A string that ends right before the unmapped page is fine. */
	pages[FX_PAGE - 1] = 0;
	ftest_assert_ok(set_label(fd, bo, pages + FX_PAGE - 100));
	ftest_assert_eq(strlen(label_of(fd, bo)), 99);
	ftest_assert_ok(set_label(fd, bo, "kept"));
	munmap(pages, FX_PAGE);
	ftest_assert(!strcmp(label_of(fd, bo), "kept"));

	/* BO_QUERY_INFO: flags, bad handle, unwritable label buffer. */
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_BO_QUERY_INFO, &q), EINVAL);
	ftest_assert_errno(query_info(fd, 9999, NULL, 0, NULL), ENOENT);
	ftest_assert_errno(query_info(fd, bo, (char *)8, 16, NULL), EFAULT);
	/* label_size zero writes nothing, whatever the pointer. */
	ftest_assert_ok(query_info(fd, bo, (char *)8, 0, &q));
	ftest_assert_eq(q.label_len, 4);
	close(fd);
}

/* The GPU fills the 16-page BO `bo` (mapped at FX_VA(1)) with `pattern`
 * and copies it to a mappable BO at FX_VA(2), where the CPU checks it. */
static void gpu_fill_check(int fd, uint32_t vm, uint32_t q, uint32_t bo, uint32_t pattern)
{
	uint32_t out = fx_bo(fd, 16 * FX_PAGE);
	struct fx_cmd cmd = { .n = 0 };
	uint32_t *p;

	fx_map(fd, vm, bo, FX_VA(1), 16 * FX_PAGE);
	fx_map(fd, vm, out, FX_VA(2), 16 * FX_PAGE);
	fx_fill(&cmd, FX_VA(1), 16 * FX_PAGE, pattern);
	fx_copy(&cmd, FX_VA(2), FX_VA(1), 16 * FX_PAGE);
	ftest_assert_eq(fx_run(fd, vm, q, FX_VA(3), &cmd), 1);
	p = fx_mmap(fd, out, 16 * FX_PAGE);
	ftest_assert_ok(fx_gem_sync(fd, out, FX_BEGIN_R));
	for (unsigned int i = 0; i < 16 * FX_PAGE / 4; i++)
		if (p[i] != pattern)
			ftest_fail("word %u is %#x", i, p[i]);
	munmap(p, 16 * FX_PAGE);
}

/* NO_MMAP: GEM_MMAP_OFFSET refuses it with EPERM; the GPU uses it as any
 * BO; unknown GEM_CREATE flags fail. */
static void test_no_mmap(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_gem_create c = { .size = 16 * FX_PAGE,
					    .flags = DRM_FERRITE_GEM_CREATE_NO_MMAP };
	struct drm_ferrite_gem_mmap_offset m = { 0 };
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0);
	int dmabuf;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	ftest_assert_eq_u64(c.size, 16 * FX_PAGE);
	ftest_assert_eq(info_of(fd, c.handle).create_flags, DRM_FERRITE_GEM_CREATE_NO_MMAP);
	m.handle = c.handle;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m), EPERM);

	/* The GPU fills it and copies it to a mappable BO. */
	gpu_fill_check(fd, vm, q, c.handle, 0x4e4f4d4d);

	/* It can be exported. */
	dmabuf = fx_export(fd, c.handle);
	close(dmabuf);

	/* Unknown flags (bit 1 is VM_PRIVATE, see vm-private). */
	for (int bit = 2; bit < 32; bit++) {
		struct drm_ferrite_gem_create u = { .size = FX_PAGE, .flags = 1u << bit };

		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &u), EINVAL);
	}
	close(fd);
}

/* A udmabuf of a memfd: its fd, or -1 (no /dev/udmabuf). */
static int udmabuf_of(uint64_t size, int *memfd)
{
	int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	struct udmabuf_create uc = { .offset = 0, .size = size };
	int fd;

	if (dev < 0)
		return -1;
	*memfd = memfd_create("ferrite_bo", MFD_ALLOW_SEALING);
	ftest_assert(*memfd >= 0);
	ftest_assert_ok(ftruncate(*memfd, size));
	ftest_assert_ok(fcntl(*memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	uc.memfd = *memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &uc);
	ftest_assert(fd >= 0);
	close(dev);
	return fd;
}

/*
 * BO_QUERY_INFO: size, creation flags, origin and label length of own
 * BOs and of imports from the other Ferrite GPU, vgem (another DRM
 * driver) and udmabuf (not DRM); labels on imports.
 */
static void test_query_info(void)
{
	int fd = fdev_open_or_skip(0), fd1 = fdev_open_render(1), vgem, dmabuf, memfd = -1;
	static char buf[1 << 20];
	struct drm_ferrite_bo_query_info q;
	uint32_t bo = fx_bo(fd, 5000), imp, self;
	bool checked_gem = false;

	/* 5000 bytes take whole CPU pages: two of 4 KiB, one of 16 KiB. */
	const uint64_t size = (5000 + FX_PAGE - 1) & ~(FX_PAGE - 1);

	q = info_of(fd, bo);
	ftest_assert_eq_u64(q.size, size);
	ftest_assert_eq(q.create_flags, 0);
	ftest_assert_eq(q.import_kind, DRM_FERRITE_BO_IMPORT_NONE);
	ftest_assert_eq(q.label_len, 0);
	ftest_assert_ok(set_label(fd, bo, "own"));
	ftest_assert_eq(info_of(fd, bo).label_len, 3);

	/* A self-import is the same object: not an import. */
	dmabuf = fx_export(fd, bo);
	self = import_fd(fd, dmabuf);
	ftest_assert_eq(self, bo);
	ftest_assert_eq(info_of(fd, self).import_kind, DRM_FERRITE_BO_IMPORT_NONE);

	/* Exported by GPU 0, imported by GPU 1: another Ferrite device, an
	 * object of its own, with a label of its own. */
	if (fd1 >= 0) {
		imp = import_fd(fd1, dmabuf);
		q = info_of(fd1, imp);
		ftest_assert_eq_u64(q.size, size);
		ftest_assert_eq(q.create_flags, 0);
		ftest_assert_eq(q.import_kind, DRM_FERRITE_BO_IMPORT_FERRITE);
		ftest_assert_eq(q.label_len, 0);
		ftest_assert_ok(set_label(fd1, imp, "imported from gpu 0"));
		ftest_assert(!strcmp(label_of(fd1, imp), "imported from gpu 0"));
		ftest_assert(!strcmp(label_of(fd, bo), "own"));
		if (debugfs(fd1, "gem", buf, sizeof(buf))) {
			ftest_assert(strstr(buf, "imported \"imported from gpu 0\""));
			checked_gem = true;
		}
		fx_gem_close(fd1, imp);
	} else {
		printf("no second Ferrite GPU: Ferrite-to-Ferrite import not checked\n");
	}
	close(dmabuf);

	/* vgem: another DRM driver's GEM object. */
	vgem = fx_vgem_open();
	if (vgem >= 0) {
		struct drm_mode_create_dumb d = { .width = 1024, .height = 16, .bpp = 32 };

		ftest_assert_ok(ioctl(vgem, DRM_IOCTL_MODE_CREATE_DUMB, &d));
		dmabuf = fx_export(vgem, d.handle);
		imp = import_fd(fd, dmabuf);
		q = info_of(fd, imp);
		ftest_assert_eq(q.import_kind, DRM_FERRITE_BO_IMPORT_DRM);
		ftest_assert_eq_u64(q.size, d.size);
		ftest_assert_ok(set_label(fd, imp, "from vgem"));
		ftest_assert(!strcmp(label_of(fd, imp), "from vgem"));
		fx_gem_close(fd, imp);
		close(dmabuf);
		close(vgem);
	} else {
		printf("no vgem: DRM import not checked\n");
	}

	/* udmabuf: not a DRM exporter. */
	dmabuf = udmabuf_of(16 * FX_PAGE, &memfd);
	if (dmabuf >= 0) {
		imp = import_fd(fd, dmabuf);
		q = info_of(fd, imp);
		ftest_assert_eq(q.import_kind, DRM_FERRITE_BO_IMPORT_OTHER);
		ftest_assert_eq_u64(q.size, 16 * FX_PAGE);
		ftest_assert_eq(q.create_flags, 0);
		ftest_assert_ok(set_label(fd, imp, "from udmabuf"));
		ftest_assert_eq(info_of(fd, imp).label_len, strlen("from udmabuf"));
		if (debugfs(fd, "gem", buf, sizeof(buf)))
			ftest_assert(strstr(buf, "imported \"from udmabuf\""));
		fx_gem_close(fd, imp);
		close(dmabuf);
		close(memfd);
	} else {
		printf("no udmabuf: foreign import not checked\n");
	}

	/* Flags read back. */
	{
		struct drm_ferrite_gem_create c = { .size = FX_PAGE,
						    .flags = DRM_FERRITE_GEM_CREATE_NO_MMAP };

		ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
		ftest_assert_eq(info_of(fd, c.handle).create_flags, DRM_FERRITE_GEM_CREATE_NO_MMAP);
	}
	if (!checked_gem && fd1 >= 0)
		printf("no debugfs: listings not checked\n");
	if (fd1 >= 0)
		close(fd1);
	close(fd);
}

static int create_private(int fd, uint64_t size, uint32_t vm, uint32_t *handle)
{
	struct drm_ferrite_gem_create c = {
		.size = size, .flags = DRM_FERRITE_GEM_CREATE_VM_PRIVATE, .vm_id = vm,
	};
	int r = ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c);

	if (!r && handle)
		*handle = c.handle;
	return r;
}

/*
 * VM_PRIVATE: the BO belongs to one VM. Created for an explicit VM and for
 * the process VM; bad vm_id/pad refused; export and binds into another VM
 * refused with EINVAL, as is a SUBMIT on another VM's queue listing it.
 * The GPU fills it and the CPU reads it back (through a copy: it is
 * mappable too). Its implicit sync goes through the VM's reservation
 * object: GEM_SYNC BEGIN on a private BO waits for a gated job that listed
 * another private BO of the VM, while a second job listing the same
 * private BO does not wait for the first (no implicit sync between jobs).
 */
static void test_vm_private(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t vm = fx_vm(fd), vm2 = fx_vm(fd), pb = 0, pb2 = 0, pproc = 0, gatebo, cmdbo;
	uint32_t q = fx_queue(fd, vm, 10000), q2 = fx_queue(fd, vm, 10000), qo = fx_queue(fd, vm2, 0);
	uint32_t so1 = fx_syncobj(fd), so2 = fx_syncobj(fd);
	struct drm_prime_handle ph = { .flags = DRM_CLOEXEC | DRM_RDWR };
	struct drm_ferrite_bo_ref refs[2];
	volatile uint64_t *gate, *done_at;
	struct fx_cmd c2 = { .n = 0 }, c3 = { .n = 0 };
	uint8_t *cmdp;
	pid_t pid;

	{
		struct drm_ferrite_uapi_features f = { 0 };
		struct drm_ferrite_dev_query dq = {
			.type = DRM_FERRITE_DEV_QUERY_FEATURES, .size = sizeof(f),
			.pointer = (uintptr_t)&f,
		};

		ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &dq));
		ftest_assert(f.features & DRM_FERRITE_UAPI_VM_PRIVATE);
	}
	/* Bad input. */
	ftest_assert_errno(create_private(fd, FX_PAGE, 999, NULL), ENOENT);
	{
		struct drm_ferrite_gem_create c = { .size = FX_PAGE, .vm_id = vm };

		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
		c.vm_id = 0;
		c.pad = 1;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	}

	ftest_assert_ok(create_private(fd, 16 * FX_PAGE, vm, &pb));
	ftest_assert_ok(create_private(fd, FX_PAGE, vm, &pb2));
	ftest_assert_ok(create_private(fd, FX_PAGE, DRM_FERRITE_VM_PROCESS, &pproc));
	ftest_assert_eq(info_of(fd, pb).create_flags, DRM_FERRITE_GEM_CREATE_VM_PRIVATE);

	/* Not exportable, not bindable elsewhere. */
	ph.handle = pb;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ph), EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm2, pb, 0, FX_VA(1), 16 * FX_PAGE, 0), EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm, pproc, 0, FX_VA(9), FX_PAGE, 0), EINVAL);
	ftest_assert_ok(fx_map_flags(fd, DRM_FERRITE_VM_PROCESS, pproc, 0, FX_VA(9), FX_PAGE, 0));

	/* The GPU fills it and copies it out. */
	gpu_fill_check(fd, vm, q, pb, 0x50524956);
	fx_map(fd, vm, pb2, FX_VA(5), FX_PAGE);

	/* A queue of another VM cannot list it. */
	{
		struct drm_ferrite_bo_ref r = { .handle = pb, .flags = DRM_FERRITE_BO_REF_WRITE };

		ftest_assert_errno(fx_submit_full(fd, qo, FX_VA(3), 8, NULL, 0, &r, 1), EINVAL);
	}

	/* Job 1 waits on a gate and lists pb2 for write; job 2, on another
	 * queue, lists pb for write and runs at once; GEM_SYNC on pb waits
	 * for job 1 (one reservation object for the VM's private BOs). */
	gatebo = fx_bo(fd, FX_PAGE);
	fx_map(fd, vm, gatebo, FX_VA(6), FX_PAGE);
	gate = fx_mmap(fd, gatebo, FX_PAGE);
	gate[0] = 0;
	ftest_assert_ok(fx_gem_sync(fd, gatebo, FX_END_W));
	fx_wait(&c2, FX_VA(6), 1);
	fx_write64(&c2, FX_VA(5), 1, 0);
	fx_write64(&c3, FX_VA(1), 2, 0);
	cmdbo = fx_bo(fd, 2 * FX_PAGE);
	cmdp = fx_mmap(fd, cmdbo, 2 * FX_PAGE);
	memcpy(cmdp, c2.dw, c2.n * 4);
	memcpy(cmdp + FX_PAGE, c3.dw, c3.n * 4);
	munmap(cmdp, 2 * FX_PAGE);
	fx_map(fd, vm, cmdbo, FX_VA(7), 2 * FX_PAGE);
	{
		struct drm_ferrite_sync_op s1 = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so1 };
		struct drm_ferrite_sync_op s2 = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so2 };

		refs[0] = (struct drm_ferrite_bo_ref){ .handle = pb2, .flags = DRM_FERRITE_BO_REF_WRITE };
		ftest_assert_ok(fx_submit_full(fd, q, FX_VA(7), c2.n * 4, &s1, 1, refs, 1));
		refs[0] = (struct drm_ferrite_bo_ref){ .handle = pb, .flags = DRM_FERRITE_BO_REF_WRITE };
		refs[1] = (struct drm_ferrite_bo_ref){ .handle = pb2, .flags = 0 };
		ftest_assert_ok(fx_submit_full(fd, q2, FX_VA(7) + FX_PAGE, c3.n * 4, &s2, 1, refs, 2));
	}
	ftest_assert_ok(fx_syncobj_wait(fd, so2, 10000));
	ftest_assert_eq(fx_syncobj_status(fd, so2), 1);
	ftest_assert_eq(fx_syncobj_wait(fd, so1, 0), -ETIME);

	done_at = mmap(NULL, FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ftest_assert(done_at != MAP_FAILED);
	done_at[0] = 0;
	pid = fork();
	ftest_assert(pid >= 0);
	if (pid == 0) {
		int r = fx_gem_sync(fd, pb, FX_BEGIN_R);

		done_at[0] = r ? 2 : 1;
		_exit(0);
	}
	usleep(300 * 1000);
	if (done_at[0])
		ftest_fail("GEM_SYNC on a private BO did not wait for the VM's job (%llu)",
			   (unsigned long long)done_at[0]);
	gate[0] = 1;
	ftest_assert_ok(fx_gem_sync(fd, gatebo, FX_END_W));
	fx_reap(pid);
	ftest_assert_eq(done_at[0], 1);
	ftest_assert_ok(fx_syncobj_wait(fd, so1, 10000));
	ftest_assert_eq(fx_syncobj_status(fd, so1), 1);
	munmap((void *)gate, FX_PAGE);
	munmap((void *)done_at, FX_PAGE);
	close(fd);
}

FTEST_MAIN(
	{ "label", test_label, "set, read back, replace and clear labels; shown in debugfs and devcoredumps" },
	{ "label-bad", test_label_bad, "bad handle, pad, too long, bad pointers: documented errnos" },
	{ "no-mmap", test_no_mmap, "GEM_CREATE_NO_MMAP: GEM_MMAP_OFFSET fails with EPERM; the GPU uses the BO" },
	{ "query-info", test_query_info, "size, flags, origin and label of own BOs and of Ferrite, vgem and udmabuf imports" },
	{ "vm-private", test_vm_private, "GEM_CREATE_VM_PRIVATE: one VM only, no export, the VM's reservation object" },
)
