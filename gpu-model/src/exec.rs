// SPDX-License-Identifier: GPL-2.0
//! Queue execution: the worker thread of each queue fetches commands from
//! its ring through the MMU and executes them, one *step* at a time.
//!
//! A step is one command, one CHUNK of a FILL, COPY or CHECKSUM, or one
//! poll of a WAIT. Where the queue is inside the ring command at HEAD (the
//! CALL frames it is in, the progress of a long command) is explicit state,
//! [`Position`], kept in the queue's registers between steps. The worker
//! releases the device lock after each step, and at that point serves a
//! suspend request by writing HEAD, SEQNO and the position to the queue's
//! context save area; a restore reads them back (see "Preemption" in the
//! spec).
//!
//! The engine reaches the rest of the device (its lock, guest memory,
//! interrupts, the cache command, counters) only through
//! [`crate::bus::Bus`], and shares with it only [`crate::bus::State`]:
//! the register file starts the engines, the engines do not know it.

use std::time::Duration;

use log::{debug, trace, warn};

use crate::audit;
use crate::bus::{Bus, Fault, Guard, QueueRegs, State};
use crate::command::Command;
use crate::context::{Context, Frame, Latched, Position, CALL_BYTES};
use crate::mmu::{self, Access, FaultKind, WalkStats};
use crate::regs::*;

/// How long WAIT sleeps between polls of memory.
const WAIT_POLL: Duration = Duration::from_micros(50);
/// Bytes of FILL, COPY or CHECKSUM done between two releases of the device
/// lock: a multiple of the step.
const CHUNK: u64 = 1 << 20;
/// The unit of a long command's progress: its suspend points are between
/// steps.
const STEP: u64 = save_area::STEP;
const STEP_USIZE: usize = STEP as usize;
/// What a read of the null aperture returns.
static ZEROS: [u8; STEP_USIZE] = [0; STEP_USIZE];

/// Why a command stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The queue (or the device) was reset: abandon silently.
    Reset,
    /// An MMU fault (already recorded on the slot).
    Fault,
    /// A command error (`Q_ERROR` code).
    Error(u32),
    /// A suspend was requested while the queue was stalled: the stalled
    /// access is abandoned, and the step containing it is done again after
    /// a restore. The position holds the steps done before it.
    Suspend,
}

/// What a step of the queue leaves to do.
enum Next {
    /// Go on at once (after letting MMIO in).
    Go,
    /// A WAIT is not satisfied: poll again after a while.
    Poll,
}

/// What a command did in one step.
enum Done {
    /// Complete: the position moves past it.
    Complete,
    /// A CALL entered its indirect buffer.
    Entered,
    /// A FILL, COPY or CHECKSUM did a chunk and has more to do.
    More,
    /// A WAIT is not satisfied.
    Unsatisfied,
}

/// The last translations of a worker, kept from one step to the next for
/// the slot they were made in.
#[derive(Default)]
struct WorkerTlb {
    slot: usize,
    utlb: [Option<(u64, mmu::Mapping)>; 2],
}

type Res<T> = Result<T, Stop>;

/// The bytes of an access: read into, or written from.
enum Bytes<'b> {
    In(&'b mut [u8]),
    Out(&'b [u8]),
}

impl Bytes<'_> {
    fn len(&self) -> usize {
        match self {
            Bytes::In(b) => b.len(),
            Bytes::Out(b) => b.len(),
        }
    }

    /// The bytes at `r` of the access.
    fn sub(&mut self, r: std::ops::Range<usize>) -> Bytes<'_> {
        match self {
            Bytes::In(b) => Bytes::In(&mut b[r]),
            Bytes::Out(b) => Bytes::Out(&b[r]),
        }
    }
}

/// Where a translated access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The device cache (write-allocate): data accesses.
    Cache,
    /// Reads of the freshest value, dirty cached data or else memory,
    /// allocating no line: WAIT's polls. Writes go to memory.
    Coherent,
    /// Memory, bypassing the cache: command fetch, the context save area,
    /// WRITE64 with FLUSH.
    Direct,
}

/// The execution context of one queue while it holds the device lock.
struct Ctx<'a, B: Bus> {
    bus: &'a B,
    g: Option<Guard<'a, B::Regs>>,
    q: usize,
    gen: u64,
    slot: usize,
    /// The last translation for data and for fetch, with the TLB
    /// generation it was valid in.
    utlb: [Option<(u64, mmu::Mapping)>; 2],
    /// Accesses are unprivileged: the commands come from an indirect
    /// buffer, not from the ring.
    unpriv: bool,
    /// Faults never stall (accesses to the context save area).
    no_stall: bool,
}

