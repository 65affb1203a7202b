// SPDX-License-Identifier: MIT
/*
 * ferrite_svm: mirror VMs (DRM_FERRITE_VM_CREATE_MIRROR, UAPI 0.7), shared
 * virtual memory by GPU page faults. In a mirror VM every address of the
 * process in [mirror_start, mirror_end) is a GPU address, with no VM_BIND:
 * the GPU faults, the kernel looks the memory up as a CPU access would,
 * maps a chunk around the address (2 MiB where one VMA covers it, else
 * 64 KiB, else the CPU page; a THP as one 2 MiB block) and the queue goes
 * on. Nothing is pinned: munmap, mprotect, fork's copy-on-write,
 * migration and swap-out take the GPU's view away, and the next GPU access
 * faults the current pages in. A mirror queue's fences never leave the
 * kernel, so a job tells the CPU it is done through memory: its last
 * command is a WRITE64 with FLUSH of a sequence number to a variable the
 * CPU polls (a *user fence*); while it polls, it reads QUEUE_GET_STATE, so
 * that a job that failed ends the wait at once.
 *
 * Every subtest but refused-without-mirroring needs a GPU that mirrors
 * (DRM_FERRITE_UAPI_MIRROR: DMA-coherent, not bounced) and skips, saying
 * so, on GPU 0 without it. The light subtests then also run on every other
 * GPU of the guest that mirrors (GPU 1 has 32-bit DMA); the heavy ones
 * (migrate-under-load, swap-under-load, fault-storm, thp-blocks) on GPU 0.
 *
 * The device cache writes back whole 4 KiB lines, so the tests never let
 * the CPU write a page that a job in flight writes: user fences, results
 * and command buffers each live on pages of their own.
 *
 * The driver's figures come from debugfs `svm` (lines "key value"): this
 * test reads faults, aborts, pages, blocks_2m, chunks and invalidations
 * (and prints yields and ns_*).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/swap.h>
#include <sys/wait.h>

#include "lib/fexec.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define SZ_64K (64ull << 10)
#define SZ_2M (2ull << 20)
#define MIRROR DRM_FERRITE_VM_CREATE_MIRROR
/* Job timeout of the mirror queues: their jobs hash tens of MiB at the
 * model's TCG speed, and stall on faults. */
#define QUEUE_TIMEOUT_MS 20000
/* How long the CPU polls a user fence: longer than the job timeout, so
 * that a hung job is reported by the driver (TIMEDOUT) first. */
#define FENCE_TIMEOUT_S 25.0
/* Command memory of each mirror queue (the CPU writes the commands of
 * the jobs it submits here, one after the other). */
#define ARENA_BYTES (256u << 10)
#define TLB_MISSES 6
#define HW_FAULTS 10
#define Q_FAULTED DRM_FERRITE_QUEUE_STATE_FAULTED
#define FS_WRITE (1u << 4)
#define FS_VALID (1u << 31)

#define barrier() __asm__ __volatile__("" ::: "memory")

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* ---- memory ----------------------------------------------------------- */

/*
 * size bytes of fresh private anonymous memory at an address aligned to
 * align (a power of two, at least the CPU page), below the GPU's user
 * range end (fx_user_mmap(): on arm64 with 48-bit addresses the kernel's
 * choice lies above it). The slack around it is given back.
 */
static void *anon_aligned(uint64_t size, uint64_t align)
{
	uint64_t len = size + align;
	uint8_t *raw = fx_user_mmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *p;

	if (raw == MAP_FAILED)
		ftest_fail("mmap of %#llx bytes: %s", (unsigned long long)len, strerror(errno));
	p = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (p > raw)
		ftest_assert_ok(munmap(raw, p - raw));
	if (raw + len > p + size)
		ftest_assert_ok(munmap(p + size, raw + len - (p + size)));
	return p;
}

/* Whole zeroed CPU pages of their own (user fences, results, commands). */
static void *pages(uint64_t size)
{
	return anon_aligned(round_up(size, FX_PAGE), FX_PAGE);
}

static void fill_pattern(void *p, uint64_t size, uint64_t seed)
{
	uint64_t *w = p, x = seed | 1;

	for (uint64_t i = 0; i < size / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	barrier();
}

static void assert_hash(uint64_t got, uint64_t want, const char *what)
{
	if (got != want)
		ftest_fail("%s: the GPU's CHECKSUM is %#llx, the CPU's FNV-1a %#llx", what,
			   (unsigned long long)got, (unsigned long long)want);
}

/* Fail unless the 32-bit words of [p, p + size) are all v. */
static void assert_words(const volatile uint32_t *p, uint64_t size, uint32_t v, const char *what)
{
	for (uint64_t i = 0; i < size / 4; i++)
		if (p[i] != v)
			ftest_fail("%s: word %#llx (address %p) is %#x, expected %#x", what,
				   (unsigned long long)i, (void *)&p[i], p[i], v);
}

/* ---- /proc/self/pagemap and /proc/kpageflags (root) ------------------- */

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_PFN(e) ((e) & ((1ull << 55) - 1))
#define KPF_COMPOUND_HEAD (1ull << 15)
#define KPF_THP (1ull << 22)

/* The pagemap entries of the n CPU pages from p. */
static void pagemap(const void *p, uint64_t n, uint64_t *out)
{
	int f = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)((uintptr_t)p / FX_PAGE * 8);
	size_t want = n * 8, got = 0;

	if (f < 0)
		ftest_fail("open /proc/self/pagemap: %s", strerror(errno));
	while (got < want) {
		ssize_t k = pread(f, (char *)out + got, want - got, off + (off_t)got);

		if (k <= 0)
			ftest_fail("read /proc/self/pagemap: %s", k ? strerror(errno) : "end of file");
		got += k;
	}
	close(f);
}

/* The PFNs of the n CPU pages from p (0 where not present); fails unless
 * the PFNs can be read (they read as zero without CAP_SYS_ADMIN). */
static void pfns(const void *p, uint64_t n, uint64_t *out)
{
	uint64_t present = 0, nonzero = 0;

	pagemap(p, n, out);
	for (uint64_t i = 0; i < n; i++) {
		present += !!(out[i] & PM_PRESENT);
		out[i] = out[i] & PM_PRESENT ? PM_PFN(out[i]) : 0;
		nonzero += !!out[i];
	}
	if (present && !nonzero)
		ftest_fail("/proc/self/pagemap gives no PFNs: this test must run as root");
}

static uint64_t kpageflags(uint64_t pfn)
{
	int f = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t v = 0;

	if (f < 0)
		ftest_fail("open /proc/kpageflags: %s", strerror(errno));
	if (pread(f, &v, 8, (off_t)(pfn * 8)) != 8)
		ftest_fail("read /proc/kpageflags at PFN %#llx: %s", (unsigned long long)pfn,
			   strerror(errno));
	close(f);
	return v;
}

