// SPDX-License-Identifier: MIT
/*
 * ferrite_process_vm: one GPU address space per process (per struct
 * mm_struct) and device, shared by all the files of that process, and
 * private to it: a forked child, or a process that received the file,
 * gets its own.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include "lib/fexec.h"

#define PVM DRM_FERRITE_VM_PROCESS

/* Write v at va through a job of a queue on the process VM of fd; the
 * job's fence status (1, or -EFAULT if va is not mapped there). */
static int write_at(int fd, uint64_t va, uint64_t v)
{
	uint32_t q = fx_queue(fd, PVM, 0);
	struct fx_cmd c = { 0 };
	struct drm_ferrite_queue_destroy d = { .queue_id = q };
	int st;

	fx_write64(&c, va, v, 0);
	st = fx_run(fd, PVM, q, FX_VA(4) + 0x100000ull * (v & 0xff), &c);
	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_DESTROY, &d));
	return st;
}

/* Two files of one process share the process VM: what one binds, a job
 * of the other sees. */
static void test_shared_by_files(void)
{
	int a = fdev_open_or_skip(0), b = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(a, FX_PAGE);
	volatile uint64_t *p = fx_mmap(a, bo, FX_PAGE);

	ftest_assert_ok(fx_map_flags(a, PVM, bo, 0, FX_VA(1), FX_PAGE, 0));
	ftest_assert_eq(write_at(b, FX_VA(1) + 8, 0x51), 1);
	ftest_assert_eq_u64(p[1], 0x51);
	/* Unmapped through b: a's job faults. */
	ftest_assert_ok(fx_unmap(b, PVM, FX_VA(1), FX_PAGE));
	ftest_assert_eq(write_at(a, FX_VA(1) + 8, 0x52), -EFAULT);
	ftest_assert_eq_u64(p[1], 0x51);
	close(a);
	close(b);
}

/* The VM goes with the last file that used it. */
static void test_freed_with_last_file(void)
{
	int a = fdev_open_or_skip(0);
	uint64_t base = fx_counters(a).bytes_bound;
	int b = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(b, 1 << 20);

	fx_map(b, PVM, bo, FX_VA(1), 1 << 20);
	ftest_assert_eq_u64(fx_counters(a).bytes_bound - base, 1 << 20);
	/* a used the process VM too: it survives b. */
	ftest_assert_ok(fx_unmap(a, PVM, FX_VA(8), FX_PAGE));
	close(b);
	ftest_assert_eq_u64(fx_counters(a).bytes_bound - base, 1 << 20);
	close(a);
	a = fdev_open_or_skip(0);
	ftest_assert_eq_u64(fx_counters(a).bytes_bound, base);
	close(a);
}

/* A forked child using the inherited file gets its own VM: the parent's
 * mapping is not there, and the child's does not appear in the parent's. */
static void test_fork_gets_own(void)
{
	int fd = fdev_open_or_skip(0);
	uint32_t bo = fx_bo(fd, FX_PAGE);
	volatile uint64_t *p = fx_mmap(fd, bo, FX_PAGE);
	pid_t pid;

	fx_map(fd, PVM, bo, FX_VA(1), FX_PAGE);
	pid = fork();
	if (pid == 0) {
		/* Same file, same BO handle, but the child's own VM. */
		if (write_at(fd, FX_VA(1), 0x77) != -EFAULT)
			_exit(1);
		if (fx_map_flags(fd, PVM, bo, 0, FX_VA(2), FX_PAGE, 0))
			_exit(2);
		if (write_at(fd, FX_VA(2) + 16, 0x78) != 1)
			_exit(3);
		_exit(0);
	}
	ftest_assert(pid > 0);
	fx_reap(pid);
	ftest_assert_eq_u64(p[0], 0);
	ftest_assert_eq_u64(p[2], 0x78); /* the BO is shared, the VM is not */
	/* The child's mapping is not in the parent's VM. */
	ftest_assert_eq(write_at(fd, FX_VA(2), 0x79), -EFAULT);
	ftest_assert_eq(write_at(fd, FX_VA(1), 0x7a), 1);
	ftest_assert_eq_u64(p[0], 0x7a);
	close(fd);
}

/* A file sent to another process over a unix socket gives that process
 * its own VM, not the opener's. */
static void test_passed_file(void)
{
	int sv[2], fd;
	pid_t pid;

	ftest_assert_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	if (pid == 0) {
		/* Receiver: a process that never opened the device itself. */
		char byte, ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
				    .msg_controllen = sizeof(ctl) };
		int rfd;

		if (recvmsg(sv[1], &m, 0) != 1)
			_exit(1);
		memcpy(&rfd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
		/* The opener's mapping at FX_VA(1) is not visible here. */
		if (write_at(rfd, FX_VA(1), 0x99) != -EFAULT)
			_exit(2);
		_exit(0);
	}
	fd = fdev_open_or_skip(0);
	{
		uint32_t bo = fx_bo(fd, FX_PAGE);
		volatile uint64_t *p = fx_mmap(fd, bo, FX_PAGE);
		char byte = 1, ctl[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { &byte, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
				    .msg_controllen = sizeof(ctl) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);

		fx_map(fd, PVM, bo, FX_VA(1), FX_PAGE);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		ftest_assert_eq(sendmsg(sv[0], &m, 0), 1);
		fx_reap(pid);
		ftest_assert_eq_u64(p[0], 0);
	}
	close(fd);
}

FTEST_MAIN(
	{ "shared-by-files", test_shared_by_files, "two files of a process share its VM" },
	{ "freed-with-last-file", test_freed_with_last_file, "the process VM goes with its last file" },
	{ "fork-gets-own", test_fork_gets_own, "a forked child gets its own VM" },
	{ "passed-file", test_passed_file, "a file passed over a unix socket gives the receiver its own VM" },
)
