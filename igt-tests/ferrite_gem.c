// SPDX-License-Identifier: MIT
/*
 * ferrite_gem: DEV_QUERY, GEM_CREATE and GEM_MMAP_OFFSET through the real
 * ioctls, with their bad-input tables.
 */
#include <drm/ferrite_drm.h>

#include "lib/fdev.h"

static int query(int fd, uint32_t type, void *buf, uint32_t *size)
{
	struct drm_ferrite_dev_query q = {
		.type = type, .size = *size, .pointer = (uintptr_t)buf,
	};
	int r = ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q);

	*size = q.size;
	return r;
}

static void test_query_info(void)
{
	int fd = fdev_open_or_skip(0);
	volatile uint32_t *bar = fdev_map_bar0(fd);
	struct drm_ferrite_dev_info info;
	uint32_t size = 0;

	/* A null pointer asks for the size. */
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_INFO, NULL, &size));
	ftest_assert_eq(size, sizeof(info));
	memset(&info, 0xff, sizeof(info));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_INFO, &info, &size));
	ftest_assert_eq(info.hw_version, bar[FERRITE_REG_VERSION / 4]);
	ftest_assert_eq(info.dma_addr_bits, bar[FERRITE_REG_DMA_ADDR_BITS / 4]);
	ftest_assert_eq(info.dma_max_segment, bar[FERRITE_REG_DMA_MAX_SEGMENT / 4]);
	ftest_assert_eq(info.num_queues, 8);
	ftest_assert_eq(info.num_as, 16);
	ftest_assert_eq(info.va_bits, 48);
	ftest_assert(info.va_start > 0 && info.va_start < info.va_end);
	ftest_assert(info.va_end <= (1ull << 48));
	ftest_assert(info.page_sizes & 4096); /* the 4 KiB GPU page */
	ftest_assert_eq(info.uapi_version >> 16, 0);
	/* A short buffer gets a prefix. */
	size = 8;
	memset(&info, 0, sizeof(info));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_INFO, &info, &size));
	ftest_assert_eq(size, 8);
	ftest_assert(info.hw_version != 0 && info.dma_addr_bits == 0);
	close(fd);
}

static void test_query_counters(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_counters a, b;
	uint32_t size = sizeof(a);

	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_COUNTERS, &a, &size));
	ftest_assert_eq(size, sizeof(a));
	ftest_assert_ok(query(fd, DRM_FERRITE_DEV_QUERY_COUNTERS, &b, &size));
	/* Reading the counters reads registers: the MMIO read counter moves. */
	ftest_assert(b.hw[0] > a.hw[0]);
	ftest_assert_eq(b.kmap_user_bytes, 0);
	close(fd);
}

static void test_query_bad(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_dev_info info;
	uint32_t size = sizeof(info);

	ftest_assert_errno(query(fd, 99, &info, &size), EINVAL);
	size = sizeof(info);
	ftest_assert_errno(query(fd, DRM_FERRITE_DEV_QUERY_INFO, (void *)8, &size), EFAULT);
	close(fd);
}

static uint32_t gem_create(int fd, uint64_t size)
{
	struct drm_ferrite_gem_create c = { .size = size };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	ftest_assert(c.handle != 0);
	return c.handle;
}

static void *gem_mmap(int fd, uint32_t handle, size_t size)
{
	struct drm_ferrite_gem_mmap_offset m = { .handle = handle };
	void *p;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset);
	if (p == MAP_FAILED)
		ftest_fail("mmap: %s", strerror(errno));
	return p;
}

static void gem_close(int fd, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c));
}

static void test_create_mmap(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_gem_create c = { .size = 5000 };
	/* Rounded up to CPU pages: 8192 with 4 KiB pages, 16384 with 16 KiB. */
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	const uint64_t size = (5000 + page - 1) / page * page;
	const int words = (int)(size / 4);
	uint32_t *p;

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	ftest_assert_eq_u64(c.size, size);
	p = gem_mmap(fd, c.handle, size);
	for (int i = 0; i < words; i++)
		ftest_assert_eq(p[i], 0); /* new objects are zeroed */
	for (int i = 0; i < words; i++)
		p[i] = 0x1000 + i;
	munmap(p, size);
	/* The data lives in the object, not the mapping. */
	p = gem_mmap(fd, c.handle, size);
	for (int i = 0; i < words; i++)
		ftest_assert_eq(p[i], 0x1000 + i);
	munmap(p, size);
	gem_close(fd, c.handle);
	/* One byte takes one CPU page, not one 4 KiB GPU page. */
	c = (struct drm_ferrite_gem_create){ .size = 1 };
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c));
	ftest_assert_eq_u64(c.size, page);
	gem_close(fd, c.handle);
	close(fd);
}