/* The size of a transparent huge page (a PMD), from sysfs; 0 without THP. */
static uint64_t thp_size(void)
{
	char buf[64];

	if (fx_slurp("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)) <= 0)
		return 0;
	return strtoull(buf, NULL, 0);
}

/* The 2 MiB blocks of [p, p + size) (2 MiB aligned) backed by one THP. */
static uint64_t thp_blocks(const void *p, uint64_t size)
{
	uint64_t per = SZ_2M / FX_PAGE, n = size / FX_PAGE, count = 0;
	uint64_t *pf = calloc(n, 8);

	ftest_assert(pf);
	pfns(p, n, pf);
	for (uint64_t b = 0; b < size / SZ_2M; b++) {
		uint64_t head = pf[b * per];
		bool contiguous = head && head % per == 0;

		for (uint64_t i = 1; contiguous && i < per; i++)
			contiguous = pf[b * per + i] == head + i;
		if (contiguous && (kpageflags(head) & (KPF_THP | KPF_COMPOUND_HEAD)) ==
				  (KPF_THP | KPF_COMPOUND_HEAD))
			count++;
	}
	free(pf);
	return count;
}

/* ---- debugfs svm -------------------------------------------------------- */

enum svm_key {
	SV_FAULTS, SV_ABORTS, SV_PAGES, SV_BLOCKS_2M, SV_CHUNKS, SV_INVALIDATIONS, SV_YIELDS,
	SV_NS_DISPATCH, SV_NS_GET_PAGES, SV_NS_MAP, SV_NS_RESUME, SV_PAGES_HELD,
	SV_PAGES_HELD_PEAK, SV_NKEYS
};

static const char *const svm_key_names[SV_NKEYS] = {
	"faults", "aborts", "pages", "blocks_2m", "chunks", "invalidations", "yields",
	"ns_dispatch", "ns_get_pages", "ns_map", "ns_resume", "pages_held", "pages_held_peak",
};

struct svm_stats {
	uint64_t v[SV_NKEYS];
	uint32_t have;
};

/* The figures of debugfs `svm` of fd's GPU (device-wide: the subtests run
 * one at a time, so deltas are theirs). */
static struct svm_stats svm_stats(int fd)
{
	struct svm_stats s = { 0 };
	char path[PATH_MAX], line[256];
	int r = fx_debugfs_path(fd, "svm", path, sizeof(path));
	FILE *f;

	if (r)
		ftest_fail("no debugfs file %s (%s): the driver's SVM figures are part of the feature",
			   path, strerror(-r));
	f = fopen(path, "r");
	if (!f)
		ftest_fail("open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		char key[64];
		size_t kl;

		if (sscanf(line, "%63s %llu", key, &v) != 2)
			continue;
		kl = strlen(key);
		if (kl && key[kl - 1] == ':')
			key[kl - 1] = '\0';
		for (int k = 0; k < SV_NKEYS; k++) {
			if (!strcmp(key, svm_key_names[k])) {
				s.v[k] = v;
				s.have |= 1u << k;
			}
		}
	}
	fclose(f);
	return s;
}

static uint64_t sv_delta(const struct svm_stats *a, const struct svm_stats *b, enum svm_key k)
{
	if (!(a->have & b->have & (1u << k)))
		ftest_fail("debugfs svm has no line \"%s <value>\"", svm_key_names[k]);
	return b->v[k] - a->v[k];
}

static uint64_t sv(const struct svm_stats *s, enum svm_key k)
{
	if (!(s->have & (1u << k)))
		ftest_fail("debugfs svm has no line \"%s <value>\"", svm_key_names[k]);
	return s->v[k];
}

static void svm_print(const char *what, const struct svm_stats *a, const struct svm_stats *b)
{
	printf("%s: svm deltas:", what);
	for (int k = 0; k < SV_NKEYS; k++)
		if (a->have & b->have & (1u << k))
			printf(" %s %llu", svm_key_names[k],
			       (unsigned long long)(b->v[k] - a->v[k]));
	printf("\n");
}

/* ---- mirror VMs, queues, jobs and user fences ---------------------------- */

static struct drm_ferrite_mmu_info mmu_info(int fd)
{
	struct drm_ferrite_mmu_info m = { 0 };
	struct drm_ferrite_dev_query q = {
		.type = DRM_FERRITE_DEV_QUERY_MMU, .size = sizeof(m), .pointer = (uintptr_t)&m,
	};

	ftest_assert_ok(ioctl(fd, DRM_IOCTL_FERRITE_DEV_QUERY, &q));
	return m;
}

static bool can_mirror(int fd)
{
	return fx_uapi_features(fd) & DRM_FERRITE_UAPI_MIRROR;
}

/* Open GPU `gpu`; skip the subtest unless it mirrors. */
static int svm_open(int gpu)
{
	int fd = fdev_open_or_skip(gpu);

	fx_require_uapi(fd, DRM_FERRITE_UAPI_MIRROR,
			"mirror VMs (DRM_FERRITE_UAPI_MIRROR: a DMA-coherent GPU that is not bounced)");
	return fd;
}

/* VM_CREATE with `flags`: 0 or -errno; the answer in *c. */
static int vm_create(int fd, uint32_t flags, struct drm_ferrite_vm_create *c)
{
	*c = (struct drm_ferrite_vm_create){
		.flags = flags,
		/* Output fields: whatever is passed in is overwritten. */
		.mirror_start = 0xdead0000, .mirror_end = 0xbeef0000,
	};
	return ioctl(fd, DRM_IOCTL_FERRITE_VM_CREATE, c) ? -errno : 0;
}

/* The mirrored range the contract gives: from the first CPU page at or
 * above user_va_start to min(TASK_SIZE, user_va_end). */
static void check_mirror_range(int fd, const struct drm_ferrite_vm_create *c)
{
	struct drm_ferrite_mmu_info m = mmu_info(fd);

	if (c->mirror_start != round_up(m.user_va_start, FX_PAGE) || c->mirror_end <= c->mirror_start ||
	    c->mirror_end > m.user_va_end || c->mirror_end % FX_PAGE)
		ftest_fail("mirror VM %u: range [%#llx, %#llx), user range [%#llx, %#llx), CPU page %#llx",
			   c->vm_id, (unsigned long long)c->mirror_start,
			   (unsigned long long)c->mirror_end, (unsigned long long)m.user_va_start,
			   (unsigned long long)m.user_va_end, FX_PAGE);
#ifdef __x86_64__
	/* TASK_SIZE with 4-level paging; with 5 levels it is above the
	 * GPU's user range, which then ends the mirror. */
	if (c->mirror_end != 0x7ffffffff000ull && c->mirror_end != m.user_va_end)
		ftest_fail("mirror VM %u: mirror_end %#llx, expected 0x7ffffffff000 (TASK_SIZE)",
			   c->vm_id, (unsigned long long)c->mirror_end);
#endif
}

struct mvm {
	uint32_t id;
	uint64_t start, end;
};

static struct mvm mirror_vm(int fd)
{
	struct drm_ferrite_vm_create c;
	int r = vm_create(fd, MIRROR, &c);

	if (r)
		ftest_fail("VM_CREATE with DRM_FERRITE_VM_CREATE_MIRROR on a GPU that reports "
			   "DRM_FERRITE_UAPI_MIRROR: %s", strerror(-r));
	check_mirror_range(fd, &c);
	return (struct mvm){ .id = c.vm_id, .start = c.mirror_start, .end = c.mirror_end };
}

/* Fail unless [p, p + size) lies in the mirrored range of vm. */
static void assert_mirrored(const struct mvm *vm, const void *p, uint64_t size, const char *what)
{
	uint64_t a = (uintptr_t)p;

	if (a < vm->start || a + size > vm->end)
		ftest_fail("%s at %#llx..%#llx lies outside the mirrored range [%#llx, %#llx)", what,
			   (unsigned long long)a, (unsigned long long)(a + size),
			   (unsigned long long)vm->start, (unsigned long long)vm->end);
}

/* A queue of a mirror VM, with its user fence and its command memory. */
struct sq {
	int fd;
	uint32_t vm, id;
	/* The user fence: a page of its own, written by the GPU only. */
	volatile uint64_t *fence;
	/* Last sequence number submitted. */
	uint64_t seq;
	/* Command memory: jobs in flight at the start, in order. */
	uint32_t *arena;
	uint32_t used; /* dwords */
	/* The queue's record of the last failure (read and cleared). */
	struct drm_ferrite_queue_get_state st;
};

static void sq_init(struct sq *q, int fd, uint32_t vm)
{
	int r = fx_queue_prio(fd, vm, QUEUE_TIMEOUT_MS, DRM_FERRITE_QUEUE_PRIORITY_NORMAL, 0);

	if (r < 0)
		ftest_fail("QUEUE_CREATE on mirror VM %u: %s", vm, strerror(-r));
	*q = (struct sq){ .fd = fd, .vm = vm, .id = (uint32_t)r };
	q->fence = pages(FX_PAGE);
	q->arena = pages(ARENA_BYTES);
}

static void sq_fini(struct sq *q)
{
	ftest_assert_ok(fx_queue_destroy(q->fd, q->id));
}

static uint32_t *put_w64(uint32_t *p, uint64_t dst, uint64_t v, uint32_t flags)
{
	p[0] = FX_OP_WRITE64 | (flags << 8) | (5u << 16);
	p[1] = LO(dst);
	p[2] = HI(dst);
	p[3] = LO(v);
	p[4] = HI(v);
	return p + 5;
}

/* SUBMIT on a mirror queue: 0 or -errno. */
static int svm_submit(int fd, uint32_t queue, uint64_t cmd_va, uint32_t bytes,
		      struct drm_ferrite_sync_op *syncs, uint32_t nsyncs,
		      struct drm_ferrite_bo_ref *bos, uint32_t nbos)
{
	return fx_submit_full(fd, queue, cmd_va, bytes, syncs, nsyncs, bos, nbos) ? -errno : 0;
}

/* Copy n dwords of commands into q's command memory, end them with the
 * user fence (a WRITE64 with FLUSH: what the job wrote is in memory
 * first), submit with the given WAIT syncs, and return the job's sequence
 * number. */
static uint64_t sq_submit_syncs(struct sq *q, const uint32_t *dw, uint32_t n,
				struct drm_ferrite_sync_op *syncs, uint32_t nsyncs)
{
	uint64_t seq = q->seq + 1;
	uint32_t *at;
	int r;

	if (*q->fence >= q->seq)
		q->used = 0; /* idle: nothing reads the command memory */
	if ((q->used + n + 5) * 4 > ARENA_BYTES)
		ftest_fail("queue %u: %u dwords of commands in flight, no room for %u more", q->id,
			   q->used, n + 5);
	at = q->arena + q->used;
	memcpy(at, dw, n * 4);
	put_w64(at + n, (uintptr_t)q->fence, seq, FX_W64_FLUSH);
	barrier();
	r = svm_submit(q->fd, q->id, (uintptr_t)at, (n + 5) * 4, syncs, nsyncs, NULL, 0);
	if (r)
		ftest_fail("SUBMIT of %u bytes at %p on mirror queue %u: %s", (n + 5) * 4, (void *)at,
			   q->id, strerror(-r));
	q->used += n + 5;
	q->seq = seq;
	return seq;
}

static uint64_t sq_submit(struct sq *q, const uint32_t *dw, uint32_t n)
{
	return sq_submit_syncs(q, dw, n, NULL, 0);
}

static uint64_t sq_submit_cmd(struct sq *q, const struct fx_cmd *c)
{
	return sq_submit(q, c->dw, c->n);
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case DRM_FERRITE_QUEUE_STATE_OK: return "OK";
	case DRM_FERRITE_QUEUE_STATE_FAULTED: return "FAULTED";
	case DRM_FERRITE_QUEUE_STATE_ERROR: return "ERROR";
	case DRM_FERRITE_QUEUE_STATE_TIMEDOUT: return "TIMEDOUT";
	}
	return "?";
}

/*
 * Wait for job `seq` of q: 1 once its user fence is written; if a job of
 * the queue failed instead, its failure (-EFAULT for an MMU fault, -EIO a
 * command error, -ETIMEDOUT a timeout, -ECANCELED a reset) with the
 * queue's record in q->st (read and cleared). Fails the subtest after
 * FENCE_TIMEOUT_S.
 */
static int sq_wait(struct sq *q, uint64_t seq)
{
	double t0 = ftest_now();
	unsigned int naps = 0;

	for (;;) {
		struct drm_ferrite_queue_get_state st;

		if (*q->fence >= seq) {
			barrier();
			return 1;
		}
		st = fx_state(q->fd, q->id, 0);
		if (st.failed_jobs) {
			q->st = fx_state(q->fd, q->id, DRM_FERRITE_QUEUE_STATE_CLEAR);
			if (seq == q->seq)
				q->used = 0; /* the queue is past its last job */
			barrier();
			switch (q->st.state) {
			case DRM_FERRITE_QUEUE_STATE_FAULTED: return -EFAULT;
			case DRM_FERRITE_QUEUE_STATE_ERROR: return -EIO;
			case DRM_FERRITE_QUEUE_STATE_TIMEDOUT: return -ETIMEDOUT;
			}
			return -ECANCELED;
		}
		if (ftest_now() - t0 > FENCE_TIMEOUT_S)
			ftest_fail("queue %u: job %llu wrote no user fence in %.0f s (fence %llu, "
				   "queue state %s, failed jobs %u, faults %u)", q->id,
				   (unsigned long long)seq, FENCE_TIMEOUT_S,
				   (unsigned long long)*q->fence, state_name(st.state),
				   st.failed_jobs, st.faults);
		usleep(naps++ < 500 ? 100 : 1000);
	}
}

/* Why the driver last failed a fault (debugfs `svm` last_abort_errno), as
 * a string; "?" without it. */
static const char *last_abort(int fd)
{
	char path[PATH_MAX], line[256];
	long long e = 0;
	FILE *f;

	if (fx_debugfs_path(fd, "svm", path, sizeof(path)) || !(f = fopen(path, "r")))
		return "?";
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "last_abort_errno %lld", &e) == 1)
			break;
	fclose(f);
	return e > 0 ? strerror((int)e) : "none";
}

static void sq_fail(const struct sq *q, int r, const char *what)
{
	ftest_fail("%s: the job failed (%s): queue state %s, error %u, fault_addr %#llx, "
		   "fault_status %#x; the driver's last unresolved fault: %s", what, strerror(-r),
		   state_name(q->st.state), q->st.error, (unsigned long long)q->st.fault_addr,
		   q->st.fault_status, last_abort(q->fd));
}

/* Run c on q and require it to complete. */
static void sq_ok(struct sq *q, const struct fx_cmd *c, const char *what)
{
	int r = sq_wait(q, sq_submit_cmd(q, c));

	if (r != 1)
		sq_fail(q, r, what);
}

/* Wait for job seq and require it to have completed. */
static void sq_wait_ok(struct sq *q, uint64_t seq, const char *what)
{
	int r = sq_wait(q, seq);

	if (r != 1)
		sq_fail(q, r, what);
}

/*
 * Run c on q and require it to fail with an MMU fault at exactly addr,
 * a write fault if `write` (else a read), with the MMU_FAULT error.
 */
static void sq_fault(struct sq *q, const struct fx_cmd *c, uint64_t addr, bool write,
		     const char *what)
{
	int r = sq_wait(q, sq_submit_cmd(q, c));

	if (r == 1)
		ftest_fail("%s: the job completed; it must fault at %#llx", what,
			   (unsigned long long)addr);
	if (r != -EFAULT || q->st.state != Q_FAULTED || q->st.error != 3 ||
	    q->st.fault_addr != addr || !(q->st.fault_status & FS_VALID) ||
	    !!(q->st.fault_status & FS_WRITE) != write)
		ftest_fail("%s: job failed with %s, queue state %s, error %u, fault_addr %#llx, "
			   "fault_status %#x; expected an MMU fault (FAULTED, error 3) on a %s at "
			   "%#llx", what, strerror(-r), state_name(q->st.state), q->st.error,
			   (unsigned long long)q->st.fault_addr, q->st.fault_status,
			   write ? "write" : "read", (unsigned long long)addr);
	printf("%s: faulted at %#llx (fault_status %#x)\n", what, (unsigned long long)addr,
	       q->st.fault_status);
}

/* A job that only writes v at *out: the queue and VM still work. */
static void sq_still_works(struct sq *q, volatile uint64_t *out, uint64_t v, const char *what)
{
	struct fx_cmd c = { 0 };

	*out = 0;
	fx_write64(&c, (uintptr_t)out, v, 0);
	sq_ok(q, &c, what);
	if (*out != v)
		ftest_fail("%s: the job completed but wrote %#llx, not %#llx", what,
			   (unsigned long long)*out, (unsigned long long)v);
}

/* Run fn on GPU 0 (skipping the subtest unless it mirrors) and then on
 * every other GPU of the guest that mirrors. */
static void on_mirror_gpus(void (*fn)(int fd, int gpu))
{
	int fd = svm_open(0);

	for (int gpu = 0; fd >= 0; fd = fdev_open_render(++gpu)) {
		if (gpu && !can_mirror(fd)) {
			printf("GPU %d cannot mirror (DRM_FERRITE_UAPI_MIRROR clear): not run there\n",
			       gpu);
			close(fd);
			continue;
		}
		printf("-- GPU %d\n", gpu);
		fn(fd, gpu);
		close(fd);
	}
}

/* ---- malloc-no-bind ------------------------------------------------------ */

/*
 * The GPU uses memory from malloc() and the stack at the addresses the CPU
 * uses, with no VM_BIND at all (nothing bound: bytes_bound does not move):
 * it hashes 8 MiB the CPU wrote and a 64 KiB stack array, and fills
 * another 8 MiB, and the CPU checks both. Faults map chunks, not pages:
 * far fewer faults than pages (<= 64 for it all), and a linear FILL of a
 * fresh 2 MiB-aligned 8 MiB takes 4 to 8 faults (a 2 MiB chunk each).
 */
static void malloc_no_bind_on(int fd, int gpu)
{
	const uint64_t size = 8 << 20;
	uint8_t stack_buf[64 * 1024];
	uint64_t bound = fx_counters(fd).bytes_bound, faults, npages;
	struct mvm vm = mirror_vm(fd);
	struct svm_stats s0, s1, s2;
	volatile uint64_t *sums;
	bool stack_ok = true;
	void *src, *dst, *fresh;
	struct fx_cmd c = { 0 }, f = { 0 };
	struct sq q;

	(void)gpu;
	/* From malloc's heap next to the program (below the GPU's user range
	 * end on every architecture), 2 MiB aligned so that the chunk count
	 * does not depend on where the allocator put them. */
	ftest_assert_eq(mallopt(M_MMAP_THRESHOLD, 32 << 20), 1);
	ftest_assert_eq(posix_memalign(&src, SZ_2M, size), 0);
	ftest_assert_eq(posix_memalign(&dst, SZ_2M, size), 0);
	ftest_assert_eq(posix_memalign(&fresh, SZ_2M, size), 0);
	assert_mirrored(&vm, src, size, "malloc'd source");
	assert_mirrored(&vm, dst, size, "malloc'd destination");
	assert_mirrored(&vm, fresh, size, "malloc'd fresh memory");
	if ((uintptr_t)stack_buf + sizeof(stack_buf) > vm.end) {
		/* arm64 with 48-bit addresses: the stack is above the GPU's
		 * user range. */
		printf("the stack (%p) lies above mirror_end %#llx: the stack array is not used\n",
		       (void *)stack_buf, (unsigned long long)vm.end);
		stack_ok = false;
	}
	sq_init(&q, fd, vm.id);
	sums = pages(FX_PAGE);
	fill_pattern(src, size, 0x5eed);
	fill_pattern(stack_buf, sizeof(stack_buf), 0x57ac);

	s0 = svm_stats(fd);
	fx_checksum(&c, (uintptr_t)&sums[0], (uintptr_t)src, size);
	if (stack_ok)
		fx_checksum(&c, (uintptr_t)&sums[1], (uintptr_t)stack_buf, sizeof(stack_buf));
	fx_fill(&c, (uintptr_t)dst, size, 0xf111ed00u | (uint32_t)gpu);
	sq_ok(&q, &c, "hash malloc'd and stack memory, fill malloc'd memory");
	s1 = svm_stats(fd);
	svm_print("malloc-no-bind", &s0, &s1);
	assert_hash(sums[0], fx_fnv1a(src, size), "8 MiB from malloc()");
	if (stack_ok)
		assert_hash(sums[1], fx_fnv1a(stack_buf, sizeof(stack_buf)), "64 KiB stack array");
	assert_words(dst, size, 0xf111ed00u | (uint32_t)gpu, "GPU FILL of malloc'd memory");
	faults = sv_delta(&s0, &s1, SV_FAULTS);
	npages = 2 * size / FX_PAGE;
	printf("2 x 8 MiB + 64 KiB (%llu CPU pages) took %llu faults, mapped %llu pages\n",
	       (unsigned long long)npages, (unsigned long long)faults,
	       (unsigned long long)sv_delta(&s0, &s1, SV_PAGES));
	ftest_assert(faults > 0);
	ftest_assert(faults <= 64);
	ftest_assert(sv_delta(&s0, &s1, SV_PAGES) >= npages);
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 0);

	/* A linear FILL of fresh memory: one fault per 2 MiB chunk. */
	fx_fill(&f, (uintptr_t)fresh, size, 0x0dd0f111u);
	sq_ok(&q, &f, "fill fresh malloc'd memory");
	s2 = svm_stats(fd);
	assert_words(fresh, size, 0x0dd0f111u, "GPU FILL of fresh malloc'd memory");
	faults = sv_delta(&s1, &s2, SV_FAULTS);
	printf("a FILL of a fresh 2 MiB-aligned 8 MiB took %llu faults (%llu blocks_2m)\n",
	       (unsigned long long)faults, (unsigned long long)sv_delta(&s1, &s2, SV_BLOCKS_2M));
	ftest_assert(faults >= size / SZ_2M);
	ftest_assert(faults <= 8);

	/* Nothing was bound, and no user memory mapped into the kernel. */
	ftest_assert_eq_u64(fx_counters(fd).bytes_bound, bound);
	ftest_assert_eq_u64(fx_counters(fd).kmap_user_bytes, 0);
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	free(src);
	free(dst);
	free(fresh);
}

