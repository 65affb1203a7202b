// SPDX-License-Identifier: GPL-2.0

//! MSI-X interrupts, each with a threaded handler: vector 0 (global:
//! self-test and errors), vector 1 (jobs: fences and queue errors) and
//! vector 2 (MMU faults).

use kernel::{
    io::{
        poll::read_poll_timeout,
        Io, //
    },
    irq::{
        Flags,
        IrqReturn,
        ThreadedHandler,
        ThreadedIrqReturn,
        ThreadedRegistration, //
    },
    pci::IrqVectorRegistration,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    }, //
};

use crate::{
    gpu::Gpu,
    recovery,
    regs::{
        self,
        CheckedArray, //
    },
    sched, //
};

/// The interrupt handlers of a device, one per MSI-X vector.
///
/// Fields drop in declaration order, the reverse of their registration.
#[pin_data]
pub(crate) struct Irqs<'a> {
    #[pin]
    job: ThreadedRegistration<'a, JobIrq>,
    #[pin]
    mmu: ThreadedRegistration<'a, MmuIrq>,
    #[pin]
    global: ThreadedRegistration<'a, GlobalIrq>,
}

impl<'a> Irqs<'a> {
    /// Register the handlers of `gpu` on `vectors`: the global vector's
    /// first, then the MMU's, then the job vector's.
    ///
    /// # Safety
    ///
    /// Callers must not `mem::forget()` the resulting [`Irqs`] or otherwise
    /// prevent its [`Drop`] implementation from running.
    pub(crate) unsafe fn new(
        vectors: &'a IrqVectorRegistration<'a>,
        gpu: &Arc<Gpu>,
    ) -> impl PinInit<Self, Error> + 'a {
        let (on_global, on_mmu, on_job) = (
            GlobalIrq::new(gpu.clone()),
            MmuIrq::new(gpu.clone()),
            JobIrq::new(gpu.clone()),
        );
        try_pin_init!(Self {
            // SAFETY: a field of the `Irqs`, which the caller does not forget.
            global <- unsafe { register(vectors, VECTOR_GLOBAL, c"ferrite", on_global) },
            // SAFETY: as above.
            mmu <- unsafe { register(vectors, VECTOR_MMU, c"ferrite-mmu", on_mmu) },
            // SAFETY: as above.
            job <- unsafe { register(vectors, VECTOR_JOB, c"ferrite-job", on_job) },
        })
    }
}

/// Register `handler` as the threaded handler of vector `index` of
/// `vectors`.
///
/// # Safety
///
/// Callers must not `mem::forget()` the resulting registration or otherwise
/// prevent its [`Drop`] implementation from running.
unsafe fn register<'a, T: ThreadedHandler + 'a>(
    vectors: &'a IrqVectorRegistration<'a>,
    index: usize,
    name: &'static CStr,
    handler: T,
) -> impl PinInit<ThreadedRegistration<'a, T>, Error> + 'a {
    pin_init::pin_init_scope(move || {
        let request = vectors.index(index)?.into();
        // SAFETY: the caller does not forget the registration.
        Ok(unsafe {
            ThreadedRegistration::new(request, Flags::TRIGGER_NONE, name, Ok::<_, Error>(handler))
        })
    })
}

/// MSI-X vectors the driver uses.
pub(crate) const NUM_VECTORS: u32 = 3;
/// The global vector (`IRQ_STATUS`).
pub(crate) const VECTOR_GLOBAL: usize = 0;
/// The job vector (`JOB_IRQ_STATUS`).
pub(crate) const VECTOR_JOB: usize = 1;
/// The MMU vector (`MMU_IRQ_STATUS`).
pub(crate) const VECTOR_MMU: usize = 2;

/// Handler of the global vector.
pub(crate) struct GlobalIrq {
    gpu: Arc<Gpu>,
}

impl GlobalIrq {
    pub(crate) fn new(gpu: Arc<Gpu>) -> Self {
        Self { gpu }
    }
}

impl ThreadedHandler for GlobalIrq {
    fn handle_threaded(&self) -> IrqReturn {
        let ours = self
            .gpu
            .io(|bar| {
                let status = bar.read(regs::IRQ_STATUS);
                let ours = regs::IRQ_STATUS::zeroed()
                    .with_soft(status.soft())
                    .with_error(status.error());
                if ours.into_raw() != 0 {
                    // Write one to clear what we handle.
                    bar.write_reg(ours);
                }
                ours
            })
            // A device that is gone raised nothing.
            .unwrap_or_else(|_| regs::IRQ_STATUS::zeroed());
        if ours.into_raw() == 0 {
            return IrqReturn::None;
        }
        if ours.soft() {
            self.gpu.stats.soft_irqs.add(1, Relaxed);
        }
        IrqReturn::Handled
    }

    fn handle(&self) -> ThreadedIrqReturn {
        ThreadedIrqReturn::WakeThread
    }
}

