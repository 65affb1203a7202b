// SPDX-License-Identifier: GPL-2.0

//! The scheduler: which queues run on the device's hardware rings.
//!
//! Any number of queues share the few hardware rings. A queue with jobs
//! on its ring buffer is *runnable* until the scheduler puts it on a ring
//! (*resident*); it stays there while it has work, and after, so that its
//! next job costs one doorbell write, until its ring is wanted:
//!
//! - a free ring, or a ring whose queue is idle, goes to the runnable
//!   queue of the highest priority (an idle queue of a higher priority
//!   than the waiting one keeps its ring for a timeslice after its last
//!   job, so that its next job needs no preemption);
//! - a runnable queue of a higher priority than a resident one preempts
//!   it at once: the ring is asked to suspend, the device saves the
//!   queue's context at its next suspend point (between two commands,
//!   inside a WAIT, or between two 4 KiB steps of a long command), and
//!   the queue goes back to the runnable list, to resume later on any
//!   ring from where it stopped;
//! - among queues of one priority, a resident queue that has used its
//!   timeslice (`sched_tick_ms`, 10 ms by default) is suspended the same
//!   way when a queue of its priority waits, and rings go to the queues
//!   that had the least time on a ring: fair shares (a queue that was idle
//!   starts from the least time of the busy ones, as CFS does).
//!
//! Decisions are taken by one work item ([`Gpu::sched_work`], also queued
//! on the timeslice tick), which holds the address-space slot lock (a
//! queue needs its VM in a slot to run) and then the scheduler's spinlock.
//! Interrupt paths only update the state under the spinlock and queue the
//! work item; the submission fast path only writes a ring buffer and a
//! doorbell under the spinlock.

use kernel::{
    list::{
        List,
        ListArc, //
    },
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    uapi,
    workqueue::{
        self,
        WorkItem, //
    }, //
};

use crate::{
    gpu::Gpu,
    mmu::AsSlots,
    queue::{
        Inflight,
        Queue,
        Where, //
    },
    ring::HwRing, //
};

/// Queue priorities, lowest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Priority {
    Low = 0,
    Normal = 1,
    High = 2,
    Realtime = 3,
}

/// Number of priorities.
const NUM_PRIO: usize = 4;

impl Priority {
    const ALL: [Priority; NUM_PRIO] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Realtime,
    ];

    /// The priority a QUEUE_CREATE asks for.
    pub(crate) fn from_uapi(v: u32) -> Result<Self> {
        Ok(match v {
            uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_LOW => Priority::Low,
            uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_NORMAL => Priority::Normal,
            uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_HIGH => Priority::High,
            uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_REALTIME => {
                Priority::Realtime
            }
            _ => return Err(EINVAL),
        })
    }

    /// Its `enum drm_ferrite_queue_priority` value.
    pub(crate) fn to_uapi(self) -> u32 {
        match self {
            Priority::Low => uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_LOW,
            Priority::Normal => uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_NORMAL,
            Priority::High => uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_HIGH,
            Priority::Realtime => {
                uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_REALTIME
            }
        }
    }

    /// Whether using it needs privilege (CAP_SYS_NICE or DRM master).
    pub(crate) fn privileged(self) -> bool {
        self >= Priority::High
    }

    fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Realtime => "realtime",
        }
    }
}

/// The timeslice: the `sched_tick_ms` module parameter.
pub(crate) fn timeslice() -> Delta {
    let ms = crate::module_parameters::sched_tick_ms.value();
    Delta::from_millis(i64::from(ms.clamp(1, 1000)))
}

/// A hardware ring, as the scheduler sees it.
struct RingSlot {
    queue: Option<Arc<Queue>>,
    /// When the queue got the ring (its timeslice started).
    slice_start: Instant<Monotonic>,
    /// The queue is stalled on an MMU fault its VM's fault work resolves
    /// ([`crate::svm`]): it gives the ring up to any runnable queue.
    stalled: bool,
}