impl<'a, B: Bus> Ctx<'a, B> {
    fn new(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Self {
        let r = &g.queues[q];
        let (gen, slot) = (r.gen, r.as_slot as usize);
        Ctx {
            bus,
            g: Some(g),
            q,
            gen,
            slot,
            utlb: [None; 2],
            unpriv: false,
            no_stall: false,
        }
    }

    fn s(&mut self) -> &mut State<B::Regs> {
        self.g
            .as_mut()
            .expect("the device lock is held outside relax()")
    }

    fn check(&mut self) -> Res<()> {
        let q = self.q;
        let (gen, shutdown) = {
            let s = self.s();
            (s.queues[q].gen, s.shutdown)
        };
        if gen != self.gen || shutdown {
            return Err(Stop::Reset);
        }
        Ok(())
    }

    /// Release the lock for at most `d` (or until notified), then check for
    /// a reset.
    fn relax(&mut self, d: Duration) -> Res<()> {
        if let Some(g) = self.g.take() {
            self.g = Some(self.bus.wait(self.q, g, Some(d)));
        }
        self.check()
    }

    fn set_status(&mut self, set: u32, clear: u32) {
        let q = self.q;
        let st = &mut self.s().queues[q].status;
        *st = (*st & !clear) | set;
    }

    /// Record a fault of this queue on its slot (and raise the MMU
    /// interrupt).
    fn record_fault(&mut self, kind: FaultKind, va: u64, access: Access) {
        let f = Fault {
            slot: self.slot,
            queue: self.q,
            kind,
            va,
            write: access == Access::Write,
        };
        let bus = self.bus;
        bus.record_fault(self.s(), f);
    }

    /// A bus fault at `va`: the access reached no memory. It is recorded
    /// and stops the queue; it never stalls.
    fn bus_fault(&mut self, va: u64, access: Access) -> Stop {
        self.record_fault(FaultKind::Bus, va, access);
        Stop::Fault
    }

    /// A fault of `kind` at `va`. Recorded; in a slot in stall mode (but
    /// for a bus fault, or with `no_stall`) the queue stalls until RESUME,
    /// and then retries (`Ok`), or until ABORT or a suspend request.
    fn fault(&mut self, kind: FaultKind, va: u64, access: Access) -> Res<()> {
        let (slot, q) = (self.slot, self.q);
        self.record_fault(kind, va, access);
        let stall = self.s().slots.get(slot).is_some_and(|a| a.stall_mode);
        if !stall || kind == FaultKind::Bus || self.no_stall {
            return Err(Stop::Fault);
        }
        // Stall: wait for RESUME (retry) or ABORT.
        let sg = {
            let a = &mut self.s().slots[slot];
            a.status |= as_status::STALLED;
            a.stall_gen
        };
        self.set_status(q_status::STALLED, 0);
        debug!("queue {q} stalled on as{slot} at {va:#x}");
        loop {
            self.relax(Duration::from_millis(100))?;
            let a = self.s().slots[slot];
            if a.stall_gen != sg {
                self.set_status(0, q_status::STALLED);
                return if a.stall_abort {
                    Err(Stop::Fault)
                } else {
                    Ok(())
                };
            }
            if self.s().queues[q].suspend_req.is_some() {
                // A suspend point: abandon the access. The slot stays
                // stalled until the driver resumes or aborts it.
                debug!("queue {q} leaves its stall on as{slot} to suspend");
                self.set_status(0, q_status::STALLED);
                return Err(Stop::Suspend);
            }
        }
    }

    /// The audit (see [`crate::audit`]), if it is on: check a cached
    /// translation against the tables. One into the null aperture touches
    /// no memory: it is not checked.
    fn audit(&mut self, root: u64, va_bits: u32, va: u64, m: &mmu::Mapping) {
        if self.s().audit.is_none() || m.is_null() {
            return;
        }
        let oas = self.bus.dma_addr_bits();
        if let Some(fresh) = audit::stale(self.bus.memory(), root, va_bits, oas, va, m) {
            warn!(
                "audit: queue {} slot {} va {va:#x}: cached {m:?}, tables {fresh:?}",
                self.q, self.slot
            );
        }
    }

    /// The audit, if it is on: check a write of `len` bytes at `pa` (from
    /// `va`) against the page-table pages walked since the last
    /// invalidation. One into the null aperture touches no memory: it is
    /// not checked.
    fn audit_write(&mut self, pa: u64, va: u64, len: u64) {
        if mmu::is_null(pa) {
            return;
        }
        let s = self.s();
        let gen = s.tlb.gen;
        if s.audit
            .as_ref()
            .is_some_and(|a| a.writes_table(gen, pa, len))
        {
            warn!(
                "audit: queue {} slot {} writes page-table page {pa:#x} at va {va:#x}",
                self.q, self.slot
            );
        }
    }

    /// Translate `va` for `access`; returns the bus address and how many
    /// bytes from `va` on lie in the same mapping. A bus address in the
    /// null aperture (`mmu::is_null`) is no memory: the caller reads zeros
    /// and drops writes, and counts them (see [`Ctx::part`]).
    fn translate(&mut self, va: u64, access: Access) -> Res<(u64, u64)> {
        loop {
            self.check()?;
            let slot = self.slot;
            let oas = self.bus.dma_addr_bits();
            let a = match self.s().slots.get(slot) {
                Some(a) => *a,
                None => return Err(Stop::Error(q_error::BAD_RING)),
            };
            if let Some((lo, hi)) = a.locked {
                if va >= lo && va < hi {
                    // The driver is changing this range: wait for UNLOCK.
                    self.relax(Duration::from_millis(1))?;
                    continue;
                }
            }
            let Some((root, va_bits)) = a.active else {
                self.fault(FaultKind::Translation, va, access)?;
                continue;
            };
            let ui = usize::from(access == Access::Exec);
            let tlb_gen = self.s().tlb.gen;
            if let Some((g, m)) = self.utlb[ui] {
                if g == tlb_gen
                    && va >= m.va_base
                    && va - m.va_base < m.size
                    && m.permits(access, self.unpriv)
                {
                    self.bus.count(counter::TLB_HITS, 1);
                    self.audit(root, va_bits, va, &m);
                    return Ok((m.pa(va), m.va_base + m.size - va));
                }
            }
            let cached = self.s().tlb.lookup(slot, va);
            let m = match cached {
                Some(m) => {
                    self.bus.count(counter::TLB_HITS, 1);
                    self.audit(root, va_bits, va, &m);
                    m
                }
                None => {
                    self.bus.count(counter::TLB_MISSES, 1);
                    let mut st = WalkStats::default();
                    let r = mmu::walk(self.bus.memory(), root, va_bits, oas, va, &mut st);
                    self.bus.count(counter::PT_READS, st.descriptor_reads);
                    trace!("walk as{slot} {va:#x}: {r:?}");
                    if r.is_ok() {
                        let s = self.s();
                        if let Some(a) = s.audit.as_mut() {
                            a.walked(s.tlb.gen, &st.tables[..st.ntables]);
                        }
                    }
                    match r {
                        Ok(m) => {
                            if m.is_null() {
                                debug!(
                                    "queue {} as{slot}: va {:#x}+{:#x} maps the null aperture",
                                    self.q, m.va_base, m.size
                                );
                            }
                            self.s().tlb.insert(slot, m);
                            m
                        }
                        Err(kind) => {
                            self.fault(kind, va, access)?;
                            continue;
                        }
                    }
                }
            };
            if !m.permits(access, self.unpriv) {
                self.fault(FaultKind::Permission, va, access)?;
                continue;
            }
            let tlb_gen = self.s().tlb.gen;
            self.utlb[ui] = Some((tlb_gen, m));
            return Ok((m.pa(va), m.va_base + m.size - va));
        }
    }

    /// The one loop that splits an access at the edges of its mappings:
    /// translate `bytes.len()` bytes from `va` on for `access`, mapping by
    /// mapping (a page or a block), and move each part along `path`.
    fn split(&mut self, va: u64, mut bytes: Bytes<'_>, access: Access, path: Path) -> Res<()> {
        let len = bytes.len();
        let mut done = 0;
        while done < len {
            let at = va.wrapping_add(done as u64);
            let (pa, room) = self.translate(at, access)?;
            let n = (len - done).min(usize::try_from(room).unwrap_or(usize::MAX));
            self.part(at, pa, bytes.sub(done..done + n), access, path)?;
            done += n;
        }
        Ok(())
    }

    /// One part of an access, inside one mapping: `va` translates to bus
    /// address `pa`. A write is audited; a part in the null aperture
    /// (`mmu::is_null`) is no memory: it reads zeros, drops writes and is
    /// counted as null traffic; a part outside guest memory is a bus
    /// fault.
    fn part(&mut self, va: u64, pa: u64, bytes: Bytes<'_>, access: Access, path: Path) -> Res<()> {
        let bus = self.bus;
        let mem = bus.memory();
        let n = bytes.len();
        let res = match bytes {
            Bytes::In(buf) => {
                if mmu::is_null(pa) {
                    buf.fill(0);
                    bus.count_null(false, n as u64);
                    return Ok(());
                }
                match path {
                    Path::Cache => self.s().cache.read(mem, pa, buf),
                    Path::Coherent => self.s().cache.read_coherent(mem, pa, buf),
                    Path::Direct => mem.read(pa, buf),
                }
            }
            Bytes::Out(buf) => {
                self.audit_write(pa, va, n as u64);
                if mmu::is_null(pa) {
                    bus.count_null(true, n as u64);
                    return Ok(());
                }
                match path {
                    Path::Cache => self.s().cache.write(mem, pa, buf),
                    Path::Coherent | Path::Direct => mem.write(pa, buf),
                }
            }
        };
        res.map_err(|_| self.bus_fault(va, access))
    }

    /// Read `buf.len()` bytes at `va` through the cache.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Res<()> {
        self.split(va, Bytes::In(buf), Access::Read, Path::Cache)?;
        self.bus.count(counter::BYTES_READ, buf.len() as u64);
        Ok(())
    }

