// SPDX-License-Identifier: MIT
/*
 * ferrite_robust: isolation between processes, hangs and faults under
 * load, and removal of the device while jobs run.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "lib/fexec.h"

/* A process cannot use another process's VM ids, handles, syncobjs or
 * queues (they are per file), and its jobs cannot reach the other's
 * memory (per-process VMs): errors or faults, never data. */
static void test_isolation(void)
{
	int a = fdev_open_or_skip(0);
	/* Handles the other process's file does not have. */
	uint32_t pad_bos[3] = { fx_bo(a, FX_PAGE), fx_bo(a, FX_PAGE), fx_bo(a, FX_PAGE) };
	uint32_t pad_sos[3] = { fx_syncobj(a), fx_syncobj(a), fx_syncobj(a) };
	uint32_t vm = fx_vm(a), q = fx_queue(a, vm, 0), bo = fx_bo(a, FX_PAGE);
	uint32_t so = fx_syncobj(a);
	volatile uint64_t *p = fx_mmap(a, bo, FX_PAGE);
	pid_t pid;

	p[0] = 0x5ec7e7;
	fx_map(a, vm, bo, FX_VA(1), FX_PAGE);
	fx_map(a, DRM_FERRITE_VM_PROCESS, bo, FX_VA(1), FX_PAGE);
	pid = fork();
	if (pid == 0) {
		int b = fdev_open_render(0);
		uint32_t rbo = fx_bo(b, FX_PAGE), rq;
		volatile uint64_t *r = fx_mmap(b, rbo, FX_PAGE);
		struct drm_ferrite_submit s = { .queue_id = q, .cmd_va = FX_VA(4), .cmd_size = 16 };
		struct drm_ferrite_gem_mmap_offset mo = { .handle = bo };
		struct drm_syncobj_handle h = { .handle = so };
		struct fx_cmd c = { 0 };

		/* The other file's ids and handles mean nothing here. */
		if (fx_map_flags(b, vm, rbo, 0, FX_VA(2), FX_PAGE, 0) != -1 || errno != ENOENT)
			_exit(1);
		if (ioctl(b, DRM_IOCTL_FERRITE_SUBMIT, &s) != -1 || errno != ENOENT)
			_exit(2);
		if (ioctl(b, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &mo) != -1 || errno != ENOENT)
			_exit(3);
		/* The DRM core answers an unknown syncobj handle with -EINVAL. */
		if (ioctl(b, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &h) != -1 || errno != EINVAL)
			_exit(4);
		/* A job reading the other process's VA through our own
		 * process VM faults: the mapping is not there. */
		rq = fx_queue(b, DRM_FERRITE_VM_PROCESS, 0);
		fx_map(b, DRM_FERRITE_VM_PROCESS, rbo, FX_VA(2), FX_PAGE);
		fx_copy(&c, FX_VA(2), FX_VA(1), 8);
		if (fx_run(b, DRM_FERRITE_VM_PROCESS, rq, FX_VA(4), &c) != -EFAULT)
			_exit(5);
		if (r[0] != 0)
			_exit(6);
		_exit(0);
	}
	ftest_assert(pid > 0);
	fx_reap(pid);
	ftest_assert_eq_u64(p[0], 0x5ec7e7);
	(void)pad_bos;
	(void)pad_sos;
	close(a);
}

/* Several processes submit at once; in some, jobs hang or fault. Every
 * hung or faulting job is failed and reported, every other job gives the
 * right result, and no fence is left unsignalled. */
