// SPDX-License-Identifier: GPL-2.0

//! Queues and jobs.
//!
//! A user queue owns one hardware queue for its life and a ring plus a
//! fence page of its own, mapped into its VM's kernel region (the ring
//! read-only, the fence page not executable). A job is two ring commands:
//! CALL the user's command buffer, then WRITE64 the job's seqno to the fence
//! page with IRQ | FLUSH | SEQNO, so the device cache is written back before
//! the fence signals and completion costs no register read.
//!
//! SUBMIT queues the job; a work item waits for its dependencies (in
//! submission order) and writes it to the ring. The job interrupt signals
//! completed fences; a queue error or MMU fault fails the job at the head
//! with an error and a fault record, resets the hardware queue and replays
//! the jobs behind it; a watchdog does the same for a job that runs longer
//! than its queue's timeout.

use kernel::{
    bindings,
    device::{Bound, Device},
    devres::Devres,
    dma::Coherent,
    dma_fence::{Fence, FenceContext, FenceTimeline, SignalFence},
    impl_has_delayed_work, impl_has_work,
    io::{register::Array, Io},
    new_mutex, new_spinlock, new_work,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex, SpinLock,
    },
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
    uapi,
    workqueue::{self, DelayedWork, Work, WorkItem},
};

use crate::{
    gem::Bo,
    gpu::{Bar0, Gpu},
    mmu,
    regs::{self, cmd},
    userptr::DeviceLease,
    vm::Vm,
};

/// Ring size: 64 KiB.
const RING_BYTES: usize = 64 * 1024;
/// Bytes of ring one job takes: CALL (4 dwords) + WRITE64 (5 dwords).
const JOB_BYTES: usize = 9 * 4;
/// Jobs on the hardware per queue (the ring holds more).
const MAX_INFLIGHT: usize = 256;
/// Default job timeout.
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// Longest time between two watchdog checks while jobs run: a delayed
/// work item cannot be brought forward, so a short timeout is seen at
/// most this late.
const WATCHDOG_PERIOD: Delta = Delta::from_millis(50);

/// Largest timeout userspace may ask for.
pub(crate) const MAX_TIMEOUT_MS: u32 = 60_000;

/// Names of Ferrite job fences.
pub(crate) struct QueueTimeline;

impl FenceTimeline for QueueTimeline {
    const DRIVER_NAME: &'static CStr = c"ferrite";
    const TIMELINE_NAME: &'static CStr = c"ferrite-queue";
}

/// A queue's ring and fence page: kernel objects, mapped into its VM.
///
/// The DMA allocations are device resources: they are freed when the
/// device is unbound, even if a file still holds the queue or its VM.
pub(crate) struct QueueMem {
    gpu: Arc<Gpu>,
    ring: Devres<Coherent<[u32]>>,
    fence: Devres<Coherent<[u64]>>,
    ring_va: u64,
    fence_va: u64,
}

impl QueueMem {
    /// The last seqno the device wrote; 0 once the device is gone.
    fn fence_value(&self) -> u64 {
        self.fence.try_access().map_or(0, |f| {
            // SAFETY: the fence page is a live coherent allocation of 512
            // u64s; the device writes it, so read it volatile.
            unsafe { core::ptr::read_volatile(f.as_ptr().cast::<u64>()) }
        })
    }

    fn read_ring(&self, off: usize) -> u32 {
        self.ring.try_access().map_or(0, |r| {
            let base = r.as_ptr().cast::<u32>();
            // SAFETY: the index is reduced modulo the ring's length.
            unsafe { core::ptr::read_volatile(base.add((off / 4) % (RING_BYTES / 4))) }
        })
    }

    fn write_ring(&self, off: usize, dwords: &[u32]) {
        let Some(r) = self.ring.try_access() else {
            return;
        };
        let base = r.as_mut_ptr().cast::<u32>();
        let n = RING_BYTES / 4;
        for (i, d) in dwords.iter().enumerate() {
            // SAFETY: the index is reduced modulo the ring's length; only the
            // queue's lock holder writes the ring, and the device reads it.
            unsafe { core::ptr::write_volatile(base.add((off / 4 + i) % n), *d) };
        }
    }
}

