// SPDX-License-Identifier: MIT
/*
 * ferrite_query: the DEV_QUERY types of interface 0.3: a calibrated sample
 * of the GPU timestamp against CLOCK_MONOTONIC and CLOCK_MONOTONIC_RAW
 * (checked against the CPU's clocks and against the TIMESTAMP command),
 * the memory budget, the MMU's ranges and page sizes (checked against
 * VM_BIND), and the UAPI feature bits; and 0.6's CPU and GPU page sizes
 * (checked against sysconf, GEM_CREATE, mmap, VM_BIND and a job).
 */
#include <sys/sysinfo.h>

#include "lib/fexec.h"

/* DEV_QUERY of type into buf (size bytes): 0 or -errno; *out the size the
 * kernel reported. */
static int query(int fd, uint32_t type, void *buf, uint32_t size, uint32_t *out)
{
	struct drm_ferrite_dev_query q = { .type = type, .size = size, .pointer = (uintptr_t)buf };
	int r = ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q) ? -errno : 0;

	if (out)
		*out = q.size;
	return r;
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	ftest_assert_ok(clock_gettime(c, &ts));
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct drm_ferrite_timestamp_info timestamp(int fd)
{
	struct drm_ferrite_timestamp_info t;
	uint32_t n;

	memset(&t, 0xff, sizeof(t));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_TIMESTAMP, &t, sizeof(t), &n));
	ftest_assert_eq(n, sizeof(t));
	return t;
}

/* A GPU timestamp as CLOCK_MONOTONIC, through the sample t (the
 * conversion the header documents). */
static int64_t gpu_to_mono(const struct drm_ferrite_timestamp_info *t, uint64_t gpu)
{
	int64_t ticks = (int64_t)(gpu - t->gpu_timestamp);

	return (int64_t)t->cpu_monotonic_ns +
	       (int64_t)((__int128)ticks * 1000000000 / (__int128)t->timestamp_frequency);
}

/*
 * Each sample's CPU times lie between CPU clock reads taken around the
 * ioctl, with a window no wider than the ioctl; the device clock moves
 * forward with CLOCK_MONOTONIC. A TIMESTAMP command's value, converted to
 * CLOCK_MONOTONIC with a sample taken before the job, falls between CPU
 * reads taken before the submit and after the job's fence signalled,
 * give or take the sample's window.
 */
