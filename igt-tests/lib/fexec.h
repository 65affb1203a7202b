/* SPDX-License-Identifier: MIT */
/*
 * Helpers for tests that bind memory and run jobs: BOs, VMs, queues,
 * submissions, sync objects and the Ferrite command encoding.
 */
#ifndef FEXEC_H
#define FEXEC_H

#include <dirent.h>
#include <stdint.h>
#include <poll.h>
#include <time.h>
#include <sys/wait.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>
#include <drm/ferrite_drm.h>

#include "fdev.h"

/*
 * The two page sizes (Documentation/gpu/ferrite.rst, "CPU pages and GPU
 * pages"). FX_PAGE is the CPU page, the kernel's PAGE_SIZE: 4 KiB on
 * x86-64, 4, 16 or 64 KiB on arm64. It is the granule of BO sizes, of
 * mmap() and of every VM_BIND address, size and offset (DEV_QUERY_MMU's
 * bind_alignment, which ferrite_query checks is this), so every test that
 * binds or maps memory counts in it. FX_GPU_PAGE is the GPU MMU's page,
 * 4 KiB whatever the CPU page: only what the device itself does at that
 * granule (page_sizes, the pieces of an import) counts in it.
 */
static inline unsigned long long fx_page_size(void)
{
	static unsigned long long page;

	if (!page) {
		long p = sysconf(_SC_PAGESIZE);

		ftest_assert(p >= 4096 && (p & (p - 1)) == 0);
		page = (unsigned long long)p;
	}
	return page;
}

#define FX_PAGE fx_page_size()
#define FX_GPU_PAGE 4096ull
#define FX_VA(n) (0x100000000ull + (uint64_t)(n) * 0x10000000ull)
/* The end of the GPU's user range (DEV_QUERY_MMU's user_va_end, which
 * ferrite_query checks): the driver's rings and fence pages lie above. */
#define FX_USER_VA_END ((1ull << 48) - (1ull << 32))

/*
 * mmap() for memory a test binds as a userptr (GPU VA == CPU VA), which the
 * UAPI asks to lie inside the GPU's user range. The kernel places a mapping
 * top-down from the top of the CPU's user range: on x86-64 that is 2^47,
 * inside the GPU's 48 bits, but on arm64 with 48-bit addresses (4 KiB pages)
 * it is 2^48, in the driver's range. There the mapping is placed lower, with
 * an address hint and MAP_FIXED_NOREPLACE, as a userspace driver's userptr
 * heap would do it.
 */
static inline void *fx_user_mmap(size_t size, int prot, int flags, int fd, off_t off)
{
	const uint64_t step = 1ull << 30;
	void *p = mmap(NULL, size, prot, flags, fd, off);

	if (p == MAP_FAILED || (uint64_t)(uintptr_t)p + size <= FX_USER_VA_END)
		return p;
	munmap(p, size);
	/* A terabyte below the driver's range, then lower until it fits. */
	for (uint64_t hint = (FX_USER_VA_END - (1ull << 40) - size) & ~(step - 1);
	     hint > step; hint -= step) {
		p = mmap((void *)(uintptr_t)hint, size, prot, flags | MAP_FIXED_NOREPLACE, fd, off);
		if (p != MAP_FAILED || errno != EEXIST)
			return p;
	}
	return MAP_FAILED;
}

/* Commands (Documentation/gpu/ferrite-hw.rst, "Queues and commands"). */
#define FX_OP_NOP 0x00
#define FX_OP_FILL 0x01
#define FX_OP_COPY 0x02
#define FX_OP_CHECKSUM 0x03
#define FX_OP_WRITE64 0x04
#define FX_OP_WAIT 0x05
#define FX_OP_TIMESTAMP 0x06
#define FX_OP_FLUSH 0x07
#define FX_OP_CALL 0x08
#define FX_W64_FLUSH (1 << 1)
/* The largest indirect buffer a CALL runs, in bytes. */
#define FX_CALL_MAX (1u << 20)

struct fx_cmd {
	uint32_t dw[1024];
	uint32_t n;
};

static inline void fx_emit(struct fx_cmd *c, uint32_t op, uint32_t flags, const uint32_t *args,
			   uint32_t nargs)
{
	ftest_assert(c->n + 1 + nargs <= 1024);
	c->dw[c->n++] = op | (flags << 8) | ((1 + nargs) << 16);
	for (uint32_t i = 0; i < nargs; i++)
		c->dw[c->n++] = args[i];
}

