// SPDX-License-Identifier: GPL-2.0

//! The device MMU: address-space slots, assigned to VMs on demand with LRU
//! eviction of idle VMs, and TLB maintenance of exactly the changed range.

use kernel::{
    io::Io,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    }, //
};

use crate::{
    driver::VA_BITS,
    gpu::{
        Bar0,
        Gpu, //
    },
    regs::{
        self,
        AsCommand,
        CheckedArray, //
    }, //
};

/// What a slot needs to translate for a VM; shared by the VM and the slot
/// it occupies.
pub(crate) struct VmAs {
    ttbr: u64,
    mair: u64,
    /// The slot runs in stall mode (a mirror VM, see [`crate::svm`]).
    stall: bool,
    /// Slot index + 1, or 0; changed only under the slot lock.
    slot: Atomic<u32>,
    /// Jobs of this VM on ring buffers, not ended.
    active_jobs: Atomic<u32>,
    /// Hardware rings running a queue of this VM: the VM cannot be evicted
    /// meanwhile.
    resident: Atomic<u32>,
    /// Bumped when a userptr invalidation gave up waiting for the VM's
    /// jobs: a job submitted under an older value may use pages the CPU
    /// has given away, and never starts ([`crate::recovery::stop_vm`]).
    pub(crate) gen: Atomic<u64>,
}

impl VmAs {
    pub(crate) fn new(ttbr: u64, mair: u64, stall: bool) -> Self {
        Self {
            ttbr,
            mair,
            stall,
            slot: Atomic::new(0),
            active_jobs: Atomic::new(0),
            resident: Atomic::new(0),
            gen: Atomic::new(0),
        }
    }

    /// The slot this VM occupies.
    pub(crate) fn slot(&self) -> Option<usize> {
        match self.slot.load(Relaxed) {
            0 => None,
            s => Some(s as usize - 1),
        }
    }

    /// Whether jobs of this VM are on the hardware.
    pub(crate) fn busy(&self) -> bool {
        self.active_jobs.load(Relaxed) != 0
    }

    /// Whether a queue of the VM may run while the caller holds the slot
    /// lock: it has jobs, or holds a ring (where a SUBMIT starts a job
    /// with a doorbell, without the slot lock).
    pub(crate) fn may_run(&self) -> bool {
        self.busy() || self.resident.load(Relaxed) != 0
    }

    /// A job of the VM went on a ring buffer.
    pub(crate) fn job_started(&self) {
        self.active_jobs.add(1, Relaxed);
    }

    /// A job of this VM left the hardware.
    pub(crate) fn job_done(&self) {
        self.active_jobs.fetch_sub(1, Relaxed);
    }

    /// A hardware ring no longer runs a queue of the VM (see
    /// [`AsSlots::activate`]).
    pub(crate) fn leave(&self) {
        self.resident.fetch_sub(1, Relaxed);
    }
}

struct Slot {
    vm: Option<Arc<VmAs>>,
    last_used: u64,
}

/// The slot table, behind [`Gpu::slots`].
pub(crate) struct AsSlots {
    slots: KVec<Slot>,
    tick: u64,
    /// Evictions so far (debugfs).
    pub(crate) evictions: u64,
}

impl AsSlots {
    pub(crate) fn new(n: usize) -> Result<Self> {
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(
                Slot {
                    vm: None,
                    last_used: 0,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            slots,
            tick: 0,
            evictions: 0,
        })
    }

    /// Give `vm` a slot for a hardware ring that is about to run one of its
    /// queues (evicting the least recently used VM that no ring runs if no
    /// slot is free), and count the ring until [`VmAs::leave`]. `EBUSY`
    /// when rings run every slot's VM (never with fewer rings than slots).
    pub(crate) fn activate(&mut self, gpu: &Gpu, vm: &Arc<VmAs>) -> Result<usize> {
        self.tick += 1;
        if let Some(s) = vm.slot() {
            self.slots[s].last_used = self.tick;
            vm.resident.add(1, Relaxed);
            return Ok(s);
        }
        let free = self.slots.iter().position(|s| s.vm.is_none());
        let victim = free.or_else(|| {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.vm.as_ref().is_some_and(|v| v.resident.load(Relaxed) == 0))
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i)
        });
        let s = victim.ok_or(EBUSY)?;
        if let Some(old) = self.slots[s].vm.take() {
            gpu.try_io(|bar| {
                if old.stall {
                    // A queue suspended inside a stall left the slot
                    // stalled: let it go (the queue faults again when it
                    // is restored).
                    end_stall(bar, s, true)?;
                }
                disable(bar, s)
            })?;
            old.slot.store(0, Relaxed);
            self.evictions += 1;
        }
        gpu.try_io(|bar| program(bar, s, vm.ttbr, vm.mair, vm.stall))?;
        vm.slot.store(s as u32 + 1, Relaxed);
        vm.resident.add(1, Relaxed);
        self.slots[s] = Slot {
            vm: Some(vm.clone()),
            last_used: self.tick,
        };
        Ok(s)
    }

    pub(crate) fn release(&mut self, gpu: &Gpu, vm: &VmAs) {
        if let Some(s) = vm.slot() {
            // The VM's tables are freed next. The result is not needed:
            // with the device gone (`ENODEV`, at unbind) no slot translates
            // any more, and a slot out of range (`EINVAL`) was reported
            // where it arose; either way the VM leaves its slot.
            let _ = gpu.try_io(|bar| {
                disable(bar, s)?;
                sync(bar);
                Ok(())
            });
            vm.slot.store(0, Relaxed);
            self.slots[s].vm = None;
        }
    }

    /// After a global reset every slot is disabled.
    pub(crate) fn forget_all(&mut self) {
        for s in self.slots.iter_mut() {
            if let Some(vm) = s.vm.take() {
                vm.slot.store(0, Relaxed);
            }
        }
    }
}

