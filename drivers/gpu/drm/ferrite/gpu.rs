// SPDX-License-Identifier: GPL-2.0

//! The device at run time: register access that survives unbind (it fails
//! with `ENODEV` instead), address-space slots, the scheduler's state and
//! driver counters. Files, VMs and queues hold an `Arc<Gpu>`.

use kernel::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    impl_has_delayed_work,
    impl_has_work,
    io::Io,
    mm::Mm,
    new_mutex,
    new_spinlock,
    new_work,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex,
        SpinLock, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    uapi,
    workqueue::{
        DelayedWork,
        Work, //
    }, //
};

use crate::{
    driver::{
        GpuInfo,
        VA_BITS, //
    },
    gem::BoList,
    mmu::{
        AsSlots,
        VmAs, //
    },
    regs::{
        self,
        CheckedArray, //
    },
    sched::Sched,
    vm::Vm, //
};

/// A page-table update in progress (see [`Gpu::update_vm`]).
pub(crate) struct LiveUpdate<'a> {
    gpu: &'a Gpu,
    slot: Option<usize>,
    busy: bool,
    locked: core::cell::Cell<bool>,
}

impl LiveUpdate<'_> {
    /// Existing entries are about to change: make the VM's queues wait.
    pub(crate) fn before_change(&self) {
        if let (Some(s), true, false) = (self.slot, self.busy, self.locked.get()) {
            // Not checked: with the device gone (`ENODEV`) no queue runs
            // any more, and a slot out of range (`EINVAL`) was reported.
            let _ = self
                .gpu
                .try_io(|bar| crate::mmu::lock_range(bar, s, 0, 1u64 << VA_BITS));
            self.locked.set(true);
        }
    }
}

/// The per-process VMs of a device: one per address space (`struct
/// mm_struct`), shared by every file that uses it from that process.
pub(crate) struct ProcessVms {
    entries: KVec<ProcessVm>,
}

struct ProcessVm {
    mm: ARef<Mm>,
    vm: Arc<Vm>,
    /// Files holding a [`ProcessVmRef`] to it.
    users: u32,
}

/// A file's use of a process VM; the VM goes with its last user.
pub(crate) struct ProcessVmRef {
    gpu: Arc<Gpu>,
    pub(crate) vm: Arc<Vm>,
    mm: ARef<Mm>,
}

impl ProcessVmRef {
    /// Whether this is the VM of the address space `mm`.
    pub(crate) fn is_for(&self, mm: &Mm) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }
}