static void test_create_bad(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_gem_create c;

	c = (struct drm_ferrite_gem_create){ .size = 0 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	/* Flags unknown to 0.4 (bit 0 is NO_MMAP, bit 1 VM_PRIVATE). */
	c = (struct drm_ferrite_gem_create){ .size = 4096, .flags = 1 << 2 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	c = (struct drm_ferrite_gem_create){ .size = 4096, .flags = 1u << 31 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	c = (struct drm_ferrite_gem_create){ .size = (1ull << 36) + 1 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	c = (struct drm_ferrite_gem_create){ .size = ~0ull };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_CREATE, &c), EINVAL);
	close(fd);
}

static void test_mmap_offset_bad(void)
{
	int fd = fdev_open_or_skip(0);
	struct drm_ferrite_gem_mmap_offset m = { .handle = 12345 };
	uint32_t h = gem_create(fd, 4096);

	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m), ENOENT);
	m = (struct drm_ferrite_gem_mmap_offset){ .handle = h, .flags = 2 };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m), EINVAL);
	gem_close(fd, h);
	/* A closed handle is gone. */
	m = (struct drm_ferrite_gem_mmap_offset){ .handle = h };
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m), ENOENT);
	close(fd);
}

/* Handles are per file: another file cannot use them. */
static void test_handles_are_per_file(void)
{
	int a = fdev_open_or_skip(0), b = fdev_open_or_skip(0);
	uint32_t h = gem_create(a, 4096);
	struct drm_ferrite_gem_mmap_offset m = { .handle = h };

	ftest_assert_errno(ioctl(b, DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET, &m), ENOENT);
	close(a);
	close(b);
}

/* Many objects, then close the file with them open: nothing leaks or splats. */
static void test_many_objects(void)
{
	int fd = fdev_open_or_skip(0);

	for (int i = 0; i < 512; i++)
		gem_create(fd, 4096 * (1 + i % 7));
	close(fd);
}

/* The value of an fdinfo key, in KiB (the kernel prints KiB or MiB). */
static long long fdinfo_kib(int fd, const char *key)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	ftest_assert(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(key);
		char unit[8] = "";

		if (strncmp(line, key, n) || line[n] != ':')
			continue;
		if (sscanf(line + n + 1, "%lld %7s", &v, unit) < 1)
			ftest_fail("cannot parse %s", line);
		if (!strcmp(unit, "MiB"))
			v *= 1024;
		else if (!strcmp(unit, "GiB"))
			v *= 1024 * 1024;
		else if (!unit[0])
			v /= 1024; /* bytes */
	}
	fclose(f);
	return v;
}

static int fdinfo_has(int fd, const char *text)
{
	char path[64], buf[4096] = { 0 };
	int f, n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	ftest_assert(f >= 0);
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	return n > 0 && strstr(buf, text) != NULL;
}

/* fdinfo shows the client with the standard drm-* keys (gputop, nvtop). */
static void test_fdinfo(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t a = gem_create(fd, 64 << 10), b = gem_create(fd, 128 << 10);
	char *p;

	ftest_assert(fdinfo_has(fd, "drm-driver:\tferrite\n"));
	ftest_assert(fdinfo_has(fd, "drm-client-id:\t"));
	ftest_assert(fdinfo_has(fd, "drm-pdev:\t"));
	ftest_assert_eq(fdinfo_kib(fd, "drm-total-memory"), 192);
	/* The core prints drm-resident-* only once some object is resident. */
	ftest_assert(fdinfo_kib(fd, "drm-resident-memory") <= 0);
	/* Touching an object gives it pages: it becomes resident. */
	p = gem_mmap(fd, a, 64 << 10);
	p[0] = 1;
	ftest_assert_eq(fdinfo_kib(fd, "drm-resident-memory"), 64);
	munmap(p, 64 << 10);
	gem_close(fd, b);
	ftest_assert_eq(fdinfo_kib(fd, "drm-total-memory"), 64);
	close(fd);
}

FTEST_MAIN(
	{ "query-info", test_query_info, "DEV_QUERY INFO matches the device registers" },
	{ "query-counters", test_query_counters, "DEV_QUERY COUNTERS reads live device counters" },
	{ "query-bad", test_query_bad, "DEV_QUERY bad type and bad pointer" },
	{ "create-mmap", test_create_mmap, "GEM_CREATE rounds up, mmap sees zeroed, persistent pages" },
	{ "create-bad", test_create_bad, "GEM_CREATE bad sizes and flags" },
	{ "mmap-offset-bad", test_mmap_offset_bad, "GEM_MMAP_OFFSET bad handles and flags" },
	{ "handles-are-per-file", test_handles_are_per_file, "a handle of one file is unknown to another" },
	{ "many-objects", test_many_objects, "512 objects freed with their file" },
	{ "fdinfo", test_fdinfo, "drm-driver, client id, pdev and memory keys in fdinfo" },
)
