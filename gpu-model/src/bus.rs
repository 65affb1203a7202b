// SPDX-License-Identifier: GPL-2.0
//! What connects a queue engine ([`crate::exec`]) to the device
//! ([`crate::device`]): the state they share behind the device lock, and
//! the [`Bus`] trait, the one way the engine reaches the rest of the
//! device.
//!
//! The device owns the engines (it starts one per queue) and implements
//! [`Bus`]; the engine knows the trait and this module's types, not the
//! device, so the two do not import each other. The device's own
//! registers (interrupt status and masks, `SCRATCH`, `RESET_COUNT`, the
//! counter latch) live under the same lock, in [`State::regs`], but their
//! type is the bus's [`Bus::Regs`], opaque to the engine: an engine raises
//! an interrupt through the bus, which also signals its MSI-X vector.

use std::sync::MutexGuard;
use std::time::Duration;

use crate::audit::Audit;
use crate::cache::Cache;
use crate::context::Position;
use crate::dma::DmaSpace;
use crate::mmu::{FaultKind, Tlb};
use crate::regs::{NUM_AS, NUM_QUEUES};

/// An address-space slot.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct AsSlot {
    pub transtab: u64,
    pub memattr: u64,
    pub config: u32,
    pub lockaddr: u64,
    pub locksize: u64,
    /// Configuration latched by UPDATE: (root, va_bits) when enabled.
    pub active: Option<(u64, u32)>,
    pub stall_mode: bool,
    pub locked: Option<(u64, u64)>,
    pub status: u32,
    pub faultstatus: u32,
    pub faultaddr: u64,
    /// Bumped by RESUME/ABORT; a stalled queue waits for it to change.
    pub stall_gen: u64,
    pub stall_abort: bool,
}

/// A hardware queue's registers.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct QueueRegs {
    pub ring_base: u64,
    pub ring_size: u32,
    pub as_slot: u32,
    pub head: u32,
    pub tail: u32,
    pub enabled: bool,
    pub status: u32,
    pub seqno: u64,
    pub error: u32,
    pub error_offset: u32,
    /// GPU VA of the context save area (`Q_CONTEXT`).
    pub context: u64,
    /// Where the queue is inside the ring command at HEAD.
    pub pos: Position,
    /// A suspend was requested at this device time (`TIMESTAMP`).
    pub suspend_req: Option<u64>,
    /// RESTORE was written: read the context before executing anything.
    pub restore_pending: bool,
    /// Bumped by queue and global reset: work in flight is abandoned.
    pub gen: u64,
}

/// Everything behind the device lock. `R` is the device's own registers
/// ([`Bus::Regs`]): here so that one lock covers them, out of reach of
/// the code that does not know their type.
pub(crate) struct State<R> {
    /// The device's own registers.
    pub regs: R,
    pub slots: [AsSlot; NUM_AS],
    pub queues: [QueueRegs; NUM_QUEUES],
    pub tlb: Tlb,
    pub cache: Cache,
    /// The audit of the driver, if it is on: this device's, as its TLB
    /// and its guest memory are.
    pub audit: Option<Audit>,
    /// The device is going away: the engines return.
    pub shutdown: bool,
}

impl<R> State<R> {
    /// The state of a device after a power-on: `tlb_entries` TLB entries,
    /// `cache_lines` cache lines.
    pub fn new(regs: R, tlb_entries: usize, cache_lines: usize) -> Self {
        State {
            regs,
            slots: [AsSlot::default(); NUM_AS],
            queues: [QueueRegs::default(); NUM_QUEUES],
            tlb: Tlb::new(tlb_entries),
            cache: Cache::new(cache_lines),
            audit: None,
            shutdown: false,
        }
    }
}

/// The device lock, held.
pub(crate) type Guard<'a, R> = MutexGuard<'a, State<R>>;

/// An MMU fault of a queue, as the device records it in the slot's
/// `AS_FAULTSTATUS` and `AS_FAULTADDR`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fault {
    pub slot: usize,
    pub queue: usize,
    pub kind: FaultKind,
    pub va: u64,
    pub write: bool,
}

/// What a queue engine needs from the device it is part of.
pub(crate) trait Bus: Sync {
    /// The device's own registers ([`State::regs`]).
    type Regs;

    /// Take the device lock.
    fn lock(&self) -> Guard<'_, Self::Regs>;

    /// Release the lock until queue `q`'s engine is woken or `d` (if any)
    /// has passed, then take it again.
    fn wait<'a>(
        &'a self,
        q: usize,
        g: Guard<'a, Self::Regs>,
        d: Option<Duration>,
    ) -> Guard<'a, Self::Regs>;

    /// Release the lock between two steps and take it again, letting the
    /// MMIO accesses waiting for it in first.
    fn let_mmio_in<'a>(&'a self, g: Guard<'a, Self::Regs>) -> Guard<'a, Self::Regs>;

    /// Wake every queue's engine (a value a WAIT polls may have changed).
    fn wake_all(&self);

    /// Guest memory, as the device reaches it.
    fn memory(&self) -> &DmaSpace;

    /// The device's DMA reach (`DMA_ADDR_BITS`).
    fn dma_addr_bits(&self) -> u32;

    /// The device time (`TIMESTAMP`), in nanoseconds.
    fn timestamp(&self) -> u64;

    /// Add `n` to counter `c` (`regs::counter`).
    fn count(&self, c: usize, n: u64);

    /// Count `n` bytes read as zeros from (or, with `write`, written and
    /// dropped into) the null aperture.
    fn count_null(&self, write: bool, n: u64);

    /// Record an MMU fault on its slot and raise the MMU interrupt.
    fn record_fault(&self, s: &mut State<Self::Regs>, f: Fault);

    /// Set bit `bit` of `JOB_IRQ_STATUS` (see `regs::job_irq`) and raise
    /// the job interrupt.
    fn raise_job(&self, s: &mut State<Self::Regs>, bit: u32);

    /// Clean and/or invalidate the device cache (`regs::cache` flags), as
    /// `CACHE_CMD` does.
    fn cache_cmd(&self, s: &mut State<Self::Regs>, flags: u32);
}
