// SPDX-License-Identifier: MIT
/*
 * ferrite_vm: VM_CREATE, VM_DESTROY and VM_BIND: success paths, the
 * driver's accounting, address-space slots, and the bad-input tables.
 */
#include "lib/fexec.h"

static void test_create_destroy(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_vm_create c = { 0 };
	struct drm_ferrite_vm_destroy d = { 0 };
	uint32_t ids[8];

	for (int i = 0; i < 8; i++) {
		ids[i] = fx_vm(fd);
		ftest_assert(ids[i] != 0);
		for (int j = 0; j < i; j++)
			ftest_assert(ids[i] != ids[j]);
	}
	for (int i = 0; i < 8; i++) {
		d.vm_id = ids[i];
		ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d));
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d), ENOENT);
	}
	/* An unknown flag (bit 0 is DRM_FERRITE_VM_CREATE_MIRROR since 0.7,
	 * which ferrite_svm tests). */
	c.flags = 1 << 1;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &c), EINVAL);
	d.vm_id = fx_vm(fd);
	d.pad = 1;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d), EINVAL);
	d.pad = 0;
	d.vm_id = 4000;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d), ENOENT);
	/* The process VM is not destroyed by id. */
	d.vm_id = DRM_FERRITE_VM_PROCESS;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d), EINVAL);
	close(fd);
}

/* A VM id of one file means nothing in another. */
static void test_vm_per_file(void)
{
	int a = fdev_open_or_skip(0), b = fdev_open_or_skip(0);
	uint32_t vm = fx_vm(a), bo = fx_bo(b, FX_PAGE);

	ftest_assert_errno(fx_map_flags(b, vm, bo, 0, FX_VA(1), FX_PAGE, 0), ENOENT);
	close(a);
	close(b);
}

/* Binding accounts bytes; unmapping any part (split) gives them back;
 * closing the file frees everything. */
static void test_bind_accounting(void)
{
	int bos = fx_debugfs_bos();
	int fd = fdev_open_or_skip(0);
	uint64_t base = fx_counters(fd).bytes_bound;
	uint32_t vm = fx_vm(fd), bo = fx_bo(fd, 1 << 20);

	fx_map(fd, vm, bo, FX_VA(1), 1 << 20);
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound - base, 1 << 20);
	/* Punch a hole: a remap into two pieces. */
	ftest_assert_ok(fx_unmap(fd, vm, FX_VA(1) + 65536, 65536));
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound - base, (1 << 20) - 65536);
	/* Unmapping nothing is not an error. */
	ftest_assert_ok(fx_unmap(fd, vm, FX_VA(7), 65536));
	/* Map over part of the rest and beyond: replaced, no double count. */
	ftest_assert_ok(fx_map_flags(fd, vm, bo, 0, FX_VA(1) + FX_PAGE, 1 << 19, 0));
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound - base, 1 << 20);
	ftest_assert_ok(fx_unmap(fd, vm, FX_VA(1), 1 << 20));
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound, base);
	fx_map(fd, vm, bo, FX_VA(2), 1 << 20);
	close(fd);
	fd = fdev_open_or_skip(0);
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound, base);
	close(fd);
	/* The BO mapped when the file closed is freed too. */
	ftest_assert_eq(fx_debugfs_bos(), bos);
}

/* Several ops in one call apply in order; a failing op stops the call. */
static void test_bind_many_ops(void)
{
	int fd = fdev_open_or_skip(0);
	uint64_t base = fx_counters(fd).bytes_bound;
	uint32_t vm = fx_vm(fd), bo = fx_bo(fd, 64 * FX_PAGE);
	struct drm_ferrite_vm_bind_op ops[64];

	for (int i = 0; i < 64; i++)
		ops[i] = (struct drm_ferrite_vm_bind_op){
			.op = DRM_FERRITE_VM_BIND_OP_MAP, .handle = bo, .bo_offset = i * FX_PAGE,
			.va = FX_VA(1) + 2 * i * FX_PAGE, .size = FX_PAGE,
		};
	ftest_assert_ok(fx_bind_ops(fd, vm, ops, 64, NULL, 0));
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound - base, 64 * FX_PAGE);
	ops[0].op = DRM_FERRITE_VM_BIND_OP_UNMAP;
	ops[0].handle = 0;
	ops[0].bo_offset = 0;
	ops[0].size = 128 * FX_PAGE;
	ftest_assert_ok(fx_bind_ops(fd, vm, ops, 1, NULL, 0));
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound, base);
	close(fd);
}