#define LO(x) ((uint32_t)(x))
#define HI(x) ((uint32_t)((uint64_t)(x) >> 32))

static inline void fx_fill(struct fx_cmd *c, uint64_t dst, uint64_t size, uint32_t pattern)
{
	uint32_t a[] = { LO(dst), HI(dst), LO(size), HI(size), pattern };

	fx_emit(c, FX_OP_FILL, 0, a, 5);
}

static inline void fx_copy(struct fx_cmd *c, uint64_t dst, uint64_t src, uint64_t size)
{
	uint32_t a[] = { LO(dst), HI(dst), LO(src), HI(src), LO(size), HI(size) };

	fx_emit(c, FX_OP_COPY, 0, a, 6);
}

static inline void fx_checksum(struct fx_cmd *c, uint64_t dst, uint64_t src, uint64_t size)
{
	uint32_t a[] = { LO(dst), HI(dst), LO(src), HI(src), LO(size), HI(size) };

	fx_emit(c, FX_OP_CHECKSUM, 0, a, 6);
}

static inline void fx_write64(struct fx_cmd *c, uint64_t dst, uint64_t v, uint32_t flags)
{
	uint32_t a[] = { LO(dst), HI(dst), LO(v), HI(v) };

	fx_emit(c, FX_OP_WRITE64, flags, a, 4);
}

static inline void fx_wait(struct fx_cmd *c, uint64_t addr, uint64_t v)
{
	uint32_t a[] = { LO(addr), HI(addr), LO(v), HI(v) };

	fx_emit(c, FX_OP_WAIT, 0, a, 4);
}

/* TIMESTAMP: write the device clock (ns) as a u64 at dst. */
static inline void fx_timestamp(struct fx_cmd *c, uint64_t dst)
{
	uint32_t a[] = { LO(dst), HI(dst) };

	fx_emit(c, FX_OP_TIMESTAMP, 0, a, 2);
}

/* CALL: run the size bytes of commands at ib (an indirect buffer, at most
 * FX_CALL_MAX bytes), unprivileged; nesting deeper than 4 is an error. */
static inline void fx_call(struct fx_cmd *c, uint64_t ib, uint32_t size)
{
	uint32_t a[] = { LO(ib), HI(ib), size };

	fx_emit(c, FX_OP_CALL, 0, a, 3);
}

static inline uint64_t fx_fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static inline uint32_t fx_bo(int fd, uint64_t size)
{
	struct drm_ferrite_gem_create c = { .size = size };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	return c.handle;
}

static inline void *fx_mmap(int fd, uint32_t handle, uint64_t size)
{
	struct drm_ferrite_gem_mmap_offset m = { .handle = handle };
	void *p;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset);
	ftest_assert(p != MAP_FAILED);
	return p;
}

static inline uint32_t fx_vm(int fd)
{
	struct drm_ferrite_vm_create v = { 0 };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, &v));
	return v.vm_id;
}

/* VM_BIND with drm_ferrite_vm_bind.flags (0 or DRM_FERRITE_VM_BIND_ASYNC,
 * interface 0.5): 0, or -1 with errno. */
static inline int fx_vm_bind(int fd, uint32_t vm, uint32_t flags,
			     const struct drm_ferrite_vm_bind_op *ops, uint32_t n,
			     const struct drm_ferrite_sync_op *syncs, uint32_t nsyncs)
{
	struct drm_ferrite_vm_bind b = {
		.vm_id = vm,
		.flags = flags,
		.ops = { .count = n, .stride = sizeof(*ops), .array = (uintptr_t)ops },
		.syncs = { .count = nsyncs, .stride = sizeof(*syncs), .array = (uintptr_t)syncs },
	};

	return ioctl(fd, DRM_IOCTL_FERRITE_VM_BIND, &b);
}

static inline int fx_bind_ops(int fd, uint32_t vm, struct drm_ferrite_vm_bind_op *ops, uint32_t n,
			      struct drm_ferrite_sync_op *syncs, uint32_t nsyncs)
{
	return fx_vm_bind(fd, vm, 0, ops, n, syncs, nsyncs);
}

/* One VM_BIND operation: a MAP of a BO, a MAP to the null aperture
 * (DRM_FERRITE_VM_BIND_NULL, 0.5), an UNMAP, a SYNC_ONLY (0.5). */
