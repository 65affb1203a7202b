// SPDX-License-Identifier: GPL-2.0

//! Queues and jobs.
//!
//! A queue is a stream of jobs in one VM, with a priority. It does not own
//! a hardware ring: the scheduler ([`crate::sched`]) lends it one while it
//! has work, and takes it back (suspending the queue, even in the middle
//! of a job) to give it to a queue of a higher priority, or to the next
//! queue of the same priority when a timeslice ends.
//!
//! SUBMIT queues a job with its dependencies. A job whose dependencies
//! have signalled, and whose predecessors are on the ring, is written to
//! the queue's ring buffer at once: from SUBMIT itself when nothing is in
//! its way, else from the queue's work item, which a fence callback on the
//! first unsignalled dependency queues (no polling). If the queue holds a
//! hardware ring, one doorbell write starts the job; if not, the queue
//! becomes runnable and the scheduler gives it a ring.
//!
//! The job interrupt signals completed fences (inside a fence-signalling
//! section: no allocation, no lock held elsewhere while allocating); see
//! [`crate::recovery`] for failures and timeouts and [`crate::coredump`]
//! for what a failure leaves userspace.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma_fence::{
        Fence,
        FenceCallback,
        FenceContext,
        FenceTimeline,
        SignalFence, //
    },
    impl_has_fence_callback,
    impl_has_work,
    list::{
        AtomicTracker,
        ListLinks,
        TryNewListArc, //
    },
    new_mutex,
    new_spinlock,
    new_work,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        LockedBy,
        Mutex,
        SpinLock, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    uapi,
    workqueue::{
        self,
        Work,
        WorkItem, //
    }, //
};

use crate::{
    coredump::DumpInfo,
    gem::Bo,
    gpu::Gpu,
    ring::{
        self,
        HwRing,
        QueueMem,
        JOB_BYTES,
        RING_BYTES, //
    },
    sched::{
        self,
        Priority,
        Sched, //
    },
    userptr::DeviceLease,
    vm::Vm, //
};

/// Jobs on a queue's ring buffer at once (the ring holds more).
pub(crate) const MAX_INFLIGHT: usize = 256;

// The ring holds them all: a full ring would look empty to the device
// (it runs while HEAD differs from TAIL), and `ring::first_job` would not
// find the oldest.
static_assert!(MAX_INFLIGHT * JOB_BYTES < RING_BYTES);

/// Default job timeout.
pub(crate) const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// Largest timeout userspace may ask for.
pub(crate) const MAX_TIMEOUT_MS: u32 = 60_000;

/// Names of Ferrite job fences.
pub(crate) struct QueueTimeline;

impl FenceTimeline for QueueTimeline {
    const DRIVER_NAME: &'static CStr = c"ferrite";
    const TIMELINE_NAME: &'static CStr = c"ferrite-queue";
}