/// Handler of the job vector: completes fences, fails faulting jobs, and
/// tells the scheduler about suspended rings. Runs in a fence-signalling
/// section.
pub(crate) struct JobIrq {
    gpu: Arc<Gpu>,
}

impl JobIrq {
    pub(crate) fn new(gpu: Arc<Gpu>) -> Self {
        Self { gpu }
    }
}

impl ThreadedHandler for JobIrq {
    fn handle_threaded(&self) -> IrqReturn {
        let gpu = &self.gpu;
        let Ok(status) = gpu.io(|bar| {
            let status = bar.read(regs::JOB_IRQ_STATUS);
            if status.into_raw() != 0 {
                // Write one to clear every bit read.
                bar.write_reg(status);
            }
            status
        }) else {
            return IrqReturn::None;
        };
        if status.into_raw() == 0 {
            return IrqReturn::None;
        }
        let _signalling = kernel::dma_fence::SignallingSection::begin();
        for r in 0..regs::MAX_QUEUES {
            if status.fenced(r) {
                sched::complete(gpu, r);
            }
            if status.stopped_queue(r) {
                // Unread only if the device is gone (`ENODEV`: unbind
                // fails the job) or on an index out of range, reported
                // where it arose.
                if let Ok((err, rec)) = gpu.try_io(|bar| recovery::read_error(gpu, bar, r)) {
                    recovery::ring_failed(gpu, r, err, rec);
                }
            }
            if status.suspended_queue(r) {
                sched::suspended(gpu, r);
            }
        }
        IrqReturn::Handled
    }

    fn handle(&self) -> ThreadedIrqReturn {
        ThreadedIrqReturn::WakeThread
    }
}

/// Handler of the MMU vector. In fault-and-stop mode the faulting queue
/// also raises its job error bit, where the job is failed; here the fault
/// is acknowledged.
pub(crate) struct MmuIrq {
    gpu: Arc<Gpu>,
}

impl MmuIrq {
    pub(crate) fn new(gpu: Arc<Gpu>) -> Self {
        Self { gpu }
    }
}

impl ThreadedHandler for MmuIrq {
    fn handle_threaded(&self) -> IrqReturn {
        let status = self
            .gpu
            .io(|bar| {
                let status = bar.read(regs::MMU_IRQ_STATUS);
                if status.into_raw() != 0 {
                    // Write one to clear every bit read.
                    bar.write_reg(status);
                }
                status.into_raw()
            })
            // A device that is gone raised nothing.
            .unwrap_or(0);
        if status == 0 {
            return IrqReturn::None;
        }
        for slot in 0..regs::MAX_AS {
            if status & (1 << slot) != 0 {
                stalled_slot(&self.gpu, slot);
            }
        }
        IrqReturn::Handled
    }

    fn handle(&self) -> ThreadedIrqReturn {
        ThreadedIrqReturn::WakeThread
    }
}

/// If slot `slot` stalled on a fault (a mirror VM's, the only VMs whose
/// slots run in stall mode), hand the fault to the VM's fault work and let
/// the stalled ring go to a waiting queue.
fn stalled_slot(gpu: &Arc<Gpu>, slot: usize) {
    let Ok(Some(fault)) = gpu.try_io(|bar| {
        let st = bar.read(regs::AS_STATUS::checked_at(slot)?);
        if !st.stalled() {
            return Ok(None);
        }
        crate::mmu::read_fault(bar, slot).map(Some)
    }) else {
        return;
    };
    let ring = ((fault.status >> 8) & 0xf) as usize;
    let vm = gpu.sched.lock().queue_on(ring).map(|q| q.vm.clone());
    match vm {
        Some(vm) if vm.mirror.is_some() && vm.hw.slot() == Some(slot) => {
            crate::vm::queue_fault(
                vm,
                crate::svm::Pending {
                    slot,
                    fault,
                    at: Instant::now(),
                },
            );
            crate::sched::stalled(gpu, ring);
        }
        _ => {
            // The queue left its ring meanwhile (suspended inside the
            // stall): the access was abandoned, and the queue faults again
            // where it is restored. Let the slot go.
            let _ = gpu.try_io(|bar| crate::mmu::end_stall(bar, slot, true));
        }
    }
}

/// Raise a software interrupt and wait for the handler to see it: proves
/// the MSI-X path from the device to the driver works. Returns how long the
/// round trip took (one register write, one interrupt, the threaded
/// handler).
pub(crate) fn self_test(gpu: &Gpu) -> Result<Delta> {
    let before = gpu.stats.soft_irqs.load(Relaxed);
    let start = Instant::<Monotonic>::now();
    gpu.io(|bar| {
        bar.write_reg(regs::IRQ_MASK::zeroed().with_soft(true).with_error(true));
        bar.write_reg(regs::IRQ_RAISE::zeroed().with_soft(true));
    })?;
    read_poll_timeout(
        || Ok(gpu.stats.soft_irqs.load(Relaxed)),
        |n| *n != before,
        Delta::from_micros(11),
        Delta::from_millis(2000),
    )?;
    Ok(start.elapsed())
}