static inline struct drm_ferrite_vm_bind_op fx_op_map(uint32_t bo, uint64_t off, uint64_t va,
						      uint64_t size)
{
	return (struct drm_ferrite_vm_bind_op){
		.op = DRM_FERRITE_VM_BIND_OP_MAP, .handle = bo, .bo_offset = off, .va = va,
		.size = size,
	};
}

static inline struct drm_ferrite_vm_bind_op fx_op_null(uint64_t va, uint64_t size)
{
	return (struct drm_ferrite_vm_bind_op){
		.op = DRM_FERRITE_VM_BIND_OP_MAP, .flags = DRM_FERRITE_VM_BIND_NULL, .va = va,
		.size = size,
	};
}

static inline struct drm_ferrite_vm_bind_op fx_op_unmap(uint64_t va, uint64_t size)
{
	return (struct drm_ferrite_vm_bind_op){
		.op = DRM_FERRITE_VM_BIND_OP_UNMAP, .va = va, .size = size,
	};
}

static inline struct drm_ferrite_vm_bind_op fx_op_sync_only(void)
{
	return (struct drm_ferrite_vm_bind_op){ .op = DRM_FERRITE_VM_BIND_OP_SYNC_ONLY };
}

/* Sync ops: wait for / signal a binary sync object, or a timeline point. */
#define FX_WAIT(h) \
	((struct drm_ferrite_sync_op){ .flags = DRM_FERRITE_SYNC_WAIT, .handle = (h) })
#define FX_SIGNAL(h) \
	((struct drm_ferrite_sync_op){ .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = (h) })
#define FX_WAIT_POINT(h, p) \
	((struct drm_ferrite_sync_op){ .flags = DRM_FERRITE_SYNC_WAIT | DRM_FERRITE_SYNC_TIMELINE, \
				       .handle = (h), .point = (p) })
#define FX_SIGNAL_POINT(h, p) \
	((struct drm_ferrite_sync_op){ .flags = DRM_FERRITE_SYNC_SIGNAL | DRM_FERRITE_SYNC_TIMELINE, \
				       .handle = (h), .point = (p) })

/* VM_GET_STATE (interface 0.5): the enum drm_ferrite_vm_state of vm, or
 * -errno. */
static inline int fx_vm_state(int fd, uint32_t vm)
{
	struct drm_ferrite_vm_get_state s = { .vm_id = vm };

	if (ioctl(fd, DRM_IOCTL_FERRITE_VM_GET_STATE, &s))
		return -errno;
	return (int)s.state;
}

/* VM_DESTROY: 0 or -errno. */
static inline int fx_vm_destroy(int fd, uint32_t vm)
{
	struct drm_ferrite_vm_destroy d = { .vm_id = vm };

	return ioctl(fd, DRM_IOCTL_FERRITE_VM_DESTROY, &d) ? -errno : 0;
}

static inline int fx_map_flags(int fd, uint32_t vm, uint32_t bo, uint64_t off, uint64_t va,
			       uint64_t size, uint32_t flags)
{
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_MAP, .flags = flags, .handle = bo,
		.bo_offset = off, .va = va, .size = size,
	};

	return fx_bind_ops(fd, vm, &op, 1, NULL, 0);
}

/* Bind the caller's memory [p, p + size) at the same GPU VA (a userptr,
 * DRM_FERRITE_VM_BIND_USERPTR) with extra VM_BIND flags. */
static inline int fx_bind_user(int fd, uint32_t vm, const volatile void *p, uint64_t size,
			       uint32_t flags)
{
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_MAP,
		.flags = DRM_FERRITE_VM_BIND_USERPTR | flags,
		.va = (uintptr_t)p,
		.size = size,
	};

	return fx_bind_ops(fd, vm, &op, 1, NULL, 0);
}

static inline void fx_map(int fd, uint32_t vm, uint32_t bo, uint64_t va, uint64_t size)
{
	ftest_assert_ok(fx_map_flags(fd, vm, bo, 0, va, size, 0));
}

static inline int fx_unmap(int fd, uint32_t vm, uint64_t va, uint64_t size)
{
	struct drm_ferrite_vm_bind_op op = {
		.op = DRM_FERRITE_VM_BIND_OP_UNMAP, .va = va, .size = size,
	};

	return fx_bind_ops(fd, vm, &op, 1, NULL, 0);
}

