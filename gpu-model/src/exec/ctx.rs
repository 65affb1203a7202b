// SPDX-License-Identifier: GPL-2.0
//! The queue's hold on the device while it executes ([`Ctx`]): the lock,
//! faults and stalls, translation through the TLBs, and every memory
//! access, split at the edges of its mappings by one helper
//! ([`Ctx::split`]) or, for COPY, of two ([`Ctx::copy_range`]).

use std::time::Duration;

use log::{debug, trace, warn};

use super::{Res, Stop, STEP_USIZE};
use crate::audit;
use crate::bus::{Bus, Fault, Guard, State};
use crate::mmu::{self, Access, FaultKind, WalkStats};
use crate::regs::*;

/// What a read of the null aperture returns.
static ZEROS: [u8; STEP_USIZE] = [0; STEP_USIZE];

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
pub(super) struct Ctx<'a, B: Bus> {
    pub(super) bus: &'a B,
    pub(super) g: Option<Guard<'a, B::Regs>>,
    pub(super) q: usize,
    gen: u64,
    pub(super) slot: usize,
    /// The last translation for data and for fetch, with the TLB
    /// generation it was valid in.
    pub(super) utlb: [Option<(u64, mmu::Mapping)>; 2],
    /// Accesses are unprivileged: the commands come from an indirect
    /// buffer, not from the ring.
    pub(super) unpriv: bool,
    /// Faults never stall (accesses to the context save area).
    pub(super) no_stall: bool,
}

impl<'a, B: Bus> Ctx<'a, B> {
    pub(super) fn new(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Self {
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

    pub(super) fn s(&mut self) -> &mut State<B::Regs> {
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

    pub(super) fn set_status(&mut self, set: u32, clear: u32) {
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
    pub(super) fn read(&mut self, va: u64, buf: &mut [u8]) -> Res<()> {
        self.split(va, Bytes::In(buf), Access::Read, Path::Cache)?;
        self.bus.count(counter::BYTES_READ, buf.len() as u64);
        Ok(())
    }

    /// Write `buf` at `va` through the cache.
    pub(super) fn write(&mut self, va: u64, buf: &[u8]) -> Res<()> {
        self.split(va, Bytes::Out(buf), Access::Write, Path::Cache)?;
        self.bus.count(counter::BYTES_WRITTEN, buf.len() as u64);
        Ok(())
    }

    pub(super) fn write_u64(&mut self, va: u64, v: u64) -> Res<()> {
        self.write(va, &v.to_le_bytes())
    }

    /// Fetch a command dword: through the MMU (execute permission), from
    /// memory directly (the command streamer does not use the cache). A
    /// dword may straddle two pages: each part has its own translation.
    pub(super) fn fetch(&mut self, va: u64) -> Res<u32> {
        let mut b = [0u8; 4];
        self.split(va, Bytes::In(&mut b), Access::Exec, Path::Direct)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Fetch `out.len()` consecutive command dwords starting at `va`: in
    /// one read if they lie in one mapping, else dword by dword.
    pub(super) fn fetch_span(&mut self, va: u64, out: &mut [u32]) -> Res<()> {
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
    pub(super) fn read_u64_coherent(&mut self, va: u64) -> Res<u64> {
        let mut b = [0u8; 8];
        self.split(va, Bytes::In(&mut b), Access::Read, Path::Coherent)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Write `buf` at `va` straight to memory, not through the cache
    /// (WRITE64 with FLUSH, and a suspend's context save area, whose
    /// accesses are privileged and never stall: see [`Ctx::no_stall`]).
    pub(super) fn write_direct(&mut self, va: u64, buf: &[u8]) -> Res<()> {
        self.split(va, Bytes::Out(buf), Access::Write, Path::Direct)?;
        self.bus.count(counter::BYTES_WRITTEN, buf.len() as u64);
        Ok(())
    }

    /// Read `buf.len()` bytes at `va` straight from memory, not through
    /// the cache (the context save area).
    pub(super) fn read_direct(&mut self, va: u64, buf: &mut [u8]) -> Res<()> {
        self.split(va, Bytes::In(buf), Access::Read, Path::Direct)?;
        self.bus.count(counter::BYTES_READ, buf.len() as u64);
        Ok(())
    }

    /// Copy the bytes at offsets `*off..end` of `src` to `dst` through the
    /// cache, in ascending order; `*off` says how far it got.
    pub(super) fn copy_range(&mut self, dst: u64, src: u64, end: u64, off: &mut u64) -> Res<()> {
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
}