static void test_timestamp_calibrated(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_timestamp_info prev = { 0 }, t;
	uint32_t n = 0, vm, q, bo, so;
	struct drm_ferrite_bo_ref ref;
	struct fx_cmd c = { .n = 0 };
	volatile uint64_t *p;
	uint64_t max_window = 0;

	/* A null pointer asks for the size; a short buffer gets a prefix. */
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_TIMESTAMP, NULL, 0, &n));
	ftest_assert_eq(n, sizeof(t));
	memset(&t, 0, sizeof(t));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_TIMESTAMP, &t, 8, &n));
	ftest_assert_eq(n, 8);
	ftest_assert_eq_u64(t.timestamp_frequency, 1000000000ull);
	ftest_assert_eq(t.gpu_timestamp, 0);

	for (int i = 0; i < 50; i++) {
		uint64_t m0 = clock_ns(CLOCK_MONOTONIC), r0 = clock_ns(CLOCK_MONOTONIC_RAW);
		uint64_t r1, m1;

		t = timestamp(fd);
		r1 = clock_ns(CLOCK_MONOTONIC_RAW);
		m1 = clock_ns(CLOCK_MONOTONIC);
		ftest_assert_eq_u64(t.timestamp_frequency, 1000000000ull);
		if (t.cpu_monotonic_ns < m0 || t.cpu_monotonic_ns > m1)
			ftest_fail("sample %d: monotonic %llu outside %llu..%llu", i,
				   (unsigned long long)t.cpu_monotonic_ns,
				   (unsigned long long)m0, (unsigned long long)m1);
		if (t.cpu_monotonic_raw_ns < r0 || t.cpu_monotonic_raw_ns > r1)
			ftest_fail("sample %d: monotonic_raw %llu outside %llu..%llu", i,
				   (unsigned long long)t.cpu_monotonic_raw_ns,
				   (unsigned long long)r0, (unsigned long long)r1);
		ftest_assert(t.sample_window_ns <= m1 - m0);
		/* The sample's midpoint is at least half the window from the
		 * ends of the ioctl. */
		ftest_assert(t.cpu_monotonic_ns - t.sample_window_ns / 2 >= m0);
		ftest_assert(t.cpu_monotonic_ns + t.sample_window_ns / 2 <= m1);
		if (i) {
			int64_t dgpu = (int64_t)(t.gpu_timestamp - prev.gpu_timestamp);
			int64_t dcpu = (int64_t)(t.cpu_monotonic_ns - prev.cpu_monotonic_ns);
			/* Each sample is exact to half its window; the two
			 * clocks may drift apart by 1% at most. */
			int64_t slack = (int64_t)(t.sample_window_ns + prev.sample_window_ns) / 2 +
					dcpu / 100 + 1000;

			ftest_assert(dgpu > 0);
			if (llabs(dgpu - dcpu) > slack)
				ftest_fail("sample %d: the GPU clock moved %lld ns, CLOCK_MONOTONIC %lld ns (slack %lld)",
					   i, (long long)dgpu, (long long)dcpu, (long long)slack);
		}
		if (t.sample_window_ns > max_window)
			max_window = t.sample_window_ns;
		prev = t;
	}
	printf("sample window: last %llu ns, widest %llu ns\n",
	       (unsigned long long)t.sample_window_ns, (unsigned long long)max_window);

	/* The TIMESTAMP command. */
	vm = fx_vm(fd);
	q = fx_queue(fd, vm, 0);
	bo = fx_bo(fd, FX_PAGE);
	fx_map(fd, vm, bo, FX_VA(1), FX_PAGE);
	fx_timestamp(&c, FX_VA(1));
	fx_cmdbuf(fd, vm, FX_VA(2), &c);
	p = fx_mmap(fd, bo, FX_PAGE);
	ref = (struct drm_ferrite_bo_ref){ .handle = bo, .flags = DRM_FERRITE_BO_REF_WRITE };
	for (int i = 0; i < 10; i++) {
		struct drm_ferrite_sync_op s;
		uint64_t t0, t1, gpu;
		int64_t cpu, slack;

		so = fx_syncobj(fd);
		s = (struct drm_ferrite_sync_op){ .flags = DRM_FERRITE_SYNC_SIGNAL, .handle = so };
		t = timestamp(fd);
		t0 = clock_ns(CLOCK_MONOTONIC);
		ftest_assert_ok(fx_submit_full(fd, q, FX_VA(2), c.n * 4, &s, 1, &ref, 1));
		ftest_assert_ok(fx_syncobj_wait(fd, so, 10000));
		t1 = clock_ns(CLOCK_MONOTONIC);
		ftest_assert_eq(fx_syncobj_status(fd, so), 1);
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
		gpu = p[0];
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
		cpu = gpu_to_mono(&t, gpu);
		/* The documented uncertainty, half the window, as much again,
		 * and 1% of the time since the sample for the clocks' drift. */
		slack = (int64_t)t.sample_window_ns + (int64_t)(t1 - t.cpu_monotonic_ns) / 100;
		if (cpu < (int64_t)t0 - slack || cpu > (int64_t)t1 + slack)
			ftest_fail("job %d: TIMESTAMP %llu is CLOCK_MONOTONIC %lld, outside %llu..%llu (slack %lld)",
				   i, (unsigned long long)gpu, (long long)cpu,
				   (unsigned long long)t0, (unsigned long long)t1, (long long)slack);
		if (i == 0)
			printf("job: submitted at %llu, TIMESTAMP at %lld, signalled by %llu (window %llu)\n",
			       (unsigned long long)t0, (long long)cpu, (unsigned long long)t1,
			       (unsigned long long)t.sample_window_ns);
		fx_syncobj_destroy(fd, so);
	}
	munmap((void *)p, FX_PAGE);
	close(fd);
}

/* The memory figures on each GPU: the device's reach caps the total, the
 * budget lies within it, a first use of more than the budget fails. */