/// Per-file usage, for fdinfo.
pub(crate) struct FileStats {
    /// Nanoseconds the file's jobs ran on a hardware ring.
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

/// A job: a command buffer in a VM, and what it keeps alive.
pub(crate) struct Job {
    pub(crate) vm: Arc<Vm>,
    pub(crate) cmd_va: u64,
    pub(crate) cmd_size: u32,
    /// BOs of the job (implicit sync), held until it completes.
    pub(crate) _bos: KVec<ARef<Bo>>,
    /// The userptr pages the job may use, owned by the device until it ends.
    pub(crate) userptrs: DeviceLease,
    /// The VM's [`crate::mmu::VmAs::gen`] before the userptrs were leased.
    pub(crate) gen: u64,
}

/// A job on the queue's ring buffer. `job` comes before `fence`: dropped
/// without an explicit signal, it still gives its memory back before the
/// fence signals (cancelled).
pub(crate) struct Inflight {
    pub(crate) seqno: u64,
    pub(crate) job: Job,
    fence: SignalFence,
}

impl Inflight {
    /// The job is over, done (`err` is `None`) or failed: what it wrote
    /// goes back to the CPU, then its fence signals, so a waiter sees the
    /// data. Needs no memory and takes no lock held while allocating: the
    /// job itself (its BOs, its VM: their last references may go with it)
    /// is let go by `q`'s reaper work item, not here.
    pub(crate) fn finish(mut self, q: &Arc<Queue>, err: Option<Error>) {
        self.job.userptrs.release();
        self.job.vm.hw.job_done();
        let Inflight { job, fence, .. } = self;
        // Cannot fail: `emit` made room for every job on the ring buffer.
        let _ = q.graveyard.lock().push_within_capacity(job);
        match err {
            None => fence.signal(),
            Some(e) => fence.signal_error(e),
        }
        let _ = workqueue::system().enqueue::<_, 2>(q.clone());
    }
}

/// A job waiting for its dependencies; as for [`Inflight`], `job` comes
/// before `fence`.
struct Pending {
    job: Job,
    fence: SignalFence,
    /// Dependencies not yet seen signalled (checked from the end).
    deps: KVec<Dep>,
}

/// A job's dependency.
pub(crate) struct Dep {
    pub(crate) fence: ARef<Fence>,
    /// Whether the fence's error fails the job: for the fences it was told
    /// to wait for (WAIT sync ops), not for the implicit fences of its BOs.
    /// A job that failed on a shared buffer must not fail every later
    /// user of that buffer, in this process or another, one after the
    /// other.
    pub(crate) explicit: bool,
}

impl Pending {
    /// The job fails before it reached the hardware: its memory goes back
    /// to the CPU, then its fence signals `err`.
    fn fail(mut self, err: Error) {
        self.job.userptrs.release();
        self.fence.signal_error(err);
    }
}

/// Where a queue is, for the scheduler.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Where {
    /// Nothing on its ring buffer runs or waits for a ring.
    Idle,
    /// In the scheduler's runnable list of its priority.
    Runnable,
    /// On hardware ring `.0`.
    Resident(usize),
    /// On hardware ring `.0`, which was asked to suspend it.
    Suspending(usize),
}

/// A queue's state on the hardware, protected by the scheduler's lock.
pub(crate) struct QueueHw {
    /// The ring buffer, held while the queue has jobs or a ring.
    pub(crate) mem: Option<Arc<QueueMem>>,
    /// Ring offset where the next job goes.
    pub(crate) tail: usize,
    /// Jobs written to the ring buffer, oldest first.
    pub(crate) inflight: KVec<Inflight>,
    /// Jobs submitted and not ended (waiting for dependencies or inflight).
    pub(crate) jobs: u32,
    pub(crate) at: Where,
    /// The ring buffer's context was saved by the device in the middle
    /// of the queue's work: restore it as it is.
    pub(crate) saved: bool,
    /// Seqno of the last job that ended.
    pub(crate) last_done: u64,
    /// When the head job's current stretch on a ring started.
    pub(crate) since: Instant<Monotonic>,
    /// Time on a ring of the head job before `since`.
    pub(crate) head_ran_ns: i64,
    /// Saves the device made inside one of the queue's command buffers.
    pub(crate) preemptions: u32,
    /// A job is ready but the ring buffer is full: queue the work item
    /// when a job ends.
    pub(crate) want_room: bool,
    /// SUBMIT fails with `ECANCELED` (a fatal error).
    pub(crate) banned: bool,
}

impl QueueHw {
    /// Ring offset of the oldest inflight job.
    pub(crate) fn head_off(&self) -> usize {
        ring::first_job(self.tail, self.inflight.len())
    }

    /// Take the job at the head off the ring buffer: it ended (done or
    /// failed); the next one starts its own time on a ring.
    pub(crate) fn pop_head(&mut self) -> Option<Inflight> {
        if self.inflight.is_empty() {
            return None;
        }
        let j = self.inflight.remove(0).ok()?;
        self.jobs = self.jobs.saturating_sub(1);
        self.last_done = j.seqno;
        self.head_ran_ns = 0;
        Some(j)
    }