impl Drop for ProcessVmRef {
    fn drop(&mut self) {
        let gone = {
            let mut pv = self.gpu.process_vms.lock();
            let i = pv
                .entries
                .iter()
                .position(|e| core::ptr::eq(e.mm.as_raw(), self.mm.as_raw()));
            match i {
                Some(i) => {
                    pv.entries[i].users -= 1;
                    if pv.entries[i].users == 0 {
                        pv.entries.remove(i).ok()
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        // The VM (if this was its last file) and the mm reference go here,
        // without the lock.
        drop(gone);
    }
}

/// The live VMs of a device, for debugfs.
///
/// # Invariants
///
/// Each pointer is a live [`Vm`]: a VM removes itself, under the lock,
/// before it is freed.
pub(crate) struct VmList {
    entries: KVec<(u64, *const Vm)>,
}

// SAFETY: the pointers are only dereferenced under the list's lock, and
// `Vm` is `Sync`.
unsafe impl Send for VmList {}

impl VmList {
    pub(crate) fn add(&mut self, id: u64, vm: *const Vm) -> Result {
        self.entries.push((id, vm), GFP_KERNEL)?;
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.entries.retain(|(i, _)| *i != id);
    }

    /// Call `f` on each VM, with the lock held.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, &Vm)) {
        for (id, vm) in self.entries.iter() {
            // SAFETY: by the type invariants the VM is alive while it is in
            // the list, and we hold the list's lock.
            f(*id, unsafe { &**vm });
        }
    }
}

/// BAR0, revoked when the device is unbound.
pub(crate) type DevresBar0 = pci::DevresBar<{ regs::BAR0_SIZE }>;
/// BAR0 while access is held.
pub(crate) type Bar0<'a> = pci::Bar<'a, { regs::BAR0_SIZE }>;

/// Counters kept by the driver (see `struct drm_ferrite_counters`).
pub(crate) struct Stats {
    pub(crate) kmap_kernel_bytes: Atomic<u64>,
    pub(crate) bytes_bound: Atomic<u64>,
    pub(crate) tlb_flushes: Atomic<u64>,
    pub(crate) jobs_submitted: Atomic<u64>,
    pub(crate) jobs_timedout: Atomic<u64>,
    pub(crate) faults: Atomic<u64>,
    /// Software interrupts seen (the probe self-test and debugfs
    /// `irq_roundtrip` raise them).
    pub(crate) soft_irqs: Atomic<u32>,
    /// Userptr invalidations that stopped a VM's jobs (debugfs `sched`).
    pub(crate) userptr_stops: Atomic<u64>,
    /// Mirror VMs ([`crate::svm`]).
    pub(crate) svm: crate::svm::SvmStats,
    /// Pages the driver holds references on now (userptrs), and the most
    /// it held since the peak was last reset (debugfs `svm`).
    pub(crate) pages_held: Atomic<u64>,
    pub(crate) pages_held_peak: Atomic<u64>,
    /// Asynchronous binds still to fail when applied (debugfs
    /// `inject_bind_failure`, for tests of unusable VMs).
    pub(crate) inject_bind_failure: Atomic<u32>,
    /// Page-table updates still to fail, synchronous or not (debugfs
    /// `inject_pt_failure`, for tests of a failed update's error path).
    pub(crate) inject_pt_failure: Atomic<u32>,
    /// Where synchronous VM_BIND calls spend their time (debugfs
    /// `bind_profile`).
    pub(crate) bind_profile: BindProfile,
}

/// The phases of a synchronous VM_BIND, timed (debugfs `bind_profile`).
#[derive(Clone, Copy)]
pub(crate) enum BindPhase {
    /// Copying and checking the arguments, looking up and pinning BOs.
    Parse = 0,
    /// Waiting for sync objects and the VM's asynchronous binds.
    Wait,
    /// Reserving tables and recording in GPUVM.
    Record,
    /// Writing the page tables and flushing the TLB.
    Apply,
    /// Letting go of what the bind removed.
    Cleanup,
}

pub(crate) const BIND_PHASES: [&str; 5] = ["parse", "wait", "record", "apply", "cleanup"];

/// Total nanoseconds per [`BindPhase`], and the calls timed.
pub(crate) struct BindProfile {
    pub(crate) ns: [Atomic<u64>; 5],
    pub(crate) calls: Atomic<u64>,
}

impl BindProfile {
    /// Add the time since `*since` to `phase`, and restart `*since`.
    pub(crate) fn lap(&self, phase: BindPhase, since: &mut Instant<Monotonic>) {
        let now = Instant::now();
        let d = (now - *since).as_nanos().max(0) as u64;
        self.ns[phase as usize].add(d, Relaxed);
        *since = now;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            kmap_kernel_bytes: Atomic::new(0),
            bytes_bound: Atomic::new(0),
            tlb_flushes: Atomic::new(0),
            jobs_submitted: Atomic::new(0),
            jobs_timedout: Atomic::new(0),
            faults: Atomic::new(0),
            soft_irqs: Atomic::new(0),
            userptr_stops: Atomic::new(0),
            svm: crate::svm::SvmStats::default(),
            pages_held: Atomic::new(0),
            pages_held_peak: Atomic::new(0),
            inject_bind_failure: Atomic::new(0),
            inject_pt_failure: Atomic::new(0),
            bind_profile: BindProfile {
                ns: [const { Atomic::new(0) }; 5],
                calls: Atomic::new(0),
            },
        }
    }
}

/// A Ferrite GPU.
///
/// # Locks
///
/// In the order they nest (see `Documentation/gpu/ferrite.rst`, Locking):
///
/// - `slots`: the address-space slot table; held across a VM's page-table
///   update (so that no job of the VM starts) and while the scheduler puts
///   queues on rings.
/// - `sched`: the scheduler's state and every queue's hardware state
///   ([`crate::queue::QueueHw`], `LockedBy` it); a spinlock, taken in the
///   job interrupt; nothing allocates under it but with `GFP_ATOMIC`.
/// - `vms`, `bos`, `process_vms`: debugfs lists and the per-process VMs.
/// - `dumps`: serialises handing coredumps to the devcoredump core; taken
///   alone, in the queues' dump work items.
#[pin_data]
pub(crate) struct Gpu {
    bar: DevresBar0,
    /// The PCI device, for messages and coredumps.
    pub(crate) dev: ARef<Device>,
    pub(crate) info: GpuInfo,
    #[pin]
    pub(crate) slots: Mutex<AsSlots>,
    #[pin]
    pub(crate) sched: SpinLock<Sched>,
    pub(crate) stats: Stats,
    /// Set when the device is unbound: nothing new reaches the hardware.
    dead: Atomic<bool>,
    #[pin]
    pub(crate) watchdog: DelayedWork<Gpu, 0>,
    /// The scheduler's work item ([`crate::sched`]).
    #[pin]
    pub(crate) sched_work: Work<Gpu, 1>,
    /// The scheduler's timeslice tick.
    #[pin]
    pub(crate) tick: DelayedWork<Gpu, 2>,
    #[pin]
    pub(crate) vms: Mutex<VmList>,
    /// Open while the device is bound: mirror VMs map DMA under it
    /// ([`crate::svm`]); [`Gpu::shutdown`] closes it.
    #[pin]
    pub(crate) svm_gate: Mutex<bool>,
    /// Buffer objects, for debugfs, and the ids of BOs and VMs (shared
    /// with the DRM device's data, see [`crate::driver::DmaLimits`]).
    pub(crate) bos: Arc<BoList>,
    #[pin]
    pub(crate) process_vms: Mutex<ProcessVms>,
    /// Held while a coredump is handed over. The devcoredump core checks
    /// for an existing dump of the device and then creates its
    /// `devcoredump` link, not atomically: the dump work items of two
    /// queues that failed together would race to create the link.
    #[pin]
    pub(crate) dumps: Mutex<()>,
}

impl Gpu {
    pub(crate) fn new(dev: ARef<Device>, bar: DevresBar0, info: GpuInfo) -> Result<Arc<Self>> {
        let rings = (info.num_queues as usize).min(regs::MAX_QUEUES);
        let num_as = (info.num_as as usize).min(regs::MAX_AS);
        let preempt = info.features & regs::FEATURE_PREEMPT != 0;
        Arc::pin_init(
            try_pin_init!(Self {
                bar,
                dev,
                info,
                slots <- new_mutex!(AsSlots::new(num_as)?),
                sched <- new_spinlock!(Sched::new(rings, preempt)?),
                stats: Stats::default(),
                dead: Atomic::new(false),
                watchdog <- kernel::new_delayed_work!("ferrite::watchdog"),
                sched_work <- new_work!("ferrite::sched"),
                tick <- kernel::new_delayed_work!("ferrite::tick"),
                vms <- new_mutex!(VmList { entries: KVec::new() }),
                bos: BoList::new()?,
                process_vms <- new_mutex!(ProcessVms { entries: KVec::new() }),
                dumps <- new_mutex!(()),
                svm_gate <- new_mutex!(true),
            }),
            GFP_KERNEL,
        )
    }

    /// Run `f` with the registers; `ENODEV` once the device is gone. `f`
    /// runs in an RCU read-side section: it must not sleep.
    pub(crate) fn io<R>(&self, f: impl FnOnce(&Bar0<'_>) -> R) -> Result<R> {
        let bar = self.bar.try_access().ok_or(ENODEV)?;
        Ok(f(&bar))
    }

    /// [`Gpu::io`] for an `f` that can fail itself (it reaches an array
    /// register at an index out of range).
    pub(crate) fn try_io<R>(&self, f: impl FnOnce(&Bar0<'_>) -> Result<R>) -> Result<R> {
        self.io(f)?
    }

    /// The VM of the address space `mm` on this device, created on first
    /// use.
    pub(crate) fn process_vm(
        self: &Arc<Self>,
        mm: &Mm,
        drm: &crate::driver::FerriteDevice<kernel::drm::Registered>,
        dev: &Device<Bound>,
    ) -> Result<ProcessVmRef> {
        let mut pv = self.process_vms.lock();
        let vm = match pv
            .entries
            .iter_mut()
            .find(|e| core::ptr::eq(e.mm.as_raw(), mm.as_raw()))
        {
            Some(e) => {
                e.users += 1;
                e.vm.clone()
            }
            None => {
                let vm = Vm::new(self, drm, dev, Some(mm), None)?;
                pv.entries.push(
                    ProcessVm {
                        mm: mm.into(),
                        vm: vm.clone(),
                        users: 1,
                    },
                    GFP_KERNEL,
                )?;
                vm
            }
        };
        Ok(ProcessVmRef {
            gpu: self.clone(),
            vm,
            mm: mm.into(),
        })
    }

    /// A new id for a VM or BO (debugfs names).
    pub(crate) fn new_id(&self) -> u64 {
        self.bos.new_id()
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Relaxed)
    }

    /// Whether the device still answers: reads of a device that is gone
    /// (surprise removal, or its model process died) return all-ones.
    pub(crate) fn responds(&self) -> bool {
        self.io(|bar| bar.read(regs::ID).id() == regs::FERRITE_ID)
            .unwrap_or(false)
    }

    /// The device stopped answering: fail every job with `ENODEV` and refuse
    /// new work, as at unbind, without relying on the hardware. Files stay
    /// usable for closing; unbind cleans up the rest.
    pub(crate) fn lose(&self) {
        if self.dead.xchg(true, Relaxed) {
            return;
        }
        // A notice, not an error: losing a device is handled, and IGT's
        // runner fails a test that logs warnings.
        dev_notice!(
            self.dev,
            "the device stopped responding: failing its jobs\n"
        );
        crate::recovery::fail_all(self, ENODEV);
        self.slots.lock().forget_all();
    }

    /// Write the 64-bit value of a `_LO`/`_HI` register pair.
    pub(crate) fn split(v: u64) -> (u32, u32) {
        (v as u32, (v >> 32) as u32)
    }

    /// One calibrated sample of the device clock against the CPU's clocks
    /// (DEV_QUERY_TIMESTAMP): CLOCK_MONOTONIC and CLOCK_MONOTONIC_RAW are
    /// read before and after the device clock, and the midpoints reported;
    /// of a few tries, the one whose CPU reads lie closest together.
    ///
    /// `TIMESTAMP_LO` does not latch `TIMESTAMP_HI` (unlike the counters):
    /// the high half is read before and after the low half, and the read
    /// repeated if it changed in between (a carry out of the low half).
    /// `kernel::time::Instant` keeps its clock value private, so the
    /// absolute values come from the C clock functions.
    pub(crate) fn timestamp_sample(&self) -> Result<uapi::drm_ferrite_timestamp_info> {
        const TRIES: usize = 4;
        if self.info.features & regs::FEATURE_TIMESTAMP == 0 {
            return Err(EOPNOTSUPP);
        }
        let mut best: Option<uapi::drm_ferrite_timestamp_info> = None;
        for _ in 0..TRIES {
            if self.is_dead() {
                return Err(ENODEV);
            }
            let s = self.io(|bar| {
                // SAFETY: `ktime_get()` and `ktime_get_raw()` read the
                // timekeeper; callable in any context but NMI.
                let (mono0, raw0) = unsafe { (bindings::ktime_get(), bindings::ktime_get_raw()) };
                let hi = || u64::from(u32::from(bar.read(regs::TIMESTAMP_HI).value()));
                let gpu = loop {
                    let h = hi();
                    let lo = u64::from(u32::from(bar.read(regs::TIMESTAMP_LO).value()));
                    if hi() == h {
                        break (h << 32) | lo;
                    }
                };
                // SAFETY: as above.
                let (raw1, mono1) = unsafe { (bindings::ktime_get_raw(), bindings::ktime_get()) };
                let (mono0, mono1) = (mono0.max(0) as u64, mono1.max(0) as u64);
                let (raw0, raw1) = (raw0.max(0) as u64, raw1.max(0) as u64);
                let window = mono1.saturating_sub(mono0);
                uapi::drm_ferrite_timestamp_info {
                    timestamp_frequency: regs::TIMESTAMP_FREQUENCY,
                    gpu_timestamp: gpu,
                    cpu_monotonic_ns: mono0 + window / 2,
                    cpu_monotonic_raw_ns: raw0 + raw1.saturating_sub(raw0) / 2,
                    sample_window_ns: window,
                }
            })?;
            if best
                .as_ref()
                .is_none_or(|b| s.sample_window_ns < b.sample_window_ns)
            {
                best = Some(s);
            }
        }
        best.ok_or(ENODEV)
    }

    /// The device's 16 counters plus the driver's.
    pub(crate) fn counters(&self, kmap_user: u64) -> uapi::drm_ferrite_counters {
        let mut c = uapi::drm_ferrite_counters::default();
        // Not checked: the device's counters read as zeros once it is gone
        // (`ENODEV`); a counter out of range (`EINVAL`) was reported.
        let _ = self.try_io(|bar| {
            for (i, v) in c.hw.iter_mut().enumerate().take(regs::NUM_COUNTERS) {
                let (lo, hi) = (
                    regs::COUNTER_LO::checked_at(i)?,
                    regs::COUNTER_HI::checked_at(i)?,
                );
                // Reading the low half latches the high half.
                let lo = u64::from(u32::from(bar.read(lo).value()));
                let hi = u64::from(u32::from(bar.read(hi).value()));
                *v = (hi << 32) | lo;
            }
            Ok(())
        });
        let s = &self.stats;
        c.kmap_user_bytes = kmap_user;
        c.kmap_kernel_bytes = s.kmap_kernel_bytes.load(Relaxed);
        c.bytes_bound = s.bytes_bound.load(Relaxed);
        c.tlb_flushes = s.tlb_flushes.load(Relaxed);
        c.jobs_submitted = s.jobs_submitted.load(Relaxed);
        c.jobs_timedout = s.jobs_timedout.load(Relaxed);
        c.faults = s.faults.load(Relaxed);
        c
    }

    /// Write the device cache back to memory (and drop it).
    pub(crate) fn clean_cache(&self) -> Result {
        self.io(|bar| {
            clean_cache(bar);
            crate::mmu::sync(bar);
        })
    }

    /// Enable the job and MMU interrupts (all queues, all slots), and the
    /// global ones.
    pub(crate) fn enable_irqs(&self) -> Result {
        self.io(|bar| {
            bar.write_reg(regs::IRQ_MASK::zeroed().with_soft(true).with_error(true));
            bar.write_reg(regs::JOB_IRQ_MASK::all());
            bar.write_reg(regs::MMU_IRQ_MASK::all());
        })
    }

    /// Change `vm`'s page tables. `update` gets a [`LiveUpdate`], which it
    /// tells before it changes or removes existing entries, and returns the
    /// range whose existing entries it changed. If the VM has a slot, that
    /// range (and only it) is flushed from the TLB; if jobs of the VM are on
    /// ring buffers, or a queue of the VM holds a ring (a SUBMIT may start a
    /// job there at any moment, with a doorbell), the address space is
    /// LOCKed (queues wait for translations) from the first change to after
    /// the flush. Entries
    /// added where nothing was mapped need neither: the TLB caches no
    /// invalid translations.
    pub(crate) fn update_vm<R>(
        &self,
        vm: &VmAs,
        update: impl FnOnce(&LiveUpdate<'_>) -> (R, Option<(u64, u64)>),
    ) -> R {
        // Held throughout: its slot stays, and no queue of the VM gets a
        // ring; one that holds a ring may start a job (a doorbell takes no
        // slot lock), hence the LOCK below whenever one may run.
        let slots = self.slots.lock();
        let live = LiveUpdate {
            gpu: self,
            slot: vm.slot(),
            busy: vm.may_run(),
            locked: core::cell::Cell::new(false),
        };
        let (ret, range) = update(&live);
        if let Some(s) = live.slot {
            // Not checked: with the device gone (`ENODEV`) nothing
            // translates any more, and a slot out of range (`EINVAL`) was
            // reported. The cache is cleaned even then.
            let _ = self.try_io(|bar| {
                let mut res = Ok(());
                if let Some((start, end)) = range {
                    res = crate::mmu::flush_range(bar, s, start, end - start);
                    self.stats.tlb_flushes.add(1, Relaxed);
                    // Jobs of the VM may have left dirty lines of the pages
                    // just unmapped: write them back while the pages are
                    // still the VM's (a later eviction would write them
                    // into freed memory).
                    clean_cache(bar);
                }
                if live.locked.get() {
                    res = res.and(crate::mmu::unlock(bar, s));
                }
                // The caller frees the pages of removed mappings next.
                if range.is_some() || live.locked.get() {
                    crate::mmu::sync(bar);
                }
                res
            });
        }
        drop(slots);
        ret
    }

    /// Whether the asynchronous bind being applied is to fail (debugfs
    /// `inject_bind_failure`); counts the injection down.
    pub(crate) fn take_injected_bind_failure(&self) -> bool {
        take_one(&self.stats.inject_bind_failure)
    }

    /// Whether the page-table update being applied is to fail (debugfs
    /// `inject_pt_failure`); counts the injection down.
    pub(crate) fn take_injected_pt_failure(&self) -> bool {
        take_one(&self.stats.inject_pt_failure)
    }

    /// Take `vm` out of its slot, if it has one (its page tables are about
    /// to be freed).
    pub(crate) fn release(&self, vm: &VmAs) {
        let mut slots = self.slots.lock();
        slots.release(self, vm);
    }

    /// The device is being unbound: stop the hardware and fail every job.
    pub(crate) fn shutdown(&self) {
        self.dead.store(true, Relaxed);
        // Not checked: a device already gone (`ENODEV`, surprise removal)
        // has nothing left to stop.
        let _ = self.io(|bar| {
            bar.write_reg(regs::JOB_IRQ_MASK::zeroed());
            bar.write_reg(regs::MMU_IRQ_MASK::zeroed());
            bar.write_reg(regs::RESET::global());
            // Nothing runs any more when the jobs fail below.
            crate::mmu::sync(bar);
        });
        crate::recovery::fail_all(self, ENODEV);
        self.slots.lock().forget_all();
        crate::recovery::flush_work(self);
        // No mirror DMA mapping may outlive the binding: close the gate
        // (no fault work maps any more) and drop those there are.
        let mut gate = self.svm_gate.lock();
        *gate = false;
        self.vms.lock().for_each(|_, vm| {
            if let Some(m) = vm.mirror.as_ref() {
                m.unmap_all();
            }
        });
        drop(gate);
    }

    /// Count `n` more pages held by the driver (negative: released).
    pub(crate) fn pages_held(&self, n: i64) {
        if n >= 0 {
            let now = self.stats.pages_held.fetch_add(n as u64, Relaxed) + n as u64;
            let mut peak = self.stats.pages_held_peak.load(Relaxed);
            while now > peak {
                match self.stats.pages_held_peak.cmpxchg(peak, now, Relaxed) {
                    Ok(_) => break,
                    Err(p) => peak = p,
                }
            }
        } else {
            self.stats.pages_held.fetch_sub(n.unsigned_abs(), Relaxed);
        }
    }
}

/// Write the device cache back to memory and drop it (posted: follow with
/// [`crate::mmu::sync`] before relying on it).
pub(crate) fn clean_cache(bar: &Bar0<'_>) {
    bar.write_reg(regs::CACHE_CMD::clean_invalidate());
}

impl_has_delayed_work! {
    impl HasDelayedWork<Gpu, 0> for Gpu { self.watchdog }
    impl HasDelayedWork<Gpu, 2> for Gpu { self.tick }
}

impl_has_work! {
    impl HasWork<Gpu, 1> for Gpu { self.sched_work }
}

/// Count an injected failure down: whether one was left.
fn take_one(n: &Atomic<u32>) -> bool {
    let mut cur = n.load(Relaxed);
    while cur > 0 {
        match n.cmpxchg(cur, cur - 1, Relaxed) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}