static void test_hangs_under_load(void)
{
	enum { PROCS = 4, JOBS = 24 };
	pid_t pids[PROCS];

	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			int fd = fdev_open_render(i % 2);
			uint32_t vm, q, m, so[JOBS], bad = 0, timedout = 0;
			volatile uint64_t *pm;
			struct drm_ferrite_queue_get_state st;

			if (fd < 0)
				fd = fdev_open_render(0);
			vm = fx_vm(fd);
			q = fx_queue(fd, vm, 100);
			m = fx_bo(fd, FX_PAGE);
			pm = fx_mmap(fd, m, FX_PAGE);
			fx_map(fd, vm, m, FX_VA(3), FX_PAGE);
			for (int j = 0; j < JOBS; j++) {
				struct fx_cmd c = { 0 };
				int kind = (i + j) % 6; /* 0: hang, 1: fault, else good */

				if (kind == 0)
					fx_wait(&c, FX_VA(3) + 8 * 500, 1);
				else if (kind == 1)
					fx_write64(&c, FX_VA(9), 1, 0);
				fx_write64(&c, FX_VA(3) + 8 * j, 1000 * i + j, 0);
				so[j] = fx_syncobj(fd);
				fx_cmdbuf(fd, vm, FX_VA(10) + 0x10000ull * j, &c);
				if (fx_submit(fd, q, FX_VA(10) + 0x10000ull * j, c.n * 4, so[j]))
					_exit(10);
			}
			for (int j = 0; j < JOBS; j++) {
				int kind = (i + j) % 6, s;

				if (fx_syncobj_wait(fd, so[j], 30000))
					_exit(11); /* a fence was left unsignalled */
				s = fx_syncobj_status(fd, so[j]);
				if (kind == 0 && s != -ETIMEDOUT)
					_exit(12);
				if (kind == 1 && s != -EFAULT)
					_exit(13);
				if (kind > 1 && (s != 1 || pm[j] != 1000ull * i + j))
					_exit(14);
				bad += kind == 1;
				timedout += kind == 0;
			}
			st = fx_state(fd, q, 0);
			if (st.failed_jobs != bad + timedout)
				_exit(15);
			_exit(0);
		}
		ftest_assert(pids[i] > 0);
	}
	for (int i = 0; i < PROCS; i++)
		fx_reap(pids[i]);
}

static void sysfs_write(const char *path, const char *v)
{
	int f = open(path, O_WRONLY);

	if (f < 0)
		ftest_fail("open %s: %s", path, strerror(errno));
	if (write(f, v, strlen(v)) != (ssize_t)strlen(v))
		ftest_fail("write %s: %s", path, strerror(errno));
	close(f);
}

/* Remove the PCI device of the GPU `fd` is open on, through sysfs. */
static void remove_device(int fd)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];

	fdev_sysfs_dir(fd, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/remove", dir);
	sysfs_write(path, "1");
}

/* Rescan the PCI bus and open GPU `index`'s render node when it is back
 * (waiting up to 10 s). */
static int rescan_and_open(int index)
{
	int fd = -1;

	sysfs_write("/sys/bus/pci/rescan", "1");
	for (int i = 0; i < 100 && (fd = fdev_open_render(index)) < 0; i++)
		usleep(100000);
	ftest_assert(fd >= 0);
	return fd;
}

/* Removing the PCI device while a job hangs and a process waits for it:
 * the wait ends with -ENODEV instead of hanging, ioctls fail with -ENODEV,
 * the file can still be closed, and a rescan brings the GPU back. */
static void test_remove_while_busy(void)
{
	int fd = fdev_open_or_skip(1), fd2;
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 60000), m = fx_bo(fd, FX_PAGE);
	uint32_t so = fx_syncobj(fd);
	struct fx_cmd c = { 0 };
	struct drm_ferrite_vm_create vc = { 0 };
	struct drm_syncobj_handle e = {
		.handle = so, .flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE, .fd = -1,
	};
	pid_t pid;

	fx_map(fd, vm, m, FX_VA(3), FX_PAGE);
	fx_wait(&c, FX_VA(3), 1); /* hangs until the device goes */
	fx_cmdbuf(fd, vm, FX_VA(4), &c);
	ftest_assert_ok(fx_submit(fd, q, FX_VA(4), c.n * 4, so));
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &e));
	pid = fork();
	if (pid == 0) {
		/* The waiter: blocked on the job's fence when the device goes. */
		struct pollfd pfd = { .fd = e.fd, .events = POLLIN };
		struct sync_file_info info = { 0 };

		if (poll(&pfd, 1, 20000) != 1)
			_exit(1);
		if (ioctl(e.fd, SYNC_IOC_FILE_INFO, &info))
			_exit(2);
		_exit(info.status == -ENODEV ? 0 : 3);
	}
	ftest_assert(pid > 0);
	usleep(200000);
	remove_device(fd);
	fx_reap(pid);
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &vc), ENODEV);
	close(e.fd);
	close(fd);

	fd2 = rescan_and_open(1);
	{
		uint32_t vm2 = fx_vm(fd2), q2 = fx_queue(fd2, vm2, 0), m2 = fx_bo(fd2, FX_PAGE);
		volatile uint64_t *p2 = fx_mmap(fd2, m2, FX_PAGE);
		struct fx_cmd g = { 0 };

		fx_map(fd2, vm2, m2, FX_VA(3), FX_PAGE);
		fx_write64(&g, FX_VA(3), 0xb0b, 0);
		ftest_assert_eq(fx_run(fd2, vm2, q2, FX_VA(4), &g), 1);
		ftest_assert_eq_u64(p2[0], 0xb0b);
	}
	close(fd2);
}

