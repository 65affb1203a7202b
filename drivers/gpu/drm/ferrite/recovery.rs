// SPDX-License-Identifier: GPL-2.0

//! Recovery: a ring that stopped on a fault or a command error, a job that
//! ran longer than its timeout on a ring, a reset of the whole GPU, and a
//! device that is gone.
//!
//! A failed job's fence signals with the error after the ring was reset and
//! the device cache written back (so the job's pages, still held, get what
//! it wrote); the jobs behind it are written again from the start of the
//! queue's ring buffer and the queue goes back to the scheduler. A queue
//! created with `DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL` is banned instead:
//! its other jobs are cancelled. Everything that signals runs inside a
//! fence-signalling section: no allocation, no lock that is held elsewhere
//! while allocating.

use kernel::{
    bindings,
    dma_fence,
    io::Io,
    list::List,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant, //
    },
    uapi,
    workqueue::{
        self,
        DelayedWork,
        Work,
        WorkItem, //
    }, //
};

use crate::{
    coredump::DumpInfo,
    gpu::{
        Bar0,
        Gpu, //
    },
    mmu,
    queue::{
        Inflight,
        Queue,
        Record,
        Where, //
    },
    regs::{
        self,
        CheckedArray,
        QueueError, //
    },
    ring::{
        HwRing,
        JOB_BYTES, //
    },
    sched::{
        self,
        take_jobs, //
    }, //
};

/// Longest time between two watchdog checks while jobs run: a delayed
/// work item cannot be brought forward, so a short timeout is seen at
/// most this late.
const WATCHDOG_PERIOD: Delta = Delta::from_millis(50);

/// Why ring `r` stopped (job interrupt, error bit).
pub(crate) fn read_error(gpu: &Gpu, bar: &Bar0<'_>, r: usize) -> Result<(Error, Record)> {
    let q_error = bar.read(regs::Q_ERROR::checked_at(r)?);
    let mut rec = Record {
        state: uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_ERROR,
        error: q_error.into_raw(),
        ..Record::default()
    };
    let mut err = EIO;
    if matches!(q_error.code(), Ok(QueueError::MmuFault)) {
        let slot = gpu.sched.lock().queue_on(r).and_then(|q| q.vm.hw.slot());
        if let Some(s) = slot {
            let f = mmu::read_fault(bar, s)?;
            rec.fault_addr = f.addr;
            rec.fault_status = f.status;
        }
        rec.state = uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_FAULTED;
        err = EFAULT;
        gpu.stats.faults.add(1, Relaxed);
    }
    Ok((err, rec))
}

/// Ring `r` stopped on an error, or its job timed out: fail the job at the
/// head of its queue with `err` (recording `rec`), reset the ring and give
/// the queue back to the scheduler.
pub(crate) fn ring_failed(gpu: &Arc<Gpu>, r: usize, err: Error, rec: Record) {
    let _signalling = dma_fence::SignallingSection::begin();
    // Jobs that ended before the failure.
    sched::complete(gpu, r);
    let (q, failed, cancelled, info) = {
        let mut s = gpu.sched.lock();
        let Some(q) = s.take_ring(r) else {
            return;
        };
        let hw = q.hw.access_mut(&mut s);
        hw.charge(&q, Instant::now());
        let ring_off = hw.head_off();
        let mut ring_dwords = [0u32; JOB_BYTES / 4];
        if let Some(m) = hw.mem.as_ref() {
            for (i, w) in ring_dwords.iter_mut().enumerate() {
                *w = m.read_ring(ring_off + 4 * i);
            }
        }
        let failed = hw.pop_head();
        halt_ring(gpu, r, &q);
        let ban = failed.is_some() && q.fatal;
        let cancelled = if ban {
            hw.banned = true;
            hw.at = Where::Idle;
            take_jobs(&mut s, &q)
        } else {
            hw.rewrite();
            KVec::new()
        };
        let info = failed.as_ref().map(|f| DumpInfo {
            err,
            rec,
            ring: r,
            seqno: f.seqno,
            cmd_va: f.job.cmd_va,
            cmd_size: f.job.cmd_size,
            ring_off,
            ring_dwords,
        });
        s.off_ring(q.clone());
        (q, failed, cancelled, info)
    };
    if let Some(f) = failed {
        q.record(rec, true);
        let dump = info.is_some_and(|i| {
            let mut slot = q.dump.lock();
            let free = slot.is_none();
            if free {
                *slot = Some(i);
            }
            free
        });
        f.finish(&q, Some(err));
        if dump {
            let _ = workqueue::system().enqueue::<_, 1>(q.clone());
        }
    }
    for j in cancelled {
        j.finish(&q, Some(ECANCELED));
    }
    sched::kick(gpu);
    drop(q);
}