static void test_malloc_no_bind(void)
{
	on_mirror_gpus(malloc_no_bind_on);
}

/* ---- file-backed ---------------------------------------------------------- */

#define FILE_SIZE (1ull << 20)

static void read_file(int f, uint8_t *buf, uint64_t size, const char *what)
{
	uint64_t got = 0;

	while (got < size) {
		ssize_t k = pread(f, buf + got, size - got, (off_t)got);

		if (k <= 0)
			ftest_fail("%s: pread at %#llx: %s", what, (unsigned long long)got,
				   k ? strerror(errno) : "end of file");
		got += k;
	}
}

static void assert_bytes(const uint8_t *got, const uint8_t *want, uint64_t size, const char *what)
{
	for (uint64_t i = 0; i < size; i++)
		if (got[i] != want[i])
			ftest_fail("%s: byte %#llx is %#x, expected %#x", what, (unsigned long long)i,
				   got[i], want[i]);
}

/* A temporary file of FILE_SIZE bytes of `want` (in /dev/shm, else
 * /tmp), unlinked; its descriptor, read-write. */
static int temp_file(const uint8_t *want)
{
	char path[64];
	int f;

	snprintf(path, sizeof(path), "/dev/shm/ferrite-svm-XXXXXX");
	f = mkstemp(path);
	if (f < 0) {
		snprintf(path, sizeof(path), "/tmp/ferrite-svm-XXXXXX");
		f = mkstemp(path);
	}
	if (f < 0)
		ftest_fail("mkstemp: %s", strerror(errno));
	ftest_assert_ok(unlink(path));
	ftest_assert_eq(pwrite(f, want, FILE_SIZE, 0), (ssize_t)FILE_SIZE);
	return f;
}

/*
 * A file mapped MAP_SHARED: the GPU hashes it (the CPU's FNV of the file)
 * and writes into it (a FILL and a WRITE64); after msync and munmap,
 * pread sees exactly the GPU's writes. Then a MAP_PRIVATE PROT_READ
 * mapping of a file opened O_RDONLY: the GPU reads it (hash right), its
 * write faults (a write fault at that address) and the file is unchanged.
 */
static void file_backed_on(int fd, int gpu)
{
	uint8_t *want = malloc(FILE_SIZE), *got = malloc(FILE_SIZE), *p;
	const uint64_t fill_at = 64 << 10, fill_len = 128 << 10, w_at = FILE_SIZE - 4096 + 8;
	const uint64_t v = 0xf11eb0c5ed000000ull | (uint64_t)gpu;
	struct mvm vm = mirror_vm(fd);
	volatile uint64_t *sums = pages(FX_PAGE);
	struct fx_cmd c = { 0 }, r = { 0 }, w = { 0 };
	struct sq q;
	char rpath[64];
	int f, ro;

	ftest_assert(want && got);
	sq_init(&q, fd, vm.id);
	fill_pattern(want, FILE_SIZE, 0xf11e + gpu);
	f = temp_file(want);
	p = fx_user_mmap(FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ftest_assert(p != MAP_FAILED);
	assert_mirrored(&vm, p, FILE_SIZE, "the shared file mapping");
	fx_checksum(&c, (uintptr_t)&sums[0], (uintptr_t)p, FILE_SIZE);
	fx_fill(&c, (uintptr_t)p + fill_at, fill_len, 0xfeedf00du);
	fx_write64(&c, (uintptr_t)p + w_at, v, 0);
	sq_ok(&q, &c, "hash and write a MAP_SHARED file mapping");
	assert_hash(sums[0], fx_fnv1a(want, FILE_SIZE), "MAP_SHARED file");
	for (uint64_t i = 0; i < fill_len / 4; i++)
		((uint32_t *)(want + fill_at))[i] = 0xfeedf00du;
	memcpy(want + w_at, &v, 8);
	ftest_assert_ok(msync(p, FILE_SIZE, MS_SYNC));
	ftest_assert_ok(munmap(p, FILE_SIZE));
	read_file(f, got, FILE_SIZE, "the file after the GPU wrote it");
	assert_bytes(got, want, FILE_SIZE, "pread of the file the GPU wrote through its mapping");

	/* Read-only: a private mapping of a descriptor opened O_RDONLY. */
	snprintf(rpath, sizeof(rpath), "/proc/self/fd/%d", f);
	ro = open(rpath, O_RDONLY | O_CLOEXEC);
	ftest_assert(ro >= 0);
	p = fx_user_mmap(FILE_SIZE, PROT_READ, MAP_PRIVATE, ro, 0);
	ftest_assert(p != MAP_FAILED);
	fx_checksum(&r, (uintptr_t)&sums[1], (uintptr_t)p, FILE_SIZE);
	sq_ok(&q, &r, "hash a MAP_PRIVATE read-only file mapping");
	assert_hash(sums[1], fx_fnv1a(want, FILE_SIZE), "MAP_PRIVATE read-only file");
	fx_write64(&w, (uintptr_t)p + 3 * 4096 + 16, 0xbad, 0);
	sq_fault(&q, &w, (uintptr_t)p + 3 * 4096 + 16, true, "GPU write to a read-only file mapping");
	assert_bytes(p, want, FILE_SIZE, "the read-only mapping after the GPU's write faulted");
	read_file(ro, got, FILE_SIZE, "the file after the faulting write");
	assert_bytes(got, want, FILE_SIZE, "the file after a GPU write to its read-only mapping");
	sq_still_works(&q, &sums[2], 0x600d, "a job after the fault");
	ftest_assert_ok(munmap(p, FILE_SIZE));
	close(ro);
	close(f);
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	free(want);
	free(got);
}

static void test_file_backed(void)
{
	on_mirror_gpus(file_backed_on);
}

/* ---- fork-cow ------------------------------------------------------------ */

#define COW_PAGES 8 /* per part */

/*
 * After fork, the GPU working for the parent writes the parent's pages,
 * never the child's: the parent's buffer (three parts of 8 pages, mapped
 * on the GPU by a first job) is COW-shared by fork. Part X the parent's
 * CPU writes first (it gets new pages), part Y the child writes first (the
 * old pages are then the parent's alone), part Z nobody: the GPU's write
 * breaks COW on the parent's side. The parent's job writes a value into
 * every page of all three and hashes them: the parent sees exactly its
 * writes and the GPU's, the hash agrees, and the child (which reports the
 * FNV of its copy through a pipe, and checks each page) sees exactly its
 * own writes, nothing of the GPU's.
 */
static void fork_cow_on(int fd, int gpu)
{
	const uint64_t pg = FX_PAGE, n = 3 * COW_PAGES, size = n * pg;
	/* Parts X, Y and Z (pages 2 * COW_PAGES on) of the buffer. */
	const uint64_t X = 0, Y = COW_PAGES;
	struct mvm vm = mirror_vm(fd);
	uint64_t *buf = anon_aligned(size, SZ_64K), h;
	uint64_t *parent_want = malloc(size), *child_want = malloc(size);
	volatile uint64_t *sums = pages(FX_PAGE);
	struct fx_cmd c = { 0 }, w = { 0 };
	struct svm_stats s0, s1;
	int c2p[2], p2c[2];
	struct sq q;
	char b = 0;
	pid_t pid;

	ftest_assert(parent_want && child_want);
	sq_init(&q, fd, vm.id);
	fill_pattern(buf, size, 0xa0 + gpu);
	fx_checksum(&c, (uintptr_t)&sums[0], (uintptr_t)buf, size);
	sq_ok(&q, &c, "hash the buffer before fork (maps it on the GPU)");
	assert_hash(sums[0], fx_fnv1a(buf, size), "the buffer before fork");
	memcpy(parent_want, buf, size);
	memcpy(child_want, buf, size);
	/* The child's writes: the first word of each page of Y. */
	for (uint64_t i = Y; i < Y + COW_PAGES; i++)
		child_want[i * pg / 8] = 0xc41d000000000000ull | i;
	/* The parent's CPU writes: the first word of each page of X. */
	for (uint64_t i = X; i < X + COW_PAGES; i++)
		parent_want[i * pg / 8] = 0x9a7e000000000000ull | i;

	ftest_assert_ok(pipe(c2p));
	ftest_assert_ok(pipe(p2c));
	s0 = svm_stats(fd);
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (uint64_t i = Y; i < Y + COW_PAGES; i++)
			buf[i * pg / 8] = 0xc41d000000000000ull | i;
		if (write(c2p[1], "y", 1) != 1 || read(p2c[0], &b, 1) != 1)
			_exit(1);
		/* The parent's GPU job has run: the child's copy is its own. */
		h = fx_fnv1a(buf, size);
		for (uint64_t i = 0; i < size / 8; i++) {
			if (buf[i] != child_want[i]) {
				if (!bad++)
					fprintf(stderr, "child: page %llu word %llu is %#llx, expected %#llx\n",
						(unsigned long long)(i * 8 / pg),
						(unsigned long long)(i % (pg / 8)),
						(unsigned long long)buf[i],
						(unsigned long long)child_want[i]);
			}
		}
		if (write(c2p[1], &h, 8) != 8)
			_exit(1);
		_exit(bad ? 2 : 0);
	}
	ftest_assert(pid > 0);
	for (uint64_t i = X; i < X + COW_PAGES; i++)
		buf[i * pg / 8] = 0x9a7e000000000000ull | i;
	ftest_assert_eq(read(c2p[0], &b, 1), 1);
	/* The GPU writes the second word of every page, then hashes it all. */
	for (uint64_t i = 0; i < n; i++) {
		fx_write64(&w, (uintptr_t)&buf[i * pg / 8 + 1], 0x6b0000000000000ull | i, 0);
		parent_want[i * pg / 8 + 1] = 0x6b0000000000000ull | i;
	}
	fx_checksum(&w, (uintptr_t)&sums[1], (uintptr_t)buf, size);
	sq_ok(&q, &w, "GPU writes and hashes the parent's buffer after fork");
	s1 = svm_stats(fd);
	ftest_assert_eq(write(p2c[1], "g", 1), 1);
	ftest_assert_eq(read(c2p[0], &h, 8), 8);
	fx_reap(pid);
	svm_print("fork-cow", &s0, &s1);
	for (uint64_t i = 0; i < size / 8; i++)
		if (buf[i] != parent_want[i])
			ftest_fail("parent: page %llu word %llu is %#llx, expected %#llx",
				   (unsigned long long)(i * 8 / pg), (unsigned long long)(i % (pg / 8)),
				   (unsigned long long)buf[i], (unsigned long long)parent_want[i]);
	assert_hash(sums[1], fx_fnv1a(parent_want, size), "the parent's buffer after fork");
	if (h != fx_fnv1a(child_want, size))
		ftest_fail("the child's copy hashes to %#llx, expected %#llx: the GPU wrote the child's pages",
			   (unsigned long long)h, (unsigned long long)fx_fnv1a(child_want, size));
	/* fork write-protected the mirrored pages: their GPU mappings went. */
	ftest_assert(sv_delta(&s0, &s1, SV_INVALIDATIONS) > 0);
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 0);
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	free(parent_want);
	free(child_want);
}

static void test_fork_cow(void)
{
	on_mirror_gpus(fork_cow_on);
}

/* ---- munmap-faults --------------------------------------------------------- */

