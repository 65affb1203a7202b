// SPDX-License-Identifier: GPL-2.0
//! The Ferrite GPU: registers, address-space slots, queues and the
//! interrupts that tie them together.
//!
//! One mutex guards the device state. The vfio-user thread takes it for
//! each MMIO access; each queue's worker thread takes it while executing
//! and releases it between chunks of work and while waiting, so QEMU is
//! always answered promptly.
//!
//! This module is the register file and the device's side of the bus: it
//! starts a queue engine ([`crate::exec`]) per queue and serves it through
//! [`Bus`], which is all the engine knows of the device.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, trace};

use crate::audit::Audit;
use crate::bus::{AsSlot, Bus, Fault, Guard, QueueRegs, State};
use crate::dma::DmaSpace;
use crate::exec;
use crate::regs::*;

/// Options of one model process: the constraints it advertises.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Width of the bus addresses the device can emit (`--dma-bits`), at
    /// most 47 in effect: `DMA_ADDR_BITS` is below the null aperture.
    pub dma_addr_bits: u32,
    /// Largest DMA segment the device accepts, in bytes.
    pub dma_max_segment: u32,
    /// Segment boundary mask (`--seg-boundary`): no DMA segment may cross
    /// a multiple of `dma_seg_boundary + 1`; [`NO_SEG_BOUNDARY`] for none.
    /// Valid as [`valid_seg_boundary`] says.
    pub dma_seg_boundary: u64,
    /// TLB entries.
    pub tlb_entries: usize,
    /// Device cache lines (4 KiB each).
    pub cache_lines: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dma_addr_bits: 48,
            dma_max_segment: 1 << 31,
            dma_seg_boundary: NO_SEG_BOUNDARY,
            tlb_entries: 1024,
            cache_lines: 16384,
        }
    }
}

/// The device's own registers, under the device lock with the state it
/// shares with the queue engines ([`State::regs`]). Only the register file
/// reads and writes them: an engine raises interrupts through [`Bus`].
#[derive(Default)]
pub(crate) struct Regs {
    scratch: u32,
    irq_status: u32,
    irq_mask: u32,
    job_irq_status: u32,
    job_irq_mask: u32,
    mmu_irq_status: u32,
    mmu_irq_mask: u32,
    reset_count: u32,
    counter_latch: u32,
}

/// The device, shared by the vfio-user thread and the queue workers.
pub struct Device {
    opts: Options,
    dma: DmaSpace,
    state: Mutex<State<Regs>>,
    /// One per queue worker: notified on its doorbell and control writes,
    /// and (all of them) on AS commands, resets and writes a WAIT may see.
    qcond: [Condvar; NUM_QUEUES],
    counters: [AtomicU64; NUM_COUNTERS],
    /// Bytes of command accesses that went to the null aperture: read as
    /// zeros, and written (dropped). Not registers: the counter block is
    /// full.
    null_read: AtomicU64,
    null_written: AtomicU64,
    /// MMIO accesses waiting for the lock: a worker that releases the lock
    /// between steps lets them in before it takes the lock again.
    mmio_waiting: AtomicUsize,
    msix: Mutex<Vec<Option<File>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    start: Instant,
}

/// The state behind the device lock, on this device.
type DevState = State<Regs>;

impl Device {
    pub fn new(opts: Options) -> Self {
        Device {
            opts,
            dma: DmaSpace::default(),
            state: Mutex::new(State {
                audit: Audit::from_env(),
                ..State::new(Regs::default(), opts.tlb_entries, opts.cache_lines)
            }),
            qcond: Default::default(),
            counters: Default::default(),
            null_read: AtomicU64::new(0),
            null_written: AtomicU64::new(0),
            mmio_waiting: AtomicUsize::new(0),
            msix: Mutex::new((0..MSIX_VECTORS).map(|_| None).collect()),
            workers: Mutex::new(Vec::new()),
            start: Instant::now(),
        }
    }

    /// Turn the audit of the driver on or off (module `audit`). A
    /// device starts with it on if `FERRITE_MODEL_AUDIT` is set.
    pub fn set_audit(&self, on: bool) {
        let mut s = self.lock();
        if !on {
            s.audit = None;
        } else if s.audit.is_none() {
            s.audit = Some(Audit::default());
        }
    }