/* Removing the PCI device while a userptr is bound and a job has written
 * it: the pages' DMA mapping goes with the device (the debug kernel's
 * DMA-API debug reports mappings a driver leaves behind at unbind), what
 * the job wrote stays in the process's memory, and the file closes
 * cleanly afterwards. */
static void test_remove_with_userptr(void)
{
	int fd = fdev_open_or_skip(1);
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 0);
	size_t len = 16 * FX_PAGE;
	volatile uint64_t *mem = fx_user_mmap(len, PROT_READ | PROT_WRITE,
					      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct drm_ferrite_vm_create vc = { 0 };
	struct fx_cmd c = { 0 };

	ftest_assert(mem != MAP_FAILED);
	mem[0] = 1;
	ftest_assert_ok(fx_bind_user(fd, vm, mem, len, 0));
	for (int i = 0; i < 16; i++)
		fx_write64(&c, (uintptr_t)&mem[i * FX_PAGE / 8], 0xfe000 + i, 0);
	ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &c), 1);
	remove_device(fd);
	for (int i = 0; i < 16; i++)
		ftest_assert_eq_u64(mem[i * FX_PAGE / 8], 0xfe000 + i);
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &vc), ENODEV);
	close(fd);
	for (int i = 0; i < 16; i++)
		ftest_assert_eq_u64(mem[i * FX_PAGE / 8], 0xfe000 + i);
	munmap((void *)mem, len);

	close(rescan_and_open(1));
}

/* Import the dma-buf into fd: the handle, or -1 with errno set. */
static int64_t import_fd(int fd, int dmabuf)
{
	struct drm_prime_handle p = { .fd = dmabuf };

	if (ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p))
		return -1;
	return p.handle;
}

/* Removing the PCI device that imported a dma-buf (a BO of GPU 0) while
 * its file holds the import, bound and written by a job: the attachment's
 * DMA mapping goes with the device (the debug kernel's DMA-API debug
 * reports mappings left behind at unbind), the file's later ioctls on the
 * import fail with ENODEV, closing the file only detaches, and the
 * exporter's buffer keeps what the job wrote. After a rescan, the GPU
 * imports the same buffer again and writes it. */
