/* SPDX-License-Identifier: MIT */
/*
 * Copyright 2026 The Ferrite developers
 */
#ifndef _FERRITE_DRM_H_
#define _FERRITE_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/**
 * DOC: Ferrite UAPI
 *
 * The Ferrite driver drives a unified-memory GPU whose MMU belongs to the
 * device. Userspace allocates buffer objects (GEM_CREATE), maps them into
 * GPU address spaces (VM_CREATE, VM_BIND), creates queues on an address
 * space (QUEUE_CREATE) and submits command buffers by GPU virtual address
 * (SUBMIT). Synchronisation is explicit, through DRM sync objects (binary
 * and timeline), and implicit, through each buffer's reservation object.
 *
 * Rules that hold for every ioctl:
 *
 * - Every ``pad`` field and every reserved ``flags`` bit must be zero, or
 *   the ioctl fails with -EINVAL. This lets later versions give them a
 *   meaning.
 * - Pointers are passed as __u64.
 * - Arrays are passed as a &struct drm_ferrite_obj_array: a count, the
 *   size of one element as userspace knows it (``stride``) and a pointer.
 *   The kernel reads min(stride, its own size) bytes of each element and
 *   requires the bytes it does not know to be zero, so structures can grow
 *   at their end.
 * - The interface version is reported by DRM_IOCTL_VERSION (major.minor)
 *   and in &drm_ferrite_dev_info.uapi_version.
 * - VM and queue ids are small integers from 1, valid in the file that
 *   created them; a destroyed object's id is given to the next object
 *   created (the lowest free id).
 *
 * Two page sizes matter, and they may differ. The *GPU page* is the
 * granule of the GPU MMU: 4096 bytes, always (AArch64 LPAE with a 4 KiB
 * granule). The *CPU page* is the kernel's PAGE_SIZE: 4096 bytes on
 * x86-64, 4096, 16384 or 65536 bytes on arm64. Memory reaches the GPU in
 * CPU pages (shmem pages, the pages of a userptr, mmap()), so every size,
 * offset and address that names memory is a multiple of the CPU page,
 * which is never smaller than the GPU page; the GPU page shows only where
 * the device itself works at that granule. DRM_FERRITE_DEV_QUERY_MMU
 * reports both (&drm_ferrite_mmu_info.cpu_page_size and
 * &drm_ferrite_mmu_info.gpu_page_size, since 0.6) and their maximum
 * (&drm_ferrite_mmu_info.bind_alignment, since 0.3); userspace built for
 * older kernels uses sysconf(_SC_PAGESIZE). In detail:
 *
 * - CPU page: GEM_CREATE rounds &drm_ferrite_gem_create.size up to it (the
 *   size GEM_CREATE and BO_QUERY_INFO return is the rounded one); a
 *   GEM_MMAP_OFFSET offset is a multiple of it, and mmap() maps whole CPU
 *   pages (its offset into the BO is a multiple of the CPU page, as for
 *   every mmap()); the size of an imported dma-buf is a multiple of it
 *   (the kernel's rule for every dma-buf).
 * - bind_alignment (the CPU page): every VM_BIND operation's @va, @size
 *   and @bo_offset (&struct drm_ferrite_vm_bind_op): BO maps, userptrs
 *   (whose @va is a CPU address), NULL ranges and UNMAPs alike. A
 *   misaligned one fails with -EINVAL, whatever the operation.
 * - GPU page: the smallest page of &drm_ferrite_mmu_info.page_sizes
 *   (bit 12); the pieces of an imported dma-buf, as its exporter mapped
 *   them for this device, must be aligned to it (-EINVAL otherwise); a
 *   fault address (&drm_ferrite_queue_get_state.fault_addr) is to the byte,
 *   or the start of the GPU page the device could not translate.
 * - Neither: SUBMIT's command buffer (&drm_ferrite_submit.cmd_va) is
 *   4-byte aligned and may start and end anywhere in a page; the
 *   commands' own addresses are byte addresses.
 *
 * Each ioctl's structure lists its errors ("Errors:"). Besides those, any
 * ioctl may fail with -ENOMEM when the kernel runs out of memory, with
 * -EFAULT when its argument cannot be copied, and with -ENODEV once the
 * device is unbound (the DRM core refuses every ioctl of an unplugged
 * device). The section "Writing userspace for Ferrite" of
 * Documentation/gpu/ferrite.rst puts the pieces together.
 */

/**
 * enum drm_ferrite_ioctl_id - ioctl numbers, relative to DRM_COMMAND_BASE
 *
 * New ioctls go at the end; none is ever renumbered or removed. Use the
 * DRM_IOCTL_FERRITE_* values, not these.
 */
enum drm_ferrite_ioctl_id {
	/** @DRM_FERRITE_DEV_QUERY: Query device information and counters. */
	DRM_FERRITE_DEV_QUERY = 0,
	/** @DRM_FERRITE_GEM_CREATE: Create a buffer object. */
	DRM_FERRITE_GEM_CREATE,
	/** @DRM_FERRITE_GEM_MMAP_OFFSET: Get the mmap offset of a buffer object. */
	DRM_FERRITE_GEM_MMAP_OFFSET,
	/** @DRM_FERRITE_VM_CREATE: Create a GPU address space. */
	DRM_FERRITE_VM_CREATE,
	/** @DRM_FERRITE_VM_DESTROY: Destroy a GPU address space. */
	DRM_FERRITE_VM_DESTROY,
	/** @DRM_FERRITE_VM_BIND: Map and unmap ranges of a GPU address space. */
	DRM_FERRITE_VM_BIND,
	/** @DRM_FERRITE_QUEUE_CREATE: Create a queue. */
	DRM_FERRITE_QUEUE_CREATE,
	/** @DRM_FERRITE_QUEUE_DESTROY: Destroy a queue. */
	DRM_FERRITE_QUEUE_DESTROY,
	/** @DRM_FERRITE_SUBMIT: Submit a job. */
	DRM_FERRITE_SUBMIT,
	/** @DRM_FERRITE_QUEUE_GET_STATE: Read a queue's fault/error record. */
	DRM_FERRITE_QUEUE_GET_STATE,
	/** @DRM_FERRITE_GEM_SYNC: Begin or end CPU access to a buffer object. */
	DRM_FERRITE_GEM_SYNC,
	/** @DRM_FERRITE_BO_SET_LABEL: Set or clear a buffer object's label (since 0.3). */
	DRM_FERRITE_BO_SET_LABEL,
	/** @DRM_FERRITE_BO_QUERY_INFO: Query a buffer object (since 0.3). */
	DRM_FERRITE_BO_QUERY_INFO,
	/** @DRM_FERRITE_VM_GET_STATE: Whether a VM is still usable (since 0.5). */
	DRM_FERRITE_VM_GET_STATE,
};

/**
 * struct drm_ferrite_obj_array - an array of objects passed to an ioctl
 *
 * A @count of zero passes nothing (@stride and @array are then not
 * looked at). Otherwise @stride must be a multiple of 4 from 4 to 4096.
 * Each array has a limit on @count: 64 sync ops (&struct
 * drm_ferrite_sync_op), 1024 BO references (&struct drm_ferrite_bo_ref),
 * 4096 bind operations (&struct drm_ferrite_vm_bind_op).
 *
 * Errors: a @count above the limit, a bad @stride or a @count * @stride
 * that overflows -EINVAL; an @array the kernel cannot read -EFAULT; a
 * non-zero byte beyond the part of an element the kernel knows -EINVAL.
 */
struct drm_ferrite_obj_array {
	/** @count: Number of elements. */
	__u32 count;
	/** @stride: Size of one element as userspace knows it, in bytes. */
	__u32 stride;
	/** @array: Pointer to the first element. */
	__u64 array;
};

/**
 * enum drm_ferrite_dev_query_type - what DEV_QUERY returns
 * @DRM_FERRITE_DEV_QUERY_INFO: &struct drm_ferrite_dev_info
 * @DRM_FERRITE_DEV_QUERY_COUNTERS: &struct drm_ferrite_counters
 * @DRM_FERRITE_DEV_QUERY_SCHED: &struct drm_ferrite_sched_info (since 0.2)
 * @DRM_FERRITE_DEV_QUERY_TIMESTAMP: &struct drm_ferrite_timestamp_info
 *	(since 0.3); -EOPNOTSUPP if the device has no timestamp
 *	(DRM_FERRITE_FEATURE_TIMESTAMP clear), -ENODEV if it is gone
 * @DRM_FERRITE_DEV_QUERY_MEMORY: &struct drm_ferrite_memory_info (since 0.3)
 * @DRM_FERRITE_DEV_QUERY_MMU: &struct drm_ferrite_mmu_info (since 0.3;
 *	grown in 0.6, see there)
 * @DRM_FERRITE_DEV_QUERY_FEATURES: &struct drm_ferrite_uapi_features
 *	(since 0.3)
 *
 * A type this kernel does not know fails with -EINVAL: a kernel older
 * than 0.3 answers DRM_FERRITE_DEV_QUERY_FEATURES so, which userspace
 * takes as "only the features of the version DRM_IOCTL_VERSION reports".
 */
enum drm_ferrite_dev_query_type {
	DRM_FERRITE_DEV_QUERY_INFO = 0,
	DRM_FERRITE_DEV_QUERY_COUNTERS = 1,
	DRM_FERRITE_DEV_QUERY_SCHED = 2,
	DRM_FERRITE_DEV_QUERY_TIMESTAMP = 3,
	DRM_FERRITE_DEV_QUERY_MEMORY = 4,
	DRM_FERRITE_DEV_QUERY_MMU = 5,
	DRM_FERRITE_DEV_QUERY_FEATURES = 6,
};

/**
 * struct drm_ferrite_dev_query - query the device
 *
 * With @pointer zero, the kernel sets @size to the size of the answer.
 * Otherwise it writes min(@size, answer size) bytes at @pointer and sets
 * @size to the number of bytes written (a @size of zero writes nothing and
 * is no error).
 *
 * Errors: an unknown @type -EINVAL; a @pointer the kernel cannot write
 * -EFAULT; for DRM_FERRITE_DEV_QUERY_TIMESTAMP, see &enum
 * drm_ferrite_dev_query_type (-EOPNOTSUPP, -ENODEV).
 */
struct drm_ferrite_dev_query {
	/** @type: One of &enum drm_ferrite_dev_query_type. */
	__u32 type;
	/** @size: Size of the buffer at @pointer; updated by the kernel. */
	__u32 size;
	/** @pointer: User pointer to the answer, or 0. */
	__u64 pointer;
};

/* Feature bits of &drm_ferrite_dev_info.features (the hardware's). */
#define DRM_FERRITE_FEATURE_STALL	(1 << 0)
#define DRM_FERRITE_FEATURE_BLOCK_2M	(1 << 1)
#define DRM_FERRITE_FEATURE_BLOCK_1G	(1 << 2)
#define DRM_FERRITE_FEATURE_TIMESTAMP	(1 << 3)
#define DRM_FERRITE_FEATURE_PREEMPT	(1 << 4)
/* The null aperture: DRM_FERRITE_VM_BIND_NULL works (since 0.5). */
#define DRM_FERRITE_FEATURE_NULL_APERTURE	(1 << 5)

/**
 * struct drm_ferrite_dev_info - device information and constraints
 */
struct drm_ferrite_dev_info {
	/** @hw_version: The device's VERSION register. */
	__u32 hw_version;
	/** @uapi_version: (major << 16) | minor of this interface. */
	__u32 uapi_version;
	/** @features: DRM_FERRITE_FEATURE_* bits. */
	__u32 features;
	/** @dma_addr_bits: Bus address width of the device. */
	__u32 dma_addr_bits;
	/** @dma_max_segment: Longest DMA segment, in bytes. */
	__u32 dma_max_segment;
	/** @num_queues: Hardware queues. */
	__u32 num_queues;
	/** @num_as: Hardware address-space slots. */
	__u32 num_as;
	/** @va_bits: Width of GPU virtual addresses. */
	__u32 va_bits;
	/**
	 * @va_start: First GPU VA userspace may bind (as
	 * &drm_ferrite_mmu_info.user_va_start).
	 */
	__u64 va_start;
	/**
	 * @va_end: End (exclusive) of the GPU VA range userspace may bind (as
	 * &drm_ferrite_mmu_info.user_va_end).
	 */
	__u64 va_end;
	/**
	 * @page_sizes: Bitmask of the page and block sizes the MMU maps:
	 * bit n set means 2^n-byte pages (see &drm_ferrite_mmu_info.page_sizes).
	 * This driver reports bits 12, 21 and 30 (4 KiB GPU pages, 2 MiB and
	 * 1 GiB blocks), 0x40201000, whatever the CPU page size; the
	 * granule of binds is &drm_ferrite_mmu_info.bind_alignment.
	 */
	__u64 page_sizes;
};

/**
 * struct drm_ferrite_counters - device and driver counters
 */
struct drm_ferrite_counters {
	/**
	 * @hw: The device's 16 counters, in the order of the hardware
	 * specification (mmio_reads, mmio_writes, commands, ...).
	 */
	__u64 hw[16];
	/**
	 * @kmap_user_bytes: Bytes of user buffers (BOs, userptrs, imports)
	 * currently mapped into the kernel's address space. The driver never
	 * creates such mappings itself, so this stays zero unless a kernel
	 * user asks for one through dma_buf_vmap().
	 */
	__u64 kmap_user_bytes;
	/** @kmap_kernel_bytes: Bytes of kernel-owned objects mapped (rings). */
	__u64 kmap_kernel_bytes;
	/**
	 * @bytes_bound: Bytes of BOs and userptrs bound in all GPU VMs, once
	 * the binds made so far are applied (asynchronous ones count from
	 * their VM_BIND; NULL ranges do not count).
	 */
	__u64 bytes_bound;
	/** @tlb_flushes: Range TLB invalidations the driver issued. */
	__u64 tlb_flushes;
	/** @jobs_submitted: Jobs submitted. */
	__u64 jobs_submitted;
	/** @jobs_timedout: Jobs that timed out and caused a queue reset. */
	__u64 jobs_timedout;
	/** @faults: GPU faults reported. */
	__u64 faults;
};

/**
 * struct drm_ferrite_sched_info - what the scheduler offers the caller
 *
 * Queues are not hardware rings: any number of them (up to
 * @max_queues_per_file per file) share the device's @num_rings rings,
 * which the driver gives to runnable queues by priority, then in turn,
 * with a timeslice of @timeslice_us.
 */
struct drm_ferrite_sched_info {
	/**
	 * @priorities: Bit p is set if the caller may create queues of
	 * priority p (&enum drm_ferrite_queue_priority).
	 */
	__u32 priorities;
	/** @num_rings: Hardware rings the queues share. */
	__u32 num_rings;
	/** @max_queues_per_file: Live queues a file may have. */
	__u32 max_queues_per_file;
	/** @timeslice_us: Time a queue runs before others of its priority. */
	__u32 timeslice_us;
	/** @preempt: 1 if a job can be preempted between any two commands. */
	__u32 preempt;
	/** @pad: Zero. */
	__u32 pad;
};

/**
 * struct drm_ferrite_timestamp_info - GPU timestamps and CPU clocks
 *
 * The device clock counts nanoseconds from an arbitrary origin (the
 * hardware's TIMESTAMP_LO/HI registers); the TIMESTAMP command writes
 * values of this same clock. One calibrated sample relates it to the CPU's
 * clocks (for VK_KHR_calibrated_timestamps): the kernel reads
 * CLOCK_MONOTONIC and CLOCK_MONOTONIC_RAW, then the device clock, then
 * both CPU clocks again, and reports the midpoints of the CPU reads. The
 * device clock was read at a CPU time within @sample_window_ns / 2 of
 * @cpu_monotonic_ns (and of @cpu_monotonic_raw_ns in that clock). The
 * kernel takes a few samples and reports the one with the narrowest
 * window.
 *
 * A GPU timestamp t converts to CLOCK_MONOTONIC as
 * @cpu_monotonic_ns + (t - @gpu_timestamp) * 10^9 / @timestamp_frequency,
 * give or take @sample_window_ns / 2 (and the drift between the two
 * clocks, which a fresh sample removes).
 */
struct drm_ferrite_timestamp_info {
	/** @timestamp_frequency: Ticks of the device clock per second (10^9). */
	__u64 timestamp_frequency;
	/** @gpu_timestamp: The device clock, in its ticks. */
	__u64 gpu_timestamp;
	/** @cpu_monotonic_ns: CLOCK_MONOTONIC at the sample, in ns. */
	__u64 cpu_monotonic_ns;
	/** @cpu_monotonic_raw_ns: CLOCK_MONOTONIC_RAW at the sample, in ns. */
	__u64 cpu_monotonic_raw_ns;
	/**
	 * @sample_window_ns: CLOCK_MONOTONIC time between the first and the
	 * last CPU clock read of the sample, in ns.
	 */
	__u64 sample_window_ns;
};

/**
 * struct drm_ferrite_memory_info - memory the GPU can use
 *
 * The GPU has no memory of its own: BOs are system memory (shmem pages,
 * allocated on first use; see &struct drm_ferrite_gem_create). Figures in
 * bytes; they are estimates of the moment, for VK_EXT_memory_budget.
 */
struct drm_ferrite_memory_info {
	/**
	 * @total: System RAM the device can reach: all of it, or for a device
	 * that addresses fewer than 64 bits, at most what its DMA addresses
	 * cover (a device limited to 32 bits gets its BO pages below 4 GiB).
	 */
	__u64 total;
	/**
	 * @available: The budget: how many bytes of BOs that were never used
	 * the GPU may start using now. The first use of a BO (its first
	 * VM_BIND or GEM_SYNC) pins its pages, and fails with -ENOMEM if it
	 * would leave less than an eighth of the kernel's estimate of
	 * available memory (si_mem_available(), at least 64 MiB) free; this is
	 * that estimate minus that reserve, at most @total.
	 */
	__u64 available;
	/** @max_bo_size: Largest BO GEM_CREATE accepts (64 GiB). */
	__u64 max_bo_size;
};

/**
 * struct drm_ferrite_mmu_info - the GPU address spaces
 *
 * Every VM spans 2^@va_bits bytes. Userspace may bind
 * [@user_va_start, @user_va_end); the rest belongs to the driver (the
 * first 64 KiB stay unmapped so that a NULL-based pointer faults; the top
 * [@kernel_va_start, @kernel_va_end) holds the driver's rings and fence
 * pages, which jobs cannot write). Everything userspace puts in a VM must
 * lie in the user range: VM_BIND of a range not wholly inside it fails
 * with -EINVAL, and so does SUBMIT of a command buffer outside it. No
 * ioctl moves or widens the range: a heap or VA allocator must be placed
 * inside it, and a userptr (GPU VA == CPU VA) needs CPU memory mapped
 * inside it (mmap() with an address hint or MAP_FIXED_NOREPLACE); data the
 * CPU holds elsewhere must be copied into a BO.
 *
 * The structure grew in 0.6 (@cpu_page_size, @gpu_page_size): a kernel
 * older than that answers the first 48 bytes (&drm_ferrite_dev_query.size
 * says how many it wrote) and does not set DRM_FERRITE_UAPI_PAGE_SIZES;
 * its CPU page is then @bind_alignment.
 */
struct drm_ferrite_mmu_info {
	/** @va_bits: Width of GPU virtual addresses (48). */
	__u32 va_bits;
	/**
	 * @bind_alignment: Alignment, in bytes, of every VM_BIND address,
	 * size and BO offset (BO maps, userptrs, NULL ranges, UNMAPs): the
	 * larger of the CPU page and the GPU page, which is the CPU page
	 * (the kernel's PAGE_SIZE: 4096, 16384 or 65536), not the GPU
	 * page. Also the granule of BO sizes (see &struct
	 * drm_ferrite_gem_create).
	 */
	__u32 bind_alignment;
	/** @user_va_start: First GPU VA userspace may bind. */
	__u64 user_va_start;
	/** @user_va_end: End (exclusive) of the range userspace may bind. */
	__u64 user_va_end;
	/** @kernel_va_start: First GPU VA the driver keeps for itself. */
	__u64 kernel_va_start;
	/** @kernel_va_end: End (exclusive) of the driver's range. */
	__u64 kernel_va_end;
	/**
	 * @page_sizes: Bit n set: the MMU maps 2^n-byte pages or blocks
	 * (AArch64 LPAE with a 4 KiB granule: 4 KiB pages, 2 MiB and 1 GiB
	 * blocks). The driver uses a block wherever the GPU VA, the BO offset
	 * and the pages behind them are aligned and contiguous to its size
	 * (large BOs get 2 MiB folios); nothing else changes for userspace.
	 * This driver reports bits 12, 21 and 30, 0x40201000 (it does not
	 * consult the hardware's DRM_FERRITE_FEATURE_BLOCK_* bits). The
	 * smallest, bit 12, is the GPU page: a CPU page larger than it is
	 * mapped as several GPU pages.
	 */
	__u64 page_sizes;
	/**
	 * @cpu_page_size: The CPU page size in bytes, the kernel's PAGE_SIZE
	 * (4096, 16384 or 65536): the granule of BO sizes, mmap() and
	 * userptrs (since 0.6, DRM_FERRITE_UAPI_PAGE_SIZES).
	 */
	__u32 cpu_page_size;
	/**
	 * @gpu_page_size: The GPU MMU's page size in bytes, 4096: the
	 * smallest bit of @page_sizes (since 0.6,
	 * DRM_FERRITE_UAPI_PAGE_SIZES).
	 */
	__u32 gpu_page_size;
};

/*
 * Bits of &drm_ferrite_uapi_features.features: one per addition to the
 * interface since 0.1, so that userspace can gate on each.
 *
 * DRM_FERRITE_UAPI_SCHED (0.2): queue priorities
 * (&drm_ferrite_queue_create.priority), DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL,
 * DRM_FERRITE_DEV_QUERY_SCHED and the fields of QUEUE_GET_STATE after
 * failed_jobs.
 * DRM_FERRITE_UAPI_TIMESTAMP (0.3): DRM_FERRITE_DEV_QUERY_TIMESTAMP.
 * DRM_FERRITE_UAPI_BO_LABEL (0.3): BO_SET_LABEL, and labels read back
 * through BO_QUERY_INFO.
 * DRM_FERRITE_UAPI_NO_MMAP (0.3): DRM_FERRITE_GEM_CREATE_NO_MMAP.
 * DRM_FERRITE_UAPI_BO_QUERY_INFO (0.3): BO_QUERY_INFO.
 * DRM_FERRITE_UAPI_MEMORY (0.3): DRM_FERRITE_DEV_QUERY_MEMORY.
 * DRM_FERRITE_UAPI_MMU (0.3): DRM_FERRITE_DEV_QUERY_MMU.
 * DRM_FERRITE_UAPI_VM_PRIVATE (0.4): DRM_FERRITE_GEM_CREATE_VM_PRIVATE and
 * &drm_ferrite_gem_create.vm_id.
 * DRM_FERRITE_UAPI_ASYNC_BIND (0.5): DRM_FERRITE_VM_BIND_ASYNC,
 * DRM_FERRITE_VM_BIND_OP_SYNC_ONLY and VM_GET_STATE.
 * DRM_FERRITE_UAPI_NULL_BIND (0.5): DRM_FERRITE_VM_BIND_NULL; set only
 * when the device has a null aperture (see the hardware spec).
 * DRM_FERRITE_UAPI_PAGE_SIZES (0.6): &drm_ferrite_mmu_info.cpu_page_size
 * and &drm_ferrite_mmu_info.gpu_page_size.
 * DRM_FERRITE_UAPI_MIRROR (0.7): DRM_FERRITE_VM_CREATE_MIRROR; set only
 * when this device can mirror (see there).
 */
#define DRM_FERRITE_UAPI_SCHED		(1 << 0)
#define DRM_FERRITE_UAPI_TIMESTAMP	(1 << 1)
#define DRM_FERRITE_UAPI_BO_LABEL	(1 << 2)
#define DRM_FERRITE_UAPI_NO_MMAP	(1 << 3)
#define DRM_FERRITE_UAPI_BO_QUERY_INFO	(1 << 4)
#define DRM_FERRITE_UAPI_MEMORY		(1 << 5)
#define DRM_FERRITE_UAPI_MMU		(1 << 6)
#define DRM_FERRITE_UAPI_VM_PRIVATE	(1 << 7)
#define DRM_FERRITE_UAPI_ASYNC_BIND	(1 << 8)
#define DRM_FERRITE_UAPI_NULL_BIND	(1 << 9)
#define DRM_FERRITE_UAPI_PAGE_SIZES	(1 << 10)
#define DRM_FERRITE_UAPI_MIRROR		(1 << 11)

/**
 * struct drm_ferrite_uapi_features - what this interface offers
 */
struct drm_ferrite_uapi_features {
	/** @features: DRM_FERRITE_UAPI_* bits. */
	__u64 features;
};

/*
 * Flags of &drm_ferrite_gem_create.flags.
 *
 * DRM_FERRITE_GEM_CREATE_NO_MMAP (since 0.3): the BO is never mapped by
 * the CPU through the DRM file: it has no mmap offset, and GEM_MMAP_OFFSET
 * on it fails with -EPERM (panthor's choice for its NO_MMAP). It can
 * still be exported, and a dma-buf can be mapped through its own fd.
 *
 * DRM_FERRITE_GEM_CREATE_VM_PRIVATE (since 0.4): the BO belongs to the VM
 * &drm_ferrite_gem_create.vm_id (an id from VM_CREATE, or
 * DRM_FERRITE_VM_PROCESS for the calling process's VM) and shares that
 * VM's reservation object, as panthor's exclusive-VM BOs do. It can only
 * be bound into that VM (VM_BIND into another fails with -EINVAL) and
 * cannot be exported (PRIME_HANDLE_TO_FD fails with -EINVAL). In SUBMIT's
 * BO list it costs no lock of its own: however many private BOs a job
 * lists, the VM's one reservation object is locked, the job does not wait
 * for earlier jobs through them (a private BO is not shared: order the
 * jobs that use one with syncobjs), and the job's fence is added once to
 * the VM's reservation object (as a write if any listed private BO is
 * written), so that GEM_SYNC and CPU waits on any private BO of the VM
 * wait for it. A private BO of another VM in a job's list fails with
 * -EINVAL.
 */
#define DRM_FERRITE_GEM_CREATE_NO_MMAP	(1 << 0)
#define DRM_FERRITE_GEM_CREATE_VM_PRIVATE	(1 << 1)

/**
 * struct drm_ferrite_gem_create - create a buffer object
 *
 * The object is backed by shmem pages, allocated when first needed (its
 * first VM_BIND or GEM_SYNC, its first CPU mmap(), an import by another
 * device) and zeroed by the kernel then: a new BO reads as zeroes, from
 * the CPU and from the GPU, over its whole rounded-up @size. It is never
 * mapped into the kernel's address space. Its size is a whole number of
 * CPU pages (&drm_ferrite_mmu_info.cpu_page_size; not of GPU pages, where
 * the two differ): @size is rounded up to it, so on a kernel with 16 KiB
 * pages a BO of 4096 bytes takes 16384, all of which can be mapped and
 * bound. @vm_id and @pad exist since
 * 0.4: older userspace passes the first 16 bytes, which the kernel extends
 * with zeroes.
 *
 * Errors: an unknown flag, a @size of zero or above 64 GiB, a non-zero
 * @pad, or a non-zero @vm_id without DRM_FERRITE_GEM_CREATE_VM_PRIVATE
 * -EINVAL; with DRM_FERRITE_GEM_CREATE_VM_PRIVATE, a @vm_id that names no
 * VM of the file -ENOENT.
 */
struct drm_ferrite_gem_create {
	/**
	 * @size: Size in bytes, at most 64 GiB; updated to the size
	 * allocated: rounded up to a multiple of the CPU page size
	 * (&drm_ferrite_mmu_info.cpu_page_size, the kernel's PAGE_SIZE), the
	 * size BO_QUERY_INFO reports and VM_BIND checks BO ranges against.
	 */
	__u64 size;
	/** @flags: DRM_FERRITE_GEM_CREATE_* bits. */
	__u32 flags;
	/** @handle: Returned GEM handle. */
	__u32 handle;
	/**
	 * @vm_id: With DRM_FERRITE_GEM_CREATE_VM_PRIVATE, the VM the BO
	 * belongs to (DRM_FERRITE_VM_PROCESS is the caller's process VM);
	 * otherwise zero.
	 */
	__u32 vm_id;
	/** @pad: Must be zero. */
	__u32 pad;
};

/**
 * struct drm_ferrite_gem_mmap_offset - get the fake offset to mmap a BO
 *
 * mmap() of the DRM fd at @offset maps the BO's pages into the process
 * with the CPU's normal, cached (write-back) attributes, never
 * write-combined: the shmem pages the GPU reaches through its DMA
 * mappings. The CPU and the GPU do not see each other's writes without
 * GEM_SYNC (&struct drm_ferrite_gem_sync): BEGIN before the CPU accesses a
 * BO the GPU used, END after it before the GPU uses it again. An imported
 * BO maps the exporter's pages through its dma-buf. The mapping must be
 * MAP_SHARED: mmap() of a private (copy-on-write) mapping fails with
 * -EINVAL. @offset is a multiple of the CPU page size, and mmap() works
 * in CPU pages: its length is rounded up to one, and a mapping of part of
 * the BO starts at @offset plus a multiple of the CPU page (mmap()'s
 * -EINVAL otherwise); at most the BO's size (a whole number of CPU pages)
 * can be mapped.
 *
 * Errors: non-zero @flags -EINVAL; a bad handle -ENOENT; a BO created with
 * DRM_FERRITE_GEM_CREATE_NO_MMAP -EPERM.
 */
struct drm_ferrite_gem_mmap_offset {
	/** @handle: GEM handle. */
	__u32 handle;
	/** @flags: Must be zero. */
	__u32 flags;
	/**
	 * @offset: Returned offset to pass to mmap() on the DRM fd (a
	 * multiple of the CPU page size).
	 */
	__u64 offset;
};

/**
 * DRM_FERRITE_VM_PROCESS - the VM id of the calling process's address space
 *
 * Every process has one GPU address space per Ferrite device, shared by
 * all the files it uses on that device: VM_BIND and QUEUE_CREATE with this
 * id use the VM of the calling process (its &struct mm_struct), created on
 * first use and freed when the last file that used it is closed (and its
 * jobs are done). A child process after fork, or a process that received
 * the file over a unix socket, gets its own VM, not the opener's. Explicit
 * VMs (VM_CREATE) have ids starting at 1. VM_DESTROY of this id fails with
 * -EINVAL.
 */
#define DRM_FERRITE_VM_PROCESS 0

/*
 * DRM_FERRITE_VM_CREATE_MIRROR (since 0.7, DRM_FERRITE_UAPI_MIRROR): a
 * *mirror VM*, whose GPU addresses in [@mirror_start, @mirror_end) are
 * the calling process's addresses, with no bind: any pointer the CPU can
 * use there, the GPU can use (shared virtual memory). The device runs the
 * VM's address space in stall mode: a GPU access to an address with no
 * GPU mapping yet stalls the queue while the kernel looks the process's
 * memory up (faulting it in as a CPU access would: a write breaks
 * copy-on-write, swapped-out memory is read back), maps it and lets the
 * queue go on. A range around the address is mapped at once: the 2 MiB
 * around it where one mapping (VMA) of the process covers it, else the
 * 64 KiB, else the CPU page; a transparent huge page is mapped as a 2 MiB
 * block. No page is pinned: when the CPU's page tables change (munmap,
 * mprotect, fork's copy-on-write, migration, compaction, swap-out), the
 * kernel removes the GPU's mappings of the range (and writes back the
 * GPU's cache) before the change completes, and the GPU's next access
 * faults the current pages in. An access to an address the process has
 * not mapped, a write to memory it may not write, or an access to memory
 * that has no pages (a VM_IO or VM_PFNMAP mapping, such as a CPU mapping
 * of a BO) fails the job with an MMU fault, as in any VM
 * (QUEUE_GET_STATE). Queues that share the VM's address space stall
 * together (a hardware address-space slot stalls as one): a fault that
 * fails the job of one fails the jobs stalled with it.
 *
 * The GPU and the CPU share the pages themselves, but the GPU's cache is
 * not coherent with the CPU within a job: it keeps whole 4 KiB lines (a
 * GPU page), read on a job's first access and written back whole when the
 * job ends (and at a WRITE64 with FLUSH, or a FLUSH command). So the CPU
 * must not write memory in a GPU page that a running job of the VM
 * writes (the line's write-back would undo the CPU's bytes), and a running
 * job may not see what the CPU wrote after the job read that page: keep a
 * user fence, and anything the CPU and a job write at the same time, in
 * GPU pages of their own.
 *
 * A mirror VM is the calling process's, and only its: QUEUE_CREATE and
 * SUBMIT from another process (a child after fork, a process the file
 * was passed to) fail with -EPERM. Its BOs and NULL ranges go above the
 * process's addresses, in [@mirror_end, &drm_ferrite_mmu_info.user_va_end)
 * (VM_BIND elsewhere -EINVAL); userptrs have no place in it
 * (DRM_FERRITE_VM_BIND_USERPTR -EINVAL). A queue in a mirror VM is
 * *long-running*: its jobs may wait on page faults, whose handling
 * allocates memory, so no dma-fence of theirs may leave the kernel (a
 * memory allocation must never wait on a fence that waits for one). Its
 * SUBMITs take WAIT sync ops but no SIGNAL ones and no BO references
 * (-EINVAL); a job signals the CPU through memory (a WRITE64 with
 * FLUSH to a variable the CPU polls: a *user fence*). Its queues yield
 * their hardware ring while stalled, to any queue that waits for one.
 *
 * Mirroring needs a device whose DMA reaches all memory directly (no
 * bounce buffers: not with swiotlb=force, and not for a device that
 * addresses less than the machine's memory) and coherently with the
 * CPU's caches, that can stall and preempt queues: elsewhere
 * DRM_FERRITE_UAPI_MIRROR is clear and the flag fails with -EOPNOTSUPP.
 */
#define DRM_FERRITE_VM_CREATE_MIRROR	(1 << 0)

/**
 * struct drm_ferrite_vm_create - create a GPU address space
 *
 * The VM belongs to the calling process: only that process may bind its
 * memory into it (DRM_FERRITE_VM_BIND_USERPTR). A file may have 64 VMs.
 * The structure grew in 0.7 (@mirror_start, @mirror_end).
 *
 * Errors: an unknown flag -EINVAL; a file that has 64 VMs already -ENOSPC;
 * DRM_FERRITE_VM_CREATE_MIRROR on a device that cannot mirror -EOPNOTSUPP,
 * from a kernel thread or an exiting process -EFAULT.
 */
struct drm_ferrite_vm_create {
	/** @flags: Zero or DRM_FERRITE_VM_CREATE_MIRROR. */
	__u32 flags;
	/** @vm_id: Returned VM id, valid in this file. */
	__u32 vm_id;
	/**
	 * @mirror_start: Returned: first address the VM mirrors (the first
	 * CPU page above &drm_ferrite_mmu_info.user_va_start); 0 for a VM
	 * that does not mirror.
	 */
	__u64 mirror_start;
	/**
	 * @mirror_end: Returned: end (exclusive) of the mirrored range, the
	 * lower of the process's address-space size (TASK_SIZE) and
	 * &drm_ferrite_mmu_info.user_va_end; 0 for a VM that does not
	 * mirror.
	 */
	__u64 mirror_end;
};

/**
 * struct drm_ferrite_vm_destroy - destroy a GPU address space
 *
 * The id is freed at once; the VM, with its mappings, goes when the last
 * job that ran in it has ended. Its VM-private BOs
 * (DRM_FERRITE_GEM_CREATE_VM_PRIVATE) stay valid but can no longer be
 * bound anywhere.
 *
 * Errors: non-zero @pad, or @vm_id DRM_FERRITE_VM_PROCESS, -EINVAL; an
 * unknown @vm_id -ENOENT; a VM that queues of the file still use -EBUSY
 * (destroy them first).
 */
struct drm_ferrite_vm_destroy {
	/** @vm_id: VM id. */
	__u32 vm_id;
	/** @pad: Must be zero. */
	__u32 pad;
};

/**
 * enum drm_ferrite_vm_bind_op_type - operations of VM_BIND
 * @DRM_FERRITE_VM_BIND_OP_MAP: map @size bytes of the BO at @bo_offset at @va
 * @DRM_FERRITE_VM_BIND_OP_UNMAP: unmap [@va, @va + @size)
 * @DRM_FERRITE_VM_BIND_OP_SYNC_ONLY: change nothing (since 0.5); every
 *	other field must be zero. A VM_BIND of SYNC_ONLY ops only orders
 *	its sync ops: with DRM_FERRITE_VM_BIND_ASYNC its SIGNAL syncs
 *	signal once its WAIT syncs and every earlier bind of the VM have.
 */
enum drm_ferrite_vm_bind_op_type {
	DRM_FERRITE_VM_BIND_OP_MAP = 0,
	DRM_FERRITE_VM_BIND_OP_UNMAP = 1,
	DRM_FERRITE_VM_BIND_OP_SYNC_ONLY = 2,
};

/* Flags of &drm_ferrite_vm_bind_op.flags. */
#define DRM_FERRITE_VM_BIND_READONLY	(1 << 0)
#define DRM_FERRITE_VM_BIND_NOEXEC	(1 << 1)
/*
 * DRM_FERRITE_VM_BIND_USERPTR: MAP the calling process's memory at
 * [@va, @va + @size) at the same GPU VA (GPU VA == CPU VA); @handle and
 * @bo_offset must be zero. @va and @size must be multiples of the CPU page
 * size (&drm_ferrite_mmu_info.bind_alignment, which is the CPU page: 16384
 * on a kernel with 16 KiB pages, where a range of one 4 KiB GPU page, or
 * one that starts 4 KiB into a CPU page, fails), as for every VM_BIND
 * operation: else -EINVAL, before any memory is looked at. The memory
 * behind the range is taken in whole CPU pages, which is why a GPU page
 * alignment is not enough. The VM must belong to the calling process (its
 * process VM, or a VM it created): else -EPERM. Pages that are not mapped
 * (or not writable, without DRM_FERRITE_VM_BIND_READONLY) fail with
 * -EFAULT, and so does memory get_user_pages() cannot take (VM_IO or
 * VM_PFNMAP mappings, such as a CPU mapping of a BO or of a dma-buf). A
 * userptr may not overlap another mapping (-EEXIST), a BO MAP may not
 * overlap a userptr (-EEXIST: it does not replace it), and an UNMAP must
 * cover whole userptrs (-EINVAL). The kernel follows the
 * process's page tables: after munmap, mremap, fork (copy-on-write) or
 * migration, the next SUBMIT on the VM maps the range's current pages,
 * and a range that is no longer mapped faults on GPU access.
 * With DRM_FERRITE_VM_BIND_READONLY the memory may be read-only or shared
 * (untouched anonymous memory, a read-only file mapping): the device
 * never writes it, not even through a bounce buffer. When the DMA layer
 * cannot map the memory (bounce buffers or DMA address space exhausted),
 * -ENOMEM.
 *
 * A userptr has no GEM handle, so GEM_SYNC cannot name it: the kernel
 * moves its pages between the CPU and the device at job boundaries.
 * Every job of the VM (of any queue or file using the VM, jobs still
 * waiting for their dependencies included) holds every userptr of the VM
 * from its SUBMIT until it ends. The pages go to the device at a SUBMIT
 * that finds no other job of the VM holding them, and back to the CPU
 * when the last job holding them ends, before its fence signals. So the
 * CPU sees what jobs wrote once every job of the VM submitted so far has
 * signalled (not only the job that wrote), and a job sees what the CPU
 * wrote before the SUBMIT at which the device took the pages. On a machine
 * whose DMA is bounced or not cache-coherent, memory written by one side
 * while the VM has work outstanding may not reach the other, and there is
 * no ioctl to hand it over earlier: use a BO and GEM_SYNC for such data.
 */
#define DRM_FERRITE_VM_BIND_USERPTR	(1 << 2)
/*
 * DRM_FERRITE_VM_BIND_NULL (since 0.5, DRM_FERRITE_UAPI_NULL_BIND): MAP
 * [@va, @va + @size) to no memory: the GPU reads zeros there and its
 * writes are dropped, without a fault (Vulkan's sparse residency with
 * residencyNonResidentStrict). @handle and @bo_offset must be zero, and
 * DRM_FERRITE_VM_BIND_USERPTR may not be set. A NULL range is a mapping
 * like any other: a MAP of a BO over part of it replaces that part (the
 * rest stays NULL), and a NULL MAP over BO mappings replaces them, so
 * sparse residency is a stream of MAPs alone. DRM_FERRITE_VM_BIND_READONLY
 * and DRM_FERRITE_VM_BIND_NOEXEC apply as to any mapping (a write to a
 * read-only NULL range faults). The device's null aperture
 * does it: page-table entries point into output addresses that no
 * memory answers (see the hardware spec), so no write can reach memory.
 */
#define DRM_FERRITE_VM_BIND_NULL	(1 << 3)

/* Flags of &drm_ferrite_vm_bind.flags. */
#define DRM_FERRITE_VM_BIND_ASYNC	(1 << 0)

/**
 * struct drm_ferrite_vm_bind_op - one VM_BIND operation
 *
 * @va, @size and @bo_offset must be multiples of
 * &drm_ferrite_mmu_info.bind_alignment (the CPU page size, 4096 bytes
 * or more: 16384 on a kernel with 16 KiB pages, even though the GPU page
 * is 4096), for every operation (a BO MAP, a userptr, a NULL range, an
 * UNMAP), @size non-zero, [@va, +@size) inside the user range (&struct
 * drm_ferrite_mmu_info) and [@bo_offset, +@size) inside the BO. A MAP of
 * a BO over existing BO mappings replaces them (the old mappings are split
 * as needed); one that overlaps a userptr, even partly, fails with
 * -EEXIST and changes nothing (UNMAP the userptr first). An UNMAP of an
 * unmapped range is not an error; one that covers only part of a userptr
 * fails with -EINVAL.
 *
 * Errors found while the arguments are checked, before anything changes:
 * an unknown @op or flag, non-zero @pad, a non-zero @handle or @bo_offset
 * where they must be zero, a range that is misaligned (not a multiple of
 * bind_alignment; userptrs too), empty, outside the user range or outside
 * the BO, or a BO private to another VM
 * (DRM_FERRITE_GEM_CREATE_VM_PRIVATE) -EINVAL; an unknown @handle -ENOENT.
 * Errors found while an operation is applied, which leave the operations
 * before it applied: an overlap with a userptr -EEXIST; an UNMAP that
 * splits a userptr -EINVAL; the userptr errors of
 * DRM_FERRITE_VM_BIND_USERPTR (-EPERM, -EFAULT, -EEXIST, -ENOMEM); a BO
 * whose first use would exceed the pinning budget
 * (&drm_ferrite_memory_info.available), or pages the DMA layer cannot map,
 * -ENOMEM.
 */
struct drm_ferrite_vm_bind_op {
	/** @op: One of &enum drm_ferrite_vm_bind_op_type. */
	__u32 op;
	/** @flags: DRM_FERRITE_VM_BIND_* for MAP; zero for UNMAP. */
	__u32 flags;
	/** @handle: GEM handle for MAP; zero for UNMAP. */
	__u32 handle;
	/** @pad: Must be zero. */
	__u32 pad;
	/** @bo_offset: Offset in the BO for MAP; zero for UNMAP. */
	__u64 bo_offset;
	/** @va: GPU virtual address. */
	__u64 va;
	/** @size: Size in bytes. */
	__u64 size;
};

/* Flags of &drm_ferrite_sync_op.flags. */
#define DRM_FERRITE_SYNC_WAIT		(0 << 0)
#define DRM_FERRITE_SYNC_SIGNAL		(1 << 0)
#define DRM_FERRITE_SYNC_TIMELINE	(1 << 1)

/**
 * struct drm_ferrite_sync_op - a sync object to wait on or signal
 *
 * A WAIT names a fence that must exist when the ioctl is called: the
 * kernel does not wait for one to be submitted. A binary sync object with
 * no fence, a timeline point beyond the last one added, or a non-zero
 * @point on a binary sync object fails with -EINVAL; to wait before the
 * signaller is submitted, wait in userspace first
 * (DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT with
 * DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE). A WAIT fence that signalled
 * with an error fails what waits for it: VM_BIND returns that error, and a
 * job does not run and its fence signals that error. A SIGNAL on a binary
 * sync object replaces its fence; with DRM_FERRITE_SYNC_TIMELINE it adds
 * @point to the timeline.
 *
 * Errors: an unknown flag, a non-zero @point without
 * DRM_FERRITE_SYNC_TIMELINE or a zero one with it -EINVAL; an unknown
 * @handle -ENOENT; a WAIT without a fence, as above, -EINVAL.
 */
struct drm_ferrite_sync_op {
	/** @flags: DRM_FERRITE_SYNC_WAIT or _SIGNAL, plus _TIMELINE. */
	__u32 flags;
	/** @handle: DRM sync object handle. */
	__u32 handle;
	/** @point: Timeline point; must be zero without _TIMELINE. */
	__u64 point;
};

/**
 * struct drm_ferrite_vm_bind - change a GPU address space
 *
 * The binds of a VM take effect one after another, in the order of their
 * VM_BIND calls, synchronous and asynchronous alike; binds of different
 * VMs never wait for each other.
 *
 * Synchronous (@flags zero): VM_BIND first waits for the VM's earlier
 * asynchronous binds and for every WAIT sync op, interruptibly and
 * without a timeout, then applies the operations in order. The SIGNAL
 * sync ops then get a fence that has already signalled. Unmapped ranges
 * are invalidated in the GPU TLB (and the device cache written back)
 * before the call returns; a job still running faults on them from then
 * on, so their pages are released at once without waiting for it.
 *
 * Asynchronous (DRM_FERRITE_VM_BIND_ASYNC, since 0.5): VM_BIND checks the
 * operations, reserves all the memory they can need (page-table pages,
 * mapping records, the BOs' pages) and returns without waiting. The
 * operations are applied later, in order, once the WAIT sync ops and the
 * VM's earlier binds have signalled. The SIGNAL sync ops (binary or
 * timeline) hold the bind's fence when VM_BIND returns, and it signals
 * after the page tables and the GPU TLB are up to date. A job that waits
 * for that fence sees the mappings. An UNMAP of a range jobs still use
 * takes effect when it is applied, without waiting for them: from then on
 * they fault on the range, and its pages are released. The
 * applied part cannot fail for want of memory. If it fails nonetheless (a
 * WAIT fence that failed, or fault injection), no operation of that bind
 * is applied, its SIGNAL fences carry the error, and the VM becomes
 * unusable (VM_GET_STATE): later MAPs and SUBMITs on it fail with -EIO,
 * asynchronous binds queued after it fail the same way without applying
 * their MAPs, while UNMAPs and VM_DESTROY keep working. Asynchronous
 * binds cannot take DRM_FERRITE_VM_BIND_USERPTR, nor UNMAP a range that
 * holds a userptr (-EINVAL): a userptr is the caller's memory, looked up
 * when it is bound.
 *
 * Errors: unknown @flags -EINVAL; an unknown @vm_id -ENOENT; the errors
 * of the arrays (&struct drm_ferrite_obj_array), of the operations
 * (&struct drm_ferrite_vm_bind_op) and of the sync ops (&struct
 * drm_ferrite_sync_op); a MAP on an unusable VM -EIO; memory for the
 * reservation of an asynchronous bind -ENOMEM; a signal while waiting
 * (synchronous only) -EINTR (the wait restarts by itself under a
 * SA_RESTART handler); a WAIT fence that failed (synchronous only): its
 * error, with no operation applied. After an error no SIGNAL sync op is
 * signalled. An error found while the arguments are checked changes and
 * queues nothing; -ENOMEM while an operation is recorded leaves the
 * operations before it applied (synchronous) or queued (asynchronous).
 */
struct drm_ferrite_vm_bind {
	/** @vm_id: VM id, or DRM_FERRITE_VM_PROCESS. */
	__u32 vm_id;
	/** @flags: Zero, or DRM_FERRITE_VM_BIND_ASYNC. */
	__u32 flags;
	/** @ops: Array of &struct drm_ferrite_vm_bind_op. */
	struct drm_ferrite_obj_array ops;
	/** @syncs: Array of &struct drm_ferrite_sync_op. */
	struct drm_ferrite_obj_array syncs;
};

/**
 * enum drm_ferrite_vm_state - what VM_GET_STATE reports
 * @DRM_FERRITE_VM_STATE_USABLE: the VM takes binds and jobs
 * @DRM_FERRITE_VM_STATE_UNUSABLE: an asynchronous bind failed after its
 *	VM_BIND returned, so the VM no longer holds the mappings userspace
 *	asked for: MAPs and SUBMITs on it fail with -EIO; UNMAP and
 *	VM_DESTROY still work. Create a new VM.
 */
enum drm_ferrite_vm_state {
	DRM_FERRITE_VM_STATE_USABLE = 0,
	DRM_FERRITE_VM_STATE_UNUSABLE = 1,
};

/**
 * struct drm_ferrite_vm_get_state - whether a VM is usable (since 0.5)
 *
 * Errors: non-zero @pad -EINVAL; an unknown @vm_id -ENOENT.
 */
struct drm_ferrite_vm_get_state {
	/** @vm_id: VM id, or DRM_FERRITE_VM_PROCESS. */
	__u32 vm_id;
	/** @state: Returned &enum drm_ferrite_vm_state. */
	__u32 state;
	/** @pad: Must be zero. */
	__u64 pad;
};

/**
 * enum drm_ferrite_queue_priority - priority of a queue
 * @DRM_FERRITE_QUEUE_PRIORITY_NORMAL: the default (zero, so that callers
 *	built against interface 0.1 get it)
 * @DRM_FERRITE_QUEUE_PRIORITY_LOW: runs when no NORMAL or higher queue
 *	is runnable on the rings it could use
 * @DRM_FERRITE_QUEUE_PRIORITY_HIGH: needs CAP_SYS_NICE
 * @DRM_FERRITE_QUEUE_PRIORITY_REALTIME: needs CAP_SYS_NICE;
 *	a job of a REALTIME queue gets a ring at once, preempting the
 *	lowest-priority queue running, even in the middle of its job
 *
 * A queue of a higher priority preempts queues of lower priorities as
 * soon as it has work and no ring is free; queues of one priority take
 * turns, a timeslice each (&drm_ferrite_sched_info.timeslice_us).
 */
enum drm_ferrite_queue_priority {
	DRM_FERRITE_QUEUE_PRIORITY_NORMAL = 0,
	DRM_FERRITE_QUEUE_PRIORITY_LOW = 1,
	DRM_FERRITE_QUEUE_PRIORITY_HIGH = 2,
	DRM_FERRITE_QUEUE_PRIORITY_REALTIME = 3,
};

/*
 * Flags of &drm_ferrite_queue_create.flags.
 *
 * DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL: a job of this queue that faults,
 * has a command error or times out makes the queue *banned* (GL
 * robustness' and Vulkan's device-lost model): its queued jobs fail with
 * -ECANCELED and later SUBMITs fail with -ECANCELED until the queue is
 * destroyed. Without it, the failing job fails and the next one runs.
 */
#define DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL	(1 << 0)

/**
 * struct drm_ferrite_queue_create - create a queue on a VM
 *
 * A queue needs no free hardware ring: queues share the rings (see
 * &struct drm_ferrite_sched_info). A file may have up to
 * &drm_ferrite_sched_info.max_queues_per_file (256) live queues.
 *
 * Errors: an unknown flag, non-zero @pad, a @timeout_ms above 60000 or an
 * unknown @priority -EINVAL; HIGH or REALTIME without CAP_SYS_NICE -EPERM
 * (being DRM master is not enough); an unknown @vm_id -ENOENT; a file with
 * 256 queues already -ENOSPC.
 */
struct drm_ferrite_queue_create {
	/** @vm_id: VM the queue's jobs run in, or DRM_FERRITE_VM_PROCESS. */
	__u32 vm_id;
	/** @flags: DRM_FERRITE_QUEUE_CREATE_* bits. */
	__u32 flags;
	/**
	 * @timeout_ms: Job timeout in milliseconds of time on a ring (time
	 * a job waits for its dependencies or for a ring, or spends
	 * preempted, does not count), at most 60000; 0 selects the default,
	 * 2000 ms (a constant of the driver, not a module parameter). The
	 * driver looks at running jobs at least every 50 ms, so a job fails
	 * up to about 50 ms after its timeout.
	 */
	__u32 timeout_ms;
	/** @queue_id: Returned queue id, valid in this file. */
	__u32 queue_id;
	/**
	 * @priority: &enum drm_ferrite_queue_priority (since 0.2; zero, the
	 * default, for callers built against 0.1).
	 */
	__u32 priority;
	/** @pad: Must be zero. */
	__u32 pad;
};

/**
 * struct drm_ferrite_queue_destroy - destroy a queue
 *
 * Jobs not yet written to the queue's ring buffer (waiting for a
 * dependency, or for room: a queue has at most 256 jobs on its ring
 * buffer) are cancelled: their fences signal -ECANCELED. Jobs already on
 * the ring buffer run to their end or time out. Closing the file does the
 * same to each of its queues.
 *
 * Errors: non-zero @pad -EINVAL; an unknown @queue_id -ENOENT.
 */
struct drm_ferrite_queue_destroy {
	/** @queue_id: Queue id. */
	__u32 queue_id;
	/** @pad: Must be zero. */
	__u32 pad;
};

/**
 * struct drm_ferrite_submit - submit a job to a queue
 *
 * The job executes the command buffer at @cmd_va (@cmd_size bytes) in
 * the queue's VM, after every WAIT sync op and every implicit fence of the
 * BOs in @bos has signalled: for a BO listed without
 * DRM_FERRITE_BO_REF_WRITE, the fences of earlier writers; for one listed
 * with it, every fence. Its fence is then added to each listed BO's
 * reservation object (as a write with DRM_FERRITE_BO_REF_WRITE, else as a
 * read; VM-private BOs differ, see DRM_FERRITE_GEM_CREATE_VM_PRIVATE), to
 * the VM's reservation object (as bookkeeping, which no implicit user
 * waits for: the kernel waits for the VM's jobs through it before it
 * lets the CPU change a userptr's pages) and to every SIGNAL sync op. A
 * BO the job uses without listing it gets no fence and orders nothing.
 *
 * The command buffer is run by a CALL from the queue's ring: @cmd_va must
 * be 4-byte aligned, @cmd_size a multiple of 4 from 4 to 1 MiB, and the
 * whole buffer inside the user range (&struct drm_ferrite_mmu_info). It
 * must be mapped readable and executable (without
 * DRM_FERRITE_VM_BIND_NOEXEC) when the job runs, or the job faults. As the
 * ring's CALL is the first of the 4 CALL levels of the hardware, the
 * buffer's own CALLs may nest 3 deep.
 *
 * The job's fence signals without error on success, else with one of:
 * -EFAULT (an MMU fault), -EIO (a command error), -ETIMEDOUT (see
 * &drm_ferrite_queue_create.timeout_ms), -ECANCELED (the queue was
 * destroyed, closed or banned before the job ran, or the job was lost to a
 * reset of the whole GPU), -ENODEV (the device is gone), -ENOMEM (no
 * memory to put it on the ring buffer), or the error of a WAIT fence that
 * failed, in which case the job does not run. The implicit fences of the
 * listed BOs are only waited for: their errors are not passed on (since
 * 0.4), so a job that failed writing a shared BO does not fail its later
 * users. &struct drm_ferrite_queue_get_state has the details of a
 * failure.
 *
 * Errors: non-zero @flags or @pad, or a @cmd_va or @cmd_size that breaks
 * the rules above, -EINVAL; an unknown @queue_id -ENOENT; the errors of
 * the arrays (&struct drm_ferrite_obj_array), of the sync ops (&struct
 * drm_ferrite_sync_op) and of the BO references (&struct
 * drm_ferrite_bo_ref); a queue banned after a failure
 * (DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL) -ECANCELED; a queue whose VM
 * is unusable (&enum drm_ferrite_vm_state) -EIO; a signal while the
 * BOs are locked -EINTR (nothing was submitted: retry); a device that is
 * gone -ENODEV.
 */
struct drm_ferrite_submit {
	/** @queue_id: Queue id. */
	__u32 queue_id;
	/** @flags: Must be zero. */
	__u32 flags;
	/** @cmd_va: GPU VA of the command buffer. */
	__u64 cmd_va;
	/** @cmd_size: Size of the command buffer in bytes. */
	__u32 cmd_size;
	/** @pad: Must be zero. */
	__u32 pad;
	/** @syncs: Array of &struct drm_ferrite_sync_op. */
	struct drm_ferrite_obj_array syncs;
	/** @bos: Array of &struct drm_ferrite_bo_ref, for implicit sync. */
	struct drm_ferrite_obj_array bos;
};

/* Flags of &drm_ferrite_bo_ref.flags. */
#define DRM_FERRITE_BO_REF_WRITE	(1 << 0)

/**
 * struct drm_ferrite_bo_ref - a BO a job uses, for implicit sync
 *
 * Listing a BO orders the job after the BO's earlier users (see &struct
 * drm_ferrite_submit) and publishes the job's fence in the BO's
 * reservation object, where other devices, GEM_SYNC, DMA_BUF_IOCTL_SYNC
 * and DMA_BUF_IOCTL_EXPORT_SYNC_FILE find it. A BO may be listed whether
 * or not it is bound in the queue's VM.
 *
 * Errors: an unknown flag -EINVAL; an unknown @handle -ENOENT; a BO
 * private to another VM than the queue's -EINVAL.
 */
struct drm_ferrite_bo_ref {
	/** @handle: GEM handle. */
	__u32 handle;
	/** @flags: DRM_FERRITE_BO_REF_WRITE if the job writes it. */
	__u32 flags;
};

/**
 * enum drm_ferrite_queue_state - state of a queue
 * @DRM_FERRITE_QUEUE_STATE_OK: no error since creation
 * @DRM_FERRITE_QUEUE_STATE_FAULTED: a job faulted in the MMU
 * @DRM_FERRITE_QUEUE_STATE_ERROR: a job had a command error
 * @DRM_FERRITE_QUEUE_STATE_TIMEDOUT: a job timed out and was reset
 */
enum drm_ferrite_queue_state {
	DRM_FERRITE_QUEUE_STATE_OK = 0,
	DRM_FERRITE_QUEUE_STATE_FAULTED = 1,
	DRM_FERRITE_QUEUE_STATE_ERROR = 2,
	DRM_FERRITE_QUEUE_STATE_TIMEDOUT = 3,
};

/**
 * enum drm_ferrite_queue_reset - how a queue was touched by a reset
 * @DRM_FERRITE_QUEUE_RESET_NONE: no job of the queue was lost
 * @DRM_FERRITE_QUEUE_RESET_GUILTY: a job of this queue faulted, had a
 *	command error or timed out (GL's GUILTY_CONTEXT_RESET)
 * @DRM_FERRITE_QUEUE_RESET_INNOCENT: a job of this queue that was running
 *	was lost to a reset of the whole GPU that this queue did not cause
 *	(GL's INNOCENT_CONTEXT_RESET); it failed with -ECANCELED
 *
 * GUILTY wins over INNOCENT. Both are cleared with
 * DRM_FERRITE_QUEUE_STATE_CLEAR, but a banned queue stays banned.
 */
enum drm_ferrite_queue_reset {
	DRM_FERRITE_QUEUE_RESET_NONE = 0,
	DRM_FERRITE_QUEUE_RESET_GUILTY = 1,
	DRM_FERRITE_QUEUE_RESET_INNOCENT = 2,
};

/**
 * struct drm_ferrite_queue_get_state - read a queue's fault/error record
 *
 * A queue whose job failed keeps running later jobs, unless it was created
 * with DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL (then it is @banned); the
 * record describes the first failure since creation or since the record
 * was last read with DRM_FERRITE_QUEUE_STATE_CLEAR (which zeroes @state,
 * @error, @fault_addr, @fault_status, @failed_jobs and @reset, after
 * returning them); later failures only count in @failed_jobs and @faults. It
 * does not say which job failed: that is each job's fence error (see
 * &struct drm_ferrite_submit). The fields after @failed_jobs exist since
 * 0.2. What a failure leaves:
 *
 * - an MMU fault: @state DRM_FERRITE_QUEUE_STATE_FAULTED, @error 3
 *   (MMU_FAULT), @fault_addr and @fault_status from the VM's address-space
 *   slot;
 * - a command error: @state DRM_FERRITE_QUEUE_STATE_ERROR, @error the
 *   Q_ERROR code (1 BAD_OPCODE, 2 BAD_LENGTH, 4 CALL_DEPTH, 7 BAD_SIZE,
 *   ...; see the hardware specification), @fault_addr and @fault_status
 *   zero;
 * - a timeout: @state DRM_FERRITE_QUEUE_STATE_TIMEDOUT, and @error,
 *   @fault_addr and @fault_status zero (the ring is reset; the hardware
 *   reports no error);
 * - a job lost to a reset of the whole GPU: @reset
 *   DRM_FERRITE_QUEUE_RESET_INNOCENT (unless already GUILTY) and one more
 *   @failed_jobs; @state is left as it was.
 *
 * The first three also set @reset to DRM_FERRITE_QUEUE_RESET_GUILTY. Jobs
 * that fail without running (a failed dependency, a cancellation, a device
 * that is gone) leave the record alone.
 *
 * Errors: an unknown flag -EINVAL; an unknown @queue_id -ENOENT.
 */
struct drm_ferrite_queue_get_state {
	/** @queue_id: Queue id. */
	__u32 queue_id;
	/** @flags: DRM_FERRITE_QUEUE_STATE_CLEAR or zero. */
	__u32 flags;
	/** @state: Returned &enum drm_ferrite_queue_state. */
	__u32 state;
	/**
	 * @error: Returned hardware error code (Q_ERROR) of a command error or
	 * an MMU fault; zero for a timeout.
	 */
	__u32 error;
	/**
	 * @fault_addr: Returned faulting GPU VA, to the byte: where the
	 * device's translation failed, which is the address of the access,
	 * or the start of the first GPU page (4 KiB, whatever the CPU page
	 * size) it could not translate when the access (a dword that crosses
	 * pages, a FILL, COPY or CHECKSUM range) ran into it from the page
	 * before. It is the last fault recorded by
	 * the VM's address-space slot when the driver handled the failure: if
	 * another queue of the same VM faulted meanwhile, that fault's.
	 */
	__u64 fault_addr;
	/**
	 * @fault_status: Returned AS_FAULTSTATUS: bits 3:0 the type (1
	 * translation, 2 permission, 3 address size, 4 bus), bit 4 set for a
	 * write, bits 11:8 the hardware ring (not the queue id), bit 31 valid.
	 */
	__u32 fault_status;
	/**
	 * @failed_jobs: Returned number of the queue's jobs that faulted, had
	 * a command error, timed out or were lost to a reset of the whole GPU,
	 * since creation or the last DRM_FERRITE_QUEUE_STATE_CLEAR.
	 */
	__u32 failed_jobs;
	/** @reset: Returned &enum drm_ferrite_queue_reset. */
	__u32 reset;
	/** @banned: Returned 1 if SUBMIT fails with -ECANCELED. */
	__u32 banned;
	/** @faults: Returned MMU faults of the queue's jobs, ever. */
	__u32 faults;
	/**
	 * @preemptions: Returned times the device saved the queue's state in
	 * the middle of its work to give its ring to another queue, ever.
	 */
	__u32 preemptions;
	/** @ring_time_ns: Returned time the queue's jobs spent on a ring. */
	__u64 ring_time_ns;
};

#define DRM_FERRITE_QUEUE_STATE_CLEAR	(1 << 0)

/* Flags of &drm_ferrite_gem_sync.flags. */
#define DRM_FERRITE_GEM_SYNC_BEGIN	(1 << 0)
#define DRM_FERRITE_GEM_SYNC_END	(1 << 1)
#define DRM_FERRITE_GEM_SYNC_READ	(1 << 2)
#define DRM_FERRITE_GEM_SYNC_WRITE	(1 << 3)

/**
 * struct drm_ferrite_gem_sync - move a buffer object between GPU and CPU
 *
 * The GPU reaches a BO's pages through DMA mappings made when it is first
 * bound; the CPU reaches them through mmap. Ownership moves explicitly, as
 * with DMA_BUF_IOCTL_SYNC:
 *
 * - BEGIN with READ and/or WRITE, before the CPU accesses the BO: waits
 *   (interruptibly) for the jobs that write the BO (READ) or that use it
 *   at all (WRITE), writes the GPU cache back, and synchronises the DMA
 *   mapping for the CPU (dma_sync_sgtable_for_cpu()).
 * - END with the same flags, after the CPU access: synchronises the
 *   mapping for the device (dma_sync_sgtable_for_device()) so that the GPU
 *   sees what the CPU wrote.
 *
 * On cache-coherent machines without bounce buffering these are nearly
 * free; with swiotlb bouncing or non-coherent caches, skipping them shows
 * stale data. Exactly one of BEGIN and END, and at least one of READ and
 * WRITE, must be set.
 *
 * GEM_SYNC is required around every CPU access (through a CPU mapping) to
 * a BO that the GPU has used or will use; it is what makes CPU mappings,
 * which are cached (see &struct drm_ferrite_gem_mmap_offset), correct on
 * every platform. GEM_SYNC is valid at any time, before the BO's first
 * VM_BIND too: the first one pins and DMA-maps the pages (allocating
 * them), as the first VM_BIND would. It covers the whole BO (there is no
 * range). Use the flags that match the access: END with READ alone may
 * drop what the CPU wrote (on a non-coherent machine it invalidates the
 * CPU caches), and BEGIN with WRITE alone does not bring the device's
 * writes to the CPU. Userptrs have no handle: see
 * DRM_FERRITE_VM_BIND_USERPTR.
 *
 * On an imported BO, GEM_SYNC syncs this device's mapping of the dma-buf
 * (its attachment). BEGIN with READ copies this device's view of the BO
 * to the pages where DMA is bounced: on a BO two devices share, only the
 * device whose jobs wrote it last may do it (see "Writing userspace for
 * Ferrite" in Documentation/gpu/ferrite.rst).
 *
 * Errors: none or both of BEGIN and END, neither READ nor WRITE, or an
 * unknown flag -EINVAL; an unknown @handle -ENOENT; a first use beyond the
 * pinning budget (&drm_ferrite_memory_info.available), or pages the DMA
 * layer cannot map, -ENOMEM; a signal while BEGIN waits -EINTR (the wait
 * restarts by itself under a SA_RESTART handler). BEGIN hands the BO to
 * the CPU once the jobs it waits for are over, whether they succeeded or
 * failed (since 0.4; before, it returned a failed job's error without the
 * hand-over): a job's error is read from its sync object.
 */
struct drm_ferrite_gem_sync {
	/** @handle: GEM handle. */
	__u32 handle;
	/** @flags: DRM_FERRITE_GEM_SYNC_*. */
	__u32 flags;
};

/**
 * DRM_FERRITE_BO_LABEL_MAX - longest label, in bytes, with its NUL
 *
 * A label holds at most 4095 bytes before its terminating NUL (Mesa's
 * 4 KiB cap, panthor's limit).
 */
#define DRM_FERRITE_BO_LABEL_MAX 4096

/**
 * struct drm_ferrite_bo_set_label - set or clear a buffer object's label
 *
 * A label names a BO in debugfs (``gem``, ``vms``) and in the mappings
 * of devcoredumps, for debugging (vkSetDebugUtilsObjectNameEXT,
 * glObjectLabel). @label points to a NUL-terminated string of any bytes
 * but NUL (UTF-8 is not required; debugfs and coredumps show the label
 * quoted, with bytes that are not printable UTF-8 escaped). A @label of
 * zero, or an empty string, clears the label. Any BO of the file may be
 * labelled, imported ones too; the label belongs to the GEM object, not
 * to the handle (every handle of the object and a self-import see it, an
 * import on another device is another object with its own label).
 *
 * Errors: a bad handle -ENOENT; a string longer than
 * DRM_FERRITE_BO_LABEL_MAX bytes with its NUL -E2BIG; a @label the kernel
 * cannot read -EFAULT; non-zero @pad -EINVAL.
 */
struct drm_ferrite_bo_set_label {
	/** @handle: GEM handle. */
	__u32 handle;
	/** @pad: Must be zero. */
	__u32 pad;
	/** @label: User pointer to a NUL-terminated string, or 0. */
	__u64 label;
};

/**
 * enum drm_ferrite_bo_import - where an imported buffer object comes from
 * @DRM_FERRITE_BO_IMPORT_NONE: not imported: created by GEM_CREATE on
 *	this device (a BO exported and imported back into its own device
 *	is the same object)
 * @DRM_FERRITE_BO_IMPORT_FERRITE: a dma-buf exported by another Ferrite
 *	device
 * @DRM_FERRITE_BO_IMPORT_DRM: a dma-buf exported by another DRM driver's
 *	GEM object (DRM PRIME: vgem, a display driver, ...)
 * @DRM_FERRITE_BO_IMPORT_OTHER: a dma-buf of any other exporter (udmabuf,
 *	dma-buf heaps, V4L2, ...)
 */
enum drm_ferrite_bo_import {
	DRM_FERRITE_BO_IMPORT_NONE = 0,
	DRM_FERRITE_BO_IMPORT_FERRITE = 1,
	DRM_FERRITE_BO_IMPORT_DRM = 2,
	DRM_FERRITE_BO_IMPORT_OTHER = 3,
};

/**
 * struct drm_ferrite_bo_query_info - what a buffer object is
 *
 * With @label non-zero and @label_size non-zero, the kernel writes the
 * label at @label as a NUL-terminated string, truncated to
 * @label_size - 1 bytes (as snprintf() does; an unlabelled BO gives an
 * empty string); @label_len is the full length either way, so a first
 * call with @label zero sizes the buffer (@label_len + 1 bytes).
 *
 * Errors: a bad handle -ENOENT; non-zero @flags -EINVAL; a @label the
 * kernel cannot write -EFAULT.
 */
struct drm_ferrite_bo_query_info {
	/** @handle: GEM handle. */
	__u32 handle;
	/** @flags: Must be zero. */
	__u32 flags;
	/**
	 * @size: Returned size in bytes: a multiple of the CPU page size, the
	 * size GEM_CREATE returned (or the imported dma-buf's size).
	 */
	__u64 size;
	/**
	 * @create_flags: Returned DRM_FERRITE_GEM_CREATE_* flags the BO was
	 * created with (zero for an imported BO).
	 */
	__u32 create_flags;
	/** @import_kind: Returned &enum drm_ferrite_bo_import. */
	__u32 import_kind;
	/** @label: User pointer to a buffer for the label, or 0. */
	__u64 label;
	/** @label_size: Size of the buffer at @label, in bytes. */
	__u32 label_size;
	/** @label_len: Returned length of the label, without its NUL; 0 if none. */
	__u32 label_len;
};

/**
 * DRM_IOCTL_FERRITE() - build a Ferrite ioctl number
 * @__access: R, W or WR
 * @__id: suffix of a DRM_FERRITE_* id
 * @__type: suffix of the argument's struct drm_ferrite_* type
 */
#define DRM_IOCTL_FERRITE(__access, __id, __type) \
	DRM_IO ## __access(DRM_COMMAND_BASE + DRM_FERRITE_ ## __id, \
			   struct drm_ferrite_ ## __type)

/* An enum, not #defines, so that bindgen sees the values. */
enum {
	DRM_IOCTL_FERRITE_DEV_QUERY = DRM_IOCTL_FERRITE(WR, DEV_QUERY, dev_query),
	DRM_IOCTL_FERRITE_GEM_CREATE = DRM_IOCTL_FERRITE(WR, GEM_CREATE, gem_create),
	DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET =
		DRM_IOCTL_FERRITE(WR, GEM_MMAP_OFFSET, gem_mmap_offset),
	DRM_IOCTL_FERRITE_VM_CREATE = DRM_IOCTL_FERRITE(WR, VM_CREATE, vm_create),
	DRM_IOCTL_FERRITE_VM_DESTROY = DRM_IOCTL_FERRITE(WR, VM_DESTROY, vm_destroy),
	DRM_IOCTL_FERRITE_VM_BIND = DRM_IOCTL_FERRITE(WR, VM_BIND, vm_bind),
	DRM_IOCTL_FERRITE_QUEUE_CREATE = DRM_IOCTL_FERRITE(WR, QUEUE_CREATE, queue_create),
	DRM_IOCTL_FERRITE_QUEUE_DESTROY = DRM_IOCTL_FERRITE(WR, QUEUE_DESTROY, queue_destroy),
	DRM_IOCTL_FERRITE_SUBMIT = DRM_IOCTL_FERRITE(WR, SUBMIT, submit),
	DRM_IOCTL_FERRITE_QUEUE_GET_STATE =
		DRM_IOCTL_FERRITE(WR, QUEUE_GET_STATE, queue_get_state),
	DRM_IOCTL_FERRITE_GEM_SYNC = DRM_IOCTL_FERRITE(WR, GEM_SYNC, gem_sync),
	DRM_IOCTL_FERRITE_BO_SET_LABEL = DRM_IOCTL_FERRITE(WR, BO_SET_LABEL, bo_set_label),
	DRM_IOCTL_FERRITE_BO_QUERY_INFO = DRM_IOCTL_FERRITE(WR, BO_QUERY_INFO, bo_query_info),
	DRM_IOCTL_FERRITE_VM_GET_STATE = DRM_IOCTL_FERRITE(WR, VM_GET_STATE, vm_get_state),
};

#if defined(__cplusplus)
}
#endif

#endif /* _FERRITE_DRM_H_ */