impl Drop for QueueMem {
    fn drop(&mut self) {
        self.gpu
            .stats
            .kmap_kernel_bytes
            .fetch_sub((RING_BYTES + 4096) as u64, Relaxed);
    }
}

/// Per-file usage, for fdinfo.
pub(crate) struct FileStats {
    /// Nanoseconds the file's jobs ran on the queues.
    pub(crate) engine_ns: Atomic<u64>,
}

impl FileStats {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                engine_ns: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }
}

/// Text for a coredump.
struct DumpBuf(VVec<u8>);

impl core::fmt::Write for DumpBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

/// A job: a command buffer in a VM, and what it keeps alive.
pub(crate) struct Job {
    pub(crate) stats: Arc<FileStats>,
    pub(crate) vm: Arc<Vm>,
    pub(crate) cmd_va: u64,
    pub(crate) cmd_size: u32,
    /// BOs of the job (implicit sync), held until it completes.
    pub(crate) _bos: KVec<ARef<Bo>>,
    /// The userptr pages the job may use, owned by the device until it ends.
    pub(crate) userptrs: DeviceLease,
}

/// A job on the hardware. `job` comes before `fence`: dropped without an
/// explicit signal, it still gives its memory back before the fence
/// signals (cancelled).
struct Inflight {
    seqno: u64,
    job: Job,
    fence: SignalFence,
    timeout: Delta,
}

impl Inflight {
    /// The job is over, done (`err` is `None`) or failed: what it wrote
    /// goes back to the CPU, then its fence signals, so a waiter sees the
    /// data. Needs no memory and takes no lock held while allocating.
    fn finish(mut self, err: Option<Error>) {
        self.job.userptrs.release();
        self.job.vm.hw.job_done();
        match err {
            None => self.fence.signal(),
            Some(e) => self.fence.signal_error(e),
        }
    }
}

/// A failure record (QUEUE_GET_STATE).
#[derive(Clone, Copy, Default)]
pub(crate) struct Record {
    pub(crate) state: u32,
    pub(crate) error: u32,
    pub(crate) fault_addr: u64,
    pub(crate) fault_status: u32,
    pub(crate) failed_jobs: u32,
}

struct HwqState {
    /// Claimed by a queue being created or alive.
    reserved: bool,
    owner: Option<Arc<Queue>>,
    /// Ring offset of the next command, in bytes.
    tail: usize,
    /// Slot programmed in `Q_AS`.
    slot: Option<usize>,
    inflight: KVec<Inflight>,
    /// When the job at the head started executing.
    head_since: Instant<Monotonic>,
}

/// A hardware queue.
#[pin_data]
pub(crate) struct HwQueue {
    idx: usize,
    #[pin]
    state: SpinLock<HwqState>,
}