static void test_memory(void)
{
	struct sysinfo si;

	ftest_assert_ok(sysinfo(&si));
	for (int g = 0; g < 2; g++) {
		int fd = g ? fdev_open_render(g) : fdev_open_or_skip(g);
		struct drm_ferrite_memory_info m;
		struct drm_ferrite_dev_info info;
		uint64_t ram = (uint64_t)si.totalram * si.mem_unit, big;
		uint32_t n, bo, vm;

		if (fd < 0)
			continue;
		info = fx_dev_info(fd);
		memset(&m, 0xff, sizeof(m));
		ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MEMORY, NULL, 0, &n));
		ftest_assert_eq(n, sizeof(m));
		ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MEMORY, &m, sizeof(m), &n));
		ftest_assert_eq(n, sizeof(m));
		printf("gpu %d (%u-bit): total %llu, available %llu, RAM %llu\n", g,
		       info.dma_addr_bits, (unsigned long long)m.total,
		       (unsigned long long)m.available, (unsigned long long)ram);
		ftest_assert(m.total > 0 && m.total <= ram);
		if (info.dma_addr_bits < 64)
			ftest_assert(m.total <= 1ull << info.dma_addr_bits);
		if (ram <= (1ull << info.dma_addr_bits))
			ftest_assert_eq_u64(m.total, ram);
		ftest_assert(m.available > (16ull << 20) && m.available <= m.total);
		ftest_assert_eq_u64(m.max_bo_size, 64ull << 30);

		/* Within the budget, a first use succeeds; well beyond it
		 * (half as much again as the budget), it fails. */
		vm = fx_vm(fd);
		bo = fx_bo(fd, 16 << 20);
		fx_map(fd, vm, bo, FX_VA(1), 16 << 20);
		big = (m.available + m.available / 2 + (64ull << 20)) & ~(FX_PAGE - 1);
		if (big <= m.max_bo_size) {
			uint32_t b2 = fx_bo(fd, big);

			ftest_assert_errno(fx_map_flags(fd, vm, b2, 0, FX_VA(64), big, 0), ENOMEM);
			fx_gem_close(fd, b2);
		}
		close(fd);
	}
}

/* The MMU figures agree with DEV_QUERY_INFO and with what VM_BIND takes. */
static void test_mmu(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_dev_info info = fx_dev_info(fd);
	struct drm_ferrite_mmu_info m;
	uint32_t n, vm = fx_vm(fd), bo = fx_bo(fd, 2 * FX_PAGE);

	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MMU, NULL, 0, &n));
	ftest_assert_eq(n, sizeof(m));
	memset(&m, 0xff, sizeof(m));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MMU, &m, sizeof(m), &n));
	ftest_assert_eq(n, sizeof(m));
	ftest_assert_eq(m.va_bits, 48);
	ftest_assert_eq(m.va_bits, info.va_bits);
	/* The CPU page (4 KiB, or 16 KiB on an arm64 guest), not the GPU's. */
	ftest_assert_eq(m.bind_alignment, FX_PAGE);
	ftest_assert_eq_u64(m.user_va_start, info.va_start);
	ftest_assert_eq_u64(m.user_va_end, info.va_end);
	ftest_assert(m.user_va_start >= FX_PAGE && m.user_va_start < m.user_va_end);
	ftest_assert_eq_u64(m.user_va_start % m.bind_alignment, 0);
	ftest_assert_eq_u64(m.user_va_end % m.bind_alignment, 0);
	ftest_assert_eq_u64(m.kernel_va_start, m.user_va_end);
	ftest_assert_eq_u64(m.kernel_va_end, 1ull << m.va_bits);
	ftest_assert_eq_u64(m.page_sizes, info.page_sizes);
	ftest_assert_eq_u64(m.page_sizes, (1ull << 12) | (1ull << 21) | (1ull << 30));

	/* The edges of the user range. */
	ftest_assert_ok(fx_map_flags(fd, vm, bo, 0, m.user_va_start, FX_PAGE, 0));
	ftest_assert_ok(fx_map_flags(fd, vm, bo, 0, m.user_va_end - FX_PAGE, FX_PAGE, 0));
	ftest_assert_errno(fx_map_flags(fd, vm, bo, 0, m.user_va_start - FX_PAGE, FX_PAGE, 0),
			   EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm, bo, 0, m.user_va_end - FX_PAGE, 2 * FX_PAGE, 0),
			   EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm, bo, 0, m.kernel_va_start, FX_PAGE, 0), EINVAL);
	/* The alignment. */
	ftest_assert_errno(fx_map_flags(fd, vm, bo, 0, FX_VA(1) + m.bind_alignment / 2,
					FX_PAGE, 0), EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm, bo, m.bind_alignment / 2, FX_VA(1), FX_PAGE, 0),
			   EINVAL);
	close(fd);
}

