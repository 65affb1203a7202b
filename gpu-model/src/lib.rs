// SPDX-License-Identifier: GPL-2.0
//! The Ferrite GPU device model: everything but the process entry point,
//! so that tests, the fuzz target and the benchmark can drive the device
//! directly. It exposes what they and `main` use: the [`Device`] and its
//! [`Options`], the register map ([`regs`]), the vfio-user backend
//! ([`vfio`]), the log backend ([`logger`]) and the test bed
//! ([`testbed`]); the rest is the device's inside.
//!
//! Inside, `device` is the register file: it starts a queue engine
//! (`exec`) per queue, which reaches the rest of the device only through
//! the `bus::Bus` trait and the state behind the device lock
//! (`bus::State`). An engine fetches commands (`command`) through the MMU
//! (`mmu`: walker and TLB) and moves data through the device cache
//! (`cache`) to and from guest memory (`dma`); a suspend saves its
//! position in a context save area (`context`); `audit` checks the
//! driver's TLB discipline. `pci` is the configuration space.

mod audit;
mod bus;
mod cache;
mod command;
mod context;
mod device;
mod dma;
mod exec;
mod fxhash;
pub mod logger;
mod mmu;
mod pci;
pub mod regs;
pub mod testbed;
pub mod vfio;

pub use device::{Device, Options};
