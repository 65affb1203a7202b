// SPDX-License-Identifier: GPL-2.0

//! MSI-X interrupts: vector 0 (global: self-test and errors), with a
//! threaded handler. Job and MMU vectors come with job submission.

use kernel::{
    io::{poll::read_poll_timeout, Io},
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::Delta,
};

use crate::{driver::Bar0, regs};

/// MSI-X vectors the driver uses.
pub(crate) const NUM_VECTORS: u32 = 3;
/// The global vector (`IRQ_STATUS`).
pub(crate) const VECTOR_GLOBAL: usize = 0;

/// Handler of the global vector.
#[pin_data]
pub(crate) struct GlobalIrq<'a> {
    bar: Arc<Bar0<'a>>,
    /// Software interrupts seen (the probe self-test raises one).
    soft: Atomic<u32>,
}

impl<'a> GlobalIrq<'a> {
    pub(crate) fn new(bar: Arc<Bar0<'a>>) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(Self {
            bar,
            soft: Atomic::new(0),
        })
    }

    pub(crate) fn soft_count(&self) -> u32 {
        self.soft.load(Relaxed)
    }
}

impl ThreadedHandler for GlobalIrq<'_> {
    fn handle_threaded(&self) -> IrqReturn {
        let status = u32::from(self.bar.read(regs::IRQ_STATUS).status());
        let ours = status & (regs::IRQ_SOFT | regs::IRQ_ERROR);
        if ours == 0 {
            return IrqReturn::None;
        }
        // Write one to clear what we handle.
        self.bar
            .write_reg(regs::IRQ_STATUS::zeroed().with_status(ours));
        if ours & regs::IRQ_SOFT != 0 {
            self.soft.add(1, Relaxed);
        }
        IrqReturn::Handled
    }

    fn handle(&self) -> ThreadedIrqReturn {
        ThreadedIrqReturn::WakeThread
    }
}

/// Raise a software interrupt and wait for the handler to see it: proves
/// the MSI-X path from the device to the driver works.
pub(crate) fn self_test(bar: &Bar0<'_>, irq: &GlobalIrq<'_>) -> Result {
    let before = irq.soft_count();
    bar.write_reg(regs::IRQ_MASK::zeroed().with_mask(regs::IRQ_SOFT | regs::IRQ_ERROR));
    bar.write_reg(regs::IRQ_RAISE::zeroed().with_bits(regs::IRQ_SOFT));
    read_poll_timeout(
        || Ok(irq.soft_count()),
        |n| *n != before,
        Delta::from_millis(1),
        Delta::from_millis(2000),
    )?;
    Ok(())
}