    /// Write `buf` at `va` through the cache.
    fn write(&mut self, va: u64, buf: &[u8]) -> Res<()> {
        self.split(va, Bytes::Out(buf), Access::Write, Path::Cache)?;
        self.bus.count(counter::BYTES_WRITTEN, buf.len() as u64);
        Ok(())
    }

    fn write_u64(&mut self, va: u64, v: u64) -> Res<()> {
        self.write(va, &v.to_le_bytes())
    }

    /// Fetch a command dword: through the MMU (execute permission), from
    /// memory directly (the command streamer does not use the cache). A
    /// dword may straddle two pages: each part has its own translation.
    fn fetch(&mut self, va: u64) -> Res<u32> {
        let mut b = [0u8; 4];
        self.split(va, Bytes::In(&mut b), Access::Exec, Path::Direct)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Fetch `out.len()` consecutive command dwords starting at `va`: in
    /// one read if they lie in one mapping, else dword by dword.
    fn fetch_span(&mut self, va: u64, out: &mut [u32]) -> Res<()> {
        if out.is_empty() {
            return Ok(());
        }
        let (pa, room) = self.translate(va, Access::Exec)?;
        let bytes = out.len() * 4;
        if room >= bytes as u64 {
            let mut b = vec![0u8; bytes];
            self.part(va, pa, Bytes::In(&mut b), Access::Exec, Path::Direct)?;
            for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            return Ok(());
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.fetch(va.wrapping_add(4 * i as u64))?;
        }
        Ok(())
    }

    /// Read a u64 for WAIT: the freshest value, without caching it.
    fn read_u64_coherent(&mut self, va: u64) -> Res<u64> {
        let mut b = [0u8; 8];
        self.split(va, Bytes::In(&mut b), Access::Read, Path::Coherent)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Write `buf` at `va` straight to memory, not through the cache
    /// (WRITE64 with FLUSH, and a suspend's context save area, whose
    /// accesses are privileged and never stall: see [`Ctx::no_stall`]).
    fn write_direct(&mut self, va: u64, buf: &[u8]) -> Res<()> {
        self.split(va, Bytes::Out(buf), Access::Write, Path::Direct)?;
        self.bus.count(counter::BYTES_WRITTEN, buf.len() as u64);
        Ok(())
    }

    /// Read `buf.len()` bytes at `va` straight from memory, not through
    /// the cache (the context save area).
    fn read_direct(&mut self, va: u64, buf: &mut [u8]) -> Res<()> {
        self.split(va, Bytes::In(buf), Access::Read, Path::Direct)?;
        self.bus.count(counter::BYTES_READ, buf.len() as u64);
        Ok(())
    }

    /// FILL from `pos.progress` on, at most a chunk.
    fn fill(&mut self, dst: u64, size: u64, pattern: u32, pos: &mut Position) -> Res<Done> {
        let pat = pattern.to_le_bytes();
        let mut buf = [0u8; STEP_USIZE];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pat[i % 4];
        }
        self.steps(size, pos, false, |ctx, off, n, _| {
            ctx.write(dst.wrapping_add(off), &buf[..n as usize])
        })
    }

    /// COPY from `pos.progress` on, at most a chunk: mapping by mapping
    /// rather than step by step (fewer translations); a stall that ends in
    /// a suspend leaves the progress at the start of the step it is in.
    fn copy(&mut self, dst: u64, src: u64, size: u64, pos: &mut Position) -> Res<Done> {
        let end = pos.progress.saturating_add(CHUNK).min(size);
        let mut done = pos.progress;
        match self.copy_range(dst, src, end, &mut done) {
            Ok(()) if end >= size => Ok(Done::Complete),
            Ok(()) => {
                pos.progress = end;
                Ok(Done::More)
            }
            Err(e) => {
                pos.progress = done - done % STEP;
                Err(e)
            }
        }
    }

    /// CHECKSUM from `pos.progress` on (with `pos.partial` as the hash so
    /// far), at most a chunk. The last step writes the result.
    fn checksum(&mut self, dst: u64, src: u64, size: u64, pos: &mut Position) -> Res<Done> {
        let mut buf = vec![0u8; STEP_USIZE];
        self.steps(size, pos, true, |ctx, off, n, h| {
            let part = &mut buf[..n as usize];
            ctx.read(src.wrapping_add(off), part)?;
            *h = fnv1a(*h, part);
            if off + n >= size {
                ctx.write_u64(dst, *h)?;
            }
            Ok(())
        })
    }

    /// Run the steps of a long command of `size` bytes from `pos.progress`
    /// on, at most CHUNK bytes of them. `step(ctx, offset, len, hash)` does
    /// one; with `hashes` (CHECKSUM), `hash` is the running hash and the
    /// position records it. The position records each step done but the
    /// last one: a complete command moves past.
    fn steps(
        &mut self,
        size: u64,
        pos: &mut Position,
        hashes: bool,
        mut step: impl FnMut(&mut Self, u64, u64, &mut u64) -> Res<()>,
    ) -> Res<Done> {
        let mut h = match (hashes, pos.progress) {
            (false, _) => 0,
            (true, 0) => FNV_OFFSET,
            (true, _) => pos.partial,
        };
        let mut budget = CHUNK;
        loop {
            let off = pos.progress;
            let n = (size - off).min(STEP);
            step(self, off, n, &mut h)?;
            if off + n >= size {
                return Ok(Done::Complete);
            }
            pos.progress = off + n;
            pos.partial = h;
            budget -= n;
            if budget == 0 {
                return Ok(Done::More);
            }
        }
    }

    /// Copy the bytes at offsets `*off..end` of `src` to `dst` through the
    /// cache, in ascending order; `*off` says how far it got.
    fn copy_range(&mut self, dst: u64, src: u64, end: u64, off: &mut u64) -> Res<()> {
        while *off < end {
            let off_now = *off;
            let (s, d) = (src.wrapping_add(off_now), dst.wrapping_add(off_now));
            let (spa, sroom) = self.translate(s, Access::Read)?;
            let (dpa, droom) = self.translate(d, Access::Write)?;
            let n = (end - off_now).min(sroom).min(droom) as usize;
            self.audit_write(dpa, d, n as u64);
            let dma = self.bus.memory();
            if mmu::is_null(spa) || mmu::is_null(dpa) {
                self.copy_null(d, dpa, s, spa, n)?;
            } else if let Err(crate::dma::DmaError::Unmapped(bad)) =
                self.s().cache.copy(dma, dpa, spa, n)
            {
                // Say which side was outside guest memory.
                let (va, access) = if bad >= spa && bad - spa < n as u64 {
                    (s, Access::Read)
                } else {
                    (d, Access::Write)
                };
                return Err(self.bus_fault(va, access));
            }
            self.bus.count(counter::BYTES_READ, n as u64);
            self.bus.count(counter::BYTES_WRITTEN, n as u64);
            *off += n as u64;
        }
        Ok(())
    }

    /// The part of [`Ctx::copy_range`] where the source (at `s`, bus
    /// address `spa`), the destination (`d`, `dpa`) or both translate into
    /// the null aperture: `n` zeros are written to a real destination, and
    /// a real source is read (through the cache, as any read: a bus fault
    /// is a fault) for a destination that drops them.
    fn copy_null(&mut self, d: u64, dpa: u64, s: u64, spa: u64, n: usize) -> Res<()> {
        let bus = self.bus;
        let dma = bus.memory();
        let mut tmp = [0u8; STEP_USIZE];
        let mut done = 0;
        while done < n {
            let k = (n - done).min(STEP_USIZE);
            let at = done as u64;
            if !mmu::is_null(spa) {
                let src = &mut tmp[..k];
                if self.s().cache.read(dma, spa + at, src).is_err() {
                    return Err(self.bus_fault(s.wrapping_add(at), Access::Read));
                }
            }
            if !mmu::is_null(dpa) && self.s().cache.write(dma, dpa + at, &ZEROS[..k]).is_err() {
                return Err(self.bus_fault(d.wrapping_add(at), Access::Write));
            }
            done += k;
        }
        if mmu::is_null(spa) {
            bus.count_null(false, n as u64);
        }
        if mmu::is_null(dpa) {
            bus.count_null(true, n as u64);
        }
        Ok(())
    }

    /// Execute one step of the command `dw`, the innermost command in
    /// progress at `pos`. `fresh`: the command was just fetched.
    fn execute(&mut self, dw: &[u32], pos: &mut Position, fresh: bool) -> Res<Done> {
        let cmd = Command::decode(dw);
        if pos.progress > 0 {
            // Restored inside this command: it must be a long command
            // with more to do.
            if !cmd.is_ok_and(|c| c.resumes_at(pos.progress, pos.partial)) {
                return Err(Stop::Error(q_error::BAD_CONTEXT));
            }
        } else if fresh {
            self.bus.count(counter::COMMANDS, 1);
            trace!(
                "queue {} op {:#x} flags {:#x} len {} depth {}",
                self.q,
                dw[0] & 0xff,
                (dw[0] >> 8) & 0xff,
                dw.len(),
                pos.depth
            );
        }
        match cmd.map_err(Stop::Error)? {
            Command::Nop => Ok(Done::Complete),
            Command::Fill { dst, size, pattern } => self.fill(dst, size, pattern, pos),
            Command::Copy { dst, src, size } => self.copy(dst, src, size, pos),
            Command::Checksum { dst, src, size } => self.checksum(dst, src, size, pos),
            Command::Write64 { dst, value, flags } => {
                if flags.flush {
                    let bus = self.bus;
                    bus.cache_cmd(self.s(), cache::CLEAN | cache::INVALIDATE);
                    // Written through, straight to memory (each page's
                    // part through its own translation: the value may
                    // straddle two pages, which need not be contiguous in
                    // memory, or both mapped).
                    self.write_direct(dst, &value.to_le_bytes())?;
                } else {
                    self.write_u64(dst, value)?;
                }
                let q = self.q;
                if flags.seqno {
                    self.s().queues[q].seqno = value;
                }
                if flags.irq {
                    let bus = self.bus;
                    bus.raise_job(self.s(), job_irq::FENCE + q as u32);
                }
                // Another queue may be waiting on this value.
                if self
                    .s()
                    .queues
                    .iter()
                    .any(|r| r.status & q_status::WAITING != 0)
                {
                    self.bus.wake_all();
                }
                Ok(Done::Complete)
            }
            Command::Wait { addr, value } => {
                if self.read_u64_coherent(addr)? >= value {
                    self.set_status(0, q_status::WAITING);
                    Ok(Done::Complete)
                } else {
                    self.set_status(q_status::WAITING, 0);
                    Ok(Done::Unsatisfied)
                }
            }
            Command::Timestamp { dst } => {
                let t = self.bus.timestamp();
                self.write_u64(dst, t)?;
                Ok(Done::Complete)
            }
            Command::Flush { flags } => {
                let bus = self.bus;
                bus.cache_cmd(self.s(), flags);
                Ok(Done::Complete)
            }
            Command::Call { ib, size } => {
                if pos.depth + 1 > MAX_CALL_DEPTH {
                    return Err(Stop::Error(q_error::CALL_DEPTH));
                }
                if size % 4 != 0 || size > RING_MAX {
                    return Err(Stop::Error(q_error::BAD_SIZE));
                }
                if size == 0 {
                    return Ok(Done::Complete);
                }
                // The indirect buffer, and everything it does, is
                // unprivileged: it reaches only pages with AP[1] set.
                pos.frames[pos.depth] = Frame {
                    ib,
                    size,
                    offset: 0,
                };
                pos.depth += 1;
                Ok(Done::Entered)
            }
        }
    }

    /// Fetch the ring command at `head` (privileged).
    fn fetch_ring(&mut self, r: &QueueRegs, head: u32) -> Res<Vec<u32>> {
        self.unpriv = false;
        let mask = r.ring_size - 1;
        let tail = r.tail & mask & !3;
        let avail = tail.wrapping_sub(head) & mask;
        let hdr = self.fetch(r.ring_base + u64::from(head))?;
        let len = hdr >> 16;
        if len == 0 || len * 4 > avail {
            return Err(Stop::Error(q_error::BAD_LENGTH));
        }
        let mut cmd = vec![0u32; len as usize];
        cmd[0] = hdr;
        // The rest of the command, in at most two spans if it wraps.
        let first = ((r.ring_size - ((head + 4) & mask)) / 4).min(len - 1) as usize;
        let start = r.ring_base + u64::from((head + 4) & mask);
        self.fetch_span(start, &mut cmd[1..1 + first])?;
        self.fetch_span(r.ring_base, &mut cmd[1 + first..])?;
        Ok(cmd)
    }

    /// Fetch the command at frame `f`'s offset (unprivileged).
    fn fetch_ib(&mut self, f: Frame) -> Res<Vec<u32>> {
        self.unpriv = true;
        let va = f.ib.wrapping_add(u64::from(f.offset));
        let hdr = self.fetch(va)?;
        let len = hdr >> 16;
        if len == 0 || f.offset + len * 4 > f.size {
            return Err(Stop::Error(q_error::BAD_LENGTH));
        }
        let mut cmd = vec![0u32; len as usize];
        cmd[0] = hdr;
        self.fetch_span(va.wrapping_add(4), &mut cmd[1..])?;
        Ok(cmd)
    }

    /// A restored position: the ring command at `head` and the command at
    /// each frame's offset but the innermost must be the CALLs of the
    /// frames.
    fn check_chain(&mut self, r: &QueueRegs, pos: &Position, head: u32) -> Res<()> {
        let bad = || Stop::Error(q_error::BAD_CONTEXT);
        let calls = |cmd: &[u32], f: &Frame| match Command::decode(cmd) {
            Ok(Command::Call { ib, size }) => ib == f.ib && size == f.size,
            _ => false,
        };
        let as_bad = |e: Stop| {
            if e == Stop::Error(q_error::BAD_LENGTH) {
                bad()
            } else {
                e
            }
        };
        if pos.depth == 0 {
            return Ok(());
        }
        let cmd = self.fetch_ring(r, head).map_err(as_bad)?;
        if !calls(&cmd, &pos.frames[0]) {
            return Err(bad());
        }
        for i in 0..pos.depth - 1 {
            let cmd = self.fetch_ib(pos.frames[i]).map_err(as_bad)?;
            if !calls(&cmd, &pos.frames[i + 1]) {
                return Err(bad());
            }
        }
        Ok(())
    }

    /// One step of the queue: (part of) the innermost command in progress,
    /// or the next one. Updates `pos` and `head`.
    fn step(&mut self, r: &QueueRegs, pos: &mut Position, head: &mut u32) -> Res<Next> {
        if !ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            return Err(Stop::Error(q_error::BAD_RING));
        }
        let mask = r.ring_size - 1;
        *head &= mask & !3;
        if pos.unchecked {
            self.check_chain(r, pos, *head)?;
            pos.unchecked = false;
        }
        pos.active = true;
        let (cmd, fresh) = match pos.latched {
            Some(l) => (l.dwords().to_vec(), false),
            None => {
                let c = if pos.depth == 0 {
                    self.fetch_ring(r, *head)
                } else {
                    self.fetch_ib(pos.frames[pos.depth - 1])
                };
                let c = c.map_err(|e| {
                    if pos.progress > 0 && e == Stop::Error(q_error::BAD_LENGTH) {
                        Stop::Error(q_error::BAD_CONTEXT)
                    } else {
                        e
                    }
                })?;
                (c, true)
            }
        };
        self.unpriv = pos.depth > 0;
        let len = cmd.len() as u32;
        match self.execute(&cmd, pos, fresh)? {
            Done::Complete => {
                advance(pos, head, mask, 4 * len);
                Ok(Next::Go)
            }
            Done::Entered => {
                pos.latched = None;
                Ok(Next::Go)
            }
            Done::More => {
                pos.latched = Latched::of(&cmd);
                Ok(Next::Go)
            }
            Done::Unsatisfied => {
                pos.latched = Latched::of(&cmd);
                Ok(Next::Poll)
            }
        }
    }
}