impl HwQueue {
    pub(crate) fn new(idx: usize) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                idx,
                state <- new_spinlock!(HwqState {
                    reserved: false,
                    owner: None,
                    tail: 0,
                    slot: None,
                    inflight: KVec::new(),
                    head_since: Instant::now(),
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Reset the queue and point it at `mem`'s ring.
    fn program(&self, bar: &Bar0<'_>, mem: &QueueMem) {
        let q = self.idx;
        let (lo, hi) = Gpu::split(mem.ring_va);
        let (Some(ctl), Some(b0), Some(b1), Some(sz)) = (
            regs::Q_CONTROL::try_at(q),
            regs::Q_RING_BASE_LO::try_at(q),
            regs::Q_RING_BASE_HI::try_at(q),
            regs::Q_RING_SIZE::try_at(q),
        ) else {
            return;
        };
        bar.write(ctl, regs::Q_CONTROL::zeroed().with_reset(true));
        bar.write(b0, regs::Q_RING_BASE_LO::zeroed().with_value(lo));
        bar.write(b1, regs::Q_RING_BASE_HI::zeroed().with_value(hi));
        bar.write(
            sz,
            regs::Q_RING_SIZE::zeroed().with_bytes(RING_BYTES as u32),
        );
        if let Some(ctl) = regs::Q_CONTROL::try_at(q) {
            bar.write(ctl, regs::Q_CONTROL::zeroed().with_enable(true));
        }
    }

    fn set_slot(&self, bar: &Bar0<'_>, slot: usize) {
        if let Some(r) = regs::Q_AS::try_at(self.idx) {
            bar.write(r, regs::Q_AS::zeroed().with_slot(slot as u32));
        }
    }

    fn doorbell(&self, bar: &Bar0<'_>, tail: usize) {
        if let Some(r) = regs::Q_TAIL::try_at(self.idx) {
            bar.write(r, regs::Q_TAIL::zeroed().with_offset(tail as u32));
        }
    }

    fn job_dwords(mem: &QueueMem, job: &Job, seqno: u64) -> [u32; 9] {
        let (ib_lo, ib_hi) = Gpu::split(job.cmd_va);
        let (f_lo, f_hi) = Gpu::split(mem.fence_va);
        let (s_lo, s_hi) = Gpu::split(seqno);
        [
            cmd::header(cmd::CALL, 0, 4),
            ib_lo,
            ib_hi,
            job.cmd_size,
            cmd::header(
                cmd::WRITE64,
                cmd::W64_IRQ | cmd::W64_FLUSH | cmd::W64_SEQNO,
                5,
            ),
            f_lo,
            f_hi,
            s_lo,
            s_hi,
        ]
    }

    /// Signal the jobs the fence page says are done.
    pub(crate) fn complete(&self) {
        loop {
            let (done, released) = {
                let mut st = self.state.lock();
                let value = match st.owner.as_ref() {
                    Some(o) => o.mem.fence_value(),
                    None => return,
                };
                match st.inflight.first() {
                    Some(j) if j.seqno <= value => {
                        let ran = st.head_since.elapsed().as_nanos();
                        j.job.stats.engine_ns.add(ran.max(0) as u64, Relaxed);
                        st.head_since = Instant::now();
                        (st.inflight.remove(0).ok(), None)
                    }
                    _ => (None, Self::maybe_release(&mut st)),
                }
            };
            // Dropped outside the lock: the last reference to a queue may go.
            drop(released);
            let Some(done) = done else {
                return;
            };
            done.finish(None);
        }
    }

    /// Give the hardware queue up once its closed owner has no job left;
    /// returns the owner, to be dropped without the lock.
    fn maybe_release(st: &mut HwqState) -> Option<Arc<Queue>> {
        if st.inflight.is_empty() && st.owner.as_ref().is_some_and(|o| o.is_closed()) {
            st.reserved = false;
            return st.owner.take();
        }
        None
    }

    fn release_if_done(&self) {
        let owner = Self::maybe_release(&mut self.state.lock());
        drop(owner);
    }

    /// Fail the job at the head with `err` (recording `rec`), reset the
    /// queue and replay the jobs behind it.
    pub(crate) fn fail_head(&self, gpu: &Gpu, err: Error, rec: Record) {
        self.complete();
        let failed = {
            let mut st = self.state.lock();
            let Some(owner) = st.owner.as_ref() else {
                return;
            };
            let owner = owner.clone();
            let head_off = (st.tail + RING_BYTES * 2 - st.inflight.len() * JOB_BYTES % RING_BYTES)
                % RING_BYTES;
            let failed = if st.inflight.is_empty() {
                None
            } else {
                st.inflight.remove(0).ok()
            };
            if failed.is_some() {
                owner.record(rec);
            }
            // Replay the rest from the start of a fresh ring.
            let _ = gpu.io(|bar| {
                self.program(bar, &owner.mem);
                if let Some(s) = st.slot {
                    self.set_slot(bar, s);
                }
                let mut tail = 0;
                for j in st.inflight.iter() {
                    owner
                        .mem
                        .write_ring(tail, &Self::job_dwords(&owner.mem, &j.job, j.seqno));
                    tail = (tail + JOB_BYTES) % RING_BYTES;
                }
                st.tail = tail;
                if tail != 0 {
                    self.doorbell(bar, tail);
                }
                // The failed job never ran its final cache clean: write
                // back what it left dirty while its pages are still held,
                // and make sure it stopped, before its fence signals and
                // userspace may free what it used.
                crate::gpu::clean_cache(bar);
                crate::mmu::sync(bar);
            });
            st.head_since = Instant::now();
            drop(st);
            if let Some(f) = failed.as_ref() {
                if !gpu.is_dead() {
                    self.coredump(gpu, err, &rec, f, head_off, &owner);
                }
            }
            drop(owner);
            failed
        };
        if let Some(f) = failed {
            f.finish(Some(err));
        }
        self.release_if_done();
    }

    /// One line of debugfs `queues`.
    pub(crate) fn describe(&self, i: usize, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let st = self.state.lock();
        let (owner, done) = match st.owner.as_ref() {
            Some(o) => (o.vm.id as i64, o.mem.fence_value()),
            None => (-1, 0),
        };
        let slot = st.slot.map_or(-1, |s| s as i64);
        let head = st.inflight.first().map_or(0, |j| j.seqno);
        writeln!(
            f,
            "queue {i}: vm {owner} slot {slot} tail {:#x} inflight {} head seqno {head} completed {done}",
            st.tail,
            st.inflight.len(),
        )
    }

    /// Leave userspace a snapshot of a failure: the record, the failing
    /// job, the ring around it and the VM's mappings (no user memory).
    fn coredump(
        &self,
        gpu: &Gpu,
        err: Error,
        rec: &Record,
        failed: &Inflight,
        ring_off: usize,
        owner: &Queue,
    ) {
        use core::fmt::Write;
        let mut d = DumpBuf(VVec::new());
        let _ = writeln!(d, "ferrite coredump");
        let _ = writeln!(d, "device: {}", gpu.dev.name().to_str().unwrap_or("?"));
        let _ = writeln!(d, "queue: {} error: {:?}", self.idx, err);
        let _ = writeln!(
            d,
            "record: state {} q_error {} fault_addr {:#x} fault_status {:#x}",
            rec.state, rec.error, rec.fault_addr, rec.fault_status
        );
        let _ = writeln!(
            d,
            "job: seqno {} cmd_va {:#x} cmd_size {}",
            failed.seqno, failed.job.cmd_va, failed.job.cmd_size
        );
        let _ = writeln!(d, "ring at {:#x}:", ring_off);
        for i in 0..(JOB_BYTES / 4) {
            let _ = writeln!(d, "  {:08x}", owner.mem.read_ring(ring_off + 4 * i));
        }
        let _ = writeln!(d, "vm {} mappings:", failed.job.vm.id);
        if !failed.job.vm.try_for_each_mapping(|va, m| {
            let _ = m.write_line(&mut d, va);
        }) {
            let _ = writeln!(d, "  (not captured: the VM was being changed)");
        }
        kernel::devcoredump::dev_coredump(&gpu.dev, d.0);
    }

    /// The device is gone: fail every job.
    pub(crate) fn fail_all(&self, err: Error) {
        loop {
            let j = {
                let mut st = self.state.lock();
                if st.inflight.is_empty() {
                    let owner = st.owner.take();
                    st.reserved = false;
                    drop(st);
                    drop(owner);
                    return;
                }
                st.inflight.remove(0).ok()
            };
            let Some(j) = j else {
                return;
            };
            j.finish(Some(err));
        }
    }

    /// Whether the head job ran longer than its timeout; if not, when to
    /// look again.
    fn check_timeout(&self) -> (bool, Option<Delta>) {
        let st = self.state.lock();
        let Some(head) = st.inflight.first() else {
            return (false, None);
        };
        let ran = st.head_since.elapsed();
        if ran >= head.timeout {
            (true, None)
        } else {
            (
                false,
                Some(Delta::from_nanos(head.timeout.as_nanos() - ran.as_nanos())),
            )
        }
    }

    /// Reserve this queue for a user queue being created.
    fn reserve(&self) -> bool {
        let mut st = self.state.lock();
        if st.reserved {
            return false;
        }
        st.reserved = true;
        true
    }

    fn unreserve(&self) {
        self.state.lock().reserved = false;
    }

    fn set_owner(&self, owner: &Arc<Queue>) {
        let mut st = self.state.lock();
        st.owner = Some(owner.clone());
        st.tail = 0;
        st.slot = None;
    }
}

/// Run a pending watchdog check now and wait for it (at unbind: it will
/// not re-arm).
pub(crate) fn flush_watchdog(gpu: &Gpu) {
    let ptr: *const DelayedWork<Gpu> = &gpu.watchdog;
    // SAFETY: `DelayedWork` is a transparent wrapper of an initialised
    // `struct delayed_work`, which lives as long as `gpu`.
    unsafe { bindings::flush_delayed_work(ptr.cast_mut().cast()) };
}

impl_has_delayed_work! {
    impl HasDelayedWork<Gpu> for Gpu { self.watchdog }
}

impl WorkItem for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(gpu: Arc<Gpu>) {
        let mut next: Option<Delta> = None;
        for q in gpu.hwq.iter() {
            let (expired, wait) = q.check_timeout();
            if expired && !gpu.responds() {
                // Not a hang: the device is gone.
                gpu.lose();
                return;
            }
            if expired {
                gpu.stats.jobs_timedout.add(1, Relaxed);
                q.fail_head(
                    &gpu,
                    ETIMEDOUT,
                    Record {
                        state: uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_TIMEDOUT,
                        ..Record::default()
                    },
                );
                // The next job starts its own timeout.
                next = Some(Delta::from_millis(1));
            } else if let Some(w) = wait {
                next = Some(next.map_or(w, |n| n.min(w)));
            }
        }
        if let Some(n) = next {
            arm_watchdog(&gpu, WATCHDOG_PERIOD.min(n));
        }
    }
}

fn arm_watchdog(gpu: &Arc<Gpu>, after: Delta) {
    if gpu.is_dead() {
        return;
    }
    let ms = u32::try_from(after.as_millis_ceil().max(1)).unwrap_or(u32::MAX);
    // Already queued: it will look at this queue too.
    let _ = workqueue::system().enqueue_delayed(gpu.clone(), msecs_to_jiffies(ms));
}

/// A job waiting for its dependencies; as for [`Inflight`], `job` comes
/// before `fence`.
struct Pending {
    job: Job,
    fence: SignalFence,
    deps: KVec<ARef<Fence>>,
}

impl Pending {
    /// The job fails before it reached the hardware: its memory goes back
    /// to the CPU, then its fence signals `err`.
    fn fail(mut self, err: Error) {
        self.job.userptrs.release();
        self.fence.signal_error(err);
    }
}

struct SubState {
    next_seqno: u64,
    pending: KVec<Pending>,
    /// The worker holds a job it took from `pending`.
    busy: bool,
}

/// A user queue.
#[pin_data]
pub(crate) struct Queue {
    gpu: Arc<Gpu>,
    pub(crate) vm: Arc<Vm>,
    pub(crate) hwq: usize,
    mem: Arc<QueueMem>,
    ctx: FenceContext<QueueTimeline>,
    timeout: Delta,
    closed: Atomic<bool>,
    #[pin]
    sub: Mutex<SubState>,
    #[pin]
    rec: SpinLock<Record>,
    #[pin]
    work: Work<Queue>,
}

impl_has_work! {
    impl HasWork<Queue> for Queue { self.work }
}

impl Queue {
    /// Create a queue on `vm`, claiming a free hardware queue (`EBUSY` if
    /// none is free).
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        vm: &Arc<Vm>,
        dev: &Device<Bound>,
        timeout_ms: u32,
    ) -> Result<Arc<Self>> {
        let timeout_ms = if timeout_ms == 0 {
            DEFAULT_TIMEOUT_MS
        } else {
            timeout_ms
        };
        // Claimed first: a queue that cannot get one costs no memory (the
        // VM would keep its ring until it goes).
        let hwq = gpu.hwq.iter().position(|h| h.reserve()).ok_or(EBUSY)?;
        let mem = Self::new_mem(gpu, vm, dev).inspect_err(|_| gpu.hwq[hwq].unreserve())?;
        let q = Arc::pin_init(
            try_pin_init!(Self {
                gpu: gpu.clone(),
                vm: vm.clone(),
                hwq,
                mem,
                ctx: FenceContext::new(),
                timeout: Delta::from_millis(i64::from(timeout_ms)),
                closed: Atomic::new(false),
                sub <- new_mutex!(SubState {
                    next_seqno: 1,
                    pending: KVec::new(),
                    busy: false,
                }),
                rec <- new_spinlock!(Record::default()),
                work <- new_work!("ferrite::queue"),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| gpu.hwq[hwq].unreserve())?;
        gpu.hwq[hwq].set_owner(&q);
        if let Err(e) = gpu.io(|bar| gpu.hwq[hwq].program(bar, &q.mem)) {
            q.close();
            return Err(e);
        }
        Ok(q)
    }

    /// The ring and fence page of a new queue, mapped in `vm`'s kernel
    /// region.
    fn new_mem(gpu: &Arc<Gpu>, vm: &Arc<Vm>, dev: &Device<Bound>) -> Result<Arc<QueueMem>> {
        let ring = Coherent::<u32>::zeroed_slice(dev, RING_BYTES / 4, GFP_KERNEL)?;
        let fence = Coherent::<u64>::zeroed_slice(dev, 512, GFP_KERNEL)?;
        let (ring_bus, fence_bus) = (ring.dma_address(), fence.dma_address());
        let ring_va = vm.reserve_kernel_va(RING_BYTES as u64)?;
        let fence_va = vm.reserve_kernel_va(4096)?;
        let mem = QueueMem {
            gpu: gpu.clone(),
            ring: Devres::new(dev, ring)?,
            fence: Devres::new(dev, fence)?,
            ring_va,
            fence_va,
        };
        // Counted until `QueueMem::drop`.
        gpu.stats
            .kmap_kernel_bytes
            .add((RING_BYTES + 4096) as u64, Relaxed);
        let mem = Arc::new(mem, GFP_KERNEL)?;
        // The VM keeps the memory alive until it goes, so that no entry of
        // the maps below (even of one that failed half-way) outlives it.
        vm.kernel_objs.lock().push(mem.clone(), GFP_KERNEL)?;
        vm.map_kernel(dev, ring_va, ring_bus, RING_BYTES as u64, false)?;
        vm.map_kernel(dev, fence_va, fence_bus, 4096, true)?;
        Ok(mem)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    fn record(&self, rec: Record) {
        let mut r = self.rec.lock();
        if r.state == uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_OK {
            let failed = r.failed_jobs;
            *r = rec;
            r.failed_jobs = failed;
        }
        r.failed_jobs += 1;
    }

    /// The failure record; `clear` resets it.
    pub(crate) fn state(&self, clear: bool) -> Record {
        let mut r = self.rec.lock();
        let out = *r;
        if clear {
            *r = Record::default();
        }
        out
    }

    /// Queue a job; returns its fence.
    pub(crate) fn submit(
        self: &Arc<Self>,
        job: Job,
        deps: KVec<ARef<Fence>>,
    ) -> Result<ARef<Fence>> {
        if self.is_closed() || self.gpu.is_dead() {
            return Err(ENODEV);
        }
        let mut sub = self.sub.lock();
        let seqno = sub.next_seqno;
        let fence = self.ctx.fence(seqno, GFP_KERNEL)?;
        let out = fence.fence();
        sub.next_seqno += 1;
        self.gpu.stats.jobs_submitted.add(1, Relaxed);
        // Fast path: nothing to wait for and nothing queued before it: put
        // the job on the ring now (the `sub` lock keeps the order with the
        // worker), saving the hop through the work queue.
        let ready =
            !sub.busy && sub.pending.is_empty() && deps.iter().all(|d| d.status() == Ok(true));
        if ready {
            if let Err((p, e)) = self.emit(Pending {
                job,
                fence,
                deps: KVec::new(),
            }) {
                p.fail(e);
            }
            return Ok(out);
        }
        sub.pending.push(Pending { job, fence, deps }, GFP_KERNEL)?;
        drop(sub);
        let _ = workqueue::system_unbound().enqueue(self.clone());
        Ok(out)
    }

    /// Stop accepting jobs, cancel the ones not yet on the hardware; the
    /// running ones finish or time out.
    pub(crate) fn close(self: &Arc<Self>) {
        self.closed.store(true, Relaxed);
        let pending = core::mem::take(&mut self.sub.lock().pending);
        drop(pending);
        // Wait for the worker to stop using the queue.
        let ptr: *const Work<Queue> = &self.work;
        // SAFETY: `Work` wraps an initialised `struct work_struct` that lives
        // as long as `self`.
        unsafe { bindings::flush_work(Work::raw_get(ptr)) };
        self.gpu.hwq[self.hwq].release_if_done();
    }

    /// Wait for `dep`, giving up if the queue closes or the device goes.
    fn wait_dep(&self, dep: &Fence) -> Result {
        loop {
            if self.is_closed() || self.gpu.is_dead() {
                return Err(ECANCELED);
            }
            if dep.wait(false, Some(msecs_to_jiffies(100)))? {
                return dep.status().map(|_| ());
            }
        }
    }

    /// Put a job on the hardware, waiting for a slot or ring space.
    fn emit(self: &Arc<Self>, p: Pending) -> core::result::Result<(), (Pending, Error)> {
        let gpu = &self.gpu;
        let h = &gpu.hwq[self.hwq];
        loop {
            if self.is_closed() || gpu.is_dead() {
                return Err((p, ECANCELED));
            }
            // Ring space: wait for the oldest job if the queue is full.
            let oldest = {
                let st = h.state.lock();
                if st.inflight.len() >= MAX_INFLIGHT {
                    st.inflight.first().map(|j| j.fence.fence())
                } else {
                    None
                }
            };
            if let Some(f) = oldest {
                let _ = f.wait(false, Some(msecs_to_jiffies(100)));
                continue;
            }
            let slot = match gpu.activate(&p.job.vm.hw) {
                Ok(s) => s,
                Err(e) if e == EBUSY => {
                    // Every slot runs jobs: wait for one to finish.
                    kernel::time::delay::fsleep(Delta::from_micros(200));
                    continue;
                }
                Err(e) => return Err((p, e)),
            };
            let mut st = h.state.lock();
            let seqno = p.fence.seqno();
            let need_slot = st.slot != Some(slot);
            let was_idle = st.inflight.is_empty();
            if st.inflight.reserve(1, GFP_ATOMIC).is_err() {
                drop(st);
                p.job.vm.hw.job_done();
                return Err((p, ENOMEM));
            }
            let dwords = HwQueue::job_dwords(&self.mem, &p.job, seqno);
            let tail = st.tail;
            self.mem.write_ring(tail, &dwords);
            let new_tail = (tail + JOB_BYTES) % RING_BYTES;
            // Cannot fail: reserved above.
            let _ = st.inflight.push_within_capacity(Inflight {
                seqno,
                fence: p.fence,
                job: p.job,
                timeout: self.timeout,
            });
            st.tail = new_tail;
            st.slot = Some(slot);
            if was_idle {
                st.head_since = Instant::now();
            }
            let r = gpu.io(|bar| {
                if need_slot {
                    h.set_slot(bar, slot);
                }
                h.doorbell(bar, new_tail);
            });
            drop(st);
            // The device went away (unbind, or lost) while the job went on
            // the ring: whoever failed the jobs may have missed it.
            if r.is_err() || gpu.is_dead() {
                h.fail_all(ENODEV);
            }
            arm_watchdog(gpu, WATCHDOG_PERIOD.min(self.timeout));
            return Ok(());
        }
    }

    /// Fault handling for the job interrupt: read why queue `q` stopped.
    pub(crate) fn read_error(gpu: &Gpu, bar: &Bar0<'_>, q: usize) -> (Error, Record) {
        let h = &gpu.hwq[q];
        let code = regs::Q_ERROR::try_at(q).map_or(0, |r| bar.read(r).code().into());
        let mut rec = Record {
            state: uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_ERROR,
            error: code,
            ..Record::default()
        };
        let mut err = EIO;
        if code == regs::Q_ERROR_MMU_FAULT {
            if let Some(s) = h.state.lock().slot {
                let f = mmu::read_fault(bar, s);
                rec.fault_addr = f.addr;
                rec.fault_status = f.status;
            }
            rec.state = uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_FAULTED;
            err = EFAULT;
            gpu.stats.faults.add(1, Relaxed);
        }
        (err, rec)
    }
}

impl WorkItem for Queue {
    type Pointer = Arc<Queue>;

    fn run(this: Arc<Queue>) {
        loop {
            let p = {
                let mut sub = this.sub.lock();
                sub.busy = false;
                if sub.pending.is_empty() {
                    return;
                }
                sub.busy = true;
                sub.pending.remove(0).ok()
            };
            let Some(p) = p else {
                return;
            };
            let mut dep_err = None;
            for d in p.deps.iter() {
                if let Err(e) = this.wait_dep(d) {
                    dep_err = Some(e);
                    break;
                }
            }
            if let Some(e) = dep_err {
                // A failed dependency fails the job, as drm_sched does.
                p.fail(e);
                continue;
            }
            if let Err((p, e)) = this.emit(p) {
                p.fail(e);
            }
        }
    }
}