static void test_remove_with_import(void)
{
	int fd0 = fdev_open_or_skip(0), fd1 = fdev_open_or_skip(1);
	uint32_t vm = fx_vm(fd1), q = fx_queue(fd1, vm, 0);
	uint32_t bo = fx_bo(fd0, 16 * FX_PAGE), imp;
	int dmabuf = fx_export(fd0, bo);
	volatile uint64_t *mem = fx_mmap(fd0, bo, 16 * FX_PAGE);
	struct drm_ferrite_vm_create vc = { 0 };
	struct drm_prime_handle p;
	struct drm_gem_close gc;
	struct fx_cmd c = { 0 };
	int64_t h;

	ftest_assert(dmabuf >= 0);
	h = import_fd(fd1, dmabuf);
	ftest_assert(h >= 0);
	imp = (uint32_t)h;
	fx_map(fd1, vm, imp, FX_VA(1), 16 * FX_PAGE);
	for (int i = 0; i < 16; i++)
		fx_write64(&c, FX_VA(1) + (uint64_t)i * FX_PAGE, 0xfe100 + i, 0);
	ftest_assert_eq(fx_run(fd1, vm, q, FX_VA(4), &c), 1);
	/* The importer hands the buffer to the CPU (its mapping's data to
	 * the pages, bounced or not), and the device goes while the CPU
	 * owns it. */
	ftest_assert_ok(fx_gem_sync(fd1, imp, FX_BEGIN_R));

	remove_device(fd1);
	ftest_assert_errno(fx_gem_sync(fd1, imp, FX_END_R), ENODEV);
	ftest_assert_errno(fx_map_flags(fd1, vm, imp, 0, FX_VA(2), 16 * FX_PAGE, 0), ENODEV);
	p = (struct drm_prime_handle){ .handle = imp, .flags = DRM_CLOEXEC };
	ftest_assert_errno(ioctl(fd1, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p), ENODEV);
	ftest_assert_errno(import_fd(fd1, dmabuf), ENODEV);
	gc = (struct drm_gem_close){ .handle = imp };
	ftest_assert_errno(ioctl(fd1, DRM_IOCTL_GEM_CLOSE, &gc), ENODEV);
	ftest_assert_errno(ioctl(fd1, DRM_IOCTL_FERRITE_VM_CREATE, &vc), ENODEV);
	/* The last reference to the import: it detaches from the dma-buf,
	 * without unmapping again. */
	close(fd1);

	ftest_assert_ok(fx_gem_sync(fd0, bo, FX_BEGIN_R));
	for (int i = 0; i < 16; i++)
		ftest_assert_eq_u64(mem[i * FX_PAGE / 8], 0xfe100 + i);
	ftest_assert_ok(fx_gem_sync(fd0, bo, FX_END_R));

	fd1 = rescan_and_open(1);
	vm = fx_vm(fd1);
	q = fx_queue(fd1, vm, 0);
	h = import_fd(fd1, dmabuf);
	ftest_assert(h >= 0);
	imp = (uint32_t)h;
	fx_map(fd1, vm, imp, FX_VA(1), 16 * FX_PAGE);
	c = (struct fx_cmd){ 0 };
	fx_write64(&c, FX_VA(1) + 3 * FX_PAGE, 0xb0b0, 0);
	ftest_assert_eq(fx_run(fd1, vm, q, FX_VA(4), &c), 1);
	ftest_assert_ok(fx_gem_sync(fd1, imp, FX_BEGIN_R));
	ftest_assert_ok(fx_gem_sync(fd0, bo, FX_BEGIN_R));
	ftest_assert_eq_u64(mem[3 * FX_PAGE / 8], 0xb0b0);
	ftest_assert_eq_u64(mem[4 * FX_PAGE / 8], 0xfe104);
	ftest_assert_ok(fx_gem_sync(fd0, bo, FX_END_R));
	ftest_assert_ok(fx_gem_sync(fd1, imp, FX_END_R));
	close(fd1);
	munmap((void *)mem, 16 * FX_PAGE);
	close(dmabuf);
	close(fd0);
}

static void write_file(const char *path, const char *v)
{
	int f = open(path, O_WRONLY | O_CLOEXEC);

	if (f < 0)
		ftest_fail("open %s: %s", path, strerror(errno));
	if (write(f, v, strlen(v)) != (ssize_t)strlen(v))
		ftest_fail("write %s to %s: %s", v, path, strerror(errno));
	close(f);
}

/* One round of the driver's allocating paths, with `cmd` (a BO holding a
 * NOP) as the job; any call may fail (the caller injects failures), none
 * may splat or leak. Returns how many calls failed. */
static int alloc_round(int fd, uint32_t cmd)
{
	struct drm_ferrite_vm_create vc = { 0 };
	struct drm_ferrite_gem_create gc = { .size = 64 * 1024 };
	struct drm_ferrite_queue_create qc = { 0 };
	struct drm_ferrite_vm_destroy vd = { 0 };
	struct drm_syncobj_create sc = { 0 };
	int failed = 0, mapped;

	if (ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &vc))
		return 1;
	if (ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &gc))
		failed++;
	if (gc.handle && fx_map_flags(fd, vc.vm_id, gc.handle, 0, FX_VA(1), 64 * 1024, 0))
		failed++;
	mapped = !fx_map_flags(fd, vc.vm_id, cmd, 0, FX_VA(2), FX_PAGE, 0);
	failed += !mapped;
	qc.vm_id = vc.vm_id;
	if (ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &qc)) {
		failed++;
	} else if (mapped && !ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc)) {
		struct drm_ferrite_sync_op so = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = sc.handle };

		if (fx_submit_full(fd, qc.queue_id, FX_VA(2), 4, &so, 1, NULL, 0))
			failed++;
		else
			fx_syncobj_wait(fd, sc.handle, 5000);
		struct drm_syncobj_destroy sd = { .handle = sc.handle };
		ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
	} else {
		failed++;
	}
	if (qc.queue_id) {
		struct drm_ferrite_queue_destroy qd = { .queue_id = qc.queue_id };

		if (ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &qd))
			failed++;
	}
	if (gc.handle) {
		fx_unmap(fd, vc.vm_id, FX_VA(1), 64 * 1024);
		struct drm_gem_close cl = { .handle = gc.handle };
		ioctl(fd, DRM_IOCTL_GEM_CLOSE, &cl);
	}
	/* Destroying the VM frees what is left (mappings). */
	vd.vm_id = vc.vm_id;
	if (ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &vd))
		failed++;
	return failed;
}