/// Stop ring `r`, which the caller took from `q` under the scheduler's
/// lock. The jobs on it may not have run their final cache clean: write
/// back what they left dirty while their pages are still held, and make
/// sure the ring stopped, before their fences signal and userspace (or the
/// kernel, for userptr pages) may reuse what they used.
fn halt_ring(gpu: &Gpu, r: usize, q: &Queue) {
    // Not checked: with the device gone (`ENODEV`) nothing runs any more,
    // and a ring out of range (`EINVAL`, reported where it arose) runs
    // nothing. The cache is cleaned even then.
    let _ = gpu.try_io(|bar| {
        let reset = HwRing(r).reset(bar);
        crate::gpu::clean_cache(bar);
        mmu::sync(bar);
        reset
    });
    q.vm.hw.leave();
}

/// A userptr invalidation of the VM `vm` gave up waiting for the VM's
/// jobs (the caller bumped `vm.gen` first): stop every job of the VM that
/// reached a ring buffer, before the CPU gives the old pages away. A ring
/// running one of its queues is reset (and the device cache cleaned, so
/// nothing the job wrote lands later); the jobs of its queues, on a ring
/// or runnable, fail with `ECANCELED`. Jobs still waiting for their
/// dependencies fail when they would reach the ring buffer
/// (the queue's emit checks the generation). One queue at a time, so that
/// nothing allocates: this runs in an MMU notifier.
pub(crate) fn stop_vm(gpu: &Arc<Gpu>, vm: &mmu::VmAs) {
    let _signalling = dma_fence::SignallingSection::begin();
    loop {
        let n = gpu.sched.lock().num_rings();
        // Jobs that ended meanwhile signal as done, not cancelled.
        for r in 0..n {
            sched::complete(gpu, r);
        }
        let (q, jobs) = {
            let mut s = gpu.sched.lock();
            let q = if let Some(r) = s.ring_of(vm) {
                let Some(q) = s.take_ring(r) else {
                    break;
                };
                q.hw.access_mut(&mut s).charge(&q, Instant::now());
                halt_ring(gpu, r, &q);
                q
            } else if let Some(q) = s.take_runnable_of(vm) {
                q
            } else {
                break;
            };
            let jobs = take_jobs(&mut s, &q);
            s.off_ring(q.clone());
            (q, jobs)
        };
        for j in jobs {
            j.finish(&q, Some(ECANCELED));
        }
        drop(q);
    }
    sched::kick(gpu);
}

/// Reset the whole GPU (debugfs `recover`): the job running on each ring
/// is lost (cancelled, its queue *innocent*), the jobs behind it run again
/// from the start of their ring buffers, queues suspended in the middle of
/// a job keep their saved contexts.
pub(crate) fn recover(gpu: &Arc<Gpu>) -> Result {
    if gpu.is_dead() {
        return Err(ENODEV);
    }
    let n = gpu.sched.lock().num_rings();
    {
        let _signalling = dma_fence::SignallingSection::begin();
        for r in 0..n {
            sched::complete(gpu, r);
        }
    }
    let mut lost: [Option<(Arc<Queue>, Inflight)>; regs::MAX_QUEUES] =
        core::array::from_fn(|_| None);
    {
        let mut slots = gpu.slots.lock();
        let mut s = gpu.sched.lock();
        for (r, l) in lost.iter_mut().enumerate().take(n) {
            let Some(q) = s.take_ring(r) else {
                continue;
            };
            let hw = q.hw.access_mut(&mut s);
            hw.charge(&q, Instant::now());
            if let Some(j) = hw.pop_head() {
                *l = Some((q.clone(), j));
            }
            hw.rewrite();
            q.vm.hw.leave();
            s.off_ring(q);
        }
        gpu.io(|bar| {
            bar.write_reg(regs::RESET::global());
            mmu::sync(bar);
        })?;
        slots.forget_all();
        gpu.enable_irqs()?;
    }
    dev_info!(gpu.dev, "GPU reset by request: recovered\n");
    {
        let _signalling = dma_fence::SignallingSection::begin();
        for (q, j) in lost.iter_mut().filter_map(Option::take) {
            q.record_innocent();
            j.finish(&q, Some(ECANCELED));
        }
    }
    sched::kick(gpu);
    Ok(())
}