/*
 * munmap takes memory away from the GPU too. A 2 MiB region the GPU has
 * mapped (one chunk) loses 64 KiB in its middle: jobs on what is left
 * still work (and hash right), a WRITE64 into the hole faults at exactly
 * its address, a CHECKSUM that runs into the hole from the page before
 * faults at the hole's first byte; svm counts each failed job as an
 * abort. A new mapping at the hole (MAP_FIXED_NOREPLACE) with new content
 * is what the GPU then sees, not the old pages. Then the whole region
 * goes: a job touching it faults, and a new mapping there is seen fresh.
 */
static void munmap_faults_on(int fd, int gpu)
{
	const uint64_t half = SZ_2M / 2;
	struct mvm vm = mirror_vm(fd);
	uint8_t *r = anon_aligned(SZ_2M, SZ_2M), *hole = r + half, *p;
	uint8_t *want = malloc(SZ_2M);
	volatile uint64_t *sums = pages(FX_PAGE);
	struct fx_cmd c0 = { 0 }, c1 = { 0 }, w = { 0 }, x = { 0 }, c2 = { 0 }, c3 = { 0 };
	struct fx_cmd c4 = { 0 }, w2 = { 0 };
	struct svm_stats s0, s1;
	struct sq q;

	ftest_assert(want);
	sq_init(&q, fd, vm.id);
	fill_pattern(r, SZ_2M, 0x3a9 + gpu);
	memcpy(want, r, SZ_2M);
	fx_checksum(&c0, (uintptr_t)&sums[0], (uintptr_t)r, SZ_2M);
	sq_ok(&q, &c0, "hash the 2 MiB region");
	assert_hash(sums[0], fx_fnv1a(want, SZ_2M), "the 2 MiB region");

	s0 = svm_stats(fd);
	ftest_assert_ok(munmap(hole, SZ_64K));
	fx_checksum(&c1, (uintptr_t)&sums[1], (uintptr_t)r, half);
	sq_ok(&q, &c1, "hash the first half, below the hole");
	assert_hash(sums[1], fx_fnv1a(want, half), "the first half");
	fx_write64(&w, (uintptr_t)hole + 0x238, 0xbad, 0);
	sq_fault(&q, &w, (uintptr_t)hole + 0x238, true, "WRITE64 into the unmapped hole");
	fx_checksum(&x, (uintptr_t)&sums[2], (uintptr_t)hole - 4096, 8192);
	sq_fault(&q, &x, (uintptr_t)hole, false, "CHECKSUM running into the hole");
	fx_checksum(&c2, (uintptr_t)&sums[3], (uintptr_t)hole + SZ_64K, half - SZ_64K);
	sq_ok(&q, &c2, "hash above the hole");
	assert_hash(sums[3], fx_fnv1a(want + half + SZ_64K, half - SZ_64K), "above the hole");
	s1 = svm_stats(fd);
	svm_print("munmap of the hole", &s0, &s1);
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 2);
	ftest_assert(sv_delta(&s0, &s1, SV_INVALIDATIONS) >= 1);

	/* New memory at the hole: new content, no stale GPU mapping. */
	p = mmap(hole, SZ_64K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	ftest_assert(p == hole);
	fill_pattern(hole, SZ_64K, 0x9e3 + gpu);
	memcpy(want + half, hole, SZ_64K);
	fx_checksum(&c3, (uintptr_t)&sums[4], (uintptr_t)hole, SZ_64K);
	fx_write64(&c3, (uintptr_t)hole + 8, 0x4e3, 0);
	fx_checksum(&c3, (uintptr_t)&sums[5], (uintptr_t)r, SZ_2M);
	sq_ok(&q, &c3, "use the new mapping at the hole");
	assert_hash(sums[4], fx_fnv1a(want + half, SZ_64K), "the new mapping at the hole");
	memcpy(want + half + 8, &(uint64_t){ 0x4e3 }, 8);
	assert_bytes(r, want, SZ_2M, "the region after the GPU wrote the new mapping");
	assert_hash(sums[5], fx_fnv1a(want, SZ_2M), "the region with its new middle");

	/* The whole region goes; then comes back with other content. */
	ftest_assert_ok(munmap(r, SZ_2M));
	fx_checksum(&c4, (uintptr_t)&sums[6], (uintptr_t)r + 0x10, 64);
	sq_fault(&q, &c4, (uintptr_t)r + 0x10, false, "CHECKSUM of the unmapped region");
	p = mmap(r, SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	ftest_assert(p == r);
	fill_pattern(r, SZ_2M, 0x77 + gpu);
	fx_checksum(&w2, (uintptr_t)&sums[7], (uintptr_t)r, SZ_2M);
	sq_ok(&q, &w2, "hash the region mapped again");
	assert_hash(sums[7], fx_fnv1a(r, SZ_2M), "the region mapped again");
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	munmap(r, SZ_2M);
	free(want);
}

static void test_munmap_faults(void)
{
	on_mirror_gpus(munmap_faults_on);
}

/* ---- mprotect-readonly ------------------------------------------------------- */

/*
 * mprotect(PROT_READ) applies to the GPU at once: memory the GPU wrote
 * (and has mapped writable) is still read right afterwards, but a GPU
 * WRITE64 or FILL into it faults at exactly its address, as a write
 * (fault_status bit 4), and leaves the memory as it was; made writable
 * again, the GPU writes it.
 */
static void mprotect_readonly_on(int fd, int gpu)
{
	const uint64_t size = 256 << 10;
	struct mvm vm = mirror_vm(fd);
	uint8_t *p = anon_aligned(size, SZ_64K), *copy = malloc(size);
	volatile uint64_t *sums = pages(FX_PAGE);
	struct fx_cmd c = { 0 }, r = { 0 }, w = { 0 }, f = { 0 }, w2 = { 0 };
	struct svm_stats s0, s1;
	struct sq q;

	ftest_assert(copy);
	sq_init(&q, fd, vm.id);
	fill_pattern(p, size, 0x0b + gpu);
	fx_fill(&c, (uintptr_t)p, SZ_64K, 0x3217e000u);
	fx_write64(&c, (uintptr_t)p + 128 * 1024, 0xfeed, 0);
	sq_ok(&q, &c, "GPU writes before mprotect");
	assert_words((uint32_t *)p, SZ_64K, 0x3217e000u, "GPU FILL before mprotect");
	ftest_assert_eq_u64(*(uint64_t *)(p + 128 * 1024), 0xfeed);

	s0 = svm_stats(fd);
	ftest_assert_ok(mprotect(p, size, PROT_READ));
	memcpy(copy, p, size);
	fx_checksum(&r, (uintptr_t)&sums[0], (uintptr_t)p, size);
	sq_ok(&q, &r, "GPU reads read-only memory");
	assert_hash(sums[0], fx_fnv1a(copy, size), "read-only memory");
	fx_write64(&w, (uintptr_t)p + 0x2008, 0xbad, 0);
	sq_fault(&q, &w, (uintptr_t)p + 0x2008, true, "WRITE64 into read-only memory");
	fx_fill(&f, (uintptr_t)p + SZ_64K, 4096, 0xbadbad00u);
	sq_fault(&q, &f, (uintptr_t)p + SZ_64K, true, "FILL of read-only memory");
	s1 = svm_stats(fd);
	svm_print("mprotect(PROT_READ)", &s0, &s1);
	assert_bytes(p, copy, size, "read-only memory after the GPU's writes faulted");
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 2);
	ftest_assert(sv_delta(&s0, &s1, SV_INVALIDATIONS) >= 1);

	ftest_assert_ok(mprotect(p, size, PROT_READ | PROT_WRITE));
	fx_write64(&w2, (uintptr_t)p + 0x2008, 0x600d, 0);
	sq_ok(&q, &w2, "GPU writes after mprotect(PROT_READ | PROT_WRITE)");
	memcpy(copy + 0x2008, &(uint64_t){ 0x600d }, 8);
	assert_bytes(p, copy, size, "memory made writable again, after a GPU write");
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	munmap(p, size);
	free(copy);
}

static void test_mprotect_readonly(void)
{
	on_mirror_gpus(mprotect_readonly_on);
}

/* ---- migrate-under-load -------------------------------------------------------- */

static void require_thp(const char *why)
{
	char buf[128] = "";

	if (thp_size() != SZ_2M)
		ftest_skip("%s needs 2 MiB transparent huge pages (hpage_pmd_size is %llu)", why,
			   (unsigned long long)thp_size());
	fx_slurp("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf));
	if (strstr(buf, "[never]"))
		ftest_fail("transparent huge pages are off (%s): %s needs them",
			   "/sys/kernel/mm/transparent_hugepage/enabled says [never]", why);
}

/* MADV_COLLAPSE of [p, p + 2 MiB), retried while it is only busy: 0, or
 * the errno. EINVAL and ENOSYS fail the subtest (no THP support). */
static int collapse(void *p)
{
	for (int tries = 0;; tries++) {
		if (!madvise(p, SZ_2M, MADV_COLLAPSE))
			return 0;
		if (errno == EINVAL || errno == ENOSYS)
			ftest_fail("madvise(MADV_COLLAPSE): %s: the kernel must have transparent "
				   "huge pages (CONFIG_TRANSPARENT_HUGEPAGE) and Linux 6.1+",
				   strerror(errno));
		if ((errno != EAGAIN && errno != ENOMEM) || tries == 5)
			return errno;
		usleep(10000);
	}
}

/*
 * Milliseconds from a job's start to its end per fault, on 16 faults of
 * 64 KiB chunks (each in a VMA of its own). The debug kernel (KASAN,
 * lockdep, DMA-API debug) takes some 30 times the main kernel's, about
 * 1 ms under TCG: the heaviest subtests scale their work to it, so that
 * each job stays well within its timeout and each subtest within seconds.
 */
static double fault_ms(int fd)
{
	struct mvm vm = mirror_vm(fd);
	uint8_t *r = anon_aligned(32 * SZ_64K, SZ_2M);
	uint32_t cmds[16 * 5], *p = cmds;
	struct svm_stats a, b;
	uint64_t n;
	struct sq q;
	double t0, t;

	for (int k = 1; k < 32; k += 2)
		ftest_assert_ok(madvise(r + k * SZ_64K, SZ_64K, MADV_NOHUGEPAGE));
	sq_init(&q, fd, vm.id);
	/* The fence and command pages fault first. */
	sq_wait_ok(&q, sq_submit(&q, cmds, 0), "the calibration's first job");
	for (int k = 0; k < 16; k++)
		p = put_w64(p, (uintptr_t)r + 2ull * k * SZ_64K, k, 0);
	a = svm_stats(fd);
	t0 = ftest_now();
	sq_wait_ok(&q, sq_submit(&q, cmds, (uint32_t)(p - cmds)), "the calibration job");
	t = ftest_now() - t0;
	b = svm_stats(fd);
	n = sv_delta(&a, &b, SV_FAULTS);
	sq_fini(&q);
	return t * 1000 / (double)(n ? n : 1);
}

/* `full` units of work where a fault costs up to 2 ms, else fewer in
 * proportion (at least `least`). */
static int scaled_work(int fd, int full, int least, const char *what)
{
	double ms = fault_ms(fd);
	int n = ms <= 2 ? full : (int)(full * 1.0 / ms);

	if (n < least)
		n = least;
	if (n > full)
		n = full;
	printf("a fault takes %.2f ms here: %s %d (%d where faults are fast)\n", ms, what, n, full);
	return n;
}

/*
 * Pages move under the GPU's feet while it reads them: a 16 MiB region
 * written with 4 KiB pages (MADV_NOHUGEPAGE), then allowed huge pages,
 * is hashed by 6 jobs queued at once while the CPU collapses its 2 MiB
 * parts into THPs (MADV_COLLAPSE copies every page to a new huge page:
 * migration) as the jobs run, and once asks for compaction. pagemap
 * (root) proves pages moved (PFNs before and after differ); every job's
 * hash is the CPU's FNV of the region (the GPU never read a freed page);
 * a COPY of the last-collapsed part is exact; svm counts invalidations.
 * A GPU that pinned pages would make the collapses fail (EAGAIN).
 */
static void test_migrate_under_load(void)
{
	const uint64_t size = 16 << 20, npg = size / FX_PAGE, parts = size / SZ_2M;
	enum { JOBS = 6 };
	int fd = svm_open(0), collapsed = 0, during = 0, f;
	struct mvm vm;
	uint8_t *r, *dst;
	uint64_t *before = calloc(npg, 8), *after = calloc(npg, 8), want, moved = 0;
	volatile uint64_t *sums;
	uint64_t seq[JOBS + 1];
	struct svm_stats s0, s1;
	struct fx_cmd cp = { 0 };
	struct sq q;
	double t0;

	require_thp("migrate-under-load");
	ftest_assert(before && after);
	vm = mirror_vm(fd);
	sq_init(&q, fd, vm.id);
	sums = pages(FX_PAGE);
	r = anon_aligned(size, SZ_2M);
	dst = anon_aligned(SZ_2M, SZ_2M);
	ftest_assert_ok(madvise(r, size, MADV_NOHUGEPAGE));
	fill_pattern(r, size, 0x316);
	want = fx_fnv1a(r, size);
	pfns(r, npg, before);
	memset(dst, 0, SZ_2M);

	s0 = svm_stats(fd);
	t0 = ftest_now();
	for (int j = 0; j < JOBS; j++) {
		struct fx_cmd c = { 0 };

		fx_checksum(&c, (uintptr_t)&sums[j], (uintptr_t)r, size);
		seq[j] = sq_submit_cmd(&q, &c);
	}
	/* Two parts collapse as each of the jobs after the first runs: the
	 * first maps the whole region on the GPU (as 4 KiB pages), so every
	 * collapse moves pages the GPU has mapped, whatever the kernel's speed
	 * (on the debug kernel the GPU may otherwise reach a part only after
	 * its collapse, and find it a THP). */
	for (uint64_t i = 0; i < parts; i++) {
		int e;

		/* A failed or hung job: the waits below report it. */
		while (*q.fence < seq[0] + i / 2 && !fx_state(fd, q.id, 0).failed_jobs &&
		       ftest_now() - t0 < FENCE_TIMEOUT_S)
			usleep(200);
		if (i == 0) {
			struct svm_stats now = svm_stats(fd);

			printf("before the first collapse: %llu chunks mirrored\n",
			       (unsigned long long)sv(&now, SV_CHUNKS));
			/* Only now: khugepaged, which MADV_HUGEPAGE invites, would
			 * otherwise collapse parts before the GPU maps them (seen on
			 * the debug kernel: no invalidation to count). */
			ftest_assert_ok(madvise(r, size, MADV_HUGEPAGE));
		}
		during += *q.fence < seq[JOBS - 1];
		e = collapse(r + i * SZ_2M);
		if (e)
			printf("MADV_COLLAPSE of part %llu: %s\n", (unsigned long long)i, strerror(e));
		else
			collapsed++;
		if (i == parts / 2) {
			f = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);
			if (f < 0 || write(f, "1", 1) != 1)
				printf("compact_memory: %s (not used)\n", strerror(errno));
			if (f >= 0)
				close(f);
		}
	}
	fx_copy(&cp, (uintptr_t)dst, (uintptr_t)r + (parts - 1) * SZ_2M, SZ_2M);
	seq[JOBS] = sq_submit_cmd(&q, &cp);
	for (int j = 0; j <= JOBS; j++)
		sq_wait_ok(&q, seq[j], "a job over memory that moves");
	s1 = svm_stats(fd);
	svm_print("migrate-under-load", &s0, &s1);
	pfns(r, npg, after);
	for (uint64_t i = 0; i < npg; i++)
		moved += before[i] != after[i];
	printf("%d of %llu parts collapsed into THPs (%d while jobs ran), %llu THP blocks now, "
	       "%llu of %llu pages moved\n", collapsed, (unsigned long long)parts, during,
	       (unsigned long long)thp_blocks(r, size), (unsigned long long)moved,
	       (unsigned long long)npg);
	for (int j = 0; j < JOBS; j++)
		assert_hash(sums[j], want, "16 MiB region hashed while its pages moved");
	assert_bytes(dst, r + (parts - 1) * SZ_2M, SZ_2M, "COPY of the last collapsed part");
	if (!moved)
		ftest_fail("no page moved: MADV_COLLAPSE collapsed %d parts and compaction moved "
			   "nothing", collapsed);
	ftest_assert(during > 0);
	ftest_assert(sv_delta(&s0, &s1, SV_INVALIDATIONS) > 0);
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 0);
	free(before);
	free(after);
	close(fd);
}