static inline uint32_t fx_queue(int fd, uint32_t vm, uint32_t timeout_ms)
{
	struct drm_ferrite_queue_create q = { .vm_id = vm, .timeout_ms = timeout_ms };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &q));
	return q.queue_id;
}

/*
 * QUEUE_CREATE with a priority (enum drm_ferrite_queue_priority) and
 * DRM_FERRITE_QUEUE_CREATE_* flags (interface 1.2): the queue id, or
 * -errno.
 */
static inline int fx_queue_prio(int fd, uint32_t vm, uint32_t timeout_ms, uint32_t priority,
				uint32_t flags)
{
	struct drm_ferrite_queue_create q = {
		.vm_id = vm, .flags = flags, .timeout_ms = timeout_ms, .priority = priority,
	};

	if (ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &q))
		return -errno;
	return (int)q.queue_id;
}

/* QUEUE_DESTROY: 0 or -errno. */
static inline int fx_queue_destroy(int fd, uint32_t q)
{
	struct drm_ferrite_queue_destroy d = { .queue_id = q };

	return ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &d) ? -errno : 0;
}

static inline struct drm_ferrite_dev_info fx_dev_info(int fd)
{
	struct drm_ferrite_dev_info i = { 0 };
	struct drm_ferrite_dev_query q = {
		.type = DRM_FERRITE_DEV_QUERY_INFO, .size = sizeof(i), .pointer = (uintptr_t)&i,
	};

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q));
	return i;
}

/* DEV_QUERY_SCHED (interface 1.2): what the scheduler offers the caller. */
static inline struct drm_ferrite_sched_info fx_sched_info(int fd)
{
	struct drm_ferrite_sched_info i = { 0 };
	struct drm_ferrite_dev_query q = {
		.type = DRM_FERRITE_DEV_QUERY_SCHED, .size = sizeof(i), .pointer = (uintptr_t)&i,
	};

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q));
	ftest_assert_eq(q.size, sizeof(i));
	return i;
}

static inline uint32_t fx_syncobj(int fd)
{
	struct drm_syncobj_create c = { 0 };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, &c));
	return c.handle;
}

/* Wait for a binary sync object; 0, or -ETIME after timeout_ms. */
static inline int fx_syncobj_wait(int fd, uint32_t h, int timeout_ms)
{
	struct timespec ts;
	struct drm_syncobj_wait w = { .handles = (uintptr_t)&h, .count_handles = 1 };

	clock_gettime(CLOCK_MONOTONIC, &ts);
	w.timeout_nsec = ts.tv_sec * 1000000000ll + ts.tv_nsec + timeout_ms * 1000000ll;
	return ioctl(fd, DRM_IOCTL_SYNCOBJ_WAIT, &w) ? -errno : 0;
}

/* Wait for point `point` of a timeline sync object (which must have been
 * added); 0, or -ETIME after timeout_ms. */
static inline int fx_syncobj_wait_point(int fd, uint32_t h, uint64_t point, int timeout_ms)
{
	struct timespec ts;
	struct drm_syncobj_timeline_wait w = {
		.handles = (uintptr_t)&h, .points = (uintptr_t)&point, .count_handles = 1,
	};

	clock_gettime(CLOCK_MONOTONIC, &ts);
	w.timeout_nsec = ts.tv_sec * 1000000000ll + ts.tv_nsec + timeout_ms * 1000000ll;
	return ioctl(fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &w) ? -errno : 0;
}

/* Signal a sync object from the CPU: point 0 gives a binary one a
 * signalled fence, another point adds that point to a timeline. */
static inline void fx_syncobj_signal(int fd, uint32_t h, uint64_t point)
{
	struct drm_syncobj_timeline_array t = {
		.handles = (uintptr_t)&h, .points = (uintptr_t)&point, .count_handles = 1,
	};
	struct drm_syncobj_array a = { .handles = (uintptr_t)&h, .count_handles = 1 };

	if (point)
		ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, &t));
	else
		ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_SIGNAL, &a));
}

/* Whether a sync object holds a fence: one never signalled, nor given a
 * fence by any ioctl, holds none (exporting it fails with EINVAL). */
static inline bool fx_syncobj_has_fence(int fd, uint32_t h)
{
	struct drm_syncobj_handle e = {
		.handle = h, .flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE, .fd = -1,
	};

	if (ioctl(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &e)) {
		ftest_assert_eq(errno, EINVAL);
		return false;
	}
	close(e.fd);
	return true;
}

