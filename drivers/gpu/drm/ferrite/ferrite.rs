// SPDX-License-Identifier: GPL-2.0

//! Ferrite: DRM render driver for the Ferrite GPU.
//!
//! The Ferrite GPU is a unified-memory GPU whose MMU belongs to the device
//! (as on Tegra, Mali or Apple AGX): the driver owns the GPU page tables and
//! uses the DMA API only below the GPU MMU. The hardware is specified in
//! `Documentation/gpu/ferrite-hw.rst`.

use crate::driver::FerritePciDriver;

mod bind;
mod coredump;
mod debugfs;
mod driver;
mod file;
mod gem;
mod gpu;
mod irq;
mod mmu;
mod queue;
mod recovery;
mod regs;
mod ring;
mod sched;
mod svm;
mod userptr;
mod vm;

kernel::module_pci_driver! {
    type: FerritePciDriver,
    name: "ferrite",
    authors: ["The Ferrite developers"],
    description: "DRM render driver for the Ferrite GPU",
    license: "GPL",
    params: {
        sched_tick_ms: u32 {
            default: 10,
            description: "Timeslice of a queue when others of its priority wait (ms)",
        },
    },
}