/*
 * Fault injection (debug kernel: CONFIG_FAILSLAB): this task's slab
 * allocations fail at random (one in ten) while it creates, binds,
 * submits, unbinds and destroys; every failure must be a clean error. The
 * boot's kmemleak scan and console scan then find no leak and no splat,
 * and with injection off the device still works.
 */
/* A job writing the driver's own pages (the top of every VM, where the
 * rings and the fence pages the ring's commands write are mapped) must
 * fault: a job that could write its queue's fence page would signal itself
 * (and the jobs behind it) done while still running, and the kernel would
 * free their buffers under them. */
static void test_driver_pages(void)
{
	struct drm_ferrite_dev_info info = { 0 };
	struct drm_ferrite_dev_query qi = {
		.type = DRM_FERRITE_DEV_QUERY_INFO, .size = sizeof(info), .pointer = (uintptr_t)&info,
	};
	int fd = fdev_open_or_skip(0);
	uint32_t vm, q, bo;
	volatile uint64_t *p;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &qi));
	vm = fx_vm(fd);
	q = fx_queue(fd, vm, 3000);
	bo = fx_bo(fd, FX_PAGE);
	p = fx_mmap(fd, bo, FX_PAGE);
	fx_map(fd, vm, bo, FX_VA(1), FX_PAGE);
	/* The ring (16 KiB) and the fence page after it, and a bit more: the
	 * driver maps them in GPU pages, whatever the CPU page. */
	for (uint64_t pg = 0; pg < 20; pg++) {
		uint64_t target = info.va_end + pg * FX_GPU_PAGE;
		struct drm_ferrite_queue_get_state st;
		struct fx_cmd c = { 0 };

		/* Write "everything done" and raise the interrupt the driver
		 * completes jobs on, then hang. */
		fx_write64(&c, target, ~0ull, 1);
		fx_wait(&c, FX_VA(1), 1);
		ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &c), -EFAULT);
		st = fx_state(fd, q, DRM_FERRITE_QUEUE_STATE_CLEAR);
		ftest_assert_eq_u64(st.fault_addr, target);
	}
	/* The queue still works. */
	{
		struct fx_cmd c = { 0 };

		fx_write64(&c, FX_VA(1), 0x600d, FX_W64_FLUSH);
		ftest_assert_eq(fx_run(fd, vm, q, FX_VA(4), &c), 1);
		ftest_assert_eq_u64(p[0], 0x600d);
	}
	close(fd);
}

static void __attribute__((noinline)) prefault_stack(void)
{
	volatile char buf[256 * 1024];

	for (size_t i = 0; i < sizeof(buf); i += 4096)
		buf[i] = 0;
}

/* Fail the allocations of this task that the fault-injection facility in
 * dir covers, one in ten, while it runs 200 rounds of driver calls; then
 * everything must work again and nothing be left over. */