    /// Start one worker thread per queue.
    pub fn start(self: &Arc<Self>) {
        let mut w = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for q in 0..NUM_QUEUES {
            let dev = self.clone();
            let h = std::thread::Builder::new()
                .name(format!("queue{q}"))
                .spawn(move || exec::worker(&*dev, q))
                .expect("cannot spawn a queue thread");
            w.push(h);
        }
    }

    /// Stop the workers and wait for them.
    pub fn stop(&self) {
        self.lock().shutdown = true;
        self.wake_all();
        let handles: Vec<_> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }

    /// The lock for an MMIO access: announced, so that a worker going
    /// from one step to the next lets it in (a mutex is not fair).
    fn lock_mmio(&self) -> Guard<'_, Regs> {
        self.mmio_waiting.fetch_add(1, Ordering::SeqCst);
        let g = self.lock();
        self.mmio_waiting.fetch_sub(1, Ordering::SeqCst);
        g
    }

    /// Guest memory, as the device reaches it (QEMU maps and unmaps it).
    pub(crate) fn memory(&self) -> &DmaSpace {
        &self.dma
    }

    /// Forget all of guest memory (the client has gone).
    pub fn unmap_all(&self) {
        self.dma.clear();
    }

    /// The value of counter `c` (`regs::counter`).
    pub(crate) fn counter(&self, c: usize) -> u64 {
        self.counters[c].load(Ordering::Relaxed)
    }

    /// Bytes read as zeros from, and bytes of writes dropped into, the null
    /// aperture since the device was created.
    pub fn null_traffic(&self) -> (u64, u64) {
        (
            self.null_read.load(Ordering::Relaxed),
            self.null_written.load(Ordering::Relaxed),
        )
    }

    /// The device time (`TIMESTAMP`): nanoseconds since the device was
    /// created.
    pub fn timestamp(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A 32-bit read of BAR0. Unknown offsets read as zero.
    pub(crate) fn mmio_read(&self, offset: u32) -> u32 {
        self.count(counter::MMIO_READS, 1);
        let mut s = self.lock_mmio();
        let v = self.read_reg(&mut s, offset);
        trace!("mmio read {offset:#06x} = {v:#x}");
        v
    }

    fn read_reg(&self, s: &mut DevState, offset: u32) -> u32 {
        match offset {
            ID => FERRITE_ID,
            VERSION => FERRITE_VERSION,
            FEATURES => features::ALL,
            DMA_ADDR_BITS => self.dma_addr_bits(),
            DMA_MAX_SEGMENT => self.opts.dma_max_segment,
            DMA_SEG_BOUNDARY_LO => self.opts.dma_seg_boundary as u32,
            DMA_SEG_BOUNDARY_HI => (self.opts.dma_seg_boundary >> 32) as u32,
            SCRATCH => s.regs.scratch,
            NUM_QUEUES_REG => NUM_QUEUES as u32,
            NUM_AS_REG => NUM_AS as u32,
            IRQ_STATUS => self.irq_summary(s),
            IRQ_MASK => s.regs.irq_mask,
            RESET_COUNT => s.regs.reset_count,
            CACHE_DIRTY => s.cache.dirty_lines() as u32,
            JOB_IRQ_STATUS => s.regs.job_irq_status,
            JOB_IRQ_MASK => s.regs.job_irq_mask,
            MMU_IRQ_STATUS => s.regs.mmu_irq_status,
            MMU_IRQ_MASK => s.regs.mmu_irq_mask,
            TIMESTAMP_LO => self.timestamp() as u32,
            TIMESTAMP_HI => (self.timestamp() >> 32) as u32,
            o if (COUNTER_BASE..COUNTER_BASE + 8 * NUM_COUNTERS as u32).contains(&o) => {
                let i = ((o - COUNTER_BASE) / 8) as usize;
                let v = self.counter(i);
                if o % 8 == 0 {
                    // Reading LO latches HI, so the pair is consistent.
                    s.regs.counter_latch = (v >> 32) as u32;
                    v as u32
                } else if o % 8 == 4 {
                    s.regs.counter_latch
                } else {
                    0
                }
            }
            o if (AS_BASE..AS_BASE + AS_STRIDE * NUM_AS as u32).contains(&o) => {
                let a = &s.slots[((o - AS_BASE) / AS_STRIDE) as usize];
                match (o - AS_BASE) % AS_STRIDE {
                    as_reg::TRANSTAB_LO => a.transtab as u32,
                    as_reg::TRANSTAB_HI => (a.transtab >> 32) as u32,
                    as_reg::MEMATTR_LO => a.memattr as u32,
                    as_reg::MEMATTR_HI => (a.memattr >> 32) as u32,
                    as_reg::CONFIG => a.config,
                    as_reg::LOCKADDR_LO => a.lockaddr as u32,
                    as_reg::LOCKADDR_HI => (a.lockaddr >> 32) as u32,
                    as_reg::LOCKSIZE_LO => a.locksize as u32,
                    as_reg::LOCKSIZE_HI => (a.locksize >> 32) as u32,
                    as_reg::STATUS => a.status,
                    as_reg::FAULTSTATUS => a.faultstatus,
                    as_reg::FAULTADDR_LO => a.faultaddr as u32,
                    as_reg::FAULTADDR_HI => (a.faultaddr >> 32) as u32,
                    _ => 0,
                }
            }
            o if (QUEUE_BASE..QUEUE_BASE + QUEUE_STRIDE * NUM_QUEUES as u32).contains(&o) => {
                let q = &s.queues[((o - QUEUE_BASE) / QUEUE_STRIDE) as usize];
                match (o - QUEUE_BASE) % QUEUE_STRIDE {
                    q_reg::RING_BASE_LO => q.ring_base as u32,
                    q_reg::RING_BASE_HI => (q.ring_base >> 32) as u32,
                    q_reg::RING_SIZE => q.ring_size,
                    q_reg::AS => q.as_slot,
                    q_reg::HEAD => q.head,
                    q_reg::TAIL => q.tail,
                    q_reg::CONTROL => {
                        u32::from(q.enabled)
                            | if q.suspend_req.is_some() {
                                q_control::SUSPEND
                            } else {
                                0
                            }
                            | if q.restore_pending {
                                q_control::RESTORE
                            } else {
                                0
                            }
                    }
                    q_reg::STATUS => q.status | if q.enabled { q_status::ENABLED } else { 0 },
                    q_reg::SEQNO_LO => q.seqno as u32,
                    q_reg::SEQNO_HI => (q.seqno >> 32) as u32,
                    q_reg::ERROR => q.error,
                    q_reg::ERROR_OFFSET => q.error_offset,
                    q_reg::CONTEXT_LO => q.context as u32,
                    q_reg::CONTEXT_HI => (q.context >> 32) as u32,
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    fn irq_summary(&self, s: &DevState) -> u32 {
        let mut v = s.regs.irq_status;
        if s.regs.job_irq_status & s.regs.job_irq_mask != 0 {
            v |= irq::JOB;
        }
        if s.regs.mmu_irq_status & s.regs.mmu_irq_mask != 0 {
            v |= irq::MMU;
        }
        v
    }

    /// A 32-bit write of BAR0. Writes to read-only or unknown offsets are
    /// ignored.
    pub(crate) fn mmio_write(&self, offset: u32, val: u32) {
        self.count(counter::MMIO_WRITES, 1);
        trace!("mmio write {offset:#06x} = {val:#x}");
        let mut s = self.lock_mmio();
        match offset {
            SCRATCH => s.regs.scratch = val,
            IRQ_STATUS => {
                s.regs.irq_status &= !(val & (irq::SOFT | irq::ERROR));
                self.update_irq(&s, VECTOR_GLOBAL);
            }
            IRQ_MASK => {
                s.regs.irq_mask = val;
                self.update_irq(&s, VECTOR_GLOBAL);
            }
            IRQ_RAISE => {
                s.regs.irq_status |= val & irq::SOFT;
                self.update_irq(&s, VECTOR_GLOBAL);
            }
            JOB_IRQ_STATUS => {
                s.regs.job_irq_status &= !val;
                self.update_irq(&s, VECTOR_JOB);
            }
            JOB_IRQ_MASK => {
                s.regs.job_irq_mask = val;
                self.update_irq(&s, VECTOR_JOB);
            }
            MMU_IRQ_STATUS => {
                s.regs.mmu_irq_status &= !val;
                self.update_irq(&s, VECTOR_MMU);
            }
            MMU_IRQ_MASK => {
                s.regs.mmu_irq_mask = val;
                self.update_irq(&s, VECTOR_MMU);
            }
            RESET if val == RESET_GLOBAL => self.global_reset(&mut s),
            CACHE_CMD => self.cache_cmd(&mut s, val),
            COUNTER_RESET => {
                for c in &self.counters {
                    c.store(0, Ordering::Relaxed);
                }
            }
            o if (AS_BASE..AS_BASE + AS_STRIDE * NUM_AS as u32).contains(&o) => {
                let n = ((o - AS_BASE) / AS_STRIDE) as usize;
                self.as_write(&mut s, n, (o - AS_BASE) % AS_STRIDE, val);
            }
            o if (QUEUE_BASE..QUEUE_BASE + QUEUE_STRIDE * NUM_QUEUES as u32).contains(&o) => {
                let n = ((o - QUEUE_BASE) / QUEUE_STRIDE) as usize;
                self.queue_write(&mut s, n, (o - QUEUE_BASE) % QUEUE_STRIDE, val);
            }
            _ => {}
        }
    }

    fn set_lo(r: &mut u64, v: u32) {
        *r = (*r & !0xffff_ffff) | u64::from(v);
    }

    fn set_hi(r: &mut u64, v: u32) {
        *r = (*r & 0xffff_ffff) | (u64::from(v) << 32);
    }

    fn as_write(&self, s: &mut DevState, n: usize, reg: u32, val: u32) {
        let a = &mut s.slots[n];
        match reg {
            as_reg::TRANSTAB_LO => Self::set_lo(&mut a.transtab, val),
            as_reg::TRANSTAB_HI => Self::set_hi(&mut a.transtab, val),
            as_reg::MEMATTR_LO => Self::set_lo(&mut a.memattr, val),
            as_reg::MEMATTR_HI => Self::set_hi(&mut a.memattr, val),
            as_reg::CONFIG => {
                a.config = val & (as_config::VA_BITS_MASK | as_config::ENABLE | as_config::STALL)
            }
            as_reg::LOCKADDR_LO => Self::set_lo(&mut a.lockaddr, val),
            as_reg::LOCKADDR_HI => Self::set_hi(&mut a.lockaddr, val),
            as_reg::LOCKSIZE_LO => Self::set_lo(&mut a.locksize, val),
            as_reg::LOCKSIZE_HI => Self::set_hi(&mut a.locksize, val),
            as_reg::COMMAND => self.as_command(s, n, val),
            _ => {}
        }
    }

    fn as_command(&self, s: &mut DevState, n: usize, cmd: u32) {
        debug!("as{n} command {cmd}");
        let a = &mut s.slots[n];
        let range = (a.lockaddr, a.lockaddr.saturating_add(a.locksize));
        match cmd {
            as_cmd::UPDATE => {
                let va_bits = a.config & as_config::VA_BITS_MASK;
                a.active = (a.config & as_config::ENABLE != 0 && (32..=48).contains(&va_bits))
                    .then_some((a.transtab, va_bits));
                a.stall_mode = a.config & as_config::STALL != 0;
                a.status = if a.active.is_some() {
                    as_status::ENABLED
                } else {
                    0
                } | (a.status & (as_status::LOCKED | as_status::STALLED));
                a.faultstatus = 0;
                a.faultaddr = 0;
                let k = s.tlb.invalidate_slot(n);
                self.count(counter::TLB_INVALIDATIONS, 1);
                trace!(
                    "as{n} update: {:?}, {k} TLB entries dropped",
                    s.slots[n].active
                );
            }
            as_cmd::LOCK => {
                a.locked = Some(range);
                a.status |= as_status::LOCKED;
            }
            as_cmd::UNLOCK => {
                a.locked = None;
                a.status &= !as_status::LOCKED;
                self.wake_all();
            }
            as_cmd::FLUSH_RANGE => {
                let k = s.tlb.invalidate_range(n, range.0, range.1);
                self.count(counter::TLB_INVALIDATIONS, 1);
                trace!(
                    "as{n} flush {:#x}..{:#x}: {k} TLB entries dropped",
                    range.0,
                    range.1
                );
            }
            as_cmd::FLUSH_ALL => {
                s.tlb.invalidate_slot(n);
                self.count(counter::TLB_INVALIDATIONS, 1);
            }
            as_cmd::RESUME | as_cmd::ABORT if a.status & as_status::STALLED != 0 => {
                {
                    a.status &= !as_status::STALLED;
                    a.stall_abort = cmd == as_cmd::ABORT;
                    a.stall_gen += 1;
                    // The queues stalled on this slot leave the stall now.
                    for q in s.queues.iter_mut().filter(|q| q.as_slot as usize == n) {
                        q.status &= !q_status::STALLED;
                    }
                    self.wake_all();
                }
            }
            _ => {}
        }
    }

    fn queue_write(&self, s: &mut DevState, n: usize, reg: u32, val: u32) {
        let q = &mut s.queues[n];
        match reg {
            q_reg::RING_BASE_LO => Self::set_lo(&mut q.ring_base, val),
            q_reg::RING_BASE_HI => Self::set_hi(&mut q.ring_base, val),
            q_reg::RING_SIZE => q.ring_size = val,
            q_reg::AS => q.as_slot = val,
            q_reg::TAIL => {
                q.tail = val;
                self.count(counter::DOORBELLS, 1);
                self.wake(n);
            }
            q_reg::CONTEXT_LO => Self::set_lo(&mut q.context, val & !(save_area::ALIGN as u32 - 1)),
            q_reg::CONTEXT_HI => Self::set_hi(&mut q.context, val),
            q_reg::CONTROL => {
                if val & q_control::RESET != 0 {
                    self.reset_queue(s, n);
                    self.count(counter::QUEUE_RESETS, 1);
                } else {
                    self.queue_control(s, n, val);
                }
            }
            _ => {}
        }
    }

    /// A write of `Q_CONTROL` without RESET.
    fn queue_control(&self, s: &mut DevState, n: usize, val: u32) {
        let q = &mut s.queues[n];
        let enable = val & q_control::ENABLE != 0;
        let stopped = q.status & (q_status::FAULTED | q_status::ERROR) != 0;
        if q.status & q_status::SUSPENDED != 0 {
            // Nothing but RESET and ENABLE|RESTORE reaches a suspended queue.
            if !enable || val & q_control::RESTORE == 0 {
                return;
            }
            q.status &= !q_status::SUSPENDED;
            q.restore_pending = true;
        } else if !enable {
            // Clearing ENABLE drops pending requests.
            q.suspend_req = None;
            q.restore_pending = false;
        } else if val & q_control::RESTORE != 0 {
            // Only a queue that is not executing or stopped restores.
            let busy = q.status & q_status::BUSY != 0 || q.pos.active;
            if !busy && !stopped {
                q.restore_pending = true;
            }
        }
        q.enabled = enable;
        if enable && val & q_control::SUSPEND != 0 && !stopped && q.suspend_req.is_none() {
            q.suspend_req = Some(self.timestamp());
            debug!("queue {n}: suspend requested");
        }
        self.wake(n);
    }

    fn reset_queue(&self, s: &mut DevState, n: usize) {
        let gen = s.queues[n].gen + 1;
        s.queues[n] = QueueRegs {
            gen,
            ..Default::default()
        };
        s.regs.job_irq_status &= !((1 << (job_irq::FENCE + n as u32))
            | (1 << (job_irq::SUSPENDED + n as u32))
            | (1 << (job_irq::STOPPED + n as u32)));
        self.wake_all();
    }

    fn global_reset(&self, s: &mut DevState) {
        debug!("global reset");
        for n in 0..NUM_QUEUES {
            self.reset_queue(s, n);
        }
        for a in s.slots.iter_mut() {
            let gen = a.stall_gen + 1;
            *a = AsSlot {
                stall_gen: gen,
                stall_abort: true,
                ..Default::default()
            };
        }
        s.tlb.clear();
        s.cache.invalidate();
        s.regs.scratch = 0;
        s.regs.irq_status = 0;
        s.regs.irq_mask = 0;
        s.regs.job_irq_status = 0;
        s.regs.job_irq_mask = 0;
        s.regs.mmu_irq_status = 0;
        s.regs.mmu_irq_mask = 0;
        s.regs.reset_count = s.regs.reset_count.wrapping_add(1);
        self.count(counter::GLOBAL_RESETS, 1);
        self.wake_all();
    }

    /// Signal `vector` if its status has unmasked bits pending. Clearing
    /// only some bits re-signals, so no event is lost.
    fn update_irq(&self, s: &DevState, vector: u32) {
        let pending = match vector {
            VECTOR_GLOBAL => s.regs.irq_status & s.regs.irq_mask,
            VECTOR_JOB => s.regs.job_irq_status & s.regs.job_irq_mask,
            VECTOR_MMU => s.regs.mmu_irq_status & s.regs.mmu_irq_mask,
            _ => 0,
        };
        if pending != 0 && self.signal_vector(vector) {
            self.count(counter::IRQS, 1);
        }
    }

    /// Install (or remove, with `None`) the eventfd of an MSI-X vector.
    pub fn set_vector(&self, vector: u32, fd: Option<File>) {
        let mut v = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = v.get_mut(vector as usize) {
            *slot = fd;
        }
    }

    /// Signal MSI-X vector `vector`; a vector the guest has not set up is
    /// dropped, as a masked vector would be.
    fn signal_vector(&self, vector: u32) -> bool {
        let mut v = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        match v.get_mut(vector as usize) {
            Some(Some(fd)) => fd.write_all(&1u64.to_ne_bytes()).is_ok(),
            _ => false,
        }
    }

    /// Device reset from the PCI level (FLR or QEMU's reset).
    pub(crate) fn reset(&self) {
        let mut s = self.lock();
        self.global_reset(&mut s);
        s.regs.reset_count = 0;
    }

    /// Wake queue `q`'s worker.
    fn wake(&self, q: usize) {
        self.qcond[q].notify_one();
    }
}

impl Bus for Device {
    type Regs = Regs;

    fn lock(&self) -> Guard<'_, Regs> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&'a self, q: usize, g: Guard<'a, Regs>, d: Option<Duration>) -> Guard<'a, Regs> {
        match d {
            Some(d) => match self.qcond[q].wait_timeout(g, d) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            },
            None => match self.qcond[q].wait(g) {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            },
        }
    }

    /// Let the MMIO accesses waiting for the lock take it first, for at
    /// most a millisecond (waking a thread can take that long).
    fn let_mmio_in<'a>(&'a self, g: Guard<'a, Regs>) -> Guard<'a, Regs> {
        drop(g);
        if self.mmio_waiting.load(Ordering::SeqCst) != 0 {
            let t0 = Instant::now();
            while self.mmio_waiting.load(Ordering::SeqCst) != 0
                && t0.elapsed() < Duration::from_millis(1)
            {
                std::thread::yield_now();
            }
        }
        self.lock()
    }

    fn wake_all(&self) {
        for c in &self.qcond {
            c.notify_one();
        }
    }

    fn memory(&self) -> &DmaSpace {
        Device::memory(self)
    }

    /// The option, but below the null aperture, which takes the top half
    /// of the 48-bit output space.
    fn dma_addr_bits(&self) -> u32 {
        self.opts.dma_addr_bits.min(crate::mmu::NULL_APERTURE_SHIFT)
    }

    fn timestamp(&self) -> u64 {
        Device::timestamp(self)
    }

    fn count(&self, c: usize, n: u64) {
        self.counters[c].fetch_add(n, Ordering::Relaxed);
    }

    fn count_null(&self, write: bool, n: u64) {
        let c = if write {
            &self.null_written
        } else {
            &self.null_read
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn record_fault(&self, s: &mut DevState, f: Fault) {
        let Fault {
            slot,
            queue: q,
            kind,
            va,
            write,
        } = f;
        debug!(
            "fault: queue {q} as{slot} {kind:?} at {va:#x} ({})",
            if write { "write" } else { "read" }
        );
        self.count(counter::FAULTS, 1);
        if let Some(a) = s.slots.get_mut(slot) {
            a.faultstatus = fault::VALID
                | kind.code()
                | if write { fault::WRITE } else { 0 }
                | ((q as u32) << fault::QUEUE_SHIFT);
            a.faultaddr = va;
            a.status |= as_status::FAULTED;
            s.regs.mmu_irq_status |= 1 << slot;
            self.update_irq(s, VECTOR_MMU);
        }
    }

    /// Bit q: fence, bit 8+q: suspended, bit 16+q: error.
    fn raise_job(&self, s: &mut DevState, bit: u32) {
        s.regs.job_irq_status |= 1 << bit;
        self.update_irq(s, VECTOR_JOB);
    }

    fn cache_cmd(&self, s: &mut DevState, flags: u32) {
        if flags & cache::CLEAN != 0 {
            let before = s.cache.stats.pages_written_back;
            s.cache.clean(&self.dma);
            self.count(
                counter::PAGES_WRITTEN_BACK,
                s.cache.stats.pages_written_back - before,
            );
        }
        if flags & cache::INVALIDATE != 0 {
            s.cache.invalidate();
        }
        if flags & (cache::CLEAN | cache::INVALIDATE) != 0 {
            self.count(counter::CACHE_FLUSHES, 1);
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop();
    }
}