    /// Charge the time since `since` to the head job, the queue and its
    /// file.
    pub(crate) fn charge(&mut self, q: &Queue, now: Instant<Monotonic>) {
        if self.inflight.is_empty() {
            self.since = now;
            return;
        }
        let ran = (now - self.since).as_nanos().max(0);
        q.stats.engine_ns.add(ran as u64, Relaxed);
        q.ring_ns.add(ran as u64, Relaxed);
        q.vtime.add(ran as u64, Relaxed);
        self.head_ran_ns += ran;
        self.since = now;
    }

    /// Write every inflight job again from the start of the ring buffer
    /// (after a reset: nothing of theirs ran).
    pub(crate) fn rewrite(&mut self) {
        let Some(mem) = self.mem.as_ref() else {
            return;
        };
        let mut tail = 0;
        for j in self.inflight.iter() {
            mem.write_job(tail, j.job.cmd_va, j.job.cmd_size, j.seqno);
            tail = ring::next_job(tail);
        }
        self.tail = tail;
        self.saved = false;
        self.head_ran_ns = 0;
    }

    /// The queue is off the hardware: give the ring buffer back if it has
    /// no job left.
    pub(crate) fn maybe_put_mem(&mut self) {
        if self.jobs == 0 && self.at == Where::Idle {
            if let Some(m) = self.mem.take() {
                m.put();
            }
        }
    }
}

impl Drop for QueueHw {
    fn drop(&mut self) {
        // The VM keeps the ring buffer: it can be lent again.
        if let Some(m) = self.mem.take() {
            m.put();
        }
    }
}

/// Room for one job on a queue ([`Queue::prepare`]); given back if the job
/// is not submitted.
pub(crate) struct JobSlot<'a> {
    q: &'a Arc<Queue>,
    used: bool,
}

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.q.unhold();
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
    /// `enum drm_ferrite_queue_reset`.
    pub(crate) reset: u32,
    pub(crate) faults: u32,
}

/// What QUEUE_GET_STATE reports.
pub(crate) struct StateOut {
    pub(crate) rec: Record,
    pub(crate) banned: bool,
    pub(crate) preemptions: u32,
    pub(crate) ring_ns: u64,
}

struct SubState {
    next_seqno: u64,
    /// Jobs not yet on the ring buffer, in submission order.
    pending: KVec<Pending>,
    /// The fence `dep_cb` was last registered on.
    armed: Option<ARef<Fence>>,
}

/// A user queue.
///
/// # Locks
///
/// - `sub`: the jobs waiting for dependencies; held while a job goes to
///   the ring buffer, so jobs go in submission order. Taken before the
///   scheduler's lock.
/// - `hw`: belongs to the scheduler's lock ([`Gpu::sched`]).
/// - `rec`, `dump`: leaf spinlocks.
#[pin_data]
pub(crate) struct Queue {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) vm: Arc<Vm>,
    /// A device-wide id, for debugfs.
    pub(crate) id: u64,
    pub(crate) prio: Priority,
    /// Errors ban the queue (`DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL`).
    pub(crate) fatal: bool,
    /// Longest time a job may spend on a ring.
    pub(crate) timeout: Delta,
    pub(crate) stats: Arc<FileStats>,
    /// Time the queue's jobs spent on a ring.
    pub(crate) ring_ns: Atomic<u64>,
    /// Ring time for fair shares (see [`sched::make_runnable`]).
    pub(crate) vtime: Atomic<u64>,
    ctx: FenceContext<QueueTimeline>,
    closed: Atomic<bool>,
    pub(crate) hw: LockedBy<QueueHw, Sched>,
    #[pin]
    sub: Mutex<SubState>,
    #[pin]
    rec: SpinLock<Record>,
    /// What the coredump of the last failure shows, until it is written.
    #[pin]
    pub(crate) dump: SpinLock<Option<DumpInfo>>,
    /// Jobs that ended, to be dropped by `reap_work` (outside the
    /// fence-signalling path); room for every job on the ring buffer is
    /// reserved when it goes there.
    #[pin]
    graveyard: SpinLock<KVec<Job>>,
    #[pin]
    reap_work: Work<Queue, 2>,
    #[pin]
    work: Work<Queue, 0>,
    #[pin]
    pub(crate) dump_work: Work<Queue, 1>,
    /// Registered on the first unsignalled dependency of the oldest job.
    #[pin]
    dep_cb: FenceCallback,
    /// In one of the scheduler's lists (runnable, or to be dropped).
    #[pin]
    links: ListLinks<0>,
    #[pin]
    tracker: AtomicTracker<0>,
}