/// The innermost command in progress at `pos` (`bytes` long) is complete:
/// move past it, and past the CALLs whose buffers it completes.
fn advance(pos: &mut Position, head: &mut u32, mask: u32, mut bytes: u32) {
    pos.progress = 0;
    pos.partial = 0;
    pos.latched = None;
    while pos.depth > 0 {
        let f = &mut pos.frames[pos.depth - 1];
        f.offset += bytes;
        if f.offset < f.size {
            return;
        }
        *f = Frame::default();
        pos.depth -= 1;
        bytes = CALL_BYTES;
    }
    *head = head.wrapping_add(bytes) & mask;
    pos.active = false;
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `data`, continuing from `h`: the CHECKSUM command.
fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Whether the ring registers describe a usable ring.
fn ring_ok(base: u64, size: u32, slot: u32) -> bool {
    size.is_power_of_two()
        && (RING_MIN..=RING_MAX).contains(&size)
        && base.is_multiple_of(u64::from(RING_MIN))
        && (slot as usize) < NUM_AS
}

/// Stop queue `q` with a fault or an error at HEAD.
fn stop_queue<B: Bus>(bus: &B, s: &mut State<B::Regs>, q: usize, stop: Stop) {
    let (status, code) = match stop {
        Stop::Fault => (q_status::FAULTED, q_error::MMU_FAULT),
        Stop::Error(c) => (q_status::ERROR, c),
        Stop::Reset | Stop::Suspend => return,
    };
    let cur = &mut s.queues[q];
    debug!(
        "queue {q} stopped: error {code} at ring offset {:#x}",
        cur.head
    );
    cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
    cur.status |= status;
    cur.error = code;
    cur.error_offset = cur.head;
    cur.suspend_req = None;
    cur.restore_pending = false;
    bus.raise_job(s, job_irq::STOPPED + q as u32);
    bus.wake_all();
}

/// One step of queue `q`. Called with the lock held.
fn run_step<'a, B: Bus>(
    bus: &'a B,
    g: Guard<'a, B::Regs>,
    q: usize,
    wt: &mut WorkerTlb,
) -> (Guard<'a, B::Regs>, Next) {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    if wt.slot == ctx.slot {
        ctx.utlb = wt.utlb;
    }
    ctx.set_status(q_status::BUSY, 0);
    let (mut pos, mut head) = (r.pos, r.head);
    let res = ctx.step(&r, &mut pos, &mut head);
    *wt = WorkerTlb {
        slot: ctx.slot,
        utlb: ctx.utlb,
    };
    let mut g = ctx.g.take().expect("the device lock is held after a step");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return (g, Next::Go); // reset while running: the registers are already clean
    }
    cur.pos = pos;
    cur.head = head;
    match res {
        Ok(next) => {
            if !pos.active {
                cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
            }
            (g, next)
        }
        Err(stop) => {
            stop_queue(bus, &mut g, q, stop);
            (g, Next::Go)
        }
    }
}