static void run_injection(const char *dir, const char *config, const char *const (*knobs)[2],
			  unsigned int nknobs)
{
	int fd, mif, failed = 0, before;
	uint32_t cmd, *p;
	char path[256];

	if (access(dir, F_OK))
		ftest_skip("no %s (%s, the debug kernel)", dir, config);
	fd = fdev_open_or_skip(0);
	before = fx_debugfs_bos();
	cmd = fx_bo(fd, FX_PAGE);
	p = fx_mmap(fd, cmd, FX_PAGE);
	p[0] = FX_OP_NOP | (1u << 16);
	munmap(p, FX_PAGE);
	for (unsigned int i = 0; i < nknobs; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, knobs[i][0]);
		write_file(path, knobs[i][1]);
	}
	/* The root filesystem is 9p: a page fault on this program's text or
	 * stack while its slab allocations fail would read through 9p and
	 * die of SIGBUS. Fault everything in, and keep it, first. */
	prefault_stack();
	ftest_assert(mlockall(MCL_CURRENT | MCL_FUTURE) == 0);
	/* Opened before: an open() under injection may fail itself. */
	mif = open("/proc/self/make-it-fail", O_WRONLY | O_CLOEXEC);
	ftest_assert(mif >= 0);
	ftest_assert(pwrite(mif, "1", 1, 0) == 1);
	for (int i = 0; i < 200; i++)
		failed += alloc_round(fd, cmd);
	ftest_assert(pwrite(mif, "0", 1, 0) == 1);
	close(mif);
	munlockall();
	snprintf(path, sizeof(path), "%s/probability", dir);
	write_file(path, "0");
	printf("%d of the calls failed under injection\n", failed);
	ftest_assert(failed > 0);
	/* Everything works again, and nothing is left over. */
	ftest_assert_eq(alloc_round(fd, cmd), 0);
	/* Calls that failed may have left VMs and BOs to the file: closing
	 * it frees them all. */
	close(fd);
	/* Jobs whose fence nobody waited for (their syncobj failed) may still
	 * hold their VM for a moment. */
	for (int i = 0; i < 50 && before >= 0 && fx_debugfs_bos() != before; i++)
		usleep(100000);
	if (before >= 0)
		ftest_assert_eq(fx_debugfs_bos(), before);
}


/* One failure in ten, for every allocation of this task, sleeping ones too
 * (the driver's are GFP_KERNEL), silently. */
static const char *const inject_common[][2] = {
	{ "probability", "10" }, { "interval", "1" }, { "times", "-1" },
	{ "verbose", "0" }, { "task-filter", "Y" }, { "ignore-gfp-wait", "N" },
};

static void test_fault_injection(void)
{
	run_injection("/sys/kernel/debug/failslab", "CONFIG_FAILSLAB", inject_common,
		      sizeof(inject_common) / sizeof(inject_common[0]));
}

/* Page allocations: the BOs' shmem pages, page tables, queue rings. The
 * kernel reports each failed allocation (warn_alloc); the console scan
 * expects those during this subtest only. */
static void test_page_fault_injection(void)
{
	static const char *const knobs[][2] = {
		{ "probability", "10" }, { "interval", "1" }, { "times", "-1" },
		{ "verbose", "0" }, { "task-filter", "Y" }, { "ignore-gfp-wait", "N" },
		{ "ignore-gfp-highmem", "N" }, { "min-order", "0" },
	};

	run_injection("/sys/kernel/debug/fail_page_alloc", "CONFIG_FAIL_PAGE_ALLOC", knobs,
		      sizeof(knobs) / sizeof(knobs[0]));
}

/*
 * Memory pressure: a BO twice the size of the guest's memory cannot be
 * bound; the bind fails with ENOMEM (no OOM kill: a sibling process that
 * holds memory survives), the BO and the VM stay usable, nothing is
 * left bound.
 */
static void test_memory_pressure(void)
{
	int fd = fdev_open_or_skip(0);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t mem = (uint64_t)pages * psz, big = (2 * mem + 0xfffff) & ~0xfffffull;
	uint32_t vm = fx_vm(fd), bo, small = fx_bo(fd, 64 * 1024);
	struct drm_ferrite_counters c0, c1;
	int pipefd[2], status;
	pid_t victim;
	char b;

	ftest_assert_ok(pipe(pipefd));
	victim = fork();
	if (victim == 0) {
		/* Holds 64 MiB and waits to be released. */
		size_t n = 64 << 20;
		char *p = malloc(n);

		if (!p)
			_exit(3);
		memset(p, 1, n);
		close(pipefd[1]);
		if (read(pipefd[0], &b, 1) < 0)
			_exit(4);
		_exit(p[n - 1] == 1 ? 0 : 5);
	}
	close(pipefd[0]);
	c0 = fx_counters(fd);
	bo = fx_bo(fd, big);
	ftest_assert_errno(fx_map_flags(fd, vm, bo, 0, FX_VA(4), big, 0), ENOMEM);
	c1 = fx_counters(fd);
	ftest_assert_eq(c1.bytes_bound, c0.bytes_bound);
	/* The victim is still alive, the VM still binds. */
	ftest_assert_eq(waitpid(victim, &status, WNOHANG), 0);
	fx_map(fd, vm, small, FX_VA(1), 64 * 1024);
	ftest_assert_ok(write(pipefd[1], "x", 1));
	fx_reap(victim);
	close(pipefd[1]);
	close(fd);
}