/// Scheduler figures, for debugfs and the benchmark.
#[derive(Default, Clone, Copy)]
pub(crate) struct SchedStats {
    /// Queues put on a ring.
    pub(crate) placements: u64,
    /// Suspends for a queue of a higher priority.
    pub(crate) preemptions: u64,
    /// Suspends at the end of a timeslice.
    pub(crate) rotations: u64,
    /// Suspends that saved a context inside a command buffer.
    pub(crate) mid_job: u64,
    /// Sum and maximum of suspend request -> context saved, device time.
    pub(crate) suspend_ns_sum: u64,
    pub(crate) suspend_ns_max: u64,
    pub(crate) suspends: u64,
    /// Runnable queues that could not be put on a free ring (no slot for
    /// their VM, or the ring would not start); the tick retries.
    pub(crate) attach_failures: u64,
    /// Suspends of a queue stalled on a fault, for a runnable queue.
    pub(crate) stall_yields: u64,
}

/// The scheduler's state, under [`Gpu::sched`].
pub(crate) struct Sched {
    rings: KVec<RingSlot>,
    /// Runnable queues by priority, the longest waiting first.
    runnable: [List<Queue>; NUM_PRIO],
    runnable_len: [usize; NUM_PRIO],
    /// Queues to be let go by the work item (a closed queue's last
    /// reference must not go in an interrupt handler).
    reaped: List<Queue>,
    /// The device can suspend a ring.
    preempt: bool,
    pub(crate) stats: SchedStats,
}