fn command(bar: &Bar0<'_>, s: usize, cmd: AsCommand) -> Result {
    bar.write(
        regs::AS_COMMAND::checked_at(s)?,
        regs::AS_COMMAND::zeroed().with_command(cmd),
    );
    Ok(())
}

fn set_range(bar: &Bar0<'_>, s: usize, start: u64, size: u64) -> Result {
    let (alo, ahi) = Gpu::split(start);
    let (slo, shi) = Gpu::split(size);
    let (a0, a1, s0, s1) = (
        regs::AS_LOCKADDR_LO::checked_at(s)?,
        regs::AS_LOCKADDR_HI::checked_at(s)?,
        regs::AS_LOCKSIZE_LO::checked_at(s)?,
        regs::AS_LOCKSIZE_HI::checked_at(s)?,
    );
    bar.write(a0, regs::AS_LOCKADDR_LO::zeroed().with_value(alo));
    bar.write(a1, regs::AS_LOCKADDR_HI::zeroed().with_value(ahi));
    bar.write(s0, regs::AS_LOCKSIZE_LO::zeroed().with_value(slo));
    bar.write(s1, regs::AS_LOCKSIZE_HI::zeroed().with_value(shi));
    Ok(())
}

/// LOCK a range: the slot's queues wait for accesses to it.
pub(crate) fn lock_range(bar: &Bar0<'_>, s: usize, start: u64, size: u64) -> Result {
    set_range(bar, s, start, size)?;
    command(bar, s, AsCommand::Lock)?;
    // The tables change next: the lock must hold before they do.
    sync(bar);
    Ok(())
}

/// Wait until the device has carried out every earlier register write.
///
/// Writes to BAR0 are posted: one returns before the device acts on it
/// (QEMU's vfio-user proxy posts them too). A read returns only after all
/// earlier writes took effect, so a command whose effect the driver relies
/// on (a TLB flush before pages are freed, a queue reset before a job's
/// memory is given back, a slot disabled before its tables go) is followed
/// by one.
pub(crate) fn sync(bar: &Bar0<'_>) {
    // The read is the point, not its value.
    let _ = bar.read(regs::ID);
}

/// FLUSH_RANGE: invalidate the TLB entries overlapping the range.
pub(crate) fn flush_range(bar: &Bar0<'_>, s: usize, start: u64, size: u64) -> Result {
    set_range(bar, s, start, size)?;
    command(bar, s, AsCommand::FlushRange)
}

pub(crate) fn unlock(bar: &Bar0<'_>, s: usize) -> Result {
    command(bar, s, AsCommand::Unlock)
}

/// Point slot `s` at a page table and enable it (UPDATE also invalidates
/// the slot's TLB entries and clears its fault record).
fn program(bar: &Bar0<'_>, s: usize, ttbr: u64, mair: u64, stall: bool) -> Result {
    let (tlo, thi) = Gpu::split(ttbr);
    let (mlo, mhi) = Gpu::split(mair);
    let (t0, t1, m0, m1, cfg) = (
        regs::AS_TRANSTAB_LO::checked_at(s)?,
        regs::AS_TRANSTAB_HI::checked_at(s)?,
        regs::AS_MEMATTR_LO::checked_at(s)?,
        regs::AS_MEMATTR_HI::checked_at(s)?,
        regs::AS_CONFIG::checked_at(s)?,
    );
    bar.write(t0, regs::AS_TRANSTAB_LO::zeroed().with_value(tlo));
    bar.write(t1, regs::AS_TRANSTAB_HI::zeroed().with_value(thi));
    bar.write(m0, regs::AS_MEMATTR_LO::zeroed().with_value(mlo));
    bar.write(m1, regs::AS_MEMATTR_HI::zeroed().with_value(mhi));
    bar.write(
        cfg,
        regs::AS_CONFIG::zeroed()
            .with_const_va_bits::<{ VA_BITS }>()
            .with_enable(true)
            .with_stall(stall),
    );
    command(bar, s, AsCommand::Update)
}

/// End the stall of slot `s`: RESUME its stalled accesses (`resume`), or
/// ABORT them (their queues stop with an MMU fault). Ignored by a slot that
/// is not stalled.
pub(crate) fn end_stall(bar: &Bar0<'_>, s: usize, resume: bool) -> Result {
    command(
        bar,
        s,
        if resume {
            AsCommand::Resume
        } else {
            AsCommand::Abort
        },
    )
}

/// Disable slot `s` (UPDATE with ENABLE clear drops its TLB entries).
fn disable(bar: &Bar0<'_>, s: usize) -> Result {
    bar.write(regs::AS_CONFIG::checked_at(s)?, regs::AS_CONFIG::zeroed());
    command(bar, s, AsCommand::Update)
}

/// A fault recorded by a slot.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fault {
    pub(crate) status: u32,
    pub(crate) addr: u64,
}

/// Read slot `s`'s fault record.
pub(crate) fn read_fault(bar: &Bar0<'_>, s: usize) -> Result<Fault> {
    let (st, lo, hi) = (
        regs::AS_FAULTSTATUS::checked_at(s)?,
        regs::AS_FAULTADDR_LO::checked_at(s)?,
        regs::AS_FAULTADDR_HI::checked_at(s)?,
    );
    let status = bar.read(st).into_raw();
    let lo = u64::from(u32::from(bar.read(lo).value()));
    let hi = u64::from(u32::from(bar.read(hi).value()));
    Ok(Fault {
        status,
        addr: (hi << 32) | lo,
    })
}