/* VM_BIND waits for its in-syncobjs and signals its out-syncobjs. */
static void test_bind_syncs(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t vm = fx_vm(fd), bo = fx_bo(fd, FX_PAGE);
	uint32_t in = fx_syncobj(fd), out = fx_syncobj(fd), tl = fx_syncobj(fd);
	struct drm_syncobj_array sig = { .handles = (uintptr_t)&in, .count_handles = 1 };
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_MAP, .handle = bo, .va = FX_VA(1), .size = FX_PAGE,
	};
	struct drm_ferrite_sync_op syncs[3] = {
		{ .flags = DRM_FERRITE_SYNC_WAIT, .handle = in },
		{ .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = out },
		{ .flags = DRM_FERRITE_SYNC_SIGNAL | DRM_FERRITE_SYNC_TIMELINE, .handle = tl, .point = 3 },
	};
	uint64_t point = 0;
	struct drm_syncobj_timeline_array q = {
		.handles = (uintptr_t)&tl, .points = (uintptr_t)&point, .count_handles = 1,
	};

	/* An in-syncobj without a fence cannot be waited for (the DRM core's
	 * answer for an unsubmitted sync object is -EINVAL). */
	ftest_assert_errno(fx_bind_ops(fd, vm, &op, 1, syncs, 3), EINVAL);
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_SIGNAL, &sig));
	ftest_assert_ok(fx_bind_ops(fd, vm, &op, 1, syncs, 3));
	ftest_assert_ok(fx_syncobj_wait(fd, out, 1000));
	ftest_assert_eq(fx_syncobj_status(fd, out), 1);
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_QUERY, &q));
	ftest_assert_eq_u64(point, 3);
	close(fd);
}

/* More VMs running jobs than the device has slots: slots are reassigned
 * (LRU eviction of idle VMs) and every job still sees its own memory. */
static void test_slot_eviction(void)
{
	int fd = fdev_open_or_skip(0);
	enum { N = 20 };
	uint32_t vm[N], q[N], bo[N];
	volatile uint64_t *p[N];

	for (int i = 0; i < N; i++) {
		vm[i] = fx_vm(fd);
		bo[i] = fx_bo(fd, FX_PAGE);
		p[i] = fx_mmap(fd, bo[i], FX_PAGE);
		fx_map(fd, vm[i], bo[i], FX_VA(3), FX_PAGE);
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < N; i++) {
			struct fx_cmd c = { 0 };

			q[i] = fx_queue(fd, vm[i], 0);
			fx_write64(&c, FX_VA(3), 1000 * round + i, 0);
			ftest_assert_eq(fx_run(fd, vm[i], q[i], FX_VA(4), &c), 1);
			struct drm_ferrite_queue_destroy d = { .queue_id = q[i] };
			ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &d));
		}
	for (int i = 0; i < N; i++)
		ftest_assert_eq_u64(p[i][0], 1000 + i);
	close(fd);
}

/* Queues are not hardware rings: 20 live queues of one file (more than
 * the 8 rings) each run a job that waits for the CPU's go, so all 20 must
 * be runnable at once and the scheduler must rotate them; all complete. */