impl Sched {
    pub(crate) fn new(num_rings: usize, preempt: bool) -> Result<Self> {
        let mut rings = KVec::with_capacity(num_rings, GFP_KERNEL)?;
        for _ in 0..num_rings {
            rings.push(
                RingSlot {
                    queue: None,
                    slice_start: Instant::now(),
                    stalled: false,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            rings,
            runnable: [List::new(), List::new(), List::new(), List::new()],
            runnable_len: [0; NUM_PRIO],
            reaped: List::new(),
            preempt,
            stats: SchedStats::default(),
        })
    }

    pub(crate) fn num_rings(&self) -> usize {
        self.rings.len()
    }

    /// Whether rings can be suspended (hardware interface 1.1).
    pub(crate) fn can_preempt(&self) -> bool {
        self.preempt
    }

    /// The queue on ring `r`.
    pub(crate) fn queue_on(&self, r: usize) -> Option<Arc<Queue>> {
        self.rings.get(r).and_then(|s| s.queue.clone())
    }

    /// Take the queue off ring `r` (the caller dealt with the hardware).
    pub(crate) fn take_ring(&mut self, r: usize) -> Option<Arc<Queue>> {
        self.rings.get_mut(r).and_then(|s| {
            s.stalled = false;
            s.queue.take()
        })
    }

    /// Hand a queue's reference to the work item, to be dropped there.
    pub(crate) fn reap(&mut self, q: Arc<Queue>) {
        if let Ok(l) = ListArc::try_from_arc(q) {
            self.reaped.push_back(l);
        }
    }

    /// The queue has no ring and jobs to run (or no job any more).
    pub(crate) fn off_ring(&mut self, q: Arc<Queue>) {
        let hw = q.hw.access_mut(self);
        if hw.inflight.is_empty() {
            hw.at = Where::Idle;
            hw.saved = false;
            hw.maybe_put_mem();
            if q.is_closed() {
                self.reap(q);
            }
        } else {
            hw.at = Where::Runnable;
            self.push_runnable(q);
        }
    }

    fn push_runnable(&mut self, q: Arc<Queue>) {
        let p = q.prio as usize;
        if let Ok(l) = ListArc::try_from_arc(q) {
            self.runnable[p].push_back(l);
            self.runnable_len[p] += 1;
        }
    }

    /// The runnable queue of priority `p` that had the least ring time.
    fn take_fairest(&mut self, p: Priority) -> Option<Arc<Queue>> {
        let mut fairest: Option<(*const Queue, u64)> = None;
        for q in self.runnable[p as usize].iter() {
            let v = q.vtime.load(Relaxed);
            if fairest.is_none_or(|(_, best)| v < best) {
                fairest = Some((core::ptr::from_ref::<Queue>(&q), v));
            }
        }
        let (ptr, _) = fairest?;
        self.take_runnable(p as usize, ptr)
    }

    /// Take a runnable queue of the VM whose address-space state is `vm`
    /// off its list (userptr invalidations, [`crate::recovery::stop_vm`]).
    pub(crate) fn take_runnable_of(&mut self, vm: &crate::mmu::VmAs) -> Option<Arc<Queue>> {
        (0..NUM_PRIO).find_map(|p| {
            let ptr = self.runnable[p]
                .iter()
                .find(|q| core::ptr::eq(&*q.vm.hw, vm))
                .map(|q| core::ptr::from_ref::<Queue>(&q))?;
            self.take_runnable(p, ptr)
        })
    }

    /// Take the queue `ptr`, found in the runnable list of priority `p`,
    /// off that list.
    fn take_runnable(&mut self, p: usize, ptr: *const Queue) -> Option<Arc<Queue>> {
        // SAFETY: the callers found `ptr` in this list just now, with the
        // scheduler's lock held: it is alive while it is in the list, and a
        // queue is in at most one of the scheduler's lists (`ListLinks<0>`).
        let q = unsafe { self.runnable[p].remove(&*ptr) }?;
        self.runnable_len[p] -= 1;
        Some(q.into_arc())
    }

    /// The ring running (or suspending) a queue of the VM `vm`.
    pub(crate) fn ring_of(&self, vm: &crate::mmu::VmAs) -> Option<usize> {
        self.rings.iter().position(|r| {
            r.queue
                .as_ref()
                .is_some_and(|q| core::ptr::eq(&*q.vm.hw, vm))
        })
    }

    /// The least ring time of the queues of priority `p` that have work.
    fn min_vtime(&self, p: Priority) -> Option<u64> {
        let resident = self
            .rings
            .iter()
            .filter_map(|r| r.queue.as_ref())
            .filter(|q| q.prio == p)
            .map(|q| q.vtime.load(Relaxed));
        let runnable = self.runnable[p as usize]
            .iter()
            .map(|q| q.vtime.load(Relaxed));
        Iterator::chain(resident, runnable).min()
    }

    fn best_runnable(&self) -> Option<Priority> {
        Priority::ALL
            .iter()
            .rev()
            .copied()
            .find(|p| self.runnable_len[*p as usize] > 0)
    }

    fn runnable_count(&self) -> usize {
        self.runnable_len.iter().sum()
    }
}

/// A queue with jobs on its ring buffer and no ring becomes runnable. Its
/// ring time, for fair shares, starts no lower than that of the queues of
/// its priority that have work: a queue that was idle gets its share from
/// now on, not what it did not use before.
pub(crate) fn make_runnable(s: &mut Sched, q: &Arc<Queue>) {
    if let Some(min) = s.min_vtime(q.prio) {
        // Only the scheduler's lock holder raises it (charges add to it).
        if q.vtime.load(Relaxed) < min {
            q.vtime.store(min, Relaxed);
        }
    }
    q.hw.access_mut(s).at = Where::Runnable;
    s.push_runnable(q.clone());
}

/// Let the scheduler look at its queues again after `t` (no allocation;
/// an earlier tick already queued stays).
fn tick_after(gpu: &Arc<Gpu>, t: Delta) {
    if gpu.is_dead() {
        return;
    }
    let ms = u32::try_from(t.as_millis_ceil().max(1)).unwrap_or(u32::MAX);
    let _ = workqueue::system_highpri().enqueue_delayed::<_, 2>(gpu.clone(), msecs_to_jiffies(ms));
}

/// Let the scheduler look at its queues again.
pub(crate) fn kick(gpu: &Arc<Gpu>) {
    if !gpu.is_dead() {
        let _ = workqueue::system_highpri().enqueue::<_, 1>(gpu.clone());
    }
}

/// Put runnable queue `q` on free ring `r`.
fn attach(gpu: &Gpu, slots: &mut AsSlots, s: &mut Sched, r: usize, q: Arc<Queue>) -> Result {
    let slot = slots.activate(gpu, &q.vm.hw)?;
    let now = Instant::now();
    let hw = q.hw.access_mut(s);
    let Some(mem) = hw.mem.clone() else {
        q.vm.hw.leave();
        return Err(EINVAL);
    };
    if !hw.saved {
        mem.write_fresh_context(hw.head_off(), hw.last_done);
    }
    let tail = hw.tail;
    if let Err(e) = gpu.try_io(|bar| HwRing(r).start(bar, &mem, slot, tail)) {
        q.vm.hw.leave();
        return Err(e);
    }
    hw.saved = false;
    hw.at = Where::Resident(r);
    hw.since = now;
    s.stats.placements += 1;
    s.rings[r] = RingSlot {
        queue: Some(q),
        slice_start: now,
        stalled: false,
    };
    Ok(())
}

/// Take the idle queue off ring `r` without a suspend: nothing of it is in
/// flight. Returns it if it was closed (to be dropped by the caller).
fn detach_idle(gpu: &Gpu, s: &mut Sched, r: usize) {
    let Some(q) = s.take_ring(r) else {
        return;
    };
    // Not checked: with the device gone (`ENODEV`) the ring runs nothing
    // any more, and a ring out of range (`EINVAL`) was reported.
    let _ = gpu.try_io(|bar| HwRing(r).reset(bar));
    q.vm.hw.leave();
    s.off_ring(q);
}

/// The scheduler's decisions (the work item, also run on the tick, and by
/// a submission that made its queue runnable). Process context: takes the
/// slot lock.
pub(crate) fn schedule(gpu: &Arc<Gpu>) {
    if gpu.is_dead() {
        return;
    }
    let mut reaped = List::<Queue>::new();
    let mut tick: Option<Delta> = None;
    {
        let mut slots = gpu.slots.lock();
        let mut s = gpu.sched.lock();
        // Closed queues whose work ended leave their rings.
        for r in 0..s.num_rings() {
            let idle_closed = s.rings[r]
                .queue
                .clone()
                .is_some_and(|q| q.is_closed() && q.hw.access_mut(&mut s).inflight.is_empty());
            if idle_closed {
                detach_idle(gpu, &mut s, r);
            }
        }
        let now = Instant::now();
        let slice = timeslice();
        while let Some(best) = s.best_runnable() {
            let free = (0..s.num_rings()).find(|r| s.rings[*r].queue.is_none());
            if let Some(r) = free {
                let Some(q) = s.take_fairest(best) else {
                    break;
                };
                let timeout = q.timeout;
                if let Err(e) = attach(gpu, &mut slots, &mut s, r, q.clone()) {
                    pr_debug!("ferrite: cannot put queue {} on ring {r}: {e:?}\n", q.id);
                    s.push_runnable(q);
                    // Nothing else may come to look again (no ring ends,
                    // no job is submitted): the tick does, soon.
                    let retry = Delta::from_millis(1);
                    tick = Some(match tick {
                        Some(t) if t.as_nanos() < retry.as_nanos() => t,
                        _ => retry,
                    });
                    s.stats.attach_failures += 1;
                    break;
                }
                // Its head job's time on a ring counts again.
                crate::recovery::arm_watchdog(gpu, timeout);
                continue;
            }
            // A ring whose queue has nothing in flight costs nothing to take;
            // a queue of a higher priority than the waiting one keeps it for
            // a timeslice after its last job, so that its next job finds it
            // there (one doorbell, no preemption).
            let mut idle = None;
            let mut idle_wait: Option<Delta> = None;
            for r in 0..s.num_rings() {
                let Some(q) = s.rings[r].queue.clone() else {
                    continue;
                };
                let hw = q.hw.access_mut(&mut s);
                if !hw.inflight.is_empty() || !matches!(hw.at, Where::Resident(_)) {
                    continue;
                }
                let idle_for = now - hw.since;
                if q.prio <= best || idle_for.as_nanos() >= slice.as_nanos() {
                    idle = Some(r);
                    break;
                }
                let left = Delta::from_nanos(slice.as_nanos() - idle_for.as_nanos());
                idle_wait = Some(match idle_wait {
                    Some(w) if w.as_nanos() < left.as_nanos() => w,
                    _ => left,
                });
            }
            if let Some(r) = idle {
                detach_idle(gpu, &mut s, r);
                continue;
            }
            if let Some(w) = idle_wait {
                tick = Some(match tick {
                    Some(t) if t.as_nanos() < w.as_nanos() => t,
                    _ => w,
                });
            }
            if !s.preempt {
                break;
            }
            // Every ring runs work. Suspends already asked for will free
            // rings for as many runnable queues.
            let mut suspending = 0;
            let mut lowest: Option<Priority> = None;
            for r in 0..s.num_rings() {
                let Some(q) = s.rings[r].queue.clone() else {
                    continue;
                };
                match q.hw.access_mut(&mut s).at {
                    Where::Suspending(_) => suspending += 1,
                    _ => lowest = Some(lowest.map_or(q.prio, |p| p.min(q.prio))),
                }
            }
            if suspending >= s.runnable_count() {
                break;
            }
            // A queue stalled on a fault gives its ring up at once, whatever
            // its priority: a fault may take long (the memory may have to be
            // read back from swap), and the other queues' fences must not
            // wait for it (see `crate::svm`).
            let stalled = (0..s.num_rings()).find(|r| {
                s.rings[*r].stalled
                    && s.rings[*r]
                        .queue
                        .clone()
                        .is_some_and(|q| matches!(q.hw.access_mut(&mut s).at, Where::Resident(_)))
            });
            if let Some(r) = stalled {
                s.stats.stall_yields += 1;
                suspend(gpu, &mut s, r);
                continue;
            }
            let Some(lowest) = lowest else {
                break;
            };
            if lowest > best {
                break;
            }
            // Among the resident queues of the lowest priority (whose
            // timeslice ended, if they are of the runnable queue's), the
            // one that had the most ring time gives its ring up.
            let mut victim: Option<(usize, u64)> = None;
            let mut wait: Option<Delta> = None;
            for r in 0..s.num_rings() {
                let Some(q) = s.rings[r].queue.clone() else {
                    continue;
                };
                if q.prio != lowest || matches!(q.hw.access_mut(&mut s).at, Where::Suspending(_)) {
                    continue;
                }
                let used = now - s.rings[r].slice_start;
                if lowest == best && used.as_nanos() < slice.as_nanos() {
                    let left = Delta::from_nanos(slice.as_nanos() - used.as_nanos());
                    wait = Some(match wait {
                        Some(w) if w.as_nanos() < left.as_nanos() => w,
                        _ => left,
                    });
                    continue;
                }
                let v = q.vtime.load(Relaxed);
                if victim.is_none_or(|(_, best_v)| v > best_v) {
                    victim = Some((r, v));
                }
            }
            let Some((r, _)) = victim else {
                if let Some(w) = wait {
                    tick = Some(match tick {
                        Some(t) if t.as_nanos() < w.as_nanos() => t,
                        _ => w,
                    });
                }
                break;
            };
            if lowest < best {
                s.stats.preemptions += 1;
            } else {
                s.stats.rotations += 1;
            }
            suspend(gpu, &mut s, r);
        }
        core::mem::swap(&mut reaped, &mut s.reaped);
    }
    if let Some(t) = tick {
        tick_after(gpu, t);
    }
    // The last references of closed queues go here, with no lock held.
    while let Some(q) = reaped.pop_front() {
        drop(q);
    }
}

/// Ring `r`'s queue stalled on a fault of its (mirror) VM: let a runnable
/// queue have the ring (MMU interrupt).
pub(crate) fn stalled(gpu: &Arc<Gpu>, r: usize) {
    let waiting = {
        let mut s = gpu.sched.lock();
        if r >= s.num_rings() {
            return;
        }
        s.rings[r].stalled = true;
        s.runnable_count() != 0
    };
    if waiting {
        kick(gpu);
    }
}

/// The fault work of `vm` ended the stall of its slot.
pub(crate) fn unstalled(gpu: &Gpu, vm: &crate::mmu::VmAs) {
    let mut s = gpu.sched.lock();
    for r in 0..s.num_rings() {
        let of_vm = s.rings[r]
            .queue
            .as_ref()
            .is_some_and(|q| core::ptr::eq(&*q.vm.hw, vm));
        if of_vm {
            s.rings[r].stalled = false;
        }
    }
}

/// Ask ring `r` to suspend its queue.
fn suspend(gpu: &Gpu, s: &mut Sched, r: usize) {
    let Some(q) = s.rings[r].queue.clone() else {
        return;
    };
    q.hw.access_mut(s).at = Where::Suspending(r);
    // Not checked: with the device gone (`ENODEV`) no suspend comes, and
    // unbind fails the queue's jobs; a ring out of range (`EINVAL`) was
    // reported.
    let _ = gpu.try_io(|bar| HwRing(r).suspend(bar));
}

/// Ring `r` saved its queue's context (job interrupt): the queue is off
/// the hardware, runnable again if it still has work.
pub(crate) fn suspended(gpu: &Arc<Gpu>, r: usize) {
    // Jobs that ended before the suspend.
    complete(gpu, r);
    {
        let mut s = gpu.sched.lock();
        let Some(q) = s.take_ring(r) else {
            return;
        };
        let now = Instant::now();
        let hw = q.hw.access_mut(&mut s);
        hw.charge(&q, now);
        let ctx = hw
            .mem
            .as_ref()
            .map(|m| m.saved_context())
            .unwrap_or_default();
        let mid_job = ctx.depth > 0;
        if mid_job {
            hw.preemptions += 1;
        }
        hw.saved = !hw.inflight.is_empty();
        let st = &mut s.stats;
        st.suspends += 1;
        st.mid_job += u64::from(mid_job);
        let took = ctx.saved_ts.saturating_sub(ctx.request_ts);
        st.suspend_ns_sum += took;
        st.suspend_ns_max = st.suspend_ns_max.max(took);
        q.vm.hw.leave();
        s.off_ring(q);
    }
    kick(gpu);
}

/// Signal the jobs of ring `r`'s queue that the fence word says ended
/// (job interrupt). Runs in a fence-signalling section.
pub(crate) fn complete(gpu: &Arc<Gpu>, r: usize) {
    loop {
        let mut room = None;
        let done = {
            let mut s = gpu.sched.lock();
            let Some(q) = s.queue_on(r) else {
                return;
            };
            let hw = q.hw.access_mut(&mut s);
            let value = hw.mem.as_ref().map_or(0, |m| m.fence_value());
            let ended = hw.inflight.first().is_some_and(|j| j.seqno <= value);
            let done = if ended {
                hw.charge(&q, Instant::now());
                hw.pop_head()
            } else {
                None
            };
            if done.is_some() && hw.want_room {
                hw.want_room = false;
                room = Some(q.clone());
            }
            if done.is_none() && hw.inflight.is_empty() {
                let best = s.best_runnable();
                drop(s);
                if q.is_closed() || best.is_some_and(|b| b >= q.prio) {
                    // Idle: the work item gives the ring to a waiting queue.
                    kick(gpu);
                } else if best.is_some() {
                    // Only queues of a lower priority wait: the ring is
                    // theirs if this queue stays idle for a timeslice.
                    tick_after(gpu, timeslice());
                }
            }
            done.map(|d| (q, d))
        };
        if let Some(q) = room {
            q.room();
        }
        let Some((q, done)) = done else {
            return;
        };
        done.finish(&q, None);
    }
}

/// The queue's file destroyed it: it leaves its ring now if it has nothing
/// in flight (so that what only it holds, its VM and their BOs, goes with
/// the file), else when its work ends.
pub(crate) fn queue_closed(gpu: &Arc<Gpu>, q: &Arc<Queue>) {
    let taken = {
        let mut s = gpu.sched.lock();
        let hw = q.hw.access_mut(&mut s);
        match hw.at {
            Where::Resident(r) if hw.inflight.is_empty() => {
                // Not checked, as in `detach_idle`.
                let _ = gpu.try_io(|bar| HwRing(r).reset(bar));
                q.vm.hw.leave();
                hw.at = Where::Idle;
                hw.saved = false;
                hw.maybe_put_mem();
                s.take_ring(r)
            }
            Where::Idle => {
                hw.maybe_put_mem();
                None
            }
            _ => None,
        }
    };
    if taken.is_some() {
        // A ring is free for a runnable queue.
        kick(gpu);
    }
    drop(taken);
}

/// Fail every job of every queue on the hardware (the device is gone).
pub(crate) fn take_all(s: &mut Sched, out: &mut List<Queue>) {
    for r in 0..s.num_rings() {
        if let Some(q) = s.take_ring(r) {
            q.vm.hw.leave();
            if let Ok(l) = ListArc::try_from_arc(q) {
                out.push_back(l);
            }
        }
    }
    for p in 0..NUM_PRIO {
        out.push_all_back(&mut s.runnable[p]);
        s.runnable_len[p] = 0;
    }
}

/// The jobs of queue `q`, taken off it (with the scheduler's lock held).
pub(crate) fn take_jobs(s: &mut Sched, q: &Queue) -> KVec<Inflight> {
    let hw = q.hw.access_mut(s);
    let jobs = core::mem::take(&mut hw.inflight);
    hw.jobs = hw.jobs.saturating_sub(jobs.len() as u32);
    if let Some(j) = jobs.last() {
        hw.last_done = j.seqno;
    }
    hw.at = Where::Idle;
    hw.saved = false;
    hw.maybe_put_mem();
    jobs
}

/// debugfs `sched`.
pub(crate) fn describe(gpu: &Gpu, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut s = gpu.sched.lock();
    let st = s.stats;
    writeln!(
        f,
        "rings {} timeslice_ms {} preempt {} queue_bytes {}",
        s.num_rings(),
        timeslice().as_millis(),
        s.preempt,
        // What an idle queue costs: its `Arc` allocation (no ring buffer).
        core::mem::size_of::<Queue>() + 2 * core::mem::size_of::<usize>()
    )?;
    writeln!(
        f,
        "placements {} preemptions {} rotations {} suspends {} mid_job {} suspend_ns_avg {} suspend_ns_max {}",
        st.placements,
        st.preemptions,
        st.rotations,
        st.suspends,
        st.mid_job,
        st.suspend_ns_sum.checked_div(st.suspends).unwrap_or(0),
        st.suspend_ns_max
    )?;
    writeln!(f, "userptr_stops {}", gpu.stats.userptr_stops.load(Relaxed))?;
    writeln!(f, "attach_failures {}", st.attach_failures)?;
    writeln!(f, "stall_yields {}", st.stall_yields)?;
    for r in 0..s.num_rings() {
        match s.rings[r].queue.clone() {
            None => writeln!(f, "ring {r}: free")?,
            Some(q) => {
                let hw = q.hw.access_mut(&mut s);
                writeln!(
                    f,
                    "ring {r}: queue {} vm {} prio {} {:?} inflight {} ring_ms {} preemptions {}",
                    q.id,
                    q.vm.id,
                    q.prio.name(),
                    hw.at,
                    hw.inflight.len(),
                    q.ring_ns.load(Relaxed) / 1_000_000,
                    hw.preemptions
                )?;
            }
        }
    }
    for p in Priority::ALL.iter().rev() {
        if s.runnable_len[*p as usize] == 0 {
            continue;
        }
        write!(f, "runnable {}:", p.name())?;
        for q in s.runnable[*p as usize].iter() {
            write!(f, " {}", q.id)?;
        }
        writeln!(f)?;
    }
    Ok(())
}

/// The work item and the tick.
impl WorkItem<1> for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(gpu: Arc<Gpu>) {
        schedule(&gpu);
    }
}

impl WorkItem<2> for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(gpu: Arc<Gpu>) {
        schedule(&gpu);
    }
}
