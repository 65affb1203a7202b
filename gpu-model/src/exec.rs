// SPDX-License-Identifier: GPL-2.0
//! Queue execution: the worker thread of each queue fetches commands from
//! its ring through the MMU and executes them.

use std::time::Duration;

use log::{debug, trace, warn};

use crate::device::{Device, Guard, State};
use crate::mmu::{self, Access, FaultKind, PhysRead, WalkStats};
use crate::regs::*;

/// How long WAIT sleeps between polls of memory.
const WAIT_POLL: Duration = Duration::from_micros(50);
/// Bytes moved between two releases of the device lock.
const CHUNK: usize = 1 << 20;

/// Why a command stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The queue (or the device) was reset: abandon silently.
    Reset,
    /// An MMU fault (already recorded on the slot).
    Fault,
    /// A command error (`Q_ERROR` code).
    Error(u32),
}

type Res<T> = Result<T, Stop>;

struct Phys<'a>(&'a crate::dma::DmaSpace);

impl PhysRead for Phys<'_> {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.0.read(pa, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

/// The execution context of one queue while it holds the device lock.
struct Ctx<'a> {
    dev: &'a Device,
    g: Option<Guard<'a>>,
    q: usize,
    gen: u64,
    slot: usize,
    /// The last translation for data and for fetch, with the TLB
    /// generation it was valid in.
    utlb: [Option<(u64, mmu::Mapping)>; 2],
    /// Accesses are unprivileged: the commands come from an indirect
    /// buffer, not from the ring.
    unpriv: bool,
}

/// Check cached translations against the tables, and writes against the
/// page-table pages walked since the last invalidation (a debugging aid).
static AUDIT: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("FERRITE_MODEL_AUDIT").is_some());

/// Page-table pages walked in TLB generation `.0`.
static AUDIT_TABLES: std::sync::Mutex<(u64, Option<std::collections::HashSet<u64>>)> =
    std::sync::Mutex::new((0, None));