/* The status of a sync object's fence through a sync_file: 1 signalled,
 * 0 pending, negative the error it signalled with. */
static inline int fx_syncobj_status(int fd, uint32_t h)
{
	struct drm_syncobj_handle e = {
		.handle = h, .flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE, .fd = -1,
	};
	struct sync_file_info info = { 0 };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &e));
	ftest_assert_ok(ioctl(e.fd, SYNC_IOC_FILE_INFO, &info));
	close(e.fd);
	return info.status;
}

/* The status of point `point` (added already) of a timeline sync object,
 * as fx_syncobj_status gives it (through a binary copy). */
static inline int fx_syncobj_point_status(int fd, uint32_t h, uint64_t point)
{
	uint32_t tmp = fx_syncobj(fd);
	struct drm_syncobj_transfer t = { .src_handle = h, .dst_handle = tmp, .src_point = point };
	struct drm_syncobj_destroy d = { .handle = tmp };
	int st;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_TRANSFER, &t));
	st = fx_syncobj_status(fd, tmp);
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d));
	return st;
}

/* DEV_QUERY_FEATURES: the DRM_FERRITE_UAPI_* bits of fd's GPU (none from a
 * kernel older than 0.3, which refuses the query with EINVAL). */
static inline uint64_t fx_uapi_features(int fd)
{
	struct drm_ferrite_uapi_features f = { 0 };
	struct drm_ferrite_dev_query q = {
		.type = DRM_FERRITE_DEV_QUERY_FEATURES, .size = sizeof(f), .pointer = (uintptr_t)&f,
	};

	if (ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q)) {
		ftest_assert_eq(errno, EINVAL);
		return 0;
	}
	return f.features;
}

/* Skip the subtest unless fd's GPU offers every DRM_FERRITE_UAPI_* bit of
 * `want` (`what` names them in the reason). */
static inline void fx_require_uapi(int fd, uint64_t want, const char *what)
{
	uint64_t have = fx_uapi_features(fd);

	if ((have & want) != want)
		ftest_skip("the driver does not offer %s (UAPI feature bits %#llx, need %#llx)", what,
			   (unsigned long long)have, (unsigned long long)want);
}

/* GEM_SYNC: hand a BO between the GPU and the CPU. */
static inline int fx_gem_sync(int fd, uint32_t h, uint32_t flags)
{
	struct drm_ferrite_gem_sync s = { .handle = h, .flags = flags };

	return ioctl(fd, DRM_IOCTL_FERRITE_GEM_SYNC, &s);
}

#define FX_BEGIN_R (DRM_FERRITE_GEM_SYNC_BEGIN | DRM_FERRITE_GEM_SYNC_READ)
#define FX_BEGIN_W (DRM_FERRITE_GEM_SYNC_BEGIN | DRM_FERRITE_GEM_SYNC_WRITE)
#define FX_END_R (DRM_FERRITE_GEM_SYNC_END | DRM_FERRITE_GEM_SYNC_READ)
#define FX_END_W (DRM_FERRITE_GEM_SYNC_END | DRM_FERRITE_GEM_SYNC_WRITE)

/* DMA_BUF_IOCTL_SYNC on a dma-buf fd. */
static inline int fx_dmabuf_sync(int dmabuf, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &s);
}

/* A command buffer BO mapped at va, holding c. */
static inline uint32_t fx_cmdbuf(int fd, uint32_t vm, uint64_t va, const struct fx_cmd *c)
{
	uint32_t bo = fx_bo(fd, 4 * FX_PAGE);
	void *p = fx_mmap(fd, bo, 4 * FX_PAGE);

	memcpy(p, c->dw, c->n * 4);
	munmap(p, 4 * FX_PAGE);
	fx_map(fd, vm, bo, va, 4 * FX_PAGE);
	return bo;
}

static inline int fx_submit_full(int fd, uint32_t queue, uint64_t cmd_va, uint32_t cmd_size,
				 struct drm_ferrite_sync_op *syncs, uint32_t nsyncs,
				 struct drm_ferrite_bo_ref *bos, uint32_t nbos)
{
	struct drm_ferrite_submit s = {
		.queue_id = queue, .cmd_va = cmd_va, .cmd_size = cmd_size,
		.syncs = { .count = nsyncs, .stride = sizeof(*syncs), .array = (uintptr_t)syncs },
		.bos = { .count = nbos, .stride = sizeof(*bos), .array = (uintptr_t)bos },
	};