/// The device is gone: fail every job on the hardware with `err`.
pub(crate) fn fail_all(gpu: &Gpu, err: Error) {
    let mut queues = List::<Queue>::new();
    sched::take_all(&mut gpu.sched.lock(), &mut queues);
    let mut done = List::<Queue>::new();
    {
        let _signalling = dma_fence::SignallingSection::begin();
        while let Some(q) = queues.pop_front() {
            let arc = q.clone_arc();
            let jobs = take_jobs(&mut gpu.sched.lock(), &arc);
            for j in jobs {
                j.finish(&arc, Some(err));
            }
            done.push_back(q);
        }
    }
    // The last references of closed queues go here, outside the section.
    drop(done);
}

/// Run the pending watchdog check, tick and scheduler work now and wait
/// for them (at unbind: they do not re-arm on a dead device).
pub(crate) fn flush_work(gpu: &Gpu) {
    let watchdog: *const DelayedWork<Gpu, 0> = &gpu.watchdog;
    let tick: *const DelayedWork<Gpu, 2> = &gpu.tick;
    let work: *const Work<Gpu, 1> = &gpu.sched_work;
    // SAFETY: `DelayedWork` is a transparent wrapper of an initialised
    // `struct delayed_work`, and `Work` of a `struct work_struct`, which
    // live as long as `gpu`.
    unsafe {
        bindings::flush_delayed_work(watchdog.cast_mut().cast());
        bindings::flush_delayed_work(tick.cast_mut().cast());
        bindings::flush_work(Work::raw_get(work));
    }
}

/// Look at the watchdog within `after`.
pub(crate) fn arm_watchdog(gpu: &Arc<Gpu>, after: Delta) {
    if gpu.is_dead() {
        return;
    }
    let after = if after.as_nanos() < WATCHDOG_PERIOD.as_nanos() {
        after
    } else {
        WATCHDOG_PERIOD
    };
    let ms = u32::try_from(after.as_millis_ceil().max(1)).unwrap_or(u32::MAX);
    // Already queued: it will look at this queue too.
    let _ = workqueue::system().enqueue_delayed::<_, 0>(gpu.clone(), msecs_to_jiffies(ms));
}

/// The watchdog: a job that spent longer than its queue's timeout on a
/// ring (time waiting for a ring, or preempted, does not count) fails with
/// `ETIMEDOUT`.
impl WorkItem<0> for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(gpu: Arc<Gpu>) {
        let mut next: Option<Delta> = None;
        let n = gpu.sched.lock().num_rings();
        for r in 0..n {
            let (expired, wait) = {
                let mut s = gpu.sched.lock();
                let Some(q) = s.queue_on(r) else {
                    continue;
                };
                let hw = q.hw.access_mut(&mut s);
                if hw.inflight.is_empty() {
                    continue;
                }
                let ran = hw.head_ran_ns + (Instant::now() - hw.since).as_nanos();
                let limit = q.timeout.as_nanos();
                if ran >= limit {
                    (true, None)
                } else {
                    (false, Some(Delta::from_nanos(limit - ran)))
                }
            };
            if expired && !gpu.responds() {
                // Not a hang: the device is gone.
                gpu.lose();
                return;
            }
            if expired {
                gpu.stats.jobs_timedout.add(1, Relaxed);
                ring_failed(
                    &gpu,
                    r,
                    ETIMEDOUT,
                    Record {
                        state: uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_TIMEDOUT,
                        ..Record::default()
                    },
                );
                // The next job starts its own timeout.
                next = Some(Delta::from_millis(1));
            } else if let Some(w) = wait {
                next = Some(next.map_or(w, |n| if w.as_nanos() < n.as_nanos() { w } else { n }));
            }
        }
        if let Some(n) = next {
            arm_watchdog(&gpu, n);
        }
    }
}