/* ---- swap-under-load ------------------------------------------------------------ */

static uint64_t meminfo_kb(const char *key)
{
	char buf[8192], *k;

	if (fx_slurp("/proc/meminfo", buf, sizeof(buf)) <= 0 || !(k = strstr(buf, key)))
		return 0;
	return strtoull(k + strlen(key) + 1, NULL, 10);
}

struct swapdev {
	char dev[32];
	int zram;
	bool ours, added;
};

static int write_str(const char *path, const char *s)
{
	int f = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (f < 0)
		return -errno;
	if (write(f, s, strlen(s)) != (ssize_t)strlen(s))
		r = -errno;
	close(f);
	return r;
}

/*
 * Swap for the subtest: the system's if it has some; else zram device 0
 * (or one added through zram-control) of 256 MiB, given a swap header
 * written here (union swap_header of linux/swap.h: version 1, last_page,
 * no bad pages, "SWAPSPACE2" at the end of the first page) and swapon(2).
 */
static void swap_setup(struct swapdev *s)
{
	char path[96], buf[64];
	uint64_t bytes;
	uint8_t *hdr;
	int f, r;

	memset(s, 0, sizeof(*s));
	if (meminfo_kb("SwapTotal:")) {
		printf("swap already on (SwapTotal %llu kB): used as it is\n",
		       (unsigned long long)meminfo_kb("SwapTotal:"));
		return;
	}
	if (access("/sys/block/zram0", F_OK)) {
		/* Reading hot_add adds a device and gives its number. */
		if (fx_slurp("/sys/class/zram-control/hot_add", buf, sizeof(buf)) <= 0)
			ftest_fail("no /sys/block/zram0 and no zram-control: the kernel needs CONFIG_ZRAM");
		s->zram = atoi(buf);
		s->added = true;
	}
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", s->zram);
	if (fx_slurp(path, buf, sizeof(buf)) <= 0)
		ftest_fail("read %s: %s", path, strerror(errno));
	if (!strtoull(buf, NULL, 10)) {
		r = write_str(path, "256M");
		if (r)
			ftest_fail("write 256M to %s: %s", path, strerror(-r));
		fx_slurp(path, buf, sizeof(buf));
	}
	bytes = strtoull(buf, NULL, 10);
	ftest_assert(bytes >= 64 << 20);
	snprintf(s->dev, sizeof(s->dev), "/dev/zram%d", s->zram);
	hdr = calloc(1, FX_PAGE);
	ftest_assert(hdr);
	{
		uint32_t *info = (uint32_t *)(hdr + 1024);

		info[0] = 1;				/* version */
		info[1] = (uint32_t)(bytes / FX_PAGE - 1);	/* last_page */
		info[2] = 0;				/* nr_badpages */
		memcpy(hdr + FX_PAGE - 10, "SWAPSPACE2", 10);
	}
	f = open(s->dev, O_RDWR | O_CLOEXEC);
	if (f < 0)
		ftest_fail("open %s: %s", s->dev, strerror(errno));
	ftest_assert_eq(pwrite(f, hdr, FX_PAGE, 0), (ssize_t)FX_PAGE);
	ftest_assert_ok(fsync(f));
	close(f);
	free(hdr);
	if (swapon(s->dev, 0))
		ftest_fail("swapon(%s): %s", s->dev, strerror(errno));
	s->ours = true;
	printf("swap on %s: %llu MiB (SwapTotal %llu kB)\n", s->dev,
	       (unsigned long long)(bytes >> 20), (unsigned long long)meminfo_kb("SwapTotal:"));
}

static void swap_teardown(struct swapdev *s)
{
	char path[96], num[16];

	if (!s->ours)
		return;
	if (swapoff(s->dev))
		ftest_fail("swapoff(%s): %s", s->dev, strerror(errno));
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", s->zram);
	write_str(path, "1");
	if (s->added) {
		snprintf(num, sizeof(num), "%d", s->zram);
		write_str("/sys/class/zram-control/hot_remove", num);
	}
}

/* Pages of [p, p + n pages) swapped out, and present; and the 2 MiB
 * parts (from p) with a page swapped out, if `parts`. */
static void swap_census(const void *p, uint64_t n, uint64_t *swapped, uint64_t *present,
			uint64_t *parts)
{
	uint64_t *e = calloc(n, 8), per = SZ_2M / FX_PAGE;

	ftest_assert(e);
	pagemap(p, n, e);
	*swapped = *present = 0;
	if (parts)
		*parts = 0;
	for (uint64_t i = 0; i < n; i++) {
		*swapped += !!(e[i] & PM_SWAPPED);
		*present += !!(e[i] & PM_PRESENT);
		if (parts && i % per == 0) {
			bool any = false;

			for (uint64_t j = i; j < i + per && j < n; j++)
				any |= !!(e[j] & PM_SWAPPED);
			*parts += any;
		}
	}
	free(e);
}

/* The region swap_work() swaps out: 32 MiB, or 8 MiB where faults are slow. */
static uint64_t swap_size = 32 << 20;

static void swap_work(void)
{
	const uint64_t size = swap_size, npg = size / FX_PAGE;
	enum { JOBS = 2 };
	int fd = svm_open(0);
	struct mvm vm = mirror_vm(fd);
	uint8_t *r = anon_aligned(size, SZ_2M);
	volatile uint64_t *sums = pages(FX_PAGE);
	uint64_t want, swapped, present, parts, seq[JOBS], pageouts = 0, part = 0;
	struct fx_cmd c0 = { 0 }, c1 = { 0 };
	struct svm_stats s0, s0b, s1, s2;
	struct sq q;

	sq_init(&q, fd, vm.id);
	ftest_assert_ok(madvise(r, size, MADV_NOHUGEPAGE));
	fill_pattern(r, size, 0x5a9);
	want = fx_fnv1a(r, size);
	/* Map it all on the GPU cheaply: 64 bytes of each 2 MiB chunk. */
	for (uint64_t k = 0; k < size / SZ_2M; k++)
		fx_checksum(&c0, (uintptr_t)&sums[16 + k], (uintptr_t)r + k * SZ_2M, 64);
	sq_ok(&q, &c0, "hash 64 bytes of each 2 MiB (maps it all)");
	for (uint64_t k = 0; k < size / SZ_2M; k++)
		assert_hash(sums[16 + k], fx_fnv1a(r + k * SZ_2M, 64), "64 bytes before swap-out");

	s0 = svm_stats(fd);
	ftest_assert_ok(madvise(r, size, MADV_PAGEOUT));
	s0b = svm_stats(fd);
	swap_census(r, npg, &swapped, &present, &parts);
	printf("after MADV_PAGEOUT: %llu of %llu pages swapped out (in %llu of the 2 MiB chunks), "
	       "%llu present; mirrored chunks %llu -> %llu\n", (unsigned long long)swapped,
	       (unsigned long long)npg, (unsigned long long)parts, (unsigned long long)present,
	       (unsigned long long)sv(&s0, SV_CHUNKS), (unsigned long long)sv(&s0b, SV_CHUNKS));
	if (swapped < npg / 2)
		ftest_fail("MADV_PAGEOUT swapped out only %llu of %llu pages the GPU had mapped: "
			   "are they pinned?", (unsigned long long)swapped, (unsigned long long)npg);
	/* Every chunk with a page gone to swap lost its GPU mapping. */
	ftest_assert(sv(&s0, SV_CHUNKS) >= sv(&s0b, SV_CHUNKS) + parts);
	ftest_assert(sv_delta(&s0, &s0b, SV_INVALIDATIONS) >= parts);
	fx_checksum(&c1, (uintptr_t)&sums[1], (uintptr_t)r, size);
	sq_ok(&q, &c1, "hash 32 MiB that is in swap");
	s1 = svm_stats(fd);
	svm_print("swap-in by GPU faults", &s0, &s1);
	assert_hash(sums[1], want, "32 MiB read back from swap by GPU faults");
	swap_census(r, npg, &swapped, &present, NULL);
	printf("after the GPU's read: %llu pages swapped out, %llu present\n",
	       (unsigned long long)swapped, (unsigned long long)present);
	ftest_assert_eq(swapped, 0);
	ftest_assert_eq(present, npg);
	ftest_assert(sv_delta(&s0, &s1, SV_INVALIDATIONS) > 0);
	ftest_assert(sv_delta(&s0, &s1, SV_FAULTS) >= size / SZ_2M);

	/* Swap-out while jobs read it: 2 MiB at a time, in turn. */
	for (int j = 0; j < JOBS; j++) {
		struct fx_cmd c = { 0 };

		fx_checksum(&c, (uintptr_t)&sums[2 + j], (uintptr_t)r, size);
		seq[j] = sq_submit_cmd(&q, &c);
	}
	do {
		ftest_assert_ok(madvise(r + part * SZ_2M, SZ_2M, MADV_PAGEOUT));
		part = (part + 3) % (size / SZ_2M);
		pageouts++;
		if (fx_state(fd, q.id, 0).failed_jobs)
			break;
		usleep(20000);
	} while (*q.fence < seq[JOBS - 1]);
	for (int j = 0; j < JOBS; j++)
		sq_wait_ok(&q, seq[j], "hash 32 MiB while it is swapped out piece by piece");
	s2 = svm_stats(fd);
	svm_print("swap-out under load", &s1, &s2);
	printf("%llu MADV_PAGEOUTs of 2 MiB while %d jobs hashed the region\n",
	       (unsigned long long)pageouts, JOBS);
	for (int j = 0; j < JOBS; j++)
		assert_hash(sums[2 + j], want, "32 MiB hashed while pieces went to swap");
	ftest_assert_eq(sv_delta(&s0, &s2, SV_ABORTS), 0);
	sq_fini(&q);
	close(fd);
}

/*
 * Swap-out and swap-in under the GPU (zram swap, set up here when the
 * system has none, taken down afterwards): 32 MiB of 4 KiB pages the GPU
 * has mapped (a job read 64 bytes of each 2 MiB chunk) goes to swap with MADV_PAGEOUT (pagemap bit 62:
 * most pages really are swapped out, which they could not be if pinned);
 * the GPU's next hash faults them back in (all present again, hash
 * exact). Then 2 jobs hash the region while the CPU pages 2 MiB parts out
 * in turn: every hash exact, no job failed.
 */
static void test_swap_under_load(void)
{
	struct swapdev s;
	int fd = svm_open(0), status;
	pid_t pid;

	swap_size = (uint64_t)scaled_work(fd, 32, 8, "MiB swapped") << 20;
	close(fd);
	swap_setup(&s);
	if (!meminfo_kb("SwapTotal:"))
		ftest_fail("SwapTotal is 0 after swapon");
	/* The work in a child, so that swap goes off whatever it finds. */
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		swap_work();
		fflush(NULL);
		_exit(0);
	}
	ftest_assert(pid > 0);
	ftest_assert_eq(waitpid(pid, &status, 0), pid);
	swap_teardown(&s);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ftest_fail("the swap work failed (wait status %#x; its messages are above)", status);
}

