/* SPDX-License-Identifier: MIT */
/*
 * ftest: a small harness that speaks IGT's test protocol, so Debian's
 * igt_runner runs Ferrite's tests beside IGT's own.
 *
 *   test --list-subtests        one subtest name per line
 *   test --run-subtest NAME     run one subtest (or a comma-separated list)
 *   test                        run every subtest
 *
 * Each subtest runs in a child process with a timeout and is reported as
 * "Starting subtest: NAME" / "Subtest NAME: SUCCESS|FAIL|SKIP (T.TTTs)",
 * with "[IGT] bin: starting subtest NAME" written to /dev/kmsg. The exit
 * code is 0 (all passed), 77 (all skipped), 98 (a failure) or 79 (no such
 * subtest), as IGT's.
 */
#ifndef FTEST_H
#define FTEST_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FTEST_EXIT_SUCCESS 0
#define FTEST_EXIT_SKIP 77
#define FTEST_EXIT_INVALID 79
#define FTEST_EXIT_FAILURE 98

struct ftest_subtest {
	const char *name;
	void (*fn)(void);
	const char *doc;
};

/* Fail the running subtest with a message naming the source line. */
#define ftest_fail(...) ftest_fail_at(__FILE__, __LINE__, __VA_ARGS__)
/* Skip the running subtest: it cannot run here. Always give the reason. */
#define ftest_skip(...) ftest_skip_at(__FILE__, __LINE__, __VA_ARGS__)

#define ftest_assert(cond) \
	do { if (!(cond)) ftest_fail("assertion failed: %s", #cond); } while (0)
#define ftest_assert_eq(a, b) \
	do { long long _a = (long long)(a), _b = (long long)(b); \
	     if (_a != _b) ftest_fail("%s == %lld, expected %s == %lld", #a, _a, #b, _b); } while (0)
#define ftest_assert_eq_u64(a, b) \
	do { unsigned long long _a = (a), _b = (b); \
	     if (_a != _b) ftest_fail("%s == %#llx, expected %#llx", #a, _a, _b); } while (0)
/* An ioctl-like call that must fail with errno E. */
#define ftest_assert_errno(call, e) \
	do { errno = 0; long _r = (long)(call); int _e = errno; \
	     if (_r != -1 || _e != (e)) \
		ftest_fail("%s returned %ld errno %d (%s), expected errno %d (%s)", \
			   #call, _r, _e, strerror(_e), (e), strerror(e)); } while (0)
/* A call that must succeed (return >= 0). */
#define ftest_assert_ok(call) \
	do { errno = 0; long _r = (long)(call); int _e = errno; \
	     if (_r < 0) ftest_fail("%s returned %ld errno %d (%s)", #call, _r, _e, strerror(_e)); } while (0)

static void __attribute__((noreturn, format(printf, 3, 4)))
ftest_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "(%s:%d) ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(NULL);
	_exit(FTEST_EXIT_FAILURE);
}

static void __attribute__((noreturn, format(printf, 3, 4)))
ftest_skip_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "Test requirement not met (%s:%d): ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(NULL);
	_exit(FTEST_EXIT_SKIP);
}

static void ftest_kmsg(const char *bin, const char *name)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	char buf[512];
	int n;

	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "<6>[IGT] %s: starting subtest %s\n", bin, name);
	if (write(fd, buf, n) < 0) {
		/* dmesg markers are best effort */
	}
	close(fd);
}

static double ftest_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds a subtest may take before it is killed and failed. */
static unsigned int ftest_timeout = 120;

static int ftest_run_one(const char *bin, const struct ftest_subtest *t)
{
	double t0 = ftest_now();
	const char *verdict;
	int status, code;
	pid_t pid;

	printf("Starting subtest: %s\n", t->name);
	fflush(NULL);
	ftest_kmsg(bin, t->name);
	pid = fork();
	if (pid == 0) {
		alarm(ftest_timeout);
		t->fn();
		fflush(NULL);
		_exit(FTEST_EXIT_SUCCESS);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		code = FTEST_EXIT_FAILURE;
	} else if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
	} else {
		fprintf(stderr, "subtest %s killed by signal %d%s\n", t->name, WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		code = FTEST_EXIT_FAILURE;
	}
	verdict = code == FTEST_EXIT_SUCCESS ? "SUCCESS" :
		  code == FTEST_EXIT_SKIP ? "SKIP" : "FAIL";
	if (code != FTEST_EXIT_SUCCESS && code != FTEST_EXIT_SKIP)
		code = FTEST_EXIT_FAILURE;
	printf("Subtest %s: %s (%.3fs)\n", t->name, verdict, ftest_now() - t0);
	fflush(NULL);
	return code;
}

static bool ftest_selected(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if ((l == n && !strncmp(p, name, n)) || (l == 1 && *p == '*'))
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static int ftest_main(int argc, char **argv, const struct ftest_subtest *tests, size_t count)
{
	const char *bin = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *only = NULL;
	bool any_fail = false, any_pass = false, found = false;
	struct utsname u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list-subtests")) {
			for (size_t j = 0; j < count; j++)
				printf("%s\n", tests[j].name);
			return 0;
		} else if (!strcmp(argv[i], "--run-subtest") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strncmp(argv[i], "--run-subtest=", 14)) {
			only = argv[i] + 14;
		} else if (!strcmp(argv[i], "--help-description")) {
			for (size_t j = 0; j < count; j++)
				printf("%s: %s\n", tests[j].name, tests[j].doc);
			return 0;
		} else if (!strcmp(argv[i], "--debug") || !strncmp(argv[i], "--device", 8)) {
			if (!strcmp(argv[i], "--device") && i + 1 < argc)
				i++;
		} else {
			fprintf(stderr, "%s: unknown option %s\n", bin, argv[i]);
			return FTEST_EXIT_INVALID;
		}
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uname(&u);
	printf("IGT-Version: ferrite-ftest-1.0 (%s) (Linux: %s %s)\n", u.machine, u.release, u.machine);
	if (getenv("FTEST_TIMEOUT"))
		ftest_timeout = (unsigned int)atoi(getenv("FTEST_TIMEOUT"));

	for (size_t j = 0; j < count; j++) {
		int code;

		if (only && !ftest_selected(only, tests[j].name))
			continue;
		found = true;
		code = ftest_run_one(bin, &tests[j]);
		any_fail |= code == FTEST_EXIT_FAILURE;
		any_pass |= code == FTEST_EXIT_SUCCESS;
	}
	if (!found) {
		fprintf(stderr, "%s: no subtest matches %s\n", bin, only);
		return FTEST_EXIT_INVALID;
	}
	return any_fail ? FTEST_EXIT_FAILURE : any_pass ? FTEST_EXIT_SUCCESS : FTEST_EXIT_SKIP;
}

#define FTEST_MAIN(...) \
	static const struct ftest_subtest ftest_tests[] = { __VA_ARGS__ }; \
	int main(int argc, char **argv) \
	{ \
		return ftest_main(argc, argv, ftest_tests, \
				  sizeof(ftest_tests) / sizeof(ftest_tests[0])); \
	}

#endif /* FTEST_H */
