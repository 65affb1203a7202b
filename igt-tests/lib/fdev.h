/* SPDX-License-Identifier: MIT */
/*
 * Helpers to find and open Ferrite GPUs from a test.
 */
#ifndef FDEV_H
#define FDEV_H

#include <dirent.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <drm/drm.h>

#include "ftest.h"

#define FERRITE_PCI_VENDOR 0x1b36
#define FERRITE_PCI_DEVICE 0x00fe
#define FERRITE_REG_ID 0x000
#define FERRITE_REG_VERSION 0x004
#define FERRITE_REG_FEATURES 0x008
#define FERRITE_REG_DMA_ADDR_BITS 0x00c
#define FERRITE_REG_DMA_MAX_SEGMENT 0x010
#define FERRITE_REG_SCRATCH 0x014
#define FERRITE_REG_RESET_COUNT 0x034
#define FERRITE_REG_DMA_SEG_BOUNDARY_LO 0x038 /* interface 1.3 */
#define FERRITE_REG_DMA_SEG_BOUNDARY_HI 0x03c
#define FERRITE_ID 0x72526546u /* "FeRr" */

/* The driver name of the DRM device behind fd, in buf. */
static inline int fdev_driver_name(int fd, char *buf, size_t len)
{
	struct drm_version v = { 0 };

	v.name = buf;
	v.name_len = len - 1;
	if (ioctl(fd, DRM_IOCTL_VERSION, &v))
		return -errno;
	buf[v.name_len < len ? v.name_len : len - 1] = '\0';
	return 0;
}

/*
 * Open the index'th DRM node named prefix<minor> (minors first..last-1)
 * whose driver is `driver`, counting in the order of the devices' sysfs
 * paths (PCI address order: GPU 0 is the first device on the bus, as
 * scripts/vm.sh adds them), not of minors, which change when a device is
 * unbound and bound again; -ENOENT when there is none.
 */
static inline int fdev_open_node(const char *prefix, int first, int last, const char *driver,
				 int index)
{
	char path[64], name[64], link[96], dev[16][PATH_MAX];
	int fds[16], n = 0, pick = -1;

	for (int minor = first; minor < last && n < 16; minor++) {
		struct stat st;
		int fd;

		snprintf(path, sizeof(path), "%s%d", prefix, minor);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fdev_driver_name(fd, name, sizeof(name)) || strcmp(name, driver) ||
		    fstat(fd, &st)) {
			close(fd);
			continue;
		}
		snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device", major(st.st_rdev),
			 minor(st.st_rdev));
		if (!realpath(link, dev[n]))
			snprintf(dev[n], sizeof(dev[n]), "%s", path);
		fds[n++] = fd;
	}
	/* The index'th smallest path. */
	for (int i = 0; i < n; i++) {
		int smaller = 0;

		for (int j = 0; j < n; j++)
			smaller += strcmp(dev[j], dev[i]) < 0;
		if (smaller == index)
			pick = i;
	}
	for (int i = 0; i < n; i++)
		if (i != pick)
			close(fds[i]);
	return pick < 0 ? -ENOENT : fds[pick];
}

/*
 * Open the index'th Ferrite render node (GPU index, in PCI address order);
 * -ENOENT when there is none.
 */
static inline int fdev_open_render(int index)
{
	return fdev_open_node("/dev/dri/renderD", 128, 192, "ferrite", index);
}

/* Like fdev_open_render, but skip the subtest when there is no such GPU. */
static inline int fdev_open_or_skip(int index)
{
	int fd = fdev_open_render(index);

	if (fd < 0)
		ftest_skip("no Ferrite render node #%d", index);
	return fd;
}

/* The sysfs directory of the PCI device behind a DRM fd. */
static inline void fdev_sysfs_dir(int fd, char *buf, size_t len)
{
	struct stat st;
	char link[PATH_MAX];

	ftest_assert_ok(fstat(fd, &st));
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device", major(st.st_rdev),
		 minor(st.st_rdev));
	if (!realpath(link, buf))
		ftest_fail("realpath(%s): %s", link, strerror(errno));
	(void)len;
}

/* Map BAR0 of the PCI device behind a DRM fd through sysfs (root only). */
static inline volatile uint32_t *fdev_map_bar0(int fd)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	void *p;
	int bar;

	fdev_sysfs_dir(fd, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/resource0", dir);
	bar = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (bar < 0)
		ftest_skip("cannot open %s: %s", path, strerror(errno));
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 0);
	close(bar);
	if (p == MAP_FAILED)
		ftest_fail("mmap %s: %s", path, strerror(errno));
	return p;
}

/* Read a small sysfs attribute of the PCI device as an integer. */
static inline unsigned long fdev_sysfs_ulong(int fd, const char *attr)
{
	char dir[PATH_MAX], path[PATH_MAX + 64], buf[64] = { 0 };
	int f;

	fdev_sysfs_dir(fd, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		ftest_fail("open %s: %s", path, strerror(errno));
	if (read(f, buf, sizeof(buf) - 1) < 0)
		ftest_fail("read %s: %s", path, strerror(errno));
	close(f);
	return strtoul(buf, NULL, 0);
}

#endif /* FDEV_H */