/*
 * The page sizes of 0.6: the GPU page is 4 KiB, the CPU page is the
 * kernel's (sysconf), bind_alignment is the larger, and the smallest bit of
 * page_sizes is the GPU page. A caller that knows only the 48 bytes of 0.3
 * gets them. Then what the sizes mean: a BO of one GPU page takes a CPU
 * page (GEM_CREATE, BO_QUERY_INFO, mmap), a bind aligned to the GPU page
 * only is refused where the CPU page is larger, and a job writes every GPU
 * page of a bound CPU page (each mapped by its own entry), which the CPU
 * reads back through the BO's mapping.
 */
static void test_page_sizes(void)
{
	const uint64_t cpu = (uint64_t)sysconf(_SC_PAGESIZE);
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_mmu_info m, old;
	struct drm_ferrite_gem_create c = { .size = FX_GPU_PAGE };
	struct drm_ferrite_bo_query_info qi = { 0 };
	uint32_t n, vm, q;
	volatile uint64_t *p;
	struct fx_cmd cmd = { 0 };

	fx_require_uapi(fd, DRM_FERRITE_UAPI_PAGE_SIZES, "CPU and GPU page sizes");
	memset(&m, 0xff, sizeof(m));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MMU, &m, sizeof(m), &n));
	ftest_assert_eq(n, sizeof(m));
	ftest_assert_eq(m.gpu_page_size, 4096);
	ftest_assert_eq_u64(m.cpu_page_size, cpu);
	ftest_assert_eq(m.bind_alignment,
			m.cpu_page_size > m.gpu_page_size ? m.cpu_page_size : m.gpu_page_size);
	ftest_assert_eq_u64(m.page_sizes & -m.page_sizes, m.gpu_page_size);
	/* A 0.3 caller's 48 bytes: a prefix, nothing written beyond. */
	memset(&old, 0xa5, sizeof(old));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_MMU, &old, 48, &n));
	ftest_assert_eq(n, 48);
	ftest_assert_eq(old.bind_alignment, m.bind_alignment);
	ftest_assert_eq_u64(old.page_sizes, m.page_sizes);
	ftest_assert_eq(old.cpu_page_size, 0xa5a5a5a5);
	ftest_assert_eq(old.gpu_page_size, 0xa5a5a5a5);

	/* One GPU page of BO is one CPU page. */
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	ftest_assert_eq_u64(c.size, m.cpu_page_size);
	qi.handle = c.handle;
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_BO_QUERY_INFO, &qi));
	ftest_assert_eq_u64(qi.size, m.cpu_page_size);
	p = fx_mmap(fd, c.handle, c.size);

	/* Binds in CPU pages; where the CPU page is larger, a GPU page is
	 * not enough for any of va, size and bo_offset. */
	vm = fx_vm(fd);
	if (m.cpu_page_size > m.gpu_page_size) {
		uint32_t big = fx_bo(fd, 2 * m.cpu_page_size);

		ftest_assert_errno(fx_map_flags(fd, vm, big, 0, FX_VA(1) + m.gpu_page_size,
						m.cpu_page_size, 0), EINVAL);
		ftest_assert_errno(fx_map_flags(fd, vm, big, 0, FX_VA(1), m.gpu_page_size, 0),
				   EINVAL);
		ftest_assert_errno(fx_map_flags(fd, vm, big, m.gpu_page_size, FX_VA(1),
						m.cpu_page_size, 0), EINVAL);
		ftest_assert_errno(fx_unmap(fd, vm, FX_VA(1), m.gpu_page_size), EINVAL);
		fx_gem_close(fd, big);
	}
	ftest_assert_ok(fx_map_flags(fd, vm, c.handle, 0, FX_VA(1), m.cpu_page_size, 0));

	/* The GPU writes the last u64 of each GPU page of the CPU page. */
	for (uint64_t off = 0; off < m.cpu_page_size; off += m.gpu_page_size)
		fx_write64(&cmd, FX_VA(1) + off + m.gpu_page_size - 8, 0x9a9e0000 + off, 0);
	fx_write64(&cmd, FX_VA(1), 0x5eed, FX_W64_FLUSH);
	q = fx_queue(fd, vm, 0);
	ftest_assert_eq(fx_run(fd, vm, q, FX_VA(2), &cmd), 1);
	ftest_assert_ok(fx_gem_sync(fd, c.handle, FX_BEGIN_R));
	ftest_assert_eq_u64(p[0], 0x5eed);
	for (uint64_t off = 0; off < m.cpu_page_size; off += m.gpu_page_size)
		ftest_assert_eq_u64(p[(off + m.gpu_page_size - 8) / 8], 0x9a9e0000 + off);
	ftest_assert_ok(fx_gem_sync(fd, c.handle, FX_END_R));
	munmap((void *)p, c.size);
	close(fd);
}

