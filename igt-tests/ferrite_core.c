// SPDX-License-Identifier: MIT
/*
 * ferrite_core: the walking skeleton. The driver binds to the Ferrite GPU,
 * reads its identity and registers a render node with the DRM features
 * the Rust abstraction now lets it declare.
 */
#include "lib/fdev.h"

static void test_render_node(void)
{
	char name[64];
	int fd = fdev_open_or_skip(0);

	ftest_assert_ok(fdev_driver_name(fd, name, sizeof(name)));
	ftest_assert(!strcmp(name, "ferrite"));
	ftest_assert_eq(fdev_sysfs_ulong(fd, "vendor"), FERRITE_PCI_VENDOR);
	ftest_assert_eq(fdev_sysfs_ulong(fd, "device"), FERRITE_PCI_DEVICE);
	close(fd);
}

static void test_version(void)
{
	char name[64] = { 0 }, date[64] = { 0 }, desc[64] = { 0 };
	struct drm_version v = {
		.name = name, .name_len = sizeof(name) - 1,
		.date = date, .date_len = sizeof(date) - 1,
		.desc = desc, .desc_len = sizeof(desc) - 1,
	};
	int fd = fdev_open_or_skip(0);

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_VERSION, &v));
	ftest_assert(!strcmp(name, "ferrite"));
	ftest_assert(!strcmp(desc, "Ferrite GPU"));
	ftest_assert_eq(v.version_major, 0);
	ftest_assert_eq(v.version_minor, 7);
	close(fd);
}

/* The features added to the Rust DRM abstraction (patches/0001). */
static void test_syncobj_caps(void)
{
	struct drm_get_cap cap = { .capability = DRM_CAP_SYNCOBJ };
	struct drm_syncobj_create create = { 0 };
	struct drm_syncobj_destroy destroy = { 0 };
	int fd = fdev_open_or_skip(0);

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_GET_CAP, &cap));
	ftest_assert_eq(cap.value, 1);
	cap.capability = DRM_CAP_SYNCOBJ_TIMELINE;
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_GET_CAP, &cap));
	ftest_assert_eq(cap.value, 1);
	/* And the core ioctls they gate actually work on Ferrite. */
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, &create));
	ftest_assert(create.handle != 0);
	destroy.handle = create.handle;
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &destroy));
	ftest_assert_errno(ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &destroy), EINVAL);
	close(fd);
}

/*
 * The DMA constraints the driver of fd's GPU gave the DMA API, from its
 * debugfs file `dma`, against what the registers say, and whether the
 * driver found the device's DMA cache-coherent, against what the test bed
 * made it (FERRITE_DMA_COHERENT: 0 on the arm64 guests whose device tree
 * lacks dma-coherent). Without debugfs they are not checked.
 */
static void check_driver_dma(int fd, uint32_t bits, uint32_t seg, uint64_t boundary)
{
	char dir[PATH_MAX], path[PATH_MAX + 64], file[PATH_MAX + 80], line[128];
	unsigned long long v, got_bits = 0, got_seg = 0, got_boundary = 0, got_coherent = 2;
	const char *coherent = getenv("FERRITE_DMA_COHERENT");
	int found = 0;
	const char *dev;
	FILE *f;

	fdev_sysfs_dir(fd, dir, sizeof(dir));
	dev = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	snprintf(path, sizeof(path), "/sys/kernel/debug/ferrite-%s", dev);
	if (access(path, F_OK)) {
		printf("no debugfs (%s): the driver's DMA constraints are not checked\n", path);
		return;
	}
	snprintf(file, sizeof(file), "%s/dma", path);
	f = fopen(file, "r");
	if (!f)
		ftest_fail("%s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "addr_bits %llu", &v) == 1) {
			got_bits = v;
			found |= 1;
		} else if (sscanf(line, "max_segment %llu", &v) == 1) {
			got_seg = v;
			found |= 2;
		} else if (sscanf(line, "seg_boundary %llx", &v) == 1) {
			got_boundary = v;
			found |= 4;
		} else if (sscanf(line, "coherent %llu", &v) == 1) {
			got_coherent = v;
			found |= 8;
		}
	}
	fclose(f);
	ftest_assert_eq(found, 15);
	if (!coherent)
		ftest_fail("FERRITE_DMA_COHERENT is not set: the test bed did not say what it made");
	ftest_assert_eq_u64(got_coherent, strtoull(coherent, NULL, 0));
	ftest_assert_eq_u64(got_bits, bits);
	ftest_assert_eq_u64(got_seg, seg);
	ftest_assert_eq_u64(got_boundary, boundary);
}