/* ---- fault-storm ----------------------------------------------------------------- */

#define STORM_SIZE (64ull << 20)
#define STORM_QUEUES 4
#define STORM_JOBS 4
#define STORM_WRITES 4096 /* per queue, where faults are fast */
#define NORMAL_JOBS 16

/*
 * Faults from 4 queues at once, in two mirror VMs of this process (2
 * queues each): every queue writes 4096 values (WRITE64) at random pages
 * of a 64 MiB region (not 256 MiB: the guest's 2 GiB and TCG speed), in 4
 * jobs of 1024 queued at once. The region is made of 64 KiB VMAs
 * (alternate MADV_NOHUGEPAGE), so faults map 64 KiB chunks: about 1,000
 * per VM. Meanwhile a 5th queue, in an ordinary VM, runs 16 small jobs
 * with syncobj fences, one after the other: each must complete (a
 * stalled queue does not hold up other VMs' queues). Then the CPU checks
 * every word of the region (each queue's last write to each of its
 * pages; zeros elsewhere), and the faults are at least the distinct
 * 64 KiB chunks each VM touched.
 */
static void test_fault_storm(void)
{
	const uint64_t npg = STORM_SIZE / 4096, nchunks = STORM_SIZE / SZ_64K;
	int fd = svm_open(0), overlap = 0;
	struct mvm vms[2];
	struct sq q[STORM_QUEUES];
	uint64_t *r = anon_aligned(STORM_SIZE, SZ_2M);
	uint32_t *page_of[STORM_QUEUES], *cmds = malloc(1024 * 5 * 4);
	int32_t *last = malloc(npg * 4);
	uint8_t *touched[2];
	uint64_t seq[STORM_QUEUES][STORM_JOBS], min_faults = 0, x = 0x5707a;
	uint32_t ovm, obo, ocmd, oq, so[NORMAL_JOBS];
	volatile uint64_t *ores;
	struct svm_stats s0, s1;
	double t0;
	int writes, per;

	ftest_assert(cmds && last);
	writes = scaled_work(fd, STORM_WRITES, 128, "writes per queue");
	per = writes / STORM_JOBS;
	writes = per * STORM_JOBS; /* every write is in a job */
	/* 64 KiB VMAs: every other one is VM_NOHUGEPAGE, so none merge. */
	for (uint64_t k = 1; k < nchunks; k += 2)
		ftest_assert_ok(madvise((uint8_t *)r + k * SZ_64K, SZ_64K, MADV_NOHUGEPAGE));
	for (int v = 0; v < 2; v++) {
		vms[v] = mirror_vm(fd);
		assert_mirrored(&vms[v], r, STORM_SIZE, "the storm region");
		touched[v] = calloc(nchunks, 1);
		ftest_assert(touched[v]);
	}
	for (int i = 0; i < STORM_QUEUES; i++) {
		sq_init(&q[i], fd, vms[i / 2].id);
		page_of[i] = malloc(writes * 4);
		ftest_assert(page_of[i]);
		for (int k = 0; k < writes; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			page_of[i][k] = (uint32_t)(x % npg);
			touched[i / 2][page_of[i][k] * 4096 / SZ_64K] = 1;
		}
	}
	for (int v = 0; v < 2; v++)
		for (uint64_t k = 0; k < nchunks; k++)
			min_faults += touched[v][k];

	/* The ordinary VM: a result BO at FX_VA(1), NORMAL_JOBS WRITE64s at
	 * 64-byte steps of a command BO at FX_VA(4). */
	ovm = fx_vm(fd);
	obo = fx_bo(fd, FX_PAGE);
	ores = fx_mmap(fd, obo, FX_PAGE);
	fx_map(fd, ovm, obo, FX_VA(1), FX_PAGE);
	ocmd = fx_bo(fd, FX_PAGE);
	{
		uint32_t *p = fx_mmap(fd, ocmd, FX_PAGE);

		for (int j = 0; j < NORMAL_JOBS; j++)
			put_w64(p + j * 16, FX_VA(1) + 8 * j, 0x9000 + j, 0);
		munmap(p, FX_PAGE);
	}
	fx_map(fd, ovm, ocmd, FX_VA(4), FX_PAGE);
	oq = fx_queue(fd, ovm, 0);

	s0 = svm_stats(fd);
	t0 = ftest_now();
	for (int j = 0; j < STORM_JOBS; j++) {
		for (int i = 0; i < STORM_QUEUES; i++) {
			uint32_t *p = cmds;

			for (int k = j * per; k < (j + 1) * per; k++)
				p = put_w64(p, (uintptr_t)r + page_of[i][k] * 4096ull + 8 * i,
					    ((uint64_t)(i + 1) << 56) | ((uint64_t)j << 48) | (uint64_t)k, 0);
			seq[i][j] = sq_submit(&q[i], cmds, (uint32_t)(p - cmds));
		}
	}
	for (int j = 0; j < NORMAL_JOBS; j++) {
		bool running_before = false, running_after = false;

		for (int i = 0; i < STORM_QUEUES; i++)
			running_before |= *q[i].fence < seq[i][STORM_JOBS - 1];
		so[j] = fx_syncobj(fd);
		ftest_assert_ok(fx_submit(fd, oq, FX_VA(4) + 64 * j, 20, so[j]));
		if (fx_syncobj_wait(fd, so[j], 10000))
			ftest_fail("ordinary VM job %d did not complete in 10 s during the fault storm", j);
		ftest_assert_eq(fx_syncobj_status(fd, so[j]), 1);
		for (int i = 0; i < STORM_QUEUES; i++)
			running_after |= *q[i].fence < seq[i][STORM_JOBS - 1];
		overlap += running_before && running_after;
		usleep(5000);
	}
	for (int i = 0; i < STORM_QUEUES; i++)
		for (int j = 0; j < STORM_JOBS; j++)
			sq_wait_ok(&q[i], seq[i][j], "a fault-storm job");
	s1 = svm_stats(fd);
	svm_print("fault-storm", &s0, &s1);
	printf("storm of %d x %d writes took %.2f s, %llu faults (>= %llu distinct 64 KiB chunks "
	       "over the 2 VMs); %d of %d ordinary jobs ran from start to end during it\n",
	       STORM_QUEUES, writes, ftest_now() - t0,
	       (unsigned long long)sv_delta(&s0, &s1, SV_FAULTS), (unsigned long long)min_faults,
	       overlap, NORMAL_JOBS);

	/* The ordinary VM's results. */
	ftest_assert_ok(fx_gem_sync(fd, obo, FX_BEGIN_R));
	for (int j = 0; j < NORMAL_JOBS; j++)
		ftest_assert_eq_u64(ores[j], 0x9000 + j);
	ftest_assert_ok(fx_gem_sync(fd, obo, FX_END_R));
	if (!overlap)
		ftest_fail("no ordinary job ran while the storm did: the storm was too short to test it");

	/* Every word of the region. */
	for (int i = 0; i < STORM_QUEUES; i++) {
		memset(last, 0xff, npg * 4);
		for (int k = 0; k < writes; k++)
			last[page_of[i][k]] = k;
		for (uint64_t pg = 0; pg < npg; pg++) {
			uint64_t want = last[pg] < 0 ? 0 :
					((uint64_t)(i + 1) << 56) | ((uint64_t)(last[pg] / per) << 48) |
					(uint64_t)last[pg];
			uint64_t got = r[pg * 512 + i];

			if (got != want)
				ftest_fail("queue %d: page %llu holds %#llx, expected %#llx", i,
					   (unsigned long long)pg, (unsigned long long)got,
					   (unsigned long long)want);
		}
	}
	for (uint64_t w = 0; w < STORM_SIZE / 8; w++)
		if (w % 512 >= STORM_QUEUES && r[w])
			ftest_fail("word %#llx of the region is %#llx: nothing wrote there",
				   (unsigned long long)w, (unsigned long long)r[w]);
	ftest_assert(sv_delta(&s0, &s1, SV_FAULTS) >= min_faults);
	ftest_assert(sv_delta(&s0, &s1, SV_PAGES) >= min_faults * (SZ_64K / FX_PAGE));
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), 0);
	for (int i = 0; i < STORM_QUEUES; i++)
		sq_fini(&q[i]);
	close(fd);
}

/* ---- stalled-queue-yields --------------------------------------------------------- */

#define YIELD_SIZE (32ull << 20)
#define YIELD_WRITES 512 /* per queue, where faults are fast */

/*
 * A queue stalled on a fault gives its hardware ring up to a queue that
 * waits for one. More mirror queues than the device has rings each run a
 * job of 512 WRITE64s at random pages of a 32 MiB region of 64 KiB VMAs
 * (each write a fault, most of the time), so that at any moment queues
 * wait for a ring while others are stalled; an ordinary VM's queue
 * submits jobs meanwhile. The scheduler's stall_yields (debugfs svm
 * `yields`) must grow, every write must land, and the ordinary jobs must
 * complete.
 */
static void test_stalled_queue_yields(void)
{
	int fd = svm_open(0);
	const uint32_t rings = fx_sched_info(fd).num_rings;
	const uint32_t nq = rings + 2;
	const uint64_t npg = YIELD_SIZE / 4096, nchunks = YIELD_SIZE / SZ_64K;
	struct mvm vm = mirror_vm(fd);
	struct sq *q = calloc(nq, sizeof(*q));
	uint64_t *r = anon_aligned(YIELD_SIZE, SZ_2M), x = 0x71e1d, *seq = calloc(nq, 8);
	uint32_t **page_of = calloc(nq, sizeof(*page_of)), *cmds = malloc(YIELD_WRITES * 5 * 4);
	uint32_t ovm, obo, ocmd, oq;
	volatile uint64_t *ores;
	struct svm_stats s0, s1;
	int writes;

	ftest_assert(q && seq && page_of && cmds);
	writes = scaled_work(fd, YIELD_WRITES, 32, "writes per queue");
	for (uint64_t k = 1; k < nchunks; k += 2)
		ftest_assert_ok(madvise((uint8_t *)r + k * SZ_64K, SZ_64K, MADV_NOHUGEPAGE));
	assert_mirrored(&vm, r, YIELD_SIZE, "the region");
	for (uint32_t i = 0; i < nq; i++) {
		sq_init(&q[i], fd, vm.id);
		page_of[i] = malloc(writes * 4);
		ftest_assert(page_of[i]);
		for (int k = 0; k < writes; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			page_of[i][k] = (uint32_t)(x % npg);
		}
	}
	ovm = fx_vm(fd);
	obo = fx_bo(fd, FX_PAGE);
	ores = fx_mmap(fd, obo, FX_PAGE);
	fx_map(fd, ovm, obo, FX_VA(1), FX_PAGE);
	ocmd = fx_bo(fd, FX_PAGE);
	{
		uint32_t *p = fx_mmap(fd, ocmd, FX_PAGE);

		for (int j = 0; j < 8; j++)
			put_w64(p + j * 16, FX_VA(1) + 8 * j, 0x7000 + j, 0);
		munmap(p, FX_PAGE);
	}
	fx_map(fd, ovm, ocmd, FX_VA(4), FX_PAGE);
	oq = fx_queue(fd, ovm, 0);

	s0 = svm_stats(fd);
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t *p = cmds;

		for (int k = 0; k < writes; k++)
			p = put_w64(p, (uintptr_t)r + page_of[i][k] * 4096ull + 8 * (i % 512),
				    ((uint64_t)(i + 1) << 32) | (uint64_t)k, 0);
		seq[i] = sq_submit(&q[i], cmds, (uint32_t)(p - cmds));
	}
	for (int j = 0; j < 8; j++) {
		uint32_t so = fx_syncobj(fd);

		ftest_assert_ok(fx_submit(fd, oq, FX_VA(4) + 64 * j, 20, so));
		if (fx_syncobj_wait(fd, so, 10000))
			ftest_fail("ordinary VM job %d did not complete in 10 s", j);
		ftest_assert_eq(fx_syncobj_status(fd, so), 1);
	}
	for (uint32_t i = 0; i < nq; i++)
		sq_wait_ok(&q[i], seq[i], "a faulting job");
	s1 = svm_stats(fd);
	svm_print("stalled-queue-yields", &s0, &s1);
	printf("%u mirror queues on %u rings: %llu faults, %llu stalled rings given up\n", nq, rings,
	       (unsigned long long)sv_delta(&s0, &s1, SV_FAULTS),
	       (unsigned long long)sv_delta(&s0, &s1, SV_YIELDS));

	ftest_assert_ok(fx_gem_sync(fd, obo, FX_BEGIN_R));
	for (int j = 0; j < 8; j++)
		ftest_assert_eq_u64(ores[j], 0x7000 + j);
	ftest_assert_ok(fx_gem_sync(fd, obo, FX_END_R));
	for (uint32_t i = 0; i < nq; i++) {
		for (int k = 0; k < writes; k++) {
			uint64_t pg = page_of[i][k], got = r[pg * 512 + i % 512];
			int last = k;

			/* A later write of the same queue to the same page wins. */
			for (int m = k + 1; m < writes; m++)
				if (page_of[i][m] == pg)
					last = m;
			if (got != (((uint64_t)(i + 1) << 32) | (uint64_t)last))
				ftest_fail("queue %u: page %llu holds %#llx, expected write %d", i,
					   (unsigned long long)pg, (unsigned long long)got, last);
		}
	}
	ftest_assert(sv_delta(&s0, &s1, SV_ABORTS) == 0);
	if (sv_delta(&s0, &s1, SV_YIELDS) == 0)
		ftest_fail("no stalled ring was given to a waiting queue (%u queues on %u rings)", nq,
			   rings);
	for (uint32_t i = 0; i < nq; i++)
		sq_fini(&q[i]);
	close(fd);
}