static void test_queue_limit(void)
{
	int fd = fdev_open_or_skip(1);
	enum { N = 20 };
	uint32_t vm = fx_vm(fd), q[N], so[N];
	uint32_t m = fx_bo(fd, FX_PAGE);
	volatile uint64_t *pm = fx_mmap(fd, m, FX_PAGE);

	fx_map(fd, vm, m, FX_VA(3), FX_PAGE);
	for (int i = 0; i < N; i++) {
		struct fx_cmd c = { 0 };

		q[i] = fx_queue(fd, vm, 0);
		fx_wait(&c, FX_VA(3), 1);
		fx_write64(&c, FX_VA(3) + 8 * (i + 1), 100 + i, FX_W64_FLUSH);
		fx_cmdbuf(fd, vm, FX_VA(4) + 0x10000ull * i, &c);
		so[i] = fx_syncobj(fd);
		ftest_assert_ok(fx_submit(fd, q[i], FX_VA(4) + 0x10000ull * i, c.n * 4, so[i]));
	}
	usleep(50 * 1000);
	for (int i = 0; i < N; i++)
		ftest_assert_eq_u64(pm[i + 1], 0);
	pm[0] = 1;
	for (int i = 0; i < N; i++) {
		ftest_assert_eq(fx_syncobj_wait(fd, so[i], 20000), 0);
		ftest_assert_eq(fx_syncobj_status(fd, so[i]), 1);
		ftest_assert_eq_u64(pm[i + 1], 100 + i);
	}
	close(fd);
}

/* Re-importing a BO into its own device gives the same BO, which binds; a
 * BO imported into the other GPU binds there and takes GEM_SYNC. Unbinding
 * the driver afterwards must be clean (ferrite_prime has the data tests). */
static void test_import(void)
{
	int a = fdev_open_or_skip(0), b = fdev_open_or_skip(1);
	uint32_t bo = fx_bo(a, FX_PAGE);
	struct drm_prime_handle ex = { .handle = bo, .flags = DRM_CLOEXEC | DRM_RDWR };
	struct drm_prime_handle ia = { 0 }, ib = { 0 };
	struct drm_ferrite_gem_sync gs = { .flags = DRM_FERRITE_GEM_SYNC_BEGIN | DRM_FERRITE_GEM_SYNC_READ };

	ftest_assert_ok(ioctl(a, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ex));
	ia.fd = ex.fd;
	ftest_assert_ok(ioctl(a, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ia));
	ftest_assert_eq(ia.handle, bo);
	ftest_assert_ok(fx_map_flags(a, DRM_FERRITE_VM_PROCESS, ia.handle, 0, FX_VA(1), FX_PAGE, 0));
	ib.fd = ex.fd;
	ftest_assert_ok(ioctl(b, DRM_IOCTL_PRIME_FD_TO_HANDLE, &ib));
	ftest_assert_ok(fx_map_flags(b, DRM_FERRITE_VM_PROCESS, ib.handle, 0, FX_VA(1), FX_PAGE, 0));
	gs.handle = ib.handle;
	ftest_assert_ok(ioctl(b, DRM_IOCTL_FERRITE_GEM_SYNC, &gs));
	gs.flags = DRM_FERRITE_GEM_SYNC_END | DRM_FERRITE_GEM_SYNC_READ;
	ftest_assert_ok(ioctl(b, DRM_IOCTL_FERRITE_GEM_SYNC, &gs));
	close(ex.fd);
	close(b);
	close(a);
}

struct bad_bind {
	const char *what;
	struct drm_ferrite_vm_bind_op op;
	int err;
};