impl_has_work! {
    impl HasWork<Queue, 0> for Queue { self.work }
    impl HasWork<Queue, 1> for Queue { self.dump_work }
    impl HasWork<Queue, 2> for Queue { self.reap_work }
}

impl_has_fence_callback! {
    impl HasFenceCallback for Queue { self.dep_cb }
}

kernel::list::impl_list_arc_safe! {
    impl ListArcSafe<0> for Queue { tracked_by tracker: AtomicTracker<0>; }
}

kernel::list::impl_list_item! {
    impl ListItem<0> for Queue { using ListLinks { self.links }; }
}

impl Queue {
    /// Create a queue on `vm`. It costs no ring and no DMA memory until it
    /// has a job.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        vm: &Arc<Vm>,
        stats: &Arc<FileStats>,
        prio: Priority,
        fatal: bool,
        timeout_ms: u32,
    ) -> Result<Arc<Self>> {
        let timeout_ms = if timeout_ms == 0 {
            DEFAULT_TIMEOUT_MS
        } else {
            timeout_ms
        };
        Arc::pin_init(
            try_pin_init!(Self {
                gpu: gpu.clone(),
                vm: vm.clone(),
                id: gpu.new_id(),
                prio,
                fatal,
                timeout: Delta::from_millis(i64::from(timeout_ms)),
                stats: stats.clone(),
                ring_ns: Atomic::new(0),
                vtime: Atomic::new(0),
                ctx: FenceContext::new(),
                closed: Atomic::new(false),
                hw: LockedBy::new(
                    &gpu.sched,
                    QueueHw {
                        mem: None,
                        tail: 0,
                        inflight: KVec::new(),
                        jobs: 0,
                        at: Where::Idle,
                        saved: false,
                        last_done: 0,
                        since: Instant::now(),
                        head_ran_ns: 0,
                        preemptions: 0,
                        want_room: false,
                        banned: false,
                    }
                ),
                sub <- new_mutex!(SubState {
                    next_seqno: 1,
                    pending: KVec::new(),
                    armed: None,
                }),
                rec <- new_spinlock!(Record::default()),
                dump <- new_spinlock!(None),
                graveyard <- new_spinlock!(KVec::new()),
                reap_work <- new_work!("ferrite::reap"),
                work <- new_work!("ferrite::queue"),
                dump_work <- new_work!("ferrite::coredump"),
                dep_cb <- FenceCallback::new(),
                links <- ListLinks::new(),
                tracker <- AtomicTracker::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Record a failure of one of the queue's jobs.
    pub(crate) fn record(&self, rec: Record, guilty: bool) {
        let mut r = self.rec.lock();
        if r.state == uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_OK {
            let (failed, reset, faults) = (r.failed_jobs, r.reset, r.faults);
            *r = rec;
            r.failed_jobs = failed;
            r.reset = reset;
            r.faults = faults;
        }
        r.failed_jobs += 1;
        if rec.state == uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_FAULTED {
            r.faults += 1;
        }
        if guilty {
            r.reset = uapi::drm_ferrite_queue_reset_DRM_FERRITE_QUEUE_RESET_GUILTY;
        }
    }

    /// A job of the queue was lost to a reset it did not cause.
    pub(crate) fn record_innocent(&self) {
        let mut r = self.rec.lock();
        if r.reset != uapi::drm_ferrite_queue_reset_DRM_FERRITE_QUEUE_RESET_GUILTY {
            r.reset = uapi::drm_ferrite_queue_reset_DRM_FERRITE_QUEUE_RESET_INNOCENT;
        }
        r.failed_jobs += 1;
    }

    /// The failure record; `clear` resets it (not the counts of faults,
    /// nor a ban).
    pub(crate) fn state(&self, clear: bool) -> StateOut {
        let (banned, preemptions) = {
            let mut s = self.gpu.sched.lock();
            let hw = self.hw.access_mut(&mut s);
            (hw.banned, hw.preemptions)
        };
        let ring_ns = self.ring_ns.load(Relaxed);
        let mut r = self.rec.lock();
        let out = *r;
        if clear {
            *r = Record {
                faults: r.faults,
                ..Record::default()
            };
        }
        StateOut {
            rec: out,
            banned,
            preemptions,
            ring_ns,
        }
    }

    /// Make room for one more job: the queue holds a ring buffer (allocated
    /// for `dev` if it had none) until the job ends or the slot is dropped.
    pub(crate) fn prepare(self: &Arc<Self>, dev: &Device<Bound>) -> Result<JobSlot<'_>> {
        if self.is_closed() || self.gpu.is_dead() {
            return Err(ENODEV);
        }
        self.hold_mem(dev)?;
        Ok(JobSlot {
            q: self,
            used: false,
        })
    }

    /// Queue a job in the room `slot` made; returns its fence, and whether
    /// the caller must run the scheduler ([`sched::schedule`], once it
    /// holds no reservation lock: the scheduler takes the slot lock).
    pub(crate) fn submit(
        self: &Arc<Self>,
        mut slot: JobSlot<'_>,
        job: Job,
        deps: KVec<Dep>,
    ) -> Result<(ARef<Fence>, bool)> {
        if self.is_closed() || self.gpu.is_dead() {
            return Err(ENODEV);
        }
        let mut sub = self.sub.lock();
        let fence = self.ctx.fence(sub.next_seqno, GFP_KERNEL)?;
        sub.pending.reserve(1, GFP_KERNEL)?;
        // The job is the queue's now: it ends through `emit`/`fail_pending`.
        slot.used = true;
        let out = fence.fence();
        sub.next_seqno += 1;
        self.gpu.stats.jobs_submitted.add(1, Relaxed);
        let mut p = Pending { job, fence, deps };
        p.deps
            .retain(|d| !(d.fence.is_signaled() && (!d.explicit || d.fence.status().is_ok())));
        // Fast path: nothing to wait for and nothing queued before it: put
        // the job on the ring buffer now (the `sub` lock keeps the order
        // with the work item).
        if sub.pending.is_empty() && p.deps.is_empty() {
            let mut run = false;
            match self.emit(p) {
                Ok(r) => run = r,
                Err((p, None)) => {
                    let _ = sub.pending.push_within_capacity(p);
                }
                Err((p, Some(e))) => {
                    drop(sub);
                    self.fail_pending(p, e);
                }
            }
            return Ok((out, run));
        }
        // Cannot fail: reserved above.
        let _ = sub.pending.push_within_capacity(p);
        drop(sub);
        let _ = workqueue::system_unbound().enqueue::<_, 0>(self.clone());
        Ok((out, false))
    }

    /// One job less, before it was queued.
    fn unhold(&self) {
        let mut s = self.gpu.sched.lock();
        let hw = self.hw.access_mut(&mut s);
        hw.jobs = hw.jobs.saturating_sub(1);
        hw.maybe_put_mem();
    }

    /// Count one more job, making sure the queue holds a ring buffer.
    fn hold_mem(self: &Arc<Self>, dev: &Device<Bound>) -> Result {
        let gpu = &self.gpu;
        {
            let mut s = gpu.sched.lock();
            let hw = self.hw.access_mut(&mut s);
            if hw.banned {
                return Err(ECANCELED);
            }
            if hw.mem.is_some() {
                hw.jobs += 1;
                return Ok(());
            }
        }
        let mem = QueueMem::get(gpu, &self.vm, dev)?;
        let mut s = gpu.sched.lock();
        let hw = self.hw.access_mut(&mut s);
        if hw.mem.is_some() {
            mem.put();
        } else {
            // A fresh ring buffer: it starts at offset 0, with the fence
            // word at the last seqno that ended.
            mem.set_fence_value(hw.last_done);
            hw.mem = Some(mem);
            hw.tail = 0;
            hw.saved = false;
        }
        hw.jobs += 1;
        Ok(())
    }

    /// A job that never reached the ring buffer fails.
    fn fail_pending(&self, p: Pending, err: Error) {
        {
            let mut s = self.gpu.sched.lock();
            let hw = self.hw.access_mut(&mut s);
            hw.jobs = hw.jobs.saturating_sub(1);
            hw.last_done = hw.last_done.max(p.fence.seqno());
            hw.maybe_put_mem();
        }
        p.fail(err);
    }

    /// Stop accepting jobs, cancel the ones not yet on the ring buffer;
    /// the others run to their end (or time out).
    pub(crate) fn close(self: &Arc<Self>) {
        self.closed.store(true, Relaxed);
        let (pending, armed) = {
            let mut sub = self.sub.lock();
            (core::mem::take(&mut sub.pending), sub.armed.take())
        };
        // A pending dependency callback holds a reference: take it back.
        if let Some(f) = armed {
            drop(f.remove_callback(self));
        }
        for p in pending {
            self.fail_pending(p, ECANCELED);
        }
        // Wait for the work item to stop using the queue.
        let ptr: *const Work<Queue, 0> = &self.work;
        // SAFETY: `Work` wraps an initialised `struct work_struct` that lives
        // as long as `self`.
        unsafe { kernel::bindings::flush_work(Work::raw_get(ptr)) };
        sched::queue_closed(&self.gpu, self);
        // The jobs that ended let go of their BOs now, not later: closing a
        // file frees what only its jobs held (the reaper may be dropping
        // some: wait for it).
        let ended = core::mem::take(&mut *self.graveyard.lock());
        drop(ended);
        let reap: *const Work<Queue, 2> = &self.reap_work;
        // SAFETY: as above.
        unsafe { kernel::bindings::flush_work(Work::raw_get(reap)) };
    }

    /// Put a ready job on the ring buffer and start it: one doorbell write
    /// if the queue holds a ring, else the queue becomes runnable and the
    /// caller runs the scheduler (`Ok(true)`). Gives the job back with
    /// `None` if the ring buffer is full.
    fn emit(self: &Arc<Self>, p: Pending) -> core::result::Result<bool, (Pending, Option<Error>)> {
        let gpu = &self.gpu;
        if self.is_closed() || gpu.is_dead() {
            return Err((p, Some(ECANCELED)));
        }
        let mut s = gpu.sched.lock();
        let hw = self.hw.access_mut(&mut s);
        if hw.banned {
            return Err((p, Some(ECANCELED)));
        }
        // A userptr invalidation gave up waiting for the VM's jobs after
        // this one leased its pages: they may be another mapping's now.
        // Checked under the scheduler's lock, which `stop_vm` takes after
        // bumping the generation: a job either fails here or is on the
        // ring buffer when `stop_vm` looks.
        if p.job.gen != p.job.vm.hw.gen.load(Relaxed) {
            return Err((p, Some(ECANCELED)));
        }
        if hw.inflight.len() >= MAX_INFLIGHT {
            hw.want_room = true;
            return Err((p, None));
        }
        let Some(mem) = hw.mem.clone() else {
            return Err((p, Some(ENODEV)));
        };
        if hw.inflight.reserve(1, GFP_ATOMIC).is_err() {
            return Err((p, Some(ENOMEM)));
        }
        {
            // Room for this job and every other one on the ring buffer.
            if self
                .graveyard
                .lock()
                .reserve(hw.inflight.len() + 1, GFP_ATOMIC)
                .is_err()
            {
                return Err((p, Some(ENOMEM)));
            }
        }
        let seqno = p.fence.seqno();
        mem.write_job(hw.tail, p.job.cmd_va, p.job.cmd_size, seqno);
        hw.tail = ring::next_job(hw.tail);
        if hw.inflight.is_empty() {
            hw.since = Instant::now();
            hw.head_ran_ns = 0;
        }
        p.job.vm.hw.job_started();
        // Cannot fail: reserved above.
        let _ = hw.inflight.push_within_capacity(Inflight {
            seqno,
            job: p.job,
            fence: p.fence,
        });
        crate::recovery::arm_watchdog(gpu, self.timeout);
        match hw.at {
            Where::Resident(r) => {
                let tail = hw.tail;
                let r = gpu.try_io(|bar| HwRing(r).doorbell(bar, tail));
                drop(s);
                // The device went away (unbind, or lost) while the job went
                // on the ring: whoever failed the jobs may have missed it.
                if r.is_err() || gpu.is_dead() {
                    crate::recovery::fail_all(gpu, ENODEV);
                }
                return Ok(false);
            }
            Where::Idle => sched::make_runnable(&mut s, self),
            Where::Runnable | Where::Suspending(_) => {}
        }
        drop(s);
        Ok(true)
    }

    /// Jobs ended and the ring buffer has room again: let the work item
    /// emit what waits.
    pub(crate) fn room(self: &Arc<Self>) {
        let _ = workqueue::system_unbound().enqueue::<_, 0>(self.clone());
    }
}

impl kernel::dma_fence::FenceCallbackHandler for Queue {
    /// A dependency of the oldest waiting job signalled: look again (from
    /// the signaller's context: only queue the work item).
    fn signalled(this: Arc<Self>) {
        let _ = workqueue::system_unbound().enqueue::<_, 0>(this);
    }
}

impl WorkItem<0> for Queue {
    type Pointer = Arc<Queue>;

    fn run(this: Arc<Queue>) {
        loop {
            let mut sub = this.sub.lock();
            // `dep_cb` is free to register again once its fence signalled
            // and the callback ran (or was removed): removing it takes the
            // fence's lock, under which the callback runs.
            if let Some(f) = sub.armed.take() {
                if !f.is_signaled() {
                    sub.armed = Some(f);
                    return;
                }
                drop(f.remove_callback(&this));
            }
            let Some(p) = sub.pending.first_mut() else {
                return;
            };
            // Dependencies that signalled; a failed one fails the job, as
            // drm_sched does.
            let mut failed = None;
            while let Some(d) = p.deps.last() {
                if !d.fence.is_signaled() {
                    break;
                }
                if let (true, Err(e)) = (d.explicit, d.fence.status()) {
                    failed = Some(e);
                    break;
                }
                p.deps.pop();
            }
            if let Some(e) = failed {
                if let Ok(p) = sub.pending.remove(0) {
                    drop(sub);
                    this.fail_pending(p, e);
                }
                continue;
            }
            if let Some(d) = p.deps.last() {
                let d = d.fence.clone();
                match d.add_callback(this.clone()) {
                    // Called back when it signals.
                    Ok(()) => {
                        sub.armed = Some(d);
                        return;
                    }
                    // Signalled meanwhile: look again.
                    Err(_) => continue,
                }
            }
            let Ok(p) = sub.pending.remove(0) else {
                return;
            };
            match this.emit(p) {
                // Decided now rather than by a work item later, without
                // `sub`: a SUBMIT takes it under reservation locks, which
                // binds take under the slot lock the scheduler takes.
                Ok(true) => {
                    drop(sub);
                    sched::schedule(&this.gpu);
                }
                Ok(false) => {}
                // Full: a job's end queues us again.
                Err((p, None)) => {
                    let _ = sub.pending.insert_within_capacity(0, p);
                    return;
                }
                Err((p, Some(e))) => {
                    drop(sub);
                    this.fail_pending(p, e);
                }
            }
        }
    }
}

impl WorkItem<2> for Queue {
    type Pointer = Arc<Queue>;

    /// Let go of the jobs that ended (process context, no lock held).
    fn run(this: Arc<Queue>) {
        let jobs = core::mem::take(&mut *this.graveyard.lock());
        drop(jobs);
    }
}

impl WorkItem<1> for Queue {
    type Pointer = Arc<Queue>;

    fn run(this: Arc<Queue>) {
        let info = this.dump.lock().take();
        if let Some(info) = info {
            crate::coredump::write(&this, &info);
        }
    }
}