/*
 * Surprise removal by killing the device: the host kills GPU 1's model
 * process (scripts/vm.sh does, when the guest creates kill-gpu1 in the
 * run directory, $FERRITE_SHARE) while a job hangs on it and another
 * process waits for the job's fence. The waiter gets -ENODEV instead of
 * hanging, new work is refused with ENODEV, and every file still closes.
 * GPU 1 stays dead for the rest of the boot: this runs in a boot of its
 * own.
 */
static void test_model_killed(void)
{
	const char *share = getenv("FERRITE_SHARE");
	int fd = fdev_open_or_skip(1), fd2;
	uint32_t vm, q, gate, so, cmd;
	struct fx_cmd c = { .n = 0 };
	char path[512];
	pid_t waiter;
	int f;

	if (!share)
		ftest_skip("FERRITE_SHARE unset: the host side of scripts/vm.sh kills the model");
	vm = fx_vm(fd);
	q = fx_queue(fd, vm, 1000);
	gate = fx_bo(fd, FX_PAGE);
	so = fx_syncobj(fd);
	fx_map(fd, vm, gate, FX_VA(2), FX_PAGE);
	fx_wait(&c, FX_VA(2), 1);
	cmd = fx_cmdbuf(fd, vm, FX_VA(4), &c);
	ftest_assert_ok(fx_submit(fd, q, FX_VA(4), c.n * 4, so));
	fd2 = fdev_open_or_skip(1);
	waiter = fork();
	if (waiter == 0) {
		/* Waits much longer than it may take to fail the job. */
		int r = fx_syncobj_wait(fd, so, 60000);

		_exit(r ? 10 : fx_syncobj_status(fd, so) == -ENODEV ? 0 : 11);
	}
	snprintf(path, sizeof(path), "%s/kill-gpu1", share);
	f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ftest_assert(f >= 0);
	close(f);
	fx_reap(waiter);
	/* The device is gone: new work is refused, files close. */
	ftest_assert_errno(fx_submit(fd, q, FX_VA(4), c.n * 4, so), ENODEV);
	(void)cmd;
	close(fd2);
	close(fd);
}

FTEST_MAIN(
	{ "isolation", test_isolation, "another process's ids, handles and memory are out of reach" },
	{ "hangs-under-load", test_hangs_under_load, "4 processes, hanging and faulting jobs among good ones" },
	{ "driver-pages", test_driver_pages, "jobs cannot write the driver's rings and fence pages: a permission fault, not a fake completion" },
	{ "page-fault-injection", test_page_fault_injection, "page allocations failing at random: clean errors, no leak (debug kernel)" },
	{ "fault-injection", test_fault_injection, "slab allocations failing at random: clean errors, no leak (debug kernel)" },
	{ "memory-pressure", test_memory_pressure, "binding twice the guest's memory: ENOMEM, no OOM kill, nothing leaked" },
	{ "model-killed", test_model_killed, "GPU 1's device process killed under a hung job: -ENODEV, files close" },
	{ "remove-while-busy", test_remove_while_busy, "PCI remove during a hung job: -ENODEV, no hang, rescan works" },
	{ "remove-with-userptr", test_remove_with_userptr, "PCI remove with a userptr bound and written: its DMA mapping goes with the device, the data stays" },
	{ "remove-with-import", test_remove_with_import, "PCI remove with an imported dma-buf bound and written: its attachment's DMA mapping goes with the device, later ioctls fail with ENODEV, the exporter keeps the data" },
)