	return ioctl(fd, DRM_IOCTL_FERRITE_SUBMIT, &s);
}

/* Submit and signal the binary sync object `out`. */
static inline int fx_submit(int fd, uint32_t queue, uint64_t cmd_va, uint32_t cmd_size, uint32_t out)
{
	struct drm_ferrite_sync_op s = { .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = out };

	return fx_submit_full(fd, queue, cmd_va, cmd_size, &s, out ? 1 : 0, NULL, 0);
}

/* Run c (written to a fresh command buffer at cmd_va) and wait for it;
 * returns the fence status (1 done, < 0 error). */
static inline int fx_run(int fd, uint32_t vm, uint32_t queue, uint64_t cmd_va, const struct fx_cmd *c)
{
	uint32_t so = fx_syncobj(fd);
	uint32_t bo = fx_cmdbuf(fd, vm, cmd_va, c);
	int st;

	ftest_assert_ok(fx_submit(fd, queue, cmd_va, c->n * 4, so));
	ftest_assert_ok(fx_syncobj_wait(fd, so, 10000));
	st = fx_syncobj_status(fd, so);
	ftest_assert_ok(fx_unmap(fd, vm, cmd_va, 4 * FX_PAGE));
	struct drm_gem_close gc = { .handle = bo };
	ioctl(fd, DRM_IOCTL_GEM_CLOSE, &gc);
	struct drm_syncobj_destroy d = { .handle = so };
	ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
	return st;
}

static inline struct drm_ferrite_counters fx_counters(int fd)
{
	struct drm_ferrite_counters c;
	struct drm_ferrite_dev_query q = {
		.type = DRM_FERRITE_DEV_QUERY_COUNTERS, .size = sizeof(c), .pointer = (uintptr_t)&c,
	};

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q));
	return c;
}

static inline struct drm_ferrite_queue_get_state fx_state(int fd, uint32_t q, uint32_t flags)
{
	struct drm_ferrite_queue_get_state s = { .queue_id = q, .flags = flags };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_GET_STATE, &s));
	return s;
}

/* Wait for child pid and require it to have exited with status 0. */
static inline void fx_reap(pid_t pid)
{
	int status;

	ftest_assert(pid > 0);
	ftest_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ftest_fail("child %d: wait status %#x", (int)pid, status);
}

static inline void fx_gem_close(int fd, uint32_t h)
{
	struct drm_gem_close c = { .handle = h };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c));
}

static inline void fx_syncobj_destroy(int fd, uint32_t h)
{
	struct drm_syncobj_destroy d = { .handle = h };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d));
}

/*
 * The path of file `name` in the debugfs directory of the GPU behind fd,
 * /sys/kernel/debug/ferrite-<PCI device name>/<name>, in buf: 0 if it
 * exists, else -errno (-ENOENT without debugfs) with the path still in buf
 * for the message.
 */
static inline int fx_debugfs_path(int fd, const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX];
	const char *dev;

	fdev_sysfs_dir(fd, dir, sizeof(dir));
	dev = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (snprintf(buf, len, "/sys/kernel/debug/ferrite-%s/%s", dev, name) >= (int)len)
		return -ENAMETOOLONG;
	return access(buf, F_OK) ? -errno : 0;
}

/* Write the string `val` to file `name` of the debugfs directory of fd's
 * GPU: 0, or -errno (-ENOENT without debugfs or without the file). */
static inline int fx_debugfs_write(int fd, const char *name, const char *val)
{
	char path[PATH_MAX];
	ssize_t n;
	int f, r = fx_debugfs_path(fd, name, path, sizeof(path));

	if (r)
		return r;
	f = open(path, O_WRONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = write(f, val, strlen(val));
	r = n < 0 ? -errno : n == (ssize_t)strlen(val) ? 0 : -EIO;
	close(f);
	return r;
}

/* The value of drm-engine-queue (the time the file's jobs spent on the
 * GPU's rings, in ns) in the fdinfo of the file `fd` of process `pid` (0:
 * this one); -1 when it is not listed. */
static inline long long fx_fdinfo_engine_ns_of(int pid, int fd)
{
	char path[64], buf[4096];
	unsigned long long ns;
	const char *k;
	int f, n, total = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	while (total < (int)sizeof(buf) - 1 &&
	       (n = read(f, buf + total, sizeof(buf) - 1 - total)) > 0)
		total += n;
	close(f);
	buf[total] = 0;
	k = strstr(buf, "drm-engine-queue:");
	if (!k || sscanf(k, "drm-engine-queue: %llu ns", &ns) != 1)
		return -1;
	return (long long)ns;
}

/* The same for one of this process's files. */
static inline long long fx_fdinfo_engine_ns(int fd)
{
	return fx_fdinfo_engine_ns_of(0, fd);
}

/* Export a BO as a dma-buf (close-on-exec, writable mappings): its fd. */
static inline int fx_export(int fd, uint32_t handle)
{
	struct drm_prime_handle p = { .handle = handle, .flags = DRM_CLOEXEC | DRM_RDWR };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p));
	return p.fd;
}