static void check_gpu_registers(int index)
{
	int fd = fdev_open_or_skip(index);
	volatile uint32_t *bar = fdev_map_bar0(fd);
	char var[64];
	uint32_t bits, seg, want;
	uint64_t boundary, want_boundary = ~0ull;

	ftest_assert_eq_u64(bar[FERRITE_REG_ID / 4], FERRITE_ID);
	ftest_assert_eq(bar[FERRITE_REG_VERSION / 4] >> 16, 1);
	bits = bar[FERRITE_REG_DMA_ADDR_BITS / 4];
	seg = bar[FERRITE_REG_DMA_MAX_SEGMENT / 4];
	ftest_assert(bits >= 32 && bits <= 64);
	ftest_assert(seg >= 4096);
	/* Each model process advertises the constraints it was started with. */
	snprintf(var, sizeof(var), "FERRITE_GPU%d_DMA_BITS", index);
	if (!getenv(var))
		ftest_fail("%s is not set: the test bed did not say what it started", var);
	want = atoi(getenv(var));
	/* A device with the null aperture (FEATURES bit 5, output addresses
	 * with bit 47 set) reaches at most 47 bits by DMA. */
	if (bar[FERRITE_REG_FEATURES / 4] & (1u << 5) && want > 47)
		want = 47;
	ftest_assert_eq(bits, want);
	snprintf(var, sizeof(var), "FERRITE_GPU%d_MAX_SEGMENT", index);
	ftest_assert(getenv(var) != NULL);
	ftest_assert_eq(seg, strtoul(getenv(var), NULL, 0));
	/*
	 * The segment boundary mask (interface 1.3): all-ones (none) unless
	 * the test bed gave this GPU one.
	 */
	ftest_assert((bar[FERRITE_REG_VERSION / 4] & 0xffff) >= 3);
	boundary = (uint64_t)bar[FERRITE_REG_DMA_SEG_BOUNDARY_HI / 4] << 32 |
		   bar[FERRITE_REG_DMA_SEG_BOUNDARY_LO / 4];
	snprintf(var, sizeof(var), "FERRITE_GPU%d_SEG_BOUNDARY", index);
	if (getenv(var))
		want_boundary = strtoull(getenv(var), NULL, 0);
	ftest_assert_eq_u64(boundary, want_boundary);
	/* And the driver set them all, the boundary too. */
	check_driver_dma(fd, bits, seg, boundary);
	close(fd);
}

static void test_id_registers(void)
{
	check_gpu_registers(0);
}

/* Every GPU of the guest, each with its own DMA constraints. */
static void test_constraints_per_gpu(void)
{
	const char *n = getenv("FERRITE_NUM_GPUS");
	int count = n ? atoi(n) : 0;

	if (count < 2)
		ftest_skip("the guest has %d Ferrite GPU(s); this needs two", count);
	for (int i = 0; i < count; i++)
		check_gpu_registers(i);
	/* And no more render nodes than GPUs. */
	ftest_assert(fdev_open_render(count) < 0);
}

static void test_scratch_register(void)
{
	int fd = fdev_open_or_skip(0);
	volatile uint32_t *bar = fdev_map_bar0(fd);
	const uint32_t pattern[] = { 0xdeadbeef, 0, 0x12345678, 0xffffffff };

	for (size_t i = 0; i < sizeof(pattern) / sizeof(pattern[0]); i++) {
		bar[FERRITE_REG_SCRATCH / 4] = pattern[i];
		ftest_assert_eq_u64(bar[FERRITE_REG_SCRATCH / 4], pattern[i]);
	}
	/* Read-only registers ignore writes. */
	bar[FERRITE_REG_ID / 4] = 0;
	ftest_assert_eq_u64(bar[FERRITE_REG_ID / 4], FERRITE_ID);
	close(fd);
}

/* The driver resets the device when it binds. */
static void test_reset_at_probe(void)
{
	int fd = fdev_open_or_skip(0);
	volatile uint32_t *bar = fdev_map_bar0(fd);

	ftest_assert(bar[FERRITE_REG_RESET_COUNT / 4] >= 1);
	close(fd);
}

/*
 * The driver requested its three MSI-X vectors per GPU ("ferrite" global,
 * "ferrite-job", "ferrite-mmu") and, at probe, got the software interrupt
 * it raised on the global one: /proc/interrupts shows a "ferrite" line per
 * GPU with a non-zero count.
 */
static void test_msix(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	const char *n = getenv("FERRITE_NUM_GPUS");
	int want = n ? atoi(n) : 1, lines = 0, others = 0;
	char line[1024];

	ftest_assert(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long total = 0;
		char *p = strchr(line, ':');

		if (!strstr(line, "ferrite") || !p)
			continue;
		if (!strstr(line, "MSI") && !strstr(line, "msi"))
			ftest_fail("ferrite interrupt is not MSI: %s", line);
		if (strstr(line, "ferrite-job") || strstr(line, "ferrite-mmu")) {
			others++;
			continue;
		}
		lines++;
		for (p++; *p == ' ' || (*p >= '0' && *p <= '9'); ) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			total += v;
			p = end;
		}
		if (total == 0)
			ftest_fail("no interrupt was delivered: %s", line);
	}
	fclose(f);
	ftest_assert_eq(lines, want);
	ftest_assert_eq(others, 2 * want);
}

FTEST_MAIN(
	{ "render-node", test_render_node, "a Ferrite render node exists on the Ferrite PCI device" },
	{ "version", test_version, "DRM_IOCTL_VERSION names the driver ferrite" },
	{ "syncobj-caps", test_syncobj_caps, "DRIVER_SYNCOBJ(_TIMELINE) from the Rust abstraction" },
	{ "id-registers", test_id_registers,
	  "ID, VERSION and constraint registers through BAR0, and the driver's DMA constraints" },
	{ "constraints-per-gpu", test_constraints_per_gpu, "two GPUs advertise different DMA constraints" },
	{ "scratch-register", test_scratch_register, "BAR0 writes reach the device model" },
	{ "reset-at-probe", test_reset_at_probe, "the driver resets the device when it binds" },
	{ "msix", test_msix, "MSI-X vectors requested and the probe self-test interrupt delivered" },
)