/* ---- thp-blocks -------------------------------------------------------------------- */

/*
 * A transparent huge page is one GPU block: an 8 MiB region of THPs
 * (MADV_HUGEPAGE, touched by the CPU; kpageflags confirms 4 THPs, after a
 * MADV_COLLAPSE if need be) hashed by the GPU maps 4 blocks (svm
 * blocks_2m), and the hash walks the page table fewer than 256 times
 * (device counter tlb_misses) where 4 KiB pages take one walk each, 2048.
 * For comparison the same over 8 MiB of 4 KiB pages (MADV_NOHUGEPAGE) and
 * a second hash of the THPs are printed.
 */
static void test_thp_blocks(void)
{
	const uint64_t size = 8 << 20;
	int fd = svm_open(0);
	struct mvm vm;
	uint8_t *t, *s;
	volatile uint64_t *sums;
	struct drm_ferrite_counters c0, c1, c2, c3, c4;
	struct svm_stats s0, s1, s2, s3;
	struct fx_cmd a = { 0 }, b = { 0 }, d = { 0 };
	uint64_t thps, misses;
	struct sq q;

	require_thp("thp-blocks");
	vm = mirror_vm(fd);
	sq_init(&q, fd, vm.id);
	sums = pages(FX_PAGE);
	t = anon_aligned(size, SZ_2M);
	s = anon_aligned(size, SZ_2M);
	ftest_assert_ok(madvise(t, size, MADV_HUGEPAGE));
	ftest_assert_ok(madvise(s, size, MADV_NOHUGEPAGE));
	fill_pattern(t, size, 0x7a9);
	fill_pattern(s, size, 0x4c);
	thps = thp_blocks(t, size);
	for (uint64_t i = 0; thps < size / SZ_2M && i < size / SZ_2M; i++)
		collapse(t + i * SZ_2M);
	thps = thp_blocks(t, size);
	if (thps < size / SZ_2M)
		ftest_fail("only %llu of the 8 MiB region's 4 parts are THPs (kpageflags), even after "
			   "MADV_COLLAPSE", (unsigned long long)thps);

	c0 = fx_counters(fd);
	s0 = svm_stats(fd);
	fx_checksum(&a, (uintptr_t)&sums[0], (uintptr_t)t, size);
	sq_ok(&q, &a, "hash 8 MiB of THPs");
	c1 = fx_counters(fd);
	s1 = svm_stats(fd);
	fx_checksum(&b, (uintptr_t)&sums[1], (uintptr_t)t, size);
	sq_ok(&q, &b, "hash 8 MiB of THPs again");
	c2 = fx_counters(fd);
	c3 = fx_counters(fd);
	s2 = svm_stats(fd);
	fx_checksum(&d, (uintptr_t)&sums[2], (uintptr_t)s, size);
	sq_ok(&q, &d, "hash 8 MiB of 4 KiB pages");
	c4 = fx_counters(fd);
	s3 = svm_stats(fd);
	svm_print("8 MiB of THPs", &s0, &s1);
	svm_print("8 MiB of 4 KiB pages", &s2, &s3);
	assert_hash(sums[0], fx_fnv1a(t, size), "8 MiB of THPs");
	assert_hash(sums[1], fx_fnv1a(t, size), "8 MiB of THPs, again");
	assert_hash(sums[2], fx_fnv1a(s, size), "8 MiB of 4 KiB pages");
	misses = c1.hw[TLB_MISSES] - c0.hw[TLB_MISSES];
	printf("THPs: first hash %llu TLB misses (%llu MMU faults), second hash %llu; 4 KiB pages: "
	       "%llu TLB misses (%llu MMU faults); blocks_2m %llu vs %llu\n",
	       (unsigned long long)misses,
	       (unsigned long long)(c1.hw[HW_FAULTS] - c0.hw[HW_FAULTS]),
	       (unsigned long long)(c2.hw[TLB_MISSES] - c1.hw[TLB_MISSES]),
	       (unsigned long long)(c4.hw[TLB_MISSES] - c3.hw[TLB_MISSES]),
	       (unsigned long long)(c4.hw[HW_FAULTS] - c3.hw[HW_FAULTS]),
	       (unsigned long long)sv_delta(&s0, &s1, SV_BLOCKS_2M),
	       (unsigned long long)sv_delta(&s2, &s3, SV_BLOCKS_2M));
	ftest_assert(sv_delta(&s0, &s1, SV_BLOCKS_2M) >= size / SZ_2M);
	ftest_assert(misses < 256);
	sq_fini(&q);
	close(fd);
}

/* ---- foreign-mm --------------------------------------------------------------------- */

/* What the child of foreign-mm checks; its exit status names the step
 * that failed. */
static const char *const foreign_steps[] = {
	"",
	"QUEUE_CREATE on the parent's mirror VM did not fail with EPERM",
	"SUBMIT on the parent's mirror queue did not fail with EPERM",
	"VM_CREATE MIRROR of the child's own failed",
	"QUEUE_CREATE on the child's own mirror VM failed",
	"the child's job on its own mirror VM did not complete",
	"the child's GPU FILL is not in the child's memory",
};

static int foreign_child(int fd, uint32_t parent_vm, uint32_t parent_q, uint8_t *shared,
			 uint64_t size)
{
	struct drm_ferrite_queue_create qc = {
		.vm_id = parent_vm, .timeout_ms = QUEUE_TIMEOUT_MS,
	};
	uint32_t *cmd = pages(FX_PAGE), *own = pages(SZ_64K);
	volatile uint64_t *fence = pages(FX_PAGE);
	struct drm_ferrite_vm_create vc;
	int r, qid;

	/* A valid job: the refusal is about who asks, nothing else. */
	put_w64(cmd, (uintptr_t)fence, 1, FX_W64_FLUSH);
	errno = 0;
	if (ioctl(fd, DRM_IOCTL_FERRITE_QUEUE_CREATE, &qc) != -1 || errno != EPERM) {
		fprintf(stderr, "child: QUEUE_CREATE on VM %u: %s\n", parent_vm, strerror(errno));
		return 1;
	}
	r = svm_submit(fd, parent_q, (uintptr_t)cmd, 20, NULL, 0, NULL, 0);
	if (r != -EPERM) {
		fprintf(stderr, "child: SUBMIT on queue %u: %s\n", parent_q, strerror(-r));
		return 2;
	}
	/* Its own mirror VM on the same file mirrors the child's memory. */
	r = vm_create(fd, MIRROR, &vc);
	if (r) {
		fprintf(stderr, "child: VM_CREATE MIRROR: %s\n", strerror(-r));
		return 3;
	}
	qid = fx_queue_prio(fd, vc.vm_id, QUEUE_TIMEOUT_MS, 0, 0);
	if (qid < 0) {
		fprintf(stderr, "child: QUEUE_CREATE: %s\n", strerror(-qid));
		return 4;
	}
	{
		struct fx_cmd c = { 0 };
		double t0 = ftest_now();

		fx_fill(&c, (uintptr_t)own, SZ_64K, 0xc41dc41du);
		fx_fill(&c, (uintptr_t)shared, size, 0xc41d0000u);
		memcpy(cmd, c.dw, c.n * 4);
		put_w64(cmd + c.n, (uintptr_t)fence, 2, FX_W64_FLUSH);
		r = svm_submit(fd, (uint32_t)qid, (uintptr_t)cmd, (c.n + 5) * 4, NULL, 0, NULL, 0);
		while (!r && *fence < 2 && ftest_now() - t0 < FENCE_TIMEOUT_S &&
		       !fx_state(fd, (uint32_t)qid, 0).failed_jobs)
			usleep(200);
		if (r || *fence < 2) {
			fprintf(stderr, "child: SUBMIT %s, fence %llu\n", strerror(-r),
				(unsigned long long)*fence);
			return 5;
		}
	}
	for (uint64_t i = 0; i < SZ_64K / 4; i++)
		if (own[i] != 0xc41dc41du)
			return 6;
	for (uint64_t i = 0; i < size / 4; i++)
		if (((uint32_t *)shared)[i] != 0xc41d0000u)
			return 6;
	fx_queue_destroy(fd, (uint32_t)qid);
	fx_vm_destroy(fd, vc.vm_id);
	return 0;
}

/*
 * A mirror VM is its process's only: a forked child using the inherited
 * file gets EPERM from QUEUE_CREATE on the parent's mirror VM and from
 * SUBMIT on the parent's mirror queue; its own VM_CREATE MIRROR on the
 * same file works and mirrors the child's memory (its GPU FILL lands in
 * the child's pages, including its copy of a buffer the parent's GPU had
 * mapped). The parent's memory and GPU view are untouched by it all.
 */
static void foreign_mm_on(int fd, int gpu)
{
	const uint64_t size = 1 << 20;
	struct mvm vm = mirror_vm(fd);
	uint8_t *buf = anon_aligned(size, SZ_64K), *want = malloc(size);
	volatile uint64_t *sums = pages(FX_PAGE);
	struct fx_cmd c = { 0 }, c2 = { 0 };
	int status;
	struct sq q;
	pid_t pid;

	ftest_assert(want);
	sq_init(&q, fd, vm.id);
	fill_pattern(buf, size, 0xf0 + gpu);
	memcpy(want, buf, size);
	fx_checksum(&c, (uintptr_t)&sums[0], (uintptr_t)buf, size);
	sq_ok(&q, &c, "the parent hashes its buffer");
	assert_hash(sums[0], fx_fnv1a(want, size), "the parent's buffer");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(foreign_child(fd, vm.id, q.id, buf, size));
	}
	ftest_assert(pid > 0);
	ftest_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ftest_fail("child: %s (wait status %#x)",
			   WIFEXITED(status) && WEXITSTATUS(status) <
				   sizeof(foreign_steps) / sizeof(foreign_steps[0]) ?
				   foreign_steps[WEXITSTATUS(status)] : "failed",
			   status);
	/* The parent's memory, and what its GPU sees of it. */
	assert_bytes(buf, want, size, "the parent's buffer after the child's GPU filled its copy");
	fx_checksum(&c2, (uintptr_t)&sums[1], (uintptr_t)buf, size);
	sq_ok(&q, &c2, "the parent hashes its buffer after the child");
	assert_hash(sums[1], fx_fnv1a(want, size), "the parent's buffer after the child");
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
	free(want);
}

static void test_foreign_mm(void)
{
	on_mirror_gpus(foreign_mm_on);
}

/* ---- bad-input ------------------------------------------------------------------------ */

/*
 * What a mirror VM refuses, and faults that do not break it:
 * - VM_CREATE with an unknown flag: EINVAL (with MIRROR too);
 * - SUBMIT on a mirror queue with a SIGNAL sync op (binary or timeline),
 *   or any BO reference: EINVAL; a misaligned or out-of-range cmd_va:
 *   EINVAL; a WAIT sync op is fine (the job runs);
 * - VM_BIND of a userptr: EINVAL; of a BO or a NULL range below
 *   mirror_end or across it: EINVAL; at mirror_end and above it: fine,
 *   and the GPU uses the BO there (COPY into it, WRITE64, CHECKSUM; the
 *   CPU reads the BO back) and reads zeros from the NULL range;
 * - GPU accesses to 0x1000, to mirror_end and above it (nothing bound),
 *   to a PROT_NONE mapping (fresh, and one the GPU had mapped before the
 *   mprotect), and to a CPU mapping of a GEM BO (VM_PFNMAP) each fail the
 *   job with an MMU fault at exactly that address; the next job works.
 */