/* Every addition since 0.1 has its bit, no unknown bit is set, and the
 * version agrees; NULL binds only where the hardware has the null
 * aperture. */
static void test_features(void)
{
	uint64_t want = DRM_FERRITE_UAPI_SCHED | DRM_FERRITE_UAPI_TIMESTAMP |
			DRM_FERRITE_UAPI_BO_LABEL | DRM_FERRITE_UAPI_NO_MMAP |
			DRM_FERRITE_UAPI_BO_QUERY_INFO | DRM_FERRITE_UAPI_MEMORY |
			DRM_FERRITE_UAPI_MMU | DRM_FERRITE_UAPI_VM_PRIVATE |
			DRM_FERRITE_UAPI_ASYNC_BIND | DRM_FERRITE_UAPI_PAGE_SIZES;
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_uapi_features f = { 0 };
	struct drm_ferrite_dev_info info = fx_dev_info(fd);
	char name[32];
	struct drm_version v = { .name = name, .name_len = sizeof(name) };
	uint32_t n;

	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_FEATURES, NULL, 0, &n));
	ftest_assert_eq(n, sizeof(f));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_FEATURES, &f, sizeof(f), &n));
	ftest_assert_eq(n, sizeof(f));
	if (info.features & DRM_FERRITE_FEATURE_NULL_APERTURE)
		want |= DRM_FERRITE_UAPI_NULL_BIND;
	/* Mirror VMs (0.7) only where the GPU can mirror: DMA-coherent and
	 * not bounced (ferrite_svm@refused-without-mirroring checks the
	 * flag against the bit), with stall mode and preemption. */
	if (f.features & DRM_FERRITE_UAPI_MIRROR) {
		ftest_assert(info.features & DRM_FERRITE_FEATURE_STALL);
		ftest_assert(info.features & DRM_FERRITE_FEATURE_PREEMPT);
		want |= DRM_FERRITE_UAPI_MIRROR;
	}
	ftest_assert_eq_u64(f.features, want);
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_VERSION, &v));
	ftest_assert_eq(v.version_major, 0);
	ftest_assert(v.version_minor >= 6);
	ftest_assert_eq(info.uapi_version, (0u << 16) | (uint32_t)v.version_minor);
	/* The hardware's features are another field. */
	ftest_assert(info.features & DRM_FERRITE_FEATURE_TIMESTAMP);
	/* An unknown query type is still refused. */
	ftest_assert_eq(query(fd, DRM_FERRITE_DEV_QUERY_FEATURES + 1, &f, sizeof(f), &n), -EINVAL);
	close(fd);
}

FTEST_MAIN(
	{ "timestamp-calibrated", test_timestamp_calibrated, "the calibrated sample bounds the CPU clocks and converts TIMESTAMP values to CLOCK_MONOTONIC" },
	{ "memory", test_memory, "the memory total and budget on each GPU; a first use beyond the budget fails" },
	{ "mmu", test_mmu, "VA bits, user and driver ranges, page sizes, checked against VM_BIND" },
	{ "features", test_features, "one bit per UAPI addition since 0.1, and the version" },
	{ "page-sizes", test_page_sizes, "the CPU and GPU page sizes and bind_alignment, checked against sysconf, GEM_CREATE, VM_BIND and a job writing every GPU page of a CPU page" },
)