/* The vgem device's primary node (the module loaded on demand; it may be
 * built in), or -1 without one. */
static inline int fx_vgem_open(void)
{
	if (system("modprobe vgem 2>/dev/null")) {
		/* the search below decides */
	}
	return fdev_open_node("/dev/dri/card", 0, 64, "vgem", 0);
}

/* Read all of a file into buf (NUL-terminated); the length or -errno. */
static inline int fx_slurp(const char *path, char *buf, size_t len)
{
	int f = open(path, O_RDONLY), n, total = 0;

	if (f < 0)
		return -errno;
	while (total < (int)len - 1 && (n = read(f, buf + total, len - 1 - total)) > 0)
		total += n;
	close(f);
	buf[total] = 0;
	return total;
}

/* Discard every devcoredump: a device keeps only its first dump until it
 * is read, and the core removes a discarded one asynchronously. */
static inline void fx_discard_coredumps(void)
{
	for (int tries = 0; tries < 100; tries++) {
		DIR *d = opendir("/sys/class/devcoredump");
		struct dirent *e;
		int left = 0;

		while (d && (e = readdir(d))) {
			char path[320];
			int f;

			if (strncmp(e->d_name, "devcd", 5))
				continue;
			left++;
			snprintf(path, sizeof(path), "/sys/class/devcoredump/%s/data", e->d_name);
			f = open(path, O_WRONLY);
			if (f >= 0) {
				if (write(f, "1", 1) != 1)
					ftest_fail("discard %s: %s", path, strerror(errno));
				close(f);
			}
		}
		if (d)
			closedir(d);
		if (!left)
			return;
		usleep(50000);
	}
}

/* Wait up to 5 s for a Ferrite devcoredump holding each of the n strings
 * of want (a dump is written by a work item after the failed fence
 * signalled); discard it. */
static inline bool fx_find_coredump(const char *const *want, int n)
{
	static char buf[1 << 20];

	for (int tries = 0; tries < 100; tries++) {
		if (tries)
			usleep(50000);
		for (int i = 0; i < 256; i++) {
			char path[64];
			bool all = true;
			int f;

			snprintf(path, sizeof(path), "/sys/class/devcoredump/devcd%d/data", i);
			if (fx_slurp(path, buf, sizeof(buf)) <= 0 || !strstr(buf, "ferrite coredump"))
				continue;
			for (int k = 0; k < n && all; k++)
				all = strstr(buf, want[k]) != NULL;
			if (!all)
				continue;
			f = open(path, O_WRONLY);
			ftest_assert(f >= 0 && write(f, "1", 1) == 1);
			close(f);
			return true;
		}
	}
	return false;
}

/* Buffer objects the driver lists in debugfs, over all Ferrite GPUs; -1
 * without debugfs. */
/* Copy file `name` of every Ferrite GPU's debugfs directory to stderr
 * (what a failing test leaves for its log). */
static inline void fx_debugfs_dump(const char *name)
{
	DIR *d = opendir("/sys/kernel/debug");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512], line[256];
		FILE *f;

		if (strncmp(e->d_name, "ferrite-", 8))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s", e->d_name, name);
		f = fopen(path, "r");
		if (!f)
			continue;
		fprintf(stderr, "== %s\n", path);
		while (fgets(line, sizeof(line), f))
			fputs(line, stderr);
		fclose(f);
	}
	closedir(d);
}

static inline int fx_debugfs_bos(void)
{
	DIR *d = opendir("/sys/kernel/debug");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[512], line[256];
		FILE *f;

		if (strncmp(e->d_name, "ferrite-", 8))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/gem", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "id size", 7))
				n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

#endif