static void bad_input_on(int fd, int gpu)
{
	struct drm_ferrite_mmu_info m = mmu_info(fd);
	struct mvm vm = mirror_vm(fd);
	volatile uint64_t *sums = pages(FX_PAGE);
	uint8_t *src = pages(FX_PAGE), *none, *gone;
	uint32_t *cmd = pages(FX_PAGE), bo, so;
	uint64_t hi, pg = FX_PAGE, n_aborts = 0;
	struct drm_ferrite_vm_create vc;
	struct drm_ferrite_sync_op sop;
	struct drm_ferrite_bo_ref ref;
	struct svm_stats s0, s1;
	volatile uint64_t *bo_cpu;
	struct sq q;

	sq_init(&q, fd, vm.id);

	/* VM_CREATE: unknown flags. */
	ftest_assert_eq(vm_create(fd, 1u << 1, &vc), -EINVAL);
	ftest_assert_eq(vm_create(fd, 1u << 31, &vc), -EINVAL);
	ftest_assert_eq(vm_create(fd, MIRROR | (1u << 1), &vc), -EINVAL);
	ftest_assert_eq(vm_create(fd, ~0u, &vc), -EINVAL);

	/* SUBMIT: a valid job (one WRITE64), refused for what comes with it. */
	put_w64(cmd, (uintptr_t)&sums[0], 0x51, 0);
	so = fx_syncobj(fd);
	bo = fx_bo(fd, 2 * pg);
	sop = FX_SIGNAL(so);
	ftest_assert_eq(svm_submit(fd, q.id, (uintptr_t)cmd, 20, &sop, 1, NULL, 0), -EINVAL);
	sop = FX_SIGNAL_POINT(so, 1);
	ftest_assert_eq(svm_submit(fd, q.id, (uintptr_t)cmd, 20, &sop, 1, NULL, 0), -EINVAL);
	ref = (struct drm_ferrite_bo_ref){ .handle = bo };
	ftest_assert_eq(svm_submit(fd, q.id, (uintptr_t)cmd, 20, NULL, 0, &ref, 1), -EINVAL);
	ref.flags = DRM_FERRITE_BO_REF_WRITE;
	ftest_assert_eq(svm_submit(fd, q.id, (uintptr_t)cmd, 20, NULL, 0, &ref, 1), -EINVAL);
	ftest_assert_eq(svm_submit(fd, q.id, (uintptr_t)cmd + 2, 20, NULL, 0, NULL, 0), -EINVAL);
	ftest_assert_eq(svm_submit(fd, q.id, m.user_va_end, 20, NULL, 0, NULL, 0), -EINVAL);
	ftest_assert_eq(svm_submit(fd, q.id, 0, 20, NULL, 0, NULL, 0), -EINVAL);
	ftest_assert_eq(*sums, 0);
	/* A WAIT sync op is taken: the job waits, then runs. */
	fx_syncobj_signal(fd, so, 0);
	sop = FX_WAIT(so);
	{
		uint32_t w[5];
		uint64_t seq;

		put_w64(w, (uintptr_t)&sums[0], 0x52, 0);
		seq = sq_submit_syncs(&q, w, 5, &sop, 1);
		sq_wait_ok(&q, seq, "a job with a WAIT sync op");
		ftest_assert_eq_u64(sums[0], 0x52);
	}

	/* VM_BIND: no userptr; BOs and NULL ranges only above mirror_end. */
	ftest_assert_errno(fx_bind_user(fd, vm.id, src, pg, 0), EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm.id, bo, 0, FX_VA(1), pg, 0), EINVAL);
	ftest_assert_errno(fx_map_flags(fd, vm.id, bo, 0, vm.end - pg, 2 * pg, 0), EINVAL);
	if (fx_uapi_features(fd) & DRM_FERRITE_UAPI_NULL_BIND) {
		struct drm_ferrite_vm_bind_op op = fx_op_null(FX_VA(2), pg);

		ftest_assert_errno(fx_bind_ops(fd, vm.id, &op, 1, NULL, 0), EINVAL);
	}
	hi = round_up(vm.end, 1ull << 30);
	if (vm.end + 2 * pg > m.user_va_end || hi + 4 * pg > m.user_va_end) {
		printf("no room above mirror_end %#llx (user range ends %#llx): BO binds not tried\n",
		       (unsigned long long)vm.end, (unsigned long long)m.user_va_end);
	} else {
		struct fx_cmd c = { 0 };
		uint64_t want[2];

		ftest_assert_ok(fx_map_flags(fd, vm.id, bo, 0, vm.end, pg, 0));
		ftest_assert_ok(fx_unmap(fd, vm.id, vm.end, pg));
		ftest_assert_ok(fx_map_flags(fd, vm.id, bo, 0, hi, 2 * pg, 0));
		if (fx_uapi_features(fd) & DRM_FERRITE_UAPI_NULL_BIND) {
			struct drm_ferrite_vm_bind_op op = fx_op_null(hi + 2 * pg, pg);

			ftest_assert_ok(fx_bind_ops(fd, vm.id, &op, 1, NULL, 0));
			fx_checksum(&c, (uintptr_t)&sums[3], hi + 2 * pg, 4096);
			fx_write64(&c, hi + 2 * pg, 0xdead, 0);
		}
		fill_pattern(src, pg, 0xb0 + gpu);
		fx_copy(&c, hi, (uintptr_t)src, 4096);
		fx_write64(&c, hi + pg + 8, 0x0b0b0b0b, 0);
		fx_checksum(&c, (uintptr_t)&sums[1], hi, 4096);
		fx_checksum(&c, (uintptr_t)&sums[2], hi + pg, 16);
		sq_ok(&q, &c, "a job using a BO bound above mirror_end");
		bo_cpu = fx_mmap(fd, bo, 2 * pg);
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
		assert_bytes((uint8_t *)bo_cpu, src, 4096, "the BO the GPU copied into");
		ftest_assert_eq_u64(bo_cpu[pg / 8 + 1], 0x0b0b0b0b);
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
		assert_hash(sums[1], fx_fnv1a(src, 4096), "the BO above mirror_end");
		want[0] = 0;
		want[1] = 0x0b0b0b0b;
		assert_hash(sums[2], fx_fnv1a(want, 16), "the BO's second page");
		if (fx_uapi_features(fd) & DRM_FERRITE_UAPI_NULL_BIND) {
			uint8_t *zeros = calloc(1, 4096);

			assert_hash(sums[3], fx_fnv1a(zeros, 4096), "the NULL range above mirror_end");
			free(zeros);
		}
		munmap((void *)bo_cpu, 2 * pg);
	}

	/* Faults, each followed by a job that works. */
	s0 = svm_stats(fd);
	{
		struct fx_cmd c = { 0 };

		fx_write64(&c, 0x1000, 0xbad, 0);
		sq_fault(&q, &c, 0x1000, true, "WRITE64 to 0x1000");
		n_aborts++;
		sq_still_works(&q, &sums[4], 1, "a job after the fault at 0x1000");
	}
	if (vm.end < m.user_va_end) {
		struct fx_cmd c = { 0 }, d = { 0 };
		uint64_t far = vm.end + (1ull << 30) < m.user_va_end ? vm.end + (1ull << 30) + 0x40 :
								       vm.end + 0x40;

		fx_checksum(&c, (uintptr_t)&sums[5], vm.end, 64);
		sq_fault(&q, &c, vm.end, false, "CHECKSUM at mirror_end");
		fx_write64(&d, far, 0xbad, 0);
		sq_fault(&q, &d, far, true, "WRITE64 above mirror_end, where nothing is bound");
		n_aborts += 2;
		sq_still_works(&q, &sums[4], 2, "a job after the faults above mirror_end");
	}
	none = anon_aligned(SZ_64K, SZ_64K);
	ftest_assert_ok(mprotect(none, SZ_64K, PROT_NONE));
	{
		struct fx_cmd c = { 0 };

		fx_checksum(&c, (uintptr_t)&sums[5], (uintptr_t)none + 0x100, 64);
		sq_fault(&q, &c, (uintptr_t)none + 0x100, false, "CHECKSUM of a PROT_NONE mapping");
		n_aborts++;
		sq_still_works(&q, &sums[4], 3, "a job after the PROT_NONE fault");
	}
	gone = anon_aligned(SZ_64K, SZ_64K);
	fill_pattern(gone, SZ_64K, 0x6e);
	{
		struct fx_cmd c = { 0 }, d = { 0 };

		fx_checksum(&c, (uintptr_t)&sums[6], (uintptr_t)gone, SZ_64K);
		sq_ok(&q, &c, "hash memory before it becomes PROT_NONE");
		assert_hash(sums[6], fx_fnv1a(gone, SZ_64K), "memory before PROT_NONE");
		ftest_assert_ok(mprotect(gone, SZ_64K, PROT_NONE));
		fx_checksum(&d, (uintptr_t)&sums[6], (uintptr_t)gone + 0x2000, 64);
		sq_fault(&q, &d, (uintptr_t)gone + 0x2000, false,
			 "CHECKSUM of memory made PROT_NONE after the GPU mapped it");
		n_aborts++;
		sq_still_works(&q, &sums[4], 4, "a job after that fault");
	}
	bo_cpu = fx_mmap(fd, bo, 2 * pg);
	if ((uintptr_t)bo_cpu + 2 * pg <= vm.end) {
		struct fx_cmd c = { 0 }, d = { 0 };

		fx_checksum(&c, (uintptr_t)&sums[7], (uintptr_t)bo_cpu + 0x40, 64);
		sq_fault(&q, &c, (uintptr_t)bo_cpu + 0x40, false,
			 "CHECKSUM of a CPU mapping of a GEM BO (VM_PFNMAP)");
		fx_write64(&d, (uintptr_t)bo_cpu + 0x48, 0xbad, 0);
		sq_fault(&q, &d, (uintptr_t)bo_cpu + 0x48, true,
			 "WRITE64 to a CPU mapping of a GEM BO (VM_PFNMAP)");
		n_aborts += 2;
		sq_still_works(&q, &sums[4], 5, "a job after the faults on the BO's CPU mapping");
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_BEGIN_R));
		ftest_assert(bo_cpu[9] != 0xbad);
		ftest_assert_ok(fx_gem_sync(fd, bo, FX_END_R));
	} else {
		printf("the BO's CPU mapping (%p) lies above mirror_end: not tried\n", (void *)bo_cpu);
	}
	s1 = svm_stats(fd);
	svm_print("bad-input faults", &s0, &s1);
	ftest_assert_eq(sv_delta(&s0, &s1, SV_ABORTS), n_aborts);
	sq_fini(&q);
	ftest_assert_ok(fx_vm_destroy(fd, vm.id));
}

static void test_bad_input(void)
{
	on_mirror_gpus(bad_input_on);
}

/* ---- refused-without-mirroring ------------------------------------------------------------ */

/*
 * On every GPU of the guest: where DRM_FERRITE_UAPI_MIRROR is set, VM_CREATE
 * MIRROR succeeds and returns the mirrored range the contract gives; where
 * it is clear (swiotlb=force, a GPU that addresses less than the machine's
 * memory), it fails with EOPNOTSUPP. An ordinary VM reports no range (0,
 * 0), and an unknown flag is EINVAL everywhere. Runs on every boot.
 */
static void test_refused_without_mirroring(void)
{
	int fd = fdev_open_or_skip(0);

	for (int gpu = 0; fd >= 0; fd = fdev_open_render(++gpu)) {
		struct drm_ferrite_dev_info info = fx_dev_info(fd);
		bool can = can_mirror(fd);
		struct drm_ferrite_vm_create c;
		int r = vm_create(fd, MIRROR, &c);

		printf("GPU %d (%u-bit DMA): DRM_FERRITE_UAPI_MIRROR %s; VM_CREATE MIRROR: %s",
		       gpu, info.dma_addr_bits, can ? "set" : "clear", r ? strerror(-r) : "created");
		if (!r)
			printf(", mirrors [%#llx, %#llx)", (unsigned long long)c.mirror_start,
			       (unsigned long long)c.mirror_end);
		printf("\n");
		if (can) {
			if (r)
				ftest_fail("GPU %d reports DRM_FERRITE_UAPI_MIRROR but VM_CREATE MIRROR "
					   "failed: %s", gpu, strerror(-r));
			check_mirror_range(fd, &c);
			ftest_assert_ok(fx_vm_destroy(fd, c.vm_id));
		} else if (r != -EOPNOTSUPP) {
			ftest_fail("GPU %d cannot mirror, but VM_CREATE MIRROR %s (expected "
				   "EOPNOTSUPP)", gpu, r ? strerror(-r) : "succeeded");
		}
		ftest_assert_ok(vm_create(fd, 0, &c));
		ftest_assert_eq_u64(c.mirror_start, 0);
		ftest_assert_eq_u64(c.mirror_end, 0);
		ftest_assert_ok(fx_vm_destroy(fd, c.vm_id));
		ftest_assert_eq(vm_create(fd, 1u << 1, &c), -EINVAL);
		close(fd);
	}
}

FTEST_MAIN(
	{ "malloc-no-bind", test_malloc_no_bind, "the GPU hashes malloc'd and stack memory and fills malloc'd memory with no VM_BIND; faults map chunks, not pages" },
	{ "file-backed", test_file_backed, "a MAP_SHARED file: GPU hash and writes, seen by pread; a read-only MAP_PRIVATE file: read, write faults" },
	{ "fork-cow", test_fork_cow, "after fork the parent's GPU writes break COW on the parent's side; the child's copy is never written" },
	{ "munmap-faults", test_munmap_faults, "after munmap GPU accesses fault at the exact address; a new mapping there is seen fresh" },
	{ "mprotect-readonly", test_mprotect_readonly, "after mprotect(PROT_READ) GPU reads work and writes fault, leaving memory as it was" },
	{ "migrate-under-load", test_migrate_under_load, "MADV_COLLAPSE moves pages while jobs hash them: hashes exact, PFNs changed, invalidations counted" },
	{ "swap-under-load", test_swap_under_load, "zram swap-out of GPU-mapped memory and swap-in by GPU faults, also while jobs run" },
	{ "fault-storm", test_fault_storm, "4 queues in 2 mirror VMs fault on 64 KiB chunks at random while an ordinary VM's jobs complete" },
	{ "stalled-queue-yields", test_stalled_queue_yields, "more faulting mirror queues than rings: stalled rings go to waiting queues; every write lands" },
	{ "thp-blocks", test_thp_blocks, "THPs are mapped as 2 MiB blocks: blocks_2m and few TLB misses" },
	{ "foreign-mm", test_foreign_mm, "a forked child gets EPERM on the parent's mirror VM and queue; its own mirror VM mirrors its memory" },
	{ "bad-input", test_bad_input, "refused VM_CREATE flags, SUBMIT syncs and BOs, binds; faults at 0x1000, mirror_end, PROT_NONE, a BO's CPU mapping" },
	{ "refused-without-mirroring", test_refused_without_mirroring, "VM_CREATE MIRROR works exactly where DRM_FERRITE_UAPI_MIRROR is set, else EOPNOTSUPP" },
)