static void test_bind_bad(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t vm = fx_vm(fd), bo = fx_bo(fd, 16 * FX_PAGE);
	struct drm_ferrite_dev_info info;
	struct drm_ferrite_dev_query qi = {
		.type = DRM_FERRITE_DEV_QUERY_INFO, .size = sizeof(info), .pointer = (uintptr_t)&info,
	};
	const uint32_t MAP = DRM_FERRITE_VM_BIND_OP_MAP, UNMAP = DRM_FERRITE_VM_BIND_OP_UNMAP;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &qi));
	struct bad_bind table[] = {
		{ "unknown op", { .op = 7, .handle = bo, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "unknown flag", { .op = MAP, .flags = 1 << 5, .handle = bo, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "pad", { .op = MAP, .handle = bo, .pad = 1, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "bad handle", { .op = MAP, .handle = 4242, .va = FX_VA(1), .size = FX_PAGE }, ENOENT },
		{ "zero size", { .op = MAP, .handle = bo, .va = FX_VA(1), .size = 0 }, EINVAL },
		{ "unaligned va", { .op = MAP, .handle = bo, .va = FX_VA(1) + 8, .size = FX_PAGE }, EINVAL },
		{ "unaligned size", { .op = MAP, .handle = bo, .va = FX_VA(1), .size = 100 }, EINVAL },
		{ "unaligned offset", { .op = MAP, .handle = bo, .bo_offset = 12, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "beyond bo", { .op = MAP, .handle = bo, .bo_offset = 8 * FX_PAGE, .va = FX_VA(1), .size = 9 * FX_PAGE }, EINVAL },
		{ "bo too small", { .op = MAP, .handle = bo, .va = FX_VA(1), .size = 17 * FX_PAGE }, EINVAL },
		{ "offset overflow", { .op = MAP, .handle = bo, .bo_offset = ~(FX_PAGE - 1), .va = FX_VA(1), .size = 2 * FX_PAGE }, EINVAL },
		{ "below va_start", { .op = MAP, .handle = bo, .va = 0, .size = FX_PAGE }, EINVAL },
		{ "at va_end", { .op = MAP, .handle = bo, .va = info.va_end, .size = FX_PAGE }, EINVAL },
		{ "across va_end", { .op = MAP, .handle = bo, .va = info.va_end - FX_PAGE, .size = 2 * FX_PAGE }, EINVAL },
		{ "va overflow", { .op = MAP, .handle = bo, .va = ~(FX_PAGE - 1), .size = 2 * FX_PAGE }, EINVAL },
		{ "unmap with handle", { .op = UNMAP, .handle = bo, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "unmap with flags", { .op = UNMAP, .flags = 1, .va = FX_VA(1), .size = FX_PAGE }, EINVAL },
		{ "unmap kernel region", { .op = UNMAP, .va = info.va_end, .size = FX_PAGE }, EINVAL },
	};
	struct drm_ferrite_vm_bind b = { .vm_id = vm };
	struct drm_ferrite_vm_bind_op ok = { .op = MAP, .handle = bo, .va = FX_VA(1), .size = FX_PAGE };
	uint64_t base = fx_counters(fd).bytes_bound;

	for (unsigned i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int r = fx_bind_ops(fd, vm, &table[i].op, 1, NULL, 0);

		if (r != -1 || errno != table[i].err)
			ftest_fail("%s: got %d errno %d, want errno %d", table[i].what, r, errno,
				   table[i].err);
	}
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound, base);
	/* Array problems. */
	/* Flags beyond DRM_FERRITE_VM_BIND_ASYNC. */
	b.flags = 2;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
	b.flags = 0;
	b.vm_id = 999;
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), ENOENT);
	b.vm_id = vm;
	b.ops = (struct drm_ferrite_obj_array){ .count = 1u << 31, .stride = 40, .array = (uintptr_t)&ok };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
	b.ops = (struct drm_ferrite_obj_array){ .count = 1, .stride = 0, .array = (uintptr_t)&ok };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
	b.ops = (struct drm_ferrite_obj_array){ .count = 1, .stride = 40, .array = 16 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EFAULT);
	/* A longer element from a newer userspace: zero tail accepted... */
	{
		uint8_t big[48] = { 0 };

		memcpy(big, &ok, sizeof(ok));
		b.ops = (struct drm_ferrite_obj_array){ .count = 1, .stride = 48, .array = (uintptr_t)big };
		ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b));
		/* ...a non-zero tail (a feature this kernel lacks) refused. */
		big[44] = 1;
		ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b), EINVAL);
	}
	close(fd);
}

FTEST_MAIN(
	{ "create-destroy", test_create_destroy, "VM_CREATE/VM_DESTROY and their bad input" },
	{ "vm-per-file", test_vm_per_file, "a VM id is private to its file" },
	{ "bind-accounting", test_bind_accounting, "map, split, replace and unmap account bytes exactly" },
	{ "bind-many-ops", test_bind_many_ops, "64 ops in one VM_BIND" },
	{ "bind-syncs", test_bind_syncs, "VM_BIND waits for in-syncobjs and signals out-syncobjs" },
	{ "slot-eviction", test_slot_eviction, "20 VMs share 16 slots with LRU eviction" },
	{ "queue-limit", test_queue_limit, "20 queues of one file, more than the rings, all run" },
	{ "bind-bad", test_bind_bad, "VM_BIND bad-input table" },
	{ "import", test_import, "imports bind: the same BO on its own GPU, a new one on the other" },
)
