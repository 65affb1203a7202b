// SPDX-License-Identifier: MIT
/*
 * ferrite_robust: isolation between processes, hangs and faults under
 * load, and removal of the device while jobs run.
 */
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

/* Removing the PCI device while a job hangs and a process waits for it:
 * the wait ends with -ENODEV instead of hanging, ioctls fail with -ENODEV,
 * the file can still be closed, and a rescan brings the GPU back. */
static void test_remove_while_busy(void)
{
	int fd = fdev_open_or_skip(1), fd2;
	uint32_t vm = fx_vm(fd), q = fx_queue(fd, vm, 60000), m = fx_bo(fd, FX_PAGE);
	uint32_t so = fx_syncobj(fd);
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct fx_cmd c = { 0 };
	struct drm_ferrite_vm_create vc = { 0 };
	struct drm_syncobj_handle e = {
		.handle = so, .flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE, .fd = -1,
	};
	pid_t pid;

	fdev_sysfs_dir(fd, dir, sizeof(dir));
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
	snprintf(path, sizeof(path), "%s/remove", dir);
	sysfs_write(path, "1");
	fx_reap(pid);
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &vc), ENODEV);
	close(e.fd);
	close(fd);

	sysfs_write("/sys/bus/pci/rescan", "1");
	fd2 = -1;
	for (int i = 0; i < 100 && (fd2 = fdev_open_render(1)) < 0; i++)
		usleep(100000);
	ftest_assert(fd2 >= 0);
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

FTEST_MAIN(
	{ "isolation", test_isolation, "another process's ids, handles and memory are out of reach" },
	{ "hangs-under-load", test_hangs_under_load, "4 processes, hanging and faulting jobs among good ones" },
	{ "remove-while-busy", test_remove_while_busy, "PCI remove during a hung job: -ENODEV, no hang, rescan works" },
)