/// Read, check and apply the context at `Q_CONTEXT` (RESTORE).
fn restore<'a, B: Bus>(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Guard<'a, B::Regs> {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    ctx.no_stall = true;
    let res = (|| -> Res<Context> {
        if !ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            return Err(Stop::Error(q_error::BAD_RING));
        }
        let mut b = [0u8; save_area::SIZE];
        ctx.read_direct(r.context, &mut b).map_err(|e| match e {
            Stop::Fault => Stop::Error(q_error::BAD_CONTEXT),
            e => e,
        })?;
        let c = Context::from_bytes(&b);
        if !c.is_well_formed(r.ring_size) {
            debug!("queue {q}: malformed context {c:?}");
            return Err(Stop::Error(q_error::BAD_CONTEXT));
        }
        Ok(c)
    })();
    let mut g = ctx.g.take().expect("the device lock is held");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return g;
    }
    cur.restore_pending = false;
    match res {
        Ok(c) => {
            debug!("queue {q}: restored {c:?}");
            cur.head = c.head;
            cur.seqno = c.seqno;
            cur.pos = c.position();
            if cur.pos.active {
                cur.status |= q_status::BUSY;
            }
        }
        Err(stop) => stop_queue(bus, &mut g, q, stop),
    }
    g
}

/// Serve a suspend request: save the context to `Q_CONTEXT`.
fn suspend<'a, B: Bus>(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Guard<'a, B::Regs> {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    ctx.no_stall = true;
    let mut c = Context::capture(r.head, r.seqno, &r.pos);
    c.request_ts = r.suspend_req.unwrap_or_default();
    let res = (|| -> Res<()> {
        // As WRITE64 with FLUSH: what the job wrote is in memory, and no
        // cached line shadows the save area.
        bus.cache_cmd(ctx.s(), cache::CLEAN | cache::INVALIDATE);
        let mut n = [0u8; 4];
        let at = r.context.wrapping_add(save_area::OFF_SUSPENDS as u64);
        ctx.read_direct(at, &mut n)?;
        c.suspends = u32::from_le_bytes(n).wrapping_add(1);
        c.saved_ts = bus.timestamp();
        ctx.write_direct(r.context, &c.to_bytes())
    })();
    let mut g = ctx.g.take().expect("the device lock is held");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return g;
    }
    match res {
        Ok(()) => {
            debug!("queue {q}: suspended {c:?}");
            cur.enabled = false;
            cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
            cur.status |= q_status::SUSPENDED;
            cur.pos = Position::default();
            cur.suspend_req = None;
            bus.raise_job(&mut g, job_irq::SUSPENDED + q as u32);
        }
        Err(Stop::Reset) => {}
        Err(_) => stop_queue(bus, &mut g, q, Stop::Error(q_error::BAD_CONTEXT)),
    }
    g
}

/// The worker thread of queue `q`.
pub(crate) fn worker<B: Bus>(bus: &B, q: usize) {
    let mut wt = WorkerTlb::default();
    let mut g = bus.lock();
    loop {
        if g.shutdown {
            return;
        }
        let r = g.queues[q];
        let stopped = r.status & (q_status::FAULTED | q_status::ERROR | q_status::SUSPENDED) != 0;
        if r.restore_pending && !stopped {
            g = restore(bus, g, q);
            continue;
        }
        if r.suspend_req.is_some() {
            if !stopped && (r.enabled || r.pos.active) {
                g = suspend(bus, g, q);
            } else {
                g.queues[q].suspend_req = None;
            }
            continue;
        }
        let pending = if ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            r.tail & (r.ring_size - 1) & !3 != r.head
        } else {
            r.tail != r.head
        };
        let runnable = !stopped && (r.pos.active || (r.enabled && pending));
        if runnable {
            let next;
            (g, next) = run_step(bus, g, q, &mut wt);
            match next {
                // Let MMIO in between steps.
                Next::Go => g = bus.let_mmio_in(g),
                Next::Poll => g = bus.wait(q, g, Some(WAIT_POLL)),
            }
        } else {
            g = bus.wait(q, g, None);
        }
    }
}
