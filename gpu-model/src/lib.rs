// SPDX-License-Identifier: GPL-2.0
//! The Ferrite GPU device model: everything but the process entry point,
//! so that tests and the fuzz target can drive the device directly.

mod audit;
pub mod bus;
pub mod cache;
mod command;
pub mod context;
pub mod device;
pub mod dma;
pub mod exec;
pub mod fxhash;
pub mod logger;
pub mod mmu;
pub mod pci;
pub mod regs;
pub mod testbed;
pub mod vfio;