fn u64_of(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

impl<'a> Ctx<'a> {
    fn s(&mut self) -> &mut State {
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
            self.g = Some(self.dev.wait(self.q, g, Some(d)));
        }
        self.check()
    }

    /// Let MMIO in between chunks of a long command.
    fn yield_lock(&mut self) -> Res<()> {
        drop(self.g.take());
        self.g = Some(self.dev.lock());
        self.check()
    }

    fn set_status(&mut self, set: u32, clear: u32) {
        let q = self.q;
        let st = &mut self.s().queues[q].status;
        *st = (*st & !clear) | set;
    }

    fn fault(&mut self, kind: FaultKind, va: u64, access: Access) -> Res<()> {
        let (dev, slot, q) = (self.dev, self.slot, self.q);
        dev.record_fault(self.s(), slot, q, kind, va, access == Access::Write);
        let stall = self.s().slots.get(slot).is_some_and(|a| a.stall_mode);
        if !stall || kind == FaultKind::Bus {
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
        }
    }

    /// With `FERRITE_MODEL_AUDIT` set: check a cached translation against the
    /// tables, and report one the driver changed without invalidating it
    /// (outside a LOCKed range, the device would use a stale entry).
    fn audit(&mut self, root: u64, va_bits: u32, va: u64, m: &mmu::Mapping) {
        if !*AUDIT {
            return;
        }
        let oas = self.dev.opts.dma_addr_bits;
        let mut st = WalkStats::default();
        let fresh = mmu::walk(&Phys(&self.dev.dma), root, va_bits, oas, va, &mut st);
        let same = match fresh {
            Ok(f) => f.pa(va) == m.pa(va) && f.writable == m.writable && f.user == m.user,
            Err(_) => false,
        };
        if !same {
            warn!(
                "audit: queue {} slot {} va {va:#x}: cached {m:?}, tables {fresh:?}",
                self.q, self.slot
            );
        }
    }

    /// With `FERRITE_MODEL_AUDIT` set: report a write into a page the
    /// walker read as a page table (since the last invalidation): the
    /// driver mapped a page it also uses, or freed, as a table.
    fn audit_write(&mut self, pa: u64, va: u64, len: u64) {
        if !*AUDIT {
            return;
        }
        let gen = self.s().tlb.gen;
        let t = AUDIT_TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let hit = |set: &std::collections::HashSet<u64>| {
            (pa & !0xfff..pa + len.max(1))
                .step_by(4096)
                .any(|p| set.contains(&(p & !0xfff)))
        };
        if t.0 == gen && t.1.as_ref().is_some_and(hit) {
            warn!(
                "audit: queue {} slot {} writes page-table page {pa:#x} at va {va:#x}",
                self.q, self.slot
            );
        }
    }

    /// Translate `va` for `access`; returns the bus address and how many
    /// bytes from `va` on lie in the same mapping.
    fn translate(&mut self, va: u64, access: Access) -> Res<(u64, u64)> {
        loop {
            self.check()?;
            let slot = self.slot;
            let oas = self.dev.opts.dma_addr_bits;
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
                    self.dev.count(counter::TLB_HITS, 1);
                    self.audit(root, va_bits, va, &m);
                    return Ok((m.pa(va), m.va_base + m.size - va));
                }
            }
            let cached = self.s().tlb.lookup(slot, va);
            let m = match cached {
                Some(m) => {
                    self.dev.count(counter::TLB_HITS, 1);
                    self.audit(root, va_bits, va, &m);
                    m
                }
                None => {
                    self.dev.count(counter::TLB_MISSES, 1);
                    let mut st = WalkStats::default();
                    let r = mmu::walk(&Phys(&self.dev.dma), root, va_bits, oas, va, &mut st);
                    self.dev.count(counter::PT_READS, st.descriptor_reads);
                    trace!("walk as{slot} {va:#x}: {r:?}");
                    if *AUDIT && r.is_ok() {
                        let gen = self.s().tlb.gen;
                        let mut t = AUDIT_TABLES.lock().unwrap_or_else(|e| e.into_inner());
                        if t.0 != gen || t.1.is_none() {
                            *t = (gen, Some(Default::default()));
                        }
                        if let Some(set) = t.1.as_mut() {
                            set.extend(st.tables[..st.ntables].iter().copied());
                        }
                    }
                    match r {
                        Ok(m) => {
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

    fn read(&mut self, mut va: u64, buf: &mut [u8]) -> Res<()> {
        let mut done = 0;
        while done < buf.len() {
            let (pa, room) = self.translate(va, Access::Read)?;
            let n = (buf.len() - done).min(usize::try_from(room).unwrap_or(usize::MAX));
            let dma = &self.dev.dma;
            if self
                .s()
                .cache
                .read(dma, pa, &mut buf[done..done + n])
                .is_err()
            {
                return self.fault(FaultKind::Bus, va, Access::Read);
            }
            done += n;
            va += n as u64;
        }
        self.dev.count(counter::BYTES_READ, buf.len() as u64);
        Ok(())
    }

    fn write(&mut self, mut va: u64, buf: &[u8]) -> Res<()> {
        let mut done = 0;
        while done < buf.len() {
            let (pa, room) = self.translate(va, Access::Write)?;
            let n = (buf.len() - done).min(usize::try_from(room).unwrap_or(usize::MAX));
            self.audit_write(pa, va, n as u64);
            let dma = &self.dev.dma;
            if self.s().cache.write(dma, pa, &buf[done..done + n]).is_err() {
                return self.fault(FaultKind::Bus, va, Access::Write);
            }
            done += n;
            va += n as u64;
        }
        self.dev.count(counter::BYTES_WRITTEN, buf.len() as u64);
        Ok(())
    }

    /// Fetch a command dword: through the MMU (execute permission), from
    /// memory directly (the command streamer does not use the cache).
    fn fetch(&mut self, va: u64) -> Res<u32> {
        let mut b = [0u8; 4];
        // A dword may straddle two pages: translate each part.
        let mut done = 0;
        while done < b.len() {
            let at = va.wrapping_add(done as u64);
            let (pa, room) = self.translate(at, Access::Exec)?;
            let n = (b.len() - done).min(usize::try_from(room).unwrap_or(usize::MAX));
            if self.dev.dma.read(pa, &mut b[done..done + n]).is_err() {
                self.fault(FaultKind::Bus, at, Access::Exec)?;
            }
            done += n;
        }
        Ok(u32::from_le_bytes(b))
    }

    /// Fetch `out.len()` consecutive command dwords starting at `va`.
    fn fetch_span(&mut self, va: u64, out: &mut [u32]) -> Res<()> {
        if out.is_empty() {
            return Ok(());
        }
        let (pa, room) = self.translate(va, Access::Exec)?;
        let bytes = out.len() * 4;
        if room >= bytes as u64 {
            let mut b = vec![0u8; bytes];
            if self.dev.dma.read(pa, &mut b).is_err() {
                return self.fault(FaultKind::Bus, va, Access::Exec);
            }
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
        let mut done = 0;
        while done < b.len() {
            let at = va.wrapping_add(done as u64);
            let (pa, room) = self.translate(at, Access::Read)?;
            let n = (b.len() - done).min(usize::try_from(room).unwrap_or(usize::MAX));
            let dma = &self.dev.dma;
            if self
                .s()
                .cache
                .read_coherent(dma, pa, &mut b[done..done + n])
                .is_err()
            {
                self.fault(FaultKind::Bus, at, Access::Read)?;
            }
            done += n;
        }
        Ok(u64::from_le_bytes(b))
    }

    fn write_u64(&mut self, va: u64, v: u64) -> Res<()> {
        self.write(va, &v.to_le_bytes())
    }

    fn fill(&mut self, dst: u64, size: u64, pattern: u32) -> Res<()> {
        let pat = pattern.to_le_bytes();
        let mut buf = vec![0u8; (size as usize).min(CHUNK)];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pat[i % 4];
        }
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(CHUNK as u64) as usize;
            self.write(dst.wrapping_add(off), &buf[..n])?;
            off += n as u64;
            if off < size {
                self.yield_lock()?;
            }
        }
        Ok(())
    }

    fn copy(&mut self, dst: u64, src: u64, size: u64) -> Res<()> {
        let mut off = 0u64;
        let mut since_yield = 0usize;
        while off < size {
            let (s, d) = (src.wrapping_add(off), dst.wrapping_add(off));
            let (spa, sroom) = self.translate(s, Access::Read)?;
            let (dpa, droom) = self.translate(d, Access::Write)?;
            let n = (size - off).min(sroom).min(droom).min(CHUNK as u64) as usize;
            self.audit_write(dpa, d, n as u64);
            let dma = &self.dev.dma;
            if let Err(crate::dma::DmaError::Unmapped(bad)) = self.s().cache.copy(dma, dpa, spa, n)
            {
                // Say which side was outside guest memory.
                let (va, access) = if bad >= spa && bad - spa < n as u64 {
                    (s, Access::Read)
                } else {
                    (d, Access::Write)
                };
                return self.fault(FaultKind::Bus, va, access);
            }
            self.dev.count(counter::BYTES_READ, n as u64);
            self.dev.count(counter::BYTES_WRITTEN, n as u64);
            off += n as u64;
            since_yield += n;
            if off < size && since_yield >= CHUNK {
                since_yield = 0;
                self.yield_lock()?;
            }
        }
        Ok(())
    }

    fn checksum(&mut self, src: u64, size: u64) -> Res<u64> {
        let mut h = FNV_OFFSET;
        let mut buf = vec![0u8; (size as usize).min(CHUNK)];
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(CHUNK as u64) as usize;
            self.read(src.wrapping_add(off), &mut buf[..n])?;
            h = fnv1a(h, &buf[..n]);
            off += n as u64;
            if off < size {
                self.yield_lock()?;
            }
        }
        Ok(h)
    }

    /// Execute one decoded command.
    fn execute(&mut self, dw: &[u32], depth: usize) -> Res<()> {
        let op = dw[0] & 0xff;
        let flags = (dw[0] >> 8) & 0xff;
        let need = |n: usize| {
            if dw.len() == n {
                Ok(())
            } else {
                Err(Stop::Error(q_error::BAD_LENGTH))
            }
        };
        let size_ok = |s: u64| {
            if s <= MAX_COMMAND_BYTES {
                Ok(s)
            } else {
                Err(Stop::Error(q_error::BAD_SIZE))
            }
        };
        self.dev.count(counter::COMMANDS, 1);
        trace!(
            "queue {} op {op:#x} flags {flags:#x} len {}",
            self.q,
            dw.len()
        );
        match op {
            op::NOP => Ok(()),
            op::FILL => {
                need(6)?;
                let size = size_ok(u64_of(dw[3], dw[4]))?;
                self.fill(u64_of(dw[1], dw[2]), size, dw[5])
            }
            op::COPY => {
                need(7)?;
                let size = size_ok(u64_of(dw[5], dw[6]))?;
                self.copy(u64_of(dw[1], dw[2]), u64_of(dw[3], dw[4]), size)
            }
            op::CHECKSUM => {
                need(7)?;
                let size = size_ok(u64_of(dw[5], dw[6]))?;
                let h = self.checksum(u64_of(dw[3], dw[4]), size)?;
                self.write_u64(u64_of(dw[1], dw[2]), h)
            }
            op::WRITE64 => {
                need(5)?;
                let (dst, val) = (u64_of(dw[1], dw[2]), u64_of(dw[3], dw[4]));
                if flags & write64::FLUSH != 0 {
                    let dev = self.dev;
                    dev.cache_cmd(self.s(), cache::CLEAN | cache::INVALIDATE);
                    // Written through: translate, then straight to memory,
                    // each page's part through its own translation (the
                    // value may straddle two pages, which need not be
                    // contiguous in memory, or both mapped).
                    let bytes = val.to_le_bytes();
                    let mut done = 0;
                    while done < bytes.len() {
                        let at = dst.wrapping_add(done as u64);
                        let (pa, room) = self.translate(at, Access::Write)?;
                        let n =
                            (bytes.len() - done).min(usize::try_from(room).unwrap_or(usize::MAX));
                        self.audit_write(pa, at, n as u64);
                        if self.dev.dma.write(pa, &bytes[done..done + n]).is_err() {
                            return self.fault(FaultKind::Bus, at, Access::Write);
                        }
                        done += n;
                    }
                    self.dev.count(counter::BYTES_WRITTEN, 8);
                } else {
                    self.write_u64(dst, val)?;
                }
                let q = self.q;
                if flags & write64::SEQNO != 0 {
                    self.s().queues[q].seqno = val;
                }
                if flags & write64::IRQ != 0 {
                    let dev = self.dev;
                    dev.raise_job(self.s(), q as u32);
                }
                // Another queue may be waiting on this value.
                if self.s().waiters > 0 {
                    self.dev.wake_all();
                }
                Ok(())
            }
            op::WAIT => {
                need(5)?;
                let (addr, val) = (u64_of(dw[1], dw[2]), u64_of(dw[3], dw[4]));
                self.set_status(q_status::WAITING, 0);
                self.s().waiters += 1;
                let r = loop {
                    match self.read_u64_coherent(addr) {
                        Ok(v) if v >= val => break Ok(()),
                        Ok(_) => {}
                        Err(e) => break Err(e),
                    }
                    if let Err(e) = self.relax(WAIT_POLL) {
                        break Err(e);
                    }
                };
                self.s().waiters -= 1;
                self.set_status(0, q_status::WAITING);
                r
            }
            op::TIMESTAMP => {
                need(3)?;
                let t = self.dev.timestamp();
                self.write_u64(u64_of(dw[1], dw[2]), t)
            }
            op::FLUSH => {
                need(1)?;
                let dev = self.dev;
                dev.cache_cmd(self.s(), flags);
                Ok(())
            }
            op::CALL => {
                need(4)?;
                if depth + 1 > MAX_CALL_DEPTH {
                    return Err(Stop::Error(q_error::CALL_DEPTH));
                }
                let (ib, size) = (u64_of(dw[1], dw[2]), dw[3]);
                if size % 4 != 0 || size > RING_MAX {
                    return Err(Stop::Error(q_error::BAD_SIZE));
                }
                // The indirect buffer, and everything it does, is
                // unprivileged: it reaches only pages with AP[1] set.
                let outer = core::mem::replace(&mut self.unpriv, true);
                let r = self.call(ib, size, depth);
                self.unpriv = outer;
                r
            }
            _ => Err(Stop::Error(q_error::BAD_OPCODE)),
        }
    }

    /// Execute the `size` bytes of commands at `ib` (a CALL at `depth`).
    fn call(&mut self, ib: u64, size: u32, depth: usize) -> Res<()> {
        let mut off = 0u32;
        while off < size {
            let va = ib.wrapping_add(u64::from(off));
            let hdr = self.fetch(va)?;
            let len = hdr >> 16;
            if len == 0 || off + len * 4 > size {
                return Err(Stop::Error(q_error::BAD_LENGTH));
            }
            let mut cmd = vec![0u32; len as usize];
            cmd[0] = hdr;
            self.fetch_span(va.wrapping_add(4), &mut cmd[1..])?;
            self.execute(&cmd, depth + 1)?;
            off += len * 4;
        }
        Ok(())
    }
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `data`, continuing from `h`: the CHECKSUM command.
pub fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
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

/// Execute the command at the queue's HEAD. Called with the lock held.
fn run_one<'a>(dev: &'a Device, g: Guard<'a>, q: usize) -> Guard<'a> {
    let r = g.queues[q];
    let mut ctx = Ctx {
        dev,
        g: Some(g),
        q,
        gen: r.gen,
        slot: r.as_slot as usize,
        utlb: [None; 2],
        unpriv: false,
    };
    ctx.set_status(q_status::BUSY, 0);
    let res = (|| -> Res<u32> {
        if !ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            return Err(Stop::Error(q_error::BAD_RING));
        }
        let mask = r.ring_size - 1;
        let head = r.head & mask & !3;
        let tail = r.tail & mask & !3;
        let avail = tail.wrapping_sub(head) & mask;
        let hdr = ctx.fetch(r.ring_base + u64::from(head))?;
        let len = hdr >> 16;
        if len == 0 || len * 4 > avail {
            return Err(Stop::Error(q_error::BAD_LENGTH));
        }
        let mut cmd = vec![0u32; len as usize];
        cmd[0] = hdr;
        // The rest of the command, in at most two spans if it wraps.
        let first = ((r.ring_size - ((head + 4) & mask)) / 4).min(len - 1) as usize;
        let start = r.ring_base + u64::from((head + 4) & mask);
        ctx.fetch_span(start, &mut cmd[1..1 + first])?;
        ctx.fetch_span(r.ring_base, &mut cmd[1 + first..])?;
        ctx.execute(&cmd, 0)?;
        Ok((head + 4 * len) & mask)
    })();
    let mut g = ctx
        .g
        .take()
        .expect("the device lock is held after a command");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return g; // reset while running: the registers are already clean
    }
    cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
    match res {
        Ok(new_head) => cur.head = new_head,
        Err(Stop::Reset) => {}
        Err(stop) => {
            let (status, code) = match stop {
                Stop::Fault => (q_status::FAULTED, q_error::MMU_FAULT),
                Stop::Error(c) => (q_status::ERROR, c),
                Stop::Reset => unreachable!(),
            };
            debug!(
                "queue {q} stopped: error {code} at ring offset {:#x}",
                cur.head
            );
            cur.status |= status;
            cur.error = code;
            cur.error_offset = cur.head;
            dev.raise_job(&mut g, 16 + q as u32);
            dev.wake_all();
        }
    }
    g
}

/// The worker thread of queue `q`.
pub fn worker(dev: &Device, q: usize) {
    let mut g = dev.lock();
    loop {
        if g.shutdown {
            return;
        }
        let r = g.queues[q];
        let pending = if ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            r.tail & (r.ring_size - 1) & !3 != r.head
        } else {
            r.tail != r.head
        };
        let runnable =
            r.enabled && r.status & (q_status::FAULTED | q_status::ERROR) == 0 && pending;
        if runnable {
            g = run_one(dev, g, q);
            // Let MMIO in between commands.
            drop(g);
            g = dev.lock();
        } else {
            g = dev.wait(q, g, None);
        }
    }
}
